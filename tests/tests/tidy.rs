//! Workspace tidiness, checked from `cargo metadata` and the source tree: workspace crates depend on each other
//! only as the table below allows, wasmtime stays inside wasmhub-policy, every Rust file opens with a `//!` line
//! that says what it is, the hub's rooms import each other without cycles, and every function ARCHITECTURE.md's
//! request paths name exists in the file it names.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Which workspace crates a crate may depend on.
///
/// The dependency rule: cli -> hub -> {store, spawner, kube, policy, proxy} -> model. Only the cli and the
/// system tests name concrete implementations and read the configuration, so they may depend on anything.
struct Rule {
    krate: &'static str,
    /// Allowed as normal, build and dev dependencies; `None` allows every workspace crate.
    deps: Option<&'static [&'static str]>,
    /// Allowed as dev dependencies only, on top of `deps`.
    dev: &'static [&'static str],
    /// Why, in one line.
    why: &'static str,
}

#[rustfmt::skip]
const RULES: &[Rule] = &[
    Rule { krate: "wasmhub-model", deps: Some(&[]), dev: &[],
        why: "the domain vocabulary at the bottom of the graph: pure, no IO, knows no other crate" },
    Rule { krate: "wasmhub-store", deps: Some(&["wasmhub-model"]), dev: &[],
        why: "persists the model's types and nothing else" },
    Rule { krate: "wasmhub-proxy", deps: Some(&[]), dev: &[],
        why: "a standalone configurable-http-proxy replacement (`wasmhub proxy`), ignorant of the hub" },
    Rule { krate: "wasmhub-policy", deps: Some(&[]), dev: &["wasmhub-policy-test-plugins"],
        why: "runs policy hooks on plain data; its own tests load the components test-plugins builds" },
    Rule { krate: "wasmhub-policy-test-plugins", deps: Some(&[]), dev: &[],
        why: "only builds plugins/ and exports the component paths" },
    Rule { krate: "wasmhub-spawner", deps: Some(&[]), dev: &[],
        why: "the Spawner trait and the local spawner, in their own terms" },
    Rule { krate: "wasmhub-config", deps: Some(&[]), dev: &[],
        why: "parses wasmhub.yaml; the cli turns it into each crate's own settings, so it needs no model or policy" },
    Rule { krate: "wasmhub-kube", deps: Some(&["wasmhub-spawner", "wasmhub-model"]), dev: &["wasmhub-testkit"],
        why: "a Spawner implementation; settings come from the cli, pod policies through the spawner's interface" },
    Rule { krate: "wasmhub-testkit", deps: Some(&[]), dev: &[],
        why: "test support (the fake Kubernetes API server) any crate's tests may use, so it depends on none" },
    Rule { krate: "wasmhub-hub",
        deps: Some(&["wasmhub-model", "wasmhub-store", "wasmhub-proxy", "wasmhub-policy", "wasmhub-spawner",
            "wasmhub-kube"]),
        dev: &["wasmhub-testkit", "wasmhub-policy-test-plugins"],
        why: "JupyterHub's API over the layer below; it is handed implementations, it does not read config" },
    Rule { krate: "wasmhub-cli", deps: None, dev: &[],
        why: "the binary: reads config and wires every concrete implementation" },
    Rule { krate: "wasmhub-system-tests", deps: None, dev: &[],
        why: "end-to-end tests link the whole workspace" },
];

/// Crates that may have wasmtime in their dependency graph: the policy host, which embeds it, and the crates that
/// link everything. Elsewhere wasmtime may only arrive through a dependency on wasmhub-policy that `RULES` allows.
const WASMTIME_ALLOWED: &[&str] = &["wasmhub-policy", "wasmhub-cli", "wasmhub-system-tests"];

/// The folders whose Rust files must open with `//!`.
const DOC_ROOTS: &[&str] = &["host", "tests", "plugins"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lies in the workspace root").to_owned()
}

/// `cargo metadata --format-version 1` plus `extra`, parsed.
fn cargo_metadata(extra: &[&str]) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1"])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", Path::new(&cargo).display()));
    assert!(output.status.success(), "cargo metadata failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("cargo metadata: no string `{key}` in {value}"))
}

fn array_of<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_else(|| panic!("cargo metadata: no array `{key}`"))
}

fn rule(krate: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.krate == krate)
}

/// Whether `rule` lets its crate depend on `dep` with `kind` (`None` normal, `Some("build")`, `Some("dev")`).
fn allows(rule: &Rule, dep: &str, kind: Option<&str>) -> bool {
    let Some(deps) = rule.deps else { return true };
    deps.contains(&dep) || (kind == Some("dev") && rule.dev.contains(&dep))
}

