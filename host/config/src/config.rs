//! The whole file: the top-level sections, `cull`, `scheduling`, and `wasmhub`, the settings that are ours.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ChartOnly;
use crate::hub::Hub;
use crate::proxy::Proxy;
use crate::schema::{section, yaml_enum};
use crate::singleuser::Singleuser;

section! {
    /// One `wasmhub.yaml`, shaped like Zero-to-JupyterHub's `values.yaml`.
    pub struct Config {
        /// The hub.
        hub("hub"): Hub = Hub::default(),
        /// The proxy.
        proxy("proxy"): Proxy = Proxy::default(),
        /// The single-user servers.
        singleuser("singleuser"): Singleuser = Singleuser::default(),
        /// Stopping idle servers.
        cull("cull"): Cull = Cull::default(),
        /// Placement of user pods (Kubernetes).
        scheduling("scheduling"): Scheduling = Scheduling::default(),
        /// Settings that are wasmhub's own.
        wasmhub("wasmhub"): Wasmhub = Wasmhub::default(),
        /// Debug logging.
        debug("debug"): Debug = Debug::default(),
        /// Read by the Helm chart only.
        pre_puller("prePuller"): crate::chart::PrePuller = crate::chart::PrePuller::default(),
        /// Read by the Helm chart only.
        ingress("ingress"): crate::chart::Ingress = crate::chart::Ingress::default(),
        /// Read by the Helm chart only.
        http_route("httpRoute"): ChartOnly = ChartOnly::default(),
        /// Read by the Helm chart only.
        rbac("rbac"): crate::chart::Rbac = crate::chart::Rbac::default(),
        /// Read by the Helm chart only.
        image_pull_secret("imagePullSecret"): ChartOnly = ChartOnly::default(),
        /// Read by the Helm chart only.
        image_pull_secrets("imagePullSecrets"): Vec<serde_json::Value> = Vec::new(),
        /// Read by the Helm chart only.
        fullname_override("fullnameOverride"): Option<String> = None,
        /// Read by the Helm chart only.
        name_override("nameOverride"): Option<String> = None,
        /// Read by the Helm chart only.
        global("global"): ChartOnly = ChartOnly::default(),
    }
}

section! {
    /// The idle culler (z2jh `cull`, jupyterhub-idle-culler's flags). Times are in seconds.
    pub struct Cull {
        /// Whether idle servers are stopped.
        enabled("enabled"): bool = true,
        /// Seconds without activity after which a server is stopped. An open browser tab counts as activity.
        timeout("timeout"): u64 = 3600,
        /// Seconds between two checks.
        every("every"): u64 = 600,
        /// Most servers checked or stopped at once.
        concurrency("concurrency"): u32 = 10,
        /// Whether idle users are deleted too (not only their servers).
        users("users"): bool = false,
        /// Whether admins' servers are culled.
        admin_users("adminUsers"): bool = true,
        /// Whether culled named servers are removed rather than stopped.
        remove_named_servers("removeNamedServers"): bool = false,
        /// Seconds after which a server is stopped even when active; 0 never.
        max_age("maxAge"): u64 = 0,
    }
}

section! {
    /// Placement of pods (Kubernetes); only what the hub itself uses is typed.
    pub struct Scheduling {
        /// The packing scheduler for user pods.
        user_scheduler("userScheduler"): UserScheduler = UserScheduler::default(),
        /// Pod priorities.
        pod_priority("podPriority"): PodPriority = PodPriority::default(),
        /// Node preferences of user pods.
        user_pods("userPods"): PodPlacement = PodPlacement::default(),
        /// Node preferences of the hub and proxy pods.
        core_pods("corePods"): PodPlacement = PodPlacement::default(),
        /// Read by the Helm chart only.
        user_placeholder("userPlaceholder"): crate::chart::UserPlaceholder = crate::chart::UserPlaceholder::default(),
    }
}

section! {
    /// The packing scheduler for user pods.
    pub struct UserScheduler {
        /// Whether user pods use it (`schedulerName: <release>-user-scheduler`).
        enabled("enabled"): bool = true,
        /// Read by the Helm chart only.
        replicas("replicas"): Option<u32> = None,
        /// Read by the Helm chart only.
        log_level("logLevel"): Option<u32> = None,
        /// Read by the Helm chart only.
        image("image"): crate::chart::ChartImage = crate::chart::ChartImage::default(),
        /// Read by the Helm chart only.
        plugins("plugins"): Option<serde_json::Value> = None,
        /// Read by the Helm chart only.
        plugin_config("pluginConfig"): Vec<serde_json::Value> = Vec::new(),
        /// Read by the Helm chart only.
        pdb("pdb"): crate::chart::Pdb = crate::chart::Pdb::default(),
        /// Read by the Helm chart only.
        resources("resources"): Option<serde_json::Value> = None,
    }
}

