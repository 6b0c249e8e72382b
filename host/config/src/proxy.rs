//! `proxy`: the proxy in front of the hub and the servers, its API token, service and TLS.

use std::collections::BTreeMap;

use crate::ChartOnly;
use crate::schema::{section, yaml_enum};

section! {
    /// The proxy (z2jh `proxy`).
    pub struct Proxy {
        /// Token the hub uses on the proxy's REST API (hex); null generates one per start when the hub runs the
        /// proxy itself. Overridden by `WASMHUB_PROXY_SECRET_TOKEN`.
        secret_token("secretToken"): Option<String> = None,
        /// The public service (Kubernetes).
        service("service"): ProxyService = ProxyService::default(),
        /// Settings of the proxy process (z2jh's configurable-http-proxy section).
        chp("chp"): Chp = Chp::default(),
        /// TLS on the public port.
        https("https"): Https = Https::default(),
        /// Read by the Helm chart only.
        traefik("traefik"): ChartOnly = ChartOnly::default(),
        /// Read by the Helm chart only.
        deployment_strategy("deploymentStrategy"): Option<serde_json::Value> = None,
        /// Read by the Helm chart only.
        labels("labels"): BTreeMap<String, String> = BTreeMap::new(),
        /// Read by the Helm chart only.
        annotations("annotations"): BTreeMap<String, String> = BTreeMap::new(),
    }
}

section! {
    /// The public Kubernetes Service `proxy-public`.
    pub struct ProxyService {
        /// Service type.
        kind("type"): ServiceType = ServiceType::LoadBalancer,
        /// Fixed node ports.
        node_ports("nodePorts"): NodePorts = NodePorts::default(),
        /// Whether port 80 is left out when HTTPS is on.
        disable_http_port("disableHttpPort"): bool = false,
        /// Fixed load balancer address.
        load_balancer_ip("loadBalancerIP"): Option<String> = None,
        /// Client ranges allowed through the load balancer.
        load_balancer_source_ranges("loadBalancerSourceRanges"): Vec<String> = Vec::new(),
        /// Service annotations.
        annotations("annotations"): BTreeMap<String, String> = BTreeMap::new(),
        /// Service labels.
        labels("labels"): BTreeMap<String, String> = BTreeMap::new(),
        /// Extra service ports.
        extra_ports("extraPorts"): Vec<serde_json::Value> = Vec::new(),
    }
}

yaml_enum! {
    /// Kubernetes Service type.
    pub enum ServiceType {
        ClusterIp = "ClusterIP",
        NodePort = "NodePort",
        LoadBalancer = "LoadBalancer",
    }
}

section! {
    /// Fixed node ports of the public service.
    pub struct NodePorts {
        /// Node port for HTTP.
        http("http"): Option<u16> = None,
        /// Node port for HTTPS.
        https("https"): Option<u16> = None,
    }
}

section! {
    /// The proxy process.
    pub struct Chp {
        /// Where requests that match no route go; null sends them to the hub.
        default_target("defaultTarget"): Option<String> = None,
        /// Where the proxy sends errors to be rendered; null renders its own pages.
        error_target("errorTarget"): Option<String> = None,
        /// Extra flags of `wasmhub proxy` (same as configurable-http-proxy's).
        extra_command_line_flags("extraCommandLineFlags"): Vec<String> = Vec::new(),
        /// Read by the Helm chart only.
        image("image"): crate::chart::ChartImage = crate::chart::ChartImage::default(),
        /// Read by the Helm chart only.
        resources("resources"): Option<serde_json::Value> = None,
        /// Read by the Helm chart only.
        network_policy("networkPolicy"): crate::chart::NetworkPolicy = crate::chart::NetworkPolicy::default(),
        /// Read by the Helm chart only.
        pdb("pdb"): crate::chart::Pdb = crate::chart::Pdb::default(),
        /// Read by the Helm chart only.
        node_selector("nodeSelector"): BTreeMap<String, String> = BTreeMap::new(),
        /// Read by the Helm chart only.
        tolerations("tolerations"): Vec<serde_json::Value> = Vec::new(),
        /// Read by the Helm chart only.
        liveness_probe("livenessProbe"): crate::chart::Probe = crate::chart::Probe::default(),
        /// Read by the Helm chart only.
        readiness_probe("readinessProbe"): crate::chart::Probe = crate::chart::Probe::default(),
    }
}

section! {
    /// TLS on the public port.
    pub struct Https {
        /// Whether HTTPS is served.
        enabled("enabled"): bool = false,
        /// `letsencrypt`: certificates from ACME; `manual`: `manual.cert`/`manual.key`; `secret`: a Kubernetes TLS
        /// secret; `offload`: TLS ends at the load balancer.
        kind("type"): HttpsType = HttpsType::Letsencrypt,
        /// Host names served.
        hosts("hosts"): Vec<String> = Vec::new(),
        /// ACME settings.
        letsencrypt("letsencrypt"): Letsencrypt = Letsencrypt::default(),
        /// PEM certificate and key given inline.
        manual("manual"): ManualTls = ManualTls::default(),
        /// A Kubernetes TLS secret.
        secret("secret"): TlsSecret = TlsSecret::default(),
    }
}

yaml_enum! {
    /// Where the certificate comes from.
    pub enum HttpsType {
        Letsencrypt = "letsencrypt",
        Manual = "manual",
        Secret = "secret",
        Offload = "offload",
    }
}

section! {
    /// ACME (Let's Encrypt).
    pub struct Letsencrypt {
        /// Contact address given to the ACME server.
        contact_email("contactEmail"): Option<String> = None,
        /// ACME directory URL.
        acme_server("acmeServer"): String = "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
    }
}

section! {
    /// An inline certificate.
    pub struct ManualTls {
        /// PEM private key.
        key("key"): Option<String> = None,
        /// PEM certificate chain.
        cert("cert"): Option<String> = None,
    }
}

section! {
    /// A Kubernetes TLS secret.
    pub struct TlsSecret {
        /// Secret name.
        name("name"): Option<String> = None,
        /// Key of the private key in the secret.
        key("key"): String = "tls.key".to_owned(),
        /// Key of the certificate in the secret.
        crt("crt"): String = "tls.crt".to_owned(),
    }
}
