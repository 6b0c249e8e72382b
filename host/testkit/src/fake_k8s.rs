//! A fake Kubernetes API server for tests: real HTTP on 127.0.0.1 with a generated kubeconfig, so the code under
//! test runs its production client (kube-rs: config loading, hyper, watch decoding) against it.
//!
//! It keeps what clients depend on: resourceVersions from one counter, list and watch with label and field
//! selectors, bookmarks and 410 Expired after compaction, `metav1.Status` errors, validation by round-tripping
//! through k8s-openapi with unknown fields refused, graceful pod deletion and ownerReference garbage collection.
//! A simulated scheduler and kubelet move pods along, or fail them as a test asks ([`Scenario`]).
//!
//! Where it departs from a real server on purpose: unknown fields are refused unless the client asks for `Warn`
//! or `Ignore` (the real default only warns), so a typo in a generated object fails the test that made it.

mod api;
mod kubelet;
mod resources;
mod selectors;
mod status;
mod store;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use api::{AccessRule, ApiCalls};
pub use kubelet::{NODE_NAME, PodMatch, ProcessBacking, Scenario};
pub use resources::Resource;
pub use status::{Cause, Status};
pub use validate::parse_quantity;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Namespaces that exist from the start; the first is the kubeconfig's namespace.
    pub namespaces: Vec<String>,
    /// Refuse unknown fields unless the request says `fieldValidation=Warn|Ignore`.
    pub strict_by_default: bool,
    /// How often an idle watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How many changes watches can replay before older versions get 410 Expired.
    pub history_limit: usize,
    /// Time between the simulated kubelet's steps (scheduled, pulling, started...).
    pub kubelet_step: Duration,
    /// Grace periods are multiplied by this, so a 30 s termination takes 3 s at 0.1.
    pub grace_scale: f64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            namespaces: vec!["default".into(), "jupyterhub".into()],
            strict_by_default: true,
            bookmark_interval: Duration::from_millis(500),
            history_limit: 100_000,
            kubelet_step: Duration::from_millis(20),
            grace_scale: 0.1,
        }
    }
}

/// Errors starting the fake.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(std::io::Error),
}

/// A running fake API server. Dropping it stops the server and kills every process its kubelet started.
pub struct FakeApiServer {
    address: SocketAddr,
    shared: Arc<api::Shared>,
    kubelet: Arc<kubelet::Kubelet>,
    namespace: String,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl FakeApiServer {
    /// Starts the server on a free port of 127.0.0.1 on the current tokio runtime.
    pub async fn start(config: FakeConfig) -> Result<FakeApiServer, FakeError> {
        // A deep accept queue: a thousand clients connecting at once must not wait for SYN retransmits.
        let socket = tokio::net::TcpSocket::new_v4().map_err(FakeError::Bind)?;
        socket.bind(([127, 0, 0, 1], 0).into()).map_err(FakeError::Bind)?;
        let listener = socket.listen(4096).map_err(FakeError::Bind)?;
        let address = listener.local_addr().map_err(FakeError::Bind)?;
        let (kubelet_sender, kubelet_receiver) = mpsc::unbounded_channel();
        let store = store::Store::new(&config.namespaces, config.history_limit, kubelet_sender);
        let kubelet = kubelet::Kubelet::new(store.clone(), config.kubelet_step, config.grace_scale, address.port());
        tokio::spawn(kubelet.clone().run(kubelet_receiver));
        let (watch_generation, _) = watch::channel(0);
        let shared = Arc::new(api::Shared {
            store,
            strict_by_default: config.strict_by_default,
            bookmark_interval: config.bookmark_interval,
            calls: Default::default(),
            failures: Default::default(),
            access: Default::default(),
            refused: Default::default(),
            watch_generation,
            open_watches: Default::default(),
        });
        let shutdown = CancellationToken::new();
        let app = api::router(shared.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        let dir = tempfile::Builder::new().prefix("wasmhub-fake-k8s").tempdir().map_err(FakeError::Kubeconfig)?;
        let namespace = config.namespaces.first().cloned().unwrap_or_else(|| "default".into());
        let server = FakeApiServer { address, shared, kubelet, namespace, dir, shutdown };
        std::fs::write(server.kubeconfig_path(), server.kubeconfig()).map_err(FakeError::Kubeconfig)?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The namespace the kubeconfig's context names.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig file for this server (context `fake`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  \
             context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: \
             fake\n  user: {{}}\n",
            url = self.url(),
            namespace = self.namespace
        )
    }

