//! What is generated from the section declarations so that it cannot drift: the reference `docs/config.md`, and the
//! Helm chart's `values.schema.json` (types) and `files/keys.json` (the key tree its templates check names against).

use std::fmt::Write;

use crate::Config;
use crate::env::ENV_OVERRIDES;
use crate::schema::DocEntry;
use crate::singleuser::SpawnerOverride;

/// The full text of `docs/config.md`.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# `wasmhub.yaml` reference\n\n\
         <!-- Generated from host/config/src by `cargo nextest run -p wasmhub-config`; do not edit by hand. -->\n\n\
         One YAML file shaped like Zero-to-JupyterHub's `values.yaml`. Check it with `wasmhub config check FILE`:\n\
         every problem is reported with file, line, column and key, and an unknown key names the nearest valid\n\
         one. Examples that load are in `deploy/examples/`. Keys marked \"read by the Helm chart only\" are\n\
         accepted so that z2jh values load, and the hub ignores them.\n\n\
         ## Environment variables\n\n\
         A set (non-empty) variable wins over the file.\n\n\
         | variable | overrides |\n|---|---|\n",
    );
    for entry in ENV_OVERRIDES {
        let _ = writeln!(out, "| `{}` | `{}` |", entry.var, entry.key);
    }

    let mut entries = Vec::new();
    Config::document_keys("", &mut entries);
    let mut in_table = false;
    for entry in &entries {
        let top_level = !entry.key.contains(['.', '[']);
        if top_level && entry.default.is_empty() {
            let _ = write!(out, "\n## `{}`\n\n{}\n\n", entry.key, entry.doc);
            out.push_str(TABLE_HEAD);
            in_table = true;
            continue;
        }
        if top_level && in_table {
            out.push_str("\n## Other top-level keys\n\n");
            out.push_str(TABLE_HEAD);
            in_table = false;
        }
        row(&mut out, entry);
    }

    let mut override_entries = Vec::new();
    SpawnerOverride::document_keys("", &mut override_entries);
    out.push_str(
        "\n## `kubespawner_override` keys\n\n\
         Allowed in `singleuser.profileList[].kubespawner_override`, in each choice and unlisted choice of\n\
         `profile_options`, and in `hub.config.KubeSpawner`. The set is closed: any other key is an error (KubeSpawner\n\
         would ignore it). Unset keys keep the value from `singleuser`; mappings are merged key by key, lists and\n\
         scalars replace.\n\n",
    );
    out.push_str(TABLE_HEAD);
    for entry in &override_entries {
        row(&mut out, entry);
    }
    out
}

const TABLE_HEAD: &str = "| key | type | default | description |\n|---|---|---|---|\n";

fn row(out: &mut String, entry: &DocEntry) {
    let default = match entry.default.as_str() {
        "" | "—" => entry.default.clone(),
        text => format!("`{}`", text.replace('|', "\\|")),
    };
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} |",
        entry.key,
        entry.ty.replace('|', "\\|"),
        default,
        entry.doc.replace('|', "\\|")
    );
}

/// The Helm chart's `values.schema.json`: every declared key with its type and reference text. Unknown keys are
/// not refused here, since Helm checks the schema before any template runs and could not name the nearest key;
/// the chart's `_keys.tpl` refuses them with the hint `wasmhub config check` gives, from [`values_key_tree`].
pub fn values_schema() -> serde_json::Value {
    let mut schema = <Config as crate::schema::FromYaml>::json_schema();
    // `section!` always writes an object; anything else is a bug in the macro, which the generation test shows.
    let object = schema.as_object_mut().expect("a section's schema is an object");
    object.insert("$schema".to_owned(), "http://json-schema.org/draft-07/schema#".into());
    object.insert("title".to_owned(), "wasmhub chart values (generated from host/config)".into());
    schema
}

/// The tree of known keys for the chart's key check: a section is an object of its keys, `"*"` stands for any
/// name of a mapping, `"[]"` for the items of a list, and null for a value whose inside is not checked.
pub fn values_key_tree() -> serde_json::Value {
    key_tree(&values_schema())
}

fn key_tree(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        return Value::Object(properties.iter().map(|(key, value)| (key.clone(), key_tree(value))).collect());
    }
    // A mapping or list of values whose inside is not checked is itself a leaf.
    if let Some(value) = schema.get("additionalProperties").filter(|value| value.is_object()) {
        let inner = key_tree(value);
        return if inner.is_null() { inner } else { json!({ "*": inner }) };
    }
    if let Some(items) = schema.get("items") {
        let inner = key_tree(items);
        return if inner.is_null() { inner } else { json!({ "[]": inner }) };
    }
    if let Some(first) = schema.get("anyOf").and_then(Value::as_array).and_then(|options| options.first()) {
        return key_tree(first);
    }
    Value::Null
}
