//! Django's groups and permissions over HTTP and from the command line: who may read and
//! change them, what staff may never grant, and bad input answered 400 with nothing changed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp};

const DENIED: &str = "You do not have permission to perform this action.";

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Reply {
    app.call(method, path, token, Some(body)).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Reply {
    app.call(Method::GET, path, token, None).await
}

#[track_caller]
pub fn ok(reply: &Reply, status: StatusCode) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    reply.json()
}

#[track_caller]
fn denied(reply: &Reply) {
    reply.assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
}

async fn create_permission(app: &TestApp, token: &str, name: &str) -> i64 {
    let (app_label, codename) = name.split_once('.').expect("app_label.codename");
    let reply = call(
        app,
        Method::POST,
        "/permissions/",
        token,
        json!({ "app_label": app_label, "codename": codename, "name": format!("Can {codename}") }),
    )
    .await;
    ok(&reply, StatusCode::CREATED)["id"].as_i64().expect("id")
}

/// Every permission's `app_label.codename`, in the order `/permissions/` lists them (sorted).
async fn permission_names(app: &TestApp, token: &str) -> Vec<String> {
    ok(&get(app, "/permissions/", token).await, StatusCode::OK)
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            format!(
                "{}.{}",
                p["app_label"].as_str().unwrap_or(""),
                p["codename"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Everything `auth_*` holds, for "nothing changed".
async fn grants_snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "auth_permission",
        "auth_group",
        "auth_group_permissions",
        "auth_user_groups",
        "auth_user_user_permissions",
        "auth_user WHERE is_staff OR is_superuser",
    ] {
        counts.push(app.count(table).await);
    }
    counts
}

/// The migration seeds Django's own twelve `auth.*` permissions.
#[tokio::test]
async fn djangos_auth_permissions_are_there_from_the_start() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let names = permission_names(&app, &root).await;
    let mut expected = Vec::new();
    for model in ["group", "permission", "user"] {
        for action in ["add", "change", "delete", "view"] {
            expected.push(format!("auth.{action}_{model}"));
        }
    }
    expected.sort();
    assert_eq!(names, expected);
    let listed = ok(&get(&app, "/permissions/", &root).await, StatusCode::OK);
    let add_user = listed
        .as_array()
        .and_then(|list| list.iter().find(|p| p["codename"] == "add_user"))
        .expect("auth.add_user");
    assert_eq!(add_user["name"], "Can add user");
    assert_eq!(
        add_user
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "id".into(),
            "app_label".into(),
            "codename".into(),
            "name".into()
        ])
    );
}

/// The whole story: a superuser makes a permission and a group, puts a user in it, and the
/// user's groups and the group's permissions read back.
#[tokio::test]
async fn a_superuser_builds_a_group_and_puts_a_user_in_it() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, _) = app.create_user("alice").await;
    let post = create_permission(&app, &root, "blog.add_post").await;
    ok(
        &get(&app, &format!("/permissions/{post}/"), &root).await,
        StatusCode::OK,
    );

    let created = call(
        &app,
        Method::POST,
        "/groups/",
        &root,
        json!({ "name": "editors", "permissions": ["blog.add_post", "auth.view_user"] }),
    )
    .await;
    let group = ok(&created, StatusCode::CREATED);
    assert_eq!(group["name"], "editors");
    assert_eq!(
        group["permissions"],
        json!(["auth.view_user", "blog.add_post"])
    );
    let group_id = group["id"].as_i64().expect("id");

    let joined = call(
        &app,
        Method::PUT,
        &format!("/users/{alice}/groups/"),
        &root,
        json!({ "groups": ["editors"] }),
    )
    .await;
    joined.assert(StatusCode::OK, json!({ "groups": ["editors"] }));
    get(&app, &format!("/users/{alice}/groups/"), &root)
        .await
        .assert(StatusCode::OK, json!({ "groups": ["editors"] }));
    get(&app, &format!("/groups/{group_id}/"), &root)
        .await
        .assert(StatusCode::OK, group.clone());
    get(&app, "/groups/", &root)
        .await
        .assert(StatusCode::OK, json!([group]));

    let granted = call(
        &app,
        Method::PUT,
        &format!("/users/{alice}/permissions/"),
        &root,
        json!({ "permissions": ["blog.add_post"] }),
    )
    .await;
    granted.assert(StatusCode::OK, json!({ "permissions": ["blog.add_post"] }));
    let patched = call(
        &app,
        Method::PATCH,
        &format!("/groups/{group_id}/"),
        &root,
        json!({ "permissions": ["blog.add_post"] }),
    )
    .await;
    assert_eq!(
        ok(&patched, StatusCode::OK)["permissions"],
        json!(["blog.add_post"])
    );
    let roles = call(
        &app,
        Method::PATCH,
        &format!("/users/{alice}/roles/"),
        &root,
        json!({ "is_staff": true }),
    )
    .await;
    roles.assert(
        StatusCode::OK,
        json!({ "is_staff": true, "is_superuser": false }),
    );

    let deleted = app
        .call(Method::DELETE, &format!("/groups/{group_id}/"), &root, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    get(&app, &format!("/users/{alice}/groups/"), &root)
        .await
        .assert(StatusCode::OK, json!({ "groups": [] }));
}

