//! The store's conformance story: one test body, run against SQLite (a temporary file) and PostgreSQL (a real
//! server started by `tests/peers/postgres.sh`, one fresh database per run). Every `Store` method appears in it,
//! so a backend that passes behaves like the other in everything the hub can observe.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Duration, Utc};
use sqlx::Row;
use wasmhub_model::{
    GroupName, PlainToken, RoleName, ServerName, ServiceName, SpawnState, TokenId, TokenKind, UserName,
};
use wasmhub_store::{
    HUB_OAUTH_CLIENT, NewApiToken, NewOAuthClient, NewOAuthCode, PageRequest, PostgresStore, RoleHolder, ServerUpdate,
    SqliteStore, Store, StoreError, TokenOwner, UserChange, UserQuery, UserSort, UserState,
};

#[tokio::test]
async fn sqlite_story() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("hub.sqlite");
    let store = SqliteStore::open(&path).await.unwrap();
    // Everything SQLite holds is in these files (the WAL included), so their bytes are the whole database.
    let stored_text = async || {
        let mut text = String::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{}{suffix}", path.display())) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        text
    };
    story(&store, stored_text).await;
}

#[tokio::test]
async fn postgres_story() {
    let url = std::env::var("WASMHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WASMHUB_TEST_POSTGRES_URL is not set. Start the test PostgreSQL and export its URL with \
             `export WASMHUB_TEST_POSTGRES_URL=\"$(tests/peers/postgres.sh | tail -n1)\"` (tests/run does this)"
        )
    });
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let database = format!("wasmhub_story_{}_{nanos}", std::process::id());
    let admin = sqlx::PgPool::connect(&url).await.expect("connecting to WASMHUB_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin).await.unwrap();

    let options = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap().database(&database);
    let store = PostgresStore::connect_with(options).await.unwrap();
    let pool = store.pool().clone();
    // Every row of every table, as PostgreSQL prints it.
    let stored_text = async || {
        let tables =
            sqlx::query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut text = String::new();
        for table in tables {
            let table: String = table.get(0);
            let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t");
            let rows: String = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap().get(0);
            text.push_str(&rows);
            text.push('\n');
        }
        text
    };
    story(&store, stored_text).await;

    pool.close().await;
    drop(store);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {database}"))).execute(&admin).await.unwrap();
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn server(name: &str) -> ServerName {
    ServerName::parse(name).unwrap()
}

fn names<T: AsRef<str>>(items: &[T]) -> Vec<&str> {
    items.iter().map(AsRef::as_ref).collect()
}

fn user_names(page: &wasmhub_store::Page<wasmhub_store::User>) -> Vec<&str> {
    page.items.iter().map(|user| user.name.as_str()).collect()
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::NotFound { .. })), "expected NotFound, got {result:?}");
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::Conflict { .. })), "expected Conflict, got {result:?}");
}

fn api_token(owner: TokenOwner) -> NewApiToken {
    NewApiToken {
        owner,
        kind: TokenKind::Api,
        supplied: None,
        scopes: vec!["inherit".to_owned()],
        note: String::new(),
        expires_at: None,
        session_id: None,
        client_id: HUB_OAUTH_CLIENT.to_owned(),
    }
}

