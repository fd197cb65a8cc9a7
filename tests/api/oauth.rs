//! OAuth2 beside Djoser: the password and refresh grants, rotation with reuse detection and its
//! grace window, revocation, introspection, registered clients.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp};

async fn token(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    app.send(app.request(Method::POST, "/oauth/token").form(form))
        .await
}

async fn password_grant(app: &TestApp) -> Value {
    let reply = token(
        app,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

fn field(pair: &Value, name: &str) -> String {
    pair[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {pair}"))
        .to_owned()
}

async fn me_bearer(app: &TestApp, access: &str) -> StatusCode {
    app.send(app.request(Method::GET, "/users/me/").bearer_auth(access))
        .await
        .status
}

#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json()["error"], error, "{}", reply.text);
    assert!(
        reply.json()["error_description"].is_string(),
        "{}",
        reply.text
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

/// Log in, use, refresh, and reuse the old refresh token after the grace period: the family dies.
#[tokio::test]
async fn the_oauth2_loop_login_use_refresh_and_reuse() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(1)).await;
    app.register("alice", PASSWORD).await;
    let reply = token(
        &app,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    reply.assert_media_json();
    let pair = reply.json();
    let mut keys: Vec<&str> = pair
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let (a1, r1) = (field(&pair, "access_token"), field(&pair, "refresh_token"));
    assert!(a1.starts_with("authd_") && r1.starts_with("authd_"));

    assert_eq!(me_bearer(&app, &a1).await, StatusCode::OK);
    assert_eq!(
        app.call(Method::GET, "/users/me/", &a1, None).await.status,
        StatusCode::OK,
        "Token works too"
    );
    assert_eq!(
        me_bearer(&app, &r1).await,
        StatusCode::UNAUTHORIZED,
        "a refresh token is no access token"
    );

    let rotated = refresh(&app, &r1).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let pair = rotated.json();
    let (a2, r2) = (field(&pair, "access_token"), field(&pair, "refresh_token"));
    assert_ne!(r1, r2);
    assert_eq!(me_bearer(&app, &a2).await, StatusCode::OK);
    assert_eq!(
        me_bearer(&app, &a1).await,
        StatusCode::OK,
        "rotation leaves the old access token to expire"
    );
    let sessions = app
        .call(Method::GET, "/token/sessions/", &a2, None)
        .await
        .json();
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(1),
        "one family, one session"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &refresh(&app, &r1).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    for access in [&a1, &a2] {
        assert_eq!(
            me_bearer(&app, access).await,
            StatusCode::UNAUTHORIZED,
            "the family is revoked"
        );
    }
    assert_error(
        &refresh(&app, &r2).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(app.count("auth_session").await, 0);
}

/// Within the grace period, a retried refresh (the client lost the first answer) gets a new pair
/// that works and rotates on; what the first rotation minted is retired.
#[tokio::test]
async fn a_refresh_retried_within_the_grace_period_gets_a_new_pair() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let r0 = field(&password_grant(&app).await, "refresh_token");
    let first = refresh(&app, &r0).await.json();
    let a1 = field(&first, "access_token");
    let retried = refresh(&app, &r0).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    let second = retried.json();
    let (a2, r2) = (
        field(&second, "access_token"),
        field(&second, "refresh_token"),
    );
    assert_eq!(me_bearer(&app, &a1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_bearer(&app, &a2).await,
        StatusCode::OK,
        "the family lives on"
    );
    let third = refresh(&app, &r2).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text);
    let a3 = field(&third.json(), "access_token");
    assert_eq!(me_bearer(&app, &a3).await, StatusCode::OK);
}

/// A thief replays a stolen refresh token just after its owner rotated it, inside the grace
/// window: the thief gets a pair, and the owner's pair is retired, not deleted. The owner's next
/// refresh is then a reuse: the whole family dies, the thief's tokens with it.
#[tokio::test]
async fn a_replay_inside_the_grace_window_then_the_owners_refresh_kills_the_family() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let grant = password_grant(&app).await;
    let (a0, r0) = (
        field(&grant, "access_token"),
        field(&grant, "refresh_token"),
    );
    let owner = refresh(&app, &r0).await.json();
    let (a1, r1) = (
        field(&owner, "access_token"),
        field(&owner, "refresh_token"),
    );
    let thief = refresh(&app, &r0).await;
    assert_eq!(thief.status, StatusCode::OK, "{}", thief.text);
    let (a2, r2) = (
        field(&thief.json(), "access_token"),
        field(&thief.json(), "refresh_token"),
    );
    assert_eq!(me_bearer(&app, &a2).await, StatusCode::OK, "for now");
    assert_eq!(
        me_bearer(&app, &a1).await,
        StatusCode::UNAUTHORIZED,
        "the owner's pair is retired"
    );
    assert_error(
        &refresh(&app, &r1).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    for access in [&a0, &a1, &a2] {
        assert_eq!(
            me_bearer(&app, access).await,
            StatusCode::UNAUTHORIZED,
            "the family is revoked"
        );
    }
    assert_error(
        &refresh(&app, &r2).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(app.count("auth_session").await, 0);
}

/// The owner and the thief cannot take turns: a token retired by a grace re-rotation gets no
/// grace of its own, even presented at once, so neither side can win the family back inside
/// successive windows; the first to try revokes it.
#[tokio::test]
async fn a_token_retired_by_a_grace_rotation_has_no_grace_of_its_own() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::from_secs(60)).await;
    app.register("alice", PASSWORD).await;
    let r0 = field(&password_grant(&app).await, "refresh_token");
    let thief = refresh(&app, &r0).await.json();
    let owner = refresh(&app, &r0).await.json();
    assert_eq!(
        me_bearer(&app, &field(&owner, "access_token")).await,
        StatusCode::OK
    );
    assert_error(
        &refresh(&app, &field(&thief, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        me_bearer(&app, &field(&owner, "access_token")).await,
        StatusCode::UNAUTHORIZED,
        "the family is revoked"
    );
    assert_error(
        &refresh(&app, &r0).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

/// Two tabs of one browser refresh with the same token at once: both get a pair, and exactly one
/// pair works (the later rotation retired the earlier). When the tab holding the retired pair
/// refreshes, that is a reuse: the family ends for both tabs, and the user logs in again. Tabs
/// that share one token store and refresh one at a time never get there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tabs_refreshing_at_once_keep_one_pair_and_lose_the_family_on_the_others_refresh() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    for _ in 0..5 {
        let r0 = field(&password_grant(&app).await, "refresh_token");
        let (left, right) = tokio::join!(refresh(&app, &r0), refresh(&app, &r0));
        assert_eq!(
            (left.status, right.status),
            (StatusCode::OK, StatusCode::OK),
            "{} {}",
            left.text,
            right.text
        );
        let mut working = Vec::new();
        let mut retired = Vec::new();
        for pair in [left.json(), right.json()] {
            match me_bearer(&app, &field(&pair, "access_token")).await {
                StatusCode::OK => working.push(pair),
                _ => retired.push(pair),
            }
        }
        assert_eq!(
            (working.len(), retired.len()),
            (1, 1),
            "one pair works: {working:?} {retired:?}"
        );
        assert_error(
            &refresh(&app, &field(&retired[0], "refresh_token")).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        );
        let after = me_bearer(&app, &field(&working[0], "access_token")).await;
        if after != StatusCode::UNAUTHORIZED {
            // This failed once in ~1000 runs under load; the rows left say which layer kept
            // the family: the database (the reuse revoked nothing) or the guard's memory.
            panic!(
                "the family is revoked: {after}; left in the database: {}",
                rows_left(&app).await
            );
        }
    }
    assert_eq!(app.count("auth_session").await, 0);
}

/// Every session and token row, for a failure message.
async fn rows_left(app: &TestApp) -> String {
    use authd::store::entity::{auth_session, auth_token};
    use sea_orm::EntityTrait;
    let sessions = auth_session::Entity::find()
        .all(app.db())
        .await
        .expect("sessions");
    let tokens = auth_token::Entity::find()
        .all(app.db())
        .await
        .expect("tokens");
    let sessions: Vec<i64> = sessions.iter().map(|s| s.id).collect();
    let tokens: Vec<String> = tokens
        .iter()
        .map(|t| {
            format!(
                "token {} {:?} of session {:?}, retired {:?}, superseded {}",
                t.id, t.kind, t.session_id, t.retired_at, t.superseded
            )
        })
        .collect();
    format!("sessions {sessions:?}, {tokens:?}")
}

/// With no grace, one of several concurrent refreshes with one token wins; the others are
/// reuse, and the family dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_without_grace_kill_the_family() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::ZERO).await;
    app.register("alice", PASSWORD).await;
    let r0 = field(&password_grant(&app).await, "refresh_token");
    let replies = futures::future::join_all((0..8).map(|_| refresh(&app, &r0))).await;
    let winners: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "{replies:#?}");
    for loser in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_error(loser, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let access = field(&winners[0].json(), "access_token");
    assert_eq!(
        me_bearer(&app, &access).await,
        StatusCode::UNAUTHORIZED,
        "the family died"
    );
    assert_eq!(app.count("auth_session").await, 0);
}

/// A family lives at most REFRESH_TOKEN_TTL from its password grant; rotation never extends it.
#[tokio::test]
async fn rotation_never_extends_the_family() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.refresh_ttl = Duration::from_secs(2);
        s.tokens.access_ttl = Duration::from_secs(60);
    })
    .await;
    app.register("alice", PASSWORD).await;
    let pair = password_grant(&app).await;
    assert!(
        pair["expires_in"].as_u64().is_some_and(|s| s <= 2),
        "capped by the family: {pair}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rotated = refresh(&app, &field(&pair, "refresh_token")).await.json();
    assert!(
        rotated["expires_in"].as_u64().is_some_and(|s| s <= 1),
        "{rotated}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &refresh(&app, &field(&rotated, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        me_bearer(&app, &field(&rotated, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Logout with an access token ends its whole family; RFC 7009 revocation ends any session.
#[tokio::test]
async fn logout_and_revocation_end_whole_sessions() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let pair = password_grant(&app).await;
    let logout = app
        .send(
            app.request(Method::POST, "/token/logout/")
                .bearer_auth(field(&pair, "access_token")),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_error(
        &refresh(&app, &field(&pair, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    let pair = password_grant(&app).await;
    let djoser = app.token_for("alice", PASSWORD).await;
    for revoked in [
        field(&pair, "refresh_token"),
        djoser.clone(),
        "authd_unknown".into(),
    ] {
        let reply = app
            .send(
                app.request(Method::POST, "/oauth/revoke")
                    .form(&[("token", revoked.as_str())]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(reply.text.is_empty());
    }
    assert_eq!(
        me_bearer(&app, &field(&pair, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::GET, "/users/me/", &djoser, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        &app.send(
            app.request(Method::POST, "/oauth/revoke")
                .form(&[("token_type_hint", "access_token")]),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

/// The token endpoint's errors are RFC 6749's.
#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let before = app.snapshot().await;
    assert_error(
        &token(&app, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &token(&app, &[("grant_type", "client_credentials")]).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );
    assert_error(
        &token(&app, &[("grant_type", "password"), ("username", "alice")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &token(
            &app,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong one"),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_error(
        &refresh(&app, "authd_not_a_refresh_token").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(app.snapshot().await, before, "nothing changed");
    let wrong_method = app.send(app.request(Method::GET, "/oauth/token")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json()["error"], "invalid_request");
    let json = app
        .send(
            app.request(Method::POST, "/oauth/token/").json(
                &json!({"grant_type": "password", "username": "alice", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(
        json.status,
        StatusCode::OK,
        "JSON and the trailing slash work: {}",
        json.text
    );
    let options = app.send(app.request(Method::OPTIONS, "/oauth/token")).await;
    assert_eq!(options.status, StatusCode::OK);
    assert_eq!(options.header("allow"), Some("POST, OPTIONS"));
}

/// Registers a client through the binary, as an operator would; returns its JSON line.
async fn create_client(app: &TestApp, args: &[&str]) -> Value {
    let mut command = vec!["client", "create"];
    command.extend_from_slice(args);
    let output = app.command(&command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

/// Clients: a public one names itself, a confidential one proves its secret; an unknown or
/// unproven one is refused with 401, empty Basic credentials count as none.
#[tokio::test]
async fn client_authentication_at_the_token_endpoint() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let public = create_client(&app, &["Mobile app", "--public"]).await;
    assert!(public["client_secret"].is_null());
    let confidential = create_client(&app, &["Web backend"]).await;
    let (id, secret) = (
        field(&confidential, "client_id"),
        field(&confidential, "client_secret"),
    );
    assert!(secret.len() >= 43, "256 bits");
    assert_eq!(
        app.count(&format!(
            "oauth_client WHERE secret_digest = '{}'",
            authd::crypto::token_digest(&secret)
        ))
        .await,
        1,
        "only the digest is stored"
    );
    let grant = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let with_basic = |user: &str, pass: &str| {
        app.send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(user, Some(pass))
                .form(&grant),
        )
    };

    let swagger_default = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .header("Authorization", "Basic Og==")
                .form(&grant),
        )
        .await;
    assert_eq!(
        swagger_default.status,
        StatusCode::OK,
        "empty Basic is no client: {}",
        swagger_default.text
    );
    assert_eq!(with_basic(&id, &secret).await.status, StatusCode::OK);
    let mut by_id = grant.to_vec();
    let public_id = field(&public, "client_id");
    by_id.push(("client_id", &public_id));
    let public_grant = token(&app, &by_id).await;
    assert_eq!(public_grant.status, StatusCode::OK, "{}", public_grant.text);

    for refused in [
        with_basic(&id, "wrong secret").await,
        with_basic("authd-client-unknown", "x").await,
        with_basic(&public_id, "a secret it does not have").await,
        token(
            &app,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("client_id", "nobody"),
            ],
        )
        .await,
        token(
            &app,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("client_id", id.as_str()),
            ],
        )
        .await,
    ] {
        assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            refused
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic"))
        );
    }
    let twice = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(&id, Some(&secret))
                .form(&by_id),
        )
        .await;
    assert_error(&twice, StatusCode::BAD_REQUEST, "invalid_request");

    // A refresh token is bound to the client it was issued to.
    let refresh_token = field(&public_grant.json(), "refresh_token");
    assert_error(
        &refresh(&app, &refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let mut bound = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    bound.push(("client_id", &public_id));
    assert_eq!(token(&app, &bound).await.status, StatusCode::OK);

    let sessions = app
        .send(
            app.request(Method::GET, "/token/sessions/")
                .bearer_auth(field(&swagger_default.json(), "access_token")),
        )
        .await
        .json();
    let names: Vec<&str> = sessions
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Web backend") && names.contains(&"Mobile app"),
        "{names:?}"
    );
}

async fn introspect(app: &TestApp, client: Option<(&str, &str)>, token: &str) -> Reply {
    let mut request = app
        .request(Method::POST, "/oauth/introspect")
        .form(&[("token", token)]);
    if let Some((id, secret)) = client {
        request = request.basic_auth(id, Some(secret));
    }
    app.send(request).await
}

#[track_caller]
fn assert_uncached(reply: &Reply) {
    assert_eq!(
        (reply.header("cache-control"), reply.header("pragma")),
        (Some("no-store"), Some("no-cache")),
        "{reply:?}"
    );
}

/// Introspection: for confidential clients; access and Djoser tokens are `Bearer` tokens
/// (RFC 6749 §7.1), `token_use` tells which kind; inactive is just `{"active": false}`; no
/// answer may be cached.
#[tokio::test]
async fn introspection_answers_registered_resource_servers() {
    let app = TestApp::spawn().await;
    let (id, djoser) = app.create_user("alice").await;
    let server = create_client(&app, &["Orders service"]).await;
    let public = create_client(&app, &["Phone", "--public"]).await;
    let (client_id, secret) = (field(&server, "client_id"), field(&server, "client_secret"));
    let rs = Some((client_id.as_str(), secret.as_str()));
    let pair = app
        .send(app.request(Method::POST, "/oauth/token").form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", &field(&public, "client_id")),
        ]))
        .await
        .json();

    let access = introspect(&app, rs, &field(&pair, "access_token")).await;
    assert_eq!(access.status, StatusCode::OK, "{}", access.text);
    assert_uncached(&access);
    let body = access.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], id.to_string());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["token_use"], "access_token");
    assert_eq!(body["client_id"], field(&public, "client_id"));
    assert_eq!(body["is_staff"], false);
    let (iat, exp) = (
        body["iat"].as_i64().expect("iat"),
        body["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 900);
    let djoser_answer = introspect(&app, rs, &djoser).await.json();
    assert_eq!(
        (
            djoser_answer["token_type"].clone(),
            djoser_answer["token_use"].clone()
        ),
        (json!("Bearer"), json!("token"))
    );
    assert!(djoser_answer.get("client_id").is_none(), "{djoser_answer}");
    for inactive in ["authd_unknown", "garbage", ""] {
        let reply = introspect(&app, rs, inactive).await;
        if inactive.is_empty() {
            assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
        } else {
            reply.assert(StatusCode::OK, json!({"active": false}));
            assert_uncached(&reply);
        }
    }
    app.call(Method::POST, "/token/logout/", &djoser, None)
        .await;
    introspect(&app, rs, &djoser)
        .await
        .assert(StatusCode::OK, json!({"active": false}));

    for refused in [
        introspect(&app, None, &field(&pair, "access_token")).await,
        introspect(
            &app,
            Some((client_id.as_str(), "wrong")),
            &field(&pair, "access_token"),
        )
        .await,
        introspect(
            &app,
            Some((&field(&public, "client_id"), "")),
            &field(&pair, "access_token"),
        )
        .await,
    ] {
        assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            refused
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Basic"))
        );
    }
}

/// A refresh token is never vouched for to a resource server: resource servers that check
/// only `active` (mod_auth_openidc with `Require valid-user`) would take it as a Bearer token.
/// It is inactive to every client but the one it was issued to, and to all when it was issued
/// to none; its own client learns it is a refresh token, with no `token_type`.
#[tokio::test]
async fn a_refresh_token_is_inactive_to_every_client_but_its_own() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let server = create_client(&app, &["Orders service"]).await;
    let backend = create_client(&app, &["Web backend"]).await;
    let public = create_client(&app, &["Phone", "--public"]).await;
    let rs = (field(&server, "client_id"), field(&server, "client_secret"));
    let web = (
        field(&backend, "client_id"),
        field(&backend, "client_secret"),
    );
    let grant = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let through_public = token(
        &app,
        &[
            grant.as_slice(),
            &[("client_id", &field(&public, "client_id"))],
        ]
        .concat(),
    )
    .await
    .json();
    let through_web = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(&web.0, Some(&web.1))
                .form(&grant),
        )
        .await
        .json();
    let through_none = password_grant(&app).await;
    for (refresh_token, asker) in [
        (field(&through_public, "refresh_token"), &rs),
        (field(&through_web, "refresh_token"), &rs),
        (field(&through_none, "refresh_token"), &rs),
        (field(&through_none, "refresh_token"), &web),
    ] {
        let reply = introspect(&app, Some((&asker.0, &asker.1)), &refresh_token).await;
        reply.assert(StatusCode::OK, json!({"active": false}));
        assert_uncached(&reply);
    }
    let own = introspect(
        &app,
        Some((&web.0, &web.1)),
        &field(&through_web, "refresh_token"),
    )
    .await
    .json();
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["token_use"], "refresh_token");
    assert!(own.get("token_type").is_none(), "{own}");
    assert_eq!(own["client_id"], web.0);
    let access = introspect(
        &app,
        Some((&rs.0, &rs.1)),
        &field(&through_web, "access_token"),
    )
    .await
    .json();
    assert_eq!(
        (access["active"].clone(), access["token_use"].clone()),
        (json!(true), json!("access_token")),
        "access tokens are for every resource server"
    );
}

async fn revoke(
    app: &TestApp,
    client: Option<(&str, Option<&str>)>,
    body: &[(&str, &str)],
) -> Reply {
    let mut request = app.request(Method::POST, "/oauth/revoke").form(body);
    if let Some((id, secret)) = client {
        request = request.basic_auth(id, secret);
    }
    app.send(request).await
}

/// RFC 7009 §2.1: credentials that are sent are checked first, known token or not; a token
/// issued to a confidential client is revoked only with that client's credentials, one issued
/// to a public client only with its `client_id`; a refused revocation changes nothing. Tokens
/// issued to no client stay revocable by whoever holds them.
#[tokio::test]
async fn revocation_needs_the_client_the_token_was_issued_to() {
    let app = TestApp::spawn().await;
    let (_, djoser) = app.create_user("alice").await;
    let web = create_client(&app, &["Web backend"]).await;
    let other = create_client(&app, &["Orders service"]).await;
    let phone = create_client(&app, &["Phone", "--public"]).await;
    let tablet = create_client(&app, &["Tablet", "--public"]).await;
    let (web_id, web_secret) = (field(&web, "client_id"), field(&web, "client_secret"));
    let (other_id, other_secret) = (field(&other, "client_id"), field(&other, "client_secret"));
    let (phone_id, tablet_id) = (field(&phone, "client_id"), field(&tablet, "client_id"));
    let grant = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let through_web = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(&web_id, Some(&web_secret))
                .form(&grant),
        )
        .await
        .json();
    let through_phone = token(
        &app,
        &[grant.as_slice(), &[("client_id", &phone_id)]].concat(),
    )
    .await
    .json();
    let sessions = app.count("auth_session").await;

    for bad in [
        revoke(
            &app,
            Some((&web_id, Some("wrong"))),
            &[("token", "authd_unknown")],
        )
        .await,
        revoke(
            &app,
            Some(("authd-client-nobody", Some("x"))),
            &[("token", &djoser)],
        )
        .await,
        revoke(
            &app,
            Some((&phone_id, Some("a secret it has not"))),
            &[("token", &djoser)],
        )
        .await,
        revoke(
            &app,
            None,
            &[
                ("token", djoser.as_str()),
                ("client_id", "authd-client-nobody"),
            ],
        )
        .await,
    ] {
        assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let web_refresh = field(&through_web, "refresh_token");
    let web_access = field(&through_web, "access_token");
    for refused in [
        revoke(&app, None, &[("token", &web_refresh)]).await,
        revoke(&app, None, &[("token", &web_access)]).await,
        revoke(
            &app,
            Some((&other_id, Some(&other_secret))),
            &[("token", &web_refresh)],
        )
        .await,
        revoke(
            &app,
            None,
            &[("token", web_refresh.as_str()), ("client_id", &phone_id)],
        )
        .await,
    ] {
        assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            refused
                .header("www-authenticate")
                .is_some_and(|h| h == "Basic realm=\"authd\"")
        );
    }
    let phone_refresh = field(&through_phone, "refresh_token");
    assert_error(
        &revoke(&app, None, &[("token", &phone_refresh)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    for refused in [
        revoke(
            &app,
            None,
            &[("token", phone_refresh.as_str()), ("client_id", &tablet_id)],
        )
        .await,
        revoke(
            &app,
            Some((&web_id, Some(&web_secret))),
            &[("token", &phone_refresh)],
        )
        .await,
    ] {
        assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    assert_eq!(
        app.count("auth_session").await,
        sessions,
        "nothing was revoked"
    );
    assert_eq!(me_bearer(&app, &web_access).await, StatusCode::OK);

    let revoked = revoke(
        &app,
        Some((&web_id, Some(&web_secret))),
        &[("token", &web_access)],
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(me_bearer(&app, &web_access).await, StatusCode::UNAUTHORIZED);
    let revoked = revoke(
        &app,
        None,
        &[("token", phone_refresh.as_str()), ("client_id", &phone_id)],
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_error(
        &token(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &phone_refresh),
                ("client_id", &phone_id),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    let plain = password_grant(&app).await;
    let by_anyone = revoke(&app, None, &[("token", &field(&plain, "refresh_token"))]).await;
    assert_eq!(by_anyone.status, StatusCode::OK, "{}", by_anyone.text);
    let with_a_client = revoke(
        &app,
        Some((&other_id, Some(&other_secret))),
        &[("token", &djoser)],
    )
    .await;
    assert_eq!(
        with_a_client.status,
        StatusCode::OK,
        "{}",
        with_a_client.text
    );
    assert_eq!(
        app.call(Method::GET, "/users/me/", &djoser, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    for unknown in [
        revoke(&app, None, &[("token", "authd_unknown")]).await,
        revoke(
            &app,
            Some((&web_id, Some(&web_secret))),
            &[("token", "authd_unknown")],
        )
        .await,
    ] {
        assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.text);
    }
    assert_eq!(app.count("auth_session").await, 0);
}

/// Deleting a client ends the sessions minted through it; listing shows what is left.
#[tokio::test]
async fn deleting_a_client_ends_its_sessions() {
    let app = TestApp::spawn().await;
    app.register("alice", PASSWORD).await;
    let public = create_client(&app, &["Phone", "--public"]).await;
    let public_id = field(&public, "client_id");
    let pair = token(
        &app,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", &public_id),
        ],
    )
    .await
    .json();
    let access = field(&pair, "access_token");
    assert_eq!(me_bearer(&app, &access).await, StatusCode::OK, "cached");
    let listed = app.command(&["client", "list"]).await;
    let line: Value = serde_json::from_slice(&listed.stdout).expect("a JSON line");
    assert_eq!(
        (line["client_id"].clone(), line["public"].clone()),
        (json!(public_id), json!(true))
    );
    let deleted = app.command(&["client", "delete", &public_id]).await;
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let started = std::time::Instant::now();
    while me_bearer(&app, &access).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the running instance still trusts it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !app.command(&["client", "delete", &public_id])
            .await
            .status
            .success()
    );
}

/// Two instances on PostgreSQL: a revocation on one is refused on the other within 500 ms.
#[tokio::test]
async fn a_revocation_reaches_the_other_instance_within_500_ms() {
    if !crate::helpers::on_postgres("instances share a database") {
        return;
    }
    let first = TestApp::spawn_with(|s| s.tokens.refresh_reuse_grace = Duration::ZERO).await;
    let second = first.sibling().await;
    first.register("alice", PASSWORD).await;
    let pair = password_grant(&first).await;
    let access = field(&pair, "access_token");
    let r0 = field(&pair, "refresh_token");
    assert_eq!(
        me_bearer(&second, &access).await,
        StatusCode::OK,
        "cached on the second"
    );
    refresh(&first, &r0).await;
    assert_error(
        &refresh(&first, &r0).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let revoked = std::time::Instant::now();
    while me_bearer(&second, &access).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked.elapsed() < Duration::from_millis(500),
            "the second still trusts its memory"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Introspection is not a use of the token: a resource server polling authd must not keep an
/// idle token alive against the idle limit; only the token's own requests do.
#[tokio::test]
async fn introspection_does_not_keep_an_idle_token_alive() {
    let app = TestApp::spawn_with(|s| s.tokens.idle = Duration::from_secs(3)).await;
    let (_, djoser) = app.create_user("alice").await;
    let server = create_client(&app, &["Orders service"]).await;
    let (id, secret) = (field(&server, "client_id"), field(&server, "client_secret"));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let answer = introspect(&app, Some((&id, &secret)), &djoser).await;
        if answer.json()["active"] == false {
            break;
        }
    }
    // Idleness is counted in whole seconds: more than 3 means at least 4.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    introspect(&app, Some((&id, &secret)), &djoser)
        .await
        .assert(StatusCode::OK, json!({"active": false}));
    assert_eq!(
        app.call(Method::GET, "/users/me/", &djoser, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// The purge deletes expired tokens and families, and keeps retired refresh tokens as long
/// as their family lives (reuse detection needs them).
#[tokio::test]
async fn the_purge_removes_expired_tokens_and_families() {
    let app = TestApp::spawn_with(|s| {
        s.maintenance.purge_interval = Duration::from_millis(200);
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.refresh_ttl = Duration::from_secs(5);
        s.tokens.ttl = Duration::from_secs(3);
    })
    .await;
    app.register("alice", PASSWORD).await;
    app.token_for("alice", PASSWORD).await;
    let pair = password_grant(&app).await;
    let rotated = refresh(&app, &field(&pair, "refresh_token")).await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(
        app.count("auth_token").await,
        5,
        "login, two access, two refresh"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        app.count("auth_token WHERE kind = 'access'").await,
        0,
        "expired access tokens are gone"
    );
    assert_eq!(
        app.count("auth_token WHERE retired_at IS NOT NULL").await,
        1,
        "the retired refresh token stays while its family lives"
    );
    let started = std::time::Instant::now();
    while app.count("auth_session").await + app.count("auth_token").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "expired sessions remain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
