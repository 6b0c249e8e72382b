//! One loaded component: its hook, its WIT version, and an `InstancePre` from which every call gets a fresh
//! instance in a fresh `Store` with the policy's limits. This is the only place that calls into guests, so it
//! is also where every outcome is classified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use wasmtime::component::{Component, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

use crate::bindings::{self, host, types};
use crate::engine::{EngineError, PolicyEngine};
use crate::hooks::{
    AdminChange, AuthDecision, CullAction, CullDecision, CullServer, Hook, Identity, OptionValue, Profile,
    ProfileChoice, ProfileResolution, SpawnContext, User,
};
use crate::outcome::{CallFailure, OutcomeClass};
use crate::policy_file::Limits;

/// The WIT package version this host was built against.
pub const WIT_VERSION: &str = "0.1.0";

/// A log line a policy wrote through the `host.log` import.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// Host-side per-call limits on logging.
const MAX_LOG_LINES: usize = 64;
const MAX_LOG_BYTES: usize = 1024;

/// The result of one call with what it cost, for counters and for `wasmhub policy run`.
#[derive(Debug)]
pub struct CallReport<T> {
    pub result: Result<T, CallFailure>,
    /// From the fresh `Store` to the instance handed back to the pool, host-side checks included.
    pub elapsed: Duration,
    pub phases: CallPhases,
    pub peak_memory_bytes: usize,
    pub logs: Vec<LogLine>,
}

/// Where a call's time went; `elapsed` minus these is the host's own work (limits, output checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallPhases {
    /// Creating the instance from the `InstancePre` (memory slot, tables, start functions).
    pub instantiate: Duration,
    /// The guest's export, argument and result copying included.
    pub guest: Duration,
    /// Dropping the store: the slot's written pages are wiped before it goes back to the pool.
    pub teardown: Duration,
}

impl<T> CallReport<T> {
    pub fn class(&self) -> OutcomeClass {
        match &self.result {
            Ok(_) => OutcomeClass::Ok,
            Err(failure) => failure.class,
        }
    }
}

/// Why a component cannot serve a hook.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Version(String),
    #[error("cannot link the component: {0}")]
    Link(String),
}

/// A component ready to be instantiated for one hook.
pub struct LoadedComponent {
    engine: PolicyEngine,
    hook: Hook,
    /// The version of `wasmhub:policy` the component was built against, e.g. `0.1.0`.
    wit_version: String,
    pre: HookPre,
    policy_name: Arc<str>,
    pub content_hash: String,
    pub from_cache: bool,
    pub compile_time: Duration,
}

enum HookPre {
    Auth(bindings::auth::AuthPolicyPre<StoreState>),
    Profiles(bindings::profiles::ProfilePolicyPre<StoreState>),
    Pods(bindings::pods::PodPolicyPre<StoreState>),
    Cull(bindings::cull::CullPolicyPre<StoreState>),
}

enum HookInstance {
    Auth(bindings::auth::AuthPolicy),
    Profiles(bindings::profiles::ProfilePolicy),
    Pods(bindings::pods::PodPolicy),
    Cull(bindings::cull::CullPolicy),
}

/// The hooks a component exports, with the `wasmhub:policy` version of each export. Read from the component's
/// type before linking, so a wrong version gets a message that names it rather than a missing-export error.
pub fn exported_hooks(engine: &PolicyEngine, component: &Component) -> Vec<(Hook, String)> {
    let mut hooks = Vec::new();
    for (name, _) in component.component_type().exports(engine.wasmtime()) {
        let Some(rest) = name.strip_prefix("wasmhub:policy/") else { continue };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if let Some(hook) = Hook::ALL.into_iter().find(|hook| hook.wit_interface() == interface) {
            hooks.push((hook, version.to_owned()));
        }
    }
    hooks
}

/// Whether a component built against `version` runs on this host: same major and minor (0.1.x), any patch.
fn version_is_compatible(version: &str) -> bool {
    let mut parts = version.split('.');
    let (Some(major), Some(minor)) = (parts.next(), parts.next()) else { return false };
    let mut ours = WIT_VERSION.split('.');
    Some(major) == ours.next() && Some(minor) == ours.next()
}

