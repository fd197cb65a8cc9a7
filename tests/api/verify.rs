//! `GET /token/verify/`: forward auth for reverse proxies. Who the caller is, in headers;
//! DRF's 401 and 403; no request-rate throttle.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, rate};

const DENIED: &str = "You do not have permission to perform this action.";
const IDENTITY: [&str; 4] = [
    "x-authd-user-id",
    "x-authd-username",
    "x-authd-groups",
    "x-authd-scope",
];

/// Makes the groups (each with the permissions listed) and puts the user in all of them.
pub async fn join_groups(app: &TestApp, root: &str, user: i64, groups: &[(&str, &[&str])]) {
    for (name, permissions) in groups {
        let created = app
            .call(
                Method::POST,
                "/groups/",
                root,
                Some(json!({ "name": name, "permissions": permissions })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let names: Vec<&str> = groups.iter().map(|(name, _)| *name).collect();
    let set = app
        .call(
            Method::PUT,
            &format!("/users/{user}/groups/"),
            root,
            Some(json!({ "groups": names })),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
}

async fn verify(app: &TestApp, query: &str, token: Option<&str>) -> Reply {
    let mut request = app.request(Method::GET, &format!("/token/verify/{query}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    app.send(request).await
}

/// The identity headers, in order; each must be there exactly once.
#[track_caller]
fn identity(reply: &Reply) -> [String; 4] {
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(reply.text, "");
    IDENTITY.map(|name| {
        let values: Vec<_> = reply.headers.get_all(name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].to_str().expect("ASCII").to_owned()
    })
}

#[track_caller]
fn unauthorized(reply: &Reply, detail: &str) {
    reply.assert(StatusCode::UNAUTHORIZED, json!({ "detail": detail }));
    assert_eq!(reply.header("www-authenticate"), Some("Token"));
    for name in IDENTITY {
        assert_eq!(reply.header(name), None, "{name}");
    }
}

#[tokio::test]
async fn a_valid_token_gets_204_with_who_the_caller_is() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, token) = app.create_user("alice").await;

    let alone = identity(&verify(&app, "", Some(&token)).await);
    assert_eq!(
        alone,
        [alice.to_string(), "alice".into(), "".into(), "".into()]
    );
    assert_eq!(
        verify(&app, "", Some(&token))
            .await
            .header("x-authd-truncated"),
        None
    );

    join_groups(&app, &root, alice, &[("editors", &[]), ("authors", &[])]).await;
    let reply = verify(&app, "", Some(&token)).await;
    assert_eq!(
        identity(&reply),
        [
            alice.to_string(),
            "alice".into(),
            "authors,editors".into(),
            "".into()
        ]
    );
    assert_eq!(reply.header("x-authd-truncated"), None);
    // Without the slash too, as the other token URLs.
    let bare = app.call(Method::GET, "/token/verify", &token, None).await;
    assert_eq!(identity(&bare)[2], "authors,editors");
}

#[tokio::test]
async fn values_are_percent_encoded_utf8_and_lists_joined_with_commas() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (zoe, token) = app.create_user("zoë.o-k_@x+y").await;
    join_groups(
        &app,
        &root,
        zoe,
        &[("a,b", &[]), ("Straße 50%", &[]), ("~ok", &[])],
    )
    .await;
    assert_eq!(
        identity(&verify(&app, "", Some(&token)).await),
        [
            zoe.to_string(),
            "zo%C3%AB.o-k_%40x%2By".into(),
            "Stra%C3%9Fe%2050%25,a%2Cb,~ok".into(),
            "".into()
        ]
    );
}

/// A missing, malformed, unknown or refresh token gets DRF's 401, on GET and on HEAD.
#[tokio::test]
async fn a_missing_or_invalid_token_gets_drfs_401() {
    let app = TestApp::spawn().await;
    app.create_user("alice").await;
    unauthorized(
        &verify(&app, "", None).await,
        "Authentication credentials were not provided.",
    );
    unauthorized(&verify(&app, "", Some("nonsense")).await, "Invalid token.");
    unauthorized(
        &app.send(
            app.request(Method::GET, "/token/verify/")
                .header("Authorization", "Token"),
        )
        .await,
        "Invalid token header. No credentials provided.",
    );

    let pair = app
        .send(app.request(Method::POST, "/oauth/token").form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ]))
        .await;
    assert_eq!(pair.status, StatusCode::OK, "{}", pair.text);
    let pair: Value = pair.json();
    let refresh = pair["refresh_token"].as_str().expect("refresh_token");
    let access = pair["access_token"].as_str().expect("access_token");
    unauthorized(&verify(&app, "", Some(refresh)).await, "Invalid token.");
    let bearer = app
        .send(
            app.request(Method::GET, "/token/verify/")
                .header("Authorization", format!("Bearer {refresh}")),
        )
        .await;
    unauthorized(&bearer, "Invalid token.");
    let bearer = app
        .send(
            app.request(Method::GET, "/token/verify/")
                .header("Authorization", format!("Bearer {access}")),
        )
        .await;
    assert_eq!(identity(&bearer)[1], "alice");

    for token in [None, Some("nonsense"), Some(refresh)] {
        let mut head = app.request(Method::HEAD, "/token/verify/");
        if let Some(token) = token {
            head = head.header("Authorization", format!("Token {token}"));
        }
        let head = app.send(head).await;
        assert_eq!(head.status, StatusCode::UNAUTHORIZED);
        assert_eq!(head.text, "");
        assert_eq!(head.header("www-authenticate"), Some("Token"));
    }
}

#[tokio::test]
async fn head_answers_as_get_without_a_body() {
    let app = TestApp::spawn().await;
    let (alice, token) = app.create_user("alice").await;
    let head = app.call(Method::HEAD, "/token/verify/", &token, None).await;
    assert_eq!(
        identity(&head),
        [alice.to_string(), "alice".into(), "".into(), "".into()]
    );
    let denied = app
        .call(
            Method::HEAD,
            "/token/verify/?permission=blog.add_post",
            &token,
            None,
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.text, "");
}

/// `?permission=` repeats, and every one is required; an unknown name is missing for anyone
/// but an active superuser, as Django's `has_perms`.
#[tokio::test]
async fn permissions_asked_for_must_all_be_held() {
    let app = TestApp::spawn().await;
    let (root_id, root) = app.create_superuser("root").await;
    let (alice, token) = app.create_user("alice").await;
    for name in ["blog.add_post", "blog.delete_post"] {
        let (app_label, codename) = name.split_once('.').expect("a name");
        let created = app
            .call(
                Method::POST,
                "/permissions/",
                &root,
                Some(json!({ "app_label": app_label, "codename": codename, "name": name })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    join_groups(
        &app,
        &root,
        alice,
        &[("editors", &["blog.add_post", "auth.view_user"])],
    )
    .await;

    for held in [
        "?permission=blog.add_post",
        "?permission=blog.add_post&permission=auth.view_user",
        "?permission=blog.add_post&permission=blog.add_post",
    ] {
        assert_eq!(
            identity(&verify(&app, held, Some(&token)).await)[0],
            alice.to_string(),
            "{held}"
        );
    }
    for missing in [
        "?permission=blog.delete_post",
        "?permission=blog.add_post&permission=blog.delete_post",
        "?permission=blog.delete_post&permission=blog.add_post",
        "?permission=no.such_thing",
        "?permission=",
        "?permission=blog.add_post&permission=no.such_thing",
    ] {
        let reply = verify(&app, missing, Some(&token)).await;
        reply.assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
        assert_eq!(reply.header("x-authd-user-id"), None, "{missing}");
    }

    let everything = identity(
        &verify(
            &app,
            "?permission=blog.delete_post&permission=no.such_thing",
            Some(&root),
        )
        .await,
    );
    assert_eq!(everything[..2], [root_id.to_string(), "root".to_owned()]);

    // Staff is not superuser.
    let (bob, staff) = app.create_user("bob").await;
    app.make_staff(bob).await;
    verify(&app, "?permission=no.such_thing", Some(&staff))
        .await
        .assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
}

/// A proxy asks once per request it serves: forward auth spends none of the user's budget.
#[tokio::test]
async fn forward_auth_is_not_counted_by_the_request_rate_throttles() {
    let setup = TestApp::spawn().await;
    let (_, token) = setup.create_user("alice").await;
    let mut settings = (*setup.state.settings).clone();
    settings.throttling.user = rate("2/minute");
    settings.throttling.anon = rate("2/minute");
    let app = setup.sibling_with(settings).await;

    for _ in 0..10 {
        identity(&verify(&app, "", Some(&token)).await);
        unauthorized(
            &verify(&app, "", None).await,
            "Authentication credentials were not provided.",
        );
        verify(&app, "?permission=blog.add_post", Some(&token))
            .await
            .assert(StatusCode::FORBIDDEN, json!({ "detail": DENIED }));
    }
    for _ in 0..2 {
        let me = app.call(Method::GET, "/users/me/", &token, None).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    }
    let over = app.call(Method::GET, "/users/me/", &token, None).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.text);
    // Still answered once the user's budget is spent.
    identity(&verify(&app, "", Some(&token)).await);
}

/// Long lists are cut, whole names from the end, so nginx's 4 KiB header buffer holds the answer.
#[tokio::test]
async fn too_many_groups_are_truncated_and_say_so() {
    let app = TestApp::spawn().await;
    let (_, root) = app.create_superuser("root").await;
    let (alice, token) = app.create_user("alice").await;
    let names: Vec<String> = (0..30)
        .map(|i| format!("g{i:02}-{}", "x".repeat(140)))
        .collect();
    let groups: Vec<(&str, &[&str])> = names.iter().map(|name| (name.as_str(), &[][..])).collect();
    join_groups(&app, &root, alice, &groups).await;

    let reply = verify(&app, "", Some(&token)).await;
    let [id, username, listed, scope] = identity(&reply);
    assert_eq!(reply.header("x-authd-truncated"), Some("1"));
    let listed: Vec<&str> = listed.split(',').collect();
    assert!(listed.len() < names.len(), "{}", listed.len());
    assert!(!listed.is_empty());
    assert_eq!(listed, names[..listed.len()]);
    let total = id.len() + username.len() + listed.join(",").len() + scope.len();
    assert!(total <= 3 * 1024, "{total}");
    // Every whole name that could still fit is there.
    assert!(total + 1 + names[listed.len()].len() > 3 * 1024, "{total}");
}
