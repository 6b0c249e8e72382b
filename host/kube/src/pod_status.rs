//! What a pod's status says about its server: ready (and where), failed for good, still coming (and where it is,
//! for a waiting user), or exited. Everything here only reads pods from the shared cache, so waiting and polling
//! cost no API calls, and a failure the kubelet will not get past (an image that cannot be pulled, a crash loop,
//! an unschedulable pod) ends the spawn within seconds instead of at the start timeout.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use wasmhub_spawner::{PollStatus, SpawnError};

use crate::pods::PodCache;

/// Container states that end a spawn at once: the kubelet will not get further without someone changing the pod.
const FATAL_WAITING_REASONS: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Waits until the pod is running and ready (its IP), or has failed in a way that will not heal. A pod may stay
/// unschedulable for `unschedulable_timeout` first, since a cluster autoscaler may still add a node.
pub(crate) async fn wait_ready(
    pods: &PodCache,
    pod_name: &str,
    unschedulable_timeout: Duration,
) -> Result<String, SpawnError> {
    let started = Instant::now();
    let mut seen = false;
    let outcome = pods
        .wait_for(pod_name, Duration::from_secs(24 * 3600), |pod| {
            let Some(pod) = pod else {
                // Not yet created is not an answer; gone after it was seen is.
                return seen.then(|| Err(SpawnError::Failed(format!("the pod {pod_name} was deleted"))));
            };
            seen = true;
            classify(pod, started.elapsed() >= unschedulable_timeout)
        })
        .await;
    match outcome {
        Some(Ok(ip)) => Ok(ip),
        Some(Err(error)) => Err(error),
        None => Err(SpawnError::Failed("the pod never became ready".into())),
    }
}

/// [`wait_ready`], telling `report` every `every` where the pod is while it takes long, so a user watching a slow
/// pull or scale-up sees that something is happening.
pub(crate) async fn wait_ready_reporting(
    pods: &PodCache,
    pod_name: &str,
    unschedulable_timeout: Duration,
    every: Duration,
    report: impl Fn(String),
) -> Result<String, SpawnError> {
    let started = Instant::now();
    let wait = wait_ready(pods, pod_name, unschedulable_timeout);
    let mut wait = std::pin::pin!(wait);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            outcome = &mut wait => return outcome,
            _ = ticker.tick() => {
                let where_it_is = pods.get(pod_name).map(|pod| pod_situation(&pod));
                let where_it_is = where_it_is.unwrap_or_else(|| "not created yet".to_owned());
                report(format!(
                    "Still waiting for the pod {pod_name} after {} s: {where_it_is}",
                    started.elapsed().as_secs()
                ));
            }
        }
    }
}

/// Whether a server's pod still runs it: the notebook container's exit code once it terminated, and a pod that
/// ended counts as exited.
pub(crate) fn poll_status(pod: &Pod) -> PollStatus {
    let terminated = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|status| status.name == "notebook"))
        .and_then(|status| status.state.as_ref()?.terminated.as_ref().map(|terminated| terminated.exit_code));
    if let Some(code) = terminated {
        return PollStatus::Exited { code: Some(code) };
    }
    if matches!(pod.status.as_ref().and_then(|status| status.phase.as_deref()), Some("Failed" | "Succeeded")) {
        return PollStatus::Exited { code: None };
    }
    PollStatus::Running
}

/// A pod's situation in a few words for a waiting user: its phase and why the notebook is not running yet.
fn pod_situation(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else { return "accepted, not scheduled yet".to_owned() };
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".to_owned());
    let scheduled = status.conditions.iter().flatten().find(|condition| condition.type_ == "PodScheduled");
    if let Some(condition) = scheduled.filter(|condition| condition.status == "False") {
        return format!("{phase}, not scheduled ({})", condition.message.clone().unwrap_or_default());
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|container| container.state.as_ref()?.waiting.as_ref()?.reason.clone());
    match waiting {
        Some(reason) => format!("{phase} ({reason})"),
        None if status.phase.as_deref() == Some("Running") => "Running, waiting for the server to be ready".to_owned(),
        None => phase,
    }
}

/// Ready (the pod IP), failed for good (a readable error), or not yet (`None`).
fn classify(pod: &Pod, unschedulable_is_fatal: bool) -> Option<Result<String, SpawnError>> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(Err(SpawnError::Failed(format!("the pod {name} is being deleted"))));
    }
    let status = pod.status.as_ref()?;
    for container in status.container_statuses.iter().flatten() {
        if let Some(waiting) = container.state.as_ref().and_then(|state| state.waiting.as_ref())
            && let Some(reason) = waiting.reason.as_deref()
            && FATAL_WAITING_REASONS.contains(&reason)
        {
            let detail = waiting.message.clone().unwrap_or_default();
            let what =
                if reason.contains("Image") { "the image cannot be pulled" } else { "the server keeps crashing" };
            return Some(Err(SpawnError::Failed(format!("{what} ({reason}): {detail}"))));
        }
        if let Some(terminated) = container.state.as_ref().and_then(|state| state.terminated.as_ref())
            && container.name == "notebook"
        {
            return Some(Err(SpawnError::Failed(format!(
                "the server exited with code {} ({})",
                terminated.exit_code,
                terminated.reason.clone().unwrap_or_default()
            ))));
        }
    }
    if let Some(phase @ ("Failed" | "Succeeded")) = status.phase.as_deref() {
        return Some(Err(SpawnError::Failed(format!("the pod {name} ended ({phase})"))));
    }
    if unschedulable_is_fatal
        && let Some(condition) = status.conditions.iter().flatten().find(|condition| {
            condition.type_ == "PodScheduled"
                && condition.status == "False"
                && condition.reason.as_deref() == Some("Unschedulable")
        })
    {
        return Some(Err(SpawnError::Failed(format!(
            "the pod cannot be scheduled: {}",
            condition.message.clone().unwrap_or_default()
        ))));
    }
    let running = status.phase.as_deref() == Some("Running");
    let all_ready = status.container_statuses.as_ref().is_some_and(|statuses| statuses.iter().all(|c| c.ready));
    match (&status.pod_ip, running && all_ready) {
        (Some(ip), true) if !ip.is_empty() => Some(Ok(ip.clone())),
        _ => None,
    }
}
