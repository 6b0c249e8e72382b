//! How values are written to columns, the same for both databases: timestamps as microseconds since the Unix
//! epoch (SQLite has no timestamp type, and integers order and compare the same everywhere), scope lists as one
//! space-separated string (the OAuth 2 form; a valid scope has no whitespace), and fresh random bytes.

use chrono::DateTime;
use wasmhub_model::{PlainToken, Scope, TokenHash, TokenKind};

use crate::{StoreError, StoreResult, Timestamp};

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn timestamp(micros: i64) -> StoreResult<Timestamp> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt { what: "timestamp", value: micros.to_string() })
}

pub(crate) fn optional_timestamp(micros: Option<i64>) -> StoreResult<Option<Timestamp>> {
    micros.map(timestamp).transpose()
}

/// Now, truncated to what we store, so a value read back equals the one returned at creation.
pub(crate) fn now() -> Timestamp {
    let now = chrono::Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Ids as a JSON array, bound as one parameter in place of an `IN ($1, $2, ...)` list: the statement text is
/// the same for any count (one prepared statement, no parameter limit), and SQLite does not look up each of
/// hundreds of numbered parameters by name.
pub(crate) fn json_ids(ids: &[i64]) -> String {
    let items: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// Strings as a JSON array, for the same use as [`json_ids`].
pub(crate) fn json_strings<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut json = String::from("[");
    for (index, value) in values.enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push('"');
        for character in value.chars() {
            match character {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                control if u32::from(control) < 0x20 => json.push_str(&format!("\\u{:04x}", u32::from(control))),
                other => json.push(other),
            }
        }
        json.push('"');
    }
    json.push(']');
    json
}

pub(crate) fn encode_scopes(scopes: &[String]) -> StoreResult<String> {
    for scope in scopes {
        Scope::parse(scope).map_err(|error| StoreError::invalid("scope", error.to_string()))?;
    }
    Ok(scopes.join(" "))
}

pub(crate) fn decode_scopes(text: &str) -> Vec<String> {
    text.split(' ').filter(|scope| !scope.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn random_bytes<const N: usize>() -> StoreResult<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
    Ok(bytes)
}

pub(crate) fn new_token(kind: TokenKind) -> StoreResult<PlainToken> {
    match kind {
        TokenKind::Api => Ok(PlainToken::new_api_token(random_bytes()?)),
        TokenKind::OAuthAccess => loop {
            if let Some(token) = PlainToken::new_oauth_token(&random_bytes::<64>()?) {
                return Ok(token);
            }
        },
        TokenKind::Supplied => Err(StoreError::invalid("token", "a supplied token needs its value")),
    }
}

pub(crate) fn hash_token(token: &PlainToken, kind: TokenKind) -> StoreResult<String> {
    Ok(token.hash(kind, random_bytes()?).to_string())
}

pub(crate) fn parse_hash(stored: &str) -> StoreResult<TokenHash> {
    TokenHash::parse(stored).map_err(|_| StoreError::Corrupt { what: "token hash", value: stored.to_owned() })
}

/// Parses a name read back from the database with the model's rules.
pub(crate) fn name<T>(
    what: &'static str,
    value: String,
    parse: fn(&str) -> Result<T, wasmhub_model::NameError>,
) -> StoreResult<T> {
    parse(&value).map_err(|_| StoreError::Corrupt { what, value })
}

/// Parses a list of names read back from the database.
pub(crate) fn parse_names<T>(
    what: &'static str,
    values: Vec<String>,
    parse: fn(&str) -> Result<T, wasmhub_model::NameError>,
) -> StoreResult<Vec<T>> {
    values.into_iter().map(|value| name(what, value, parse)).collect()
}

/// `user/server`, as JupyterHub writes a server's full name (`alice/` for the default server).
pub(crate) fn full_server_name(user: &str, server: &str) -> String {
    format!("{user}/{server}")
}

/// A `LIKE` pattern matching `needle` anywhere, with `\` escaping the wildcards in it.
pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for character in needle.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_json_arrays() {
        assert_eq!(json_ids(&[]), "[]");
        assert_eq!(json_ids(&[1, -2, 30]), "[1,-2,30]");
        assert_eq!(json_strings(["a", "b\"c\\d\u{1}é"].into_iter()), r#"["a","b\"c\\d\u0001é"]"#);
    }

    #[test]
    fn scopes_round_trip_and_refuse_whitespace() {
        let scopes = vec!["read:users".to_owned(), "access:servers!server=alice/".to_owned()];
        assert_eq!(decode_scopes(&encode_scopes(&scopes).unwrap()), scopes);
        assert_eq!(decode_scopes(""), Vec::<String>::new());
        assert!(encode_scopes(&["read:users admin".to_owned()]).is_err());
        assert!(encode_scopes(&[String::new()]).is_err());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let at = now();
        assert_eq!(timestamp(micros(at)).unwrap(), at);
    }
}