impl LoadedComponent {
    /// Compiles (or rehydrates) and links a component for `hook`. No guest code runs here.
    pub fn load(
        engine: &PolicyEngine,
        policy_name: &str,
        hook: Hook,
        bytes: &[u8],
    ) -> Result<LoadedComponent, ComponentError> {
        let compiled = engine.compile(bytes)?;
        let exported = exported_hooks(engine, &compiled.component);
        let Some((_, wit_version)) = exported.iter().find(|(exported_hook, _)| *exported_hook == hook).cloned() else {
            let found: Vec<String> = exported.iter().map(|(hook, version)| format!("{hook}@{version}")).collect();
            return Err(ComponentError::Version(format!(
                "the component does not export wasmhub:policy/{}@{WIT_VERSION} (it exports: {})",
                hook.wit_interface(),
                if found.is_empty() { "no wasmhub:policy interface".to_owned() } else { found.join(", ") }
            )));
        };
        if !version_is_compatible(&wit_version) {
            return Err(ComponentError::Version(format!(
                "the component targets wasmhub:policy@{wit_version}; this host runs wasmhub:policy@{WIT_VERSION} and compatible 0.1.x components"
            )));
        }
        let linker = link_imports(engine, &compiled.component)?;
        let link = |error: wasmtime::Error| ComponentError::Link(format!("{error:#}"));
        let instance_pre = linker.instantiate_pre(&compiled.component).map_err(link)?;
        let pre = match hook {
            Hook::Auth => HookPre::Auth(bindings::auth::AuthPolicyPre::new(instance_pre).map_err(link)?),
            Hook::Profiles => HookPre::Profiles(bindings::profiles::ProfilePolicyPre::new(instance_pre).map_err(link)?),
            Hook::Pods => HookPre::Pods(bindings::pods::PodPolicyPre::new(instance_pre).map_err(link)?),
            Hook::Cull => HookPre::Cull(bindings::cull::CullPolicyPre::new(instance_pre).map_err(link)?),
        };
        Ok(LoadedComponent {
            engine: engine.clone(),
            hook,
            wit_version,
            pre,
            policy_name: Arc::from(policy_name),
            content_hash: compiled.content_hash,
            from_cache: compiled.from_cache,
            compile_time: compiled.compile_time,
        })
    }

