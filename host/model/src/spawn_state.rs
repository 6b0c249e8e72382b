//! The spawn state machine of one server, and which moves between states are allowed.
//!
//! The hub persists each state before acting on it (the store refuses moves this table does not allow), so after
//! a crash the stored state says what may exist: `Requested` means nothing was started yet, `Starting` or later
//! means objects may exist and must be adopted or cleaned up.

use std::fmt;

/// Where a server is in its life. A server that has never run, or was stopped cleanly, is `Stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpawnState {
    /// The spawn was accepted and its record (options, object names) written; nothing is started yet.
    Requested,
    /// The spawner is creating the server; objects may exist.
    Starting,
    /// The server answered its readiness probe and its route exists.
    Running,
    /// A stop was requested and the spawner is tearing the server down.
    Stopping,
    /// Nothing runs.
    Stopped,
    /// A start or stop failed; the failure message is kept until the next spawn.
    Failed,
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a server cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: SpawnState,
    pub to: SpawnState,
}

impl SpawnState {
    pub const ALL: [SpawnState; 6] = [
        SpawnState::Requested,
        SpawnState::Starting,
        SpawnState::Running,
        SpawnState::Stopping,
        SpawnState::Stopped,
        SpawnState::Failed,
    ];

    /// Whether a server may move from `self` to `next`.
    pub fn can_transition_to(self, next: SpawnState) -> bool {
        use SpawnState::*;
        matches!(
            (self, next),
            // A spawn starts from rest, or retries after a failure.
            (Stopped | Failed, Requested)
                // Nothing was started yet, so a cancelled or refused request needs no stop.
                | (Requested, Starting | Stopped | Failed)
                | (Starting, Running | Stopping | Failed)
                // A poll that finds the process gone moves straight to Stopped: there is nothing to stop.
                | (Running, Stopping | Stopped)
                | (Stopping, Stopped | Failed)
                // Cleaning up after a failure may need the spawner to remove leftovers.
                | (Failed, Stopping | Stopped)
        )
    }

    /// `next` if the move is allowed, else the typed error.
    pub fn transition_to(self, next: SpawnState) -> Result<SpawnState, IllegalTransition> {
        if self.can_transition_to(next) { Ok(next) } else { Err(IllegalTransition { from: self, to: next }) }
    }

    /// Active servers count for `state=active` and for limits: anything not at rest.
    pub fn is_active(self) -> bool {
        matches!(self, SpawnState::Requested | SpawnState::Starting | SpawnState::Running | SpawnState::Stopping)
    }

    /// JupyterHub's `ready`: running and routed.
    pub fn is_ready(self) -> bool {
        self == SpawnState::Running
    }

    /// JupyterHub's `pending` field: `"spawn"`, `"stop"` or none.
    pub fn pending(self) -> Option<&'static str> {
        match self {
            SpawnState::Requested | SpawnState::Starting => Some("spawn"),
            SpawnState::Stopping => Some("stop"),
            SpawnState::Running | SpawnState::Stopped | SpawnState::Failed => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpawnState::Requested => "requested",
            SpawnState::Starting => "starting",
            SpawnState::Running => "running",
            SpawnState::Stopping => "stopping",
            SpawnState::Stopped => "stopped",
            SpawnState::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<SpawnState> {
        SpawnState::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

impl fmt::Display for SpawnState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::SpawnState::{self, *};

    #[test]
    fn the_happy_path_is_allowed() {
        let path = [Stopped, Requested, Starting, Running, Stopping, Stopped];
        for pair in path.windows(2) {
            assert_eq!(pair[0].transition_to(pair[1]), Ok(pair[1]));
        }
    }

    #[test]
    fn the_whole_table() {
        let allowed = [
            (Stopped, Requested),
            (Failed, Requested),
            (Requested, Starting),
            (Requested, Stopped),
            (Requested, Failed),
            (Starting, Running),
            (Starting, Stopping),
            (Starting, Failed),
            (Running, Stopping),
            (Running, Stopped),
            (Stopping, Stopped),
            (Stopping, Failed),
            (Failed, Stopping),
            (Failed, Stopped),
        ];
        for from in SpawnState::ALL {
            for to in SpawnState::ALL {
                assert_eq!(from.can_transition_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
        assert_eq!(
            Stopped.transition_to(Running).unwrap_err().to_string(),
            "a server cannot go from stopped to running"
        );
    }

    #[test]
    fn names_round_trip_and_pending_matches_jupyterhub() {
        for state in SpawnState::ALL {
            assert_eq!(SpawnState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SpawnState::parse("ready"), None);
        assert_eq!(Starting.pending(), Some("spawn"));
        assert_eq!(Stopping.pending(), Some("stop"));
        assert_eq!(Running.pending(), None);
        assert!(Stopping.is_active() && !Failed.is_active() && Running.is_ready());
    }
}
