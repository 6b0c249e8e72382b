//! [`KubeSpawner`]: the [`Spawner`] over the Kubernetes API. `prepare` applies the profile the hub resolved and
//! decides the names; `start` ensures the claim, builds the pod, passes it through the pods hook once, creates it
//! (or adopts the one an interrupted spawn left) and waits for it in the shared cache while this pod's events are
//! watched for progress and failure (`progress.rs`, `pod_status.rs`); `poll` and `stop` read the same cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EnvVar, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use wasmhub_spawner::{PollStatus, SpawnError, SpawnRequest, Spawner, SpawnerState, Started};

use crate::KubeError;
use crate::api::{api_failure, with_retries};
use crate::names::{NAMING, NameFields};
use crate::objects::{HUB_KEY, PodInputs, SERVERNAME_KEY, USERNAME_KEY, make_pod, make_pvc, make_service};
use crate::pod_mutation::{PodMutation, PodSpawn};
use crate::pod_status::{poll_status, wait_ready_reporting};
use crate::pods::PodCache;
use crate::progress::{ProgressChannels, watch_events};
use crate::settings::{KubeSpawnerConfig, Traits, apply_override};

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
    /// The pods hook, called once per spawn in `start`.
    mutation: Arc<dyn PodMutation>,
    pods: PodCache,
    progress: ProgressChannels,
}

impl KubeSpawner {
    /// Starts the shared pod watch and returns once its first list is in (or after 30 s, when the cluster is
    /// slow: calls then wait for it).
    pub async fn new(client: kube::Client, config: KubeSpawnerConfig, pods: Arc<dyn PodMutation>) -> KubeSpawner {
        let component = config.traits.get("component_label").and_then(Value::as_str).unwrap_or("singleuser-server");
        let cache = PodCache::start(client.clone(), &config.namespace, &format!("component={component}"));
        if !cache.ready(Duration::from_secs(30)).await {
            tracing::warn!("the user pod watch has not listed pods after 30 s; spawns wait for it");
        }
        KubeSpawner { client, config, mutation: pods, pods: cache, progress: ProgressChannels::default() }
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

    /// The traits of a spawn: the configured ones with the override of the profile the hub resolved applied over
    /// them, KubeSpawner's last step. Nothing is decided here, so `prepare` and `start` agree.
    fn traits_for(&self, request: &SpawnRequest) -> Result<Traits, SpawnError> {
        let mut traits = self.config.traits.clone();
        if let Some(profile) = &request.profile {
            apply_override(&mut traits, &profile.kubespawner_override);
        }
        serde_json::from_value::<Traits>(Value::Object(traits))
            .map_err(|error| SpawnError::Rejected(format!("the profile's kubespawner_override is invalid: {error}")))
    }

    fn names(&self, state: &State, traits: &Traits) -> NameFields {
        let mut names = NameFields::new(&state.user, &state.server, &state.namespace);
        names.pod_name = state.pod_name.clone();
        names.pvc_name = state.pvc_name.clone().unwrap_or_else(|| names.expand(&traits.pvc_name_template));
        names
    }

    fn publish(&self, pod_name: &str, message: String) {
        self.progress.publish(pod_name, message);
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

    /// Watches this pod's events for progress until the returned task is aborted.
    fn watch_events(&self, state: &State) -> tokio::task::JoinHandle<()> {
        watch_events(self.client.clone(), self.progress.clone(), &state.namespace, &state.pod_name)
    }

    /// Waits until the pod is ready or has failed for good, telling progress where it is while that takes long.
    async fn wait_ready_reporting(&self, state: &State) -> Result<String, SpawnError> {
        let (unschedulable, every) = (self.config.unschedulable_timeout, self.config.slow_spawn_interval);
        wait_ready_reporting(&self.pods, &state.pod_name, unschedulable, every, |message| {
            self.publish(&state.pod_name, message)
        })
        .await
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

/// The variables that carry the server's own API token: a pod policy never sees their values (a policy's log or a
/// monitor's recorded disagreement must not hold a credential).
const CREDENTIAL_VARIABLES: [&str; 2] = ["JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"];

/// Puts the credentials' values into the notebook container of the Pod the pods hook returned (where the hook left
/// their variables, or at the end of its environment when it removed them).
fn restore_credentials(pod: &mut Pod, env: &std::collections::BTreeMap<String, String>) {
    let Some(spec) = pod.spec.as_mut() else { return };
    let index = spec.containers.iter().position(|container| container.name == "notebook").unwrap_or(0);
    let Some(container) = spec.containers.get_mut(index) else { return };
    let variables = container.env.get_or_insert_with(Vec::new);
    for key in CREDENTIAL_VARIABLES {
        let Some(value) = env.get(key) else { continue };
        match variables.iter_mut().find(|variable| variable.name == key) {
            Some(variable) => {
                variable.value = Some(value.clone());
                variable.value_from = None;
            }
            None => variables.push(EnvVar { name: key.to_owned(), value: Some(value.clone()), ..EnvVar::default() }),
        }
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

#[async_trait::async_trait]
impl Spawner for KubeSpawner {
    async fn prepare(&self, request: &SpawnRequest) -> Result<SpawnerState, SpawnError> {
        let traits = self.traits_for(request)?;
        let profile = request.profile.as_ref().map(|profile| profile.slug.clone()).unwrap_or_default();
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
        self.progress.open(&pod_name);
        Ok(state.encode())
    }

    async fn start(&self, request: &SpawnRequest, prepared: &SpawnerState) -> Result<Started, SpawnError> {
        let state = State::decode(prepared)?;
        let _channel = self.progress.close_on_drop(&state.pod_name);
        async {
            let traits = self.traits_for(request)?;
            let names = self.names(&state, &traits);
            if state.pvc_name.is_some() {
                self.ensure_claim(&traits, &names).await?;
            }
            let env = self.pod_env(request);
            // The pods hook sees the credentials' variables but not their values, which go in after it.
            let mut redacted = env.clone();
            for key in CREDENTIAL_VARIABLES {
                if let Some(value) = redacted.get_mut(key) {
                    value.clear();
                }
            }
            let inputs = PodInputs {
                names: &names,
                hub_env: &redacted,
                service_prefix: &request.service_prefix,
                hub_instance: &self.config.hub_instance,
            };
            let manifest = make_pod(&traits, &inputs);
            let spawn = PodSpawn {
                user: request.user.clone(),
                server_name: request.server_name.clone(),
                profile: state.profile.clone(),
                admin: request.admin,
                groups: request.groups.clone(),
            };
            // Once per spawn: a retried create below reuses this pod rather than asking the hook again.
            let mut pod = self.mutation.mutate_pod(&spawn, manifest).await.map_err(SpawnError::Failed)?;
            restore_credentials(&mut pod, &env);
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
        Ok(poll_status(&pod))
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
        Some(self.progress.subscribe(&state.pod_name))
    }

    async fn resume(&self, prepared: &SpawnerState) -> Result<Option<Started>, SpawnError> {
        let state = State::decode(prepared)?;
        let _channel = self.progress.close_on_drop(&state.pod_name);
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
