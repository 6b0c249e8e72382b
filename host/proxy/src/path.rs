//! Request paths as configurable-http-proxy sees them: dot segments resolved the way a browser's URL parser does,
//! then percent-decoded strictly for route matching, while the forwarded path stays encoded.

use std::borrow::Cow;

/// A request path after dot-segment resolution, in both forms the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPath {
    /// Still percent-encoded, dot segments resolved: this is what the backend receives.
    pub(crate) forwarded: String,
    /// Percent-decoded: this is what routes are matched against.
    pub(crate) decoded: String,
}

/// Why a path cannot be matched; CHP answers both with a 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("malformed percent escape in request path")]
    BadEscape,
    #[error("request path is not valid UTF-8 after percent-decoding")]
    NotUtf8,
}

impl RequestPath {
    /// Parses the path component of a request target (no query).
    pub(crate) fn parse(raw_path: &str) -> Result<RequestPath, PathError> {
        let forwarded = remove_dot_segments(raw_path);
        let decoded = percent_decode_strict(&forwarded)?.into_owned();
        Ok(RequestPath { forwarded, decoded })
    }
}

/// Decodes `%XX` escapes, rejecting malformed escapes and invalid UTF-8 like JavaScript's `decodeURIComponent`.
pub(crate) fn percent_decode_strict(input: &str) -> Result<Cow<'_, str>, PathError> {
    if !input.contains('%') {
        return Ok(Cow::Borrowed(input));
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = bytes.get(index + 1).and_then(|b| (*b as char).to_digit(16));
            let low = bytes.get(index + 2).and_then(|b| (*b as char).to_digit(16));
            match (high, low) {
                (Some(high), Some(low)) => out.push((high * 16 + low) as u8),
                _ => return Err(PathError::BadEscape),
            }
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| PathError::NotUtf8)
}

fn is_single_dot(segment: &str) -> bool {
    segment == "." || segment.eq_ignore_ascii_case("%2e")
}

fn is_double_dot(segment: &str) -> bool {
    matches!(segment.to_ascii_lowercase().as_str(), ".." | ".%2e" | "%2e." | "%2e%2e")
}

/// Resolves `.` and `..` segments (also their `%2e` spellings) as the WHATWG URL parser does for http URLs, so that
/// `/user/alice/../bob` is routed, and forwarded, as `/user/bob`.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let relative = path.strip_prefix('/').unwrap_or(path);
    if !relative.split('/').any(|segment| is_single_dot(segment) || is_double_dot(segment)) {
        return if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    }
    let segments: Vec<&str> = relative.split('/').collect();
    let last_index = segments.len() - 1;
    let mut output: Vec<&str> = Vec::with_capacity(segments.len());
    for (index, segment) in segments.iter().enumerate() {
        let is_last = index == last_index;
        if is_double_dot(segment) {
            output.pop();
            if is_last {
                output.push("");
            }
        } else if is_single_dot(segment) {
            if is_last {
                output.push("");
            }
        } else {
            output.push(segment);
        }
    }
    format!("/{}", output.join("/"))
}

/// Encodes a value for a query string as `URLSearchParams` does (`application/x-www-form-urlencoded`).
pub(crate) fn form_urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(raw: &str, forwarded: &str, decoded: &str) {
        let parsed = RequestPath::parse(raw).unwrap();
        assert_eq!(parsed.forwarded, forwarded, "forwarded form of {raw}");
        assert_eq!(parsed.decoded, decoded, "decoded form of {raw}");
    }

    #[test]
    fn plain_paths_are_unchanged() {
        check("/user/alice/tree", "/user/alice/tree", "/user/alice/tree");
        check("/", "/", "/");
        check("/user//alice//x", "/user//alice//x", "/user//alice//x");
    }

    #[test]
    fn escapes_are_decoded_for_matching_only() {
        check("/user%2Falice/x", "/user%2Falice/x", "/user/alice/x");
        check("/user/%61lice/x", "/user/%61lice/x", "/user/alice/x");
        check("/user/b%40r/s%20p", "/user/b%40r/s%20p", "/user/b@r/s p");
    }

    #[test]
    fn dot_segments_are_resolved_in_both_forms() {
        check("/user/alice/../bob/x", "/user/bob/x", "/user/bob/x");
        check("/user/alice/%2e%2e/%2E%2e/etc", "/etc", "/etc");
        check("/user/bob/../alice/x", "/user/alice/x", "/user/alice/x");
        check("/a/b/..", "/a/", "/a/");
        check("/a/./b/.", "/a/b/", "/a/b/");
        check("/../../x", "/x", "/x");
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_errors() {
        assert_eq!(RequestPath::parse("/user/alice/%E0%A4%A"), Err(PathError::BadEscape));
        assert_eq!(RequestPath::parse("/x/%zz"), Err(PathError::BadEscape));
        assert_eq!(RequestPath::parse("/x/%ff"), Err(PathError::NotUtf8));
    }

    #[test]
    fn form_encoding_matches_url_search_params() {
        assert_eq!(form_urlencode("/user/dead/x?a=1 2"), "%2Fuser%2Fdead%2Fx%3Fa%3D1+2");
    }
}
