//! API keys: created with the password and told to the mailbox, shown once, stored as digests,
//! limited to a scope within what their user holds, accepted in `Authorization` or `X-API-Key`
//! (never both), unable to reach account routes or log out, and ended by every event that must
//! end them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::authz::{introspect, ok};
use crate::helpers::{PASSWORD, Reply, TestApp};
use crate::scopes::{blog, set_permissions, text};

const DENIED: &str = "You do not have permission to perform this action.";
const INVALID: &str = "Invalid token.";

async fn create(app: &TestApp, token: &str, body: Value) -> Reply {
    app.call(Method::POST, "/token/keys/", token, Some(body))
        .await
}

/// A key named `name` with `scope` (JSON), made with the right password; returns the answer.
async fn create_key(app: &TestApp, token: &str, name: &str, scope: Option<Value>) -> Value {
    let mut body = json!({ "name": name, "current_password": PASSWORD });
    if let Some(scope) = scope {
        body["scope"] = scope;
    }
    ok(&create(app, token, body).await, StatusCode::CREATED)
}

async fn with_header(app: &TestApp, path: &str, name: &str, value: &str) -> Reply {
    app.send(app.request(Method::GET, path).header(name, value))
        .await
}

/// alice, with an address for the notices and the reset link.
async fn register_alice(app: &TestApp) {
    let registered = app
        .post_json(
            "/users/",
            json!({ "username": "alice", "email": "alice@example.com", "password": PASSWORD }),
            None,
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text
    );
}

/// `column` two hours earlier, in the backend's SQL.
fn earlier(app: &TestApp, column: &str) -> String {
    match app.db().get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("{column} - interval '2 hours'"),
        _ => format!("datetime({column}, '-2 hours')"),
    }
}

async fn me_with_key(app: &TestApp, key: &str) -> StatusCode {
    with_header(app, "/users/me/", "X-API-Key", key)
        .await
        .status
}

#[track_caller]
fn refused(reply: &Reply, status: StatusCode, detail: &str) {
    reply.assert(status, json!({ "detail": detail }));
}

/// The key is shown once, with its own prefix; only its digest is stored; it works in every
/// header a client may use; its owner's mailbox is told (name and scope, never the key).
#[tokio::test]
async fn a_key_is_shown_once_stored_as_a_digest_and_works_in_every_header() {
    let (app, smtp) = crate::email::spawn(|_| {}).await;
    register_alice(&app).await;
    let token = app.token_for("alice", PASSWORD).await;

    let created = create_key(&app, &token, "deploy bot", None).await;
    let key = text(&created, "key");
    assert!(key.starts_with("authd_key_"), "{key}");
    assert_eq!(key.len(), "authd_key_".len() + 43);
    assert_eq!(created["name"], "deploy bot");
    assert_eq!(created["scope"], "", "alice holds nothing");
    let expires = chrono::DateTime::parse_from_rfc3339(&text(&created, "expires")).expect("ISO");
    let year = chrono::Utc::now() + chrono::Duration::days(365);
    assert!(
        (expires.with_timezone(&chrono::Utc) - year)
            .num_seconds()
            .abs()
            < 60
    );

    assert_eq!(app.count("auth_token WHERE kind = 'api_key'").await, 1);
    let digest = authd::crypto::token_digest(&key);
    assert_eq!(
        app.count(&format!("auth_token WHERE digest = '{digest}'"))
            .await,
        1,
        "only the digest is stored"
    );

    for (name, value) in [
        ("Authorization", format!("Token {key}")),
        ("Authorization", format!("Bearer {key}")),
        ("X-API-Key", key.clone()),
    ] {
        let me = with_header(&app, "/users/me/", name, &value).await;
        assert_eq!(me.status, StatusCode::OK, "{name}: {}", me.text);
        assert_eq!(me.json()["username"], "alice");
        let verified = with_header(&app, "/token/verify/", name, &value).await;
        assert_eq!(verified.status, StatusCode::NO_CONTENT, "{}", verified.text);
        assert_eq!(verified.header("x-authd-username"), Some("alice"));
    }

    let listed = ok(
        &app.call(Method::GET, "/token/keys/", &token, None).await,
        StatusCode::OK,
    );
    assert_eq!(
        listed,
        json!([{
            "id": created["id"], "name": "deploy bot", "scope": "",
            "expires": created["expires"], "created": created["created"],
        }])
    );
    let sessions = ok(
        &app.call(Method::GET, "/token/sessions/", &token, None)
            .await,
        StatusCode::OK,
    );
    let kinds: Vec<(&str, &str)> = sessions
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(kinds.contains(&("api_key", "deploy bot")), "{sessions}");
    assert!(kinds.iter().any(|(kind, _)| *kind == "token"), "{sessions}");

    let told = smtp.wait_for(1).await;
    assert_eq!(told[0].recipients, ["alice@example.com"]);
    assert!(told[0].raw.contains("deploy bot"), "{}", told[0].raw);
    assert!(!told[0].raw.contains(&key));
    assert!(!told[0].raw.contains(&key["authd_key_".len()..]));
}

