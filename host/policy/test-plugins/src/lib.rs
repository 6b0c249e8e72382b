//! Paths of the components in `plugins/`, built for wasm32-wasip2 by this crate's build script during the test
//! build. Tests and benches of `wasmhub-policy` read the bytes from here; nothing under `plugins/` is committed
//! as a binary.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The bytes of a built component; panics with the path when it is missing.
pub fn component_bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// The repository's root, for tests that read `policies/` or `wit/`.
pub fn repository_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(3).expect("three levels deep").to_owned()
}
