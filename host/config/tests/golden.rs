//! Golden configs: every `config.yaml` fragment of the seed is a file in `deploy/examples/`, and each must load
//! and mean what it meant in JupyterHub. A new example without a test here fails `every_example_has_a_test`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wasmhub_config::{AuthenticatorClass, ByteSize, Config, PullPolicy, StorageType, check_with_env};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Every example tested below; `every_example_has_a_test` compares it with the folder.
const EXAMPLES: &[&str] = &[
    "authenticator-users.yaml",
    "cull.yaml",
    "custom-image-root.yaml",
    "dummy-authenticator.yaml",
    "generic-oauth-keycloak.yaml",
    "lab-profile.yaml",
    "profile-list.yaml",
];

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

#[track_caller]
fn load(name: &str) -> Config {
    let no_env = BTreeMap::<String, String>::new();
    match check_with_env(examples_dir().join(name), &no_env) {
        Ok(config) => config,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{name} does not load:\n{}", lines.join("\n"));
        }
    }
}

#[test]
fn every_example_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES, "add a test for each new example and list it in EXAMPLES");
}

#[test]
fn profile_list_with_kubespawner_override() {
    let config = load("profile-list.yaml");
    let singleuser = &config.singleuser;
    assert_eq!(singleuser.image.reference(), "jupyter/minimal-notebook:latest");
    assert_eq!(singleuser.storage.kind, StorageType::None);
    assert_eq!(singleuser.cpu.limit, Some(0.5));
    assert_eq!(singleuser.cpu.guarantee, Some(0.05));
    assert_eq!(singleuser.memory.limit, Some(ByteSize(GIB)));
    assert_eq!(singleuser.memory.guarantee, Some(ByteSize(256 * MIB)));

    let [minimal, data_science] = singleuser.profile_list.as_slice() else { panic!("two profiles expected") };
    assert_eq!(minimal.display_name, "Minimal environment");
    assert!(minimal.default);
    assert_eq!(minimal.kubespawner_override, Default::default(), "the default profile changes nothing");
    assert_eq!(minimal.slug(), "minimal-environment");

    assert!(!data_science.default);
    let spawner_override = &data_science.kubespawner_override;
    assert_eq!(spawner_override.image.as_deref(), Some("jupyter/datascience-notebook:latest"));
    assert_eq!(spawner_override.cpu_limit, Some(1.0));
    assert_eq!(spawner_override.cpu_guarantee, Some(0.05));
    assert_eq!(spawner_override.mem_limit, Some(ByteSize(2 * GIB)));
    assert_eq!(spawner_override.mem_guarantee, Some(ByteSize(256 * MIB)));
    let mounts = spawner_override.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[0]["mountPath"], "/home/jovyan");
    let volumes = spawner_override.volumes.as_ref().unwrap();
    assert_eq!(volumes[0]["persistentVolumeClaim"]["claimName"], "jupyter-notebook-tf");
}

#[test]
fn custom_image_runs_as_root_with_allow_root() {
    let config = load("custom-image-root.yaml");
    let [profile] = config.singleuser.profile_list.as_slice() else { panic!("one profile expected") };
    let spawner_override = &profile.kubespawner_override;
    assert_eq!(spawner_override.uid, Some(0));
    assert_eq!(spawner_override.gid, Some(0));
    let cmd = spawner_override.cmd.as_ref().unwrap();
    assert_eq!(cmd.args()[0], "jupyterhub-singleuser");
    assert!(cmd.args().iter().any(|arg| arg == "--allow-root"));
    assert!(cmd.args().iter().any(|arg| arg == "--ip=0.0.0.0"));
    assert_eq!(spawner_override.image.as_deref(), Some("htdp1/jupyter-notebook-custom:latest"));
    assert_eq!(spawner_override.image_pull_policy, Some(PullPolicy::Always));
    assert_eq!(spawner_override.mem_guarantee, Some(ByteSize(512 * MIB)));
    assert_eq!(spawner_override.volume_mounts.as_ref().unwrap()[0]["mountPath"], "/root");
}