/// Two credentials at once, a login token in `X-API-Key`, a header sent twice or empty: 401
/// "Invalid token." with nothing authenticated.
#[tokio::test]
async fn two_credentials_or_a_token_in_the_key_header_are_invalid() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let key = text(&create_key(&app, &token, "bot", None).await, "key");

    for path in ["/users/me/", "/token/verify/"] {
        for authorization in [
            format!("Token {key}"),
            format!("Token {token}"),
            "Basic YWxpY2U6c2VjcmV0".to_owned(),
        ] {
            let both = app
                .send(
                    app.request(Method::GET, path)
                        .header("Authorization", authorization)
                        .header("X-API-Key", &key),
                )
                .await;
            refused(&both, StatusCode::UNAUTHORIZED, INVALID);
            assert_eq!(both.header("www-authenticate"), Some("Token"));
        }
        refused(
            &with_header(&app, path, "X-API-Key", &token).await,
            StatusCode::UNAUTHORIZED,
            INVALID,
        );
        refused(
            &with_header(&app, path, "X-API-Key", "").await,
            StatusCode::UNAUTHORIZED,
            INVALID,
        );
        let twice = app
            .send(
                app.request(Method::GET, path)
                    .header("X-API-Key", &key)
                    .header("X-API-Key", &key),
            )
            .await;
        refused(&twice, StatusCode::UNAUTHORIZED, INVALID);
        refused(
            &with_header(&app, path, "X-API-Key", "authd_key_forged").await,
            StatusCode::UNAUTHORIZED,
            INVALID,
        );
    }
}

