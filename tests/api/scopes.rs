//! Scoped tokens (OAuth2 `scope`, RFC 6749 §3.3): what a token may do is the scope it was
//! granted ∩ what its user holds now; its authority is that scope and nothing more (no staff
//! or superuser status, no groups, no account or admin routes); `invalid_scope` is answered only
//! after a right password.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::authz::{introspect, ok, resource_server};
use crate::helpers::{PASSWORD, Reply, TestApp};

const DENIED: &str = "You do not have permission to perform this action.";

async fn token(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    app.send(app.request(Method::POST, "/oauth/token").form(form))
        .await
}

async fn grant(app: &TestApp, username: &str, password: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token(app, &form).await
}

#[track_caller]
fn oauth_error(reply: &Reply, error: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], error, "{}", reply.text);
}

pub fn text(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_owned()
}

async fn create_permissions(app: &TestApp, root: &str, names: &[&str]) {
    for name in names {
        let (app_label, codename) = name.split_once('.').expect("app_label.codename");
        let reply = app
            .call(
                Method::POST,
                "/permissions/",
                root,
                Some(json!({ "app_label": app_label, "codename": codename, "name": *name })),
            )
            .await;
        ok(&reply, StatusCode::CREATED);
    }
}

pub async fn set_permissions(app: &TestApp, root: &str, user: i64, names: &[&str]) {
    let reply = app
        .call(
            Method::PUT,
            &format!("/users/{user}/permissions/"),
            root,
            Some(json!({ "permissions": names })),
        )
        .await;
    ok(&reply, StatusCode::OK);
}

/// alice holds blog.add_post and blog.view_post; blog.delete_post exists but is not hers.
pub async fn blog(app: &TestApp) -> (i64, String, (String, String)) {
    let (_, root) = app.create_superuser("root").await;
    create_permissions(
        app,
        &root,
        &["blog.add_post", "blog.view_post", "blog.delete_post"],
    )
    .await;
    let (alice, _) = app.create_user("alice").await;
    set_permissions(app, &root, alice, &["blog.add_post", "blog.view_post"]).await;
    let server = resource_server(app, &[]).await;
    (alice, root, server)
}