#[test]
fn lab_profile_opens_lab() {
    let config = load("lab-profile.yaml");
    let [profile] = config.singleuser.profile_list.as_slice() else { panic!("one profile expected") };
    assert_eq!(profile.display_name, "Bonjour Lab");
    assert_eq!(profile.kubespawner_override.default_url.as_deref(), Some("/lab"));
    assert_eq!(profile.kubespawner_override.mem_limit, Some(ByteSize(4 * GIB)));
    assert_eq!(profile.kubespawner_override.image.as_deref(), Some("htdp1/jupyter-notebook:bonjour"));
    assert_eq!(config.singleuser.default_url, None, "only the profile changes the URL");
}

#[test]
fn cull_timeout_and_interval_in_seconds() {
    let config = load("cull.yaml");
    assert!(config.cull.enabled);
    assert_eq!(config.cull.timeout, 120);
    assert_eq!(config.cull.every, 10);
    // The rest keeps z2jh's defaults.
    assert_eq!(config.cull.concurrency, 10);
    assert!(!config.cull.users);
    assert!(config.cull.admin_users);
    assert_eq!(config.cull.max_age, 0);
}

#[test]
fn authenticator_admin_and_allowed_users() {
    let config = load("authenticator-users.yaml");
    let rules = config.auth_rules();
    // z2jh's default authenticator is `dummy`; with allowed_users set it does not allow everyone.
    assert_eq!(rules.class, AuthenticatorClass::Dummy);
    assert!(!rules.allow_all);
    for admin in ["admin", "user1", "user2"] {
        assert!(rules.is_admin(admin), "{admin} is admin");
        assert!(rules.is_allowed(admin), "admins are added to allowed_users");
    }
    for user in ["user3", "user4"] {
        assert!(rules.is_allowed(user));
        assert!(!rules.is_admin(user));
    }
    assert!(!rules.is_allowed("someone-else"), "only listed users may log in");
    assert!(rules.allow_existing_users, "users an admin adds in the panel may log in");
}

#[test]
fn dummy_authenticator_shared_password() {
    let config = load("dummy-authenticator.yaml");
    assert_eq!(config.hub.config.jupyterhub.authenticator_class, AuthenticatorClass::Dummy);
    assert_eq!(config.hub.config.dummy_authenticator.password.as_deref(), Some("change-me"));
    let rules = config.auth_rules();
    assert!(rules.is_admin("admin"));
    assert!(rules.is_allowed("user3"));
    assert!(!rules.is_allowed("user5"));

    let env = BTreeMap::from([("WASMHUB_DUMMY_PASSWORD".to_owned(), "from-env".to_owned())]);
    let config = check_with_env(examples_dir().join("dummy-authenticator.yaml"), &env).unwrap();
    assert_eq!(config.hub.config.dummy_authenticator.password.as_deref(), Some("from-env"));
}

#[test]
fn generic_oauth_for_keycloak() {
    let config = load("generic-oauth-keycloak.yaml");
    assert_eq!(config.hub.config.jupyterhub.authenticator_class, AuthenticatorClass::GenericOauth);
    let oauth = &config.hub.config.generic_oauthenticator;
    assert_eq!(oauth.client_id.as_deref(), Some("keycloak-client-id"));
    assert_eq!(oauth.oauth_callback_url.as_deref(), Some("https://jupyterhub.example.org/hub/oauth_callback"));
    assert!(oauth.authorize_url.as_deref().unwrap().ends_with("/protocol/openid-connect/auth"));
    assert!(oauth.token_url.as_deref().unwrap().ends_with("/protocol/openid-connect/token"));
    assert!(oauth.userdata_url.as_deref().unwrap().ends_with("/protocol/openid-connect/userinfo"));
    assert_eq!(oauth.effective_username_claim(), "preferred_username");
    assert_eq!(oauth.login_service, "keycloak");
    assert_eq!(oauth.userdata_params.get("state").map(String::as_str), Some("state"));

    let rules = config.auth_rules();
    assert!(rules.auto_login, "Authenticator.auto_login applies to the OAuth authenticator");
    assert!(rules.is_admin("admin"), "GenericOAuthenticator.admin_users");
    assert!(rules.is_allowed("admin"));
    assert!(!rules.is_allowed("github-user"), "JupyterHub 5: no allow config means only admins");

    let env = BTreeMap::from([("WASMHUB_OAUTH_CLIENT_SECRET".to_owned(), "s3cret".to_owned())]);
    let config = check_with_env(examples_dir().join("generic-oauth-keycloak.yaml"), &env).unwrap();
    assert_eq!(config.hub.config.generic_oauthenticator.client_secret.as_deref(), Some("s3cret"));
}
