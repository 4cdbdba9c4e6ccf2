//! `maxSurge`/`maxUnavailable` values: an int, or a percent of replicas.
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The rule on `maxUnavailable` beyond [`IntOrPercent`]'s own: a Deployment
/// refuses more than 100%, and so does serin, at the API server.
/// On the strategy that holds the field (a rule on the field itself is lost
/// when kube merges it with the type's own rule).
pub const MAX_UNAVAILABLE_RULE: &str = "!has(self.maxUnavailable) || (type(self.maxUnavailable) == string ? self.maxUnavailable.matches('^(100|[1-9]?[0-9])%$') : true)";
pub const MAX_UNAVAILABLE_MESSAGE: &str = "maxUnavailable must not exceed 100%";

/// An absolute count (`3`) or a percent of replicas (`"25%"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(i32),
    Percent(String),
}

impl IntOrPercent {
    /// The percent, when this is a well-formed percent.
    pub fn percent(&self) -> Option<i64> {
        match self {
            IntOrPercent::Percent(s) => s.strip_suffix('%')?.parse().ok(),
            IntOrPercent::Int(_) => None,
        }
    }

    /// Resolves against `total` replicas. Percents round up or down, as Deployments do:
    /// maxSurge rounds up, maxUnavailable rounds down.
    pub fn resolve(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrPercent::Int(n) if *n >= 0 => Ok(*n),
            IntOrPercent::Int(n) => Err(format!("{n} is negative")),
            IntOrPercent::Percent(s) => {
                let percent: i64 = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse().ok())
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| format!("{s:?} is neither an integer nor a percent like \"25%\""))?;
                let scaled = i64::from(total.max(0)) * percent;
                let value = if round_up { (scaled + 99) / 100 } else { scaled / 100 };
                i32::try_from(value).map_err(|_| format!("{s} of {total} is too large"))
            }
        }
    }
}

impl JsonSchema for IntOrPercent {
    fn schema_name() -> Cow<'static, str> {
        "IntOrPercent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The integer side is bounded to an i32 (see `schema::bound_to_i32`).
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "maximum": i32::MAX,
            "minimum": i32::MIN,
            "anyOf": [{ "type": "integer" }, { "type": "string" }],
            "x-kubernetes-validations": [{
                "rule": "type(self) == string ? self.matches('^[0-9]+%$') : self >= 0",
                "message": "must be a non-negative integer or a percent such as \"25%\""
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::IntOrPercent::{Int, Percent};

    #[test]
    fn resolves_like_a_deployment() {
        let cases = [
            (Int(3), 10, true, Ok(3)),
            (Percent("25%".into()), 10, true, Ok(3)),
            (Percent("25%".into()), 10, false, Ok(2)),
            (Percent("0%".into()), 10, true, Ok(0)),
            (Percent("100%".into()), 7, false, Ok(7)),
            (Percent("1%".into()), 1, true, Ok(1)),
            (Percent("1%".into()), 1, false, Ok(0)),
        ];
        for (value, total, up, want) in cases {
            assert_eq!(value.resolve(total, up), want, "{value:?} of {total} (round up {up})");
        }
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(Percent("25".into()).resolve(10, true).is_err());
        assert!(Percent("abc%".into()).resolve(10, true).is_err());
        assert!(Int(-1).resolve(10, true).is_err());
    }
}