/// Reading needs staff plus `auth.view_*`; managing, staff plus the matching add, change or
/// delete; a superuser needs nothing else. Anonymous callers get 401.
#[tokio::test]
async fn staff_without_auth_permissions_are_refused() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (staff_id, staff) = app.create_user("staff").await;
    app.make_staff(staff_id).await;
    let (plain_id, plain) = app.create_user("plain").await;
    // Holding the permission without being staff is not enough either (the admin's rule).
    call(
        &app,
        Method::PUT,
        &format!("/users/{plain_id}/permissions/"),
        &root,
        json!({ "permissions": ["auth.view_group"] }),
    )
    .await;
    let before = grants_snapshot(&app).await;
    for token in [&staff, &plain] {
        denied(&get(&app, "/groups/", token).await);
        denied(&get(&app, "/permissions/", token).await);
        denied(&get(&app, &format!("/users/{plain_id}/groups/"), token).await);
        denied(&get(&app, &format!("/users/{plain_id}/roles/"), token).await);
        denied(
            &call(
                &app,
                Method::POST,
                "/groups/",
                token,
                json!({ "name": "x" }),
            )
            .await,
        );
        denied(
            &call(
                &app,
                Method::PATCH,
                &format!("/users/{plain_id}/roles/"),
                token,
                json!({ "is_superuser": true }),
            )
            .await,
        );
        denied(
            &call(
                &app,
                Method::PUT,
                &format!("/users/{staff_id}/permissions/"),
                token,
                json!({ "permissions": ["auth.change_user"] }),
            )
            .await,
        );
    }
    assert_eq!(grants_snapshot(&app).await, before);
    let anonymous = app.send(app.request(Method::GET, "/groups/")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // With `auth.view_group`, the staff user reads groups, and still nothing else.
    call(
        &app,
        Method::PUT,
        &format!("/users/{staff_id}/permissions/"),
        &root,
        json!({ "permissions": ["auth.view_group"] }),
    )
    .await;
    ok(&get(&app, "/groups/", &staff).await, StatusCode::OK);
    denied(&get(&app, "/permissions/", &staff).await);
    denied(
        &call(
            &app,
            Method::POST,
            "/groups/",
            &staff,
            json!({ "name": "x" }),
        )
        .await,
    );
}