async fn story(store: &dyn Store, stored_text: impl AsyncFn() -> String) {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let nobody = user("nobody");
    let mut plaintexts: Vec<PlainToken> = Vec::new();

    // === users ===
    let created = store.create_user(&alice, false).await.unwrap();
    assert!(!created.admin && created.last_activity.is_none() && created.groups.is_empty());
    assert!((Utc::now() - created.created).num_seconds().abs() < 60);
    store.create_user(&bob, true).await.unwrap();
    store.create_user(&carol, false).await.unwrap();
    assert_conflict(store.create_user(&alice, true).await);
    assert_eq!(store.get_user(&alice).await.unwrap(), created);
    assert_not_found(store.get_user(&nobody).await);

    let renamed = store.update_user(&carol, &UserChange { name: Some(dave.clone()), admin: Some(true) }).await.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.admin), ("dave", true));
    assert_not_found(store.get_user(&carol).await);
    assert_conflict(store.update_user(&dave, &UserChange { name: Some(alice.clone()), admin: None }).await);
    assert_not_found(store.update_user(&nobody, &UserChange::default()).await);
    assert!(store.update_user(&dave, &UserChange::default()).await.unwrap().admin);

    let earlier = Utc::now() - Duration::hours(2);
    let later = Utc::now() - Duration::hours(1);
    store.record_user_activity(&alice, later).await.unwrap();
    store.record_user_activity(&alice, earlier).await.unwrap();
    let activity = store.get_user(&alice).await.unwrap().last_activity.unwrap();
    assert_eq!(activity.timestamp_micros(), later.timestamp_micros(), "activity only moves forward");
    assert_not_found(store.record_user_activity(&nobody, later).await);

    // Pagination and sorting: creation order by default, then the REST API's sorts and name filter.
    let all = store.list_users(&UserQuery::default()).await.unwrap();
    assert_eq!((user_names(&all), all.total), (vec!["alice", "bob", "dave"], 3));
    let page = UserQuery { page: PageRequest { offset: 1, limit: 1 }, ..UserQuery::default() };
    let second = store.list_users(&page).await.unwrap();
    assert_eq!((user_names(&second), second.total), (vec!["bob"], 3));
    let past_the_end = UserQuery { page: PageRequest { offset: 5, limit: 10 }, ..UserQuery::default() };
    assert_eq!(store.list_users(&past_the_end).await.unwrap().items, vec![]);
    let by_name_descending = UserQuery { sort: UserSort::Name, descending: true, ..UserQuery::default() };
    assert_eq!(user_names(&store.list_users(&by_name_descending).await.unwrap()), vec!["dave", "bob", "alice"]);
    store.record_user_activity(&dave, earlier).await.unwrap();
    let by_activity = UserQuery { sort: UserSort::LastActivity, ..UserQuery::default() };
    assert_eq!(user_names(&store.list_users(&by_activity).await.unwrap()), vec!["dave", "alice", "bob"]);
    let by_activity_descending = UserQuery { sort: UserSort::LastActivity, descending: true, ..UserQuery::default() };
    // Never-active users come last in both directions.
    assert_eq!(user_names(&store.list_users(&by_activity_descending).await.unwrap()), vec!["alice", "dave", "bob"]);
    let filtered = UserQuery { name_filter: Some("LI".to_owned()), ..UserQuery::default() };
    let filtered = store.list_users(&filtered).await.unwrap();
    assert_eq!((user_names(&filtered), filtered.total), (vec!["alice"], 1));
    let wildcard = UserQuery { name_filter: Some("%".to_owned()), ..UserQuery::default() };
    assert_eq!(store.list_users(&wildcard).await.unwrap().total, 0, "wildcards in the filter are literal");

    // === groups ===
    let staff = GroupName::parse("staff").unwrap();
    let empty = store.create_group(&staff).await.unwrap();
    assert_eq!((empty.properties.as_str(), empty.users.len()), ("{}", 0));
    assert_conflict(store.create_group(&staff).await);
    let group = store.add_group_members(&staff, &[alice.clone(), bob.clone()]).await.unwrap();
    assert_eq!(names(&group.users), vec!["alice", "bob"]);
    store.add_group_members(&staff, std::slice::from_ref(&alice)).await.unwrap();
    assert_not_found(store.add_group_members(&staff, &[dave.clone(), nobody.clone()]).await);
    assert_eq!(names(&store.get_group(&staff).await.unwrap().users), vec!["alice", "bob"], "all or nothing");
    assert_eq!(
        names(&store.remove_group_members(&staff, std::slice::from_ref(&bob)).await.unwrap().users),
        vec!["alice"]
    );
    assert_not_found(store.remove_group_members(&staff, std::slice::from_ref(&nobody)).await);
    let properties = r#"{"course": "physics"}"#;
    assert_eq!(store.set_group_properties(&staff, properties).await.unwrap().properties, properties);
    assert_eq!(names(&store.get_user(&alice).await.unwrap().groups), vec!["staff"]);
    let extra = GroupName::parse("extra").unwrap();
    store.create_group(&extra).await.unwrap();
    let groups = store.list_groups(PageRequest { offset: 1, limit: 5 }).await.unwrap();
    assert_eq!((groups.total, groups.items.len(), groups.items[0].name.as_str()), (2, 1, "extra"));
    store.delete_group(&extra).await.unwrap();
    assert_not_found(store.get_group(&extra).await);
    assert_not_found(store.delete_group(&extra).await);
    assert_not_found(store.set_group_properties(&extra, "{}").await);

    // === services ===
    let culler = ServiceName::parse("idle-culler").unwrap();
    let service = store.put_service(&culler, false).await.unwrap();
    let updated = store.put_service(&culler, true).await.unwrap();
    assert!(updated.admin);
    assert_eq!(updated.created, service.created, "put keeps the creation time");
    assert_eq!(store.get_service(&culler).await.unwrap(), updated);
    assert_eq!(store.list_services().await.unwrap(), vec![updated.clone()]);
    assert_not_found(store.get_service(&ServiceName::parse("nope").unwrap()).await);

    // === roles ===
    let reader = RoleName::parse("reader").unwrap();
    store.put_role(&reader, "reads", &["read:users".to_owned()]).await.unwrap();
    let scopes = vec!["read:users".to_owned(), "access:servers!server=alice/".to_owned()];
    let role = store.put_role(&reader, "reads more", &scopes).await.unwrap();
    assert_eq!((role.description.as_str(), role.scopes.clone()), ("reads more", scopes));
    assert!(matches!(
        store.put_role(&reader, "", &["read:users admin".to_owned()]).await,
        Err(StoreError::Invalid { .. })
    ));
    store.assign_role(&reader, &RoleHolder::User(alice.clone())).await.unwrap();
    store.assign_role(&reader, &RoleHolder::User(alice.clone())).await.unwrap();
    store.assign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
    store.assign_role(&reader, &RoleHolder::Service(culler.clone())).await.unwrap();
    let role = store.get_role(&reader).await.unwrap();
    assert_eq!(store.get_role_scopes(&reader).await.unwrap(), role.scopes);
    assert_eq!(
        (names(&role.users), names(&role.groups), names(&role.services)),
        (vec!["alice"], vec!["staff"], vec!["idle-culler"])
    );
    assert_eq!(names(&store.get_user(&alice).await.unwrap().roles), vec!["reader"]);
    assert_eq!(names(&store.get_group(&staff).await.unwrap().roles), vec!["reader"]);
    assert_eq!(names(&store.get_service(&culler).await.unwrap().roles), vec!["reader"]);
    assert_not_found(store.assign_role(&reader, &RoleHolder::User(nobody.clone())).await);
    let ghost = RoleName::parse("ghost").unwrap();
    assert_not_found(store.assign_role(&ghost, &RoleHolder::User(alice.clone())).await);
    store.unassign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
    assert!(store.get_role(&reader).await.unwrap().groups.is_empty());
    let writer = RoleName::parse("writer").unwrap();
    store.put_role(&writer, "writes", &[]).await.unwrap();
    assert_eq!(
        store.list_roles().await.unwrap().iter().map(|role| role.name.as_str()).collect::<Vec<_>>(),
        vec!["reader", "writer"]
    );
    store.delete_role(&writer).await.unwrap();
    assert_not_found(store.get_role(&writer).await);
    assert_not_found(store.get_role_scopes(&writer).await);
    assert_not_found(store.delete_role(&writer).await);

    // === auth generation: it moves on writes that change an existing token's grant, and only on those ===
    let unchanged = store.auth_generation();
    let mut generation = unchanged;
    let mut assert_moved = |what: &str| {
        let now = store.auth_generation();
        assert!(now > generation, "{what} must move the auth generation");
        generation = now;
    };
    let zeta = GroupName::parse("Zeta").unwrap();
    store.create_group(&zeta).await.unwrap();
    store.record_user_activity(&alice, later).await.unwrap();
    store.set_group_properties(&zeta, "{}").await.unwrap();
    assert_eq!(store.auth_generation(), unchanged, "creating, activity and properties grant nothing");
    store.add_group_members(&zeta, std::slice::from_ref(&alice)).await.unwrap();
    assert_moved("adding a member");
    // A user's memberships come back in byte order ("Z" sorts before "s"), alone and in lists.
    assert_eq!(names(&store.get_user(&alice).await.unwrap().groups), vec!["Zeta", "staff"]);
    assert_eq!(names(&store.list_users(&UserQuery::default()).await.unwrap().items[0].groups), vec!["Zeta", "staff"]);
    store.put_role(&writer, "writes", &[]).await.unwrap();
    assert_moved("putting a role");
    store.assign_role(&writer, &RoleHolder::User(alice.clone())).await.unwrap();
    assert_moved("assigning a role");
    assert_eq!(names(&store.get_user(&alice).await.unwrap().roles), vec!["reader", "writer"]);
    store.assign_role(&writer, &RoleHolder::Group(zeta.clone())).await.unwrap();
    store.assign_role(&reader, &RoleHolder::Group(zeta.clone())).await.unwrap();
    store.assign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
    let no_such_group = GroupName::parse("no-such-group").unwrap();
    let groups_roles = store.get_groups_roles(&[staff.clone(), zeta.clone(), no_such_group]).await.unwrap();
    assert_eq!(names(&groups_roles), vec!["reader", "writer"], "each role once, in byte order");
    assert!(store.get_groups_roles(&[]).await.unwrap().is_empty());
    let roles_scopes = store.get_roles_scopes(&[writer.clone(), ghost.clone(), reader.clone()]).await.unwrap();
    let mut roles_scopes: Vec<(String, Vec<String>)> =
        roles_scopes.into_iter().map(|(role, scopes)| (role.to_string(), scopes)).collect();
    roles_scopes.sort();
    assert_eq!(
        roles_scopes,
        vec![("reader".to_owned(), store.get_role_scopes(&reader).await.unwrap()), ("writer".to_owned(), vec![])],
        "roles not stored are left out"
    );
    assert!(store.get_roles_scopes(&[]).await.unwrap().is_empty());
    store.unassign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
    assert_moved("assigning and unassigning group roles");
    store.unassign_role(&writer, &RoleHolder::User(alice.clone())).await.unwrap();
    assert_moved("unassigning a role");
    store.delete_role(&writer).await.unwrap();
    assert_moved("deleting a role");
    store.remove_group_members(&zeta, std::slice::from_ref(&alice)).await.unwrap();
    assert_moved("removing a member");
    store.delete_group(&zeta).await.unwrap();
    assert_moved("deleting a group");
    store.update_user(&dave, &UserChange { name: None, admin: Some(false) }).await.unwrap();
    assert_moved("changing the admin flag");
    store.update_user(&dave, &UserChange { name: None, admin: Some(true) }).await.unwrap();
    store.put_service(&culler, true).await.unwrap();
    assert_moved("putting a service");

    // === API tokens ===
    let mut request = api_token(TokenOwner::User(alice.clone()));
    request.note = "laptop".to_owned();
    request.session_id = Some("session-1".to_owned());
    request.scopes = vec!["read:users!user=alice".to_owned(), "servers!user=alice".to_owned()];
    let (record, plaintext) = store.create_api_token(&request).await.unwrap();
    plaintexts.push(plaintext.clone());
    assert_eq!(plaintext.as_str().len(), 32, "uuid4 hex, as JupyterHub's");
    assert_eq!((record.prefix.as_str(), record.note.as_str()), (plaintext.prefix(), "laptop"));
    assert_eq!(store.find_api_token(plaintext.as_str()).await.unwrap(), record);
    assert_eq!(store.get_api_token(record.id).await.unwrap(), record);
    let same_prefix_wrong_rest = format!("{}{}", plaintext.prefix(), "0".repeat(28));
    assert_not_found(store.find_api_token(&same_prefix_wrong_rest).await);
    assert_not_found(store.find_api_token("short").await);
    assert_not_found(store.find_api_token(&format!("{}{}", plaintext.as_str(), "x".repeat(40))).await);
    store.record_token_activity(record.id, later).await.unwrap();
    store.record_token_activity(record.id, earlier).await.unwrap();
    let token_activity = store.get_api_token(record.id).await.unwrap().last_activity.unwrap();
    assert_eq!(token_activity.timestamp_micros(), later.timestamp_micros());

    let mut expired = api_token(TokenOwner::User(alice.clone()));
    expired.expires_at = Some(Utc::now() - Duration::seconds(1));
    let (expired_record, expired_plaintext) = store.create_api_token(&expired).await.unwrap();
    plaintexts.push(expired_plaintext.clone());
    assert_not_found(store.find_api_token(expired_plaintext.as_str()).await);
    let mut future = api_token(TokenOwner::User(alice.clone()));
    future.expires_at = Some(Utc::now() + Duration::hours(1));
    let (future_record, future_plaintext) = store.create_api_token(&future).await.unwrap();
    plaintexts.push(future_plaintext.clone());
    assert_eq!(store.find_api_token(future_plaintext.as_str()).await.unwrap().id, future_record.id);
    let listed = store.list_api_tokens(&TokenOwner::User(alice.clone())).await.unwrap();
    assert_eq!(listed.iter().map(|token| token.id).collect::<Vec<_>>(), vec![record.id, future_record.id]);
    assert!(store.delete_expired().await.unwrap() >= 1);
    assert_not_found(store.get_api_token(expired_record.id).await);

    let mut supplied = api_token(TokenOwner::Service(culler.clone()));
    supplied.kind = TokenKind::Supplied;
    supplied.supplied = Some(PlainToken::parse("operator-chosen-secret-0001").unwrap());
    let (service_token, service_plaintext) = store.create_api_token(&supplied).await.unwrap();
    plaintexts.push(service_plaintext.clone());
    assert_eq!(service_token.owner, TokenOwner::Service(culler.clone()));
    assert_eq!(store.find_api_token("operator-chosen-secret-0001").await.unwrap().id, service_token.id);
    assert_conflict(store.create_api_token(&supplied).await);
    let mut missing_value = supplied.clone();
    missing_value.supplied = None;
    assert!(matches!(store.create_api_token(&missing_value).await, Err(StoreError::Invalid { .. })));
    assert_eq!(store.list_api_tokens(&TokenOwner::Service(culler.clone())).await.unwrap(), vec![service_token.clone()]);
    assert_not_found(store.create_api_token(&api_token(TokenOwner::User(nobody.clone()))).await);
    let mut unknown_client = api_token(TokenOwner::User(alice.clone()));
    unknown_client.client_id = "no-such-client".to_owned();
    assert_not_found(store.create_api_token(&unknown_client).await);
    assert_not_found(store.list_api_tokens(&TokenOwner::User(nobody.clone())).await);

    let generation = store.auth_generation();
    store.delete_api_token(future_record.id).await.unwrap();
    assert!(store.auth_generation() > generation, "revoking a token moves the auth generation");
    assert_not_found(store.get_api_token(future_record.id).await);
    assert_not_found(store.delete_api_token(future_record.id).await);
    assert_not_found(store.record_token_activity(TokenId(999_999), later).await);

    // === OAuth ===
    let client_id = "jupyterhub-user-alice";
    let (_, server_token) = store.create_api_token(&api_token(TokenOwner::User(alice.clone()))).await.unwrap();
    plaintexts.push(server_token.clone());
    let new_client = NewOAuthClient {
        client_id: client_id.to_owned(),
        description: "Server at /user/alice/".to_owned(),
        secret: Some(server_token.clone()),
        redirect_uri: "/user/alice/oauth_callback".to_owned(),
        allowed_scopes: vec!["access:servers!server=alice/".to_owned()],
    };
    let client = store.put_oauth_client(&new_client).await.unwrap();
    let secret_hash = client.secret_hash.clone().unwrap();
    assert!(secret_hash.matches(server_token.as_str()));
    assert!(!secret_hash.matches(plaintext.as_str()));
    assert_eq!(secret_hash.rounds(), 16384, "client secrets are hashed like supplied tokens");
    assert_eq!(store.get_oauth_client(client_id).await.unwrap(), client);
    let (_, next_server_token) = store.create_api_token(&api_token(TokenOwner::User(alice.clone()))).await.unwrap();
    plaintexts.push(next_server_token.clone());
    let respawned = store
        .put_oauth_client(&NewOAuthClient { secret: Some(next_server_token.clone()), ..new_client.clone() })
        .await
        .unwrap();
    assert!(respawned.secret_hash.unwrap().matches(next_server_token.as_str()), "a spawn rewrites the client");
    assert_not_found(store.get_oauth_client("nope").await);

    let new_code = NewOAuthCode {
        client_id: client_id.to_owned(),
        user: alice.clone(),
        redirect_uri: "/user/alice/oauth_callback".to_owned(),
        session_id: Some("session-1".to_owned()),
        scopes: vec!["access:servers!server=alice/".to_owned()],
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        code_challenge_method: Some("S256".to_owned()),
        expires_at: Utc::now() + Duration::minutes(5),
    };
    let code = store.create_oauth_code(&new_code).await.unwrap();
    plaintexts.push(code.clone());
    assert_eq!(code.as_str().len(), 30);
    assert_not_found(store.take_oauth_code(HUB_OAUTH_CLIENT, code.as_str()).await);
    let taken = store.take_oauth_code(client_id, code.as_str()).await.unwrap();
    assert_eq!((taken.user.as_str(), taken.redirect_uri.as_str()), ("alice", "/user/alice/oauth_callback"));
    assert_eq!(
        (taken.code_challenge.as_deref(), taken.code_challenge_method.as_deref()),
        (new_code.code_challenge.as_deref(), Some("S256"))
    );
    assert_eq!((taken.session_id.as_deref(), taken.scopes.clone()), (Some("session-1"), new_code.scopes.clone()));
    assert_not_found(store.take_oauth_code(client_id, code.as_str()).await);
    let stale = store
        .create_oauth_code(&NewOAuthCode { expires_at: Utc::now() - Duration::seconds(1), ..new_code.clone() })
        .await
        .unwrap();
    plaintexts.push(stale.clone());
    assert_not_found(store.take_oauth_code(client_id, stale.as_str()).await);
    assert_not_found(store.create_oauth_code(&NewOAuthCode { user: nobody.clone(), ..new_code.clone() }).await);

    let mut oauth_request = api_token(TokenOwner::User(alice.clone()));
    oauth_request.kind = TokenKind::OAuthAccess;
    oauth_request.client_id = client_id.to_owned();
    oauth_request.session_id = Some("session-2".to_owned());
    let (_, oauth_token) = store.create_api_token(&oauth_request).await.unwrap();
    plaintexts.push(oauth_token.clone());
    assert_eq!(oauth_token.as_str().len(), 30);
    let pending_code = store.create_oauth_code(&new_code).await.unwrap();
    plaintexts.push(pending_code.clone());
    store.delete_oauth_client(client_id).await.unwrap();
    assert_not_found(store.find_api_token(oauth_token.as_str()).await);
    assert_not_found(store.take_oauth_code(client_id, pending_code.as_str()).await);
    assert_not_found(store.delete_oauth_client(client_id).await);
    assert!(matches!(store.delete_oauth_client(HUB_OAUTH_CLIENT).await, Err(StoreError::Invalid { .. })));
    store.create_api_token(&oauth_request).await.unwrap_err();

    // Logout deletes the session's tokens and nothing else.
    let (_, browser_token) = store.create_api_token(&request).await.unwrap();
    plaintexts.push(browser_token.clone());
    assert_eq!(store.delete_session_tokens("session-1").await.unwrap(), 2);
    assert_not_found(store.find_api_token(plaintext.as_str()).await);
    assert!(store.find_api_token(next_server_token.as_str()).await.is_ok());
    assert_eq!(store.delete_session_tokens("session-1").await.unwrap(), 0);

    // === browser logins ===
    let next_week = Utc::now() + Duration::days(7);
    let (login, cookie) = store.create_login_session(&alice, "session-3", next_week).await.unwrap();
    plaintexts.push(cookie.clone());
    assert_eq!((&login.user, login.session_id.as_str()), (&alice, "session-3"));
    let found = store.find_login_session(cookie.as_str()).await.unwrap();
    assert_eq!((&found.user, found.session_id.as_str()), (&alice, "session-3"));
    assert_eq!(found.expires_at.timestamp_micros(), next_week.timestamp_micros());
    assert_not_found(store.find_login_session("not-a-cookie").await);
    assert_not_found(store.find_login_session(browser_token.as_str()).await);
    assert_not_found(store.create_login_session(&nobody, "session-3", next_week).await);
    let (_, stale_login) =
        store.create_login_session(&alice, "session-4", Utc::now() - Duration::seconds(1)).await.unwrap();
    plaintexts.push(stale_login.clone());
    assert_not_found(store.find_login_session(stale_login.as_str()).await);
    assert!(store.delete_expired().await.unwrap() >= 1);
    assert_eq!(store.delete_login_sessions("session-4").await.unwrap(), 0);
    assert_eq!(store.delete_login_sessions("session-3").await.unwrap(), 1);
    assert_not_found(store.find_login_session(cookie.as_str()).await);
    let (_, kept_login) = store.create_login_session(&alice, "session-5", next_week).await.unwrap();
    plaintexts.push(kept_login.clone());

    // === servers ===
    let default_server = server("");
    let fresh = store.create_server(&alice, &default_server, r#"{"profile": "small"}"#).await.unwrap();
    assert_eq!((fresh.state, fresh.url.clone(), fresh.started), (SpawnState::Stopped, None, None));
    assert_conflict(store.create_server(&alice, &default_server, "{}").await);
    assert_not_found(store.create_server(&nobody, &default_server, "{}").await);
    assert_not_found(store.get_server(&alice, &server("missing")).await);

    // The spawn record (options, object names) is written with the request, before anything is started.
    let requested = store
        .update_server(
            &alice,
            &default_server,
            &ServerUpdate {
                state: Some(SpawnState::Requested),
                object_names: Some(r#"{"pod": "jupyter-alice"}"#.to_owned()),
                user_options: Some(r#"{"profile": "large"}"#.to_owned()),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(requested.started.is_some());
    assert_eq!(store.get_server(&alice, &default_server).await.unwrap(), requested);
    let illegal = store
        .update_server(
            &alice,
            &default_server,
            &ServerUpdate { state: Some(SpawnState::Running), ..ServerUpdate::default() },
        )
        .await;
    assert!(
        matches!(
            &illegal,
            Err(StoreError::IllegalTransition { source, .. })
                if (source.from, source.to) == (SpawnState::Requested, SpawnState::Running)
        ),
        "{illegal:?}"
    );
    assert_eq!(store.get_server(&alice, &default_server).await.unwrap(), requested, "an illegal move changes nothing");
    let to = |state| ServerUpdate { state: Some(state), ..ServerUpdate::default() };
    store.update_server(&alice, &default_server, &to(SpawnState::Starting)).await.unwrap();
    let running = store
        .update_server(
            &alice,
            &default_server,
            &ServerUpdate {
                state: Some(SpawnState::Running),
                url: Some("http://127.0.0.1:51611".to_owned()),
                spawner_state: Some(r#"{"pid": 4242}"#.to_owned()),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_server(&alice, &default_server).await.unwrap(), running);
    assert_eq!(running.object_names, r#"{"pod": "jupyter-alice"}"#);

    let gpu = server("gpu");
    store.create_server(&bob, &gpu, "{}").await.unwrap();
    store.update_server(&bob, &gpu, &to(SpawnState::Requested)).await.unwrap();
    let state_filter = |state| UserQuery { state: Some(state), ..UserQuery::default() };
    assert_eq!(user_names(&store.list_users(&state_filter(UserState::Ready)).await.unwrap()), vec!["alice"]);
    assert_eq!(user_names(&store.list_users(&state_filter(UserState::Active)).await.unwrap()), vec!["alice", "bob"]);
    assert_eq!(user_names(&store.list_users(&state_filter(UserState::Inactive)).await.unwrap()), vec!["dave"]);
    let failed = store
        .update_server(
            &bob,
            &gpu,
            &ServerUpdate { failure: Some("image pull failed".to_owned()), ..to(SpawnState::Failed) },
        )
        .await
        .unwrap();
    assert_eq!((failed.failure.as_deref(), failed.started), (Some("image pull failed"), None));
    let retried = store.update_server(&bob, &gpu, &to(SpawnState::Requested)).await.unwrap();
    assert_eq!(retried.failure, None, "a new spawn forgets the old failure");
    store.update_server(&bob, &gpu, &to(SpawnState::Stopped)).await.unwrap();

    store.record_server_activity(&alice, &default_server, later).await.unwrap();
    store.record_server_activity(&alice, &default_server, earlier).await.unwrap();
    let server_activity = store.get_server(&alice, &default_server).await.unwrap().last_activity.unwrap();
    assert_eq!(server_activity.timestamp_micros(), later.timestamp_micros());
    assert_not_found(store.record_server_activity(&alice, &server("missing"), later).await);

    let all_servers = store.list_servers(None).await.unwrap();
    let keys: Vec<_> = all_servers.iter().map(|server| (server.user.as_str(), server.name.as_str())).collect();
    assert_eq!(keys, vec![("alice", ""), ("bob", "gpu")]);
    assert_eq!(store.list_servers(Some(&bob)).await.unwrap().len(), 1);
    assert_not_found(store.list_servers(Some(&nobody)).await);
    let of_page = store.list_servers_of(&[bob.clone(), nobody.clone(), alice.clone()]).await.unwrap();
    let keys: Vec<_> = of_page.iter().map(|server| (server.user.as_str(), server.name.as_str())).collect();
    assert_eq!(keys, vec![("alice", ""), ("bob", "gpu")]);
    assert_eq!(of_page[0], all_servers[0]);
    assert!(store.list_servers_of(std::slice::from_ref(&nobody)).await.unwrap().is_empty());
    assert!(store.list_servers_of(&[]).await.unwrap().is_empty());
    // Names travel as one JSON array parameter: quotes, backslashes, separators and Unicode survive (a user name
    // cannot hold a control character any more, so a line separator stands in for one).
    let odd = user("o\"dd\\ \u{2028}né");
    store.create_user(&odd, false).await.unwrap();
    store.create_server(&odd, &server(""), "{}").await.unwrap();
    let of_odd = store.list_servers_of(&[odd.clone(), bob.clone()]).await.unwrap();
    let keys: Vec<_> = of_odd.iter().map(|server| server.user.as_str()).collect();
    assert_eq!(keys, vec!["bob", odd.as_str()]);
    store.delete_user(&odd).await.unwrap();

    assert!(matches!(store.delete_server(&alice, &default_server).await, Err(StoreError::ServerActive { .. })));
    store.update_server(&alice, &default_server, &to(SpawnState::Stopping)).await.unwrap();
    let stopped = store.update_server(&alice, &default_server, &to(SpawnState::Stopped)).await.unwrap();
    assert_eq!((stopped.url, stopped.started), (None, None));
    store.delete_server(&bob, &gpu).await.unwrap();
    assert_not_found(store.get_server(&bob, &gpu).await);
    assert_not_found(store.delete_server(&bob, &gpu).await);

    // === the hub lease: one holder at a time, renewed, given up, or taken over once expired ===
    let long = std::time::Duration::from_secs(60);
    assert_eq!(store.take_lease("hub-a", long).await.unwrap(), None);
    assert_eq!(store.take_lease("hub-a", long).await.unwrap(), None, "taking one's own lease again succeeds");
    assert_eq!(store.take_lease("hub-b", long).await.unwrap().as_deref(), Some("hub-a"));
    assert!(store.renew_lease("hub-a", long).await.unwrap());
    assert!(!store.renew_lease("hub-b", long).await.unwrap());
    store.release_lease("hub-b").await.unwrap();
    assert_eq!(store.take_lease("hub-b", long).await.unwrap().as_deref(), Some("hub-a"), "only the holder releases");
    store.release_lease("hub-a").await.unwrap();
    assert_eq!(store.take_lease("hub-b", std::time::Duration::ZERO).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(store.take_lease("hub-a", long).await.unwrap(), None, "an expired lease is taken over");
    assert!(!store.renew_lease("hub-b", long).await.unwrap());
    store.release_lease("hub-a").await.unwrap();

    // === tokens are never stored in plaintext ===
    let text = stored_text().await;
    assert!(text.contains("jupyter-alice"), "the dump must show the stored data");
    assert!(text.contains("sha512:1:"), "generated tokens are stored as JupyterHub's hash");
    for token in &plaintexts {
        assert!(!text.contains(token.as_str()), "plaintext {token:?} found in the database");
    }

    // === deleting a user takes their tokens, servers and memberships along ===
    let generation = store.auth_generation();
    store.delete_user(&alice).await.unwrap();
    assert!(store.auth_generation() > generation, "deleting a user moves the auth generation");
    assert_not_found(store.get_user(&alice).await);
    assert_not_found(store.find_api_token(next_server_token.as_str()).await);
    assert_not_found(store.find_login_session(kept_login.as_str()).await);
    assert_not_found(store.get_server(&alice, &default_server).await);
    assert!(store.get_group(&staff).await.unwrap().users.is_empty());
    assert!(store.get_role(&reader).await.unwrap().users.is_empty());
    assert_not_found(store.delete_user(&alice).await);

    store.delete_service(&culler).await.unwrap();
    assert_not_found(store.find_api_token(service_plaintext.as_str()).await);
    assert_not_found(store.delete_service(&culler).await);
    assert_eq!(store.list_users(&UserQuery::default()).await.unwrap().total, 2);
}
