//! The built-in behaviour exists twice: native Rust in the host (`src/native/`) and components in
//! `plugins/defaults/`. Generated settings and inputs go to both; every decision must be identical. This is
//! also the proof that the WIT interface carries everything our own defaults need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use proptest::prelude::*;
use wasmhub_policy::hooks::{
    CullServer, Hook, Identity, OptionChoice, OptionValue, ProfileChoice, SpawnContext, User, initialize_profiles,
};
use wasmhub_policy::native::{self, AuthSettings, CullSettings, ProfileSettings};
use wasmhub_policy::{Limits, LoadedComponent, OutcomeClass, PolicyEngine};
use wasmhub_policy_test_plugins as plugins;

struct Components {
    auth: LoadedComponent,
    profiles: LoadedComponent,
    pods: LoadedComponent,
    cull: LoadedComponent,
}

fn components() -> &'static Components {
    static COMPONENTS: OnceLock<Components> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let engine = PolicyEngine::new(None).unwrap();
        let load =
            |hook, path| LoadedComponent::load(&engine, "default", hook, &plugins::component_bytes(path)).unwrap();
        Components {
            auth: load(Hook::Auth, plugins::WASMHUB_DEFAULT_AUTH),
            profiles: load(Hook::Profiles, plugins::WASMHUB_DEFAULT_PROFILES),
            pods: load(Hook::Pods, plugins::WASMHUB_DEFAULT_PODS),
            cull: load(Hook::Cull, plugins::WASMHUB_DEFAULT_CULL),
        }
    })
}

/// Native `Result<T, String>` against a plugin call: `Ok` must match `ok`, `Err(m)` a policy error with `m`.
fn assert_same<T: PartialEq + std::fmt::Debug>(native: Result<T, String>, plugin: wasmhub_policy::CallReport<T>) {
    match (native, plugin.result) {
        (Ok(native), Ok(plugin)) => assert_eq!(native, plugin),
        (Err(native), Err(failure)) => {
            assert_eq!(failure.class, OutcomeClass::PolicyError, "{failure}");
            assert_eq!(failure.message, native);
        }
        (native, plugin) => panic!("native {native:?} but plugin {plugin:?}"),
    }
}

const NAMES: &[&str] = &["alice", "Bob", "carol", "ALICE", "dave", " eve", "a/b", "", "root", "Émile"];
const GROUPS: &[&str] = &["staff", "gpu-users", "students", "admins"];

fn name() -> impl Strategy<Value = String> {
    proptest::sample::select(NAMES).prop_map(str::to_owned)
}

fn name_set() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(name().prop_map(|name| name.to_lowercase()), 0..3)
}

fn group_set() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(proptest::sample::select(GROUPS).prop_map(str::to_owned), 0..3)
}

fn auth_settings() -> impl Strategy<Value = AuthSettings> {
    (
        (
            proptest::option::of(proptest::sample::select(&["preferred_username", "email"][..])),
            any::<bool>(),
            name_set(),
            name_set(),
            name_set(),
        ),
        (
            proptest::option::of(proptest::sample::select(&["[a-z]+", "a", ".*", "[^0-9]"][..])),
            any::<bool>(),
            proptest::sample::select(&["groups", "realm.groups"][..]),
        ),
        (
            group_set(),
            group_set(),
            proptest::collection::btree_map(name().prop_map(|n| n.to_lowercase()), name(), 0..2),
        ),
    )
        .prop_map(
            |(
                (claim, allow_all, allowed, blocked, admins),
                (pattern, manage_groups, groups_claim),
                (allowed_groups, admin_groups, username_map),
            )| AuthSettings {
                username_claim: claim.map(str::to_owned),
                username_map: username_map.into_iter().collect::<BTreeMap<_, _>>(),
                username_pattern: pattern.map(str::to_owned),
                allow_all,
                allowed_users: allowed,
                blocked_users: blocked,
                admin_users: admins,
                manage_groups,
                groups_claim: groups_claim.to_owned(),
                allowed_groups: if manage_groups { allowed_groups } else { BTreeSet::new() },
                admin_groups: if manage_groups { admin_groups } else { BTreeSet::new() },
            },
        )
}

fn identity() -> impl Strategy<Value = Identity> {
    (
        name(),
        proptest::option::of(name()),
        proptest::collection::vec(proptest::sample::select(GROUPS), 0..4),
        any::<bool>(),
    )
        .prop_map(|(hint, preferred, groups, nested)| {
            let mut claims = serde_json::Map::new();
            if let Some(preferred) = preferred {
                claims.insert("preferred_username".into(), preferred.into());
            }
            let groups = serde_json::json!(groups);
            if nested {
                claims.insert("realm".into(), serde_json::json!({ "groups": groups }));
            } else {
                claims.insert("groups".into(), groups);
            }
            Identity {
                provider: "oidc".into(),
                subject: hint.clone(),
                username_hint: hint,
                claims: serde_json::Value::Object(claims),
            }
        })
}

