//! How a policy call ended, and the per-policy counters the status API reports.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The class of a call's outcome. Every call to a component ends in exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeClass {
    /// The policy decided, and the host accepted the decision.
    Ok,
    /// The policy returned `err`: it could not decide.
    PolicyError,
    /// The epoch deadline passed.
    Timeout,
    /// The policy tried to grow memory past its cap.
    MemoryLimit,
    /// Any other trap: a panic, an unreachable, a call to an unlinked import.
    Crash,
    /// The policy returned something the host refuses: too large, unknown slugs, a patch outside its paths.
    InvalidOutput,
    /// The policy was not called: no version loaded, input over the cap, or no free instance slot.
    Unavailable,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 7] = [
        OutcomeClass::Ok,
        OutcomeClass::PolicyError,
        OutcomeClass::Timeout,
        OutcomeClass::MemoryLimit,
        OutcomeClass::Crash,
        OutcomeClass::InvalidOutput,
        OutcomeClass::Unavailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::PolicyError => "policy-error",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::MemoryLimit => "memory-limit",
            OutcomeClass::Crash => "crash",
            OutcomeClass::InvalidOutput => "invalid-output",
            OutcomeClass::Unavailable => "unavailable",
        }
    }

    fn index(self) -> usize {
        OutcomeClass::ALL.iter().position(|class| *class == self).unwrap_or(0)
    }
}

impl std::fmt::Display for OutcomeClass {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A call that did not produce an accepted decision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct CallFailure {
    pub class: OutcomeClass,
    pub message: String,
}

impl CallFailure {
    pub(crate) fn new(class: OutcomeClass, message: impl Into<String>) -> Self {
        CallFailure { class, message: message.into() }
    }
}

/// Call counts by outcome class, readable while calls run.
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    counts: [AtomicU64; 7],
}

impl OutcomeCounters {
    pub(crate) fn record(&self, class: OutcomeClass) {
        self.counts[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, class: OutcomeClass) -> u64 {
        self.counts[class.index()].load(Ordering::Relaxed)
    }

    /// `(class name, count)` for every class, zeros included.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        OutcomeClass::ALL.iter().map(|class| (class.name(), self.get(*class))).collect()
    }
}
