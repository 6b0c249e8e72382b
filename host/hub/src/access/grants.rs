//! JupyterHub 5's guards against escalation through the user and group APIs: only an admin changes or deletes an
//! admin, and a caller gives someone a role, or a group membership (which gives the group's roles), only when it
//! holds every scope that gives. So holding `admin:users` or `groups` on someone is no way to more scopes.

use axum::http::StatusCode;
use wasmhub_model::GroupName;
use wasmhub_store::User;

use crate::Hub;
use crate::access::caller::{Caller, groups_for_filters, role_scopes};
use crate::access::scopes::{Owner, ScopeSet};
use crate::error::ApiError;

/// Only an admin changes or deletes an admin.
pub(crate) fn require_admin_for_admin(caller: &Caller, user: &User) -> Result<(), ApiError> {
    if user.admin && !caller.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Only admins can modify admin user {}", user.name)));
    }
    Ok(())
}

/// The caller may give `user` the role `role`.
pub(crate) async fn require_role_held(hub: &Hub, caller: &Caller, user: &str, role: &str) -> Result<(), ApiError> {
    let scopes = role_scopes(hub, role).await?;
    require_held(hub, caller, user, &format!("role {role}"), &scopes).await
}

/// The caller may make `user` a member of `group`, and so give them the group's roles.
pub(crate) async fn require_membership_held(
    hub: &Hub,
    caller: &Caller,
    user: &str,
    group: &GroupName,
) -> Result<(), ApiError> {
    let mut scopes = Vec::new();
    for role in hub.store().get_groups_roles(std::slice::from_ref(group)).await? {
        scopes.extend(role_scopes(hub, role.as_str()).await?);
    }
    require_held(hub, caller, user, &format!("group {group}"), &scopes).await
}

/// `scopes`, as `user` would hold them (`self` and bare filters resolved to `user`), are all within the caller's.
async fn require_held(hub: &Hub, caller: &Caller, user: &str, what: &str, scopes: &[String]) -> Result<(), ApiError> {
    let asked = ScopeSet::expand(scopes, &Owner::User(user.to_owned()), None);
    let groups = groups_for_filters(hub, &asked, &caller.scopes).await?;
    caller.scopes.covers(&asked, &groups).map_err(|scope| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Not granting {what} to {user}: it gives '{scope}', which the caller does not hold"),
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use wasmhub_model::{GroupName, RoleName, UserName};
    use wasmhub_store::{RoleHolder, Store};

    use crate::tests::{call, test_hub, user_with_token};

    async fn role(hub: &crate::tests::TestHub, name: &str, scopes: &[&str]) -> RoleName {
        let role = RoleName::parse(name).unwrap();
        let scopes: Vec<String> = scopes.iter().map(|scope| scope.to_string()).collect();
        hub.store.put_role(&role, "", &scopes).await.unwrap();
        role
    }

    #[tokio::test]
    async fn admin_users_on_a_group_cannot_grant_more_than_it_holds() {
        let hub = test_hub().await;
        let students = GroupName::parse("students").unwrap();
        let openers = GroupName::parse("openers").unwrap();
        hub.store.create_group(&students).await.unwrap();
        hub.store.create_group(&openers).await.unwrap();
        user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        user_with_token(&hub.store, "root", true, &["inherit"]).await;
        let members = [UserName::parse("alice").unwrap(), UserName::parse("root").unwrap()];
        hub.store.add_group_members(&students, &members).await.unwrap();
        let teacher_role = role(&hub, "teacher", &["admin:users!group=students", "groups!group=openers"]).await;
        role(&hub, "opener", &["access:servers"]).await;
        role(&hub, "student-reader", &["read:users!group=students"]).await;
        let opener = RoleName::parse("opener").unwrap();
        hub.store.assign_role(&opener, &RoleHolder::Group(openers.clone())).await.unwrap();
        let teacher = user_with_token(&hub.store, "teacher", false, &["inherit"]).await;
        let teacher_name = UserName::parse("teacher").unwrap();
        hub.store.assign_role(&teacher_role, &RoleHolder::User(teacher_name)).await.unwrap();
        let patch = |user: &'static str, body: &'static str| {
            let app = hub.app.clone();
            let teacher = teacher.clone();
            async move { call(&app, Method::PATCH, &format!("/hub/api/users/{user}"), Some(&teacher), Some(body)).await }
        };

        // A role with access:servers, directly or through a group, is refused for a student.
        let message = patch("alice", r#"{"roles": ["opener"]}"#).await.assert_error(403);
        assert!(message.contains("access:servers"), "{message}");
        patch("alice", r#"{"groups": ["students", "openers"]}"#).await.assert_error(403);
        let body = r#"{"users": ["alice"]}"#;
        let uri = "/hub/api/groups/openers/users";
        call(&hub.app, Method::POST, uri, Some(&teacher), Some(body)).await.assert_error(403);
        // ... and for the teacher itself, whom its own filter does not reach.
        patch("teacher", r#"{"roles": ["opener"]}"#).await.assert_error(404);
        let alice = hub.store.get_user(&UserName::parse("alice").unwrap()).await.unwrap();
        assert!(alice.roles.is_empty() && alice.groups == [students.clone()], "{alice:?}");

        // An admin in the group is out of reach: no rename, no demotion, no deletion.
        patch("root", r#"{"name": "rooted"}"#).await.assert_error(403);
        patch("root", r#"{"admin": false}"#).await.assert_error(403);
        call(&hub.app, Method::DELETE, "/hub/api/users/root", Some(&teacher), None).await.assert_error(403);
        assert!(hub.store.get_user(&UserName::parse("root").unwrap()).await.unwrap().admin);

        // What the teacher holds it may give, and an admin may give anything.
        assert_eq!(patch("alice", r#"{"roles": ["student-reader"]}"#).await.status, 200);
        let admin = &hub.admin_token;
        let body = r#"{"roles": ["student-reader", "opener"]}"#;
        let answer = call(&hub.app, Method::PATCH, "/hub/api/users/alice", Some(admin), Some(body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        // Keeping a role the user already has is no grant.
        assert_eq!(patch("alice", r#"{"roles": ["student-reader", "opener"], "name": "alicia"}"#).await.status, 200);
    }
}
