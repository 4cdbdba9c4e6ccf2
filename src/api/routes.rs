//! Canary steps that route by request, not by share: `setHeaderRoute` sends
//! matching requests to the canary, `setMirrorRoute` copies them to it. The
//! names and shapes are Argo Rollouts'. A step with only `name` removes the
//! route of that name; every route serin added goes when the canary ends,
//! aborts or is superseded.
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::schema::exactly_one_of;

/// The most conditions one route may match on.
pub const ROUTE_MATCHES_MAX: u64 = 8;

/// A route's name as serin writes it into the router's objects (a Gateway API
/// rule's name is a DNS-1123 label): short enough for `serin-step32-<name>-8`.
pub const ROUTE_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const ROUTE_NAME_MAX: u32 = 40;

/// `setHeaderRoute`: requests meeting every condition of `match` go to the
/// canary Service, whatever the weight. Only `name`: remove that route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    #[schemars(length(min = 1, max = ROUTE_NAME_MAX), regex(pattern = ROUTE_NAME_PATTERN))]
    pub name: String,
    /// Conditions a request must all meet. Absent: remove the route `name`.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = ROUTE_MATCHES_MAX))]
    pub matches: Vec<RouteMatch>,
}

/// `setMirrorRoute`: a copy of `percentage` percent of the requests meeting
/// every condition of `match` (of every request, without `match`) goes to the
/// canary Service; its answers are dropped. Only `name`: remove that route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    #[schemars(length(min = 1, max = ROUTE_NAME_MAX), regex(pattern = ROUTE_NAME_PATTERN))]
    pub name: String,
    /// Conditions a request must all meet to be mirrored.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = ROUTE_MATCHES_MAX))]
    pub matches: Vec<RouteMatch>,
    /// Percent of the matching requests mirrored. Absent with `match`: 100;
    /// absent without `match`: remove the route `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percentage: Option<i32>,
}

impl SetHeaderRoute {
    /// Whether this step removes its route rather than setting it.
    pub fn removes(&self) -> bool {
        self.matches.is_empty()
    }
}

impl SetMirrorRoute {
    pub fn removes(&self) -> bool {
        self.matches.is_empty() && self.percentage.is_none()
    }

    /// The share mirrored.
    pub fn percent(&self) -> i32 {
        self.percentage.unwrap_or(100)
    }
}

impl super::CanaryStep {
    /// The name of the route this step sets or removes; None for other steps.
    pub fn route_name(&self) -> Option<&str> {
        self.set_header_route
            .as_ref()
            .map(|h| h.name.as_str())
            .or(self.set_mirror_route.as_ref().map(|m| m.name.as_str()))
    }

    /// Whether the step sets a route rather than removing one.
    pub fn sets_route(&self) -> bool {
        self.set_header_route.as_ref().is_some_and(|h| !h.removes())
            || self.set_mirror_route.as_ref().is_some_and(|m| !m.removes())
    }
}

/// One condition on a request: a header, a cookie or a query parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = exactly_one_of(&["headerName", "cookieName", "queryParamName"], "a route match names"),
    validation = Rule::new("has(self.headerName) == has(self.headerValue)")
        .message("headerName and headerValue go together"),
    validation = Rule::new("has(self.queryParamName) == has(self.queryParamValue)")
        .message("queryParamName and queryParamValue go together"),
    validation = Rule::new("!has(self.cookieValue) || has(self.cookieName)")
        .message("cookieValue needs cookieName"),
)]
pub struct RouteMatch {
    /// A request header, e.g. `X-Canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"))]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value: Option<StringMatch>,
    /// A cookie; the request matches when it carries `cookieName=cookieValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"))]
    pub cookie_name: Option<String>,
    /// Default `always`, the value ingress-nginx's `canary-by-cookie` routes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[!#-+\--:<-\[\]-~]+$"))]
    pub cookie_value: Option<String>,
    /// A query parameter, e.g. `canary` in `?canary=yes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub query_param_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param_value: Option<StringMatch>,
}

/// The cookie value a cookie match without `cookieValue` routes on.
pub const COOKIE_VALUE_DEFAULT: &str = "always";

impl RouteMatch {
    pub fn cookie_value(&self) -> &str {
        self.cookie_value.as_deref().unwrap_or(COOKIE_VALUE_DEFAULT)
    }
}

/// Exactly one of `exact`, `prefix` or `regex`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = exactly_one_of(&["exact", "prefix", "regex"], "a value match sets"))]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub prefix: Option<String>,
    /// An RE2 regular expression (as Gateway API, Istio and ingress-nginx read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub regex: Option<String>,
}

impl StringMatch {
    /// The match as a regular expression: prefixes and exact values escaped,
    /// for routers that only take a pattern.
    pub fn as_regex(&self) -> String {
        match (&self.exact, &self.prefix, &self.regex) {
            (Some(exact), _, _) => format!("^{}$", regex_escape(exact)),
            (_, Some(prefix), _) => format!("^{}.*", regex_escape(prefix)),
            (_, _, Some(regex)) => regex.clone(),
            _ => String::new(),
        }
    }
}

/// `text` with every RE2 metacharacter escaped.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_anchored_patterns() {
        let m = |json: serde_json::Value| serde_json::from_value::<StringMatch>(json).unwrap().as_regex();
        assert_eq!(m(serde_json::json!({ "exact": "a.b" })), r"^a\.b$");
        assert_eq!(m(serde_json::json!({ "prefix": "v1(" })), r"^v1\(.*");
        assert_eq!(m(serde_json::json!({ "regex": "^x+$" })), "^x+$");
    }

    #[test]
    fn only_a_name_removes() {
        let header: SetHeaderRoute = serde_json::from_value(serde_json::json!({ "name": "t" })).unwrap();
        assert!(header.removes());
        let mirror: SetMirrorRoute = serde_json::from_value(serde_json::json!({ "name": "m" })).unwrap();
        assert!(mirror.removes());
        let all: SetMirrorRoute = serde_json::from_value(serde_json::json!({ "name": "m", "percentage": 10 })).unwrap();
        assert!(!all.removes());
        assert_eq!(all.percent(), 10);
    }
}