/// A key's authority is its scope: it cannot make, list or end keys, log out, change the
/// password or the username, end sessions, or manage anything, even when its user is a
/// superuser; introspection reports no superuser, no staff and no groups.
#[tokio::test]
async fn a_key_cannot_reach_account_routes_or_log_out() {
    let app = TestApp::spawn().await;
    let (root_id, root) = app.create_superuser("root").await;
    let created = create_key(&app, &root, "root bot", None).await;
    let key = text(&created, "key");
    let before = app.snapshot().await;

    let calls: [(Method, String, Value); 11] = [
        (
            Method::POST,
            "/token/keys/".into(),
            json!({ "name": "another", "current_password": PASSWORD }),
        ),
        (Method::GET, "/token/keys/".into(), json!({})),
        (
            Method::DELETE,
            format!("/token/keys/{}/", text(&created, "id")),
            json!({}),
        ),
        (Method::POST, "/token/logout/".into(), json!({})),
        (Method::POST, "/token/logoutall/".into(), json!({})),
        (Method::GET, "/token/sessions/".into(), json!({})),
        (
            Method::POST,
            "/users/set_password/".into(),
            json!({ "current_password": PASSWORD, "new_password": "a brand new secret 1" }),
        ),
        (
            Method::POST,
            "/users/set_username/".into(),
            json!({ "current_password": PASSWORD, "new_username": "rooted" }),
        ),
        (
            Method::PATCH,
            "/users/me/".into(),
            json!({ "email": "thief@example.com", "current_password": PASSWORD }),
        ),
        (Method::GET, "/groups/".into(), json!({})),
        (
            Method::PATCH,
            format!("/users/{root_id}/roles/"),
            json!({ "is_superuser": false }),
        ),
    ];
    for (method, path, body) in calls {
        for header in ["Authorization", "X-API-Key"] {
            let value = match header {
                "Authorization" => format!("Token {key}"),
                _ => key.clone(),
            };
            let reply = app
                .send(
                    app.request(method.clone(), &path)
                        .header(header, value)
                        .json(&body),
                )
                .await;
            refused(&reply, StatusCode::FORBIDDEN, DENIED);
        }
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert_eq!(me_with_key(&app, &key).await, StatusCode::OK);

    let server = crate::authz::resource_server(&app, &[]).await;
    let answer = introspect(&app, &server, &key).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_use"], "api_key");
    assert_eq!(answer["is_superuser"], false);
    assert_eq!(answer["is_staff"], false);
    assert_eq!(answer["groups"], json!([]));
    // Everything a superuser holds, fixed at creation.
    assert_eq!(answer["scope"], created["scope"]);
    assert!(
        text(&created, "scope").contains("auth.change_user"),
        "{created}"
    );
}

/// A scope within what the user holds; beyond it, 400 on `scope` and nothing created. The key
/// may do its scope ∩ what the user holds now: a permission taken away narrows it at once.
#[tokio::test]
async fn a_key_is_limited_to_its_scope_and_what_its_user_still_holds() {
    let app = TestApp::spawn().await;
    let (alice, root, server) = blog(&app).await;
    let token = app.token_for("alice", PASSWORD).await;
    let before = app.snapshot().await;
    for scope in [
        json!("blog.delete_post"),
        json!(["blog.add_post", "no.such"]),
    ] {
        let reply = create(
            &app,
            &token,
            json!({ "name": "bot", "scope": scope, "current_password": PASSWORD }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert!(
            reply.json()["scope"][0]
                .as_str()
                .is_some_and(|m| m.starts_with("You do not hold the permission"))
        );
    }
    assert_eq!(app.snapshot().await, before, "nothing created");

    let narrow = create_key(&app, &token, "reader", Some(json!("blog.view_post"))).await;
    assert_eq!(narrow["scope"], "blog.view_post");
    let listed = create_key(
        &app,
        &token,
        "writer",
        Some(json!(["blog.view_post", "blog.add_post"])),
    )
    .await;
    assert_eq!(listed["scope"], "blog.add_post blog.view_post");
    let everything = create_key(&app, &token, "all", None).await;
    assert_eq!(everything["scope"], "blog.add_post blog.view_post");
    let nothing = create_key(&app, &token, "whoami", Some(json!([]))).await;
    assert_eq!(nothing["scope"], "");

    let key = text(&listed, "key");
    let verify = |permission: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.send(
                app.request(
                    Method::GET,
                    &format!("/token/verify/?permission={permission}"),
                )
                .header("X-API-Key", key),
            )
            .await
            .status
        }
    };
    assert_eq!(verify("blog.add_post").await, StatusCode::NO_CONTENT);
    assert_eq!(verify("blog.delete_post").await, StatusCode::FORBIDDEN);

    set_permissions(&app, &root, alice, &["blog.view_post"]).await;
    assert_eq!(verify("blog.add_post").await, StatusCode::FORBIDDEN);
    let answer = introspect(&app, &server, &key).await;
    assert_eq!(answer["scope"], "blog.add_post blog.view_post");
    assert_eq!(answer["permissions"], json!(["blog.view_post"]));
    set_permissions(&app, &root, alice, &["blog.add_post", "blog.view_post"]).await;
    assert_eq!(verify("blog.add_post").await, StatusCode::NO_CONTENT);
}

/// Bad input is a 400 naming every field at once, and creates nothing; a wrong password counts
/// against the session's failure limit like every `current_password` check.
#[tokio::test]
async fn bad_input_is_a_400_and_creates_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.api_key_max_ttl = Duration::from_secs(3600);
        s.throttling.failures.per_session = crate::helpers::rate("3/h");
    })
    .await;
    let (_, token) = app.create_user("alice").await;
    let before = app.snapshot().await;
    create(&app, &token, json!({})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({
            "name": ["This field is required."],
            "current_password": ["This field is required."],
        }),
    );
    create(
        &app,
        &token,
        json!({ "name": "x".repeat(65), "expires_in": 3601, "scope": {"a": 1}, "current_password": PASSWORD }),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({
            "name": ["Ensure this field has no more than 64 characters."],
            "scope": ["Expected a list of items but got type \"dict\"."],
            "expires_in": ["Ensure this value is less than or equal to 3600."],
        }),
    );
    for (expires_in, message) in [
        (json!(0), "Ensure this value is greater than or equal to 1."),
        (json!("soon"), "A valid integer is required."),
        (json!(true), "A valid integer is required."),
    ] {
        create(
            &app,
            &token,
            json!({ "name": "bot", "expires_in": expires_in, "current_password": PASSWORD }),
        )
        .await
        .assert(StatusCode::BAD_REQUEST, json!({ "expires_in": [message] }));
    }
    // The name is quoted in the mail to the owner: it cannot bring lines of its own.
    for name in [
        "bot\n\nCreated by the security team: no action needed.",
        "bot\rmore",
        "bot\u{1b}[8m",
    ] {
        create(
            &app,
            &token,
            json!({ "name": name, "current_password": PASSWORD }),
        )
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({ "name": ["Control characters are not allowed."] }),
        );
    }
    create(
        &app,
        &token,
        json!({ "name": " ", "current_password": PASSWORD }),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({ "name": ["This field may not be blank."] }),
    );
    for _ in 0..3 {
        create(
            &app,
            &token,
            json!({ "name": "bot", "current_password": "wrong password" }),
        )
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({ "current_password": ["Invalid password."] }),
        );
    }
    let throttled = create(
        &app,
        &token,
        json!({ "name": "bot", "current_password": PASSWORD }),
    )
    .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    assert_eq!(app.snapshot().await, before, "nothing created");

    // A form body repeats `scope` for a list, as for groups and permissions.
    let (_, root) = app.create_superuser("root").await;
    let form = app
        .send(
            app.request(Method::POST, "/token/keys/")
                .header("Authorization", format!("Token {root}"))
                .form(&[
                    ("name", "form bot"),
                    ("scope", "auth.view_user"),
                    ("scope", "auth.view_group"),
                    ("expires_in", "60"),
                    ("current_password", PASSWORD),
                ]),
        )
        .await;
    let created = ok(&form, StatusCode::CREATED);
    assert_eq!(created["scope"], "auth.view_group auth.view_user");
}

