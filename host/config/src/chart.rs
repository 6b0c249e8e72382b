//! Sections the Helm chart reads and the hub does not (`deploy/helm/wasmhub/`), typed so that a key the chart would
//! not read is refused, by `wasmhub config check` and by the chart's key check alike, instead of being ignored.
//! Values left null take the chart's defaults from its `values.yaml`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::proxy::ServiceType;
use crate::schema::{section, yaml_enum};
use crate::singleuser::PullPolicy;

section! {
    /// An image the chart runs (`name:tag`).
    pub struct ChartImage {
        /// Image name without the tag.
        name("name"): Option<String> = None,
        /// Image tag.
        tag("tag"): Option<String> = None,
        /// `imagePullPolicy`; null lets Kubernetes choose.
        pull_policy("pullPolicy"): Option<PullPolicy> = None,
    }
}

section! {
    /// A PodDisruptionBudget.
    pub struct Pdb {
        /// Whether the chart creates it.
        enabled("enabled"): bool = false,
        /// `maxUnavailable` (a number or a percentage); wins over `minAvailable` when set.
        max_unavailable("maxUnavailable"): Option<Json> = None,
        /// `minAvailable` (a number or a percentage).
        min_available("minAvailable"): Option<Json> = None,
    }
}

section! {
    /// An HTTP probe of `/hub/health` or the proxy's health path; null fields take the chart's defaults.
    pub struct Probe {
        /// Whether the probe is set.
        enabled("enabled"): bool = true,
        /// `initialDelaySeconds`.
        initial_delay_seconds("initialDelaySeconds"): Option<u32> = None,
        /// `periodSeconds`.
        period_seconds("periodSeconds"): Option<u32> = None,
        /// `failureThreshold`.
        failure_threshold("failureThreshold"): Option<u32> = None,
        /// `timeoutSeconds`.
        timeout_seconds("timeoutSeconds"): Option<u32> = None,
    }
}

yaml_enum! {
    /// Whether access labels on other namespaces count (z2jh's `interNamespaceAccessLabels`).
    pub enum InterNamespaceAccess {
        Ignore = "ignore",
        Accept = "accept",
    }
}

section! {
    /// Which destinations pods may reach (z2jh's `egressAllowRules`); null takes the component's default.
    pub struct EgressAllowRules {
        /// 169.254.169.254, the cloud metadata server.
        cloud_metadata_server("cloudMetadataServer"): Option<bool> = None,
        /// DNS on the cloud metadata server.
        dns_ports_cloud_metadata_server("dnsPortsCloudMetadataServer"): Option<bool> = None,
        /// DNS in the kube-system namespace.
        dns_ports_kube_system_namespace("dnsPortsKubeSystemNamespace"): Option<bool> = None,
        /// DNS on private addresses.
        dns_ports_private_ips("dnsPortsPrivateIPs"): Option<bool> = None,
        /// Every address outside the private ranges.
        non_private_ips("nonPrivateIPs"): Option<bool> = None,
        /// The private ranges (10/8, 172.16/12, 192.168/16).
        private_ips("privateIPs"): Option<bool> = None,
    }
}

section! {
    /// A NetworkPolicy, with z2jh's keys.
    pub struct NetworkPolicy {
        /// Whether the chart creates it.
        enabled("enabled"): bool = true,
        /// Extra ingress rules (Kubernetes `NetworkPolicyIngressRule`s).
        ingress("ingress"): Vec<Json> = Vec::new(),
        /// Extra egress rules (Kubernetes `NetworkPolicyEgressRule`s).
        egress("egress"): Vec<Json> = Vec::new(),
        /// Which destinations are allowed.
        egress_allow_rules("egressAllowRules"): EgressAllowRules = EgressAllowRules::default(),
        /// Ports open to any source.
        allowed_ingress_ports("allowedIngressPorts"): Vec<Json> = Vec::new(),
        /// Whether access labels on other namespaces count.
        inter_namespace_access_labels("interNamespaceAccessLabels"): Option<InterNamespaceAccess> = None,
    }
}

section! {
    /// The hub's Service.
    pub struct HubService {
        /// Service type; null is ClusterIP.
        kind("type"): Option<ServiceType> = None,
        /// Service annotations (the chart adds Prometheus's).
        annotations("annotations"): BTreeMap<String, String> = BTreeMap::new(),
    }
}

