//! [`PolicyHost`]: what the hub calls. Per hook it holds at most one enforcing and one monitoring policy behind
//! `ArcSwap`s, applies each hook's failure mode, and falls back to the native defaults when no policy is bound.
//! A loader thread watches the policies folder and swaps new versions in; calls never wait for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::component::{CallReport, LoadedComponent};
use crate::engine::{EngineError, PolicyEngine, hex};
use crate::hooks::{
    AuthDecision, CullDecision, CullServer, Hook, Identity, Profile, ProfileChoice, ProfileResolution, SpawnContext,
    User,
};
use crate::native::{self, NativeDefaults};
use crate::outcome::{OutcomeClass, OutcomeCounters};
use crate::policy_file::{FailureMode, PolicyFile, PolicyMode};
use crate::smoke;

/// How the host is set up.
#[derive(Clone, Debug)]
pub struct PolicyHostConfig {
    /// The folder of policy files; `None` runs the native defaults only.
    pub folder: Option<PathBuf>,
    /// Where precompiled components are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// How often the folder is scanned; zero turns the watcher off (call [`PolicyHost::reload_now`]).
    pub poll_interval: Duration,
    pub defaults: NativeDefaults,
    /// Profiles a user may still see and start while the profiles policy fails.
    pub safe_profiles: Vec<String>,
}

impl Default for PolicyHostConfig {
    fn default() -> Self {
        PolicyHostConfig {
            folder: None,
            cache_dir: None,
            poll_interval: Duration::from_millis(500),
            defaults: NativeDefaults::default(),
            safe_profiles: Vec::new(),
        }
    }
}

/// A pods policy failed and its file does not say `failure: ignore`, or the Pod itself does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PodPolicyError {
    #[error("pod policy {policy:?} failed ({class}): {message}")]
    PolicyFailed { policy: String, class: OutcomeClass, message: String },
    #[error("the spawner's Pod is not a valid Pod: {0}")]
    InvalidPod(String),
}

/// What the status API shows for one policy file.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyStatus {
    /// The file name without extension.
    pub name: String,
    pub file: PathBuf,
    pub hook: Option<Hook>,
    pub mode: Option<PolicyMode>,
    /// Hash prefix of the policy file and component of the version serving calls; `None` if none ever loaded.
    pub active_version: Option<String>,
    pub wit_version: Option<String>,
    /// Why the latest version on disk is not active; `None` when it is.
    pub last_load_error: Option<String>,
    /// The most recent failed call.
    pub last_call_error: Option<String>,
    /// Calls by outcome class, over every version of this file.
    pub counters: Vec<(&'static str, u64)>,
    /// Monitor mode: calls where this policy decided differently from the active one.
    pub disagreements: u64,
    pub last_disagreement: Option<String>,
}

/// Per-file state that outlives versions.
struct PolicyRecord {
    name: String,
    file: PathBuf,
    counters: OutcomeCounters,
    disagreements: AtomicU64,
    state: Mutex<RecordState>,
}

#[derive(Default)]
struct RecordState {
    hook: Option<Hook>,
    mode: Option<PolicyMode>,
    active_version: Option<String>,
    wit_version: Option<String>,
    last_load_error: Option<String>,
    last_call_error: Option<String>,
    last_disagreement: Option<String>,
}

impl PolicyRecord {
    fn observe<T>(&self, report: &CallReport<T>) {
        self.counters.record(report.class());
        if let Err(failure) = &report.result {
            tracing::warn!(policy = %self.name, class = %failure.class, "policy call failed: {}", failure.message);
            self.lock().last_call_error = Some(failure.to_string());
        }
    }

