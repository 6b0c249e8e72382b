//! A simulated scheduler and kubelet: each new pod is scheduled, its image pulled and its containers started, with
//! the status transitions and Events (reason, message, source) a real node produces, or fails the way a test
//! asked (image pull errors, unschedulable, crash loops). A pod can also be backed by a real local process: the
//! notebook container's command runs with the pod's environment on the pod's own loopback address, so a spawn can
//! be followed into the server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::resources::Resource;
use super::store::{CreateOptions, KubeletSignal, Store, now};

/// The node every pod is scheduled to.
pub const NODE_NAME: &str = "fake-node-1";

/// What happens to a pod after it is created.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// Scheduled, pulled, started, Running and Ready with a made-up pod IP.
    Run,
    /// As `Run`, but the notebook container's command runs as a local process (see [`ProcessBacking`]).
    Process(ProcessBacking),
    /// The pull fails: ErrImagePull, then ImagePullBackOff, and the pod stays Pending.
    ImagePullError,
    /// No node fits: a FailedScheduling warning and the PodScheduled condition False/Unschedulable.
    Unschedulable,
    /// The container starts and exits with code 1 again and again: CrashLoopBackOff.
    CrashLoop,
    /// Scheduled, then stays in ContainerCreating for ever (for timeouts and kill-mid-spawn tests).
    Stuck,
}

/// How a pod is backed by a local process.
#[derive(Debug, Clone)]
pub struct ProcessBacking {
    /// Where a command given without a path is found (a venv's `bin/`).
    pub bin_dir: Option<PathBuf>,
    /// Arguments appended to the container's command (e.g. `--allow-root` when tests run as root).
    pub extra_args: Vec<String>,
    /// Folder of each pod's working directory and log file.
    pub work_dir: PathBuf,
    /// A command the container's command is run through (its program and arguments come last), e.g. one that
    /// gives the process the pod's view of cluster DNS names; empty runs it directly.
    pub command_prefix: Vec<String>,
}

/// Which pods a scenario applies to.
#[derive(Debug, Clone)]
pub enum PodMatch {
    Any,
    /// The notebook (first) container's image.
    Image(String),
    /// The pod's name.
    Name(String),
}

impl PodMatch {
    fn matches(&self, pod: &Value) -> bool {
        match self {
            PodMatch::Any => true,
            PodMatch::Image(image) => pod.pointer("/spec/containers/0/image").and_then(Value::as_str) == Some(image),
            PodMatch::Name(name) => pod.pointer("/metadata/name").and_then(Value::as_str) == Some(name),
        }
    }
}

/// A running local process behind a pod.
struct Backing {
    process_group: i32,
}

/// The kubelet's state: scenario rules and the processes it runs.
pub(crate) struct Kubelet {
    store: Arc<Store>,
    rules: Mutex<Vec<(PodMatch, Scenario)>>,
    processes: Mutex<HashMap<(String, String), Backing>>,
    step: Duration,
    grace_scale: f64,
    pod_counter: AtomicU32,
    event_counter: AtomicU32,
    /// The first two octets after 127 of process-backed pods' addresses: the fake's own API port, which no other
    /// fake on the machine holds while it runs, so two fakes in parallel tests never give their pods one address
    /// (a readiness probe would then find the other test's server).
    loopback_prefix: (u8, u8),
}

impl Kubelet {
    pub(crate) fn new(store: Arc<Store>, step: Duration, grace_scale: f64, api_port: u16) -> Arc<Kubelet> {
        Arc::new(Kubelet {
            store,
            rules: Mutex::new(Vec::new()),
            processes: Mutex::new(HashMap::new()),
            step,
            grace_scale,
            pod_counter: AtomicU32::new(0),
            event_counter: AtomicU32::new(0),
            loopback_prefix: ((api_port >> 8) as u8, (api_port & 0xff) as u8),
        })
    }

    /// Later rules win over earlier ones.
    pub(crate) fn add_rule(&self, matcher: PodMatch, scenario: Scenario) {
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((matcher, scenario));
    }

