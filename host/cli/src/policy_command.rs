//! `wasmhub policy check|run`: load a policy with production limits, validate it, and run JSON fixtures
//! through it, the way Shopify's function-runner or `kwctl run` do, so authors test before they deploy.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use wasmhub_policy::{HookInput, LoadedComponent, OutcomeClass, PolicyEngine, PolicyFile, exported_hooks};

#[derive(Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicySubcommand,
}

#[derive(Subcommand)]
enum PolicySubcommand {
    /// Compile a policy (a policy file, or a bare component with empty settings), validate its settings and
    /// make the smoke call the hub makes before activating a version.
    Check {
        /// A policy file (`*.yaml`) or a component (`*.wasm`).
        target: PathBuf,
    },
    /// Run a policy on one JSON fixture and print the decision, time, peak memory and outcome as JSON.
    Run {
        /// A policy file (`*.yaml`) or a component (`*.wasm`).
        policy: PathBuf,
        /// The fixture: an identity for auth, `{user, profile_list, choice?}` for profiles, `{context, pod}` for
        /// pods, `{servers}` for cull (see plugins/README.md).
        #[arg(long)]
        input: PathBuf,
    },
}

pub(crate) fn run(args: PolicyArgs) -> anyhow::Result<()> {
    match args.command {
        PolicySubcommand::Check { target } => check(&target),
        PolicySubcommand::Run { policy, input } => run_fixture(&policy, &input),
    }
}

/// A policy file as the hub would read it, or a bare component wrapped in default settings and limits.
fn load(target: &Path) -> anyhow::Result<(PolicyFile, LoadedComponent)> {
    let engine = PolicyEngine::new(None).context("cannot start the policy engine")?;
    let (policy_file, component_path) = if target.extension().is_some_and(|extension| extension == "wasm") {
        let bytes = std::fs::read(target).with_context(|| format!("cannot read {}", target.display()))?;
        let compiled = engine.compile(&bytes).with_context(|| target.display().to_string())?;
        let Some((hook, _)) = exported_hooks(&engine, &compiled.component).into_iter().next() else {
            bail!("{} exports no wasmhub:policy hook interface", target.display());
        };
        let policy_file = PolicyFile::parse(target, &format!("hook: {}\ncomponent: {}\n", hook, target.display()))?;
        (policy_file, target.to_owned())
    } else {
        let (policy_file, _) = PolicyFile::read(target)?;
        let component_path = policy_file.component_path(target);
        (policy_file, component_path)
    };
    let bytes = std::fs::read(&component_path).with_context(|| format!("cannot read {}", component_path.display()))?;
    let name = target.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let component = LoadedComponent::load(&engine, &name, policy_file.hook, &bytes)
        .with_context(|| component_path.display().to_string())?;
    println!(
        "{}: {} policy, wasmhub:policy@{}, {} bytes, sha256 {}, compiled in {} ms",
        component_path.display(),
        policy_file.hook,
        component.wit_version(),
        bytes.len(),
        &component.content_hash[..12],
        component.compile_time.as_millis()
    );
    Ok((policy_file, component))
}

fn check(target: &Path) -> anyhow::Result<()> {
    let (policy_file, component) = load(target)?;
    let validation = component.validate_settings(&policy_file.settings_json(), &policy_file.limits);
    match validation.result {
        Ok(()) => println!("validate-settings: ok"),
        Err(failure) => bail!("validate-settings: {failure}"),
    }
    match wasmhub_policy::smoke_call(&component, &policy_file) {
        Ok(()) => println!("smoke call: ok"),
        Err(message) => bail!("smoke call: {message}"),
    }
    Ok(())
}

fn run_fixture(policy: &Path, input: &Path) -> anyhow::Result<()> {
    let (policy_file, component) = load(policy)?;
    let fixture_text = std::fs::read_to_string(input).with_context(|| format!("cannot read {}", input.display()))?;
    let fixture: serde_json::Value =
        serde_json::from_str(&fixture_text).with_context(|| format!("{} is not JSON", input.display()))?;
    let hook_input = HookInput::parse(policy_file.hook, fixture).map_err(anyhow::Error::msg)?;
    let output = wasmhub_policy::run_input(
        &component,
        &policy_file.settings_json(),
        &policy_file.limits,
        &policy_file.allowed_paths,
        &hook_input,
    );
    println!("{}", serde_json::to_string_pretty(&output)?);
    if output.outcome != OutcomeClass::Ok {
        bail!("outcome {}", output.outcome);
    }
    Ok(())
}
