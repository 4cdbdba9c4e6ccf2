//! Where a provider's credentials and headers come from: Secrets in the
//! Release's namespace, and header values.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the Release's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// Credentials read from a Secret in the Release's namespace; never logged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeyRef>,
    /// Basic auth: `username` and `password` keys of this Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub name: String,
    pub value: String,
}
