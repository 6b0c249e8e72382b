//! The core/v1 resources the fake serves, with what the real API server knows about each: kind, list kind, and
//! the fields it accepts in field selectors (the pod and event lists are the real server's, `kubectl` style).

/// A resource of the core API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Pods,
    PersistentVolumeClaims,
    Services,
    Events,
    Secrets,
    ConfigMaps,
    Namespaces,
}

impl Resource {
    pub const ALL: [Resource; 7] = [
        Resource::Pods,
        Resource::PersistentVolumeClaims,
        Resource::Services,
        Resource::Events,
        Resource::Secrets,
        Resource::ConfigMaps,
        Resource::Namespaces,
    ];

    pub(crate) fn from_plural(plural: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|resource| resource.plural() == plural)
    }

    /// The URL segment, e.g. `pods`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::PersistentVolumeClaims => "persistentvolumeclaims",
            Resource::Services => "services",
            Resource::Events => "events",
            Resource::Secrets => "secrets",
            Resource::ConfigMaps => "configmaps",
            Resource::Namespaces => "namespaces",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::PersistentVolumeClaims => "PersistentVolumeClaim",
            Resource::Services => "Service",
            Resource::Events => "Event",
            Resource::Secrets => "Secret",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Namespaces => "Namespace",
        }
    }

    pub(crate) fn namespaced(self) -> bool {
        self != Resource::Namespaces
    }

    /// Fields the real server accepts in a field selector for this resource (`metadata.name` and
    /// `metadata.namespace` everywhere, plus the resource's own conversion functions).
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            Resource::Pods => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Resource::Events => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Resource::Secrets => &["metadata.name", "metadata.namespace", "type"],
            Resource::Namespaces => &["metadata.name", "status.phase"],
            Resource::PersistentVolumeClaims | Resource::Services | Resource::ConfigMaps => {
                &["metadata.name", "metadata.namespace"]
            }
        }
    }
}