/// Staff holding `auth.add_group` and `auth.change_user` manage what they hold, and cannot
/// grant more: not a permission they lack, not an `auth.*` one, not staff or superuser status,
/// not a group that would give any of those.
#[tokio::test]
async fn staff_cannot_grant_beyond_what_they_hold() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (clerk_id, clerk) = app.create_user("clerk").await;
    app.make_staff(clerk_id).await;
    let (bob, _) = app.create_user("bob").await;
    create_permission(&app, &root, "blog.add_post").await;
    create_permission(&app, &root, "blog.delete_post").await;
    call(
        &app,
        Method::PUT,
        &format!("/users/{clerk_id}/permissions/"),
        &root,
        json!({ "permissions": ["auth.add_group", "auth.change_user", "blog.add_post"] }),
    )
    .await;
    let admins = call(
        &app,
        Method::POST,
        "/groups/",
        &root,
        json!({ "name": "admins", "permissions": ["auth.view_user"] }),
    )
    .await;
    ok(&admins, StatusCode::CREATED);
    let before = grants_snapshot(&app).await;

    for refused in [
        json!({ "name": "escalate", "permissions": ["auth.change_user"] }),
        json!({ "name": "beyond", "permissions": ["blog.delete_post"] }),
    ] {
        denied(&call(&app, Method::POST, "/groups/", &clerk, refused).await);
    }
    for refused in [
        json!({ "permissions": ["auth.change_user"] }),
        json!({ "permissions": ["blog.delete_post"] }),
    ] {
        let path = format!("/users/{bob}/permissions/");
        denied(&call(&app, Method::PUT, &path, &clerk, refused).await);
    }
    for flag in ["is_staff", "is_superuser"] {
        let path = format!("/users/{bob}/roles/");
        denied(&call(&app, Method::PATCH, &path, &clerk, json!({ flag: true })).await);
    }
    let path = format!("/users/{bob}/groups/");
    denied(
        &call(
            &app,
            Method::PUT,
            &path,
            &clerk,
            json!({ "groups": ["admins"] }),
        )
        .await,
    );
    // Nor can they take the admin's power away from themselves or others.
    let own = format!("/users/{clerk_id}/permissions/");
    denied(
        &call(
            &app,
            Method::PUT,
            &own,
            &clerk,
            json!({ "permissions": ["blog.add_post"] }),
        )
        .await,
    );
    assert_eq!(grants_snapshot(&app).await, before);

    let writers = call(
        &app,
        Method::POST,
        "/groups/",
        &clerk,
        json!({ "name": "writers", "permissions": ["blog.add_post"] }),
    )
    .await;
    ok(&writers, StatusCode::CREATED);
    call(
        &app,
        Method::PUT,
        &path,
        &clerk,
        json!({ "groups": ["writers"] }),
    )
    .await
    .assert(StatusCode::OK, json!({ "groups": ["writers"] }));
    let bobs = format!("/users/{bob}/permissions/");
    call(
        &app,
        Method::PUT,
        &bobs,
        &clerk,
        json!({ "permissions": ["blog.add_post"] }),
    )
    .await
    .assert(StatusCode::OK, json!({ "permissions": ["blog.add_post"] }));
    // A superuser sets roles.
    call(
        &app,
        Method::PATCH,
        &format!("/users/{bob}/roles/"),
        &root,
        json!({ "is_staff": "true" }),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({ "is_staff": true, "is_superuser": false }),
    );
}

