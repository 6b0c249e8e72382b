//! Rendering pages from the templates (`templates.rs`): the values every page gets (JupyterHub's template
//! namespace: `base_url`, `prefix`, `user`, `static_url`, `logout_url`, `xsrf`, `jhdata`), and the pages built
//! outside `browser.rs`: the login form, the OAuth confirmation and error pages.
//!
//! Values reach the HTML only through the templates, whose `.html` names turn on minijinja's auto-escaping.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use wasmhub_store::User;

use crate::Hub;
use crate::access::caller::Caller;
use crate::access::session;

/// The logged-in visitor as pages show them.
pub(crate) struct Visitor<'a> {
    pub(crate) user: &'a User,
    pub(crate) caller: &'a Caller,
    pub(crate) xsrf_token: &'a str,
}

/// The values every page gets; `visitor` is `None` on the login page and for anonymous errors.
pub(crate) fn base_context(hub: &Hub, visitor: Option<&Visitor<'_>>) -> Value {
    let prefix = session::hub_prefix(hub);
    let base_url = hub.config().base_url.clone();
    let (user, admin_ui, xsrf) = match visitor {
        Some(visitor) => (
            Some(context! { name => visitor.user.name.as_str(), admin => visitor.user.admin }),
            visitor.caller.scopes.has_unfiltered("admin-ui"),
            visitor.xsrf_token.to_owned(),
        ),
        None => (None, false, String::new()),
    };
    let user_name = visitor.map(|visitor| visitor.user.name.as_str());
    context! {
        base_url => base_url,
        prefix => prefix,
        login_url => format!("{prefix}login"),
        logout_url => format!("{prefix}logout"),
        user => user,
        admin_ui => admin_ui,
        xsrf => xsrf,
        // What scripts read (`window.jhdata` in JupyterHub).
        jhdata => context! {
            base_url => base_url,
            prefix => prefix,
            user => user_name,
            xsrf_token => xsrf,
            admin_access => admin_ui,
        },
    }
}

/// Renders `template` as a complete response. A broken override is logged and answered with a bare 500, never
/// with the template error (which may show file paths).
pub(crate) fn render(hub: &Hub, status: StatusCode, template: &str, context: Value) -> Response {
    match hub.templates().render(template, context) {
        Ok(html) => {
            let mut response = (status, html).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        Err(error) => {
            tracing::error!(template, error = %format!("{error:#}"), "rendering a page template failed");
            let mut response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!DOCTYPE html>\n<title>500</title>\n<h1>500 : Internal Server Error</h1>\n",
            )
                .into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
    }
}

/// `login.html`: username, password and the hidden `_xsrf`, posting back with `next` kept.
pub(crate) fn login(
    hub: &Hub,
    status: StatusCode,
    action: &str,
    xsrf_token: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let context = context! {
        page => "login",
        login_url => action,
        xsrf => xsrf_token,
        username => username,
        login_error => error,
        ..base_context(hub, None),
    };
    render(hub, status, "login.html", context)
}

/// `oauth.html`: asks before a service or another user's server may identify the visitor.
pub(crate) fn oauth_confirm(
    hub: &Hub,
    visitor: &Visitor<'_>,
    client: &str,
    action: &str,
    scopes: &[String],
) -> Response {
    let context = context! {
        page => "oauth",
        client => client,
        action => action,
        scopes => scopes,
        ..base_context(hub, Some(visitor)),
    };
    render(hub, StatusCode::OK, "oauth.html", context)
}

/// An error page that is rendered from `error.html` on its way out (see [`render_error_pages`]), so handlers
/// without the hub at hand can answer one.
#[derive(Clone, Debug)]
struct ErrorPage {
    message: String,
}

/// `error.html` with `status` and `message`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, message.to_owned()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.extensions_mut().insert(ErrorPage { message: message.to_owned() });
    response
}

/// Renders the error pages made by [`error`], with the visitor's navigation when they are logged in.
pub(crate) async fn render_error_pages(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else { return response };
    let status = response.status();
    let set_cookies: Vec<HeaderValue> = response.headers().get_all(header::SET_COOKIE).iter().cloned().collect();
    let session = session::current_session(&hub, &headers).await.ok().flatten();
    let caller = match &session {
        Some(session) => session::session_caller(&hub, session).await.ok().flatten(),
        None => None,
    };
    let user = match &session {
        Some(session) => hub.store().get_user(&session.login.user).await.ok(),
        None => None,
    };
    let visitor = match (&session, &caller, &user) {
        (Some(session), Some(caller), Some(user)) => Some(Visitor { user, caller, xsrf_token: &session.xsrf_token }),
        _ => None,
    };
    let context = context! {
        page => "error",
        status_code => status.as_u16(),
        status_message => status.canonical_reason().unwrap_or("Error"),
        message => page.message,
        ..base_context(&hub, visitor.as_ref()),
    };
    let mut rendered = render(&hub, status, "error.html", context);
    for cookie in set_cookies {
        rendered.headers_mut().append(header::SET_COOKIE, cookie);
    }
    rendered
}