    /// From now on every request must be allowed by one of `rules`, as RBAC allows a Role's subject (a refused
    /// request gets RBAC's 403 and is recorded in [`FakeApiServer::refused_calls`]).
    pub fn enforce_access(&self, rules: Vec<AccessRule>) {
        *self.shared.access.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(rules);
    }

    /// The requests the access rules refused, as (verb, resource plural).
    pub fn refused_calls(&self) -> Vec<(String, String)> {
        self.shared.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Pods matching `matcher` follow `scenario` from now on; later calls win. Unmatched pods run (simulated).
    pub fn set_scenario(&self, matcher: PodMatch, scenario: Scenario) {
        self.kubelet.add_rule(matcher, scenario);
    }

    /// Requests answered so far, by verb (`create`, `get`, `list`, `watch`, `delete`, `patch`, `update`) and
    /// resource.
    pub fn api_calls(&self) -> ApiCalls {
        self.shared.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Requests of one verb on one resource so far.
    pub fn api_call_count(&self, verb: &str, resource: Resource) -> u64 {
        self.api_calls().get(&(verb.to_owned(), resource.plural().to_owned())).copied().unwrap_or(0)
    }

    /// Watches currently open.
    pub fn open_watches(&self) -> u64 {
        self.shared.open_watches.load(Ordering::Relaxed)
    }

    /// The next `count` requests fail with `code` (429, 500, 503 or 504).
    pub fn fail_next_requests(&self, count: u64, code: u16) {
        *self.shared.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (count, code);
    }

    /// Ends every open watch, as a restarted API server does; clients watch again from their last version.
    pub fn drop_watches(&self) {
        self.shared.watch_generation.send_modify(|generation| *generation += 1);
    }

    /// Forgets the change history: watches from any earlier resourceVersion get 410 Expired.
    pub fn compact(&self) {
        self.shared.store.compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.current_resource_version()
    }

    /// One object, as stored.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store.get(resource, namespace, name)
    }

    /// Every object of a resource in a namespace.
    pub fn list(&self, resource: Resource, namespace: &str) -> Vec<Value> {
        self.shared.store.list(resource, Some(namespace)).0
    }

    /// Creates an object as a client would (validated, strict), e.g. a PVC a profile expects to exist.
    pub fn create(&self, resource: Resource, namespace: &str, object: Value) -> Result<Value, Status> {
        let options = store::CreateOptions { strict: true, dry_run: false };
        self.shared.store.create(resource, namespace, object, &options)
    }

    /// Deletes an object behind the client's back (an operator's `kubectl delete`), gracefully for pods.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Result<Value, Status> {
        self.shared.store.delete(resource, namespace, name, None, (None, None))
    }

    /// The last version of every object the fake ever stored, deleted ones included.
    pub fn every_stored_object(&self) -> Vec<Value> {
        self.shared.store.ever_stored()
    }

    /// Writes [`FakeApiServer::every_stored_object`] as one multi-document file (JSON documents, which YAML
    /// readers accept) for `kubernetes-validate --strict`.
    pub fn dump_stored_objects(&self, path: &Path) -> std::io::Result<usize> {
        let objects = self.every_stored_object();
        let mut text = String::new();
        for object in &objects {
            text.push_str("---\n");
            text.push_str(&serde_json::to_string(object).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        std::fs::write(path, text)?;
        Ok(objects.len())
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.drop_watches();
        self.kubelet.kill_all();
    }
}