/// A key lives `expires_in` seconds, then answers 401; it has no idle limit, while a login
/// token unused as long dies.
#[tokio::test]
async fn a_key_expires_but_never_idles_out() {
    let app = TestApp::spawn_with(|s| s.tokens.idle = Duration::from_secs(60)).await;
    let (id, token) = app.create_user("alice").await;
    let key = text(
        &ok(
            &create(
                &app,
                &token,
                json!({ "name": "bot", "expires_in": 3600, "current_password": PASSWORD }),
            )
            .await,
            StatusCode::CREATED,
        ),
        "key",
    );
    let other = app.token_for("alice", PASSWORD).await;
    app.exec(&format!(
        "UPDATE auth_session SET created = {}, last_used = NULL WHERE user_id = {id}",
        earlier(&app, "created")
    ))
    .await;
    app.exec(&format!(
        "UPDATE auth_token SET created = {} WHERE user_id = {id}",
        earlier(&app, "created")
    ))
    .await;
    app.state.auth.forget(&authd::auth::Invalidation::User(id));
    assert_eq!(me_with_key(&app, &key).await, StatusCode::OK);
    let login = app.call(Method::GET, "/users/me/", &other, None).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.text);

    for table in ["auth_token", "auth_session"] {
        app.exec(&format!(
            "UPDATE {table} SET expires_at = {} WHERE kind = 'api_key'",
            earlier(&app, "expires_at")
        ))
        .await;
    }
    app.state.auth.forget(&authd::auth::Invalidation::User(id));
    refused(
        &with_header(&app, "/users/me/", "X-API-Key", &key).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
    );
}

/// AUTHD_API_KEYS_PER_USER caps keys, even when many are created at once; keys neither count
/// toward AUTHD_TOKEN_LIMIT_PER_USER nor are evicted by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_limit_holds_under_concurrent_creations_and_logins_never_evict_keys() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.api_keys_per_user = 3;
        s.tokens.limit_per_user = 2;
    })
    .await;
    let (_, token) = app.create_user("alice").await;
    let replies = futures::future::join_all((0..8).map(|n| {
        let app = &app;
        let token = token.clone();
        async move {
            create(
                app,
                &token,
                json!({ "name": format!("bot {n}"), "current_password": PASSWORD }),
            )
            .await
        }
    }))
    .await;
    let created: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 3, "{replies:#?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        refused(
            reply,
            StatusCode::FORBIDDEN,
            "Maximum amount of API keys allowed per user exceeded.",
        );
    }
    assert_eq!(app.count("auth_session WHERE kind = 'api_key'").await, 3);

    // Two logins fill the token limit (the first one evicted), the keys stay.
    app.token_for("alice", PASSWORD).await;
    let latest = app.token_for("alice", PASSWORD).await;
    for reply in &created {
        assert_eq!(
            me_with_key(&app, &text(&reply.json(), "key")).await,
            StatusCode::OK
        );
    }
    let listed = ok(
        &app.call(Method::GET, "/token/keys/", &latest, None).await,
        StatusCode::OK,
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
}

