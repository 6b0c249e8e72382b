//! `singleuser`: the single-user servers, their profiles and the closed set of `kubespawner_override` keys.

use std::collections::BTreeMap;

use crate::ChartOnly;
use crate::schema::{OrderedMap, section, yaml_enum};
use crate::values::{ByteSize, Command};

type Json = serde_json::Value;
type JsonMap = serde_json::Map<String, serde_json::Value>;

section! {
    /// How each user's server is started (z2jh `singleuser`, mapped onto the spawner's settings).
    pub struct Singleuser {
        /// Image of the single-user server (Kubernetes spawner).
        image("image"): Image = Image::default(),
        /// Command that starts the server; it must run `jupyterhub-singleuser`. On Kubernetes it becomes the
        /// container's `args`, so the image's ENTRYPOINT still runs.
        cmd("cmd"): Option<Command> = Some(Command::new(&["jupyterhub-singleuser"])),
        /// Page opened after the server starts, e.g. `/lab` (sets `JUPYTERHUB_DEFAULT_URL`); null means the
        /// server's own default.
        default_url("defaultUrl"): Option<String> = None,
        /// Seconds allowed for a server to start before the spawn fails.
        start_timeout("startTimeout"): u64 = 300,
        /// User id the server runs as (container `runAsUser`); null leaves the image's `USER`.
        uid("uid"): Option<u32> = Some(1000),
        /// Group id owning mounted volumes (pod `fsGroup`).
        fs_gid("fsGid"): Option<u32> = Some(100),
        /// Home directory storage.
        storage("storage"): Storage = Storage::default(),
        /// CPU limit and guarantee, in cores.
        cpu("cpu"): Cpu = Cpu::default(),
        /// Memory limit and guarantee.
        memory("memory"): Memory = Memory::default(),
        /// Extra resources such as `nvidia.com/gpu`, as Kubernetes quantities.
        extra_resource("extraResource"): ExtraResource = ExtraResource::default(),
        /// Environment variables set in every server.
        extra_env("extraEnv"): BTreeMap<String, String> = BTreeMap::new(),
        /// Profiles a user picks from when starting a server; empty means no choice is offered.
        profile_list("profileList"): Vec<Profile> = Vec::new(),
        /// Pod `nodeSelector`.
        node_selector("nodeSelector"): BTreeMap<String, String> = BTreeMap::new(),
        /// Tolerations added to the user pods' defaults.
        extra_tolerations("extraTolerations"): Vec<Json> = Vec::new(),
        /// Labels on user pods.
        extra_labels("extraLabels"): BTreeMap<String, String> = BTreeMap::from([
            ("hub.jupyter.org/network-access-hub".to_owned(), "true".to_owned()),
        ]),
        /// Annotations on user pods.
        extra_annotations("extraAnnotations"): BTreeMap<String, String> = BTreeMap::new(),
        /// Service account of user pods; null mounts no token.
        service_account_name("serviceAccountName"): Option<String> = None,
        /// Container `allowPrivilegeEscalation`; null leaves the cluster default.
        allow_privilege_escalation("allowPrivilegeEscalation"): Option<bool> = Some(false),
        /// Pod name template, e.g. `jupyter-{user_server}`; null uses the spawner's default.
        pod_name_template("podNameTemplate"): Option<String> = None,
        /// Whether Kubernetes events are shown as spawn progress.
        events("events"): bool = true,
        /// Fields merged into the pod spec.
        extra_pod_config("extraPodConfig"): JsonMap = JsonMap::new(),
        /// Extra containers in user pods.
        extra_containers("extraContainers"): Vec<Json> = Vec::new(),
        /// Init containers of user pods.
        init_containers("initContainers"): Vec<Json> = Vec::new(),
        /// Container `lifecycle` (postStart / preStop).
        lifecycle_hooks("lifecycleHooks"): JsonMap = JsonMap::new(),
        /// Read by the Helm chart only.
        network_policy("networkPolicy"): crate::chart::NetworkPolicy = crate::chart::NetworkPolicy::default(),
        /// Read by the Helm chart only.
        cloud_metadata("cloudMetadata"): crate::chart::CloudMetadata = crate::chart::CloudMetadata::default(),
        /// Read by the Helm chart only (the image of the `block-cloud-metadata` init container).
        network_tools("networkTools"): crate::chart::NetworkTools = crate::chart::NetworkTools::default(),
        /// Read by the Helm chart only.
        extra_files("extraFiles"): ChartOnly = ChartOnly::default(),
    }
}