fn profile_list() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"display_name": "Small", "kubespawner_override": {"cpu_limit": 1, "node_selector": {"pool": "cpu"}}}),
        serde_json::json!({
            "display_name": "GPU", "slug": "gpu", "default": true,
            "kubespawner_override": {"node_selector": {"pool": "gpu"}, "tolerations": [{"key": "gpu"}]},
            "profile_options": {
                "image": {
                    "display_name": "Image",
                    "choices": {
                        "torch": {"display_name": "PyTorch", "kubespawner_override": {"image": "torch:2", "node_selector": {"gpu": "a100"}}},
                        "tf": {"display_name": "TF", "kubespawner_override": {"image": "tf:2", "tolerations": [], "node_selector": {"pool": null}}}
                    },
                    "unlisted_choice": {"enabled": true, "validation_regex": "[a-z]+:[0-9]+$", "kubespawner_override": {"image": "{value}"}}
                },
                "size": {
                    "display_name": "Size",
                    "choices": {
                        "s": {"display_name": "S", "kubespawner_override": {"mem_limit": "2G"}},
                        "l": {"display_name": "L", "default": true, "kubespawner_override": {"mem_limit": "8G", "node_selector": {"size": "large"}}}
                    }
                }
            }
        }),
        serde_json::json!({"display_name": "Broken", "slug": "broken", "kubespawner_override": ["not", "an", "object"]}),
    ]
}

fn choice() -> impl Strategy<Value = ProfileChoice> {
    let option_value = prop_oneof![
        proptest::sample::select(&["torch", "tf", "s", "l", "bogus"][..])
            .prop_map(|key| OptionValue::Listed(key.to_owned())),
        proptest::sample::select(&["mine:1", "Bad", "x:22y", "ok:7"][..])
            .prop_map(|text| OptionValue::Unlisted(text.to_owned())),
    ];
    let option = (proptest::sample::select(&["image", "size", "color"][..]), option_value)
        .prop_map(|(option, value)| OptionChoice { option: option.to_owned(), value });
    (proptest::sample::select(&["", "small", "gpu", "broken", "nope"][..]), proptest::collection::vec(option, 0..3))
        .prop_map(|(profile, options)| ProfileChoice { profile: profile.to_owned(), options })
}

fn user() -> impl Strategy<Value = User> {
    (name(), any::<bool>(), proptest::collection::vec(proptest::sample::select(GROUPS).prop_map(str::to_owned), 0..3))
        .prop_map(|(name, admin, groups)| User { name, admin, groups })
}

fn cull_settings() -> impl Strategy<Value = CullSettings> {
    (0u64..2000, prop_oneof![Just(0u64), 0u64..5000], any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(timeout_seconds, max_age_seconds, cull_default_servers, cull_named_servers, remove_named_servers)| {
            CullSettings {
                timeout_seconds,
                max_age_seconds,
                cull_default_servers,
                cull_named_servers,
                remove_named_servers,
            }
        },
    )
}

fn cull_server() -> impl Strategy<Value = CullServer> {
    (user(), proptest::sample::select(&["", "gpu", "work"][..]), any::<bool>(), any::<bool>(), 0u64..6000, 0u64..6000)
        .prop_map(|(user, name, ready, pending, age_seconds, inactive_seconds)| CullServer {
            user,
            name: name.to_owned(),
            profile: String::new(),
            ready,
            pending,
            age_seconds,
            inactive_seconds: inactive_seconds.min(age_seconds),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn auth_decisions_agree(settings in auth_settings(), identity in identity()) {
        let settings_json = serde_json::to_string(&settings).unwrap();
        let plugin = components().auth.authenticate(&settings_json, &Limits::default(), &identity);
        assert_same(native::authenticate(&settings, &identity), plugin);
    }

    #[test]
    fn profile_decisions_agree(user in user(), choice in choice()) {
        let profiles = initialize_profiles(&profile_list()).unwrap();
        let settings = ProfileSettings::default();
        let plugin = components().profiles.visible_profiles("{}", &Limits::default(), &user, &profiles);
        assert_same(Ok(native::visible_profiles(&settings, &user, &profiles)), plugin);
        let plugin = components().profiles.resolve_choice("{}", &Limits::default(), &user, &profiles, &choice);
        assert_same(native::resolve_choice(&settings, &user, &profiles, &choice), plugin);
    }

    #[test]
    fn cull_decisions_agree(settings in cull_settings(), servers in proptest::collection::vec(cull_server(), 0..8)) {
        let settings_json = serde_json::to_string(&settings).unwrap();
        let plugin = components().cull.decide_cull(&settings_json, &Limits::default(), &servers);
        assert_same(Ok(native::decide_cull(&settings, &servers)), plugin);
    }

    #[test]
    fn pod_decisions_agree(user in user(), profile in proptest::sample::select(&["", "gpu"][..]), image in "[a-z]{1,8}") {
        let pod = serde_json::json!({"metadata": {"name": "jupyter-x", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "notebook", "image": image}]}});
        let context = SpawnContext { user, server_name: String::new(), profile: profile.to_owned() };
        let native_patch = serde_json::to_string(&native::mutate_pod()).unwrap();
        let native_pod = wasmhub_policy::apply_pod_patch(&pod, &native_patch, &[]);
        let plugin = components().pods.mutate_pod("{}", &Limits::default(), &[], &context, &pod);
        assert_same(native_pod, plugin);
    }
}
