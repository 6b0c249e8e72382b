//! The route table: CHP's longest whole-segment prefix match over an immutable map swapped atomically, so that
//! request handlers on every core read it without locks while the API changes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use http::Uri;
use http::uri::Scheme;
use serde_json::{Map, Value};

/// A route as the API stores it: the key CHP reports, the parsed target and the caller's data, verbatim.
#[derive(Debug)]
pub struct Route {
    key: Arc<str>,
    target: Target,
    data: Map<String, Value>,
    last_activity_ms: AtomicI64,
}

impl Route {
    pub(crate) fn new(key: String, target: Target, data: Map<String, Value>, last_activity_ms: i64) -> Route {
        Route { key: key.into(), target, data, last_activity_ms: AtomicI64::new(last_activity_ms) }
    }

    /// The normalised path, e.g. `/user/alice` (decoded, leading slash, no trailing slash).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The JSON object the route was created with (without `last_activity`).
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// Milliseconds since the Unix epoch of the last activity seen on this route.
    pub fn last_activity_ms(&self) -> i64 {
        self.last_activity_ms.load(Ordering::Relaxed)
    }

    /// Records activity now. One relaxed atomic max: cheap enough to call for every body chunk.
    pub fn touch(&self) {
        self.last_activity_ms.fetch_max(now_ms(), Ordering::Relaxed);
    }
}

pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_millis() as i64
}

/// Where a route sends requests: scheme and authority, plus a base path prepended to forwarded paths.
#[derive(Debug, Clone)]
pub struct Target {
    original: String,
    scheme: Scheme,
    authority: http::uri::Authority,
    base_path: String,
}

/// Why a `target` string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target {0:?} is not a valid URL")]
    Invalid(String),
    #[error("target {0:?} must use http or https (unix socket targets are not supported)")]
    Scheme(String),
    #[error("target {0:?} has no host")]
    NoHost(String),
}

impl Target {
    pub fn parse(target: &str) -> Result<Target, TargetError> {
        let uri: Uri = target.parse().map_err(|_| TargetError::Invalid(target.to_owned()))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::HTTP,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::HTTPS,
            _ => return Err(TargetError::Scheme(target.to_owned())),
        };
        let authority = uri.authority().cloned().ok_or_else(|| TargetError::NoHost(target.to_owned()))?;
        if authority.host().is_empty() {
            return Err(TargetError::NoHost(target.to_owned()));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Target { original: target.to_owned(), scheme, authority, base_path })
    }

    pub fn as_str(&self) -> &str {
        &self.original
    }

    pub(crate) fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub(crate) fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// Whether both reach the same server: same scheme, host and port (the paths may differ).
    pub(crate) fn same_origin(&self, other: &Target) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }

    /// The target's path without a trailing slash (empty for `http://host:port` and `http://host:port/`).
    pub(crate) fn base_path(&self) -> &str {
        &self.base_path
    }
}

/// CHP's `trimPrefix`: a leading slash ensured and one trailing slash removed, so `user/a/` and `/user/a` are one key.
pub fn clean_path(path: &str) -> String {
    let mut cleaned = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    if cleaned.len() > 1 && cleaned.ends_with('/') {
        cleaned.pop();
    }
    cleaned
}

/// The string the table is indexed by: the path's segments without any leading or trailing slashes.
fn match_key(path: &str) -> &str {
    path.trim_matches('/')
}

type RouteMap = imbl::HashMap<Arc<str>, Arc<Route>>;

/// The table itself. Writers replace the whole map (structural sharing keeps that O(log n)); readers never wait.
#[derive(Default)]
pub struct RouteTable {
    routes: ArcSwap<RouteMap>,
}

impl RouteTable {
    /// Adds or replaces the route under its key.
    pub fn insert(&self, route: Arc<Route>) {
        let key: Arc<str> = match_key(route.key()).into();
        self.routes.rcu(|map| {
            let mut map = RouteMap::clone(map);
            map.insert(key.clone(), route.clone());
            map
        });
    }

    /// Removes the route under `path` (any spelling `clean_path` accepts) and returns it.
    pub fn remove(&self, path: &str) -> Option<Arc<Route>> {
        let cleaned = clean_path(path);
        let key = match_key(&cleaned);
        let mut removed = None;
        self.routes.rcu(|map| {
            let mut map = RouteMap::clone(map);
            removed = map.remove(key);
            map
        });
        removed
    }