/// `DELETE /token/keys/{id}/` ends the key at once; another user's key, or a login's session
/// id, is not found.
#[tokio::test]
async fn a_key_is_deleted_by_its_owner_only() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.create_user("alice").await;
    let (_, bob) = app.create_user("bob").await;
    let created = create_key(&app, &alice, "bot", None).await;
    let key = text(&created, "key");
    let path = format!("/token/keys/{}/", text(&created, "id"));
    let login_session = ok(
        &app.call(Method::GET, "/token/sessions/", &alice, None)
            .await,
        StatusCode::OK,
    )
    .as_array()
    .expect("a list")
    .iter()
    .find(|s| s["kind"] == "token")
    .map(|s| text(s, "id"))
    .expect("the login");

    refused(
        &app.call(Method::DELETE, &path, &bob, None).await,
        StatusCode::NOT_FOUND,
        "Not found.",
    );
    refused(
        &app.call(
            Method::DELETE,
            &format!("/token/keys/{login_session}/"),
            &alice,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "Not found.",
    );
    assert_eq!(me_with_key(&app, &key).await, StatusCode::OK);
    let deleted = app.call(Method::DELETE, &path, &alice, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(me_with_key(&app, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call(Method::GET, "/users/me/", &alice, None)
            .await
            .status,
        StatusCode::OK
    );
}

/// A voluntary `set_password` keeps keys (AUTHD_API_KEYS_SURVIVE_PASSWORD_CHANGE, the
/// default) while it ends other logins; with the setting off it ends them too.
#[tokio::test]
async fn keys_survive_set_password_unless_told_otherwise() {
    for survive in [true, false] {
        let app =
            TestApp::spawn_with(|s| s.tokens.api_keys_survive_password_change = survive).await;
        let (_, token) = app.create_user("alice").await;
        let other = app.token_for("alice", PASSWORD).await;
        let key = text(&create_key(&app, &token, "bot", None).await, "key");
        let changed = app
            .post_json(
                "/users/set_password/",
                json!({ "current_password": PASSWORD, "new_password": "a brand new secret 1" }),
                Some(&token),
            )
            .await;
        assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
        assert_eq!(
            app.call(Method::GET, "/users/me/", &other, None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let expected = match survive {
            true => StatusCode::OK,
            false => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(me_with_key(&app, &key).await, expected, "survive={survive}");
    }
}

/// A reset, `authd changepassword`, deactivation, deletion and `logoutall` always end keys.
#[tokio::test]
async fn resets_deactivation_deletion_and_logoutall_end_keys() {
    let (app, smtp) = crate::email::spawn(|_| {}).await;
    register_alice(&app).await;
    let token = app.token_for("alice", PASSWORD).await;
    let key = || async {
        let token = app.token_for("alice", PASSWORD).await;
        text(&create_key(&app, &token, "bot", None).await, "key")
    };

    let by_reset = key().await;
    app.post_json(
        "/users/reset_password/",
        json!({ "email": "alice@example.com" }),
        None,
    )
    .await;
    let (uid, link) = smtp
        .wait_for(2)
        .await
        .iter()
        .find(|mail| mail.subject().starts_with("Password reset"))
        .expect("the reset link")
        .uid_and_token();
    let reset = app
        .post_json(
            "/users/reset_password_confirm/",
            json!({ "uid": uid, "token": link, "new_password": PASSWORD }),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text);
    assert_eq!(me_with_key(&app, &by_reset).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let by_logoutall = key().await;
    let current = app.token_for("alice", PASSWORD).await;
    let ended = app
        .call(Method::POST, "/token/logoutall/", &current, None)
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me_with_key(&app, &by_logoutall).await,
        StatusCode::UNAUTHORIZED
    );

    // What `authd changepassword` and `authd deactivate` run (cli.rs tests the commands).
    let by_command = key().await;
    authd::accounts::change_password(&app.state, "alice", PASSWORD)
        .await
        .expect("changepassword");
    assert_eq!(
        me_with_key(&app, &by_command).await,
        StatusCode::UNAUTHORIZED
    );

    let by_deactivation = key().await;
    authd::accounts::deactivate(&app.state, "alice")
        .await
        .expect("deactivate");
    assert_eq!(
        me_with_key(&app, &by_deactivation).await,
        StatusCode::UNAUTHORIZED
    );
    authd::accounts::activate(&app.state, "alice")
        .await
        .expect("activate");

    let by_deletion = key().await;
    let current = app.token_for("alice", PASSWORD).await;
    let deleted = app
        .call(
            Method::DELETE,
            "/users/me/",
            &current,
            Some(json!({ "current_password": PASSWORD })),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(
        me_with_key(&app, &by_deletion).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.count("auth_session").await, 0);
}