    pub fn hook(&self) -> Hook {
        self.hook
    }

    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }

    /// Calls `validate-settings`.
    pub fn validate_settings(&self, settings_json: &str, limits: &Limits) -> CallReport<()> {
        self.call(
            limits,
            settings_json.len(),
            |instance, store| match instance {
                HookInstance::Auth(policy) => {
                    policy.wasmhub_policy_plugin().call_validate_settings(store, settings_json)
                }
                HookInstance::Profiles(policy) => {
                    policy.wasmhub_policy_plugin().call_validate_settings(store, settings_json)
                }
                HookInstance::Pods(policy) => {
                    policy.wasmhub_policy_plugin().call_validate_settings(store, settings_json)
                }
                HookInstance::Cull(policy) => {
                    policy.wasmhub_policy_plugin().call_validate_settings(store, settings_json)
                }
            },
            Ok,
        )
    }

    pub fn authenticate(&self, settings_json: &str, limits: &Limits, identity: &Identity) -> CallReport<AuthDecision> {
        use bindings::auth::exports::wasmhub::policy::auth as wit;
        let claims_json = json_text(&identity.claims);
        let input = wit::Identity {
            provider: identity.provider.clone(),
            subject: identity.subject.clone(),
            username_hint: identity.username_hint.clone(),
            claims_json,
        };
        let input_bytes = settings_json.len()
            + input.provider.len()
            + input.subject.len()
            + input.username_hint.len()
            + input.claims_json.len();
        self.call(
            limits,
            input_bytes,
            |instance, store| match instance {
                HookInstance::Auth(policy) => {
                    policy.wasmhub_policy_auth().call_authenticate(store, settings_json, &input)
                }
                _ => Err(wrong_hook()),
            },
            |decision| {
                let decision = match decision {
                    wit::Decision::Deny(reason) => AuthDecision::Deny { reason },
                    wit::Decision::Allow(allowed) => {
                        check_username(&allowed.username)?;
                        if let Some(auth_state) = &allowed.auth_state_json {
                            serde_json::from_str::<serde_json::Value>(auth_state)
                                .map_err(|error| format!("auth-state-json is not JSON: {error}"))?;
                        }
                        AuthDecision::Allow {
                            username: allowed.username,
                            admin: match allowed.admin {
                                wit::AdminChange::LeaveUnchanged => AdminChange::LeaveUnchanged,
                                wit::AdminChange::Grant => AdminChange::Grant,
                                wit::AdminChange::Revoke => AdminChange::Revoke,
                            },
                            groups: allowed.groups,
                            auth_state: allowed.auth_state_json,
                        }
                    }
                };
                check_output_size(&decision, limits)?;
                Ok(decision)
            },
        )
    }

    pub fn visible_profiles(
        &self,
        settings_json: &str,
        limits: &Limits,
        user: &User,
        profiles: &[Profile],
    ) -> CallReport<Vec<String>> {
        use bindings::profiles::exports::wasmhub::policy::profiles as wit;
        let wit_profiles: Vec<wit::Profile> = profiles.iter().map(to_wit_profile).collect();
        let wit_user = to_wit_user(user);
        let input_bytes = settings_json.len()
            + wit_profiles.iter().map(|profile| profile.profile_json.len() + profile.slug.len()).sum::<usize>();
        self.call(
            limits,
            input_bytes,
            |instance, store| match instance {
                HookInstance::Profiles(policy) => policy.wasmhub_policy_profiles().call_visible_profiles(
                    store,
                    settings_json,
                    &wit_user,
                    &wit_profiles,
                ),
                _ => Err(wrong_hook()),
            },
            |slugs| {
                for slug in &slugs {
                    if !profiles.iter().any(|profile| &profile.slug == slug) {
                        return Err(format!("visible-profiles returned {slug:?}, which is not a configured profile"));
                    }
                }
                check_output_size(&slugs, limits)?;
                Ok(slugs)
            },
        )
    }

    pub fn resolve_choice(
        &self,
        settings_json: &str,
        limits: &Limits,
        user: &User,
        profiles: &[Profile],
        choice: &ProfileChoice,
    ) -> CallReport<ProfileResolution> {
        use bindings::profiles::exports::wasmhub::policy::profiles as wit;
        let wit_profiles: Vec<wit::Profile> = profiles.iter().map(to_wit_profile).collect();
        let wit_user = to_wit_user(user);
        let wit_choice = wit::Choice {
            profile: choice.profile.clone(),
            options: choice
                .options
                .iter()
                .map(|chosen| wit::OptionChoice {
                    option_name: chosen.option.clone(),
                    value: match &chosen.value {
                        OptionValue::Listed(key) => wit::OptionValue::Listed(key.clone()),
                        OptionValue::Unlisted(text) => wit::OptionValue::Unlisted(text.clone()),
                    },
                })
                .collect(),
        };
        let input_bytes =
            settings_json.len() + wit_profiles.iter().map(|profile| profile.profile_json.len()).sum::<usize>();
        self.call(
            limits,
            input_bytes,
            |instance, store| match instance {
                HookInstance::Profiles(policy) => policy.wasmhub_policy_profiles().call_resolve_choice(
                    store,
                    settings_json,
                    &wit_user,
                    &wit_profiles,
                    &wit_choice,
                ),
                _ => Err(wrong_hook()),
            },
            |resolution| {
                // What the guest returned, measured as returned rather than by serialising the decision again.
                let returned_bytes = match &resolution {
                    wit::Resolution::Rejected(reason) => reason.len(),
                    wit::Resolution::Resolved(resolved) => resolved.profile.len() + resolved.override_json.len(),
                };
                let resolution = match resolution {
                    wit::Resolution::Rejected(reason) => ProfileResolution::Rejected { reason },
                    wit::Resolution::Resolved(resolved) => {
                        if !profiles.iter().any(|profile| profile.slug == resolved.profile) {
                            return Err(format!(
                                "resolve-choice returned {:?}, which is not a configured profile",
                                resolved.profile
                            ));
                        }
                        let kubespawner_override: serde_json::Value = serde_json::from_str(&resolved.override_json)
                            .map_err(|error| format!("override-json is not JSON: {error}"))?;
                        if !kubespawner_override.is_object() {
                            return Err("override-json is not a JSON object".to_owned());
                        }
                        ProfileResolution::Resolved { profile: resolved.profile, kubespawner_override }
                    }
                };
                check_returned_bytes(returned_bytes, limits)?;
                Ok(resolution)
            },
        )
    }

    pub fn mutate_pod(
        &self,
        settings_json: &str,
        limits: &Limits,
        allowed_paths: &[String],
        context: &SpawnContext,
        pod: &serde_json::Value,
    ) -> CallReport<Box<Pod>> {
        use bindings::pods::exports::wasmhub::policy::pods as wit;
        let pod_json = json_text(pod);
        let wit_context = wit::SpawnContext {
            user: to_wit_user(&context.user),
            server_name: context.server_name.clone(),
            profile: context.profile.clone(),
        };
        self.call(
            limits,
            settings_json.len() + pod_json.len(),
            |instance, store| match instance {
                HookInstance::Pods(policy) => {
                    policy.wasmhub_policy_pods().call_mutate_pod(store, settings_json, &wit_context, &pod_json)
                }
                _ => Err(wrong_hook()),
            },
            |patch_json| {
                check_returned_bytes(patch_json.len(), limits)?;
                crate::pod_patch::apply_pod_patch(pod, &patch_json, allowed_paths)
            },
        )
    }

    pub fn decide_cull(
        &self,
        settings_json: &str,
        limits: &Limits,
        servers: &[CullServer],
    ) -> CallReport<Vec<CullDecision>> {
        use bindings::cull::exports::wasmhub::policy::cull as wit;
        let wit_servers: Vec<wit::Server> = servers
            .iter()
            .map(|server| wit::Server {
                user: to_wit_user(&server.user),
                name: server.name.clone(),
                profile: server.profile.clone(),
                ready: server.ready,
                pending: server.pending,
                age_seconds: server.age_seconds,
                inactive_seconds: server.inactive_seconds,
            })
            .collect();
        let input_bytes = settings_json.len()
            + wit_servers
                .iter()
                .map(|server| 64 + server.user.name.len() + server.name.len() + server.profile.len())
                .sum::<usize>();
        self.call(
            limits,
            input_bytes,
            |instance, store| match instance {
                HookInstance::Cull(policy) => {
                    policy.wasmhub_policy_cull().call_decide(store, settings_json, &wit_servers)
                }
                _ => Err(wrong_hook()),
            },
            |decisions| {
                if decisions.len() != servers.len() {
                    return Err(format!("decide returned {} decisions for {} servers", decisions.len(), servers.len()));
                }
                let decisions: Vec<CullDecision> = decisions
                    .into_iter()
                    .zip(servers)
                    .map(|(decision, server)| {
                        let action = match decision.action {
                            wit::Action::Keep => CullAction::Keep,
                            wit::Action::Stop => CullAction::Stop,
                            wit::Action::StopAndRemove if server.name.is_empty() => {
                                return Err(format!(
                                    "stop-and-remove for {:?}'s default server, which cannot be removed",
                                    server.user.name
                                ));
                            }
                            wit::Action::StopAndRemove => CullAction::StopAndRemove,
                        };
                        Ok(CullDecision { action, reason: decision.reason })
                    })
                    .collect::<Result<_, String>>()?;
                check_output_size(&decisions, limits)?;
                Ok(decisions)
            },
        )
    }

    /// Runs one call in a fresh store and instance and classifies how it ended.
    fn call<R, T>(
        &self,
        limits: &Limits,
        input_bytes: usize,
        run: impl FnOnce(&HookInstance, &mut Store<StoreState>) -> wasmtime::Result<Result<R, String>>,
        accept: impl FnOnce(R) -> Result<T, String>,
    ) -> CallReport<T> {
        let started = Instant::now();
        let mut phases = CallPhases::default();
        let mut store =
            Store::new(self.engine.wasmtime(), StoreState::new(self.policy_name.clone(), limits.memory_bytes()));
        let report = |store: Store<StoreState>, result: Result<T, CallFailure>, mut phases: CallPhases| {
            let teardown_started = Instant::now();
            let state = store.into_data();
            phases.teardown = teardown_started.elapsed();
            CallReport {
                result,
                elapsed: started.elapsed(),
                phases,
                peak_memory_bytes: state.limiter.peak_bytes,
                logs: state.logs,
            }
        };
        if input_bytes > limits.max_input_bytes {
            let message =
                format!("not called: input of {input_bytes} bytes exceeds the cap of {}", limits.max_input_bytes);
            return report(store, Err(CallFailure::new(OutcomeClass::Unavailable, message)), phases);
        }
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(self.engine.deadline_ticks(limits.timeout()));
        store.epoch_deadline_trap();
        let instantiate_started = Instant::now();
        let instance = self.instantiate(&mut store);
        phases.instantiate = instantiate_started.elapsed();
        let instance = match instance {
            Ok(instance) => instance,
            Err(error) => {
                let failure = classify_trap(&store, &error, limits).unwrap_or_else(|| {
                    CallFailure::new(OutcomeClass::Unavailable, format!("cannot instantiate: {error:#}"))
                });
                return report(store, Err(failure), phases);
            }
        };
        let guest_started = Instant::now();
        let returned = run(&instance, &mut store);
        phases.guest = guest_started.elapsed();
        let result = match returned {
            Ok(Ok(value)) => accept(value).map_err(|message| CallFailure::new(OutcomeClass::InvalidOutput, message)),
            Ok(Err(message)) => Err(CallFailure::new(OutcomeClass::PolicyError, truncate(message, MAX_LOG_BYTES))),
            Err(error) => Err(classify_trap(&store, &error, limits)
                .unwrap_or_else(|| CallFailure::new(OutcomeClass::Crash, describe_crash(&error)))),
        };
        report(store, result, phases)
    }

    fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<HookInstance> {
        Ok(match &self.pre {
            HookPre::Auth(pre) => HookInstance::Auth(pre.instantiate(store)?),
            HookPre::Profiles(pre) => HookInstance::Profiles(pre.instantiate(store)?),
            HookPre::Pods(pre) => HookInstance::Pods(pre.instantiate(store)?),
            HookPre::Cull(pre) => HookInstance::Cull(pre.instantiate(store)?),
        })
    }
}

