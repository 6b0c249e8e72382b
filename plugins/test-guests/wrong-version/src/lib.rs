//! Test guest: a cull policy for `wasmhub:policy@0.2.0`, which a 0.1.x host must refuse at load time.

wit_bindgen::generate!({ world: "cull-policy", path: "wit" });

use exports::wasmhub::policy::cull::{Action, Decision, Guest as Cull, Server};
use exports::wasmhub::policy::plugin::Guest as Plugin;

struct WrongVersion;

impl Plugin for WrongVersion {
    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl Cull for WrongVersion {
    fn decide(_settings: String, servers: Vec<Server>) -> Result<Vec<Decision>, String> {
        Ok(servers.iter().map(|_| Decision { action: Action::Stop, reason: "0.2.0 stops everything".to_owned() }).collect())
    }
}

export!(WrongVersion);
