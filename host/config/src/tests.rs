//! Loader tests: every error is reported, with position, key path, expected type and nearest key; env
//! overrides; the generated reference is current.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Config, load_str};

/// Loads `text` as `wasmhub.yaml` with `env` and returns the errors as displayed, or the config.
fn load_with(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    load_str(text, "wasmhub.yaml", &env).map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

#[track_caller]
fn errors(text: &str) -> Vec<String> {
    match load_with(text, &[]) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors,
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(load_with("", &[]).unwrap(), Config::default());
    assert_eq!(load_with("# only a comment\n", &[]).unwrap(), Config::default());
}

#[test]
fn unknown_key_names_position_path_and_nearest_key() {
    let text = "hub:\n  config:\n    Authenticator:\n      admin_user:\n        - admin\n";
    assert_eq!(
        errors(text),
        ["wasmhub.yaml:4:7: hub.config.Authenticator.admin_user: unknown key; did you mean admin_users?"]
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = "\
hub:
  config:
    Authenticator:
      admin_user: [admin]
    JupyterHub:
      authenticator_class: dumy
cull:
  timeout: soon
  every: -5
  enabled: yes
singleuser:
  memory:
    limit: 2 gigs
  profileList:
    - display_name: A
      kubespawner_override:
        imagePullPolicy: Always
        cpu_limt: 2
        mem_limit: 1G
    - display_name: B
      default: true
      kubespawner_override:
        uid: root
cul: {}
";
    assert_eq!(
        errors(text),
        [
            "wasmhub.yaml:4:7: hub.config.Authenticator.admin_user: unknown key; did you mean admin_users?",
            "wasmhub.yaml:6:28: hub.config.JupyterHub.authenticator_class: expected one of dummy, shared-password, \
             generic-oauth, found `dumy`; did you mean dummy?",
            "wasmhub.yaml:8:12: cull.timeout: expected a non-negative integer, found a string",
            "wasmhub.yaml:9:10: cull.every: -5 is negative; expected a non-negative integer",
            "wasmhub.yaml:10:12: cull.enabled: expected a boolean (true or false), found a string",
            "wasmhub.yaml:13:12: singleuser.memory.limit: expected a byte size: a number with an optional K, M, G or \
             T suffix (powers of 1024)",
            "wasmhub.yaml:17:9: singleuser.profileList[0].kubespawner_override.imagePullPolicy: unknown key; did you \
             mean image_pull_policy?",
            "wasmhub.yaml:18:9: singleuser.profileList[0].kubespawner_override.cpu_limt: unknown key; did you mean \
             cpu_limit?",
            "wasmhub.yaml:23:14: singleuser.profileList[1].kubespawner_override.uid: expected a non-negative \
             integer, found a string",
            "wasmhub.yaml:24:1: cul: unknown key; did you mean cull?",
        ]
    );
}

#[test]
fn wrong_section_type_names_the_expected_type() {
    assert_eq!(errors("singleuser: 3\n"), ["wasmhub.yaml:1:13: singleuser: expected a mapping, found an integer"]);
    assert_eq!(
        errors("hub:\n  config:\n    Authenticator:\n      admin_users: admin\n"),
        ["wasmhub.yaml:4:20: hub.config.Authenticator.admin_users: expected a list of string, found a string"]
    );
}

#[test]
fn unknown_hub_config_class_suggests_the_nearest() {
    assert_eq!(
        errors("hub:\n  config:\n    Authenticater: {}\n    KubeSpawner:\n      imag: x\n"),
        [
            "wasmhub.yaml:3:5: hub.config.Authenticater: unknown key; did you mean Authenticator?",
            "wasmhub.yaml:5:7: hub.config.KubeSpawner.imag: unknown key; did you mean image?",
        ]
    );
}

#[test]
fn syntax_error_has_a_position() {
    let errors = errors("hub:\n  config: [\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("wasmhub.yaml:3:1: YAML syntax error:"), "{}", errors[0]);
}

#[test]
fn duplicate_keys_are_an_error() {
    let errors = errors("cull:\n  timeout: 1\n  timeout: 2\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("YAML syntax error"), "{}", errors[0]);
}

#[test]
fn cross_key_checks_are_collected_with_positions() {
    let text = "\
hub:
  db:
    type: postgres
  config:
    JupyterHub:
      authenticator_class: generic-oauth
    GenericOAuthenticator:
      client_id: hub
      allowed_groups: [staff]
singleuser:
  profileList:
    - display_name: One
      default: true
    - display_name: one
      default: true
";
    assert_eq!(
        errors(text),
        [
            "wasmhub.yaml:3:5: hub.db.url: required when hub.db.type is postgres (or set WASMHUB_DB_URL)",
            "wasmhub.yaml:8:7: hub.config.GenericOAuthenticator.authorize_url: required when \
             hub.config.JupyterHub.authenticator_class is generic-oauth",
            "wasmhub.yaml:8:7: hub.config.GenericOAuthenticator.token_url: required when \
             hub.config.JupyterHub.authenticator_class is generic-oauth",
            "wasmhub.yaml:8:7: hub.config.GenericOAuthenticator.userdata_url: required when \
             hub.config.JupyterHub.authenticator_class is generic-oauth",
            "wasmhub.yaml:9:23: hub.config.GenericOAuthenticator.allowed_groups: needs manage_groups: true",
            "wasmhub.yaml:14:7: singleuser.profileList[1]: slug `one` is also the slug of profileList[0]; set `slug` \
             on one",
            "wasmhub.yaml:15:16: singleuser.profileList[1].default: only one profile may be the default; \
             profileList[0] already is",
        ]
    );
}

#[test]
fn noop_spawner_needs_its_url() {
    let missing = errors("wasmhub:\n  spawner: noop\n");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("wasmhub.noop.url: required when wasmhub.spawner is noop"), "{missing:?}");
    let config = load_with("wasmhub:\n  spawner: noop\n  noop:\n    url: http://127.0.0.1:9\n", &[]).unwrap();
    assert_eq!(config.wasmhub.spawner, crate::SpawnerKind::Noop);
    assert_eq!(config.wasmhub.noop.url.as_deref(), Some("http://127.0.0.1:9"));
}

#[test]
fn subdomain_host_and_trusted_proxies_are_checked_where_they_are_written() {
    let text = "hub:\n  config:\n    JupyterHub:\n      subdomain_host: hub.example.org/x\n      trusted_downstream_ips: [10.0.0.1, proxy]\n";
    let found = errors(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("hub.config.JupyterHub.subdomain_host: expected a scheme and host"), "{found:?}");
    assert!(found[1].contains("\"proxy\" is not an IP address"), "{found:?}");
    let text = "hub:\n  config:\n    JupyterHub:\n      subdomain_host: https://hub.example.org\n";
    let config = load_with(text, &[]).unwrap();
    assert_eq!(config.hub.config.jupyterhub.subdomain_host.as_deref(), Some("https://hub.example.org"));
}

#[test]
fn a_proxy_elsewhere_needs_its_api_url_and_the_built_in_one_refuses_it() {
    let found = errors("hub:\n  config:\n    ConfigurableHTTPProxy:\n      should_start: false\n");
    assert!(found[0].contains("ConfigurableHTTPProxy.api_url: required with should_start: false"), "{found:?}");
    let found = errors("hub:\n  config:\n    ConfigurableHTTPProxy:\n      api_url: http://proxy-api:8001\n");
    assert!(found[0].contains("only with should_start: false"), "{found:?}");
    let text = "hub:\n  config:\n    ConfigurableHTTPProxy:\n      should_start: false\n      api_url: http://proxy-api:8001\n";
    let config = load_with(text, &[]).unwrap();
    assert_eq!(config.hub.config.configurable_http_proxy.api_url.as_deref(), Some("http://proxy-api:8001"));
}

#[test]
fn letsencrypt_is_refused_with_what_to_use_instead() {
    let found = errors("proxy:\n  https:\n    enabled: true\n    type: letsencrypt\n");
    assert!(found[0].contains("proxy.https.type: letsencrypt is not supported: use secret"), "{found:?}");
    let found = errors("wasmhub:\n  listen:\n    proxyHttp: 127.0.0.1:8080\n");
    assert!(found[0].contains("wasmhub.listen.proxyHttp: redirects plain HTTP to HTTPS"), "{found:?}");
}

#[test]
fn python_extra_config_is_refused() {
    let errors = errors("hub:\n  extraConfig:\n    myConfig: |\n      c.Spawner.cmd = ['x']\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("wasmhub.yaml:3:5: hub.extraConfig: wasmhub does not run Python"), "{}", errors[0]);
}

#[test]
fn chart_only_keys_load() {
    let text = "hub:\n  resources:\n    requests: {cpu: 1}\nprePuller:\n  hook:\n    enabled: false\n";
    load_with(text, &[]).unwrap();
}

#[test]
fn environment_overrides_secrets() {
    let text = "proxy:\n  secretToken: from-file\nhub:\n  db:\n    type: postgres\n";
    let env = [
        ("WASMHUB_PROXY_SECRET_TOKEN", "from-env"),
        ("WASMHUB_COOKIE_SECRET", "abcd"),
        ("WASMHUB_DB_URL", "postgres://hub@localhost/hub"),
    ];
    let config = load_with(text, &env).unwrap();
    assert_eq!(config.proxy.secret_token.as_deref(), Some("from-env"));
    assert_eq!(config.hub.cookie_secret.as_deref(), Some("abcd"));
    assert_eq!(config.hub.db.effective_url().as_deref(), Some("postgres://hub@localhost/hub"));
    // An empty variable is unset.
    let config = load_with(text.replace("type: postgres", "type: sqlite-pvc").as_str(), &[("WASMHUB_DB_URL", "")]);
    assert_eq!(config.unwrap().hub.db.effective_url().as_deref(), Some("sqlite://jupyterhub.sqlite"));
}

#[test]
fn profile_options_and_wasmhub_section() {
    let text = r#"
singleuser:
  profileList:
    - display_name: GPU
      profile_options:
        image:
          display_name: Image
          choices:
            pytorch:
              display_name: PyTorch
              kubespawner_override:
                image: pytorch/pytorch
            tf:
              display_name: TensorFlow
              default: true
              kubespawner_override:
                image: tensorflow/tensorflow
          unlisted_choice:
            enabled: true
            validation_regex: "^[a-z/]+$"
            kubespawner_override:
              image: "{value}"
wasmhub:
  policies:
    dir: /etc/wasmhub/policies
  local:
    pythonEnv: /opt/venv
"#;
    let config = load_with(text, &[]).unwrap();
    let option = config.singleuser.profile_list[0].profile_options.get("image").unwrap();
    assert_eq!(option.choices.keys().collect::<Vec<_>>(), ["pytorch", "tf"]);
    assert!(option.choices.get("tf").unwrap().default);
    assert_eq!(option.unlisted_choice.kubespawner_override.image.as_deref(), Some("{value}"));
    assert_eq!(config.wasmhub.policies.dir, Some(PathBuf::from("/etc/wasmhub/policies")));
    assert_eq!(config.wasmhub.local.python_env, Some(PathBuf::from("/opt/venv")));

    let bad = text.replace("^[a-z/]+$", "([a-z");
    let errors = errors(&bad);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("unlisted_choice.validation_regex: not a valid regular expression"), "{}", errors[0]);
}

#[test]
fn config_is_plain_data() {
    let config = Config { cull: crate::Cull { timeout: 60, ..Default::default() }, ..Default::default() };
    assert_eq!(config.cull.every, 600);
    assert_eq!(config.hub.config.jupyterhub.authenticator_class, crate::AuthenticatorClass::Dummy);
    assert!(config.auth_rules().allow_all, "dummy with no allowed_users allows everyone");
}

#[test]
fn check_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhub.yaml");
    std::fs::write(&path, "singleuser:\n  defaultUrl: /lab\n  profileList:\n    - display_name: X\n      kubespawner_override:\n        default_ur: /lab\n").unwrap();
    let errors = crate::check(&path).unwrap_err();
    let shown = format!(
        "{}:6:9: singleuser.profileList[0].kubespawner_override.default_ur: unknown key; did you mean default_url?",
        path.display()
    );
    assert_eq!(errors.iter().map(ToString::to_string).collect::<Vec<_>>(), [shown]);

    let missing = crate::check(dir.path().join("nope.yaml")).unwrap_err();
    assert!(missing[0].to_string().contains("nope.yaml: cannot read:"), "{}", missing[0]);
}

#[test]
fn kubernetes_settings_are_checked_where_they_are_written() {
    let bad = errors(
        "wasmhub:\n  spawner: kubernetes\n  kubernetes:\n    hubConnectUrl: hub:8081\n    namespace: Users\n    \
         hubInstance: \"-x\"\n    unschedulableTimout: 60\n",
    );
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(
        bad.iter().any(|error| error.contains("wasmhub.kubernetes.hubConnectUrl") && error.contains("http://hub:8081"))
    );
    assert!(bad.iter().any(|error| error.contains("wasmhub.kubernetes.namespace")));
    assert!(bad.iter().any(|error| error.contains("wasmhub.kubernetes.hubInstance")));
    assert!(bad.iter().any(|error| error.contains("unschedulableTimeout")), "the nearest key is named: {bad:?}");
    let config = load_with(
        "wasmhub:\n  spawner: kubernetes\n  kubernetes:\n    kubeconfig: /etc/kube/config\n    namespace: jhub\n    \
         hubConnectUrl: http://hub:8081\n    unschedulableTimeout: 300\n",
        &[],
    )
    .unwrap();
    let kubernetes = &config.wasmhub.kubernetes;
    assert_eq!(config.wasmhub.spawner, crate::SpawnerKind::Kubernetes);
    assert_eq!(kubernetes.namespace.as_deref(), Some("jhub"));
    assert_eq!(kubernetes.hub_connect_url.as_deref(), Some("http://hub:8081"));
    assert_eq!(kubernetes.unschedulable_timeout, 300);
    assert_eq!(kubernetes.hub_instance, "wasmhub");
    assert!(kubernetes.collect_orphans);
}

/// Rewrites the generated file at `relative` (from the repository root) and fails when it was out of date.
fn regenerate(relative: &str, generated: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
        panic!("{relative} was out of date and has been regenerated; review and commit it");
    }
}

/// Regenerates `docs/config.md` from the declarations; fails (after rewriting it) when the committed file differs.
#[test]
fn generate_config_documentation() {
    regenerate("docs/config.md", &crate::reference_markdown());
}

/// Regenerates the chart's `values.schema.json` and `files/keys.json` from the same declarations.
#[test]
fn generate_chart_schema_and_key_tree() {
    let pretty = |value: serde_json::Value| serde_json::to_string_pretty(&value).unwrap() + "\n";
    regenerate("deploy/helm/wasmhub/values.schema.json", &pretty(crate::values_schema()));
    regenerate("deploy/helm/wasmhub/files/keys.json", &pretty(crate::values_key_tree()));
}

#[test]
fn services_and_roles_load_as_z2jh_writes_them_and_bad_references_are_named() {
    let text = "\
hub:
  services:
    jupyterhub-idle-culler:
      apiToken: 0123456789abcdef
  loadRoles:
    jupyterhub-idle-culler:
      scopes: [list:users, read:users:activity, read:servers, delete:servers]
      services: [jupyterhub-idle-culler]
";
    let config = load_with(text, &[]).unwrap();
    let culler = &config.hub.services["jupyterhub-idle-culler"];
    assert_eq!(culler.api_token.as_deref(), Some("0123456789abcdef"));
    assert!(!culler.admin);
    assert_eq!(config.hub.load_roles["jupyterhub-idle-culler"].scopes.len(), 4);

    let text = "\
hub:
  services:
    culler:
      apiToken: short
      name: other
  loadRoles:
    culler:
      services: [culer]
";
    assert_eq!(
        errors(text),
        [
            "wasmhub.yaml:4:17: hub.services.culler.apiToken: must be at least 8 characters",
            "wasmhub.yaml:5:13: hub.services.culler.name: must equal the key `culler` (or be left out)",
            "wasmhub.yaml:8:18: hub.loadRoles.culler.services[0]: no service `culer` in hub.services",
        ]
    );
}
