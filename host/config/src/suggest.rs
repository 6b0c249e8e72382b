//! "Did you mean ...?": the known key nearest to a misspelled one.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
///
/// Keys are compared after dropping case, `_` and `-`, so `imagePullPolicy` finds `image_pull_policy` and
/// `fs_gid` finds `fsGid`; otherwise the normalised Damerau-Levenshtein similarity must reach 0.6 (or one edit
/// for short keys).
pub(crate) fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = normalise(input);
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let normalised = normalise(candidate);
        let score = if normalised == wanted {
            2.0
        } else {
            let similarity = strsim::normalized_damerau_levenshtein(&wanted, &normalised);
            let one_edit = strsim::damerau_levenshtein(&wanted, &normalised) <= 1;
            if similarity >= 0.6 || one_edit { similarity } else { continue }
        };
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

fn normalise(key: &str) -> String {
    key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn finds_typos_and_case_variants() {
        let keys = ["admin_users", "allowed_users", "blocked_users", "allow_all"];
        assert_eq!(nearest("admin_user", keys), Some("admin_users"));
        assert_eq!(nearest("allowed_user", keys), Some("allowed_users"));
        assert_eq!(nearest("alowed_users", keys), Some("allowed_users"));
        assert_eq!(nearest("password", keys), None);
        assert_eq!(
            nearest("imagePullPolicy", ["image", "image_pull_policy", "image_pull_secrets"]),
            Some("image_pull_policy")
        );
        assert_eq!(nearest("fs_gid", ["uid", "fsGid"]), Some("fsGid"));
    }
}