/// Unknown names, duplicates, wrong shapes: DRF's 400s, and nothing changes. Missing rows
/// are DRF's 404s.
#[tokio::test]
async fn bad_input_is_a_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, _) = app.create_user("alice").await;
    create_permission(&app, &root, "blog.add_post").await;
    ok(
        &call(
            &app,
            Method::POST,
            "/groups/",
            &root,
            json!({ "name": "editors" }),
        )
        .await,
        StatusCode::CREATED,
    );
    let before = grants_snapshot(&app).await;

    let cases = [
        (
            Method::POST,
            "/groups/".to_owned(),
            json!({ "name": "editors", "permissions": ["blog.nope", "bad name"] }),
            json!({
                "name": ["group with this name already exists."],
                "permissions": [
                    "Object with app_label.codename=bad name does not exist.",
                    "Object with app_label.codename=blog.nope does not exist."
                ]
            }),
        ),
        (
            Method::POST,
            "/groups/".to_owned(),
            json!({ "permissions": "blog.add_post" }),
            json!({
                "name": ["This field is required."],
                "permissions": ["Expected a list of items but got type \"str\"."]
            }),
        ),
        (
            Method::POST,
            "/permissions/".to_owned(),
            json!({ "app_label": "blog", "codename": "add_post", "name": "Again" }),
            json!({ "non_field_errors": ["The fields app_label, codename must make a unique set."] }),
        ),
        (
            Method::POST,
            "/permissions/".to_owned(),
            json!({ "app_label": "my-app", "codename": "two words" }),
            json!({
                "app_label": ["Enter a valid app label: letters, digits and underscores, not starting with a digit."],
                "codename": ["Enter a valid codename: no spaces."],
                "name": ["This field is required."]
            }),
        ),
        (
            Method::PUT,
            format!("/users/{alice}/groups/"),
            json!({ "groups": ["editors", "ghosts"] }),
            json!({ "groups": ["Object with name=ghosts does not exist."] }),
        ),
        (
            Method::PUT,
            format!("/users/{alice}/groups/"),
            json!({}),
            json!({ "groups": ["This field is required."] }),
        ),
        (
            Method::PUT,
            format!("/users/{alice}/permissions/"),
            json!({ "permissions": [{}, "blog.add_post"] }),
            json!({ "permissions": ["Invalid value."] }),
        ),
        (
            Method::PATCH,
            format!("/users/{alice}/roles/"),
            json!({ "is_staff": "maybe" }),
            json!({ "is_staff": ["Must be a valid boolean."] }),
        ),
    ];
    for (method, path, body, expected) in cases {
        let reply = call(&app, method, &path, &root, body).await;
        reply.assert(StatusCode::BAD_REQUEST, expected);
    }
    assert_eq!(grants_snapshot(&app).await, before);

    for (path, detail) in [
        (
            "/groups/999/".to_owned(),
            "No Group matches the given query.",
        ),
        ("/groups/abc/".to_owned(), "Not found."),
        (
            "/permissions/999/".to_owned(),
            "No Permission matches the given query.",
        ),
        (
            "/users/999/groups/".to_owned(),
            "No User matches the given query.",
        ),
    ] {
        get(&app, &path, &root)
            .await
            .assert(StatusCode::NOT_FOUND, json!({ "detail": detail }));
    }
}

/// A form body names a list by repeating the key, as DRF reads a `QueryDict`.
#[tokio::test]
async fn form_bodies_repeat_a_key_for_a_list() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let reply = app
        .send(
            app.request(Method::POST, "/groups/")
                .header("Authorization", format!("Token {root}"))
                .form(&[
                    ("name", "viewers"),
                    ("permissions", "auth.view_user"),
                    ("permissions", "auth.view_group"),
                ]),
        )
        .await;
    let group = ok(&reply, StatusCode::CREATED);
    assert_eq!(
        group["permissions"],
        json!(["auth.view_group", "auth.view_user"])
    );
}

/// Renaming a permission changes what every holder holds: superusers only. Its `name` is
/// just words, and staff allowed to change permissions may reword it.
#[tokio::test]
async fn only_superusers_rename_a_permission() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (clerk_id, clerk) = app.create_user("clerk").await;
    app.make_staff(clerk_id).await;
    let post = create_permission(&app, &root, "blog.add_post").await;
    call(
        &app,
        Method::PUT,
        &format!("/users/{clerk_id}/permissions/"),
        &root,
        json!({ "permissions": ["auth.change_permission", "auth.delete_permission"] }),
    )
    .await;
    let path = format!("/permissions/{post}/");
    denied(
        &call(
            &app,
            Method::PATCH,
            &path,
            &clerk,
            json!({ "codename": "change_user", "app_label": "auth" }),
        )
        .await,
    );
    let reworded = call(
        &app,
        Method::PATCH,
        &path,
        &clerk,
        json!({ "name": "Can write" }),
    )
    .await;
    assert_eq!(ok(&reworded, StatusCode::OK)["name"], "Can write");
    // Staff may not delete Django's own permissions (that revokes the admin's power), nor
    // create new ones in the `auth` app.
    let seeded = app.count("auth_permission WHERE app_label = 'auth'").await;
    let add_user: i64 = ok(&get(&app, "/permissions/", &root).await, StatusCode::OK)
        .as_array()
        .and_then(|list| list.iter().find(|p| p["codename"] == "add_user"))
        .and_then(|p| p["id"].as_i64())
        .expect("auth.add_user");
    denied(
        &app.call(
            Method::DELETE,
            &format!("/permissions/{add_user}/"),
            &clerk,
            None,
        )
        .await,
    );
    assert_eq!(
        app.count("auth_permission WHERE app_label = 'auth'").await,
        seeded
    );
    let deleted = app.call(Method::DELETE, &path, &clerk, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
}

