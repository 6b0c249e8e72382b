//! Page templates and static assets (JupyterHub's `template_paths` and `/hub/static/`).
//!
//! The default templates and assets are embedded in the binary, so a hub needs no files beside it and no network.
//! Operators override a template by putting a file of the same name in one of `HubConfig::template_paths`
//! (searched in order, before the defaults); `templates/<name>` always names the embedded default, so an override
//! can `{% extends "templates/page.html" %}` and replace one block, as with JupyterHub.
//!
//! Assets are served at `/hub/static/<file>?v=<content hash>`: a request carrying the current hash may be cached
//! for a year (the URL changes when the file does); any request gets an `ETag` and may revalidate.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Value};
use sha2::{Digest, Sha256};

use crate::Hub;

/// The embedded templates, by file name.
const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    ("page.html", include_str!("../../templates/page.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("spawn.html", include_str!("../../templates/spawn.html")),
    ("spawn_pending.html", include_str!("../../templates/spawn_pending.html")),
    ("not_running.html", include_str!("../../templates/not_running.html")),
    ("token.html", include_str!("../../templates/token.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
    ("oauth.html", include_str!("../../templates/oauth.html")),
    ("error.html", include_str!("../../templates/error.html")),
];

/// The embedded assets: file name, bytes, content type.
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("style.css", include_bytes!("../../static/style.css"), "text/css; charset=utf-8"),
    ("hub.js", include_bytes!("../../static/hub.js"), "text/javascript; charset=utf-8"),
    ("spawn.js", include_bytes!("../../static/spawn.js"), "text/javascript; charset=utf-8"),
    ("spawn_pending.js", include_bytes!("../../static/spawn_pending.js"), "text/javascript; charset=utf-8"),
    ("token.js", include_bytes!("../../static/token.js"), "text/javascript; charset=utf-8"),
    ("admin.js", include_bytes!("../../static/admin.js"), "text/javascript; charset=utf-8"),
];

/// How long a versioned asset URL may be cached: it never changes content.
const VERSIONED_CACHE: &str = "public, max-age=31536000, immutable";
/// Unversioned URLs revalidate with the ETag each time, so an upgrade is seen at once.
const UNVERSIONED_CACHE: &str = "no-cache";

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// The first 16 hex digits of the content's SHA-256: the `v=` of its URL and its ETag.
    hash: String,
}

/// The template environment and the asset table, built once per hub.
pub(crate) struct Templates {
    environment: Environment<'static>,
    assets: Arc<HashMap<&'static str, Asset>>,
}

/// HTML-escapes text for element content and quoted attributes.
fn escape_html(text: &str) -> String {
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

fn default_template(name: &str) -> Option<&'static str> {
    DEFAULT_TEMPLATES.iter().find(|(file, _)| *file == name).map(|(_, text)| *text)
}

/// A template name may only name a file inside a template folder: no absolute paths, no `..`.
fn contained(name: &str) -> bool {
    Path::new(name).components().all(|component| matches!(component, Component::Normal(_)))
}

impl Templates {
    /// `static_prefix` is where assets are served, e.g. `/hub/static/`.
    pub(crate) fn new(template_paths: &[PathBuf], static_prefix: &str) -> Templates {
        let assets: HashMap<&'static str, Asset> = ASSETS
            .iter()
            .map(|(name, bytes, content_type)| {
                let digest = Sha256::digest(bytes);
                let hash = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
                (*name, Asset { bytes, content_type, hash })
            })
            .collect();
        let assets = Arc::new(assets);
        let mut environment = Environment::new();
        let paths = template_paths.to_vec();
        // Files are read when a template is first used and then kept: operators restart the hub to pick up an
        // edit, as with JupyterHub.
        environment.set_loader(move |name| {
            if let Some(default) = name.strip_prefix("templates/") {
                return Ok(default_template(default).map(str::to_owned));
            }
            if contained(name) {
                for dir in &paths {
                    let candidate = dir.join(name);
                    if candidate.is_file() {
                        return std::fs::read_to_string(&candidate).map(Some).map_err(|error| {
                            minijinja::Error::new(
                                minijinja::ErrorKind::InvalidOperation,
                                format!("reading {}: {error}", candidate.display()),
                            )
                        });
                    }
                }
            }
            Ok(default_template(name).map(str::to_owned))
        });
        environment.set_formatter(|out, state, value| {
            if state.auto_escape() == AutoEscape::Html && !value.is_safe() && !value.is_undefined() && !value.is_none()
            {
                // minijinja also escapes `/`, which leaves every URL in the page unreadable; `/` is harmless in
                // element content and quoted attributes.
                return out.write_str(&escape_html(&value.to_string())).map_err(minijinja::Error::from);
            }
            minijinja::escape_formatter(out, state, value)
        });
        let static_prefix = static_prefix.to_owned();
        let url_assets = assets.clone();
        environment.add_function("static_url", move |file: String| -> String {
            match url_assets.get(file.as_str()) {
                Some(asset) => format!("{static_prefix}{file}?v={}", asset.hash),
                None => format!("{static_prefix}{file}"),
            }
        });
        Templates { environment, assets }
    }

    /// Renders `name` with `context`.
    pub(crate) fn render(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.environment.get_template(name)?.render(context)
    }
}

/// `/hub/static/<file>`: an embedded asset with its cache headers.
pub(crate) async fn serve_static(
    State(hub): State<Hub>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = hub.templates().assets.get(file.as_str()) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Not Found")
            .into_response();
    };
    let etag = format!("\"{}\"", asset.hash);
    let versioned = query
        .as_deref()
        .map(|query| crate::access::session::form_pairs(query.as_bytes()))
        .is_some_and(|pairs| pairs.iter().any(|(key, value)| key == "v" && *value == asset.hash));
    let cache = if versioned { VERSIONED_CACHE } else { UNVERSIONED_CACHE };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response =
        if not_modified { StatusCode::NOT_MODIFIED.into_response() } else { asset.bytes.into_response() };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_renders_and_overrides_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("login.html"),
            "{% extends \"templates/page.html\" %}{% block main %}custom {{ login_error }}{% endblock %}",
        )
        .unwrap();
        let templates = Templates::new(&[dir.path().to_owned()], "/hub/static/");
        let context = minijinja::context! { prefix => "/hub/", jhdata => minijinja::context! {}, login_error => "<b>" };
        let html = templates.render("login.html", context.clone()).unwrap();
        assert!(html.contains("custom &lt;b&gt;"), "{html}");
        assert!(html.contains("/hub/static/style.css?v="), "{html}");
        // The embedded default is still reachable under `templates/`.
        assert!(templates.render("templates/login.html", context).unwrap().contains("login_submit"));
        assert_eq!(escape_html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert!(!contained("../etc/passwd") && !contained("/etc/passwd") && contained("login.html"));
    }
}
