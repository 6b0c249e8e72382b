//! Example pods policy: for GPU profiles, set the GPU resource limit, the node selector and the tolerations in
//! one patch, so a GPU Pod never lands on a CPU node or without its device (the failure mode operators report
//! when these three are configured separately). Uses the SDK's small Pod types (`Toleration`,
//! `ResourceRequirements`) for the pieces it reads and writes, and one `PodJson::get` of a small struct to parse
//! only those pieces of the Pod, in one pass (a `get` per piece walked the Pod four times and cost the guest
//! about a third more; docs/bench/policy.md). k8s-openapi's types (the SDK's `k8s` feature) would work the same way, but make the component about
//! three times larger and each call slower, since every call runs in a fresh instance.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmhub_policy_sdk::pods::{PatchOperation, PodJson, PodPolicy, ResourceRequirements, SpawnContext, Toleration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Profile slugs that get a GPU.
    gpu_profiles: Vec<String>,
    #[serde(default = "default_resource")]
    resource_name: String,
    #[serde(default = "default_count")]
    gpu_count: u32,
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    tolerations: Vec<Toleration>,
}

fn default_resource() -> String {
    "nvidia.com/gpu".to_owned()
}

fn default_count() -> u32 {
    1
}

/// The parts of the Pod's spec this policy reads; everything else in the spec is skipped unbuilt.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    tolerations: Vec<Toleration>,
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    resources: ResourceRequirements,
}

pub struct GpuPod;

impl PodPolicy for GpuPod {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.gpu_count == 0 {
            return Err("gpu_count must be at least 1".to_owned());
        }
        Ok(())
    }

    fn mutate_pod(settings: &Settings, context: SpawnContext, pod: PodJson) -> Result<Vec<PatchOperation>, String> {
        if !settings.gpu_profiles.contains(&context.profile) {
            return Ok(Vec::new());
        }
        // One pass over the Pod reads the three pieces this policy changes; the rest is skipped unbuilt.
        let spec: Spec = pod.get("/spec")?.ok_or("the Pod has no spec")?;
        let Some(mut resources) = spec.containers.into_iter().next().map(|container| container.resources) else {
            return Err("the Pod has no container".to_owned());
        };
        let mut node_selector = spec.node_selector;
        node_selector.extend(settings.node_selector.clone());
        let mut tolerations = spec.tolerations;
        for toleration in &settings.tolerations {
            if !tolerations.contains(toleration) {
                tolerations.push(toleration.clone());
            }
        }
        let count = settings.gpu_count.to_string();
        resources.limits.get_or_insert_with(BTreeMap::new).insert(settings.resource_name.clone(), count.clone());
        resources.requests.get_or_insert_with(BTreeMap::new).insert(settings.resource_name.clone(), count);
        Ok(vec![
            PatchOperation::add("/spec/nodeSelector", node_selector)?,
            PatchOperation::add("/spec/tolerations", tolerations)?,
            PatchOperation::add("/spec/containers/0/resources", resources)?,
        ])
    }
}

wasmhub_policy_sdk::register!(pods: GpuPod);
