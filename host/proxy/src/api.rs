//! configurable-http-proxy's REST API on its own listener: `/api/routes[/{path}]` with CHP's token check, status
//! codes, bodies and path normalisation, so JupyterHub's `ConfigurableHTTPProxy` drives us unchanged.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::path::{percent_decode_strict, remove_dot_segments};
use crate::routes::Route;
use crate::store::RouteError;
use crate::{Proxy, ProxyBody, full_body};

/// Route bodies are a few hundred bytes; anything near this is not a route.
const MAX_BODY_BYTES: usize = 1024 * 1024;

impl Proxy {
    /// Answers one API request.
    pub async fn handle_api<B>(&self, request: Request<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let response = self.route_api(request).await;
        self.shared.metrics.requests_api.get_or_create(&status_label(&response)).inc();
        response
    }

    async fn route_api<B>(&self, request: Request<B>) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let normalised = remove_dot_segments(request.uri().path());
        let Some(rest) = normalised.strip_prefix("/api/routes").filter(|rest| rest.is_empty() || rest.starts_with('/'))
        else {
            return text(StatusCode::NOT_FOUND, "Not Found");
        };
        if !matches!(*request.method(), Method::GET | Method::POST | Method::DELETE) {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method not supported");
        }
        // Authenticate before reading any body: an unauthenticated caller gets nothing parsed.
        if !self.authorized(request.headers().get(header::AUTHORIZATION)) {
            return empty(StatusCode::FORBIDDEN);
        }
        let route_path = match percent_decode_strict(rest) {
            Ok(decoded) => decoded.into_owned(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "Malformed percent escape in route path"),
        };
        match *request.method() {
            Method::GET if route_path.is_empty() || route_path == "/" => self.list_routes(request.uri().query()),
            Method::GET => self.get_route(&route_path),
            Method::POST => {
                let body = match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"),
                };
                self.post_route(if route_path.is_empty() { "/" } else { &route_path }, &body).await
            }
            _ => self.delete_route(if route_path.is_empty() { "/" } else { &route_path }).await,
        }
    }

    /// CHP's check: `token <value>` found anywhere in the header (its regex is unanchored), compared to the
    /// configured token in constant time. No configured token means an open API, as in CHP.
    fn authorized(&self, header_value: Option<&http::HeaderValue>) -> bool {
        let Some(expected) = &self.shared.config.auth_token else { return true };
        let presented = header_value.and_then(|value| value.to_str().ok()).and_then(token_from_authorization);
        presented.is_some_and(|presented| constant_time_eq(presented.as_bytes(), expected.as_bytes()))
    }

    fn list_routes(&self, query: Option<&str>) -> Response<ProxyBody> {
        let inactive_param = query_param(query, "inactiveSince").or_else(|| query_param(query, "inactive_since"));
        let inactive_since = match inactive_param.as_deref() {
            None | Some("") => None,
            Some(value) => match parse_js_date(value) {
                Some(timestamp) => Some(timestamp),
                None => {
                    return text(StatusCode::BAD_REQUEST, &format!("Invalid datestamp '{value}' must be ISO8601."));
                }
            },
        };
        // Written straight into one buffer: with 10,000 routes this is a 1.4 MB reply, and building a JSON tree
        // first would double both the time and the peak memory.
        let mut out = Vec::with_capacity(64 + self.shared.store.table().len() * 160);
        out.push(b'{');
        let mut first = true;
        for route in self.shared.store.table().snapshot() {
            if inactive_since.is_some_and(|since| route.last_activity_ms() >= since) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, route.key()).expect("writing to a Vec cannot fail");
            out.push(b':');
            write_route_json(&mut out, &route);
        }
        out.push(b'}');
        self.shared.metrics.api_route_get.inc();
        json_bytes(StatusCode::OK, out)
    }

    fn get_route(&self, path: &str) -> Response<ProxyBody> {
        match self.shared.store.table().get(path) {
            Some(route) => {
                let mut out = Vec::new();
                write_route_json(&mut out, &route);
                json_bytes(StatusCode::OK, out)
            }
            None => empty(StatusCode::NOT_FOUND),
        }
    }

    async fn post_route(&self, path: &str, body: &[u8]) -> Response<ProxyBody> {
        let data = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(data)) => data,
            // CHP treats a JSON value that is not an object as "no target given".
            Ok(_) => return text(StatusCode::BAD_REQUEST, &RouteError::MissingTarget.to_string()),
            Err(error) => return text(StatusCode::BAD_REQUEST, &format!("Body not valid JSON: {error}")),
        };
        match self.shared.store.add(path, data).await {
            Ok(route) => {
                tracing::info!(route = route.key(), target = route.target().as_str(), "route added");
                self.shared.metrics.api_route_add.inc();
                self.shared.metrics.routes.set(self.shared.store.table().len() as i64);
                empty(StatusCode::CREATED)
            }
            Err(error @ (RouteError::MissingTarget | RouteError::Target(_))) => {
                tracing::warn!(route = path, %error, "rejected route");
                text(StatusCode::BAD_REQUEST, &error.to_string())
            }
            Err(error) => {
                tracing::error!(route = path, %error, "route not saved");
                text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
            }
        }
    }

    async fn delete_route(&self, path: &str) -> Response<ProxyBody> {
        self.shared.metrics.api_route_delete.inc();
        match self.shared.store.remove(path).await {
            Ok(Some(route)) => {
                tracing::info!(route = route.key(), "route removed");
                self.shared.metrics.routes.set(self.shared.store.table().len() as i64);
                empty(StatusCode::NO_CONTENT)
            }
            Ok(None) => empty(StatusCode::NOT_FOUND),
            Err(error) => {
                tracing::error!(route = path, %error, "route removal not saved");
                text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
            }
        }
    }
}

