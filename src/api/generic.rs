//! `trafficRouting.generic`: any object that carries the weights, driven by
//! declaration. serin renders the user's patch template with the two weights
//! and reads them back with JSONPaths; no code and no plugin per router.
use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;

/// `trafficRouting.generic`: an object in the Release's namespace whose
/// weights serin writes with a patch and reads back with JSONPaths.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericRouting {
    /// e.g. `traefik.io/v1alpha1`.
    #[schemars(length(min = 1, max = 316))]
    pub api_version: String,
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The resource's plural name. Absent: guessed from `kind`, as kubectl does
    /// for most kinds (`TraefikService` -> `traefikservices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub plural: Option<String>,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    pub patch: WeightPatch,
    /// Where the object holds the weights, as RFC 9535 JSONPaths that each
    /// select one number: e.g. `$.spec.weighted.services[?@.name=='web'].weight`.
    pub weights: WeightPaths,
}

/// The patch that writes the weights: `{{stableWeight}}` and `{{canaryWeight}}`
/// in `template` become the two numbers (summing to 100).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightPatch {
    /// `merge` (RFC 7386, the default) or `json` (RFC 6902, a list of operations).
    #[serde(default, rename = "type")]
    pub patch_type: PatchType,
    /// The patch, as JSON or YAML.
    #[schemars(length(min = 2, max = 16384))]
    pub template: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PatchType {
    #[default]
    Merge,
    Json,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightPaths {
    #[schemars(length(min = 2, max = 1024))]
    pub stable: String,
    #[schemars(length(min = 2, max = 1024))]
    pub canary: String,
}

/// The placeholders a template carries.
pub const STABLE_WEIGHT: &str = "{{stableWeight}}";
pub const CANARY_WEIGHT: &str = "{{canaryWeight}}";

impl GenericRouting {
    /// The patch writing `canary` percent to the canary (the rest to stable),
    /// checked for its type's shape. Errors name what is wrong with the template.
    pub fn render(&self, canary: i32) -> Result<Value, String> {
        let canary = canary.clamp(0, 100);
        let template = &self.patch.template;
        for placeholder in [STABLE_WEIGHT, CANARY_WEIGHT] {
            if !template.contains(placeholder) {
                return Err(format!(
                    "lacks {placeholder}: serin writes both weights, which sum to 100"
                ));
            }
        }
        let text = template
            .replace(STABLE_WEIGHT, &(100 - canary).to_string())
            .replace(CANARY_WEIGHT, &canary.to_string());
        let patch: Value = serde_yaml::from_str(&text).map_err(|e| format!("is not JSON or YAML: {e}"))?;
        match self.patch.patch_type {
            PatchType::Merge if !patch.is_object() => Err("a merge patch must be an object".into()),
            PatchType::Json => {
                if !patch.is_array() {
                    return Err("a JSON patch must be a list of operations".into());
                }
                serde_json::from_value::<json_patch::Patch>(patch.clone())
                    .map_err(|e| format!("is not a JSON patch (RFC 6902): {e}"))?;
                Ok(patch)
            }
            PatchType::Merge => Ok(patch),
        }
    }

    /// The stable and canary JSONPaths, parsed.
    pub fn paths(&self) -> Result<(JsonPath, JsonPath), (&'static str, String)> {
        let parse = |field: &'static str, text: &str| {
            JsonPath::parse(text).map_err(|e| (field, format!("{text:?} is not a JSONPath: {e}")))
        };
        Ok((
            parse("stable", &self.weights.stable)?,
            parse("canary", &self.weights.canary)?,
        ))
    }
}

/// The one number `path` selects in `object`; None when it selects none,
/// several, or something else.
pub fn read_number(object: &Value, path: &JsonPath) -> Option<i64> {
    let found = path.query(object).exactly_one().ok()?;
    found
        .as_i64()
        .or_else(|| found.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(patch_type: &str, template: &str) -> GenericRouting {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "name": "web",
            "patch": { "type": patch_type, "template": template },
            "weights": {
                "stable": "$.spec.weighted.services[?@.name=='web'].weight",
                "canary": "$.spec.weighted.services[?@.name=='web-canary'].weight",
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_template_renders_the_weights_and_they_read_back() {
        let yaml = "spec:\n  weighted:\n    services:\n    - {name: web, weight: {{stableWeight}}}\n    - {name: web-canary, weight: {{canaryWeight}}}\n";
        let generic = routing("merge", yaml);
        let patch = generic.render(30).unwrap();
        let (stable, canary) = generic.paths().unwrap();
        assert_eq!(
            (read_number(&patch, &stable), read_number(&patch, &canary)),
            (Some(70), Some(30))
        );
        let json = routing(
            "json",
            r#"[{"op": "replace", "path": "/spec/c", "value": {{canaryWeight}}}, {"op": "replace", "path": "/spec/s", "value": {{stableWeight}}}]"#,
        );
        assert_eq!(json.render(5).unwrap()[0]["value"], 5);
    }

    #[test]
    fn a_bad_template_or_path_says_what_is_wrong() {
        let both = "{{canaryWeight}}, s: {{stableWeight}}";
        let cases = [
            (routing("merge", "spec: {weight: 1}"), "lacks {{stableWeight}}"),
            (
                routing("merge", "spec: {weight: {{canaryWeight}}}"),
                "lacks {{stableWeight}}",
            ),
            (
                routing("merge", "[{{canaryWeight}}, {{stableWeight}}]"),
                "a merge patch must be an object",
            ),
            (
                routing("json", &format!("{{w: {both}}}")),
                "a JSON patch must be a list of operations",
            ),
            (
                routing(
                    "json",
                    "[{op: add, value: {{canaryWeight}}}, {op: add, path: /s, value: {{stableWeight}}}]",
                ),
                "is not a JSON patch (RFC 6902)",
            ),
            (
                routing(
                    "json",
                    "[{op: frob, path: /w, value: {{canaryWeight}}}, {op: add, path: /s, value: {{stableWeight}}}]",
                ),
                "is not a JSON patch (RFC 6902)",
            ),
            (routing("merge", &format!("{{w: {both}")), "is not JSON or YAML"),
        ];
        for (generic, want) in cases {
            let got = generic.render(10).unwrap_err();
            assert!(got.starts_with(want), "{got}");
        }
        let mut bad = routing("merge", "{w: {{canaryWeight}}, s: {{stableWeight}}}");
        bad.weights.canary = "spec.weight".into();
        assert_eq!(bad.paths().unwrap_err().0, "canary");
    }
}
