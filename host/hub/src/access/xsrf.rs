//! The one check of a cookie-authenticated form post (Tornado's `check_xsrf_cookie`, as JupyterHub applies it):
//! the `_xsrf` field, or failing that the `_xsrf` query value or `X-XSRFToken` header, must equal one of the
//! tokens this browser holds, compared in constant time.

use axum::http::{HeaderMap, Uri};

use crate::access::session;

/// Why a form post was refused; the text is JupyterHub's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormXsrfError {
    #[error("'_xsrf' argument missing from POST")]
    Missing,
    #[error("XSRF cookie does not match POST argument")]
    Mismatch,
}

/// Checks the token a form post presents against the tokens the browser is known to hold (its session's, or the
/// anonymous cookie's before login).
pub(crate) fn check_form(
    fields: &[(String, String)],
    uri: &Uri,
    headers: &HeaderMap,
    expected: &[&str],
) -> Result<(), FormXsrfError> {
    let presented = fields
        .iter()
        .find(|(key, _)| key == "_xsrf")
        .map(|(_, value)| value.clone())
        .or_else(|| session::presented_xsrf(uri, headers))
        .ok_or(FormXsrfError::Missing)?;
    if expected.iter().any(|expected| session::same_token(&presented, expected)) {
        Ok(())
    } else {
        Err(FormXsrfError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_needs_a_token_the_browser_holds() {
        let uri: Uri = "/hub/spawn".parse().unwrap();
        let headers = HeaderMap::new();
        let field = |value: &str| vec![("_xsrf".to_owned(), value.to_owned())];
        assert_eq!(check_form(&[], &uri, &headers, &["a"]), Err(FormXsrfError::Missing));
        assert_eq!(check_form(&field("b"), &uri, &headers, &["a"]), Err(FormXsrfError::Mismatch));
        assert_eq!(check_form(&field("b"), &uri, &headers, &["a", "b"]), Ok(()));
        assert_eq!(check_form(&field(""), &uri, &headers, &[]), Err(FormXsrfError::Mismatch));
    }
}