/// A route as CHP returns it: its data verbatim plus `last_activity` as ISO-8601 UTC with milliseconds.
fn write_route_json(out: &mut Vec<u8>, route: &Route) {
    serde_json::to_writer(&mut *out, route.data()).expect("writing to a Vec cannot fail");
    // Reopen the object just written to add `last_activity` without copying the data.
    out.pop();
    if !route.data().is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"last_activity\":\"");
    out.extend_from_slice(format_timestamp(route.last_activity_ms()).as_bytes());
    out.extend_from_slice(b"\"}");
}

pub(crate) fn format_timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accepts what JavaScript's `Date.parse` accepts in ISO-8601 form. A date-time without an offset is read as UTC
/// (JavaScript would use the local zone; proxies run in UTC).
fn parse_js_date(value: &str) -> Option<i64> {
    if let Ok(timestamp) = DateTime::parse_from_rfc3339(value) {
        return Some(timestamp.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d"))
        .or_else(|_| NaiveDate::parse_from_str(&format!("{value}-01-01"), "%Y-%m-%d"))
        .ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// The first `token <value>` in an Authorization header, as CHP's `/token\s+(\S+)/` finds it.
fn token_from_authorization(header_value: &str) -> Option<&str> {
    let mut search_from = 0;
    while let Some(offset) = header_value[search_from..].find("token") {
        let after = search_from + offset + "token".len();
        let rest = &header_value[after..];
        let value = rest.trim_start();
        if value.len() < rest.len() {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            if end > 0 {
                return Some(&value[..end]);
            }
        }
        search_from = after;
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (tokens have a fixed format); the content is compared without early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One query parameter, decoded as `URLSearchParams` does.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let decode =
        |part: &str| percent_encoding::percent_decode_str(&part.replace('+', " ")).decode_utf8_lossy().into_owned();
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

fn status_label(response: &Response<ProxyBody>) -> crate::metrics::StatusLabel {
    crate::metrics::StatusLabel { status: response.status().as_u16() }
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A plain message with no content type, as CHP's failures look.
fn text(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Target;
    use serde_json::Map;

    #[test]
    fn routes_are_written_as_chp_returns_them() {
        let target = Target::parse("http://h:1").unwrap();
        let data = serde_json::json!({"target": "http://h:1", "user": "a\"b"}).as_object().unwrap().clone();
        let mut out = Vec::new();
        write_route_json(&mut out, &Route::new("/user/a".into(), target.clone(), data, 1500));
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        let expected = r#"{"target":"http://h:1","user":"a\"b","last_activity":"1970-01-01T00:00:01.500Z"}"#;
        assert_eq!(parsed, serde_json::from_str::<Value>(expected).unwrap());
        let mut out = Vec::new();
        write_route_json(&mut out, &Route::new("/".into(), target, Map::new(), 0));
        assert_eq!(out, br#"{"last_activity":"1970-01-01T00:00:00.000Z"}"#);
    }

    #[test]
    fn tokens_are_found_like_chp() {
        assert_eq!(token_from_authorization("token abc"), Some("abc"));
        assert_eq!(token_from_authorization("xtoken  abc def"), Some("abc"));
        assert_eq!(token_from_authorization("Bearer abc"), None);
        assert_eq!(token_from_authorization("token"), None);
        assert_eq!(token_from_authorization("tokenabc token z"), Some("z"));
    }

    #[test]
    fn dates_parse_like_date_parse() {
        assert_eq!(parse_js_date("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_js_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_js_date("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_js_date("2000"), Some(946_684_800_000));
        assert_eq!(parse_js_date("yesterday"), None);
        assert_eq!(format_timestamp(1500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn query_params_are_form_decoded() {
        assert_eq!(
            query_param(Some("a=1&inactive_since=2020-01-01T00%3A00%3A00Z"), "inactive_since").unwrap(),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(query_param(Some("x=1"), "inactive_since"), None);
        assert_eq!(query_param(None, "x"), None);
    }

    #[test]
    fn constant_time_compare_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