section! {
    /// A container image reference.
    pub struct Image {
        /// Image name without the tag.
        name("name"): String = "quay.io/jupyterhub/singleuser".to_owned(),
        /// Image tag.
        tag("tag"): String = "latest".to_owned(),
        /// `imagePullPolicy`; null lets Kubernetes choose.
        pull_policy("pullPolicy"): Option<PullPolicy> = None,
        /// Names of image pull secrets.
        pull_secrets("pullSecrets"): Vec<String> = Vec::new(),
    }
}

impl Image {
    /// `name:tag`, as KubeSpawner's `image`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

yaml_enum! {
    /// Kubernetes `imagePullPolicy`.
    pub enum PullPolicy {
        Always = "Always",
        IfNotPresent = "IfNotPresent",
        Never = "Never",
    }
}

section! {
    /// Home directory storage.
    pub struct Storage {
        /// `dynamic`: one claim per server; `static`: one shared claim with a subPath per user; `none`: no
        /// persistent home.
        kind("type"): StorageType = StorageType::Dynamic,
        /// Size of each dynamic claim (Kubernetes quantity).
        capacity("capacity"): String = "10Gi".to_owned(),
        /// Where the home volume is mounted.
        home_mount_path("homeMountPath"): String = "/home/jovyan".to_owned(),
        /// Labels on created claims.
        extra_labels("extraLabels"): BTreeMap<String, String> = BTreeMap::new(),
        /// Extra volumes (a list, or a mapping keyed by name).
        extra_volumes("extraVolumes"): Option<Json> = None,
        /// Extra volume mounts (a list, or a mapping keyed by name).
        extra_volume_mounts("extraVolumeMounts"): Option<Json> = None,
        /// Settings of `type: dynamic`.
        dynamic("dynamic"): DynamicStorage = DynamicStorage::default(),
        /// Settings of `type: static`.
        static_("static"): StaticStorage = StaticStorage::default(),
    }
}

yaml_enum! {
    /// Kind of home storage.
    pub enum StorageType {
        Dynamic = "dynamic",
        Static = "static",
        None = "none",
    }
}

section! {
    /// One persistent volume claim per server.
    pub struct DynamicStorage {
        /// Storage class of the claims; null uses the cluster default.
        storage_class("storageClass"): Option<String> = None,
        /// Claim name template; null uses `claim-{user_server}`.
        pvc_name_template("pvcNameTemplate"): Option<String> = None,
        /// Volume name template.
        volume_name_template("volumeNameTemplate"): String = "volume-{user_server}".to_owned(),
        /// Access modes of the claims.
        storage_access_modes("storageAccessModes"): Vec<String> = vec!["ReadWriteOnce".to_owned()],
        /// Path inside the volume to mount.
        sub_path("subPath"): Option<String> = None,
    }
}

section! {
    /// One existing claim shared by all users.
    pub struct StaticStorage {
        /// Name of the existing claim (required with `type: static`).
        pvc_name("pvcName"): Option<String> = None,
        /// Path inside the claim for each user.
        sub_path("subPath"): String = "{username}".to_owned(),
    }
}

section! {
    /// CPU in cores.
    pub struct Cpu {
        /// Most CPU a server may use; null is unlimited.
        limit("limit"): Option<f64> = None,
        /// CPU reserved for a server; null reserves none.
        guarantee("guarantee"): Option<f64> = None,
    }
}

section! {
    /// Memory, in bytes with powers of 1024 (`1G` = 1073741824).
    pub struct Memory {
        /// Most memory a server may use; null is unlimited.
        limit("limit"): Option<ByteSize> = None,
        /// Memory reserved for a server.
        guarantee("guarantee"): Option<ByteSize> = Some(ByteSize(1 << 30)),
    }
}

section! {
    /// Extra extended resources.
    pub struct ExtraResource {
        /// Resource limits, e.g. `nvidia.com/gpu: "1"`.
        limits("limits"): BTreeMap<String, String> = BTreeMap::new(),
        /// Resource requests.
        guarantees("guarantees"): BTreeMap<String, String> = BTreeMap::new(),
    }
}

section! {
    /// One entry of `profileList`.
    pub struct Profile {
        /// Name shown to the user (required).
        display_name("display_name"): String = String::new(),
        /// Text shown under the name.
        description("description"): String = String::new(),
        /// Whether this profile is preselected; when none is, the first one is.
        default("default"): bool = false,
        /// Identifier used in `user_options`; null derives it from `display_name`.
        slug("slug"): Option<String> = None,
        /// Spawner settings this profile changes.
        kubespawner_override("kubespawner_override"): SpawnerOverride = SpawnerOverride::default(),
        /// Further choices inside this profile (e.g. image, GPU), applied in declaration order.
        profile_options("profile_options"): OrderedMap<ProfileOption> = OrderedMap::default(),
    }
}

impl Profile {
    /// The profile's slug: `slug` if set, else `display_name` lowercased with runs of other characters turned
    /// into `-` (KubeSpawner's `slugify`).
    pub fn slug(&self) -> String {
        if let Some(slug) = &self.slug {
            return slug.clone();
        }
        let mut slug = String::new();
        for c in self.display_name.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.trim_end_matches('-').to_owned()
    }
}

impl Profile {
    /// The entry in KubeSpawner's `profile_list` shape, as the profiles hook takes it
    /// (`wasmhub_policy::hooks::initialize_profiles`). Unset keys are left out.
    pub fn to_json(&self) -> Json {
        let mut profile = JsonMap::new();
        profile.insert("display_name".into(), self.display_name.clone().into());
        if !self.description.is_empty() {
            profile.insert("description".into(), self.description.clone().into());
        }
        if self.default {
            profile.insert("default".into(), true.into());
        }
        if let Some(slug) = &self.slug {
            profile.insert("slug".into(), slug.clone().into());
        }
        profile.insert("kubespawner_override".into(), self.kubespawner_override.to_json());
        let mut options = JsonMap::new();
        for (name, option) in &self.profile_options.0 {
            let mut choices = JsonMap::new();
            for (key, choice) in &option.choices.0 {
                let mut entry = JsonMap::new();
                entry.insert("display_name".into(), choice.display_name.clone().into());
                if choice.default {
                    entry.insert("default".into(), true.into());
                }
                entry.insert("kubespawner_override".into(), choice.kubespawner_override.to_json());
                choices.insert(key.clone(), Json::Object(entry));
            }
            let unlisted = &option.unlisted_choice;
            let mut unlisted_json = JsonMap::new();
            unlisted_json.insert("enabled".into(), unlisted.enabled.into());
            unlisted_json.insert("display_name".into(), unlisted.display_name.clone().into());
            unlisted_json.insert("display_name_in_choices".into(), unlisted.display_name_in_choices.clone().into());
            if let Some(regex) = &unlisted.validation_regex {
                unlisted_json.insert("validation_regex".into(), regex.clone().into());
            }
            if let Some(message) = &unlisted.validation_message {
                unlisted_json.insert("validation_message".into(), message.clone().into());
            }
            unlisted_json.insert("kubespawner_override".into(), unlisted.kubespawner_override.to_json());
            let mut entry = JsonMap::new();
            entry.insert("display_name".into(), option.display_name.clone().into());
            entry.insert("choices".into(), Json::Object(choices));
            entry.insert("unlisted_choice".into(), Json::Object(unlisted_json));
            options.insert(name.clone(), Json::Object(entry));
        }
        if !options.is_empty() {
            profile.insert("profile_options".into(), Json::Object(options));
        }
        Json::Object(profile)
    }
}

/// A typed override value as KubeSpawner's JSON.
trait OverrideJson {
    fn override_json(&self) -> Json;
}

macro_rules! override_json_via_into {
    ($($ty:ty),*) => {$(
        impl OverrideJson for $ty {
            fn override_json(&self) -> Json {
                Json::from(self.clone())
            }
        }
    )*};
}
override_json_via_into!(String, bool, u16, u32, u64, f64, Vec<String>, Vec<u32>, Json);

impl OverrideJson for PullPolicy {
    fn override_json(&self) -> Json {
        self.as_str().into()
    }
}
impl OverrideJson for Command {
    fn override_json(&self) -> Json {
        self.0.clone().into()
    }
}
impl OverrideJson for ByteSize {
    fn override_json(&self) -> Json {
        self.0.into()
    }
}
impl OverrideJson for BTreeMap<String, String> {
    fn override_json(&self) -> Json {
        Json::Object(self.iter().map(|(key, value)| (key.clone(), value.clone().into())).collect())
    }
}
impl OverrideJson for JsonMap {
    fn override_json(&self) -> Json {
        Json::Object(self.clone())
    }
}

/// Lists the set keys of a `SpawnerOverride`; its YAML keys are its field names.
macro_rules! override_fields {
    ($value:expr, $out:expr, [$($field:ident),* $(,)?]) => {$(
        if let Some(set) = &$value.$field {
            $out.insert(stringify!($field).to_owned(), set.override_json());
        }
    )*};
}

impl SpawnerOverride {
    /// The set keys as KubeSpawner's `kubespawner_override` JSON object.
    pub fn to_json(&self) -> Json {
        let mut out = JsonMap::new();
        override_fields!(
            self,
            out,
            [
                image,
                image_pull_policy,
                image_pull_secrets,
                cmd,
                args,
                cpu_limit,
                cpu_guarantee,
                mem_limit,
                mem_guarantee,
                extra_resource_limits,
                extra_resource_guarantees,
                uid,
                gid,
                fs_gid,
                supplemental_gids,
                privileged,
                allow_privilege_escalation,
                container_security_context,
                pod_security_context,
                node_selector,
                tolerations,
                node_affinity_required,
                node_affinity_preferred,
                pod_affinity_required,
                pod_affinity_preferred,
                pod_anti_affinity_required,
                pod_anti_affinity_preferred,
                scheduler_name,
                priority_class_name,
                volumes,
                volume_mounts,
                storage_capacity,
                storage_class,
                storage_access_modes,
                environment,
                default_url,
                working_dir,
                notebook_dir,
                service_account,
                start_timeout,
                http_timeout,
                lifecycle_hooks,
                init_containers,
                extra_containers,
                extra_container_config,
                extra_pod_config,
                extra_labels,
                extra_annotations,
                port,
                events_enabled,
                services_enabled,
            ]
        );
        Json::Object(out)
    }
}

section! {
    /// An option inside a profile: a list of choices and maybe free text.
    pub struct ProfileOption {
        /// Label of the option.
        display_name("display_name"): String = String::new(),
        /// The choices, keyed by the value stored in `user_options`.
        choices("choices"): OrderedMap<Choice> = OrderedMap::default(),
        /// A free-text choice.
        unlisted_choice("unlisted_choice"): UnlistedChoice = UnlistedChoice::default(),
    }
}

section! {
    /// One choice of a profile option.
    pub struct Choice {
        /// Label of the choice.
        display_name("display_name"): String = String::new(),
        /// Whether this choice is preselected; when none is, the first one is.
        default("default"): bool = false,
        /// Spawner settings this choice changes.
        kubespawner_override("kubespawner_override"): SpawnerOverride = SpawnerOverride::default(),
    }
}

section! {
    /// A free-text choice; `{value}` in the override's strings is replaced by what the user typed.
    pub struct UnlistedChoice {
        /// Whether free text is offered.
        enabled("enabled"): bool = false,
        /// Label of the text field.
        display_name("display_name"): String = String::new(),
        /// Label of the entry in the choice list.
        display_name_in_choices("display_name_in_choices"): String = "Other...".to_owned(),
        /// Regular expression the text must match (anchored at the start, as Python's `re.match`).
        validation_regex("validation_regex"): Option<String> = None,
        /// Message shown when the text does not match.
        validation_message("validation_message"): Option<String> = None,
        /// Spawner settings applied with the text substituted for `{value}`.
        kubespawner_override("kubespawner_override"): SpawnerOverride = SpawnerOverride::default(),
    }
}

section! {
    /// Spawner settings a profile, a choice or `hub.config.KubeSpawner` may set: KubeSpawner's trait names, a
    /// closed set. Unlike KubeSpawner, a key outside this set is an error, not silently ignored. Unset keys
    /// (null) leave the setting as it was; mappings are merged key by key and everything else replaces.
    pub struct SpawnerOverride [standalone] {
        /// Image reference `name:tag`.
        image("image"): Option<String> = None,
        /// `imagePullPolicy`.
        image_pull_policy("image_pull_policy"): Option<PullPolicy> = None,
        /// Names of image pull secrets.
        image_pull_secrets("image_pull_secrets"): Option<Vec<String>> = None,
        /// Command starting the server (container `args` on Kubernetes).
        cmd("cmd"): Option<Command> = None,
        /// Arguments appended to `cmd`.
        args("args"): Option<Vec<String>> = None,
        /// CPU limit in cores.
        cpu_limit("cpu_limit"): Option<f64> = None,
        /// CPU guarantee in cores.
        cpu_guarantee("cpu_guarantee"): Option<f64> = None,
        /// Memory limit (`2G`).
        mem_limit("mem_limit"): Option<ByteSize> = None,
        /// Memory guarantee (`512M`).
        mem_guarantee("mem_guarantee"): Option<ByteSize> = None,
        /// Extra resource limits, e.g. `nvidia.com/gpu: "1"`.
        extra_resource_limits("extra_resource_limits"): Option<BTreeMap<String, String>> = None,
        /// Extra resource requests.
        extra_resource_guarantees("extra_resource_guarantees"): Option<BTreeMap<String, String>> = None,
        /// User id (`runAsUser`); 0 runs as root, which needs `--allow-root` in `cmd`.
        uid("uid"): Option<u32> = None,
        /// Group id (`runAsGroup`).
        gid("gid"): Option<u32> = None,
        /// Pod `fsGroup`.
        fs_gid("fs_gid"): Option<u32> = None,
        /// Pod `supplementalGroups`.
        supplemental_gids("supplemental_gids"): Option<Vec<u32>> = None,
        /// Container `privileged`.
        privileged("privileged"): Option<bool> = None,
        /// Container `allowPrivilegeEscalation`.
        allow_privilege_escalation("allow_privilege_escalation"): Option<bool> = None,
        /// Container `securityContext` fields (camelCase), applied last.
        container_security_context("container_security_context"): Option<JsonMap> = None,
        /// Pod `securityContext` fields (camelCase).
        pod_security_context("pod_security_context"): Option<JsonMap> = None,
        /// Pod `nodeSelector`.
        node_selector("node_selector"): Option<BTreeMap<String, String>> = None,
        /// Pod `tolerations` (replaces the list).
        tolerations("tolerations"): Option<Json> = None,
        /// Required node affinity terms.
        node_affinity_required("node_affinity_required"): Option<Json> = None,
        /// Preferred node affinity terms.
        node_affinity_preferred("node_affinity_preferred"): Option<Json> = None,
        /// Required pod affinity terms.
        pod_affinity_required("pod_affinity_required"): Option<Json> = None,
        /// Preferred pod affinity terms.
        pod_affinity_preferred("pod_affinity_preferred"): Option<Json> = None,
        /// Required pod anti-affinity terms.
        pod_anti_affinity_required("pod_anti_affinity_required"): Option<Json> = None,
        /// Preferred pod anti-affinity terms.
        pod_anti_affinity_preferred("pod_anti_affinity_preferred"): Option<Json> = None,
        /// Pod `schedulerName`.
        scheduler_name("scheduler_name"): Option<String> = None,
        /// Pod `priorityClassName`.
        priority_class_name("priority_class_name"): Option<String> = None,
        /// Pod volumes: a list replaces the defaults (including the home volume), a mapping is merged by name.
        volumes("volumes"): Option<Json> = None,
        /// Container volume mounts: a list replaces, a mapping is merged by name.
        volume_mounts("volume_mounts"): Option<Json> = None,
        /// Size of the home claim.
        storage_capacity("storage_capacity"): Option<String> = None,
        /// Storage class of the home claim.
        storage_class("storage_class"): Option<String> = None,
        /// Access modes of the home claim.
        storage_access_modes("storage_access_modes"): Option<Vec<String>> = None,
        /// Environment variables (merged).
        environment("environment"): Option<BTreeMap<String, String>> = None,
        /// Page opened after start, e.g. `/lab`.
        default_url("default_url"): Option<String> = None,
        /// Working directory of the server process.
        working_dir("working_dir"): Option<String> = None,
        /// Root directory the server shows.
        notebook_dir("notebook_dir"): Option<String> = None,
        /// Pod service account.
        service_account("service_account"): Option<String> = None,
        /// Seconds allowed for the start.
        start_timeout("start_timeout"): Option<u64> = None,
        /// Seconds allowed for the server to answer HTTP after it started.
        http_timeout("http_timeout"): Option<u64> = None,
        /// Container `lifecycle`.
        lifecycle_hooks("lifecycle_hooks"): Option<JsonMap> = None,
        /// Init containers.
        init_containers("init_containers"): Option<Json> = None,
        /// Extra containers.
        extra_containers("extra_containers"): Option<Json> = None,
        /// Fields merged into the notebook container.
        extra_container_config("extra_container_config"): Option<JsonMap> = None,
        /// Fields merged into the pod spec.
        extra_pod_config("extra_pod_config"): Option<JsonMap> = None,
        /// Pod labels (merged).
        extra_labels("extra_labels"): Option<BTreeMap<String, String>> = None,
        /// Pod annotations (merged).
        extra_annotations("extra_annotations"): Option<BTreeMap<String, String>> = None,
        /// Port the server listens on.
        port("port"): Option<u16> = None,
        /// Whether the pod's events are shown as spawn progress.
        events_enabled("events_enabled"): Option<bool> = None,
        /// Whether each pod gets a Service (`<pod name>.<namespace>.svc.cluster.local`) through which the
        /// proxy reaches it, instead of the pod IP.
        services_enabled("services_enabled"): Option<bool> = None,
    }
}
