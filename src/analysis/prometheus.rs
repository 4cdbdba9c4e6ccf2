//! The Prometheus provider: an instant query whose samples are the measurement.
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::ProviderError;
use super::provider::{Env, Outcome, Provider, SecretKey, SecretValues, Secrets};
use super::template::{self, Args};
use super::web::{describe_url, header_map, headers, number, send};
use crate::api::{self, Authentication, PrometheusProvider};

impl Provider for PrometheusProvider {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn render(&self, args: &Args, hidden: &BTreeSet<String>) -> Result<api::Provider, String> {
        let mut p = self.clone();
        p.address = template::url(&p.address, args)?;
        p.query = template::promql(&p.query, args, hidden)?;
        for h in &mut p.headers {
            h.value = template::header_value(&h.value, args)?;
        }
        Ok(api::Provider {
            prometheus: Some(p),
            ..Default::default()
        })
    }

    fn secret_keys(&self) -> Vec<SecretKey> {
        auth_secret_keys(self.authentication.as_ref())
    }

    fn check_secrets(&self, secrets: &Secrets) -> Result<(), String> {
        check_auth_secrets(self.authentication.as_ref(), secrets)
    }

    fn timeout(&self) -> Option<&str> {
        self.timeout.as_deref()
    }

    fn measure<'a>(&'a self, env: &'a Env<'a>) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(async move {
            let credentials = credentials(self.authentication.as_ref(), env.secrets);
            let headers = headers(&self.headers);
            let result = query(
                env.http,
                &self.address,
                &self.query,
                env.timeout,
                &headers,
                &credentials,
            )
            .await;
            Ok(result.into())
        })
    }
}

/// The Secret keys `auth` reads: a bearer token, or basic auth's username and password.
pub fn auth_secret_keys(auth: Option<&Authentication>) -> Vec<SecretKey> {
    let mut keys = Vec::new();
    let Some(auth) = auth else { return keys };
    if let Some(r) = &auth.bearer_token {
        keys.push((r.name.clone(), r.key.clone()));
    }
    if let Some(name) = &auth.basic_auth_secret {
        keys.push((name.clone(), "username".into()));
        keys.push((name.clone(), "password".into()));
    }
    keys
}

/// Err when a key `auth` needs was looked for and is not there.
pub fn check_auth_secrets(auth: Option<&Authentication>, secrets: &Secrets) -> Result<(), String> {
    let Some(auth) = auth else {
        return Ok(());
    };
    let lookup = |name: &str, key: &str| secrets.get(&(name.to_string(), key.to_string()));
    if let Some(r) = &auth.bearer_token
        && let Some(None) = lookup(&r.name, &r.key)
    {
        return Err(format!("Secret {:?} has no key {:?}", r.name, r.key));
    }
    if let Some(name) = &auth.basic_auth_secret {
        match (lookup(name, "username"), lookup(name, "password")) {
            (Some(Some(_)), Some(Some(_))) | (None, _) | (_, None) => {}
            _ => return Err(format!("Secret {name:?} needs keys \"username\" and \"password\"")),
        }
    }
    Ok(())
}

/// `auth`, with the values read from its Secrets.
pub fn credentials(auth: Option<&Authentication>, secrets: &SecretValues) -> Credentials {
    let Some(auth) = auth else {
        return Credentials::default();
    };
    let bearer_token = auth.bearer_token.as_ref().and_then(|r| secrets.get(&r.name, &r.key));
    let basic = auth.basic_auth_secret.as_ref().and_then(|name| {
        let user = secrets.get(name, "username")?;
        Some((user.to_owned(), secrets.get(name, "password")?.to_owned()))
    });
    Credentials {
        bearer_token: bearer_token.map(str::to_owned),
        basic,
    }
}

/// Prometheus's error text can quote much of the query; keep messages short.
const MAX_ERROR_CHARS: usize = 300;

