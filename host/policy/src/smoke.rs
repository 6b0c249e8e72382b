//! Hook inputs as JSON fixtures: the built-in smoke input each new version must survive, the optional `smoke:`
//! fixture of a policy file, and `wasmhub policy run --input`.

use serde::Serialize;

use crate::component::{LoadedComponent, LogLine};
use crate::hooks::{
    CullInput, CullServer, Hook, Identity, PodsInput, ProfilesInput, SpawnContext, User, initialize_profiles,
};
use crate::outcome::OutcomeClass;
use crate::policy_file::{Limits, PolicyFile};

/// One call's input, for any hook.
#[derive(Clone, Debug)]
pub enum HookInput {
    Auth(Identity),
    Profiles(ProfilesInput),
    Pods(PodsInput),
    Cull(CullInput),
}

impl HookInput {
    /// Parses a fixture for `hook`: an identity for auth, `{user, profile_list, choice?}` for profiles,
    /// `{context, pod}` for pods, `{servers}` for cull.
    pub fn parse(hook: Hook, fixture: serde_json::Value) -> Result<HookInput, String> {
        let parsed = match hook {
            Hook::Auth => serde_json::from_value(fixture).map(HookInput::Auth),
            Hook::Profiles => serde_json::from_value(fixture).map(HookInput::Profiles),
            Hook::Pods => serde_json::from_value(fixture).map(HookInput::Pods),
            Hook::Cull => serde_json::from_value(fixture).map(HookInput::Cull),
        };
        parsed.map_err(|error| format!("the {hook} fixture does not parse: {error}"))
    }

    /// A small, ordinary input every working policy must handle without trapping.
    pub fn builtin_smoke(hook: Hook) -> HookInput {
        let user = User { name: "smoke-test".to_owned(), admin: false, groups: vec!["smoke-test".to_owned()] };
        match hook {
            Hook::Auth => HookInput::Auth(Identity {
                provider: "smoke-test".to_owned(),
                subject: "smoke-test".to_owned(),
                username_hint: "smoke-test".to_owned(),
                claims: serde_json::json!({"preferred_username": "smoke-test", "groups": ["smoke-test"]}),
            }),
            Hook::Profiles => HookInput::Profiles(ProfilesInput {
                user,
                profile_list: vec![
                    serde_json::json!({"display_name": "Default", "slug": "default", "kubespawner_override": {}}),
                ],
                choice: None,
            }),
            Hook::Pods => HookInput::Pods(PodsInput {
                context: SpawnContext { user, server_name: String::new(), profile: "default".to_owned() },
                pod: serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "jupyter-smoke-test", "labels": {}},
                    "spec": {"containers": [{"name": "notebook", "image": "quay.io/jupyter/base-notebook:latest"}]}
                }),
            }),
            Hook::Cull => HookInput::Cull(CullInput {
                servers: vec![CullServer {
                    user,
                    name: String::new(),
                    profile: "default".to_owned(),
                    ready: true,
                    pending: false,
                    age_seconds: 120,
                    inactive_seconds: 60,
                }],
            }),
        }
    }
}

/// The result of running one input, printable as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutput {
    pub outcome: OutcomeClass,
    /// The decision as JSON when the outcome is `ok`.
    pub decision: Option<serde_json::Value>,
    /// What went wrong otherwise.
    pub error: Option<String>,
    pub elapsed_micros: u128,
    pub peak_memory_bytes: usize,
    pub logs: Vec<LogLine>,
}

/// Calls the component with one input using the policy file's settings, limits and allowed paths.
pub fn run_input(
    component: &LoadedComponent,
    settings_json: &str,
    limits: &Limits,
    allowed_paths: &[String],
    input: &HookInput,
) -> RunOutput {
    fn output<T: Serialize>(report: crate::component::CallReport<T>) -> RunOutput {
        let (decision, error) = match &report.result {
            Ok(value) => (serde_json::to_value(value).ok(), None),
            Err(failure) => (None, Some(failure.message.clone())),
        };
        RunOutput {
            outcome: report.class(),
            decision,
            error,
            elapsed_micros: report.elapsed.as_micros(),
            peak_memory_bytes: report.peak_memory_bytes,
            logs: report.logs,
        }
    }
    let refused = |message: String| RunOutput {
        outcome: OutcomeClass::Unavailable,
        decision: None,
        error: Some(message),
        elapsed_micros: 0,
        peak_memory_bytes: 0,
        logs: Vec::new(),
    };
    match input {
        HookInput::Auth(identity) => output(component.authenticate(settings_json, limits, identity)),
        HookInput::Profiles(profiles_input) => {
            let profiles = match initialize_profiles(&profiles_input.profile_list) {
                Ok(profiles) => profiles,
                Err(message) => return refused(message),
            };
            match &profiles_input.choice {
                Some(choice) => {
                    output(component.resolve_choice(settings_json, limits, &profiles_input.user, &profiles, choice))
                }
                None => output(component.visible_profiles(settings_json, limits, &profiles_input.user, &profiles)),
            }
        }
        HookInput::Pods(pods_input) => {
            output(component.mutate_pod(settings_json, limits, allowed_paths, &pods_input.context, &pods_input.pod))
        }
        HookInput::Cull(cull_input) => output(component.decide_cull(settings_json, limits, &cull_input.servers)),
    }
}

/// The call a new version must pass before it may serve: the file's `smoke:` fixture must give `ok`; the
/// built-in input must not trap, time out, exceed memory or produce invalid output (a policy may refuse it).
pub fn smoke_call(component: &LoadedComponent, policy_file: &PolicyFile) -> Result<(), String> {
    let settings_json = policy_file.settings_json();
    let (input, strict) = match &policy_file.smoke {
        Some(fixture) => (HookInput::parse(policy_file.hook, fixture.clone())?, true),
        None => (HookInput::builtin_smoke(policy_file.hook), false),
    };
    let output = run_input(component, &settings_json, &policy_file.limits, &policy_file.allowed_paths, &input);
    let acceptable = output.outcome == OutcomeClass::Ok || (!strict && output.outcome == OutcomeClass::PolicyError);
    if acceptable { Ok(()) } else { Err(format!("{}: {}", output.outcome, output.error.unwrap_or_default())) }
}
