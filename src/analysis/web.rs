//! The web provider: one HTTP request whose JSON response (or a value in it) is
//! the measurement. Also holds the HTTP helpers the Prometheus provider shares.
use std::collections::BTreeSet;
use std::error::Error as _;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::ProviderError;
use super::provider::{Env, Outcome, Provider};
use super::template::{self, Args};
use crate::api::{self, Header, WebProvider};

impl Provider for WebProvider {
    fn name(&self) -> &'static str {
        "web"
    }

    fn render(&self, args: &Args, _hidden: &BTreeSet<String>) -> Result<api::Provider, String> {
        let mut w = self.clone();
        w.url = template::url(&w.url, args)?;
        for h in &mut w.headers {
            h.value = template::header_value(&h.value, args)?;
        }
        if let Some(body) = &w.body {
            // A JSON body keeps each value inside its string; any other body is text.
            w.body = Some(match serde_json::from_str::<Value>(body) {
                Ok(json) => template::json_tree(&json, args)?.to_string(),
                Err(_) => template::text(body, args)?,
            });
        }
        Ok(api::Provider {
            web: Some(w),
            ..Default::default()
        })
    }

    fn timeout(&self) -> Option<&str> {
        self.timeout.as_deref()
    }

    fn measure<'a>(&'a self, env: &'a Env<'a>) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(async move {
            let method = self.method.as_deref().unwrap_or("GET");
            let headers = headers(&self.headers);
            let body = self.body.as_deref();
            let json_path = self.json_path.as_deref();
            let result = request(env.http, method, &self.url, &headers, body, json_path, env.timeout).await;
            Ok(result.into())
        })
    }
}

/// A metric's headers as name and value pairs.
pub(super) fn headers(list: &[Header]) -> Vec<(String, String)> {
    list.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// Metric responses are small; the cap keeps a misbehaving endpoint from
/// exhausting the controller's memory.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Sends one HTTP request (method GET/POST/PUT, default GET), with headers and an
/// optional body, within `timeout` (connecting, sending and reading the whole body).
/// A body without a Content-Type header is sent as `application/json`.
///
/// Non-2xx → Err naming the status. The response body is parsed as JSON (if it is
/// not JSON, a bare number text becomes a number, NaN/Inf null, anything else an
/// Err). With `json_path` (e.g. `$.data.errorRate`, `$.items[0].value`), returns
/// the value at that path: no match → null (no data), several matches → array.
/// Errors never include header values, the URL's query or its userinfo.
pub async fn request(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    json_path: Option<&str>,
    timeout: Duration,
) -> Result<Value, ProviderError> {
    let method = match method.to_ascii_uppercase().as_str() {
        "" | "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        other => {
            return Err(ProviderError(format!(
                "unsupported method {other:?}: use GET, POST or PUT"
            )));
        }
    };
    // Parsed before the request so a bad path fails without touching the endpoint.
    let path = json_path
        .map(|p| JsonPath::parse(p).map_err(|e| ProviderError(format!("invalid jsonPath {p:?}: {e}"))))
        .transpose()?;
    let parsed = Url::parse(url).map_err(|e| ProviderError(format!("invalid URL: {e}")))?;
    let target = format!("{method} {}", describe_url(&parsed));

    let mut headers = header_map(headers)?;
    let mut builder = http.request(method, parsed);
    if let Some(body) = body {
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        builder = builder.body(body.to_owned());
    }
    let (status, bytes) = send(builder.headers(headers), timeout, &target).await?;
    if !status.is_success() {
        // The body is left out: an endpoint may echo the request's headers.
        return Err(ProviderError(format!("{target}: HTTP {status}")));
    }
    let value = parse_body(&bytes).map_err(|e| ProviderError(format!("{target}: {e}")))?;
    Ok(match path {
        None => value,
        Some(path) => {
            let mut found = path.query(&value).all();
            match found.len() {
                0 => Value::Null,
                1 => found.remove(0).clone(),
                _ => Value::Array(found.into_iter().cloned().collect()),
            }
        }
    })
}

/// JSON, else a bare number (NaN and infinities become null, as JSON has none).
fn parse_body(bytes: &[u8]) -> Result<Value, String> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .map(number)
        .ok_or_else(|| "response is neither JSON nor a number".to_owned())
}