/// The credentials a query is sent with. Debug shows only which are set.
#[derive(Clone, Default)]
pub struct Credentials {
    pub bearer_token: Option<String>,
    /// Username and password.
    pub basic: Option<(String, String)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("basic", &self.basic.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Runs an instant query: GET {address}/api/v1/query?query=..., with `timeout`
/// applied to the whole request, including reading the response.
///
/// Returns a scalar as a number and a vector as an array of numbers (one per
/// sample, in response order); NaN and ±Inf become null, which the judge reads as
/// no data. String and matrix results, non-2xx answers, a status other than
/// "success", timeouts and connection errors are Err, with a short message that
/// names the address (without userinfo) and never a header value or credential.
pub async fn query(
    http: &reqwest::Client,
    address: &str,
    query: &str,
    timeout: Duration,
    headers: &[(String, String)],
    credentials: &Credentials,
) -> Result<Value, ProviderError> {
    let server = Server {
        http,
        address,
        timeout,
        headers,
        credentials,
    };
    let (target, data) = server.call("query", &[("query", query.to_string())]).await?;
    result(&data).map_err(|e| ProviderError(format!("{target}: {e}")))
}

/// A Prometheus server and how to reach it.
pub struct Server<'a> {
    pub http: &'a reqwest::Client,
    pub address: &'a str,
    pub timeout: Duration,
    pub headers: &'a [(String, String)],
    pub credentials: &'a Credentials,
}

/// One series of a range query: (Unix seconds, value) pairs, NaN kept as NaN.
pub type Series = Vec<(f64, f64)>;

impl Server<'_> {
    /// Runs a range query: GET {address}/api/v1/query_range, every `step` from
    /// `start` to `end` (Unix seconds). Its series, in response order; errors
    /// as [`query`]'s.
    pub async fn query_range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Vec<Series>, ProviderError> {
        let params = [
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        let (target, data) = self.call("query_range", &params).await?;
        matrix(&data).map_err(|e| ProviderError(format!("{target}: {e}")))
    }

    /// GET {address}/api/v1/{path}?params: the answer's data, with the
    /// target's description for messages.
    async fn call(&self, path: &str, params: &[(&str, String)]) -> Result<(String, Data), ProviderError> {
        let base = Url::parse(self.address).map_err(|e| ProviderError(format!("invalid Prometheus address: {e}")))?;
        let target = format!("prometheus at {}", describe_url(&base));
        // Joined as text so a path prefix (a Prometheus behind a proxy) is kept.
        let mut url = Url::parse(&format!("{}/api/v1/{path}", base.as_str().trim_end_matches('/')))
            .map_err(|e| ProviderError(format!("invalid Prometheus address: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));

        let mut builder = self.http.get(url).headers(header_map(self.headers)?);
        builder = match self.credentials {
            Credentials {
                bearer_token: Some(_),
                basic: Some(_),
            } => {
                return Err(ProviderError("set a bearer token or basic auth, not both".into()));
            }
            // Both helpers mark the Authorization header sensitive.
            Credentials {
                bearer_token: Some(token),
                ..
            } => builder.bearer_auth(token),
            Credentials {
                basic: Some((user, password)),
                ..
            } => builder.basic_auth(user, Some(password)),
            Credentials { .. } => builder,
        };

        let (status, body) = send(builder, self.timeout, &target).await?;
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let detail = answer.map(|a| format!(": {}", a.error_text())).unwrap_or_default();
            return Err(ProviderError(format!("{target}: HTTP {status}{detail}")));
        }
        let answer = answer.ok_or_else(|| ProviderError(format!("{target}: the answer is not Prometheus API JSON")))?;
        if answer.status != "success" {
            return Err(ProviderError(format!(
                "{target}: query failed: {}",
                answer.error_text()
            )));
        }
        let data = answer
            .data
            .ok_or_else(|| ProviderError(format!("{target}: the answer has no data")))?;
        Ok((target, data))
    }
}

/// A matrix is a list of `{metric, values: [[time, "value"], ...]}`.
fn matrix(data: &Data) -> Result<Vec<Series>, String> {
    if data.result_type != "matrix" {
        return Err(format!("a range query answered with a {} result", data.result_type));
    }
    let parse = |pair: &Value| -> Result<(f64, f64), String> {
        let time = pair.get(0).and_then(Value::as_f64).ok_or("a sample has no time")?;
        let value = pair
            .get(1)
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<f64>().ok())
            .ok_or("a sample value is not a number")?;
        Ok((time, value))
    };
    data.result
        .as_array()
        .ok_or("the matrix result is not a list")?
        .iter()
        .map(|series| match series.get("values").and_then(Value::as_array) {
            Some(values) => values.iter().map(parse).collect(),
            None if series.get("histograms").is_some() => Err("native histogram samples are not supported".into()),
            None => Err("a matrix series has no values".into()),
        })
        .collect()
}

/// The fields of the Prometheus HTTP API envelope that matter here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

impl Answer {
    fn error_text(&self) -> String {
        let text = match (&self.error_type, &self.error) {
            (Some(kind), Some(error)) => format!("{kind}: {error}"),
            (None, Some(error)) => error.clone(),
            (Some(kind), None) => kind.clone(),
            (None, None) => format!("status {:?}", self.status),
        };
        if text.chars().count() > MAX_ERROR_CHARS {
            format!("{}…", text.chars().take(MAX_ERROR_CHARS).collect::<String>())
        } else {
            text
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Value,
}

/// A scalar is `[time, "value"]`; a vector is a list of `{metric, value: [time, "value"]}`.
fn result(data: &Data) -> Result<Value, String> {
    match data.result_type.as_str() {
        "scalar" => sample_value(&data.result),
        "vector" => data
            .result
            .as_array()
            .ok_or("the vector result is not a list")?
            .iter()
            .map(|sample| match sample.get("value") {
                Some(value) => sample_value(value),
                None if sample.get("histogram").is_some() => Err("native histogram samples are not supported".into()),
                None => Err("a vector sample has no value".into()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Err(format!(
            "{other} results are not supported: use a query that returns a scalar or vector"
        )),
    }
}

/// Prometheus sends values as strings, so NaN and ±Inf survive JSON ("NaN", "+Inf").
fn sample_value(pair: &Value) -> Result<Value, String> {
    pair.get(1)
        .and_then(Value::as_str)
        .and_then(|text| text.parse::<f64>().ok())
        .map(number)
        .ok_or_else(|| "a sample value is not a number".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::web::test_server::{Answer, json, refused, serve};
    use super::*;
    use serde_json::json;

    const T: Duration = Duration::from_secs(5);

    fn client() -> reqwest::Client {
        // No proxy from the environment: the test server is local.
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn success(result_type: &str, result: Value) -> Answer {
        json(
            200,
            json!({"status": "success", "data": {"resultType": result_type, "result": result}}),
        )
    }

    fn vector(values: &[&str]) -> Answer {
        let samples: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"metric": {"pod": format!("p{i}")}, "value": [1700000000.123, v]}))
            .collect();
        success("vector", Value::Array(samples))
    }

    async fn run(base: &str, credentials: &Credentials) -> Result<Value, ProviderError> {
        query(&client(), base, "sum(rate(x[1m]))", T, &[], credentials).await
    }

    #[tokio::test]
    async fn scalar_is_a_number_and_the_query_is_encoded() {
        let (base, mut requests) = serve(success("scalar", json!([1700000000.5, "0.25"]))).await;
        assert_eq!(run(&base, &Credentials::default()).await, Ok(json!(0.25)));
        let received = requests.recv().await.unwrap();
        assert_eq!(received.method, "GET");
        assert_eq!(received.target, "/api/v1/query?query=sum%28rate%28x%5B1m%5D%29%29");
        assert_eq!(received.header("authorization"), None);
    }

    #[tokio::test]
    async fn vector_is_a_list_in_response_order() {
        let (base, _) = serve(vector(&["3", "1.5", "2"])).await;
        assert_eq!(run(&base, &Credentials::default()).await, Ok(json!([3.0, 1.5, 2.0])));
    }

    #[tokio::test]
    async fn empty_vector_is_an_empty_list() {
        let (base, _) = serve(vector(&[])).await;
        assert_eq!(run(&base, &Credentials::default()).await, Ok(json!([])));
    }

    #[tokio::test]
    async fn nan_and_infinities_are_null() {
        let (base, _) = serve(vector(&["NaN", "+Inf", "-Inf", "1"])).await;
        assert_eq!(
            run(&base, &Credentials::default()).await,
            Ok(json!([null, null, null, 1.0]))
        );
        let (base, _) = serve(success("scalar", json!([1.0, "NaN"]))).await;
        assert_eq!(run(&base, &Credentials::default()).await, Ok(Value::Null));
    }

    #[tokio::test]
    async fn matrix_and_string_results_are_errors() {
        let (base, _) = serve(success("matrix", json!([{"metric": {}, "values": [[1, "1"]]}]))).await;
        let err = run(&base, &Credentials::default()).await.unwrap_err();
        assert!(err.0.contains("matrix results are not supported"), "{err}");
        let (base, _) = serve(success("string", json!([1, "hello"]))).await;
        assert!(run(&base, &Credentials::default()).await.is_err());
    }

    #[tokio::test]
    async fn prometheus_error_is_reported_with_its_text() {
        let body = json!({"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected"});
        let (base, _) = serve(json(400, body.clone())).await;
        let err = run(&base, &Credentials::default()).await.unwrap_err();
        assert!(
            err.0.contains("HTTP 400") && err.0.contains("bad_data: 1:5: parse error"),
            "{err}"
        );
        // Some proxies answer 200 with the error envelope.
        let (base, _) = serve(json(200, body)).await;
        let err = run(&base, &Credentials::default()).await.unwrap_err();
        assert!(err.0.contains("query failed: bad_data"), "{err}");
    }

    #[tokio::test]
    async fn http_500_is_an_error() {
        let (base, _) = serve(super::super::web::test_server::text(500, "oops")).await;
        let err = run(&base, &Credentials::default()).await.unwrap_err();
        assert!(err.0.contains("HTTP 500") && err.0.contains(&base), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (base, _) = serve(Answer::Hang).await;
        let credentials = Credentials {
            bearer_token: Some("t0ken".into()),
            basic: None,
        };
        let err = query(&client(), &base, "up", Duration::from_millis(200), &[], &credentials)
            .await
            .unwrap_err();
        assert!(err.0.contains("timed out"), "{err}");
        assert!(!err.0.contains("t0ken"), "{err}");
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let base = refused().await;
        let err = run(&base, &Credentials::default()).await.unwrap_err();
        assert!(err.0.contains("cannot connect") && err.0.contains(&base), "{err}");
    }

    #[tokio::test]
    async fn bearer_token_is_sent_but_never_shown() {
        let (base, mut requests) = serve(json(500, json!({"status": "error", "error": "boom"}))).await;
        let credentials = Credentials {
            bearer_token: Some("s3cret-t0ken".into()),
            basic: None,
        };
        let hs = vec![("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())];
        let err = query(&client(), &base, "up", T, &hs, &credentials).await.unwrap_err();
        let received = requests.recv().await.unwrap();
        assert_eq!(received.header("authorization"), Some("Bearer s3cret-t0ken"));
        assert_eq!(received.header("x-scope-orgid"), Some("tenant-1"));
        assert!(!err.0.contains("s3cret-t0ken") && !err.0.contains("tenant-1"), "{err}");
        let debug = format!("{credentials:?}");
        assert!(
            !debug.contains("s3cret-t0ken") && debug.contains("<redacted>"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn basic_auth_is_sent_but_never_shown() {
        let (base, mut requests) = serve(vector(&["1"])).await;
        let credentials = Credentials {
            bearer_token: None,
            basic: Some(("admin".into(), "pa55word".into())),
        };
        assert_eq!(run(&base, &credentials).await, Ok(json!([1.0])));
        let received = requests.recv().await.unwrap();
        // base64("admin:pa55word")
        assert_eq!(received.header("authorization"), Some("Basic YWRtaW46cGE1NXdvcmQ="));
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("admin") && !debug.contains("pa55word"), "{debug}");
    }

    /// Through the seam: args rendered into the query, the token read from the
    /// Secret values it declared.
    #[tokio::test]
    async fn measures_through_the_seam_with_its_secrets() {
        let (base, mut requests) = serve(vector(&["1"])).await;
        let spec: PrometheusProvider =
            serde_json::from_value(json!({ "address": base, "query": "up{job=\"{{args.job}}\"}",
            "authentication": { "bearerToken": { "name": "prom", "key": "token" } } }))
            .unwrap();
        let args = Args::from([("job".to_string(), "web".to_string())]);
        let rendered = spec.render(&args, &BTreeSet::new()).unwrap().prometheus.unwrap();
        assert_eq!(rendered.query, "up{job=\"web\"}");
        let keys = rendered.secret_keys();
        assert_eq!(keys, [("prom".to_string(), "token".to_string())]);
        let secrets = Secrets::from([(keys[0].clone(), Some("t0ken".to_string()))]);
        assert_eq!(rendered.check_secrets(&secrets), Ok(()));
        let test = super::super::provider::test_env::TestEnv::new(SecretValues::of(&keys, &secrets));
        assert_eq!(
            rendered.measure(&test.env()).await.unwrap(),
            Outcome::Value(json!([1.0]))
        );
        let received = requests.recv().await.unwrap();
        assert_eq!(received.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(received.target, "/api/v1/query?query=up%7Bjob%3D%22web%22%7D");
    }

    #[tokio::test]
    async fn address_userinfo_and_path_prefix() {
        let (base, mut requests) = serve(vector(&["1"])).await;
        let address = format!("{}/prom/", base.replace("http://", "http://u:addr-s3cret@"));
        assert_eq!(run(&address, &Credentials::default()).await, Ok(json!([1.0])));
        assert!(
            requests
                .recv()
                .await
                .unwrap()
                .target
                .starts_with("/prom/api/v1/query?query=")
        );
        let refused = refused().await.replace("http://", "http://u:addr-s3cret@");
        let err = run(&refused, &Credentials::default()).await.unwrap_err();
        assert!(!err.0.contains("addr-s3cret"), "{err}");
    }
}
