//! Label and field selectors with the API server's grammar and its per-resource field whitelist, so a client that
//! selects on a field the real server refuses is refused here too.

use serde_json::Value;

use super::resources::Resource;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; the error is the API server's message.
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_outside_parentheses(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(requirements))
    }

    pub(crate) fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |key: &str| labels.and_then(|labels| labels.get(key)).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            LabelRequirement::Exists(key) => get(key).is_some(),
            LabelRequirement::NotExists(key) => get(key).is_none(),
            LabelRequirement::Equals(key, value) => get(key) == Some(value.as_str()),
            // `!=` also matches objects without the label, as on the real server.
            LabelRequirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
            LabelRequirement::In(key, values) => get(key).is_some_and(|found| values.iter().any(|v| v == found)),
            LabelRequirement::NotIn(key, values) => !get(key).is_some_and(|found| values.iter().any(|v| v == found)),
        })
    }
}

fn split_outside_parentheses(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<LabelRequirement, String> {
    let invalid = || format!("unable to parse requirement: found '{part}', expected: identifier");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(checked_key(key.trim())?));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = part.split_once(operator) {
            let values = rest.trim().strip_prefix('(').and_then(|rest| rest.strip_suffix(')')).ok_or_else(invalid)?;
            let values: Vec<String> = values.split(',').map(|value| value.trim().to_owned()).collect();
            let key = checked_key(key.trim())?;
            return Ok(if negated { LabelRequirement::NotIn(key, values) } else { LabelRequirement::In(key, values) });
        }
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(checked_key(key.trim())?, value.trim().to_owned()));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelRequirement::Equals(checked_key(key.trim())?, value.trim().to_owned()));
    }
    Ok(LabelRequirement::Exists(checked_key(part)?))
}

fn checked_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("unable to parse requirement: invalid label key \"{key}\""));
    }
    Ok(key.to_owned())
}

/// A parsed `fieldSelector`: `=`/`==` and `!=` on the fields the resource supports.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(text: &str, resource: Resource) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (field, equal, value) = if let Some((field, value)) = part.split_once("!=") {
                (field, false, value)
            } else if let Some((field, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (field, true, value)
            } else {
                return Err(format!("invalid selector: '{part}'; can't understand '{part}'"));
            };
            let field = field.trim();
            if !resource.selectable_fields().contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(requirements))
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let mut current = object;
            for segment in field.split('.') {
                current = current.get(segment).unwrap_or(&Value::Null);
            }
            // The server compares a field's string form; an absent field is the empty string.
            let same = match current {
                Value::String(text) => text == value,
                Value::Null => value.is_empty(),
                other => other.to_string() == *value,
            };
            same == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_grammar() {
        let labels = json!({"component": "singleuser-server", "app": "jupyterhub", "tier": "a"});
        let labels = labels.as_object();
        let check = |selector: &str| LabelSelector::parse(selector).unwrap().matches(labels);
        assert!(check("component=singleuser-server,app==jupyterhub"));
        assert!(check("tier in (a, b),!missing,app"));
        assert!(!check("tier notin (a,b)"));
        assert!(check("missing!=x"));
        assert!(!check("component!=singleuser-server"));
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors_only_on_supported_fields() {
        let pod = json!({"metadata": {"name": "jupyter-alice", "namespace": "ns"}, "status": {"phase": "Running"}});
        let selector = FieldSelector::parse("metadata.name=jupyter-alice,status.phase!=Pending", Resource::Pods);
        assert!(selector.unwrap().matches(&pod));
        let refused = FieldSelector::parse("spec.bogus=1", Resource::Pods).unwrap_err();
        assert_eq!(refused, "field label not supported: spec.bogus");
    }
}