    /// The route registered exactly at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<Route>> {
        let cleaned = clean_path(path);
        self.routes.load().get(match_key(&cleaned)).cloned()
    }

    /// The route owning the longest whole-segment prefix of a decoded request path.
    pub fn lookup(&self, decoded_path: &str) -> Option<Arc<Route>> {
        let map = self.routes.load();
        let mut candidate = match_key(decoded_path);
        loop {
            if let Some(route) = map.get(candidate) {
                return Some(route.clone());
            }
            if candidate.is_empty() {
                return None;
            }
            candidate = match candidate.rfind('/') {
                Some(slash) => &candidate[..slash],
                None => "",
            };
        }
    }

    /// Every route, sorted by key.
    pub fn snapshot(&self) -> Vec<Arc<Route>> {
        let mut routes: Vec<Arc<Route>> = self.routes.load().values().cloned().collect();
        routes.sort_by(|a, b| a.key().cmp(b.key()));
        routes
    }

    pub fn len(&self) -> usize {
        self.routes.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&str]) -> RouteTable {
        let table = RouteTable::default();
        for key in keys {
            let target = Target::parse("http://127.0.0.1:1").unwrap();
            table.insert(Arc::new(Route::new(clean_path(key), target, Map::new(), 0)));
        }
        table
    }

    #[track_caller]
    fn check_lookup(table: &RouteTable, path: &str, expected: Option<&str>) {
        let found = table.lookup(path);
        assert_eq!(found.as_deref().map(Route::key), expected, "lookup of {path}");
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let table = table(&["/", "/user/alice", "/user/alice/x"]);
        check_lookup(&table, "/user/alice", Some("/user/alice"));
        check_lookup(&table, "/user/alice/", Some("/user/alice"));
        check_lookup(&table, "/user/alice/tree", Some("/user/alice"));
        check_lookup(&table, "/user/alice/x/y", Some("/user/alice/x"));
        check_lookup(&table, "/user/alicebob/x", Some("/"));
        check_lookup(&table, "/USER/alice/x", Some("/"));
        check_lookup(&table, "/user//alice//x", Some("/"));
        check_lookup(&table, "/user/alice//x", Some("/user/alice"));
        check_lookup(&table, "/", Some("/"));
    }

    #[test]
    fn no_root_route_means_no_match() {
        let table = table(&["/user/alice"]);
        check_lookup(&table, "/user/bob", None);
        check_lookup(&table, "/", None);
    }

    #[test]
    fn keys_are_cleaned_like_chp() {
        assert_eq!(clean_path("user/alice/"), "/user/alice");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path(""), "/");
        let table = table(&["/user/alice/"]);
        assert!(table.get("user/alice").is_some());
        assert!(table.remove("/user/alice/").is_some());
        assert!(table.is_empty());
    }

    #[test]
    fn targets_must_be_http_urls() {
        assert!(Target::parse("http://127.0.0.1:8888").is_ok());
        assert_eq!(Target::parse("https://h/base/").unwrap().base_path(), "/base");
        assert!(matches!(Target::parse("ws://h:1"), Err(TargetError::Scheme(_))));
        assert!(matches!(Target::parse("not a url"), Err(TargetError::Invalid(_))));
        assert!(matches!(Target::parse("/relative"), Err(TargetError::Scheme(_))));
    }

    #[test]
    fn readers_always_find_stable_routes_while_others_change() {
        let table = Arc::new(table(&["/", "/hub", "/user/stable"]));
        let writer_table = table.clone();
        let writer = std::thread::spawn(move || {
            for index in 0..5000 {
                let key = format!("/user/u{index}");
                let target = Target::parse("http://127.0.0.1:2").unwrap();
                writer_table.insert(Arc::new(Route::new(key.clone(), target, Map::new(), 0)));
                if index % 2 == 0 {
                    writer_table.remove(&key);
                }
            }
        });
        let mut lookups = 0;
        while !writer.is_finished() || lookups < 1000 {
            check_lookup(&table, "/user/stable/lab", Some("/user/stable"));
            check_lookup(&table, "/hub/login", Some("/hub"));
            lookups += 1;
        }
        writer.join().unwrap();
        assert_eq!(table.len(), 3 + 2500);
    }

    #[test]
    fn activity_only_moves_forward() {
        let route = Route::new("/a".into(), Target::parse("http://h:1").unwrap(), Map::new(), i64::MAX - 1);
        route.touch();
        assert_eq!(route.last_activity_ms(), i64::MAX - 1);
    }
}
