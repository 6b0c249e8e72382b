//! [`KubeSpawner`]: the [`Spawner`] over the Kubernetes API. `prepare` resolves the profile and decides the names;
//! `start` ensures the claim, builds the pod, passes it through the pod policy, creates it (or adopts the one an
//! interrupted spawn left) and waits for it in the shared cache while this pod's events are watched for progress
//! and failure; `poll` and `stop` read the same cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use wasmhub_config::Config;
use wasmhub_policy::PolicyHost;
use wasmhub_policy::hooks::{
    OptionChoice, OptionValue, Profile, ProfileChoice, ProfileResolution, SpawnContext, User, initialize_profiles,
};
use wasmhub_spawner::{PollStatus, SpawnError, SpawnRequest, Spawner, SpawnerState, Started};

use crate::KubeError;
use crate::names::{NAMING, NameFields};
use crate::objects::{HUB_KEY, PodInputs, SERVERNAME_KEY, USERNAME_KEY, make_pod, make_pvc, make_service};
use crate::pods::PodCache;
use crate::settings::{Traits, apply_override, base_traits, kubespawner_defaults};

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

/// How the spawner is set up.
#[derive(Debug, Clone)]
pub struct KubeSpawnerConfig {
    /// Where pods and claims go.
    pub namespace: String,
    /// KubeSpawner's traits before profiles: `singleuser.*`, then `hub.config.KubeSpawner`.
    pub traits: Map<String, Value>,
    /// The initialised `profileList`.
    pub profiles: Vec<Profile>,
    /// Written on every pod and claim, so several hubs can share a namespace and each collects only its own.
    pub hub_instance: String,
    /// The hub's URL as pods reach it (z2jh: `http://hub:8081`); replaces the host of `JUPYTERHUB_API_URL` and
    /// `JUPYTERHUB_ACTIVITY_URL`. `None` keeps the hub's own URL (a hub on the same network as its pods).
    pub hub_connect_url: Option<String>,
    /// `gracePeriodSeconds` of a stop (KubeSpawner's `delete_grace_period`).
    pub delete_grace_period: i64,
    /// How long a pod may stay unschedulable before the spawn fails; zero fails at once (a cluster autoscaler
    /// needs minutes).
    pub unschedulable_timeout: Duration,
    /// How long `stop` waits for the pod to be gone.
    pub stop_timeout: Duration,
    /// Whether `collect_orphans` deletes anything (`wasmhub.kubernetes.collectOrphans`).
    pub collect_orphans: bool,
    /// How often a slow spawn tells its progress where the pod is.
    pub slow_spawn_interval: Duration,
}

impl KubeSpawnerConfig {
    /// The spawner as `wasmhub.yaml` describes it; `namespace` is the client's default, used when
    /// `wasmhub.kubernetes.namespace` is not set.
    pub fn from_config(config: &Config, namespace: &str) -> Result<KubeSpawnerConfig, KubeError> {
        let mut traits = kubespawner_defaults();
        apply_override(&mut traits, &base_traits(config));
        if let Value::Object(hub_override) = config.hub.config.kubespawner.to_json() {
            apply_override(&mut traits, &hub_override);
        }
        let list: Vec<Value> = config.singleuser.profile_list.iter().map(wasmhub_config::Profile::to_json).collect();
        let profiles = initialize_profiles(&list).map_err(KubeError::Profiles)?;
        // The traits must decode before the first spawn, not at it.
        serde_json::from_value::<Traits>(Value::Object(traits.clone()))
            .map_err(|error| KubeError::Settings(error.to_string()))?;
        let kubernetes = &config.wasmhub.kubernetes;
        Ok(KubeSpawnerConfig {
            namespace: kubernetes.namespace.clone().unwrap_or_else(|| namespace.to_owned()),
            traits,
            profiles,
            hub_instance: kubernetes.hub_instance.clone(),
            hub_connect_url: kubernetes.hub_connect_url.clone(),
            delete_grace_period: 1,
            unschedulable_timeout: Duration::from_secs(kubernetes.unschedulable_timeout),
            stop_timeout: Duration::from_secs(config.singleuser.start_timeout.max(10)),
            collect_orphans: kubernetes.collect_orphans,
            slow_spawn_interval: Duration::from_secs(10),
        })
    }
}