fn kind_name(kind: Option<&str>) -> &str {
    kind.unwrap_or("normal")
}

/// The names of the workspace's crates, from `--no-deps` metadata (which lists only them).
fn member_names(metadata: &Value) -> BTreeSet<String> {
    array_of(metadata, "packages").iter().map(|package| str_of(package, "name").to_owned()).collect()
}

#[test]
fn workspace_crates_depend_on_each_other_only_as_the_table_allows() {
    let metadata = cargo_metadata(&["--no-deps"]);
    let members = member_names(&metadata);
    let mut failures = Vec::new();
    for stale in RULES.iter().filter(|rule| !members.contains(rule.krate)) {
        failures.push(format!("{}: in the table but not a workspace crate; remove its row", stale.krate));
    }
    for package in array_of(&metadata, "packages") {
        let name = str_of(package, "name");
        let Some(rule) = rule(name) else {
            failures.push(format!("{name}: a workspace crate with no row in RULES; add one saying what it may use"));
            continue;
        };
        for dep in array_of(package, "dependencies") {
            let dep_name = str_of(dep, "name");
            let kind = dep["kind"].as_str();
            if members.contains(dep_name) && !allows(rule, dep_name, kind) {
                failures.push(format!(
                    "{name} has a {} dependency on {dep_name}, which the rule for {name} does not allow \
                     (allowed: {}; dev only: {}; why: {})",
                    kind_name(kind),
                    rule.deps.map_or("anything".to_owned(), |deps| list(deps)),
                    list(rule.dev),
                    rule.why,
                ));
            }
        }
    }
    assert!(failures.is_empty(), "dependency rule (tests/tests/tidy.rs RULES) broken:\n  {}", failures.join("\n  "));
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// One edge of the resolve graph: the package it leads to and its kinds (`None` normal, `Some("dev")`, ...).
struct Edge {
    to: String,
    kinds: Vec<Option<String>>,
}

#[test]
fn wasmtime_is_linked_only_through_the_policy_host() {
    let metadata = cargo_metadata(&[]);
    let name_of: BTreeMap<&str, &str> = array_of(&metadata, "packages")
        .iter()
        .map(|package| (str_of(package, "id"), str_of(package, "name")))
        .collect();
    let mut graph: BTreeMap<&str, Vec<Edge>> = BTreeMap::new();
    for node in array_of(&metadata["resolve"], "nodes") {
        let edges = array_of(node, "deps")
            .iter()
            .map(|dep| Edge {
                to: str_of(dep, "pkg").to_owned(),
                kinds: array_of(dep, "dep_kinds").iter().map(|kind| kind["kind"].as_str().map(str::to_owned)).collect(),
            })
            .collect();
        graph.insert(str_of(node, "id"), edges);
    }
    let members: Vec<&str> = array_of(&metadata, "workspace_members").iter().map(|id| id.as_str().unwrap()).collect();
    let mut failures = Vec::new();
    for &root in &members {
        let root_name = name_of[root];
        if WASMTIME_ALLOWED.contains(&root_name) {
            continue;
        }
        // Breadth first, remembering how each package was reached so the failure can show the chain.
        let mut reached_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([root]);
        while let Some(id) = queue.pop_front() {
            let from_name = name_of[id];
            for edge in graph.get(id).map(Vec::as_slice).unwrap_or_default() {
                let to_name = name_of[edge.to.as_str()];
                // The crate's own dev dependencies count; further down, only what gets linked (normal and build).
                let kinds: Vec<Option<&str>> =
                    edge.kinds.iter().map(Option::as_deref).filter(|kind| id == root || *kind != Some("dev")).collect();
                if kinds.is_empty() || edge.to == root || reached_from.contains_key(edge.to.as_str()) {
                    continue;
                }
                // wasmtime inside the policy host is what that crate is for: a workspace crate the table lets
                // depend on wasmhub-policy gets it from there legitimately.
                let sanctioned = to_name == "wasmhub-policy"
                    && rule(from_name).is_some_and(|rule| kinds.iter().all(|kind| allows(rule, to_name, *kind)));
                if sanctioned {
                    continue;
                }
                reached_from.insert(edge.to.as_str(), id);
                if to_name == "wasmtime" {
                    let mut chain = vec![to_name];
                    let mut at = edge.to.as_str();
                    while let Some(&parent) = reached_from.get(at) {
                        chain.push(name_of[parent]);
                        at = parent;
                    }
                    chain.reverse();
                    failures.push(format!(
                        "{root_name} has wasmtime in its dependency graph ({}); only {} may: it belongs inside the \
                         policy host",
                        chain.join(" -> "),
                        WASMTIME_ALLOWED.join(", ")
                    ));
                    continue;
                }
                queue.push_back(edge.to.as_str());
            }
        }
    }
    assert!(failures.is_empty(), "wasmtime rule (tests/tests/tidy.rs) broken:\n  {}", failures.join("\n  "));
}

/// Every `.rs` file under `dir`, skipping build output, npm packages, hidden folders and generated files.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                rust_files(&path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_comment_saying_what_it_is() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in DOC_ROOTS {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(files.len() > 50, "found only {} Rust files under {DOC_ROOTS:?}", files.len());
    let lacking: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            // `@generated` (within the first lines) marks a file a tool wrote, by the usual convention.
            let generated = text.lines().take(5).any(|line| line.contains("@generated"));
            !generated && !text.starts_with("//!")
        })
        .map(|path| path.strip_prefix(&root).unwrap_or(path).display().to_string())
        .collect();
    assert!(
        lacking.is_empty(),
        "these files do not start with a `//!` line saying what they are (no blank lines before it; `#![...]` \
         attributes go after the `//!` block):\n  {}",
        lacking.join("\n  ")
    );
}

