//! One decision per hook per spawn: a spawn from the form and one from the REST API, through the Kubernetes
//! spawner against the fake API server, each ask the profiles hook once and the pods hook once, counted at the
//! policy host, and the pod carries the profile's override. Every server has an OAuth client of its own.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use wasmhub_kube::{KubeSpawner, KubeSpawnerConfig, apply_override, kubespawner_defaults};
use wasmhub_model::{ServerName, SpawnState, UserName};
use wasmhub_policy::hooks::{Hook, initialize_profiles};
use wasmhub_policy::native::NativeDefaults;
use wasmhub_policy::{PolicyHost, PolicyHostConfig};
use wasmhub_proxy::{Proxy, ProxyConfig};
use wasmhub_store::{NewOAuthClient, SqliteStore, Store};
use wasmhub_testkit::fake_k8s::{FakeApiServer, FakeConfig, PodMatch, ProcessBacking, Resource, Scenario};

use crate::tests::{Browser, SERVER, call, location, user_with_token};
use crate::{AuthSettings, DummyAuthenticator, Hub, HubConfig, Policies, router};

const PASSWORD: &str = "the-password";

#[tokio::test]
async fn a_spawn_from_the_form_and_one_from_the_api_each_ask_the_profiles_and_pods_hooks_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    // Each pod is a local process on its own loopback address, answering the hub's readiness probe.
    let backing = ProcessBacking {
        bin_dir: None,
        extra_args: Vec::new(),
        work_dir: dir.path().join("pods"),
        command_prefix: Vec::new(),
    };
    fake.set_scenario(PodMatch::Any, Scenario::Process(backing));
    let auth = AuthSettings { allow_all: true, ..AuthSettings::default() };
    let policy = Arc::new(
        PolicyHost::start(PolicyHostConfig {
            defaults: NativeDefaults { auth: auth.clone(), ..NativeDefaults::default() },
            ..PolicyHostConfig::default()
        })
        .unwrap(),
    );
    let (client, namespace) = KubeSpawner::client(Some(&fake.kubeconfig_path())).await.unwrap();
    let mut traits = kubespawner_defaults();
    let command = json!({ "cmd": ["python3", "-c", SERVER], "storage_pvc_ensure": false });
    apply_override(&mut traits, command.as_object().unwrap());
    let settings = KubeSpawnerConfig {
        namespace: namespace.clone(),
        traits,
        hub_instance: "decisions".into(),
        hub_connect_url: None,
        delete_grace_period: 1,
        unschedulable_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(10),
        collect_orphans: false,
        slow_spawn_interval: Duration::from_secs(10),
    };
    let spawner = KubeSpawner::new(client, settings, Arc::new(Policies::new(policy.clone()))).await;
    let profiles = initialize_profiles(&[
        json!({ "display_name": "Small", "slug": "small", "default": true }),
        json!({ "display_name": "Large", "slug": "large", "kubespawner_override": { "cpu_limit": 2.0 } }),
    ])
    .unwrap();
    let config = HubConfig { auth, profiles, http_timeout: Duration::from_secs(20), ..HubConfig::default() };
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).await.unwrap());
    let proxy = Proxy::new(ProxyConfig::default()).await.unwrap();
    let hub = Hub::new(config, store.clone(), Arc::new(spawner), Arc::new(proxy))
        .with_authenticator(Arc::new(DummyAuthenticator::new(Some(PASSWORD.into()))))
        .with_policy(policy.clone());
    let app = router(hub);
    let decisions = || (policy.decisions(Hook::Profiles), policy.decisions(Hook::Pods));

    // alice spawns from the form.
    let mut browser = Browser::default();
    let login = browser.log_in(&app, "alice", PASSWORD, "/hub/home").await;
    assert_eq!(login.status, StatusCode::FOUND, "{}", login.text);
    let before = decisions();
    let form = serde_urlencoded::to_string([("profile", "large"), ("_xsrf", &browser.xsrf())]).unwrap();
    let spawned = browser
        .request(
            &app,
            Method::POST,
            "/hub/spawn",
            Some(&form),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    if spawned.status != StatusCode::FOUND {
        let server = store.get_server(&UserName::parse("alice").unwrap(), &ServerName::default_server()).await;
        panic!("the form's spawn answered {}: {:?}", spawned.status, server.map(|server| server.failure));
    }
    assert!(location(&spawned).contains("alice"), "{}", location(&spawned));
    wait_running(store.as_ref(), "alice").await;
    assert_eq!(decisions(), (before.0 + 1, before.1 + 1), "one profiles and one pods decision for the form's spawn");
    let pod = fake.get(Resource::Pods, &namespace, "jupyter-alice").expect("alice's pod");
    assert_eq!(pod.pointer("/spec/containers/0/resources/limits/cpu"), Some(&Value::from("2")));

    // bob spawns through the REST API with the default profile.
    let token = user_with_token(store.as_ref(), "bob", false, &["servers!user=bob"]).await;
    let before = decisions();
    let answer = call(&app, Method::POST, "/hub/api/users/bob/server", Some(&token), Some("{}")).await;
    assert!(answer.status.is_success(), "{}", answer.text);
    wait_running(store.as_ref(), "bob").await;
    assert_eq!(decisions(), (before.0 + 1, before.1 + 1), "one profiles and one pods decision for the API's spawn");
    let pod = fake.get(Resource::Pods, &namespace, "jupyter-bob").expect("bob's pod");
    assert_eq!(pod.pointer("/spec/containers/0/resources/limits/cpu"), None);
}

