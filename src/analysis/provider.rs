//! The seam every analysis provider implements. A provider is the type of one
//! field of `api::Provider` (`PrometheusProvider`, `WebProvider`,
//! `JobProvider`); `analysis::provider` picks the one a metric sets. Rendering,
//! Secrets, the timeout and measuring are all reached through this trait, so
//! the controller, the InvalidSpec check and lint never name a provider.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;

use super::ProviderError;
use super::template::Args;
use crate::api::{self, MeasurementPhase, Release};

/// A key of a Secret in the Release's namespace: (Secret name, key).
pub type SecretKey = (String, String);

/// Secret values as the caller read them. A key that is absent is unknown
/// (lint has no cluster); present but None: looked for and not there (or not
/// UTF-8).
pub type Secrets = BTreeMap<SecretKey, Option<String>>;

/// One analysis provider.
pub trait Provider: Sync {
    /// The `provider` label of `serin_analysis_measurements_total`.
    fn name(&self) -> &'static str;

    /// This provider with `args` put into its fields, each through the escaper
    /// of `template` that fits where it lands, wrapped as the metric's
    /// `api::Provider`. `hidden` names the args read from Secrets. Err says what
    /// is wrong, naming the arg at fault as `template::faulty_arg` reads it.
    fn render(&self, args: &Args, hidden: &BTreeSet<String>) -> Result<api::Provider, String>;

    /// The Secret keys it reads when it measures (its credentials), in the
    /// order their values are scrubbed from what is shown.
    fn secret_keys(&self) -> Vec<SecretKey> {
        Vec::new()
    }

    /// Checks the values read for [`Self::secret_keys`]: Err when one it needs
    /// was looked for and is not there. An unknown one is not an error.
    fn check_secrets(&self, secrets: &Secrets) -> Result<(), String> {
        for (name, key) in self.secret_keys() {
            if let Some(None) = secrets.get(&(name.clone(), key.clone())) {
                return Err(format!("Secret {name:?} has no key {key:?}"));
            }
        }
        Ok(())
    }

    /// Checks what can be checked before measuring (its own durations): Err
    /// says what is wrong, for InvalidSpec.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// Its `timeout` field as written, if it has one (`run::timeout` parses it).
    fn timeout(&self) -> Option<&str> {
        None
    }

    /// Takes one measurement. Err is an API failure, retried with the
    /// reconcile; a provider that got no value says so with [`Outcome::Error`].
    fn measure<'a>(&'a self, env: &'a Env<'a>) -> BoxFuture<'a, Result<Outcome, kube::Error>>;

    /// Reads back a measurement [`Self::measure`] started ([`Outcome::Started`]).
    fn read_back<'a>(&'a self, _env: &'a Env<'a>, handle: &'a str) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        // The metric changed provider while a measurement was in flight.
        let shown = format!("{handle} was started by a provider this metric no longer has");
        Box::pin(async move { Ok(Outcome::Judged(MeasurementPhase::Error, shown)) })
    }
}

/// What a provider measures with.
pub struct Env<'a> {
    pub http: &'a reqwest::Client,
    pub kube: &'a kube::Client,
    /// The Release analysed: the owner, namespace and labels of what a
    /// provider creates.
    pub release: &'a Release,
    /// Names the measurement among the Release's: the metric, prefixed by the
    /// analysis it belongs to (`step2-smoke`).
    pub key: &'a str,
    /// The measurement's number: 1 for the metric's first.
    pub number: i32,
    /// The provider call's timeout, parsed.
    pub timeout: Duration,
    /// The values of its [`Provider::secret_keys`].
    pub secrets: &'a SecretValues,
    pub now: Timestamp,
    /// What a comparison (the judge) compares.
    pub compared: &'a Compared,
    /// Set for a lifecycle hook's measurement.
    pub hook: Option<HookRun<'a>>,
}

/// A lifecycle hook's measurement: its Jobs are named by the revision, kept
/// once finished (read back again after a restart, they must not run twice),
/// and replaced only by another attempt's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookRun<'a> {
    pub kind: api::HookKind,
    pub revision: &'a str,
    /// The hook's start, in Unix seconds: a retry starts a new attempt.
    pub attempt: i64,
}

/// The two sides of a comparison: the canary (the current template's
/// revision) and the stable revision, or the baseline pods that stand for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// When the analysis started: where the comparison's window opens.
    pub since: Timestamp,
    pub canary_revision: String,
    pub stable_revision: String,
    /// Baseline pods (`serin.dev/role: baseline`) run for this analysis.
    pub baseline_pods: bool,
}