/// Links what a policy may import, under the exact names the component imports:
/// - `wasmhub:policy/host@0.1.x` (`log`); registered per imported name because a trap stub under a newer
///   patch name would otherwise shadow the semver match;
/// - `wasi:random/insecure-seed`, answered with a constant: Rust's `HashMap` (and serde_json's ordered maps)
///   ask for it on first use, and a constant seed gives a policy no entropy, time or other information;
/// - everything else as traps. Rust's wasm32-wasip2 target imports WASI even for pure functions and calls it
///   only to print a panic or read the environment, so policies get no capability at all.
fn link_imports(engine: &PolicyEngine, component: &Component) -> Result<Linker<StoreState>, ComponentError> {
    let link = |error: wasmtime::Error| ComponentError::Link(format!("{error:#}"));
    let mut linker = Linker::<StoreState>::new(engine.wasmtime());
    for (import_name, _) in component.component_type().imports(engine.wasmtime()) {
        if let Some(version) = import_name.strip_prefix("wasmhub:policy/host@") {
            if !version_is_compatible(version) {
                return Err(ComponentError::Version(format!(
                    "the component imports {import_name}; this host runs wasmhub:policy@{WIT_VERSION} and compatible 0.1.x components"
                )));
            }
            linker
                .instance(import_name)
                .and_then(|mut instance| {
                    instance.func_wrap(
                        "log",
                        |mut store: wasmtime::StoreContextMut<'_, StoreState>,
                         (level, message): (types::LogLevel, String)| {
                            host::Host::log(store.data_mut(), level, message);
                            Ok(())
                        },
                    )
                })
                .map_err(link)?;
        } else if import_name.starts_with("wasi:random/insecure-seed@") {
            linker
                .instance(import_name)
                .and_then(|mut instance| {
                    instance.func_wrap("insecure-seed", |_store: wasmtime::StoreContextMut<'_, StoreState>, (): ()| {
                        Ok(((0x5eed_0001_u64, 0x5eed_0002_u64),))
                    })
                })
                .map_err(link)?;
        }
    }
    linker.define_unknown_imports_as_traps(component).map_err(link)?;
    Ok(linker)
}