/// The room of a file of `host/hub/src`: its first path component without `.rs` (`spawns/mod.rs` is `spawns`).
fn hub_room(relative: &Path) -> String {
    let first = relative.components().next().expect("a path inside host/hub/src");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The first names of what follows a `crate::`: one name, or each item of a `{...}` group.
fn referenced_items(after: &str) -> Vec<String> {
    let name = |text: &str| -> String {
        text.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let Some(group) = after.strip_prefix('{') else { return vec![name(after)] };
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (index, character) in group.char_indices() {
        match character {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(name(&group[start..index]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(name(&group[start..index]));
                start = index + 1;
            }
            _ => {}
        }
    }
    items
}

#[test]
fn the_hubs_rooms_import_each_other_without_cycles() {
    let source = workspace_root().join("host/hub/src");
    let mut files = Vec::new();
    rust_files(&source, &mut files);
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let relative = path.strip_prefix(&source).expect("under host/hub/src");
        let room = hub_room(relative);
        // The crate root and the shared test helpers may reach every room.
        if room == "lib" || room == "tests" {
            continue;
        }
        // Tests may reach across rooms (test modules in their own files, or after `#[cfg(test)]`); only the code's
        // own imports make the architecture.
        let file_name = relative.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if file_name == "tests.rs" || file_name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let used = rooms.entry(room.clone()).or_default();
        for reference in code.split("crate::").skip(1) {
            for name in referenced_items(reference) {
                let is_room = source.join(format!("{name}.rs")).exists() || source.join(&name).is_dir();
                if is_room && name != room && name != "tests" {
                    used.insert(name);
                }
            }
        }
    }
    // Every cycle shows as a room that reaches itself.
    let mut cycles = Vec::new();
    for start in rooms.keys() {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<Vec<String>> = VecDeque::from([vec![start.clone()]]);
        while let Some(path) = queue.pop_front() {
            let last = path.last().expect("non-empty");
            for next in rooms.get(last).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    queue.push_back(longer);
                }
            }
        }
    }
    assert!(rooms.len() >= 8, "found only the rooms {:?} in host/hub/src", rooms.keys());
    assert!(cycles.is_empty(), "host/hub/src's rooms import each other in a cycle:\n  {}", cycles.join("\n  "));
}

#[test]
fn every_function_architecture_md_names_in_a_request_path_exists() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text.split("## Request paths").nth(1).expect("ARCHITECTURE.md has a `## Request paths` section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut named = 0;
    let mut missing = Vec::new();
    for quoted in section.split('`').skip(1).step_by(2) {
        let Some((file, function)) = quoted.split_once(".rs::") else { continue };
        named += 1;
        let path = root.join(format!("{file}.rs"));
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let defined = source.contains(&format!("fn {function}(")) || source.contains(&format!("fn {function}<"));
        if !defined {
            missing.push(format!("{file}.rs::{function}"));
        }
    }
    assert!(named >= 20, "ARCHITECTURE.md's request paths name only {named} functions as `file.rs::function`");
    assert!(missing.is_empty(), "ARCHITECTURE.md names functions that do not exist:\n  {}", missing.join("\n  "));
}