    fn scenario_for(&self, pod: &Value) -> Scenario {
        let rules = self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rules
            .iter()
            .rev()
            .find(|(matcher, _)| matcher.matches(pod))
            .map(|(_, scenario)| scenario.clone())
            .unwrap_or(Scenario::Run)
    }

    /// Reacts to the store's pod signals until the store goes away.
    pub(crate) async fn run(self: Arc<Self>, mut signals: mpsc::UnboundedReceiver<KubeletSignal>) {
        while let Some(signal) = signals.recv().await {
            let kubelet = self.clone();
            match signal {
                KubeletSignal::Created { namespace, name } => {
                    tokio::spawn(async move { kubelet.run_pod(namespace, name).await });
                }
                KubeletSignal::Deleting { namespace, name, grace_seconds } => {
                    tokio::spawn(async move { kubelet.terminate(namespace, name, grace_seconds).await });
                }
                KubeletSignal::Removed { namespace, name } => {
                    self.kill_process(&namespace, &name, nix::sys::signal::Signal::SIGKILL);
                    self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&(namespace, name));
                }
            }
        }
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.store.get(Resource::Pods, namespace, name)
    }

    /// True while the pod exists and is not being deleted.
    fn alive(&self, namespace: &str, name: &str) -> bool {
        self.pod(namespace, name).is_some_and(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
    }

    fn update_status(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let _ = self.store.modify(Resource::Pods, namespace, name, |pod| {
            change(pod);
            Ok(())
        });
    }

    /// Records an Event about the pod, as the component that would have written it.
    fn event(&self, pod: &Value, component: &str, event_type: &str, reason: &str, message: &str) {
        let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let counter = self.event_counter.fetch_add(1, Ordering::Relaxed);
        let timestamp = now();
        let mut involved = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": name,
            "namespace": namespace,
            "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            "resourceVersion": pod.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
        });
        if component == "kubelet" {
            involved["fieldPath"] = json!("spec.containers{notebook}");
        }
        let mut source = json!({"component": component});
        if component == "kubelet" {
            source["host"] = json!(NODE_NAME);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{name}.{:016x}", 0x18a0_0000_0000_0000u64 + counter as u64), "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": if component == "kubelet" { NODE_NAME } else { "" },
        });
        if let Err(status) =
            self.store.create(Resource::Events, namespace, event, &CreateOptions { strict: true, dry_run: false })
        {
            tracing::error!(?status, "the fake kubelet wrote an invalid event");
        }
    }

    async fn pause(&self) {
        tokio::time::sleep(self.step).await;
    }

    async fn run_pod(self: Arc<Self>, namespace: String, name: String) {
        let Some(pod) = self.pod(&namespace, &name) else { return };
        let scenario = self.scenario_for(&pod);
        self.pause().await;
        // === scheduler ===
        if matches!(scenario, Scenario::Unschedulable) {
            self.unschedulable(&namespace, &name, "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.");
            return;
        }
        let mut reported_missing_claim = false;
        loop {
            if !self.alive(&namespace, &name) {
                return;
            }
            let Some(pod) = self.pod(&namespace, &name) else { return };
            let missing =
                pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten().find_map(|volume| {
                    let claim = volume.pointer("/persistentVolumeClaim/claimName")?.as_str()?;
                    self.store
                        .get(Resource::PersistentVolumeClaims, &namespace, claim)
                        .is_none()
                        .then(|| claim.to_owned())
                });
            match missing {
                None => break,
                Some(claim) if !reported_missing_claim => {
                    reported_missing_claim = true;
                    self.unschedulable(&namespace, &name, &format!("0/1 nodes are available: persistentvolumeclaim \"{claim}\" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."));
                }
                Some(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let Ok(pod) = self.store.modify(Resource::Pods, &namespace, &name, |pod| {
            pod["spec"]["nodeName"] = json!(NODE_NAME);
            pod["status"]["conditions"] = json!([condition("PodScheduled", "True", None)]);
            Ok(())
        }) else {
            return;
        };
        self.event(
            &pod,
            "default-scheduler",
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {namespace}/{name} to {NODE_NAME}"),
        );
        // === kubelet ===
        self.pause().await;
        let started_at = now();
        let pod_ip = match &scenario {
            Scenario::Process(_) => {
                let index = self.pod_counter.fetch_add(1, Ordering::Relaxed) % 254 + 1;
                let (high, low) = self.loopback_prefix;
                format!("127.{high}.{low}.{index}")
            }
            _ => {
                let index = self.pod_counter.fetch_add(1, Ordering::Relaxed) % 60_000 + 1;
                format!("10.244.{}.{}", index / 250, index % 250 + 1)
            }
        };
        let image = pod.pointer("/spec/containers/0/image").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.complete_init_containers(&namespace, &name, &pod, &pod_ip, &started_at);
        if matches!(scenario, Scenario::Stuck) {
            return;
        }
        self.event(&pod, "kubelet", "Normal", "Pulling", &format!("Pulling image \"{image}\""));
        self.pause().await;
        if matches!(scenario, Scenario::ImagePullError) {
            self.image_pull_error(&namespace, &name, &image).await;
            return;
        }
        self.event(&pod, "kubelet", "Normal", "Pulled", &format!("Successfully pulled image \"{image}\" in 1.204s (1.204s including waiting). Image size: 187654321 bytes."));
        self.event(&pod, "kubelet", "Normal", "Created", "Created container: notebook");
        if let Scenario::Process(backing) = &scenario
            && let Err(message) = self.start_process(&namespace, &name, &pod, &pod_ip, backing)
        {
            tracing::warn!(%message, "the fake kubelet could not start the pod's process");
            self.event(&pod, "kubelet", "Warning", "Failed", &format!("Error: {message}"));
            self.crash_loop(&namespace, &name, &pod_ip, &started_at).await;
            return;
        }
        self.event(&pod, "kubelet", "Normal", "Started", "Started container notebook");
        if matches!(scenario, Scenario::CrashLoop) {
            self.crash_loop(&namespace, &name, &pod_ip, &started_at).await;
            return;
        }
        self.update_status(&namespace, &name, |pod| {
            let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
            pod["status"]["phase"] = json!("Running");
            pod["status"]["podIP"] = json!(pod_ip);
            pod["status"]["podIPs"] = json!([{"ip": pod_ip}]);
            pod["status"]["hostIP"] = json!("192.0.2.10");
            pod["status"]["startTime"] = json!(started_at);
            pod["status"]["conditions"] = json!([
                condition("Initialized", "True", None),
                condition("Ready", "True", None),
                condition("ContainersReady", "True", None),
                condition("PodScheduled", "True", None),
            ]);
            pod["status"]["containerStatuses"] = containers
                .iter()
                .map(|container| container_status(container, json!({"running": {"startedAt": started_at}}), true, 0))
                .collect();
        });
    }

    fn unschedulable(&self, namespace: &str, name: &str, message: &str) {
        let Ok(pod) = self.store.modify(Resource::Pods, namespace, name, |pod| {
            pod["status"]["conditions"] = json!([condition("PodScheduled", "False", Some(("Unschedulable", message)))]);
            Ok(())
        }) else {
            return;
        };
        self.event(&pod, "default-scheduler", "Warning", "FailedScheduling", message);
    }

    fn complete_init_containers(&self, namespace: &str, name: &str, pod: &Value, pod_ip: &str, started_at: &str) {
        let init = pod.pointer("/spec/initContainers").and_then(Value::as_array).cloned().unwrap_or_default();
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let waiting = json!({"waiting": {"reason": "ContainerCreating"}});
        self.update_status(namespace, name, |pod| {
            pod["status"]["podIP"] = json!(pod_ip);
            pod["status"]["podIPs"] = json!([{"ip": pod_ip}]);
            pod["status"]["hostIP"] = json!("192.0.2.10");
            pod["status"]["startTime"] = json!(started_at);
            if !init.is_empty() {
                pod["status"]["initContainerStatuses"] = init
                    .iter()
                    .map(|container| {
                        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": started_at}});
                        container_status(container, done, false, 0)
                    })
                    .collect();
            }
            pod["status"]["conditions"] = json!([
                condition("Initialized", "True", None),
                condition("Ready", "False", Some(("ContainersNotReady", "containers with unready status: [notebook]"))),
                condition("ContainersReady", "False", Some(("ContainersNotReady", "containers with unready status: [notebook]"))),
                condition("PodScheduled", "True", None),
            ]);
            pod["status"]["containerStatuses"] =
                containers.iter().map(|container| container_status(container, waiting.clone(), false, 0)).collect();
        });
    }

    async fn image_pull_error(&self, namespace: &str, name: &str, image: &str) {
        let Some(pod) = self.pod(namespace, name) else { return };
        let detail = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
        );
        self.event(&pod, "kubelet", "Warning", "Failed", &format!("Failed to pull image \"{image}\": {detail}"));
        self.event(&pod, "kubelet", "Warning", "Failed", "Error: ErrImagePull");
        let set_waiting = |reason: &'static str, message: String| {
            move |pod: &mut Value| {
                for status in pod["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                    if status["name"] == "notebook" {
                        status["state"] = json!({"waiting": {"reason": reason, "message": message}});
                    }
                }
            }
        };
        self.update_status(namespace, name, set_waiting("ErrImagePull", detail.clone()));
        self.pause().await;
        if !self.alive(namespace, name) {
            return;
        }
        self.event(&pod, "kubelet", "Normal", "BackOff", &format!("Back-off pulling image \"{image}\""));
        self.event(&pod, "kubelet", "Warning", "Failed", "Error: ImagePullBackOff");
        self.update_status(
            namespace,
            name,
            set_waiting("ImagePullBackOff", format!("Back-off pulling image \"{image}\": {detail}")),
        );
    }

    async fn crash_loop(&self, namespace: &str, name: &str, pod_ip: &str, started_at: &str) {
        for restart in 1..=3 {
            self.pause().await;
            let Some(pod) = self.pod(namespace, name) else { return };
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return;
            }
            let finished = now();
            self.update_status(namespace, name, |pod| {
                pod["status"]["phase"] = json!("Running");
                pod["status"]["podIP"] = json!(pod_ip);
                pod["status"]["startTime"] = json!(started_at);
                for status in pod["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                    if status["name"] == "notebook" {
                        status["restartCount"] = json!(restart);
                        status["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": finished}});
                        status["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off {}s restarting failed container=notebook pod={name}_{namespace}(…)", 10 << restart)}});
                    }
                }
            });
            self.event(
                &pod,
                "kubelet",
                "Warning",
                "BackOff",
                &format!("Back-off restarting failed container notebook in pod {name}_{namespace}"),
            );
        }
    }

    fn start_process(
        &self,
        namespace: &str,
        name: &str,
        pod: &Value,
        pod_ip: &str,
        backing: &ProcessBacking,
    ) -> Result<(), String> {
        use std::os::unix::process::CommandExt as _;
        let container = &pod["spec"]["containers"][0];
        let mut argv: Vec<String> = Vec::new();
        for list in ["command", "args"] {
            argv.extend(container[list].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
        }
        argv.extend(backing.extra_args.iter().cloned());
        if argv.is_empty() {
            return Err("the container has neither command nor args (no image ENTRYPOINT here)".into());
        }
        let program = match &backing.bin_dir {
            Some(dir) if !argv[0].contains('/') => dir.join(&argv[0]),
            _ => PathBuf::from(&argv[0]),
        };
        let work = backing.work_dir.join(format!("{namespace}-{name}"));
        let home = work.join("home");
        std::fs::create_dir_all(&home).map_err(|error| format!("cannot create {}: {error}", home.display()))?;
        let log = std::fs::File::create(work.join("container.log")).map_err(|error| error.to_string())?;
        let mut command = match backing.command_prefix.split_first() {
            Some((wrapper, wrapper_args)) => {
                let mut command = std::process::Command::new(wrapper);
                command.args(wrapper_args).arg(&program);
                command
            }
            None => std::process::Command::new(&program),
        };
        command.args(&argv[1..]).env_clear().current_dir(&home).process_group(0);
        command.stdout(log.try_clone().map_err(|error| error.to_string())?).stderr(log);
        let mut path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        if let Some(dir) = &backing.bin_dir {
            path = format!("{}:{path}", dir.display());
        }
        command.env("PATH", path).env("HOME", &home).env("HOSTNAME", name).env("LANG", "C.UTF-8");
        for variable in container["env"].as_array().into_iter().flatten() {
            let (Some(key), Some(value)) = (variable["name"].as_str(), variable["value"].as_str()) else { continue };
            // The pod has its own network namespace: a server told to listen on every address listens on the
            // pod's address here.
            let value =
                if key == "JUPYTERHUB_SERVICE_URL" { value.replace("0.0.0.0", pod_ip) } else { value.to_owned() };
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        let process_group = child.id() as i32;
        self.processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), Backing { process_group });
        let store = self.store.clone();
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        // The exit is noticed on a blocking thread; then the container is Terminated as the kubelet reports it.
        std::thread::spawn(move || {
            let code = child.wait().ok().and_then(|status| status.code()).unwrap_or(137);
            let finished = now();
            let _ = store.modify(Resource::Pods, &namespace, &name, |pod| {
                if pod.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(());
                }
                pod["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
                for status in pod["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                    if status["name"] == "notebook" {
                        let started = status.pointer("/state/running/startedAt").cloned().unwrap_or(json!(finished));
                        status["ready"] = json!(false);
                        status["started"] = json!(false);
                        status["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": started, "finishedAt": finished}});
                    }
                }
                Ok(())
            });
        });
        Ok(())
    }

    fn kill_process(&self, namespace: &str, name: &str, signal: nix::sys::signal::Signal) {
        let processes = self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(backing) = processes.get(&(namespace.to_owned(), name.to_owned())) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(backing.process_group), signal);
        }
    }

    /// Graceful termination: SIGTERM, the (scaled) grace period, then the pod object goes.
    async fn terminate(&self, namespace: String, name: String, grace_seconds: i64) {
        let Some(pod) = self.pod(&namespace, &name) else { return };
        self.event(&pod, "kubelet", "Normal", "Killing", "Stopping container notebook");
        self.kill_process(&namespace, &name, nix::sys::signal::Signal::SIGTERM);
        let grace = Duration::from_secs_f64((grace_seconds.max(0) as f64 * self.grace_scale).min(30.0));
        tokio::time::sleep(grace.max(self.step)).await;
        self.kill_process(&namespace, &name, nix::sys::signal::Signal::SIGKILL);
        self.store.remove(Resource::Pods, &namespace, &name);
    }

    /// Kills every process the kubelet started (the fake is going away).
    pub(crate) fn kill_all(&self) {
        let processes = self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for backing in processes.values() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(backing.process_group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn condition(kind: &str, status: &str, reason: Option<(&str, &str)>) -> Value {
    let mut condition = json!({"type": kind, "status": status, "lastTransitionTime": now()});
    if let Some((reason, message)) = reason {
        condition["reason"] = json!(reason);
        condition["message"] = json!(message);
    }
    condition
}

fn container_status(container: &Value, state: Value, ready: bool, restarts: u32) -> Value {
    let image = container["image"].as_str().unwrap_or_default();
    let running = state.get("running").is_some();
    let mut status = json!({
        "name": container["name"],
        "image": image,
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": running,
        "state": state,
    });
    if running {
        status["imageID"] = json!(format!("docker.io/library/{image}@sha256:{}", "0".repeat(64)));
        status["containerID"] = json!(format!("containerd://{}", "1".repeat(64)));
    }
    status
}