/// A float as JSON: NaN and infinities become null, which the judge reads as no data.
pub(super) fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Builds request headers; values are marked sensitive so nothing downstream
/// prints them, and a bad one is reported by name only.
pub(super) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, ProviderError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ProviderError(format!("invalid header name {name:?}")))?;
        let mut value =
            HeaderValue::from_str(value).map_err(|_| ProviderError(format!("invalid value for header {name:?}")))?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

/// The URL as shown in errors: no userinfo and no query, where secrets such as
/// API keys may have been templated in.
pub(super) fn describe_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot carry credentials, which is fine.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Sends the request and reads the whole body, all within `timeout`.
/// `target` names the request in errors.
pub(super) async fn send(
    builder: reqwest::RequestBuilder,
    timeout: Duration,
    target: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>), ProviderError> {
    let fail = |e: reqwest::Error| ProviderError(format!("{target}: {}", describe_error(&e)));
    let exchange = async {
        let mut response = builder.send().await.map_err(fail)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ProviderError(format!(
                    "{target}: response is larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(ProviderError(format!("{target}: timed out after {timeout:?}"))))
}

/// What went wrong, from the innermost cause: reqwest's own message names the
/// full URL, which may hold secrets; the causes below it (IO, TLS, HTTP) do not.
fn describe_error(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "cannot read the response"
    } else {
        "request failed"
    };
    let mut cause = error.source();
    let mut innermost = None;
    while let Some(e) = cause {
        innermost = Some(e);
        cause = e.source();
    }
    match innermost {
        Some(e) => format!("{what}: {e}"),
        None => what.to_owned(),
    }
}

/// A tiny HTTP/1.1 server with canned answers (one per connection), for the
/// provider tests.
#[cfg(test)]
pub(super) mod test_server {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// A request as the server received it; header names are lowercase.
    #[derive(Debug)]
    pub struct Received {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Received {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// What the server does with each request.
    #[derive(Clone)]
    pub enum Answer {
        Respond {
            status: u16,
            body: String,
        },
        /// Reads the request, then holds the connection open without answering.
        Hang,
    }

    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer::Respond {
            status,
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Answer {
        Answer::Respond {
            status,
            body: body.to_owned(),
        }
    }

    /// Serves `answer` to every connection; returns the base URL and the requests.
    pub async fn serve(answer: Answer) -> (String, mpsc::UnboundedReceiver<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, answer.clone(), tx.clone()));
            }
        });
        (base, rx)
    }

    /// A base URL on which nothing listens.
    pub async fn refused() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        base
    }

    async fn handle(mut stream: TcpStream, answer: Answer, tx: mpsc::UnboundedSender<Received>) {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap().split(' ');
        let (method, target) = (request_line.next().unwrap(), request_line.next().unwrap());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8(buf[head_end..head_end + length].to_vec()).unwrap();
        let _ = tx.send(Received {
            method: method.into(),
            target: target.into(),
            headers,
            body,
        });
        match answer {
            Answer::Respond { status, body } => {
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            Answer::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{Answer, json, refused, serve, text};
    use super::*;
    use serde_json::json;

    const T: Duration = Duration::from_secs(5);

    fn client() -> reqwest::Client {
        // No proxy from the environment: the test server is local.
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn json_path_picks_a_value() {
        let (base, _) = serve(json(200, json!({"data": {"errorRate": 0.02}, "items": [{"value": 7}]}))).await;
        let url = format!("{base}/metrics");
        let got = request(&client(), "GET", &url, &[], None, Some("$.data.errorRate"), T).await;
        assert_eq!(got, Ok(json!(0.02)));
        let got = request(&client(), "GET", &url, &[], None, Some("$.items[0].value"), T).await;
        assert_eq!(got, Ok(json!(7)));
    }

    #[tokio::test]
    async fn json_path_without_match_is_null_and_several_matches_an_array() {
        let (base, _) = serve(json(200, json!({"items": [{"v": 1}, {"v": 2}]}))).await;
        let got = request(&client(), "GET", &base, &[], None, Some("$.missing"), T).await;
        assert_eq!(got, Ok(Value::Null));
        let got = request(&client(), "GET", &base, &[], None, Some("$.items[*].v"), T).await;
        assert_eq!(got, Ok(json!([1, 2])));
    }

    #[tokio::test]
    async fn without_json_path_the_whole_response_is_the_result() {
        let (base, _) = serve(json(200, json!({"ok": true}))).await;
        assert_eq!(
            request(&client(), "", &base, &[], None, None, T).await,
            Ok(json!({"ok": true}))
        );
    }

    #[tokio::test]
    async fn invalid_json_path_is_an_error() {
        let got = request(&client(), "GET", "http://127.0.0.1:1", &[], None, Some("data[["), T).await;
        assert!(got.unwrap_err().0.contains("invalid jsonPath"));
    }

    #[tokio::test]
    async fn plain_number_body_is_a_number() {
        let (base, _) = serve(text(200, " +0.5\n")).await;
        assert_eq!(
            request(&client(), "GET", &base, &[], None, None, T).await,
            Ok(json!(0.5))
        );
        let (base, _) = serve(text(200, "NaN")).await;
        assert_eq!(
            request(&client(), "GET", &base, &[], None, None, T).await,
            Ok(Value::Null)
        );
    }

    #[tokio::test]
    async fn other_text_body_is_an_error() {
        let (base, _) = serve(text(200, "<html>ok</html>")).await;
        let err = request(&client(), "GET", &base, &[], None, None, T).await.unwrap_err();
        assert!(err.0.contains("neither JSON nor a number"), "{err}");
    }

    #[tokio::test]
    async fn non_2xx_names_the_status_and_not_the_headers_or_query() {
        let (base, _) = serve(text(503, "X-Api-Key: k3y-v4lue")).await;
        let url = format!("{base}/rate?api_key=q-s3cret");
        let hs = headers(&[("X-Api-Key", "k3y-v4lue")]);
        let err = request(&client(), "GET", &url, &hs, None, None, T).await.unwrap_err();
        assert!(err.0.contains("503"), "{err}");
        assert!(err.0.contains("/rate"), "{err}");
        assert!(!err.0.contains("k3y-v4lue") && !err.0.contains("q-s3cret"), "{err}");
    }

    #[tokio::test]
    async fn post_sends_body_and_headers() {
        let (base, mut requests) = serve(json(200, json!(1))).await;
        let hs = headers(&[("X-Api-Key", "k3y"), ("X-Other", "a b")]);
        let got = request(
            &client(),
            "post",
            &format!("{base}/q"),
            &hs,
            Some(r#"{"q":"rate"}"#),
            None,
            T,
        )
        .await;
        assert_eq!(got, Ok(json!(1)));
        let received = requests.recv().await.unwrap();
        assert_eq!((received.method.as_str(), received.target.as_str()), ("POST", "/q"));
        assert_eq!(received.body, r#"{"q":"rate"}"#);
        assert_eq!(received.header("x-api-key"), Some("k3y"));
        assert_eq!(received.header("x-other"), Some("a b"));
        assert_eq!(received.header("content-type"), Some("application/json"));
    }

    #[tokio::test]
    async fn put_keeps_a_given_content_type() {
        let (base, mut requests) = serve(json(200, json!(1))).await;
        let hs = headers(&[("Content-Type", "text/plain")]);
        request(&client(), "PUT", &base, &hs, Some("x"), None, T).await.unwrap();
        let received = requests.recv().await.unwrap();
        assert_eq!(received.method, "PUT");
        assert_eq!(received.header("content-type"), Some("text/plain"));
    }

    #[tokio::test]
    async fn unsupported_method_and_bad_header_are_errors_without_values() {
        let err = request(&client(), "DELETE", "http://127.0.0.1:1", &[], None, None, T)
            .await
            .unwrap_err();
        assert!(err.0.contains("unsupported method"), "{err}");
        let hs = headers(&[("X-Key", "bad\nv4lue")]);
        let err = request(&client(), "GET", "http://127.0.0.1:1", &hs, None, None, T)
            .await
            .unwrap_err();
        assert!(err.0.contains("X-Key") && !err.0.contains("v4lue"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (base, _) = serve(Answer::Hang).await;
        let err = request(&client(), "GET", &base, &[], None, None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.0.contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let base = refused().await;
        let err = request(&client(), "GET", &base, &[], None, None, T).await.unwrap_err();
        assert!(err.0.contains("cannot connect"), "{err}");
    }

    #[test]
    fn describe_url_drops_userinfo_and_query() {
        let url = Url::parse("https://u:p4ss@example.com:8443/a/b?key=s3cret#f").unwrap();
        assert_eq!(describe_url(&url), "https://example.com:8443/a/b");
    }
}