/// A scope narrows the token; taking a permission from the user narrows it further at once, and
/// granting it again brings it back. No scope: everything held, and no `scope` in the answer.
#[tokio::test]
async fn a_scope_narrows_and_a_revocation_narrows_further() {
    let app = TestApp::spawn().await;
    let (alice, root, server) = blog(&app).await;

    let unscoped = ok(&grant(&app, "alice", PASSWORD, None).await, StatusCode::OK);
    assert!(unscoped.get("scope").is_none(), "{unscoped}");
    let answer = introspect(&app, &server, &text(&unscoped, "access_token")).await;
    assert!(answer.get("scope").is_none(), "{answer}");
    assert_eq!(
        answer["permissions"],
        json!(["blog.add_post", "blog.view_post"])
    );

    // Sorted and deduplicated as stored.
    let pair = ok(
        &grant(
            &app,
            "alice",
            PASSWORD,
            Some("blog.view_post  blog.add_post blog.view_post"),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(pair["scope"], "blog.add_post blog.view_post");
    let narrow = ok(
        &grant(&app, "alice", PASSWORD, Some("blog.view_post")).await,
        StatusCode::OK,
    );
    assert_eq!(narrow["scope"], "blog.view_post");
    let access = text(&narrow, "access_token");
    let answer = introspect(&app, &server, &access).await;
    assert_eq!(answer["scope"], "blog.view_post");
    assert_eq!(answer["permissions"], json!(["blog.view_post"]));

    set_permissions(&app, &root, alice, &["blog.add_post"]).await;
    let answer = introspect(&app, &server, &access).await;
    assert_eq!(answer["scope"], "blog.view_post", "the stored scope stays");
    assert_eq!(answer["permissions"], json!([]));

    set_permissions(&app, &root, alice, &["blog.add_post", "blog.view_post"]).await;
    let answer = introspect(&app, &server, &access).await;
    assert_eq!(answer["permissions"], json!(["blog.view_post"]));
}

/// `invalid_scope` only after a right password: a wrong password with a bad scope is the usual
/// `invalid_grant`, so the grant never tells a stranger what a user holds; nothing is created.
#[tokio::test]
async fn invalid_scope_only_after_a_right_password() {
    let app = TestApp::spawn().await;
    blog(&app).await;
    let sessions = app.count("auth_session").await;
    let tokens = app.count("auth_token").await;

    for scope in ["blog.delete_post", "blog.nonexistent", "blog.add_post nope"] {
        oauth_error(
            &grant(&app, "alice", "wrong password", Some(scope)).await,
            "invalid_grant",
        );
        oauth_error(
            &grant(&app, "alice", PASSWORD, Some(scope)).await,
            "invalid_scope",
        );
    }
    assert_eq!(app.count("auth_session").await, sessions);
    assert_eq!(app.count("auth_token").await, tokens);
}

/// A refresh keeps or narrows the scope, never widens it (nor, unscoped, beyond what is held);
/// a refused refresh changes nothing, its refresh token still works.
#[tokio::test]
async fn a_refresh_keeps_or_narrows_the_scope() {
    let app = TestApp::spawn().await;
    let (_, _, server) = blog(&app).await;
    let refresh = |refresh_token: String, scope: Option<&'static str>| {
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope.to_owned()));
            }
            app.send(app.request(Method::POST, "/oauth/token").form(&form))
                .await
        }
    };

    let pair = ok(
        &grant(
            &app,
            "alice",
            PASSWORD,
            Some("blog.add_post blog.view_post"),
        )
        .await,
        StatusCode::OK,
    );
    let kept = ok(
        &refresh(text(&pair, "refresh_token"), None).await,
        StatusCode::OK,
    );
    assert_eq!(kept["scope"], "blog.add_post blog.view_post");

    let widened = refresh(text(&kept, "refresh_token"), Some("blog.delete_post")).await;
    oauth_error(&widened, "invalid_scope");
    let narrowed = ok(
        &refresh(text(&kept, "refresh_token"), Some("blog.add_post")).await,
        StatusCode::OK,
    );
    assert_eq!(narrowed["scope"], "blog.add_post");
    let answer = introspect(&app, &server, &text(&narrowed, "access_token")).await;
    assert_eq!(answer["permissions"], json!(["blog.add_post"]));
    // The family's earlier access token is narrowed with it.
    let answer = introspect(&app, &server, &text(&kept, "access_token")).await;
    assert_eq!(answer["permissions"], json!(["blog.add_post"]));
    oauth_error(
        &refresh(text(&narrowed, "refresh_token"), Some("blog.view_post")).await,
        "invalid_scope",
    );

    let unscoped = ok(&grant(&app, "alice", PASSWORD, None).await, StatusCode::OK);
    oauth_error(
        &refresh(text(&unscoped, "refresh_token"), Some("blog.delete_post")).await,
        "invalid_scope",
    );
    let scoped = ok(
        &refresh(text(&unscoped, "refresh_token"), Some("blog.view_post")).await,
        StatusCode::OK,
    );
    assert_eq!(scoped["scope"], "blog.view_post");
}

/// A client limited to a set: without `scope` a grant gets the set ∩ what the user holds; a
/// `scope` beyond the set is `invalid_scope`; an unknown name in `--scope` is refused.
#[tokio::test]
async fn a_clients_scope_set_limits_its_grants() {
    let app = TestApp::spawn().await;
    let (_, _, server) = blog(&app).await;
    let limited = resource_server(&app, &["blog.view_post", "blog.delete_post"]).await;
    let through = |scope: Option<&'static str>| {
        let app = &app;
        let limited = limited.clone();
        async move {
            let mut form = vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            app.send(
                app.request(Method::POST, "/oauth/token")
                    .basic_auth(&limited.0, Some(&limited.1))
                    .form(&form),
            )
            .await
        }
    };

    let pair = ok(&through(None).await, StatusCode::OK);
    assert_eq!(pair["scope"], "blog.view_post");
    let answer = introspect(&app, &server, &text(&pair, "access_token")).await;
    assert_eq!(answer["permissions"], json!(["blog.view_post"]));
    oauth_error(&through(Some("blog.add_post")).await, "invalid_scope");
    let pair = ok(&through(Some("blog.view_post")).await, StatusCode::OK);
    assert_eq!(pair["scope"], "blog.view_post");

    let output = app
        .command(&["client", "create", "Bad", "--scope", "blog.nonexistent"])
        .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no such permission: blog.nonexistent"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A scoped superuser token's authority is its scope: no superuser or staff status, no groups,
