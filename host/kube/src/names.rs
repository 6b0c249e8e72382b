//! KubeSpawner 7's `safe` slug scheme (`slugs.py`) and its name templates, so pods, claims and labels get the
//! names existing clusters and NetworkPolicies already know. Names are computed once, in `prepare`, and stored
//! with the server; a later template change never renames a running server or orphans a claim.

use sha2::{Digest, Sha256};

/// The naming function's version, stored with every server so a future scheme can tell old names apart.
pub(crate) const NAMING: &str = "safe-v1";

const HASH_LENGTH: usize = 8;

fn sha256_prefix(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|byte| format!("{byte:02x}")).collect::<String>()[..HASH_LENGTH].to_owned()
}

/// `is_valid_default`: 1–63 characters of `[a-z0-9-]`, starting with a letter, ending alphanumeric.
fn is_valid_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// `is_valid_label`: empty, or up to 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_valid_label(name: &str) -> bool {
    name.is_empty()
        || (name.len() <= 63
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'))
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric())
}

/// `_extract_safe_name`: lowercase, runs of other characters to one `-`, trimmed and cut, `x-` before a leading
/// digit, `x` when nothing is left.
fn extract_safe_name(name: &str, max_length: usize) -> String {
    let mut safe = String::new();
    for character in name.to_lowercase().chars() {
        if character.is_ascii_lowercase() || character.is_ascii_digit() {
            safe.push(character);
        } else if !safe.ends_with('-') {
            safe.push('-');
        }
    }
    let trimmed: String = safe.trim_matches('-').chars().take(max_length).collect();
    let mut safe = trimmed.trim_end_matches('-').to_owned();
    if !safe.is_empty() && !safe.as_bytes()[0].is_ascii_lowercase() {
        safe = format!("x-{}", safe.chars().take(max_length.saturating_sub(2)).collect::<String>());
    }
    if safe.is_empty() { "x".to_owned() } else { safe }
}

fn strip_and_hash(name: &str, max_length: usize) -> String {
    let name_length = max_length - (HASH_LENGTH + 3);
    format!("{}---{}", extract_safe_name(name, name_length), sha256_prefix(name.as_bytes()))
}

/// `safe_slug(name, max_length=48)` for object names.
pub(crate) fn safe_slug(name: &str) -> String {
    if !name.contains("--") && is_valid_object_name(name) && name.len() <= 48 {
        name.to_owned()
    } else {
        strip_and_hash(name, 48)
    }
}

/// `safe_slug(name, is_valid=is_valid_label)` for label values (hashed down to 32 characters).
pub(crate) fn label_slug(name: &str) -> String {
    if !name.contains("--") && is_valid_label(name) { name.to_owned() } else { strip_and_hash(name, 32) }
}

/// `multi_slug([user, server], max_length=48)`.
fn multi_slug(names: &[&str]) -> String {
    let mut joined = Vec::new();
    for (index, name) in names.iter().enumerate() {
        if index > 0 {
            joined.push(0xff);
        }
        joined.extend_from_slice(name.as_bytes());
    }
    let per_name = (48 - (HASH_LENGTH + 1)) / names.len();
    let slugs: Vec<String> = names.iter().map(|name| extract_safe_name(name, per_name - 2)).collect();
    format!("{}---{}", slugs.join("--"), sha256_prefix(&joined))
}

/// JupyterHub's `escapism.escape(name, safe=[a-z0-9], escape_char='-').lower()`, the `escape` scheme (<7).
fn escape(name: &str) -> String {
    let mut escaped = String::new();
    for character in name.chars() {
        if character.is_ascii_lowercase() || character.is_ascii_digit() {
            escaped.push(character);
        } else {
            let mut buffer = [0u8; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                escaped.push_str(&format!("-{byte:02x}"));
            }
        }
    }
    escaped
}

/// The template fields of one server (`_expand_user_properties`).
#[derive(Debug, Clone)]
pub(crate) struct NameFields {
    pub(crate) username: String,
    pub(crate) servername: String,
    pub(crate) safe_username: String,
    pub(crate) safe_servername: String,
    pub(crate) safe_user_server: String,
    pub(crate) escaped_username: String,
    pub(crate) escaped_servername: String,
    pub(crate) hubnamespace: String,
    pub(crate) namespace: String,
    pub(crate) pod_name: String,
    pub(crate) pvc_name: String,
}