/// What a measurement came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A value for the metric's conditions to judge (`condition::judge`).
    Value(serde_json::Value),
    /// No value: an Error measurement with this message.
    Error(ProviderError),
    /// Judged by the provider itself (a Job completes or fails): the phase and
    /// the text shown as the measurement's value.
    Judged(MeasurementPhase, String),
    /// Started, to be read back on later rounds ([`Provider::read_back`]) by
    /// this name, kept in the metric's status (`job`).
    Started(String),
    /// Still running: nothing to record yet.
    Running,
    /// A value for the metric's conditions, shown as `shown`; without
    /// conditions the provider's own `phase` (the judge's verdict) stands.
    Scored {
        value: serde_json::Value,
        shown: String,
        phase: MeasurementPhase,
        /// What the metric's status keeps of it.
        result: Box<api::JudgeResult>,
    },
}

impl From<Result<serde_json::Value, ProviderError>> for Outcome {
    fn from(result: Result<serde_json::Value, ProviderError>) -> Self {
        match result {
            Ok(value) => Outcome::Value(value),
            Err(error) => Outcome::Error(error),
        }
    }
}

/// The values found for a provider's [`Provider::secret_keys`]; unknown and
/// missing ones are left out. Debug shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<SecretKey, String>);

impl SecretValues {
    /// The values of `keys` found in `secrets`.
    pub fn of(keys: &[SecretKey], secrets: &Secrets) -> Self {
        let found = keys
            .iter()
            .filter_map(|k| Some((k.clone(), secrets.get(k)?.clone()?)))
            .collect();
        SecretValues(found)
    }

    pub fn get(&self, name: &str, key: &str) -> Option<&str> {
        self.0.get(&(name.to_string(), key.to_string())).map(String::as_str)
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// An [`Env`] for provider tests: a Release "web" in "ns", and a kube client
/// for an API server that is not there (HTTP providers never call it).
#[cfg(test)]
pub(super) mod test_env {
    use super::{Env, SecretValues};
    use crate::api::Release;

    pub struct TestEnv {
        pub http: reqwest::Client,
        pub kube: kube::Client,
        pub release: Release,
        pub secrets: SecretValues,
        pub compared: super::Compared,
    }

    impl TestEnv {
        /// Needs a tokio runtime (the kube client starts its buffer task).
        pub fn new(secrets: SecretValues) -> Self {
            let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
            let release = serde_json::from_value(serde_json::json!({
                "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
                "metadata": { "name": "web", "namespace": "ns", "uid": "u1" },
                "spec": {
                    "selector": { "matchLabels": { "app": "web" } },
                    "template": { "metadata": { "labels": { "app": "web" } },
                                  "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                    "strategy": { "rolling": {} }
                }
            }))
            .unwrap();
            TestEnv {
                // No proxy from the environment: test servers are local.
                http: reqwest::Client::builder().no_proxy().build().unwrap(),
                kube: kube::Client::try_from(config).unwrap(),
                release,
                secrets,
                compared: super::Compared::default(),
            }
        }

        pub fn env(&self) -> Env<'_> {
            Env {
                http: &self.http,
                kube: &self.kube,
                release: &self.release,
                key: "m",
                number: 1,
                timeout: std::time::Duration::from_secs(5),
                secrets: &self.secrets,
                now: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                compared: &self.compared,
                hook: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analysis::provider as pick;

    fn spec(provider: serde_json::Value) -> api::Provider {
        serde_json::from_value(provider).unwrap()
    }

    #[test]
    fn the_provider_set_is_the_one_picked() {
        let cases = [
            (
                json!({ "prometheus": { "address": "http://p", "query": "up", "timeout": "3s" } }),
                Some("prometheus"),
                Some("3s"),
            ),
            (
                json!({ "web": { "url": "http://w", "timeout": "2s" } }),
                Some("web"),
                Some("2s"),
            ),
            (json!({ "job": { "spec": { "template": {} } } }), Some("job"), None),
            (json!({}), None, None),
        ];
        for (provider, name, timeout) in cases {
            let spec = spec(provider.clone());
            let picked = pick(&spec);
            assert_eq!(picked.map(|p| p.name()), name, "{provider}");
            assert_eq!(picked.and_then(|p| p.timeout()), timeout, "{provider}");
        }
    }

    #[test]
    fn secret_values_are_only_those_found_and_never_shown() {
        let keys = vec![("s".to_string(), "a".to_string()), ("s".to_string(), "b".to_string())];
        let secrets = Secrets::from([
            (keys[0].clone(), Some("v4lue".to_string())),
            (keys[1].clone(), None),
            (("other".into(), "k".into()), Some("not-declared".into())),
        ]);
        let values = SecretValues::of(&keys, &secrets);
        assert_eq!(values.get("s", "a"), Some("v4lue"));
        assert_eq!(values.get("s", "b"), None);
        assert_eq!(values.get("other", "k"), None);
        let shown = format!("{values:?}");
        assert!(shown.contains("\"a\"") && !shown.contains("v4lue"), "{shown}");
    }
}