/// only the scope's permissions; account and admin routes are 403 before any body is read,
/// while reading `/users/me/` works; forward auth shows the scope and refuses beyond it.
#[tokio::test]
async fn a_scoped_superuser_token_is_no_superuser() {
    let app = TestApp::spawn().await;
    let (root_id, root) = app.create_superuser("boss").await;
    create_permissions(&app, &root, &["blog.add_post", "blog.view_post"]).await;
    let reply = app
        .call(
            Method::POST,
            "/groups/",
            &root,
            Some(json!({ "name": "editors" })),
        )
        .await;
    ok(&reply, StatusCode::CREATED);
    let reply = app
        .call(
            Method::PUT,
            &format!("/users/{root_id}/groups/"),
            &root,
            Some(json!({ "groups": ["editors"] })),
        )
        .await;
    ok(&reply, StatusCode::OK);
    let server = resource_server(&app, &[]).await;

    let unscoped = ok(&grant(&app, "boss", PASSWORD, None).await, StatusCode::OK);
    let answer = introspect(&app, &server, &text(&unscoped, "access_token")).await;
    assert_eq!(answer["is_superuser"], true);
    assert_eq!(answer["groups"], json!(["editors"]));

    let pair = ok(
        &grant(&app, "boss", PASSWORD, Some("blog.add_post")).await,
        StatusCode::OK,
    );
    let access = text(&pair, "access_token");
    let answer = introspect(&app, &server, &access).await;
    assert_eq!(answer["is_superuser"], false, "{answer}");
    assert_eq!(answer["is_staff"], false, "{answer}");
    assert_eq!(answer["groups"], json!([]));
    assert_eq!(answer["permissions"], json!(["blog.add_post"]));
    assert_eq!(answer["scope"], "blog.add_post");
    oauth_error(
        &grant(&app, "boss", PASSWORD, Some("blog.unknown")).await,
        "invalid_scope",
    );

    let bearer = |method: Method, path: &str| app.request(method, path).bearer_auth(&access);
    let me = app.send(bearer(Method::GET, "/users/me/")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let users = app.send(bearer(Method::GET, "/users/")).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.text);

    let before = app.snapshot().await;
    // A malformed body would be a 400: the 403 comes first.
    for (method, path) in [
        (Method::PATCH, "/users/me/"),
        (Method::PUT, "/users/me/"),
        (Method::DELETE, "/users/me/"),
        (Method::PATCH, &*format!("/users/{root_id}/")),
        (Method::POST, "/users/set_password/"),
        (Method::POST, "/users/set_username/"),
        (Method::POST, "/token/logoutall/"),
        (Method::POST, "/groups/"),
        (Method::PUT, &*format!("/users/{root_id}/permissions/")),
    ] {
        let reply = app
            .send(
                bearer(method.clone(), path)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
        reply.assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
    }
    for (method, path) in [
        (Method::GET, "/token/sessions/"),
        (Method::DELETE, "/token/sessions/0123/"),
        (Method::GET, "/groups/"),
        (Method::GET, "/permissions/"),
        (Method::GET, &*format!("/users/{root_id}/roles/")),
    ] {
        let reply = app.send(bearer(method.clone(), path)).await;
        reply.assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request changed nothing"
    );
    // The unscoped token still reaches them.
    let reply = app.call(Method::GET, "/groups/", &root, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let verified = app.send(bearer(Method::GET, "/token/verify/")).await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT, "{}", verified.text);
    assert_eq!(verified.header("x-authd-scope"), Some("blog.add_post"));
    assert_eq!(verified.header("x-authd-groups"), Some(""));
    let within = app
        .send(bearer(
            Method::GET,
            "/token/verify/?permission=blog.add_post",
        ))
        .await;
    assert_eq!(within.status, StatusCode::NO_CONTENT, "{}", within.text);
    let beyond = app
        .send(bearer(
            Method::GET,
            "/token/verify/?permission=blog.view_post",
        ))
        .await;
    assert_eq!(beyond.status, StatusCode::FORBIDDEN, "{}", beyond.text);
}