impl NameFields {
    pub(crate) fn new(username: &str, servername: &str, namespace: &str) -> NameFields {
        let safe_username = safe_slug(username);
        let safe_servername = if servername.is_empty() { String::new() } else { safe_slug(servername) };
        let safe_user_server = if safe_username.len() + safe_servername.len() + 2 > 48 {
            multi_slug(&[username, servername])
        } else if servername.is_empty() {
            safe_username.clone()
        } else {
            format!("{safe_username}--{safe_servername}")
        };
        NameFields {
            username: username.to_owned(),
            servername: servername.to_owned(),
            safe_username,
            safe_servername,
            safe_user_server,
            escaped_username: escape(username),
            escaped_servername: escape(servername),
            hubnamespace: namespace.to_owned(),
            namespace: namespace.to_owned(),
            pod_name: String::new(),
            pvc_name: String::new(),
        }
    }

    /// Formats a template: `{field}` replaced, unknown fields left alone, and a trailing `-` stripped unless the
    /// template itself ends in one.
    pub(crate) fn expand(&self, template: &str) -> String {
        let escaped_user_server = if self.servername.is_empty() {
            self.escaped_username.clone()
        } else {
            format!("{}--{}", self.escaped_username, self.escaped_servername)
        };
        let fields: [(&str, &str); 16] = [
            ("username", &self.safe_username),
            ("servername", &self.safe_servername),
            ("user_server", &self.safe_user_server),
            ("safe_username", &self.safe_username),
            ("safe_servername", &self.safe_servername),
            ("safe_user_server", &self.safe_user_server),
            ("escaped_username", &self.escaped_username),
            ("escaped_servername", &self.escaped_servername),
            ("escaped_user_server", &escaped_user_server),
            ("unescaped_username", &self.username),
            ("unescaped_servername", &self.servername),
            ("hubnamespace", &self.hubnamespace),
            ("namespace", &self.namespace),
            ("pod_name", &self.pod_name),
            ("pvc_name", &self.pvc_name),
            ("userid", ""),
        ];
        let mut output = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            output.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match after.find('}').map(|end| (&after[..end], end)) {
                Some((field, end)) if fields.iter().any(|(name, _)| *name == field) => {
                    let value = fields.iter().find(|(name, _)| *name == field).map(|(_, value)| *value).unwrap_or("");
                    output.push_str(value);
                    rest = &after[end + 1..];
                }
                _ => {
                    output.push('{');
                    rest = after;
                }
            }
        }
        output.push_str(rest);
        if !template.ends_with('-') {
            while output.ends_with('-') {
                output.pop();
            }
        }
        output
    }

    /// Every string inside a JSON value expanded (volumes, mounts, containers, labels).
    pub(crate) fn expand_json(&self, value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => serde_json::Value::String(self.expand(text)),
            serde_json::Value::Array(items) => items.iter().map(|item| self.expand_json(item)).collect(),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter().map(|(key, value)| (self.expand(key), self.expand_json(value))).collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_name(user: &str, server: &str) -> String {
        NameFields::new(user, server, "jhub").expand("jupyter-{user_server}")
    }

    /// The names KubeSpawner 7.1.0 produced for these users (research, §1.3).
    #[test]
    fn kubespawner_names() {
        assert_eq!(pod_name("alice", ""), "jupyter-alice");
        assert_eq!(pod_name("alice", "gpu"), "jupyter-alice--gpu");
        assert_eq!(pod_name("jean-luc", "My Server"), "jupyter-jean-luc--my-server---c2d9a82f");
        assert_eq!(pod_name("Alice.Smith@example.com", ""), "jupyter-alice-smith-example-com---66da998b");
        assert_eq!(label_slug("Alice.Smith@example.com"), "alice-smith-example-c---66da998b");
        assert_eq!(pod_name("1user", ""), "jupyter-x-1user---b5732d84");
        assert_eq!(pod_name("a--b", ""), "jupyter-a-b---90827a2e");
        assert_eq!(pod_name(&"x".repeat(60), ""), "jupyter-xxxxxxxxxxxxxxxxx--x---fb2abac5");
        assert_eq!(
            pod_name("averyveryverylongusernamexyz123456", "another-long-server-name"),
            pod_name("averyveryverylongusernamexyz123456", "another-long-server-name")
        );
        assert!(
            pod_name("averyveryverylongusernamexyz123456", "another-long-server-name")
                .starts_with("jupyter-averyveryverylong--another-long-serv---")
        );
    }

    #[test]
    fn escape_scheme_and_templates() {
        let fields = NameFields::new("Alice.Smith@example.com", "", "jhub");
        assert_eq!(fields.escaped_username, "-41lice-2e-53mith-40example-2ecom");
        assert_eq!(fields.expand("claim-{username}{servername}"), "claim-alice-smith-example-com---66da998b");
        assert_eq!(NameFields::new("alice", "", "ns").expand("{username}-{servername}"), "alice");
        assert_eq!(NameFields::new("alice", "", "ns").expand("{username}-{unknown}-"), "alice-{unknown}-");
    }
}
