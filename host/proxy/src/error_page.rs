//! Error responses as CHP gives them: the page fetched from `--error-target` (JupyterHub's `/hub/error/<code>`),
//! else a file from `--error-path`, else our own page; websockets get the bare status.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;

use crate::path::form_urlencode;
use crate::{Proxy, ProxyBody, full_body};

/// The error target is the hub; if it cannot answer quickly the client gets the plain status instead.
const ERROR_TARGET_TIMEOUT: Duration = Duration::from_secs(5);

impl Proxy {
    /// The response for a request the proxy could not forward.
    pub(crate) async fn error_response(
        &self,
        status: StatusCode,
        original: &Uri,
        websocket: bool,
    ) -> Response<ProxyBody> {
        let label = crate::metrics::StatusLabel { status: status.as_u16() };
        self.shared.metrics.requests_proxy.get_or_create(&label).inc();
        if websocket {
            return with_status(status, full_body(Bytes::new()));
        }
        if let Some(response) = self.fetch_error_target(status, original).await {
            return response;
        }
        if let Some(folder) = &self.shared.config.error_path {
            for name in [format!("{}.html", status.as_u16()), "error.html".to_owned()] {
                if let Ok(page) = tokio::fs::read(folder.join(name)).await {
                    return html(status, Bytes::from(page));
                }
            }
            return plain_status(status);
        }
        html(status, Bytes::from(builtin_page(status)))
    }

    /// `GET <error-target>/<code>?url=<original request URL>`, relaying its body and content type with `status`.
    async fn fetch_error_target(&self, status: StatusCode, original: &Uri) -> Option<Response<ProxyBody>> {
        let target = self.shared.error_target.as_ref()?;
        let uri = error_target_uri(target, status, original)?;
        let request = Request::get(uri).body(full_body(Bytes::new())).ok()?;
        let fetched = tokio::time::timeout(ERROR_TARGET_TIMEOUT, self.shared.client.request(request)).await;
        let upstream = match fetched {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot fetch the error page from --error-target");
                return Some(plain_status(status));
            }
            Err(_) => {
                tracing::error!("the --error-target did not answer in time");
                return Some(plain_status(status));
            }
        };
        let (parts, body) = upstream.into_parts();
        let mut response = with_status(status, body.map_err(Into::into).boxed_unsync());
        for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
            if let Some(value) = parts.headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        Some(response)
    }
}

fn error_target_uri(target: &crate::routes::Target, status: StatusCode, original: &Uri) -> Option<Uri> {
    let original = original.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let path_and_query = format!("{}/{}?url={}", target.base_path(), status.as_u16(), form_urlencode(original));
    Uri::builder()
        .scheme(target.scheme().clone())
        .authority(target.authority().clone())
        .path_and_query(path_and_query)
        .build()
        .ok()
}

fn with_status(status: StatusCode, body: ProxyBody) -> Response<ProxyBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// The status text alone, as CHP sends when even its error page failed.
fn plain_status(status: StatusCode) -> Response<ProxyBody> {
    with_status(status, full_body(Bytes::from_static(status.canonical_reason().unwrap_or("Error").as_bytes())))
}

fn html(status: StatusCode, page: Bytes) -> Response<ProxyBody> {
    let mut response = with_status(status, full_body(page));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

fn builtin_page(status: StatusCode) -> String {
    let (title, explanation) = match status.as_u16() {
        404 => ("404: Not Found", "No server is registered for this address."),
        503 => (
            "503: Service Unavailable",
            "The server for this address is not responding. It may be starting, stopping or stopped.",
        ),
        _ => ("Proxy Error", "The proxy could not handle this request."),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif; margin: 3em;\"><h1>{title}</h1><p>{explanation}</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_target_gets_the_code_and_the_encoded_url() {
        let target = crate::routes::Target::parse("http://127.0.0.1:8081/hub/error/").unwrap();
        let uri = error_target_uri(&target, StatusCode::SERVICE_UNAVAILABLE, &"/user/dead/x?a=1".parse().unwrap());
        assert_eq!(uri.unwrap().to_string(), "http://127.0.0.1:8081/hub/error/503?url=%2Fuser%2Fdead%2Fx%3Fa%3D1");
    }
}