/// What the hub stores for one server: the names decided at `prepare`, never derived again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct State {
    naming: String,
    namespace: String,
    pod_name: String,
    /// The home claim, when the server has one.
    pvc_name: Option<String>,
    /// The profile slug the server was started with; empty without profiles.
    profile: String,
    user: String,
    server: String,
    port: u16,
    /// The pod's Service, with `services_enabled`; the server is then reached by its DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_name: Option<String>,
}

impl State {
    fn decode(state: &SpawnerState) -> Result<State, SpawnError> {
        serde_json::from_str(&state.0).map_err(|error| SpawnError::BadState(error.to_string()))
    }

    fn encode(&self) -> SpawnerState {
        SpawnerState(serde_json::to_string(self).expect("the state serialises"))
    }
}

/// The Kubernetes spawner.
pub struct KubeSpawner {
    client: kube::Client,
    config: KubeSpawnerConfig,
    policy: Arc<PolicyHost>,
    pods: PodCache,
    progress: ProgressChannels,
}

/// Progress channels of spawns between `prepare` and the end of `start`, by pod name.
type ProgressChannels = Arc<Mutex<HashMap<String, broadcast::Sender<String>>>>;

/// Removes a spawn's progress channel when its `start` or `resume` ends, also when the hub gives up on it (a
/// start timeout drops the future).
struct ChannelGuard<'a> {
    channels: &'a ProgressChannels,
    pod_name: &'a str,
}

impl Drop for ChannelGuard<'_> {
    fn drop(&mut self) {
        self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(self.pod_name);
    }
}

fn publish(channels: &ProgressChannels, pod_name: &str, message: String) {
    tracing::debug!(pod = pod_name, %message, "spawn progress");
    if let Some(sender) = channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(pod_name) {
        let _ = sender.send(message);
    }
}

impl KubeSpawner {
    /// Starts the shared pod watch and returns once its first list is in (or after 30 s, when the cluster is
    /// slow: calls then wait for it).
    pub async fn new(client: kube::Client, config: KubeSpawnerConfig, policy: Arc<PolicyHost>) -> KubeSpawner {
        let component = config.traits.get("component_label").and_then(Value::as_str).unwrap_or("singleuser-server");
        let pods = PodCache::start(client.clone(), &config.namespace, &format!("component={component}"));
        if !pods.ready(Duration::from_secs(30)).await {
            tracing::warn!("the user pod watch has not listed pods after 30 s; spawns wait for it");
        }
        KubeSpawner { client, config, policy, pods, progress: ProgressChannels::default() }
    }