async fn wait_running(store: &SqliteStore, user: &str) {
    let (name, default) = (UserName::parse(user).unwrap(), ServerName::default_server());
    for _ in 0..300 {
        // The record may not exist yet: the start that makes it runs in its own task.
        let Ok(server) = store.get_server(&name, &default).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match server.state {
            SpawnState::Running => return,
            SpawnState::Failed => panic!("{user}'s spawn failed: {:?}", server.failure),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{user}'s server did not start within 30 s");
}

/// A start whose caller goes away at once (a closed connection drops its request) still runs to the end, as a
/// JupyterHub request does: the server is never left `Requested` with no spawn behind it.
#[tokio::test]
async fn a_start_whose_caller_goes_away_still_runs_to_the_end() {
    let hub = crate::tests::test_hub().await;
    let name = UserName::parse("carol").unwrap();
    let carol = hub.store.create_user(&name, false).await.unwrap();
    let default = ServerName::default_server();
    let dropped = super::start(&hub.hub, &carol, &default, None, Duration::from_secs(10));
    // Polled once, then dropped, as axum drops the handler of a closed connection.
    assert!(tokio::time::timeout(Duration::ZERO, dropped).await.is_err());
    wait_running(hub.store.as_ref(), "carol").await;
    let stopped = call(&hub.app, Method::DELETE, "/hub/api/users/carol/server", Some(&hub.admin_token), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
}

#[tokio::test]
async fn user_as_server_b_and_user_a_b_get_oauth_clients_of_their_own() {
    let hub = crate::tests::test_hub().await;
    let admin = hub.admin_token.clone();
    for user in ["a", "a-b"] {
        user_with_token(&hub.store, user, false, &["inherit"]).await;
    }
    // A client left by a wasmhub that used JupyterHub's ids for a's server b (which a-b's default server shares).
    let legacy = NewOAuthClient {
        client_id: "jupyterhub-user-a-b".into(),
        description: "Server at /user/a/b/".into(),
        secret: None,
        redirect_uri: "/user/a/b/oauth_callback".into(),
        allowed_scopes: Vec::new(),
    };
    hub.store.put_oauth_client(&legacy).await.unwrap();
    let named = call(&hub.app, Method::POST, "/hub/api/users/a/servers/b", Some(&admin), None).await;
    assert_eq!(named.status, StatusCode::CREATED, "{}", named.text);
    let named_client = hub.store.get_oauth_client("jupyterhub-user-a%2Fb").await.unwrap();
    assert_eq!(named_client.redirect_uri, "/user/a/b/oauth_callback");
    // Stopping a's server b removes the client it left under JupyterHub's id, too.
    let stopped = call(&hub.app, Method::DELETE, "/hub/api/users/a/servers/b", Some(&admin), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    assert!(hub.store.get_oauth_client("jupyterhub-user-a-b").await.is_err());
    assert!(hub.store.get_oauth_client("jupyterhub-user-a%2Fb").await.is_err());

    // Both at once: two clients, each with its own callback; stopping a's server b leaves a-b's alone.
    for uri in ["/hub/api/users/a/servers/b", "/hub/api/users/a-b/server"] {
        let started = call(&hub.app, Method::POST, uri, Some(&admin), None).await;
        assert_eq!(started.status, StatusCode::CREATED, "{uri}: {}", started.text);
    }
    let dashed = hub.store.get_oauth_client("jupyterhub-user-a-b").await.unwrap();
    assert_eq!(dashed.redirect_uri, "/user/a-b/oauth_callback");
    let named_client = hub.store.get_oauth_client("jupyterhub-user-a%2Fb").await.unwrap();
    assert_eq!(named_client.redirect_uri, "/user/a/b/oauth_callback");
    call(&hub.app, Method::DELETE, "/hub/api/users/a/servers/b", Some(&admin), None).await;
    assert_eq!(hub.store.get_oauth_client("jupyterhub-user-a-b").await.unwrap().redirect_uri, dashed.redirect_uri);
    call(&hub.app, Method::DELETE, "/hub/api/users/a-b/server", Some(&admin), None).await;
}
