//! jupyterhub-idle-culler's server rules: skip servers that are not ready, stop a server idle for at least
//! `timeout` seconds or older than `max_age`, and remove named servers only when asked to.

use serde::{Deserialize, Serialize};

use crate::hooks::{CullAction, CullDecision, CullServer};

/// The idle culler's options (z2jh `cull.*` defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CullSettings {
    /// `--timeout`: seconds of inactivity after which a server is stopped.
    pub timeout_seconds: u64,
    /// `--max-age`: seconds after which a server is stopped however active it is; 0 turns this off.
    pub max_age_seconds: u64,
    pub cull_default_servers: bool,
    pub cull_named_servers: bool,
    /// `--remove-named-servers`: delete named servers after stopping them.
    pub remove_named_servers: bool,
}

impl Default for CullSettings {
    fn default() -> Self {
        CullSettings {
            timeout_seconds: 3600,
            max_age_seconds: 0,
            cull_default_servers: true,
            cull_named_servers: true,
            remove_named_servers: false,
        }
    }
}

/// One decision per server, in order.
pub fn decide_cull(settings: &CullSettings, servers: &[CullServer]) -> Vec<CullDecision> {
    servers.iter().map(|server| decide_one(settings, server)).collect()
}

fn decide_one(settings: &CullSettings, server: &CullServer) -> CullDecision {
    let keep = |reason: String| CullDecision { action: CullAction::Keep, reason };
    if server.pending {
        return keep("pending".to_owned());
    }
    if !server.ready {
        return keep("not ready".to_owned());
    }
    let is_named = !server.name.is_empty();
    if !is_named && !settings.cull_default_servers {
        return keep("default servers are not culled".to_owned());
    }
    if is_named && !settings.cull_named_servers {
        return keep("named servers are not culled".to_owned());
    }
    let stop = if is_named && settings.remove_named_servers { CullAction::StopAndRemove } else { CullAction::Stop };
    if server.inactive_seconds >= settings.timeout_seconds {
        return CullDecision {
            action: stop,
            reason: format!("inactive for {}s (timeout {}s)", server.inactive_seconds, settings.timeout_seconds),
        };
    }
    if settings.max_age_seconds > 0 && server.age_seconds >= settings.max_age_seconds {
        return CullDecision {
            action: stop,
            reason: format!("running for {}s (max age {}s)", server.age_seconds, settings.max_age_seconds),
        };
    }
    keep(format!("inactive for {}s (timeout {}s)", server.inactive_seconds, settings.timeout_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::User;

    fn server(name: &str, inactive_seconds: u64, age_seconds: u64) -> CullServer {
        CullServer {
            user: User { name: "alice".into(), admin: false, groups: vec![] },
            name: name.into(),
            profile: String::new(),
            ready: true,
            pending: false,
            age_seconds,
            inactive_seconds,
        }
    }

    #[test]
    fn idle_servers_stop_and_named_ones_are_removed_only_when_asked() {
        let mut settings = CullSettings { timeout_seconds: 600, ..CullSettings::default() };
        let servers = [server("", 600, 700), server("gpu", 599, 700), server("big", 601, 700)];
        let actions: Vec<_> = decide_cull(&settings, &servers).into_iter().map(|d| d.action).collect();
        assert_eq!(actions, [CullAction::Stop, CullAction::Keep, CullAction::Stop]);
        settings.remove_named_servers = true;
        assert_eq!(decide_cull(&settings, &servers[2..])[0].action, CullAction::StopAndRemove);
    }

    #[test]
    fn max_age_pending_and_selection_flags() {
        let settings = CullSettings {
            timeout_seconds: 600,
            max_age_seconds: 1000,
            cull_named_servers: false,
            ..CullSettings::default()
        };
        assert_eq!(decide_cull(&settings, &[server("", 1, 1000)])[0].action, CullAction::Stop);
        assert_eq!(decide_cull(&settings, &[server("x", 10_000, 10_000)])[0].action, CullAction::Keep);
        let mut pending = server("", 10_000, 10_000);
        pending.pending = true;
        assert_eq!(decide_cull(&settings, &[pending])[0].action, CullAction::Keep);
    }
}