/// The command line manages the same model, as the operator (no checks), and prints JSON.
#[tokio::test]
async fn the_command_line_manages_groups_and_grants() {
    let app = TestApp::spawn().await;
    app.create_user("alice").await;
    let run = async |args: &[&str]| {
        let output = app.command(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&[
        "permission",
        "create",
        "blog.add_post",
        "--name",
        "Can add post",
    ])
    .await;
    run(&[
        "permission",
        "create",
        "blog.publish",
        "--name",
        "Can publish",
    ])
    .await;
    run(&[
        "group",
        "create",
        "editors",
        "--permission",
        "blog.add_post",
    ])
    .await;
    run(&["group", "grant", "editors", "blog.publish"]).await;
    run(&["group", "revoke", "editors", "blog.add_post"]).await;
    run(&["user", "add-to-group", "alice", "editors"]).await;
    run(&["user", "grant", "alice", "blog.add_post"]).await;
    run(&["user", "set-staff", "alice", "true"]).await;

    let groups = run(&["group", "list"]).await;
    let editors: Value =
        serde_json::from_str(groups.lines().next().expect("a line")).expect("JSON");
    assert_eq!(editors["name"], "editors");
    assert_eq!(editors["permissions"], json!(["blog.publish"]));
    let users = run(&["user", "list"]).await;
    let alice: Value = serde_json::from_str(users.lines().next().expect("a line")).expect("JSON");
    assert_eq!(
        (
            alice["groups"].clone(),
            alice["permissions"].clone(),
            alice["is_staff"].clone()
        ),
        (json!(["editors"]), json!(["blog.add_post"]), json!(true))
    );
    let permissions = run(&["permission", "list"]).await;
    assert_eq!(permissions.lines().count(), 14, "{permissions}");

    run(&["user", "remove-from-group", "alice", "editors"]).await;
    run(&["user", "revoke", "alice", "blog.add_post"]).await;
    run(&["group", "delete", "editors"]).await;
    run(&["permission", "delete", "blog.publish"]).await;
    assert_eq!(app.count("auth_user_groups").await, 0);
    assert_eq!(app.count("auth_user_user_permissions").await, 0);
    assert_eq!(app.count("auth_group").await, 0);

    let unknown = app.command(&["user", "grant", "alice", "blog.nope"]).await;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("blog.nope does not exist"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// Grants made at the same moment are serialised: none is lost (both databases).
#[tokio::test]
async fn simultaneous_grants_to_one_group_all_land() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let names: Vec<String> = (0..8).map(|i| format!("blog.p{i}")).collect();
    for name in &names {
        create_permission(&app, &root, name).await;
    }
    ok(
        &call(
            &app,
            Method::POST,
            "/groups/",
            &root,
            json!({ "name": "g" }),
        )
        .await,
        StatusCode::CREATED,
    );
    let grants = names.iter().map(|name| {
        let app = &app;
        async move { app.command(&["group", "grant", "g", name]).await }
    });
    for output in futures::future::join_all(grants).await {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let groups = ok(&get(&app, "/groups/", &root).await, StatusCode::OK);
    assert_eq!(groups[0]["permissions"], json!(names));
}

/// A write that loses at a unique index of the authorization tables names which one, as each
/// database words it: what turns a lost race into Django's duplicate errors.
#[tokio::test]
async fn a_lost_race_at_the_unique_indexes_names_the_group_or_the_permission() {
    use authd::store::OnConstraint;
    use authd::store::authz::{self, Taken};
    /// What a failed insert turned into.
    #[derive(Debug, PartialEq)]
    enum Failed {
        Taken(Taken),
        Other,
    }
    impl From<authd::store::DbErr> for Failed {
        fn from(_: authd::store::DbErr) -> Self {
            Failed::Other
        }
    }
    let app = TestApp::spawn().await;
    authz::insert_group(app.db(), "editors")
        .await
        .expect("the first group");
    let group = authz::insert_group(app.db(), "editors")
        .await
        .on_constraint(Failed::Taken);
    assert_eq!(group.err(), Some(Failed::Taken(Taken::GroupName)));
    let permission = authz::insert_permission(app.db(), "auth", "add_user", "Again")
        .await
        .on_constraint(Failed::Taken);
    assert_eq!(permission.err(), Some(Failed::Taken(Taken::Permission)));
}

/// Registers a confidential client through the binary, with `--scope` for each name; its
/// Basic credentials.
pub async fn resource_server(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let mut command = vec!["client", "create", "Orders service"];
    for scope in scopes {
        command.extend(["--scope", scope]);
    }
    let output = app.command(&command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    let field = |name: &str| client[name].as_str().expect(name).to_owned();
    (field("client_id"), field("client_secret"))
}

pub async fn introspect(app: &TestApp, client: &(String, String), token: &str) -> Value {
    let reply = app
        .send(
            app.request(Method::POST, "/oauth/introspect")
                .basic_auth(&client.0, Some(&client.1))
                .form(&[("token", token)]),
        )
        .await;
    ok(&reply, StatusCode::OK)
}

/// Asks `app` until `field` of the introspection answer is `expected`; how long it took.
async fn until_introspected(
    app: &TestApp,
    client: &(String, String),
    token: &str,
    field: &str,
    expected: Value,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let answer = introspect(app, client, token).await;
        if answer[field] == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{field} still {} on the other instance, expected {expected}",
            answer[field]
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Introspection tells a service the user's groups and effective permissions; a superuser's
/// are every permission there is. A permission taken from a group, or a user taken out of one,
/// shows on another instance (whose cache held the answer) at once: PostgreSQL's NOTIFY,
/// SQLite's poll.
#[tokio::test]
async fn introspection_carries_grants_and_changes_reach_every_instance() {
    let app = TestApp::spawn().await;
    let other = app.sibling().await;
    let client = resource_server(&app, &[]).await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, alice_token) = app.create_user("alice").await;
    for name in ["blog.add_post", "blog.publish", "blog.extra"] {
        create_permission(&app, &root, name).await;
    }
    let group = call(
        &app,
        Method::POST,
        "/groups/",
        &root,
        json!({ "name": "editors", "permissions": ["blog.add_post", "blog.publish"] }),
    )
    .await;
    let group_id = ok(&group, StatusCode::CREATED)["id"].as_i64().expect("id");
    let groups = format!("/users/{alice}/groups/");
    call(
        &app,
        Method::PUT,
        &groups,
        &root,
        json!({ "groups": ["editors"] }),
    )
    .await;
    let own = format!("/users/{alice}/permissions/");
    call(
        &app,
        Method::PUT,
        &own,
        &root,
        json!({ "permissions": ["blog.extra"] }),
    )
    .await;

    let answer = introspect(&other, &client, &alice_token).await;
    assert_eq!(
        (
            answer["is_superuser"].clone(),
            answer["groups"].clone(),
            answer["permissions"].clone()
        ),
        (
            json!(false),
            json!(["editors"]),
            json!(["blog.add_post", "blog.extra", "blog.publish"])
        )
    );
    let root_answer = introspect(&other, &client, &root).await;
    assert_eq!(root_answer["is_superuser"], true);
    assert_eq!(
        root_answer["permissions"].as_array().map(Vec::len),
        Some(15),
        "every permission there is: {root_answer}"
    );

    call(
        &app,
        Method::PATCH,
        &format!("/groups/{group_id}/"),
        &root,
        json!({ "permissions": ["blog.add_post"] }),
    )
    .await;
    let took = until_introspected(
        &other,
        &client,
        &alice_token,
        "permissions",
        json!(["blog.add_post", "blog.extra"]),
    )
    .await;
    eprintln!("a group's change reached the other instance in {took:?}");
    call(&app, Method::PUT, &groups, &root, json!({ "groups": [] })).await;
    until_introspected(&other, &client, &alice_token, "groups", json!([])).await;
    assert_eq!(
        introspect(&other, &client, &alice_token).await["permissions"],
        json!(["blog.extra"])
    );
    // A new permission is the superuser's at once, everywhere.
    create_permission(&app, &root, "blog.archive").await;
    let every = permission_names(&app, &root).await;
    assert!(every.contains(&"blog.archive".to_owned()));
    until_introspected(&other, &client, &root, "permissions", json!(every)).await;
}

/// AUTHD_USER_EXTRA_FIELDS adds read-only fields to Djoser's user serializer, for the caller
/// (from the guard's cache) and for anyone staff may see (from the database); without it the
/// body is Djoser's three fields.
#[tokio::test]
async fn extra_user_fields_show_grants_and_roles_when_asked_for() {
    use authd::config::UserExtraField;
    let app = TestApp::spawn_with(|s| s.user_extra_fields = UserExtraField::ALL.to_vec()).await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, alice_token) = app.create_user("alice").await;
    create_permission(&app, &root, "blog.add_post").await;
    call(
        &app,
        Method::POST,
        "/groups/",
        &root,
        json!({ "name": "editors", "permissions": ["blog.add_post"] }),
    )
    .await;
    call(
        &app,
        Method::PUT,
        &format!("/users/{alice}/groups/"),
        &root,
        json!({ "groups": ["editors"] }),
    )
    .await;

    let me = ok(&get(&app, "/users/me/", &alice_token).await, StatusCode::OK);
    let keys: Vec<&str> = me
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "email",
            "id",
            "username",
            "groups",
            "permissions",
            "is_staff",
            "is_superuser",
            "date_joined",
            "last_login"
        ]
    );
    assert_eq!(
        (
            me["groups"].clone(),
            me["permissions"].clone(),
            me["is_staff"].clone(),
            me["is_superuser"].clone()
        ),
        (
            json!(["editors"]),
            json!(["blog.add_post"]),
            json!(false),
            json!(false)
        )
    );
    let joined = me["date_joined"].as_str().expect("date_joined");
    assert!(
        chrono::DateTime::parse_from_rfc3339(joined).is_ok() && joined.ends_with('Z'),
        "{joined}"
    );
    assert!(me["last_login"].is_string(), "alice logged in: {me}");

    let seen_by_root = ok(
        &get(&app, &format!("/users/{alice}/"), &root).await,
        StatusCode::OK,
    );
    assert_eq!(seen_by_root["permissions"], json!(["blog.add_post"]));
    let listed = ok(&get(&app, "/users/", &root).await, StatusCode::OK);
    let root_row = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["username"] == "root"))
        .expect("root listed");
    assert_eq!(root_row["is_superuser"], true);
    assert_eq!(
        root_row["permissions"].as_array().map(Vec::len),
        Some(13),
        "{root_row}"
    );

    let plain = TestApp::spawn_with(|s| s.user_extra_fields = vec![UserExtraField::IsStaff]).await;
    let (id, token) = plain.create_user("bob").await;
    get(&plain, "/users/me/", &token).await.assert(
        StatusCode::OK,
        json!({ "email": "", "id": id, "username": "bob", "is_staff": false }),
    );
}

