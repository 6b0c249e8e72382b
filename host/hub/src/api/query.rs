//! Query strings and pagination as JupyterHub reads and writes them (`apihandlers/base.py get_api_pagination`,
//! `paginated_model`): `offset`/`limit` clamped, and an absolute `next.url` that keeps the original query.

use axum::http::{HeaderMap, Uri, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::HubConfig;
use crate::error::ApiError;

/// The media type that asks for the paginated form.
pub(crate) const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// Python's `urlencode` (`quote_plus`) leaves these alone.
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');

/// A query string as ordered key/value pairs, decoded like Python's `parse_qs(keep_blank_values=True)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let decode = |text: &str| percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned();
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect();
        Query(pairs)
    }

    /// The last value of `key`, as Tornado's `get_argument` returns it.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(name, _)| name == key)
    }

    fn set(&mut self, key: &str, value: String) {
        match self.0.iter().position(|(name, _)| name == key) {
            Some(index) => {
                self.0[index].1 = value;
                let mut seen = false;
                self.0.retain(|(name, _)| name != key || !std::mem::replace(&mut seen, true));
            }
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn encode(&self) -> String {
        let encode = |text: &str| utf8_percent_encode(text, QUOTE_PLUS).to_string().replace("%20", "+");
        self.0.iter().map(|(key, value)| format!("{}={}", encode(key), encode(value))).collect::<Vec<_>>().join("&")
    }
}

/// `offset` and `limit` of a list request, and whether the paginated form was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pagination {
    pub(crate) offset: u64,
    pub(crate) limit: u64,
    pub(crate) paginated: bool,
}

impl Pagination {
    pub(crate) fn from_request(query: &Query, headers: &HeaderMap, config: &HubConfig) -> Result<Pagination, ApiError> {
        let paginated = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains(PAGINATION_MEDIA_TYPE));
        let number = |key: &str| -> Result<Option<i64>, ApiError> {
            match query.get(key) {
                None | Some("") => Ok(None),
                Some(text) => text
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| ApiError::bad_request(format!("Invalid argument type, {key} must be an integer"))),
            }
        };
        let offset = number("offset")?.unwrap_or(0).max(0) as u64;
        let default_limit = if paginated { config.page_default_limit } else { config.page_max_limit };
        let limit = match number("limit")? {
            None => default_limit,
            Some(limit) => (limit.max(1) as u64).min(config.page_max_limit),
        };
        Ok(Pagination { offset, limit, paginated })
    }

    /// The response body: the items as they are (a list, or a dict for `/proxy`), or `{items, _pagination}` with
    /// an absolute `next.url`.
    pub(crate) fn respond(&self, items: impl Into<Value>, total: u64, uri: &Uri, headers: &HeaderMap) -> Value {
        let items: Value = items.into();
        if !self.paginated {
            return items;
        }
        let next = match self.next_url(total, uri, headers) {
            Some(url) => json!({ "offset": self.offset + self.limit, "limit": self.limit, "url": url }),
            None => Value::Null,
        };
        json!({
            "items": items,
            "_pagination": { "offset": self.offset, "limit": self.limit, "total": total, "next": next },
        })
    }

    /// [`Pagination::respond`] for items that serialize themselves: the same JSON, written without building a
    /// `Value` of the whole page first.
    pub(crate) fn page<T: Serialize>(&self, items: T, total: u64, uri: &Uri, headers: &HeaderMap) -> Paged<T> {
        let next_url = if self.paginated { self.next_url(total, uri, headers) } else { None };
        Paged { items, pagination: *self, total, next_url }
    }

    /// `next.url`, if there is a next page.
    fn next_url(&self, total: u64, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        let next_offset = self.offset + self.limit;
        (next_offset < total).then(|| {
            let mut query = Query::parse(uri.query());
            query.set("offset", next_offset.to_string());
            query.set("limit", self.limit.to_string());
            format!("{}{}?{}", origin(headers), uri.path(), query.encode())
        })
    }
}

/// A page as [`Pagination::page`] builds it.
pub(crate) struct Paged<T> {
    items: T,
    pagination: Pagination,
    total: u64,
    next_url: Option<String>,
}

impl<T: Serialize> Serialize for Paged<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.pagination.paginated {
            return self.items.serialize(serializer);
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("items", &self.items)?;
        map.serialize_entry("_pagination", &PaginationModel(self))?;
        map.end()
    }
}

/// `_pagination`: `{offset, limit, total, next}`, `next` being `{offset, limit, url}` or null.
struct PaginationModel<'a, T>(&'a Paged<T>);

impl<T> Serialize for PaginationModel<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Paged { pagination, total, next_url, .. } = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("offset", &pagination.offset)?;
        map.serialize_entry("limit", &pagination.limit)?;
        map.serialize_entry("total", total)?;
        match next_url {
            Some(url) => map.serialize_entry(
                "next",
                &NextModel { offset: pagination.offset + pagination.limit, limit: pagination.limit, url },
            )?,
            None => map.serialize_entry("next", &())?,
        }
        map.end()
    }
}

#[derive(Serialize)]
struct NextModel<'a> {
    offset: u64,
    limit: u64,
    url: &'a str,
}

/// `scheme://host` of the request as the client addressed it (Tornado's `full_url` with `xheaders`).
fn origin(headers: &HeaderMap) -> String {
    let scheme = headers
        .get("x-forwarded-proto")
        .or_else(|| headers.get("x-scheme"))
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(',').next().unwrap_or("http").trim())
        .filter(|value| *value == "http" || *value == "https")
        .unwrap_or("http");
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("localhost");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_url_keeps_the_query_and_replaces_offset_and_limit() {
        let mut query = Query::parse(Some("limit=2&name_filter=a+b&offset=0&limit=9"));
        assert_eq!(query.get("limit"), Some("9"));
        assert_eq!(query.get("name_filter"), Some("a b"));
        query.set("offset", "2".into());
        query.set("limit", "2".into());
        assert_eq!(query.encode(), "limit=2&name_filter=a+b&offset=2");
        let mut fresh = Query::parse(Some("state=ready"));
        fresh.set("offset", "50".into());
        fresh.set("limit", "50".into());
        assert_eq!(fresh.encode(), "state=ready&offset=50&limit=50");
    }
}