    /// A client from a kubeconfig file, or else the in-cluster service account (or `KUBECONFIG`).
    pub async fn client(kubeconfig: Option<&Path>) -> Result<(kube::Client, String), KubeError> {
        let config = match kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .map_err(|source| KubeError::Kubeconfig { path: path.display().to_string(), source })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|source| KubeError::Kubeconfig { path: path.display().to_string(), source })?
            }
            None => kube::Config::infer().await.map_err(|error| KubeError::NoConfig(error.to_string()))?,
        };
        let namespace = config.default_namespace.clone();
        Ok((kube::Client::try_from(config)?, namespace))
    }

    /// Resolves the profile of a request and applies its override to the traits.
    fn traits_for(&self, request: &SpawnRequest) -> Result<(Traits, String), SpawnError> {
        let mut traits = self.config.traits.clone();
        let mut profile_slug = String::new();
        if !self.config.profiles.is_empty() {
            let choice = profile_choice(&self.config.profiles, &request.user_options);
            let user = User { name: request.user.clone(), admin: request.admin, groups: request.groups.clone() };
            let visible = self.policy.visible_profiles(&user, &self.config.profiles);
            match self.policy.resolve_profile(&user, &self.config.profiles, &choice) {
                ProfileResolution::Rejected { reason } => return Err(SpawnError::Rejected(reason)),
                ProfileResolution::Resolved { profile, kubespawner_override } => {
                    // The REST API must not reach a profile the user is not shown.
                    if !visible.contains(&profile) {
                        return Err(SpawnError::Rejected(format!("profile {profile:?} is not available to you")));
                    }
                    if let Value::Object(overrides) = kubespawner_override {
                        apply_override(&mut traits, &overrides);
                    }
                    profile_slug = profile;
                }
            }
        }
        let traits = serde_json::from_value::<Traits>(Value::Object(traits))
            .map_err(|error| SpawnError::Rejected(format!("the profile's kubespawner_override is invalid: {error}")))?;
        Ok((traits, profile_slug))
    }

    fn names(&self, state: &State, traits: &Traits) -> NameFields {
        let mut names = NameFields::new(&state.user, &state.server, &state.namespace);
        names.pod_name = state.pod_name.clone();
        names.pvc_name = state.pvc_name.clone().unwrap_or_else(|| names.expand(&traits.pvc_name_template));
        names
    }

    fn publish(&self, pod_name: &str, message: String) {
        publish(&self.progress, pod_name, message);
    }

    /// The hub's URLs as pods reach them.
    fn pod_env(&self, request: &SpawnRequest) -> std::collections::BTreeMap<String, String> {
        let mut env = request.env.clone();
        if let Some(connect) = &self.config.hub_connect_url {
            let connect = connect.trim_end_matches('/');
            for key in ["JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"] {
                if let Some(value) = env.get_mut(key)
                    && let Some(path_start) =
                        value.find("://").and_then(|scheme| value[scheme + 3..].find('/').map(|p| p + scheme + 3))
                {
                    *value = format!("{connect}{}", &value[path_start..]);
                }
            }
        }
        env
    }

    async fn ensure_claim(&self, traits: &Traits, names: &NameFields) -> Result<(), SpawnError> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &names.namespace);
        let claim: PersistentVolumeClaim =
            serde_json::from_value(make_pvc(traits, names, &self.config.hub_instance))
                .map_err(|error| SpawnError::Failed(format!("the home claim is invalid: {error}")))?;
        let params = PostParams::default();
        match with_retries(|| claims.create(&params, &claim)).await {
            Ok(_) => Ok(()),
            // The claim outlives pods on purpose: a second start finds it.
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
            Err(error) => Err(api_failure(&format!("creating the claim {}", names.pvc_name), error)),
        }
    }

    /// Creates the pod's Service, owned by the pod (its uid from the shared cache), so the cluster deletes it with
    /// the pod; one left by an earlier start of the same server is replaced, since it names the old pod as owner.
    async fn ensure_service(&self, traits: &Traits, names: &NameFields, state: &State) -> Result<(), SpawnError> {
        let Some(service_name) = &state.service_name else { return Ok(()) };
        let pod = self
            .pods
            .wait_for(&state.pod_name, Duration::from_secs(30), |pod| pod.cloned())
            .await
            .ok_or_else(|| SpawnError::Failed(format!("the pod {} did not appear", state.pod_name)))?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let labels: Map<String, Value> = pod
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, json!(value)))
            .collect();
        let manifest = make_service(traits, names, &self.config.hub_instance, &labels, &uid);
        let service: Service = serde_json::from_value(manifest)
            .map_err(|error| SpawnError::Failed(format!("the pod's Service is invalid: {error}")))?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), &state.namespace);
        let params = PostParams::default();
        for _attempt in 0..2 {
            match with_retries(|| services.create(&params, &service)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(response)) if response.code == 409 => self.delete_service(state).await?,
                Err(error) => return Err(api_failure(&format!("creating the Service {service_name}"), error)),
            }
        }
        Err(SpawnError::Failed(format!("the Service {service_name} kept coming back while it was replaced")))
    }

    async fn delete_service(&self, state: &State) -> Result<(), SpawnError> {
        let Some(service_name) = &state.service_name else { return Ok(()) };
        let services: Api<Service> = Api::namespaced(self.client.clone(), &state.namespace);
        let params = DeleteParams::default();
        match with_retries(|| services.delete(service_name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(error) => Err(api_failure(&format!("deleting the Service {service_name}"), error)),
        }
    }

    /// Creates the pod, or adopts the one a spawn interrupted by a hub restart already created.
    async fn create_or_adopt(&self, state: &State, pod: &Pod) -> Result<(), SpawnError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &state.namespace);
        for _attempt in 0..3 {
            if let Some(existing) = self.pods.get(&state.pod_name) {
                if owned_by(&existing, state, &self.config.hub_instance)
                    && existing.metadata.deletion_timestamp.is_none()
                {
                    self.publish(&state.pod_name, format!("Adopting the existing pod {}", state.pod_name));
                    return Ok(());
                }
                // A stale pod with our name (a stop that never finished, another server's leftovers): KubeSpawner
                // deletes it and creates ours.
                self.delete_pod(state, 0).await?;
                self.wait_gone(state).await?;
            }
            let params = PostParams::default();
            match with_retries(|| pods.create(&params, pod)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(response)) if response.code == 409 => {
                    // Created by someone between our look and our create; the cache will show it.
                    self.pods.wait_for(&state.pod_name, Duration::from_secs(5), |pod| pod.map(|_| ())).await;
                }
                Err(error) => return Err(api_failure(&format!("creating the pod {}", state.pod_name), error)),
            }
        }
        Err(SpawnError::Failed(format!("the pod {} kept being replaced while it was created", state.pod_name)))
    }

    async fn delete_pod(&self, state: &State, grace: i64) -> Result<(), SpawnError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &state.namespace);
        let params = DeleteParams::default().grace_period(grace.max(0) as u32);
        match with_retries(|| pods.delete(&state.pod_name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(error) => Err(api_failure(&format!("deleting the pod {}", state.pod_name), error)),
        }
    }

    async fn wait_gone(&self, state: &State) -> Result<(), SpawnError> {
        self.pods
            .wait_for(&state.pod_name, self.config.stop_timeout, |pod| pod.is_none().then_some(()))
            .await
            .ok_or_else(|| {
                SpawnError::Failed(format!(
                    "the pod {} was still there {} s after it was deleted",
                    state.pod_name,
                    self.config.stop_timeout.as_secs()
                ))
            })
    }

    /// Watches this pod's events only (a field selector, from the current version on) and publishes them as
    /// progress, until the returned task is aborted.
    fn watch_events(&self, state: &State) -> tokio::task::JoinHandle<()> {
        let (client, channels) = (self.client.clone(), self.progress.clone());
        let state = state.clone();
        tokio::spawn(async move {
            let events: Api<Event> = Api::namespaced(client, &state.namespace);
            let selector = format!("involvedObject.kind=Pod,involvedObject.name={}", state.pod_name);
            // Events of an earlier pod with the same name are history, not this spawn's progress.
            let params = ListParams::default().fields(&selector).limit(1);
            let mut version = match with_retries(|| events.list(&params)).await {
                Ok(list) => list.metadata.resource_version.unwrap_or_else(|| "0".into()),
                Err(error) => {
                    tracing::warn!(%error, "listing pod events; progress has no events");
                    return;
                }
            };
            loop {
                let params = WatchParams::default().fields(&selector).timeout(290);
                let stream = match events.watch(&params, &version).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "watching pod events");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let mut stream = std::pin::pin!(stream);
                while let Ok(Some(event)) = stream.try_next().await {
                    match event {
                        WatchEvent::Added(event) | WatchEvent::Modified(event) => {
                            if let Some(rv) = event.metadata.resource_version.clone() {
                                version = rv;
                            }
                            publish(&channels, &state.pod_name, event_message(&event));
                        }
                        WatchEvent::Bookmark(bookmark) => version = bookmark.metadata.resource_version,
                        WatchEvent::Deleted(_) => {}
                        // Expired: progress only needs what comes next.
                        WatchEvent::Error(_) => version = "0".into(),
                    }
                }
                let _ = stream.next().await;
            }
        })
    }

    /// Waits until the pod is running and ready, or has failed in a way that will not heal.
    async fn wait_ready(&self, state: &State) -> Result<String, SpawnError> {
        let started = Instant::now();
        let mut seen = false;
        let unschedulable_timeout = self.config.unschedulable_timeout;
        let outcome = self
            .pods
            .wait_for(&state.pod_name, Duration::from_secs(24 * 3600), |pod| {
                let Some(pod) = pod else {
                    return seen.then(|| Err(SpawnError::Failed(format!("the pod {} was deleted", state.pod_name))));
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

    /// [`Self::wait_ready`], telling progress every `slow_spawn_interval` where the pod is while it takes long,
    /// so a user watching a slow pull or scale-up sees that something is happening.
    async fn wait_ready_reporting(&self, state: &State) -> Result<String, SpawnError> {
        let started = Instant::now();
        let wait = self.wait_ready(state);
        let mut wait = std::pin::pin!(wait);
        let every = self.config.slow_spawn_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                outcome = &mut wait => return outcome,
                _ = ticker.tick() => {
                    let where_it_is = self.pods.get(&state.pod_name).map(|pod| pod_situation(&pod));
                    let where_it_is = where_it_is.unwrap_or_else(|| "not created yet".to_owned());
                    self.publish(
                        &state.pod_name,
                        format!(
                            "Still waiting for the pod {} after {} s: {where_it_is}",
                            state.pod_name,
                            started.elapsed().as_secs()
                        ),
                    );
                }
            }
        }
    }

    /// Waits for an owned pod of an interrupted start (see [`Spawner::resume`]).
    async fn resume_pod(&self, state: &State) -> Result<Option<Started>, SpawnError> {
        if !self.pods.ready(Duration::from_secs(30)).await {
            return Err(SpawnError::Failed("the pod watch has not listed pods yet".into()));
        }
        let Some(pod) = self.pods.get(&state.pod_name) else { return Ok(None) };
        if !owned_by(&pod, state, &self.config.hub_instance) || pod.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        self.publish(&state.pod_name, format!("Adopting the existing pod {}", state.pod_name));
        let events = self.watch_events(state);
        let ready = self.wait_ready_reporting(state).await;
        events.abort();
        Ok(Some(Started { url: server_url(state, &ready?), state: state.encode() }))
    }
}

/// Whether the pod is the one this server's spawn made: same user and server annotations, same hub.
fn owned_by(pod: &Pod, state: &State, hub_instance: &str) -> bool {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.get(USERNAME_KEY).map(String::as_str) == Some(state.user.as_str())
        && annotations.get(SERVERNAME_KEY).map(String::as_str).unwrap_or("") == state.server
        && annotations.get(HUB_KEY).map(String::as_str) == Some(hub_instance)
}

/// Where the server is reached: its Service's DNS name (KubeSpawner's `dns_name_template`) when it has one, else
/// the pod IP (IPv6 in brackets).
fn server_url(state: &State, pod_ip: &str) -> String {
    let port = state.port;
    match &state.service_name {
        Some(service) => format!("http://{service}.{}.svc.cluster.local:{port}", state.namespace),
        None if pod_ip.contains(':') => format!("http://[{pod_ip}]:{port}"),
        None => format!("http://{pod_ip}:{port}"),
    }
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

/// `"{lastTimestamp} [{type}] {message}"`, KubeSpawner's progress line for an event.
fn event_message(event: &Event) -> String {
    let timestamp = event
        .last_timestamp
        .as_ref()
        .map(|time| time.0.to_string())
        .or_else(|| event.event_time.as_ref().map(|time| time.0.to_string()))
        .unwrap_or_default();
    format!(
        "{timestamp} [{}] {}",
        event.type_.clone().unwrap_or_else(|| "Normal".into()),
        event.message.clone().unwrap_or_default()
    )
}

/// Retries a request that failed before the API server answered (a dropped connection, a timeout), with
/// backoff from 0.1 s for up to 30 s, as KubeSpawner's `k8s_api_request_retry_timeout`. Answers, errors
/// included, are returned at once.
async fn with_retries<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(100);
    loop {
        match request().await {
            Err(error) if !matches!(error, kube::Error::Api(_)) && Instant::now() + delay < deadline => {
                tracing::debug!(%error, "retrying a Kubernetes request");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

fn api_failure(what: &str, error: kube::Error) -> SpawnError {
    match error {
        kube::Error::Api(response) => SpawnError::Failed(format!("{what}: {} ({})", response.message, response.code)),
        other => SpawnError::Failed(format!("{what}: {other}")),
    }
}

/// KubeSpawner's reading of `user_options`: `profile`, then for each option of that profile its choice key, or
/// the free text under `<option>--unlisted-choice` when that is set. Keys that are not options are ignored, as
/// KubeSpawner ignores them.
fn profile_choice(profiles: &[Profile], user_options: &Map<String, Value>) -> ProfileChoice {
    let slug = user_options.get("profile").and_then(Value::as_str).unwrap_or_default().to_owned();
    let profile = profiles.iter().find(|profile| profile.slug == slug);
    let mut options = Vec::new();
    if let Some(declared) =
        profile.and_then(|profile| profile.definition.get("profile_options")).and_then(Value::as_object)
    {
        for option in declared.keys() {
            let unlisted = user_options.get(&format!("{option}--unlisted-choice")).and_then(Value::as_str);
            let value = match unlisted.filter(|text| !text.is_empty()) {
                Some(text) => OptionValue::Unlisted(text.to_owned()),
                None => match user_options.get(option).and_then(Value::as_str) {
                    Some(key) => OptionValue::Listed(key.to_owned()),
                    None => continue,
                },
            };
            options.push(OptionChoice { option: option.clone(), value });
        }
    }
    ProfileChoice { profile: slug, options }
}

#[async_trait::async_trait]
impl Spawner for KubeSpawner {
    async fn prepare(&self, request: &SpawnRequest) -> Result<SpawnerState, SpawnError> {
        let (traits, profile) = self.traits_for(request)?;
        let namespace = self.config.namespace.clone();
        let mut names = NameFields::new(&request.user, &request.server_name, &namespace);
        let pod_name = names.expand(&traits.pod_name_template);
        names.pod_name = pod_name.clone();
        let pvc_name = traits.storage_pvc_ensure.then(|| names.expand(&traits.pvc_name_template));
        let state = State {
            naming: NAMING.into(),
            namespace,
            pod_name: pod_name.clone(),
            pvc_name,
            profile,
            user: request.user.clone(),
            server: request.server_name.clone(),
            port: traits.port,
            service_name: traits.services_enabled.then(|| pod_name.clone()),
        };
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(pod_name)
            .or_insert_with(|| broadcast::channel(64).0);
        Ok(state.encode())
    }

    async fn start(&self, request: &SpawnRequest, prepared: &SpawnerState) -> Result<Started, SpawnError> {
        let state = State::decode(prepared)?;
        let _channel = ChannelGuard { channels: &self.progress, pod_name: &state.pod_name };
        async {
            let (traits, _) = self.traits_for(request)?;
            let names = self.names(&state, &traits);
            if state.pvc_name.is_some() {
                self.ensure_claim(&traits, &names).await?;
            }
            let env = self.pod_env(request);
            let inputs = PodInputs {
                names: &names,
                hub_env: &env,
                service_prefix: &request.service_prefix,
                hub_instance: &self.config.hub_instance,
            };
            let manifest = make_pod(&traits, &inputs);
            let context = SpawnContext {
                user: User { name: request.user.clone(), admin: request.admin, groups: request.groups.clone() },
                server_name: request.server_name.clone(),
                profile: state.profile.clone(),
            };
            let pod =
                self.policy.mutate_pod(&context, &manifest).map_err(|error| SpawnError::Failed(error.to_string()))?;
            let events = traits.events_enabled.then(|| self.watch_events(&state));
            let mut created = self.create_or_adopt(&state, &pod).await;
            if created.is_ok() && state.service_name.is_some() {
                created = self.ensure_service(&traits, &names, &state).await;
            }
            let ready = match created {
                Ok(()) => self.wait_ready_reporting(&state).await,
                Err(error) => Err(error),
            };
            if let Some(events) = events {
                events.abort();
            }
            Ok(Started { url: server_url(&state, &ready?), state: prepared.clone() })
        }
        .await
    }

    async fn poll(&self, state: &SpawnerState) -> Result<PollStatus, SpawnError> {
        let state = State::decode(state)?;
        if !self.pods.ready(Duration::from_secs(30)).await {
            return Err(SpawnError::Failed("the pod watch has not listed pods yet".into()));
        }
        let Some(pod) = self.pods.get(&state.pod_name) else { return Ok(PollStatus::Exited { code: None }) };
        if !owned_by(&pod, &state, &self.config.hub_instance) {
            return Ok(PollStatus::Exited { code: None });
        }
        let terminated = pod
            .status
            .as_ref()
            .and_then(|status| status.container_statuses.as_ref())
            .and_then(|statuses| statuses.iter().find(|status| status.name == "notebook"))
            .and_then(|status| status.state.as_ref()?.terminated.as_ref().map(|terminated| terminated.exit_code));
        if let Some(code) = terminated {
            return Ok(PollStatus::Exited { code: Some(code) });
        }
        if matches!(pod.status.as_ref().and_then(|status| status.phase.as_deref()), Some("Failed" | "Succeeded")) {
            return Ok(PollStatus::Exited { code: None });
        }
        Ok(PollStatus::Running)
    }

    async fn stop(&self, state: &SpawnerState) -> Result<(), SpawnError> {
        let state = State::decode(state)?;
        self.delete_pod(&state, self.config.delete_grace_period).await?;
        // The pod owns it, so a cluster's garbage collector would remove it too; deleting it here does not wait
        // for that.
        self.delete_service(&state).await?;
        self.wait_gone(&state).await
    }

    /// The channel is made by `prepare`, or here for a resumed start; `start` and `resume` remove it.
    fn progress(&self, state: &SpawnerState) -> Option<broadcast::Receiver<String>> {
        let state = State::decode(state).ok()?;
        let mut channels = self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(channels.entry(state.pod_name).or_insert_with(|| broadcast::channel(64).0).subscribe())
    }

    async fn resume(&self, prepared: &SpawnerState) -> Result<Option<Started>, SpawnError> {
        let state = State::decode(prepared)?;
        let _channel = ChannelGuard { channels: &self.progress, pod_name: &state.pod_name };
        self.resume_pod(&state).await
    }

    /// Deletes this hub's pods that no known server owns (a pod created by a spawn whose record is gone).
    async fn collect_orphans(&self, known: &[SpawnerState]) -> Result<Vec<String>, SpawnError> {
        if !self.config.collect_orphans {
            return Ok(Vec::new());
        }
        if !self.pods.ready(Duration::from_secs(30)).await {
            return Err(SpawnError::Failed("the pod watch has not listed pods yet".into()));
        }
        let owned: std::collections::BTreeSet<(String, String)> = known
            .iter()
            .filter_map(|state| State::decode(state).ok())
            .map(|state| (state.namespace, state.pod_name))
            .collect();
        let mut collected = Vec::new();
        for pod in self.pods.all() {
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            if annotations.get(HUB_KEY) != Some(&self.config.hub_instance) {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| self.config.namespace.clone());
            if owned.contains(&(namespace.clone(), name.clone())) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let state = State {
                naming: NAMING.into(),
                namespace,
                pod_name: name.clone(),
                pvc_name: None,
                profile: String::new(),
                user: String::new(),
                server: String::new(),
                port: 0,
                service_name: None,
            };
            self.delete_pod(&state, self.config.delete_grace_period).await?;
            collected.push(name);
        }
        Ok(collected)
    }
}
