//! Test guest: a cull policy for `wasmhub:policy@0.1.1` that exports one extra function. The 0.1.0 host
//! loads it by semver and calls only what 0.1.0 has.

wit_bindgen::generate!({ world: "cull-policy", path: "wit" });

use exports::wasmhub::policy::cull::{Action, Decision, Guest as Cull, Server};
use exports::wasmhub::policy::plugin::Guest as Plugin;

struct FutureMinor;

impl Plugin for FutureMinor {
    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }
}

impl Cull for FutureMinor {
    fn decide(_settings: String, servers: Vec<Server>) -> Result<Vec<Decision>, String> {
        wasmhub::policy::host::log(wasmhub::policy::types::LogLevel::Info, "0.1.1 guest deciding");
        Ok(servers.iter().map(|_| Decision { action: Action::Keep, reason: "0.1.1 keeps everything".to_owned() }).collect())
    }

    fn describe() -> String {
        "a 0.1.1 cull policy".to_owned()
    }
}

export!(FutureMinor);
