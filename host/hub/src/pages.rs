//! The hub's HTML, kept minimal and in one place so that full templating can replace it wholesale: the login
//! form, home, the spawn-pending and not-running pages, the OAuth confirmation and error pages.
//!
//! Every value from a request or the store passes through [`escape`]; nothing else builds HTML.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// HTML-escapes text for element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A complete page with `status`; `head` is trusted markup (built here), `body` likewise.
fn page(status: StatusCode, title: &str, head: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n{head}</head>\n\
         <body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    );
    let mut response = (status, html).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// `login.html`: username, password and the hidden `_xsrf`, posting back with `next` kept.
pub(crate) fn login(
    status: StatusCode,
    action: &str,
    xsrf_token: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let error = error.map(|message| format!("<p class=\"login_error\">{}</p>\n", escape(message))).unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>\n{error}<form action=\"{}\" method=\"post\" role=\"form\">\n\
         <input type=\"hidden\" name=\"_xsrf\" value=\"{}\">\n\
         <label for=\"username_input\">Username:</label>\n\
         <input id=\"username_input\" type=\"text\" name=\"username\" value=\"{}\" autocapitalize=\"off\" \
         autocorrect=\"off\" autocomplete=\"username\" autofocus=\"autofocus\" required>\n\
         <label for=\"password_input\">Password:</label>\n\
         <input id=\"password_input\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
         <input id=\"login_submit\" type=\"submit\" value=\"Sign in\">\n</form>\n",
        escape(action),
        escape(xsrf_token),
        escape(username),
    );
    page(status, "JupyterHub", "", &body)
}

/// What `home.html` needs to know about the default server.
pub(crate) struct HomeServer<'a> {
    pub(crate) url: &'a str,
    pub(crate) spawn_url: &'a str,
    pub(crate) stop_api_url: &'a str,
    pub(crate) active: bool,
}

/// `home.html`, reduced to starting, opening and stopping the default server.
pub(crate) fn home(user: &str, server: &HomeServer<'_>, xsrf_token: &str, logout_url: &str) -> Response {
    let actions = if server.active {
        format!(
            "<a id=\"start\" role=\"button\" href=\"{}\">My Server</a>\n\
             <button id=\"stop\" type=\"button\" data-url=\"{}\" data-xsrf=\"{}\">Stop My Server</button>\n\
             <script>\ndocument.getElementById('stop').addEventListener('click', (event) => {{\n\
             const button = event.target;\n\
             fetch(button.dataset.url + '?_xsrf=' + encodeURIComponent(button.dataset.xsrf), \
             {{method: 'DELETE', credentials: 'same-origin'}}).then(() => window.location.reload());\n}});\n</script>\n",
            escape(server.url),
            escape(server.stop_api_url),
            escape(xsrf_token),
        )
    } else {
        format!("<a id=\"start\" role=\"button\" href=\"{}\">Start My Server</a>\n", escape(server.spawn_url))
    };
    let body = format!(
        "<h1>{}</h1>\n{actions}<p><a id=\"logout\" href=\"{}\">Logout</a></p>\n",
        escape(user),
        escape(logout_url)
    );
    page(StatusCode::OK, "JupyterHub", "", &body)
}

/// `spawn_pending.html` without the progress bar: it reloads until the server is ready.
pub(crate) fn spawn_pending(server_label: &str, refresh_url: &str) -> Response {
    let head = format!("<meta http-equiv=\"refresh\" content=\"2;url={}\">\n", escape(refresh_url));
    let body = format!(
        "<h1>Your server is starting up.</h1>\n<p>You will be redirected automatically when {} is ready.</p>\n\
         <p><a href=\"{}\">Refresh</a></p>\n",
        escape(server_label),
        escape(refresh_url)
    );
    page(StatusCode::OK, "JupyterHub", &head, &body)
}

/// `not_running.html`: the server is not running, with a link to start it.
pub(crate) fn not_running(status: StatusCode, server_label: &str, spawn_url: &str) -> Response {
    let body = format!(
        "<h1>Server not running</h1>\n<p>{} is not running.</p>\n\
         <p><a id=\"start\" role=\"button\" href=\"{}\">Launch Server</a></p>\n",
        escape(server_label),
        escape(spawn_url)
    );
    page(status, "JupyterHub", "", &body)
}

/// `oauth.html`: asks before a service or another user's server may identify the visitor.
pub(crate) fn oauth_confirm(client: &str, action: &str, xsrf_token: &str, scopes: &[String]) -> Response {
    let scope_items: String = scopes.iter().map(|scope| format!("<li>{}</li>\n", escape(scope))).collect();
    let body = format!(
        "<h1>Authorize access</h1>\n<p>{} would like permission to identify you. It will be able to:</p>\n\
         <ul>\n{scope_items}</ul>\n<form method=\"post\" action=\"{}\">\n\
         <input type=\"hidden\" name=\"_xsrf\" value=\"{}\">\n\
         <input type=\"submit\" value=\"Authorize\">\n</form>\n",
        escape(client),
        escape(action),
        escape(xsrf_token),
    );
    page(StatusCode::OK, "JupyterHub", "", &body)
}

/// `error.html`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!("<h1>{} : {}</h1>\n<p>{}</p>\n", status.as_u16(), escape(reason), escape(message));
    page(status, "JupyterHub", "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_are_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