/// Writing another user's record is taking it over (its address receives the reset link), so
/// staff write only accounts with less power than their own: not a superuser (staff or not),
/// not other staff, not an account holding a permission they lack. Djoser's rule still holds
/// for the rest: staff change a plain account's email without a password. A superuser writes
/// anyone's.
#[tokio::test]
async fn staff_cannot_take_over_an_account_with_more_power() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (owner_id, _) = app.create_superuser("owner").await;
    // A superuser without staff status: Djoser's staff exemption once skipped the password.
    app.exec(&format!(
        "UPDATE auth_user SET is_staff = false WHERE id = {owner_id}"
    ))
    .await;
    let (staff_id, staff) = app.create_user("staff").await;
    app.make_staff(staff_id).await;
    let (colleague_id, _) = app.create_user("colleague").await;
    app.make_staff(colleague_id).await;
    let (editor_id, _) = app.create_user("editor").await;
    create_permission(&app, &root, "blog.publish_post").await;
    ok(
        &call(
            &app,
            Method::PUT,
            &format!("/users/{editor_id}/permissions/"),
            &root,
            json!({ "permissions": ["blog.publish_post"] }),
        )
        .await,
        StatusCode::OK,
    );
    let (plain_id, _) = app.create_user("plain").await;

    let before = app.snapshot().await;
    for target in [owner_id, colleague_id, editor_id] {
        let path = format!("/users/{target}/");
        for method in [Method::PATCH, Method::PUT] {
            denied(
                &call(
                    &app,
                    method,
                    &path,
                    &staff,
                    json!({ "email": "thief@example.com", "current_password": crate::helpers::PASSWORD }),
                )
                .await,
            );
        }
        denied(
            &call(
                &app,
                Method::DELETE,
                &path,
                &staff,
                json!({ "current_password": crate::helpers::PASSWORD }),
            )
            .await,
        );
        // Reading stays Djoser's: staff see every user.
        ok(&get(&app, &path, &staff).await, StatusCode::OK);
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");

    let moved = call(
        &app,
        Method::PATCH,
        &format!("/users/{plain_id}/"),
        &staff,
        json!({ "email": "plain-new@example.com" }),
    )
    .await;
    assert_eq!(ok(&moved, StatusCode::OK)["email"], "plain-new@example.com");
    let moved = call(
        &app,
        Method::PATCH,
        &format!("/users/{colleague_id}/"),
        &root,
        json!({ "email": "colleague-new@example.com", "current_password": crate::helpers::PASSWORD }),
    )
    .await;
    assert_eq!(
        ok(&moved, StatusCode::OK)["email"],
        "colleague-new@example.com"
    );
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/users/{editor_id}/"),
        &root,
        json!({ "current_password": crate::helpers::PASSWORD }),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
}

