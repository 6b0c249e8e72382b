//! The reference `docs/config.md`, generated from the section declarations so that it cannot drift.

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