/// Memory and time limits are recognised by state, not by message: the limiter knows when it refused, and an
/// epoch interrupt is a distinct trap code.
fn classify_trap(store: &Store<StoreState>, error: &wasmtime::Error, limits: &Limits) -> Option<CallFailure> {
    if store.data().limiter.limit_hit {
        return Some(CallFailure::new(
            OutcomeClass::MemoryLimit,
            format!("the policy tried to grow its memory past {} MiB", limits.memory_mib),
        ));
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Some(CallFailure::new(OutcomeClass::Timeout, format!("no decision within {} ms", limits.timeout_ms)));
    }
    if error.downcast_ref::<Trap>().is_some() {
        return Some(CallFailure::new(OutcomeClass::Crash, describe_crash(error)));
    }
    None
}

/// The root cause without the wasm backtrace, plus what a call to a stubbed import usually means.
fn describe_crash(error: &wasmtime::Error) -> String {
    let root_cause = error.root_cause().to_string();
    if root_cause.contains("unknown import") && root_cause.contains("wasi:") {
        format!("{root_cause} (policies have no WASI; a Rust panic or a print ends here)")
    } else {
        root_cause
    }
}

fn wrong_hook() -> wasmtime::Error {
    wasmtime::Error::msg("this component serves another hook")
}

fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() || username.contains('/') || username.trim() != username {
        return Err(format!("invalid username {username:?}"));
    }
    Ok(())
}

/// The output cap for decisions made of several fields: their size as JSON.
fn check_output_size(value: &impl serde::Serialize, limits: &Limits) -> Result<(), String> {
    check_returned_bytes(serde_json::to_vec(value).map(|bytes| bytes.len()).unwrap_or(usize::MAX), limits)
}

/// The output cap for a hook that returns JSON text: the text's length, already known.
fn check_returned_bytes(size: usize, limits: &Limits) -> Result<(), String> {
    if size > limits.max_output_bytes {
        return Err(format!("output of {size} bytes exceeds the cap of {}", limits.max_output_bytes));
    }
    Ok(())
}

/// A JSON value as the text a guest receives. `serde_json::to_string` writes straight into a byte buffer,
/// about twice as fast as `Value`'s `Display` (which goes through the formatter).
fn json_text(value: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite.
    serde_json::to_string(value).unwrap_or_default()
}

fn truncate(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn to_wit_user(user: &User) -> types::User {
    types::User { name: user.name.clone(), admin: user.admin, groups: user.groups.clone() }
}

fn to_wit_profile(profile: &Profile) -> bindings::profiles::exports::wasmhub::policy::profiles::Profile {
    bindings::profiles::exports::wasmhub::policy::profiles::Profile {
        slug: profile.slug.clone(),
        profile_json: json_text(&profile.definition),
    }
}

// === store state ===

/// What each call's `Store` holds: the memory limiter and the call's log lines.
pub(crate) struct StoreState {
    limiter: CallLimiter,
    logs: Vec<LogLine>,
    policy_name: Arc<str>,
}

impl StoreState {
    fn new(policy_name: Arc<str>, memory_cap_bytes: usize) -> Self {
        StoreState {
            limiter: CallLimiter { memory_cap_bytes, peak_bytes: 0, limit_hit: false },
            logs: Vec::new(),
            policy_name,
        }
    }
}

struct CallLimiter {
    memory_cap_bytes: usize,
    peak_bytes: usize,
    /// Set when a growth was refused, so the failure is classified as a memory limit whatever trap follows.
    limit_hit: bool,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap_bytes {
            self.limit_hit = true;
            // An error (not `Ok(false)`) traps at once: a refused grow would send Rust's allocation error
            // handler into WASI stderr, which is a trap stub here anyway.
            return Err(wasmtime::Error::msg(format!(
                "memory limit: {desired} bytes requested, cap {}",
                self.memory_cap_bytes
            )));
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        4
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let message = truncate(message, MAX_LOG_BYTES);
        let level = match level {
            types::LogLevel::Debug => "debug",
            types::LogLevel::Info => "info",
            types::LogLevel::Warn => "warn",
            types::LogLevel::Error => "error",
        };
        match level {
            "error" => tracing::error!(policy = %self.policy_name, "{message}"),
            "warn" => tracing::warn!(policy = %self.policy_name, "{message}"),
            "info" => tracing::info!(policy = %self.policy_name, "{message}"),
            _ => tracing::debug!(policy = %self.policy_name, "{message}"),
        }
        self.logs.push(LogLine { level, message });
    }
}