/// The guard reads a user's groups and permissions in the statement that finds the token, as
/// JSON arrays the database builds: a name with quotes, commas, brackets, backslashes and
/// non-ASCII text arrives whole, for every token of the user, and a superuser holds every
/// permission there is.
#[tokio::test]
async fn names_of_any_text_reach_the_guard_whole() {
    use authd::config::UserExtraField;
    let app = TestApp::spawn_with(|s| s.user_extra_fields = UserExtraField::ALL.to_vec()).await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, first) = app.create_user("alice").await;
    let second = app.token_for("alice", crate::helpers::PASSWORD).await;
    create_permission(&app, &root, "blog.add_post").await;
    let odd = r#"ed"it,ors ] [\ é 🔑"#;
    let created = call(
        &app,
        Method::POST,
        "/groups/",
        &root,
        json!({ "name": odd, "permissions": ["blog.add_post"] }),
    )
    .await;
    ok(&created, StatusCode::CREATED);
    let joined = call(
        &app,
        Method::PUT,
        &format!("/users/{alice}/groups/"),
        &root,
        json!({ "groups": [odd] }),
    )
    .await;
    ok(&joined, StatusCode::OK);
    for token in [&first, &second] {
        let me = ok(&get(&app, "/users/me/", token).await, StatusCode::OK);
        assert_eq!(me["groups"], json!([odd]));
        assert_eq!(me["permissions"], json!(["blog.add_post"]));
    }
    let mut every = permission_names(&app, &root).await;
    every.sort();
    let me = ok(&get(&app, "/users/me/", &root).await, StatusCode::OK);
    assert_eq!(me["permissions"], json!(every));
    assert_eq!(me["groups"], json!([]));
}
