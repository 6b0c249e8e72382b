//! The policy host: runs the four hooks (auth, profiles, pods, cull) either with the built-in Rust defaults or
//! with sandboxed WebAssembly components bound by policy files and hot-swapped while calls run.
//!
//! Only this crate knows wasmtime. The hub talks to [`PolicyHost`]; `wasmhub policy check|run` uses
//! [`LoadedComponent`] directly.

mod bindings;
mod component;
mod engine;
pub mod hooks;
mod host;
pub mod native;
mod outcome;
mod pod_patch;
mod policy_file;
mod smoke;

pub use component::{CallPhases, CallReport, ComponentError, LoadedComponent, LogLine, WIT_VERSION, exported_hooks};
pub use engine::{CompiledComponent, EPOCH_TICK, EngineError, MAX_CONCURRENT_INSTANCES, PolicyEngine};
pub use host::{PodPolicyError, PolicyHost, PolicyHostConfig, PolicyStatus};
pub use outcome::{CallFailure, OutcomeClass, OutcomeCounters};
pub use pod_patch::{DEFAULT_ALLOWED_PATHS, apply_pod_patch};
pub use policy_file::{FailureMode, Limits, MAX_MEMORY_MIB, MAX_TIMEOUT_MS, PolicyFile, PolicyFileError, PolicyMode};
pub use smoke::{HookInput, RunOutput, run_input, smoke_call};
