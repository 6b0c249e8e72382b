//! `GET /services` and `GET /services/{name}` (`apihandlers/services.py`). Services come from the store, where
//! configuration puts them at every start; the list is a dict keyed by name and is never paginated.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use wasmhub_model::ServiceName;
use wasmhub_store::StoreError;

use crate::Hub;
use crate::access::caller::Caller;
use crate::access::scopes::Resource;
use crate::api::models::service_model;
use crate::error::ApiError;

pub(crate) async fn list_services(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_some(&["list:services"])?;
    let mut models = Map::new();
    for service in hub.store().list_services().await? {
        let name = service.name.as_str();
        if caller.scopes.allows("list:services", &Resource::Service { name }) {
            models.insert(name.to_owned(), service_model(&service, &caller.scopes));
        }
    }
    Ok(Json(Value::Object(models)).into_response())
}

pub(crate) async fn get_service(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller
        .require(&["read:services", "read:services:name", "read:roles:services"], &Resource::Service { name: &name })?;
    let no_such = || ApiError::new(StatusCode::NOT_FOUND, format!("No such service: {name}"));
    let parsed = ServiceName::parse(&name).map_err(|_| no_such())?;
    let service = match hub.store().get_service(&parsed).await {
        Ok(service) => service,
        Err(StoreError::NotFound { .. }) => return Err(no_such()),
        Err(other) => return Err(other.into()),
    };
    Ok(Json(service_model(&service, &caller.scopes)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::json;
    use wasmhub_model::ServiceName;
    use wasmhub_store::Store;

    use crate::tests::{call, test_hub, user_with_token};

    #[tokio::test]
    async fn services_are_listed_as_a_dict_and_read_by_name() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        hub.store.put_service(&ServiceName::parse("cull-idle").unwrap(), true).await.unwrap();
        hub.store.put_service(&ServiceName::parse("announce").unwrap(), false).await.unwrap();
        let full = |name: &str, admin: bool, roles: Vec<&str>| {
            json!({
                "kind": "service", "name": name, "roles": roles, "admin": admin, "url": "", "prefix": "",
                "command": [], "pid": 0, "info": {}, "display": true,
            })
        };
        let list = call(&hub.app, Method::GET, "/hub/api/services", admin, None).await;
        assert_eq!(list.status, 200);
        assert_eq!(
            list.json(),
            json!({ "announce": full("announce", false, vec![]), "cull-idle": full("cull-idle", true, vec!["admin"]) })
        );
        let one = call(&hub.app, Method::GET, "/hub/api/services/cull-idle", admin, None).await;
        assert_eq!(one.json(), full("cull-idle", true, vec!["admin"]));
        let message = call(&hub.app, Method::GET, "/hub/api/services/nope", admin, None).await.assert_error(404);
        assert_eq!(message, "No such service: nope");

        // A filtered token sees only its service, with the keys its scopes allow.
        let narrow =
            user_with_token(&hub.store, "admin", true, &["list:services!service=announce", "read:services:name"]).await;
        let list = call(&hub.app, Method::GET, "/hub/api/services", Some(&narrow), None).await.json();
        assert_eq!(list, json!({ "announce": { "kind": "service", "name": "announce", "admin": false } }));
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        call(&hub.app, Method::GET, "/hub/api/services", Some(&alice), None).await.assert_error(403);
        call(&hub.app, Method::GET, "/hub/api/services/announce", Some(&alice), None).await.assert_error(403);
        let one_service = user_with_token(&hub.store, "admin", true, &["read:services!service=announce"]).await;
        call(&hub.app, Method::GET, "/hub/api/services/cull-idle", Some(&one_service), None).await.assert_error(404);
    }
}