section! {
    /// The SQLite volume (`hub.db.type: sqlite-pvc`).
    pub struct DbPvc {
        /// Access modes.
        access_modes("accessModes"): Vec<String> = Vec::new(),
        /// Requested size, e.g. `1Gi`.
        storage("storage"): Option<String> = None,
        /// Storage class; null uses the cluster's default.
        storage_class_name("storageClassName"): Option<String> = None,
        /// Claim annotations.
        annotations("annotations"): BTreeMap<String, String> = BTreeMap::new(),
        /// A label selector for a pre-made volume.
        selector("selector"): Option<Json> = None,
    }
}

section! {
    /// Pulling user images onto nodes ahead of users.
    pub struct PrePuller {
        /// Before an install or upgrade whose images changed, wait until every node has them.
        hook("hook"): PrePullerHook = PrePullerHook::default(),
        /// Keep pulling them on nodes that join later.
        continuous("continuous"): Switch = Switch::default(),
        /// Whether the images of profileList and its choices are pulled too.
        pull_profile_list_images("pullProfileListImages"): bool = true,
        /// More images to pull, by a name of your choice.
        extra_images("extraImages"): BTreeMap<String, ChartImage> = BTreeMap::new(),
        /// The pause container the pullers and placeholders run.
        pause("pause"): PauseContainer = PauseContainer::default(),
    }
}

section! {
    /// The hook puller and its awaiter Job.
    pub struct PrePullerHook {
        /// Whether it runs.
        enabled("enabled"): bool = true,
        /// Only when the set of images changed since the last release.
        pull_only_on_changes("pullOnlyOnChanges"): bool = true,
        /// The awaiter's image.
        image("image"): ChartImage = ChartImage::default(),
        /// Seconds a node may take to schedule the puller before it is skipped.
        pod_scheduling_wait_duration("podSchedulingWaitDuration"): Option<i64> = None,
        /// The awaiter's resources.
        resources("resources"): Option<Json> = None,
    }
}

section! {
    /// Something switched on or off.
    pub struct Switch {
        /// Whether it is on.
        enabled("enabled"): bool = true,
    }
}

section! {
    /// The pause container.
    pub struct PauseContainer {
        /// Its image.
        image("image"): ChartImage = ChartImage::default(),
    }
}

section! {
    /// An Ingress to `proxy-public`.
    pub struct Ingress {
        /// Whether the chart creates it.
        enabled("enabled"): bool = false,
        /// Ingress annotations.
        annotations("annotations"): BTreeMap<String, String> = BTreeMap::new(),
        /// `ingressClassName`.
        ingress_class_name("ingressClassName"): Option<String> = None,
        /// Host names; empty matches any host.
        hosts("hosts"): Vec<String> = Vec::new(),
        /// Appended to `hub.baseUrl` in the rule's path.
        path_suffix("pathSuffix"): Option<String> = None,
        /// `pathType`.
        path_type("pathType"): Option<String> = None,
        /// TLS entries (Kubernetes `IngressTLS`).
        tls("tls"): Vec<Json> = Vec::new(),
    }
}

section! {
    /// Roles and bindings.
    pub struct Rbac {
        /// Whether the chart creates them (false: you provide them, under the same names).
        create("create"): bool = true,
    }
}

section! {
    /// Keeping user pods away from the cloud's metadata server.
    pub struct CloudMetadata {
        /// z2jh's privileged init container that drops traffic to `ip` with iptables.
        block_with_iptables("blockWithIptables"): bool = true,
        /// The metadata server's address.
        ip("ip"): String = "169.254.169.254".to_owned(),
    }
}

section! {
    /// The image of the `block-cloud-metadata` init container.
    pub struct NetworkTools {
        /// Its image.
        image("image"): ChartImage = ChartImage::default(),
    }
}

section! {
    /// Pause pods holding room for users.
    pub struct UserPlaceholder {
        /// Whether the chart creates them.
        enabled("enabled"): bool = true,
        /// How many.
        replicas("replicas"): u32 = 0,
        /// Their resources; null uses the single-user guarantees.
        resources("resources"): Option<Json> = None,
    }
}