    fn disagree(&self, description: String) {
        self.disagreements.fetch_add(1, Ordering::Relaxed);
        tracing::info!(policy = %self.name, "monitor disagrees: {description}");
        self.lock().last_disagreement = Some(description);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordState> {
        // A panic while holding this lock cannot leave the fields inconsistent (each is replaced whole).
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One loaded version, immutable; swapped in whole.
struct ActivePolicy {
    file: PolicyFile,
    settings_json: String,
    component: LoadedComponent,
    record: Arc<PolicyRecord>,
}

#[derive(Default)]
struct HookSlots {
    enforce: ArcSwapOption<ActivePolicy>,
    monitor: ArcSwapOption<ActivePolicy>,
}

impl HookSlots {
    fn slot(&self, mode: PolicyMode) -> &ArcSwapOption<ActivePolicy> {
        match mode {
            PolicyMode::Enforce => &self.enforce,
            PolicyMode::Monitor => &self.monitor,
        }
    }
}

struct Shared {
    /// Only with a policies folder: without one every hook is the built-in rule and nothing is ever compiled, so a
    /// hub without policies (and every test hub) pays for no engine, pool or epoch thread.
    engine: Option<PolicyEngine>,
    config: PolicyHostConfig,
    slots: [HookSlots; 4],
    /// Decisions asked of each hook ([`PolicyHost::decisions`]).
    decisions: [AtomicU64; 4],
    /// Only the loader touches this; the lock serialises scans, never calls.
    loader: Mutex<BTreeMap<PathBuf, FileState>>,
}

struct FileState {
    fingerprint: String,
    record: Arc<PolicyRecord>,
    placed: Option<(Hook, PolicyMode)>,
}

/// Runs the hooks for the hub. Cheap to share behind an `Arc`; every method is callable from any thread.
pub struct PolicyHost {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PolicyHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

impl PolicyHost {
    /// Creates the engine (when there is a policies folder), loads the folder once (so policies are active when
    /// this returns) and starts the watcher. A bad policy file is reported in the status, not returned as an error.
    pub fn start(config: PolicyHostConfig) -> Result<PolicyHost, EngineError> {
        let engine = match &config.folder {
            Some(_) => Some(PolicyEngine::new(config.cache_dir.clone())?),
            None => None,
        };
        let shared = Arc::new(Shared::new(engine, config));
        shared.scan();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = if shared.config.folder.is_some() && !shared.config.poll_interval.is_zero() {
            let shared = shared.clone();
            let stop = stop.clone();
            Some(
                std::thread::Builder::new()
                    .name("policy-watcher".to_owned())
                    .spawn(move || run_watcher(&shared, &stop))
                    .map_err(EngineError::Ticker)?,
            )
        } else {
            None
        };
        Ok(PolicyHost { shared, stop, watcher })
    }

    /// A host whose every hook is the built-in rule of `defaults`: without a policies folder it has no engine and no
    /// watcher, so it starts nothing and cannot fail.
    pub fn built_in(defaults: NativeDefaults) -> PolicyHost {
        let config = PolicyHostConfig { defaults, ..PolicyHostConfig::default() };
        PolicyHost { shared: Arc::new(Shared::new(None, config)), stop: Arc::default(), watcher: None }
    }

    /// Scans the folder now, on this thread (the watcher does the same on its own schedule).
    pub fn reload_now(&self) {
        self.shared.scan();
    }

    /// Every policy file seen, in file-name order.
    pub fn status(&self) -> Vec<PolicyStatus> {
        let loader = self.shared.loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loader
            .values()
            .map(|file_state| {
                let record = &file_state.record;
                let state = record.lock();
                PolicyStatus {
                    name: record.name.clone(),
                    file: record.file.clone(),
                    hook: state.hook,
                    mode: state.mode,
                    active_version: state.active_version.clone(),
                    wit_version: state.wit_version.clone(),
                    last_load_error: state.last_load_error.clone(),
                    last_call_error: state.last_call_error.clone(),
                    counters: record.counters.snapshot(),
                    disagreements: record.disagreements.load(Ordering::Relaxed),
                    last_disagreement: state.last_disagreement.clone(),
                }
            })
            .collect()
    }

    fn slots(&self, hook: Hook) -> &HookSlots {
        &self.shared.slots[hook.index()]
    }

    /// The auth hook. Any failure refuses the login; a failing policy can never grant access or admin.
    pub fn authenticate(&self, identity: &Identity) -> AuthDecision {
        self.count_decision(Hook::Auth);
        let slots = self.slots(Hook::Auth);
        let decision = match slots.enforce.load_full() {
            Some(active) => {
                let report = active.component.authenticate(&active.settings_json, &active.file.limits, identity);
                active.record.observe(&report);
                report.result.unwrap_or_else(|failure| AuthDecision::Deny {
                    reason: format!("login is unavailable: the auth policy failed ({})", failure.class),
                })
            }
            None => native::authenticate(&self.shared.config.defaults.auth, identity)
                .unwrap_or_else(|error| AuthDecision::Deny { reason: format!("login is unavailable: {error}") }),
        };
        if let Some(monitor) = slots.monitor.load_full() {
            let report = monitor.component.authenticate(&monitor.settings_json, &monitor.file.limits, identity);
            monitor.record.observe(&report);
            compare(&monitor.record, &report, &decision, || format!("identity {:?}", identity.username_hint));
        }
        decision
    }

    /// The profiles a user may see. On failure: the configured safe profiles.
    pub fn visible_profiles(&self, user: &User, profiles: &[Profile]) -> Vec<String> {
        self.count_decision(Hook::Profiles);
        let slots = self.slots(Hook::Profiles);
        let visible = self.visible_with(slots.enforce.load_full().as_deref(), user, profiles);
        if let Some(monitor) = slots.monitor.load_full() {
            let report =
                monitor.component.visible_profiles(&monitor.settings_json, &monitor.file.limits, user, profiles);
            monitor.record.observe(&report);
            compare(&monitor.record, &report, &visible, || format!("visible profiles for {:?}", user.name));
        }
        visible
    }

    /// Validates and resolves a choice. On failure: only a safe profile can be started, resolved natively.
    pub fn resolve_profile(&self, user: &User, profiles: &[Profile], choice: &ProfileChoice) -> ProfileResolution {
        self.count_decision(Hook::Profiles);
        let slots = self.slots(Hook::Profiles);
        let resolution = self.resolve_with(slots.enforce.load_full().as_deref(), user, profiles, choice);
        self.monitor_resolution(user, profiles, choice, &resolution);
        resolution
    }

    /// A spawn's one profile decision: the choice is resolved, and refused unless the profile is one `user` is
    /// shown (API clients can name any slug), both answered by the same version of the profiles policy, so a
    /// hot swap during the decision cannot mix two versions' answers.
    pub fn choose_profile(&self, user: &User, profiles: &[Profile], choice: &ProfileChoice) -> ProfileResolution {
        self.count_decision(Hook::Profiles);
        let slots = self.slots(Hook::Profiles);
        let active = slots.enforce.load_full();
        let resolution = self.resolve_with(active.as_deref(), user, profiles, choice);
        // A monitoring policy is compared on the resolution alone, like with like.
        self.monitor_resolution(user, profiles, choice, &resolution);
        match resolution {
            ProfileResolution::Resolved { profile, .. }
                if !self.visible_with(active.as_deref(), user, profiles).contains(&profile) =>
            {
                ProfileResolution::Rejected { reason: format!("profile {profile:?} is not available to you") }
            }
            decided => decided,
        }
    }

    /// How many decisions each hook has been asked for since start (one per call of `authenticate`,
    /// `visible_profiles`, `resolve_profile`, `choose_profile`, `mutate_pod`, `decide_cull`), whoever answered
    /// them: a policy file or the built-in rule.
    pub fn decisions(&self, hook: Hook) -> u64 {
        self.shared.decisions[hook.index()].load(Ordering::Relaxed)
    }

    fn count_decision(&self, hook: Hook) {
        self.shared.decisions[hook.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn visible_with(&self, active: Option<&ActivePolicy>, user: &User, profiles: &[Profile]) -> Vec<String> {
        match active {
            Some(active) => {
                let report =
                    active.component.visible_profiles(&active.settings_json, &active.file.limits, user, profiles);
                active.record.observe(&report);
                report.result.unwrap_or_else(|_| self.safe_profiles(profiles))
            }
            None => native::visible_profiles(&self.shared.config.defaults.profiles, user, profiles),
        }
    }

    fn resolve_with(
        &self,
        active: Option<&ActivePolicy>,
        user: &User,
        profiles: &[Profile],
        choice: &ProfileChoice,
    ) -> ProfileResolution {
        match active {
            Some(active) => {
                let report =
                    active.component.resolve_choice(&active.settings_json, &active.file.limits, user, profiles, choice);
                active.record.observe(&report);
                report.result.unwrap_or_else(|_| self.resolve_safely(user, profiles, choice))
            }
            None => self.resolve_natively(user, profiles, choice),
        }
    }

    fn monitor_resolution(
        &self,
        user: &User,
        profiles: &[Profile],
        choice: &ProfileChoice,
        decided: &ProfileResolution,
    ) {
        if let Some(monitor) = self.slots(Hook::Profiles).monitor.load_full() {
            let report =
                monitor.component.resolve_choice(&monitor.settings_json, &monitor.file.limits, user, profiles, choice);
            monitor.record.observe(&report);
            compare(&monitor.record, &report, decided, || format!("choice {:?} of {:?}", choice.profile, user.name));
        }
    }

    fn safe_profiles(&self, profiles: &[Profile]) -> Vec<String> {
        let safe = &self.shared.config.safe_profiles;
        profiles.iter().filter(|profile| safe.contains(&profile.slug)).map(|profile| profile.slug.clone()).collect()
    }

    fn resolve_natively(&self, user: &User, profiles: &[Profile], choice: &ProfileChoice) -> ProfileResolution {
        native::resolve_choice(&self.shared.config.defaults.profiles, user, profiles, choice).unwrap_or_else(|error| {
            ProfileResolution::Rejected { reason: format!("the profile list is invalid: {error}") }
        })
    }

    fn resolve_safely(&self, user: &User, profiles: &[Profile], choice: &ProfileChoice) -> ProfileResolution {
        let safe: Vec<Profile> = profiles
            .iter()
            .filter(|profile| self.shared.config.safe_profiles.contains(&profile.slug))
            .cloned()
            .collect();
        let is_safe_choice = safe.iter().any(|profile| profile.slug == choice.profile)
            || (choice.profile.is_empty()
                && safe.iter().any(|profile| profile.definition.get("default") == Some(&true.into())));
        if !is_safe_choice {
            return ProfileResolution::Rejected {
                reason: "profiles are limited while the profile policy is unavailable; choose another profile"
                    .to_owned(),
            };
        }
        self.resolve_natively(user, &safe, choice)
    }

    /// The pods hook: the Pod to create. On failure the spawn fails, unless the policy says `failure: ignore`.
    pub fn mutate_pod(&self, context: &SpawnContext, pod: &serde_json::Value) -> Result<Pod, PodPolicyError> {
        self.count_decision(Hook::Pods);
        let unmodified = || Box::<Pod>::deserialize(pod).map_err(|error| PodPolicyError::InvalidPod(error.to_string()));
        let slots = self.slots(Hook::Pods);
        let result = match slots.enforce.load_full() {
            Some(active) => {
                let report = active.component.mutate_pod(
                    &active.settings_json,
                    &active.file.limits,
                    &active.file.allowed_paths,
                    context,
                    pod,
                );
                active.record.observe(&report);
                match report.result {
                    Ok(mutated) => Ok(mutated),
                    Err(_) if active.file.failure == FailureMode::Ignore => unmodified(),
                    Err(failure) => Err(PodPolicyError::PolicyFailed {
                        policy: active.record.name.clone(),
                        class: failure.class,
                        message: failure.message,
                    }),
                }
            }
            None => unmodified(),
        };
        if let (Some(monitor), Ok(decided)) = (slots.monitor.load_full(), &result) {
            let report = monitor.component.mutate_pod(
                &monitor.settings_json,
                &monitor.file.limits,
                &monitor.file.allowed_paths,
                context,
                pod,
            );
            monitor.record.observe(&report);
            compare(&monitor.record, &report, decided, || format!("pod for {:?}", context.user.name));
        }
        result.map(|pod| *pod)
    }

    /// The cull hook, once per sweep. On failure the built-in idle rule decides; an error never stops a server.
    pub fn decide_cull(&self, servers: &[CullServer]) -> Vec<CullDecision> {
        self.count_decision(Hook::Cull);
        let slots = self.slots(Hook::Cull);
        let decisions = match slots.enforce.load_full() {
            Some(active) => {
                let report = active.component.decide_cull(&active.settings_json, &active.file.limits, servers);
                active.record.observe(&report);
                report.result.unwrap_or_else(|failure| {
                    native::decide_cull(&self.shared.config.defaults.cull, servers)
                        .into_iter()
                        .map(|decision| CullDecision {
                            action: decision.action,
                            reason: format!(
                                "built-in rule (cull policy failed: {}): {}",
                                failure.class, decision.reason
                            ),
                        })
                        .collect()
                })
            }
            None => native::decide_cull(&self.shared.config.defaults.cull, servers),
        };
        if let Some(monitor) = slots.monitor.load_full() {
            let report = monitor.component.decide_cull(&monitor.settings_json, &monitor.file.limits, servers);
            monitor.record.observe(&report);
            let actions =
                |decisions: &[CullDecision]| decisions.iter().map(|decision| decision.action).collect::<Vec<_>>();
            if let Ok(monitored) = &report.result
                && actions(monitored) != actions(&decisions)
            {
                monitor.record.disagree(format!(
                    "sweep of {} servers: {:?} instead of {:?}",
                    servers.len(),
                    actions(monitored),
                    actions(&decisions)
                ));
            }
        }
        decisions
    }
}

/// Records a disagreement when a monitored policy decided and its decision differs from the one applied.
fn compare<T: PartialEq + std::fmt::Debug>(
    record: &PolicyRecord,
    report: &CallReport<T>,
    applied: &T,
    what: impl FnOnce() -> String,
) {
    if let Ok(monitored) = &report.result
        && monitored != applied
    {
        record.disagree(format!("{}: {monitored:?} instead of {applied:?}", what()));
    }
}

fn run_watcher(shared: &Shared, stop: &AtomicBool) {
    let step = Duration::from_millis(10).min(shared.config.poll_interval);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited >= shared.config.poll_interval {
            waited = Duration::ZERO;
            shared.scan();
        }
    }
}

impl Shared {
    fn new(engine: Option<PolicyEngine>, config: PolicyHostConfig) -> Shared {
        Shared { engine, config, slots: Default::default(), decisions: Default::default(), loader: Mutex::default() }
    }

    /// Brings the slots in line with the folder. Runs on the loader thread (or `reload_now`'s caller).
    fn scan(&self) {
        let Some(folder) = &self.config.folder else { return };
        let mut loader = self.loader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut policy_paths: Vec<PathBuf> = match std::fs::read_dir(folder) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| is_policy_file(path))
                .collect(),
            Err(error) => {
                tracing::warn!("cannot read the policies folder {}: {error}", folder.display());
                return;
            }
        };
        policy_paths.sort();
        // Removals first, so a file waiting for a slot can take it in this same scan.
        let removed: Vec<PathBuf> = loader.keys().filter(|path| !policy_paths.contains(path)).cloned().collect();
        for path in removed {
            if let Some(file_state) = loader.remove(&path) {
                self.unplace(&file_state);
                tracing::info!(policy = %file_state.record.name, "policy file removed; the hook is back to its previous behaviour");
            }
        }
        for path in &policy_paths {
            self.scan_file(&mut loader, path);
        }
    }

    fn scan_file(&self, loader: &mut BTreeMap<PathBuf, FileState>, path: &Path) {
        let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let file_state = loader.entry(path.to_owned()).or_insert_with(|| FileState {
            fingerprint: String::new(),
            record: Arc::new(PolicyRecord {
                name: name.clone(),
                file: path.to_owned(),
                counters: OutcomeCounters::default(),
                disagreements: AtomicU64::new(0),
                state: Mutex::new(RecordState::default()),
            }),
            placed: None,
        });
        let record = file_state.record.clone();
        let yaml_bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => return refuse(file_state, &format!("{}: {error}", path.display()), None),
        };
        let policy_file = match PolicyFile::parse(path, &String::from_utf8_lossy(&yaml_bytes)) {
            Ok(parsed) => parsed,
            Err(error) => return refuse(file_state, &error.to_string(), Some(hex(&Sha256::digest(&yaml_bytes)))),
        };
        let component_path = policy_file.component_path(path);
        let component_bytes = match std::fs::read(&component_path) {
            Ok(bytes) => bytes,
            Err(error) => return refuse(file_state, &format!("{}: {error}", component_path.display()), None),
        };
        let mut hasher = Sha256::new();
        hasher.update(&yaml_bytes);
        hasher.update(&component_bytes);
        let fingerprint = hex(&hasher.finalize());
        if fingerprint == file_state.fingerprint {
            return;
        }
        let version = fingerprint[..12].to_owned();
        let target = (policy_file.hook, policy_file.mode);
        let slot = self.slots[policy_file.hook.index()].slot(policy_file.mode);
        if let Some(occupant) = slot.load_full()
            && !Arc::ptr_eq(&occupant.record, &record)
        {
            let message =
                format!("the {} {:?} slot is taken by {:?}", policy_file.hook, policy_file.mode, occupant.record.name);
            // No fingerprint: retry on every scan, so this file takes the slot once the occupant goes away.
            return refuse(file_state, &message, None);
        }
        let Some(engine) = &self.engine else {
            return refuse(file_state, "no policy engine: the host was started without a policies folder", None);
        };
        let component = match LoadedComponent::load(engine, &name, policy_file.hook, &component_bytes) {
            Ok(component) => component,
            Err(error) => return refuse(file_state, &error.to_string(), Some(fingerprint)),
        };
        let settings_json = policy_file.settings_json();
        let validation = component.validate_settings(&settings_json, &policy_file.limits);
        if let Err(failure) = validation.result {
            return refuse(file_state, &format!("validate-settings: {failure}"), Some(fingerprint));
        }
        if let Err(message) = smoke::smoke_call(&component, &policy_file) {
            return refuse(file_state, &format!("smoke call: {message}"), Some(fingerprint));
        }
        let wit_version = component.wit_version().to_owned();
        let from_cache = component.from_cache;
        let active = Arc::new(ActivePolicy { file: policy_file, settings_json, component, record: record.clone() });
        if let Some(previous) = file_state.placed
            && previous != target
        {
            self.unplace(file_state);
        }
        slot.store(Some(active));
        file_state.placed = Some(target);
        file_state.fingerprint = fingerprint;
        let mut state = record.lock();
        state.hook = Some(target.0);
        state.mode = Some(target.1);
        state.active_version = Some(version.clone());
        state.wit_version = Some(wit_version);
        state.last_load_error = None;
        tracing::info!(policy = %name, hook = %target.0, version = %version, from_cache, "policy version active");
    }

    /// Empties the slot this file occupies, if it still does.
    fn unplace(&self, file_state: &FileState) {
        if let Some((hook, mode)) = file_state.placed {
            let slot = self.slots[hook.index()].slot(mode);
            let current = slot.load();
            if current.as_ref().is_some_and(|active| Arc::ptr_eq(&active.record, &file_state.record)) {
                slot.store(None);
            }
        }
    }
}

/// Keeps whatever version is active and records why the new one was refused. With a fingerprint, the same
/// bytes are not retried on every scan; without one (unreadable files) they are.
fn refuse(file_state: &mut FileState, message: &str, fingerprint: Option<String>) {
    let mut state = file_state.record.lock();
    if state.last_load_error.as_deref() != Some(message) {
        tracing::warn!(policy = %file_state.record.name, "policy version refused: {message}");
        state.last_load_error = Some(message.to_owned());
    }
    drop(state);
    if let Some(fingerprint) = fingerprint {
        file_state.fingerprint = fingerprint;
    }
}

/// `*.yaml` and `*.yml`, except hidden and editor temporary files.
fn is_policy_file(path: &Path) -> bool {
    let Some(file_name) = path.file_name().and_then(|name| name.to_str()) else { return false };
    !file_name.starts_with('.') && (file_name.ends_with(".yaml") || file_name.ends_with(".yml"))
}