section! {
    /// Pod priorities.
    pub struct PodPriority {
        /// Whether user pods get a priority class.
        enabled("enabled"): bool = false,
        /// Read by the Helm chart only.
        global_default("globalDefault"): bool = false,
        /// Read by the Helm chart only.
        default_priority("defaultPriority"): i64 = 0,
        /// Read by the Helm chart only.
        image_puller_priority("imagePullerPriority"): i64 = -5,
        /// Read by the Helm chart only.
        user_placeholder_priority("userPlaceholderPriority"): i64 = -10,
    }
}

section! {
    /// Node preferences of a group of pods.
    pub struct PodPlacement {
        /// Tolerations of these pods.
        tolerations("tolerations"): Option<Vec<serde_json::Value>> = None,
        /// Node affinity to nodes labelled `hub.jupyter.org/node-purpose`.
        node_affinity("nodeAffinity"): NodeAffinity = NodeAffinity::default(),
    }
}

section! {
    /// Affinity to dedicated nodes.
    pub struct NodeAffinity {
        /// `prefer`, `require` or `ignore` nodes labelled for this purpose.
        match_node_purpose("matchNodePurpose"): MatchNodePurpose = MatchNodePurpose::Prefer,
    }
}

yaml_enum! {
    /// How strongly pods go to nodes labelled for them.
    pub enum MatchNodePurpose {
        Prefer = "prefer",
        Require = "require",
        Ignore = "ignore",
    }
}

section! {
    /// Debug logging.
    pub struct Debug {
        /// Whether the hub and the servers log at debug level.
        enabled("enabled"): bool = false,
    }
}

section! {
    /// Settings that are wasmhub's own, with no z2jh equivalent.
    pub struct Wasmhub {
        /// Which spawner starts servers.
        spawner("spawner"): SpawnerKind = SpawnerKind::Local,
        /// Addresses the processes listen on when `wasmhub serve` runs everything.
        listen("listen"): Listen = Listen::default(),
        /// Policy plugins.
        policies("policies"): Policies = Policies::default(),
        /// The local process spawner.
        local("local"): LocalSpawner = LocalSpawner::default(),
        /// The no-op spawner (`spawner: noop`), for benchmarks and tests only.
        noop("noop"): NoopSpawner = NoopSpawner::default(),
        /// The Kubernetes spawner (`spawner: kubernetes`): where the cluster is and how pods reach the hub.
        kubernetes("kubernetes"): Kubernetes = Kubernetes::default(),
        /// Login throttling for the password form: failures per user name and per client address.
        login_throttle("loginThrottle"): LoginThrottle = LoginThrottle::default(),
        /// Where `proxy.https.type: secret` finds the secret's files (`proxy.https.secret.crt` and `.key`; the chart
        /// mounts the secret here); they are read again when they change, and a certificate that cannot be read
        /// leaves the previous one in use.
        tls_secret_dir("tlsSecretDir"): PathBuf = PathBuf::from("/etc/wasmhub/tls"),
        /// How `wasmhub serve` writes log lines: `text`, or `json` (one object per line, for a cluster's log
        /// collector; the chart's default). `--log-format` wins.
        log_format("logFormat"): LogFormat = LogFormat::Text,
        /// The proxy in its own process, as the Helm chart runs it (`wasmhub proxy`).
        proxy("proxy"): ProxyProcess = ProxyProcess::default(),
    }
}

yaml_enum! {
    /// How log lines are written.
    pub enum LogFormat {
        Text = "text",
        Json = "json",
    }
}

section! {
    /// The proxy's own process (the chart's proxy Deployment); `wasmhub serve`'s built-in proxy needs none of it.
    pub struct ProxyProcess {
        /// Seconds the proxy holds a request for the hub while nothing accepts connections there (a hub restart or
        /// rolling update) before answering 503; 0 answers at once, as CHP does. The chart passes it as
        /// `wasmhub proxy --default-target-hold`.
        default_target_hold("defaultTargetHold"): u64 = 30,
        /// How the proxy writes log lines (`wasmhub proxy --log-format`); the chart passes it on.
        log_format("logFormat"): LogFormat = LogFormat::Text,
    }
}

section! {
    /// Login throttling for the password form (every form authenticator). After too many failures within
    /// `window`, the user name or the client address is answered 429 for `lockout` seconds without checking the
    /// password; admins see and lift lockouts at `/hub/api/_wasmhub/login-lockouts`. A limit of 0 turns that count off.
    pub struct LoginThrottle {
        /// Failed logins of one user name within `window` that lock the name.
        max_failures_per_user("maxFailuresPerUser"): u32 = 5,
        /// Failed logins from one client address (the last `X-Forwarded-For` entry the proxy adds) within `window`
        /// that lock the address.
        max_failures_per_address("maxFailuresPerAddress"): u32 = 20,
        /// Seconds over which failures are counted.
        window("window"): u64 = 600,
        /// Seconds a lockout lasts.
        lockout("lockout"): u64 = 300,
    }
}

