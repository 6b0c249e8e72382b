//! Host bindings generated from `wit/policy.wit`, one module per world. The worlds share `types` and `host`,
//! so the later modules reuse the first module's code for them (`with:`) and one `Host` impl serves all four.
#![allow(unreachable_pub, missing_docs)]

pub(crate) mod auth {
    wasmtime::component::bindgen!({ world: "auth-policy", path: "../../wit" });
}

pub(crate) mod profiles {
    wasmtime::component::bindgen!({
        world: "profile-policy",
        path: "../../wit",
        with: {
            "wasmhub:policy/types": crate::bindings::auth::wasmhub::policy::types,
            "wasmhub:policy/host": crate::bindings::auth::wasmhub::policy::host,
        },
    });
}

pub(crate) mod pods {
    wasmtime::component::bindgen!({
        world: "pod-policy",
        path: "../../wit",
        with: {
            "wasmhub:policy/types": crate::bindings::auth::wasmhub::policy::types,
            "wasmhub:policy/host": crate::bindings::auth::wasmhub::policy::host,
        },
    });
}

pub(crate) mod cull {
    wasmtime::component::bindgen!({
        world: "cull-policy",
        path: "../../wit",
        with: {
            "wasmhub:policy/types": crate::bindings::auth::wasmhub::policy::types,
            "wasmhub:policy/host": crate::bindings::auth::wasmhub::policy::host,
        },
    });
}

pub(crate) use auth::wasmhub::policy::host;
pub(crate) use auth::wasmhub::policy::types;