section! {
    /// How `wasmhub serve` reaches the cluster with `spawner: kubernetes`. Pods and claims are shaped by
    /// `singleuser`, `hub.config.KubeSpawner` and the profiles, as in z2jh.
    pub struct Kubernetes {
        /// A kubeconfig file; null uses the pod's service account in a cluster, or `KUBECONFIG` /
        /// `~/.kube/config` outside one.
        kubeconfig("kubeconfig"): Option<PathBuf> = None,
        /// Namespace of the user pods and claims; null uses the kubeconfig's (or the service account's) namespace.
        namespace("namespace"): Option<String> = None,
        /// The hub's URL as pods reach it, e.g. `http://hub:8081` (z2jh's hub Service); it replaces scheme, host
        /// and port of `JUPYTERHUB_API_URL` and `JUPYTERHUB_ACTIVITY_URL` in each pod. Null gives pods the hub's
        /// own listening address, for a hub on the pods' network.
        hub_connect_url("hubConnectUrl"): Option<String> = None,
        /// Written on every pod and claim (annotation `hub.jupyter.org/wasmhub-instance`); hubs sharing a namespace need
        /// different values, since each collects the pods of its instance that no server owns.
        hub_instance("hubInstance"): String = "wasmhub".to_owned(),
        /// Seconds a pod may stay unschedulable before the spawn fails; 0 fails at once. Raise it when a cluster
        /// autoscaler adds nodes.
        unschedulable_timeout("unschedulableTimeout"): u64 = 0,
        /// Whether pods of this hub instance that no server owns are deleted when the hub starts.
        collect_orphans("collectOrphans"): bool = true,
    }
}

yaml_enum! {
    /// Where servers run.
    pub enum SpawnerKind {
        /// One local process per server.
        Local = "local",
        /// One pod per server.
        Kubernetes = "kubernetes",
        /// For benchmarks and tests only: starts nothing and points every server at `wasmhub.noop.url`.
        Noop = "noop",
    }
}

section! {
    /// Listening addresses.
    pub struct Listen {
        /// Public address of the proxy (browsers and API clients).
        proxy("proxy"): String = "127.0.0.1:8000".to_owned(),
        /// Address of the proxy's REST API.
        proxy_api("proxyApi"): String = "127.0.0.1:8001".to_owned(),
        /// Address of the hub (reached through the proxy and by the servers).
        hub("hub"): String = "127.0.0.1:8081".to_owned(),
        /// With `proxy.https` served here (`manual`, `secret`), a plain HTTP address whose requests are redirected
        /// to HTTPS, as z2jh's port 80; null listens on none (z2jh's `proxy.service.disableHttpPort`).
        proxy_http("proxyHttp"): Option<String> = None,
    }
}

section! {
    /// Policy plugins.
    pub struct Policies {
        /// Folder of policy components, hot-loaded; null uses the built-in defaults (JupyterHub's behaviour).
        dir("dir"): Option<PathBuf> = None,
        /// Read by the Helm chart only: policy files by their path in the folder (text), mounted at `dir` from a
        /// ConfigMap, which the hub reloads when it changes.
        files("files"): BTreeMap<String, String> = BTreeMap::new(),
        /// Read by the Helm chart only: binary policy files (components) by their path in the folder, base64.
        binary_files("binaryFiles"): BTreeMap<String, String> = BTreeMap::new(),
    }
}

section! {
    /// The no-op spawner, for benchmarks and tests only: it starts nothing, and every server is "running" at one
    /// URL where an HTTP server must already answer (any status below 500), so the hub's own work is measured.
    pub struct NoopSpawner {
        /// Where every server is reached, `http://ip:port` without a path; required with `spawner: noop`.
        url("url"): Option<String> = None,
    }
}

section! {
    /// The local process spawner.
    pub struct LocalSpawner {
        /// Python environment (virtualenv or conda prefix) whose `bin/` holds `jupyterhub-singleuser`; null
        /// looks it up on `PATH`.
        python_env("pythonEnv"): Option<PathBuf> = None,
        /// Working directory of each server, `{username}` replaced, created when missing (owned by the server's
        /// system user, 0700); null uses the system user's home (or, with `shareHubUser`, the hub's working directory).
        work_dir("workDir"): Option<String> = None,
        /// Creates a missing system user (`useradd --create-home`, home 0700) on first spawn, as JupyterHub's
        /// `create_system_users`; otherwise each hub user must already be a system user of the same name.
        create_system_users("createSystemUsers"): bool = false,
        /// Runs every server as the hub's own Unix user. Without root the hub cannot switch users, and then it
        /// starts no server unless this says so; every user's server can then read the hub's files, its environment
        /// and the other servers' tokens, so it fits one person trying wasmhub out. Refused when the hub is root.
        share_hub_user("shareHubUser"): bool = false,
        /// Folder of the per-server log files.
        log_dir("logDir"): PathBuf = PathBuf::from("logs"),
        /// Address the servers listen on; each gets a free port.
        ip("ip"): String = "127.0.0.1".to_owned(),
        /// Seconds between SIGTERM and SIGKILL when a server is stopped.
        stop_timeout("stopTimeout"): u64 = 10,
    }
}
