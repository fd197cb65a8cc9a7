//! The audit trail: each action writes its kind once (floods once per minute), the user's
//! history endpoint, `authd audit`, the retention purge, and no secret anywhere in it.

use std::time::Duration;

use authd::audit::What;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::email::spawn as spawn_with_smtp;
use crate::helpers::{PASSWORD, Reply, TestApp, behind_proxy, rate};
use crate::smtp::SmtpServer;

/// Everything secret a test used: passwords, tokens, keys, link tokens, client secrets, and
/// what was typed as a login name for no account. None may appear in the audit trail, the
/// history endpoint or `authd audit`; more outputs (log lines) can be checked with `assert_absent_from`.
#[derive(Debug, Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        assert!(secret.len() >= 8, "too short to grep for: {secret:?}");
        self.0.push(secret);
    }

    #[track_caller]
    fn assert_absent_from(&self, what: &str, text: &str) {
        assert!(
            !text.is_empty(),
            "{what} is empty: the grep would prove nothing"
        );
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what} holds {secret:?}:\n{text}"
            );
        }
    }
}

/// Throttled requests are counted in memory and written every few seconds: now.
async fn flush_refusals(app: &TestApp) {
    app.state
        .refusals
        .flush(app.db())
        .await
        .expect("refusals written");
}

/// The table, row by row, every column.
async fn dump(app: &TestApp) -> String {
    use sea_orm::{EntityTrait, QueryOrder};
    flush_refusals(app).await;
    authd::store::entity::audit_event::Entity::find()
        .order_by_asc(authd::store::entity::audit_event::Column::Id)
        .all(app.db())
        .await
        .expect("audit rows")
        .iter()
        .map(|row| format!("{row:?}\n"))
        .collect()
}

async fn rows(app: &TestApp) -> Vec<authd::store::entity::audit_event::Model> {
    use sea_orm::{EntityTrait, QueryOrder};
    flush_refusals(app).await;
    authd::store::entity::audit_event::Entity::find()
        .order_by_asc(authd::store::entity::audit_event::Column::Id)
        .all(app.db())
        .await
        .expect("audit rows")
}

fn details(row: &authd::store::entity::audit_event::Model) -> Value {
    serde_json::from_str(&row.details).expect("details are JSON")
}

/// Reads the rows written since the last look.
struct Trail<'a> {
    app: &'a TestApp,
    seen: i64,
    kinds: Vec<String>,
}

impl<'a> Trail<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            seen: 0,
            kinds: Vec::new(),
        }
    }

    /// The rows written since the last call are exactly `expected`, in order; returns them.
    async fn expect(&mut self, expected: &[&str]) -> Vec<authd::store::entity::audit_event::Model> {
        let new: Vec<_> = rows(self.app)
            .await
            .into_iter()
            .filter(|row| row.id > self.seen)
            .collect();
        let kinds: Vec<&str> = new.iter().map(|row| row.kind.as_str()).collect();
        assert_eq!(kinds, expected, "{new:#?}");
        if let Some(last) = new.last() {
            self.seen = last.id;
        }
        self.kinds.extend(kinds.iter().map(|kind| kind.to_string()));
        new
    }
}

fn ok(reply: &Reply, status: StatusCode) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    if reply.text.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

fn text(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_owned()
}

async fn log_in(app: &TestApp, username: &str, password: &str) -> String {
    text(
        &ok(&app.login(username, password).await, StatusCode::OK),
        "auth_token",
    )
}

async fn oauth(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    app.send(app.request(Method::POST, "/oauth/token").form(form))
        .await
}

/// The link of the first message after the first `after` whose link contains `fragment`.
async fn link_after(smtp: &SmtpServer, after: usize, fragment: &str) -> (String, String) {
    for _ in 0..100 {
        if let Some(message) = smtp
            .messages()
            .into_iter()
            .skip(after)
            .find(|message| message.raw.contains(fragment))
        {
            return message.uid_and_token();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message with {fragment:?}: {:#?}", smtp.messages());
}

/// Every page of `GET /users/me/events/`, as the raw bodies.
async fn history(app: &TestApp, token: &str) -> Vec<String> {
    let mut pages = Vec::new();
    let mut path = "/users/me/events/".to_owned();
    loop {
        let reply = app.call(Method::GET, &path, token, None).await;
        let page = ok(&reply, StatusCode::OK);
        pages.push(reply.text);
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => return pages,
        }
    }
}

async fn cli_json(app: &TestApp, args: &[&str]) -> String {
    let mut command = vec!["audit", "--json"];
    command.extend_from_slice(args);
    let output = app.command(&command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Every action, once, and the kind it records, on a real SMTP server for the links; then the
/// trail, the history endpoint and `authd audit --json` are searched for every secret used.
#[tokio::test]
async fn each_action_records_its_kind_exactly_once_and_no_secret() {
    let (app, smtp) = spawn_with_smtp(|s| {
        s.djoser.send_activation_email = true;
        s.tokens.refresh_reuse_grace = Duration::ZERO;
    })
    .await;
    let mut secrets = Secrets::default();
    let mut trail = Trail::new(&app);
    secrets.add(PASSWORD);

    // Sign-up itself is no event; its activation is.
    let created = app
        .post_json(
            "/users/",
            json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let alice = ok(&created, StatusCode::CREATED)["id"]
        .as_i64()
        .expect("id");
    let (uid, link) = link_after(&smtp, 0, "/activate/").await;
    secrets.add(link.clone());
    let reply = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": link}),
            None,
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    let activated = trail.expect(&["account.activated"]).await;
    assert_eq!(activated[0].user_id, Some(alice));
    assert_eq!(details(&activated[0]), json!({"via": "link"}));

    let first = log_in(&app, "alice", PASSWORD).await;
    secrets.add(first.clone());
    let login = trail.expect(&["login.succeeded"]).await;
    assert_eq!(login[0].username.as_deref(), Some("alice"));
    assert_eq!(login[0].client_ip.as_deref(), Some("127.0.0.1"));
    assert!(login[0].session_id.is_some());

    let wrong = "not the password at all";
    secrets.add(wrong);
    assert_eq!(
        app.login("alice", wrong).await.status,
        StatusCode::BAD_REQUEST
    );
    let failed = trail.expect(&["login.failed"]).await;
    assert_eq!(
        details(&failed[0]),
        json!({"reason": "invalid_credentials", "count": 1})
    );

    // A name that is no account may be a password typed in the wrong field: never stored, and
    // a burst of them is one row.
    let typed = "Tr0ub4dor&3-typed-as-a-name";
    secrets.add(typed);
    for _ in 0..3 {
        assert_eq!(
            app.login(typed, PASSWORD).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    let unknown = trail.expect(&["login.failed"]).await;
    assert_eq!(
        (unknown[0].user_id, unknown[0].username.as_deref()),
        (None, None)
    );
    assert_eq!(
        details(&unknown[0]),
        json!({"reason": "unknown_account", "count": 3})
    );

    let second = log_in(&app, "alice", PASSWORD).await;
    secrets.add(second.clone());
    trail.expect(&["login.succeeded"]).await;
    let listed = ok(
        &app.call(Method::GET, "/token/sessions/", &first, None)
            .await,
        StatusCode::OK,
    );
    let other = listed
        .as_array()
        .expect("sessions")
        .iter()
        .find(|session| session["current"] == false)
        .map(|session| text(session, "id"))
        .expect("the second session");
    let path = format!("/token/sessions/{other}/");
    ok(
        &app.call(Method::DELETE, &path, &first, None).await,
        StatusCode::NO_CONTENT,
    );
    let ended = trail.expect(&["session.ended"]).await;
    assert_eq!(ended[0].session_id.as_deref(), Some(other.as_str()));

    ok(
        &app.call(Method::POST, "/token/logout/", &first, None).await,
        StatusCode::NO_CONTENT,
    );
    let logout = trail.expect(&["logout"]).await;
    assert_eq!(logout[0].session_id, login[0].session_id);

    let third = log_in(&app, "alice", PASSWORD).await;
    let fourth = log_in(&app, "alice", PASSWORD).await;
    secrets.add(third.clone());
    secrets.add(fourth.clone());
    trail.expect(&["login.succeeded", "login.succeeded"]).await;
    ok(
        &app.call(Method::POST, "/token/logoutall/", &third, None)
            .await,
        StatusCode::NO_CONTENT,
    );
    let all = trail.expect(&["sessions.ended_all"]).await;
    assert_eq!(details(&all[0]), json!({"sessions_ended": 2}));

    let token = log_in(&app, "alice", PASSWORD).await;
    secrets.add(token.clone());
    trail.expect(&["login.succeeded"]).await;
    let changed_password = "a brand new passphrase 2";
    secrets.add(changed_password);
    let reply = app
        .call(
            Method::POST,
            "/users/set_password/",
            &token,
            Some(json!({"current_password": PASSWORD, "new_password": changed_password})),
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    let changed = trail.expect(&["password.changed"]).await;
    assert_eq!(
        details(&changed[0]),
        json!({"by": "self", "sessions_ended": 0})
    );

    let reply = app
        .call(
            Method::POST,
            "/users/set_username/",
            &token,
            Some(json!({"current_password": changed_password, "new_username": "alice2"})),
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    let renamed = trail.expect(&["username.changed"]).await;
    assert_eq!(renamed[0].username.as_deref(), Some("alice2"));
    assert_eq!(
        details(&renamed[0]),
        json!({"via": "set_username", "previous": "alice"})
    );

    // A wrong current_password is a failed check made with a session.
    let reply = app
        .call(
            Method::POST,
            "/users/set_password/",
            &token,
            Some(json!({"current_password": wrong, "new_password": "whatever else 77"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let failed = trail.expect(&["login.failed"]).await;
    assert_eq!(details(&failed[0])["reason"], "current_password");

    let created = ok(
        &app.call(
            Method::POST,
            "/token/keys/",
            &token,
            Some(json!({"name": "export", "current_password": changed_password})),
        )
        .await,
        StatusCode::CREATED,
    );
    secrets.add(text(&created, "key"));
    let key_id = text(&created, "id");
    let made = trail.expect(&["api_key.created"]).await;
    assert_eq!(made[0].session_id.as_deref(), Some(key_id.as_str()));
    let path = format!("/token/keys/{key_id}/");
    ok(
        &app.call(Method::DELETE, &path, &token, None).await,
        StatusCode::NO_CONTENT,
    );
    let revoked = trail.expect(&["api_key.revoked"]).await;
    assert_eq!(revoked[0].session_id.as_deref(), Some(key_id.as_str()));

    // OAuth2: a pair, its rotation, the reuse of the retired token, a revocation.
    let grant = [
        ("grant_type", "password"),
        ("username", "alice2"),
        ("password", changed_password),
    ];
    let pair = ok(&oauth(&app, &grant).await, StatusCode::OK);
    let (access, refresh) = (text(&pair, "access_token"), text(&pair, "refresh_token"));
    secrets.add(access);
    secrets.add(refresh.clone());
    let opened = trail.expect(&["login.succeeded"]).await;
    assert_eq!(details(&opened[0])["method"], "password_grant");
    let app_ref = &app;
    let rotate = |refresh: String| async move {
        oauth(
            app_ref,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ],
        )
        .await
    };
    let rotated = ok(&rotate(refresh.clone()).await, StatusCode::OK);
    secrets.add(text(&rotated, "access_token"));
    secrets.add(text(&rotated, "refresh_token"));
    trail.expect(&["token.refreshed"]).await;
    assert_eq!(rotate(refresh).await.status, StatusCode::BAD_REQUEST);
    trail.expect(&["refresh.reuse_detected"]).await;
    let pair = ok(&oauth(&app, &grant).await, StatusCode::OK);
    let refresh = text(&pair, "refresh_token");
    secrets.add(text(&pair, "access_token"));
    secrets.add(refresh.clone());
    trail.expect(&["login.succeeded"]).await;
    let reply = app
        .send(
            app.request(Method::POST, "/oauth/revoke")
                .form(&[("token", refresh.as_str())]),
        )
        .await;
    ok(&reply, StatusCode::OK);
    let revoked = trail.expect(&["logout"]).await;
    assert_eq!(details(&revoked[0]), json!({"via": "revoke"}));

    // Authorization: a superuser makes a group and puts alice in it.
    authd::accounts::create_superuser(&app.state, "root", "root@example.com", PASSWORD)
        .await
        .expect("a superuser");
    let root = log_in(&app, "root", PASSWORD).await;
    secrets.add(root.clone());
    trail.expect(&["login.succeeded"]).await;
    let reply = app
        .call(
            Method::POST,
            "/groups/",
            &root,
            Some(json!({"name": "editors"})),
        )
        .await;
    ok(&reply, StatusCode::CREATED);
    let group = trail.expect(&["authorization.changed"]).await;
    assert_eq!(group[0].user_id, None);
    let path = format!("/users/{alice}/groups/");
    let reply = app
        .call(
            Method::PUT,
            &path,
            &root,
            Some(json!({"groups": ["editors"]})),
        )
        .await;
    ok(&reply, StatusCode::OK);
    let joined = trail.expect(&["authorization.changed"]).await;
    assert_eq!(joined[0].user_id, Some(alice));
    assert_eq!(details(&joined[0])["granted"], json!(["editors"]));

    // The operator's commands.
    let output = app.command(&["client", "create", "web app"]).await;
    assert!(output.status.success(), "{output:?}");
    let client: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    secrets.add(text(&client, "client_secret"));
    let client_id = text(&client, "client_id");
    let made = trail.expect(&["client.created"]).await;
    assert_eq!(made[0].client_id.as_deref(), Some(client_id.as_str()));
    assert!(
        app.command(&["client", "delete", &client_id])
            .await
            .status
            .success()
    );
    trail.expect(&["client.deleted"]).await;
    let operator_password = "an operator's choice 31";
    secrets.add(operator_password);
    authd::accounts::change_password(&app.state, "alice2", operator_password)
        .await
        .expect("changepassword");
    let changed = trail.expect(&["password.changed"]).await;
    assert_eq!(details(&changed[0])["by"], "operator");
    assert_eq!(changed[0].client_ip, None);
    assert!(
        app.command(&["deactivate", "alice2"])
            .await
            .status
            .success()
    );
    trail.expect(&["account.deactivated"]).await;
    assert!(app.command(&["activate", "alice2"]).await.status.success());
    trail.expect(&["account.activated"]).await;

    // A reset by email.
    let sent = smtp.messages().len();
    let reply = app
        .post_json(
            "/users/reset_password/",
            json!({"email": "alice@example.com"}),
            None,
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    let (uid, link) = link_after(&smtp, sent, "/password/reset/").await;
    secrets.add(link.clone());
    let reset_password = "reset to this one 44";
    secrets.add(reset_password);
    let reply = app
        .post_json(
            "/users/reset_password_confirm/",
            json!({"uid": uid, "token": link, "new_password": reset_password}),
            None,
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    trail.expect(&["password.reset"]).await;

    // A new address must be proven again: one email.changed, then its activation.
    let token = log_in(&app, "alice2", reset_password).await;
    secrets.add(token.clone());
    trail.expect(&["login.succeeded"]).await;
    let sent = smtp.messages().len();
    let reply = app
        .call(
            Method::PATCH,
            "/users/me/",
            &token,
            Some(json!({"email": "alice@new.example", "current_password": reset_password})),
        )
        .await;
    ok(&reply, StatusCode::OK);
    let moved = trail.expect(&["email.changed"]).await;
    assert_eq!(
        details(&moved[0]),
        json!({"via": "update", "actor_id": alice, "reactivation_required": true})
    );
    let (uid, link) = link_after(&smtp, sent, "/activate/").await;
    secrets.add(link.clone());
    let reply = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": link}),
            None,
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    trail.expect(&["account.activated"]).await;

    let token = log_in(&app, "alice2", reset_password).await;
    secrets.add(token.clone());
    trail.expect(&["login.succeeded"]).await;
    let pages = history(&app, &token).await;
    let listed = cli_json(&app, &[]).await;
    assert_eq!(listed.lines().count(), trail.kinds.len());
    let reply = app
        .call(
            Method::DELETE,
            "/users/me/",
            &token,
            Some(json!({"current_password": reset_password})),
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);
    let deleted = trail.expect(&["account.deleted"]).await;
    assert_eq!(details(&deleted[0]), json!({"actor_id": alice}));

    // Every kind but `throttled` (its own test) happened, and the rows outlive the account.
    let mut seen: Vec<&str> = trail.kinds.iter().map(String::as_str).collect();
    seen.sort_unstable();
    seen.dedup();
    let mut expected: Vec<&str> = authd::audit::KINDS
        .iter()
        .copied()
        .filter(|kind| *kind != "throttled")
        .collect();
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert!(
        rows(&app)
            .await
            .iter()
            .any(|row| row.user_id == Some(alice))
    );

    secrets.assert_absent_from("the audit table", &dump(&app).await);
    secrets.assert_absent_from("GET /users/me/events/", &pages.concat());
    secrets.assert_absent_from("authd audit --json", &cli_json(&app, &[]).await);
}

/// Waits, if need be, so that what follows happens within one minute of the clock (the
/// counted rows are per minute).
async fn within_one_minute() {
    use chrono::Timelike as _;
    let second = chrono::Utc::now().second();
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
}

/// A flood of refused attempts is one row per account, limit and minute with its count; failed
/// logins for names that are no account are one row per client address and minute, with no
/// user and no name.
#[tokio::test]
async fn floods_are_counted_in_one_row_per_minute() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.throttling.failures.per_ip_account = rate("2/m");
    })
    .await;
    let (bob, _) = app.create_user("bob").await;
    let mut secrets = Secrets::default();
    let from = |ip: &'static str, username: &str, password: &str| {
        app.request(Method::POST, "/token/login/")
            .header("X-Forwarded-For", ip)
            .json(&json!({"username": username, "password": password}))
    };
    within_one_minute().await;
    let guess = "guessing bob's password";
    secrets.add(guess);
    for _ in 0..2 {
        let reply = app.send(from("203.0.113.1", "bob", guess)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    const FLOOD: usize = 7;
    for _ in 0..FLOOD {
        let reply = app.send(from("203.0.113.1", "bob", guess)).await;
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.text
        );
    }
    for (ip, times) in [("198.51.100.7", 3), ("198.51.100.8", 2)] {
        for attempt in 0..times {
            let typed = format!("{ip}-typed-name-{attempt}");
            secrets.add(typed.clone());
            let reply = app.send(from(ip, &typed, PASSWORD)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        }
    }
    let all = rows(&app).await;
    let of = |kind: &str| -> Vec<&authd::store::entity::audit_event::Model> {
        all.iter().filter(|row| row.kind == kind).collect()
    };
    let throttled = of("throttled");
    assert_eq!(throttled.len(), 1, "{throttled:#?}");
    assert_eq!(throttled[0].user_id, Some(bob));
    assert_eq!(
        details(throttled[0]),
        json!({"limit": "ip_account", "count": FLOOD})
    );
    let failed = of("login.failed");
    let known: Vec<_> = failed
        .iter()
        .filter(|row| row.user_id == Some(bob))
        .collect();
    assert_eq!(known.len(), 2, "{failed:#?}");
    let unknown: Vec<(Option<&str>, Option<&str>, Value)> = failed
        .iter()
        .filter(|row| row.user_id.is_none())
        .map(|row| {
            (
                row.client_ip.as_deref(),
                row.username.as_deref(),
                details(row),
            )
        })
        .collect();
    assert_eq!(
        unknown,
        [
            (
                Some("198.51.100.7"),
                None,
                json!({"reason": "unknown_account", "count": 3})
            ),
            (
                Some("198.51.100.8"),
                None,
                json!({"reason": "unknown_account", "count": 2})
            ),
        ]
    );
    secrets.assert_absent_from("the audit table", &dump(&app).await);
}

/// DRF's request rates: a refused anonymous caller is counted by address, a refused user by
/// account, each once a minute.
#[tokio::test]
async fn request_rate_refusals_are_counted_per_minute() {
    let app = TestApp::spawn_with(|s| {
        s.throttling.anon = rate("2/m");
        s.throttling.user = rate("3/m");
    })
    .await;
    within_one_minute().await;
    let (id, token) = app.create_user("carol").await;
    for _ in 0..4 {
        app.login("nobody-at-all", PASSWORD).await;
    }
    for _ in 0..6 {
        app.call(Method::GET, "/users/me/", &token, None).await;
    }
    let throttled: Vec<_> = rows(&app)
        .await
        .into_iter()
        .filter(|row| row.kind == "throttled")
        .map(|row| (row.user_id, details(&row)))
        .collect();
    assert_eq!(
        throttled,
        [
            (None, json!({"limit": "anon", "count": 4})),
            (Some(id), json!({"limit": "user", "count": 3})),
        ]
    );
}

/// 120 events of alice and some of bob's: pages of 50, newest first, `next` a relative path
/// whatever the Host header says, never another user's events, unscoped tokens only.
#[tokio::test]
async fn the_history_endpoint_pages_the_callers_own_events() {
    let app = TestApp::spawn().await;
    let (alice, token) = app.create_user("alice").await;
    let (bob, _) = app.create_user("bob").await;
    for _ in 0..120 {
        What::Logout { via: "logout" }
            .event()
            .user_named(alice, "alice")
            .record(app.db())
            .await
            .expect("event");
        What::Logout { via: "logout" }
            .event()
            .user_named(bob, "bob")
            .record(app.db())
            .await
            .expect("event");
    }
    let mine: Vec<i64> = rows(&app)
        .await
        .iter()
        .filter(|row| row.user_id == Some(alice))
        .map(|row| row.id)
        .rev()
        .collect();
    assert_eq!(mine.len(), 121, "120 and the login");

    let mut ids = Vec::new();
    let mut path = "/users/me/events/".to_owned();
    let mut sizes = Vec::new();
    loop {
        let reply = app
            .send(
                app.request(Method::GET, &path)
                    .header("Authorization", format!("Token {token}"))
                    .header("Host", "evil.example.org"),
            )
            .await;
        let page = ok(&reply, StatusCode::OK);
        let results = page["results"].as_array().expect("results");
        sizes.push(results.len());
        for event in results {
            assert_eq!(
                event
                    .as_object()
                    .expect("object")
                    .keys()
                    .collect::<Vec<_>>(),
                ["kind", "time", "ip", "user_agent", "session_id"]
            );
        }
        ids.extend(results.iter().map(|event| event["kind"].clone()));
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/users/me/events/?cursor="), "{next}");
                path = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 21]);
    assert_eq!(ids.last(), Some(&json!("login.succeeded")), "oldest last");

    for bad in ["abc", "-1", "1.5", "", "99999999999999999999"] {
        let path = format!("/users/me/events/?cursor={bad}");
        app.call(Method::GET, &path, &token, None)
            .await
            .assert(StatusCode::BAD_REQUEST, json!({"detail": "Invalid cursor"}));
    }

    // A key, or a scoped token, is refused: the history is the account's own business.
    let key = ok(
        &app.call(
            Method::POST,
            "/token/keys/",
            &token,
            Some(json!({"name": "k", "scope": [], "current_password": PASSWORD})),
        )
        .await,
        StatusCode::CREATED,
    );
    let reply = app
        .send(
            app.request(Method::GET, "/users/me/events/")
                .header("X-API-Key", text(&key, "key")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let reply = app
        .send(app.request(Method::GET, "/users/me/events/"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}

/// `authd audit`: by user (their whole history under any name), kind and time, as JSON lines
/// or text; an unknown user or a bad value is a clear error.
#[tokio::test]
async fn the_audit_command_filters_and_explains_its_errors() {
    let app = TestApp::spawn().await;
    let (alice, token) = app.create_user("alice").await;
    app.create_user("bob").await;
    let reply = app
        .call(
            Method::POST,
            "/users/set_username/",
            &token,
            Some(json!({"current_password": PASSWORD, "new_username": "alicia"})),
        )
        .await;
    ok(&reply, StatusCode::NO_CONTENT);

    let lines = cli_json(&app, &["--user", "alicia"]).await;
    let events: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["login.succeeded", "username.changed"]);
    assert!(events.iter().all(|event| event["user_id"] == alice));
    assert_eq!(events[0]["username"], "alice", "the name it had then");
    assert_eq!(events[1]["details"]["previous"], "alice");

    let logins = cli_json(&app, &["--kind", "login.succeeded", "--since", "1h"]).await;
    assert_eq!(logins.lines().count(), 2);
    let future = cli_json(&app, &["--since", "2999-01-01T00:00:00Z"]).await;
    assert_eq!(future, "");

    let output = app.command(&["audit", "--kind", "username.changed"]).await;
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(" username.changed user=alicia(") && text.contains(r#""previous":"alice""#),
        "{text}"
    );

    let output = app.command(&["audit", "--user", "nobody"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such user"));
    let output = app.command(&["audit", "--since", "yesterday"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("neither a span"), "{stderr}");
    let output = app.command(&["audit", "--kind", "login"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("login.succeeded"), "{stderr}");
}

/// Events older than AUTHD_AUDIT_RETENTION_SECONDS are purged.
#[tokio::test]
async fn events_past_the_retention_are_purged() {
    let app = TestApp::spawn_with(|s| {
        s.maintenance.purge_interval = Duration::from_millis(200);
        s.maintenance.audit_retention = Duration::from_secs(1);
    })
    .await;
    app.create_user("alice").await;
    assert_eq!(app.count("audit_event").await, 1);
    for _ in 0..50 {
        if app.count("audit_event").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the login's event outlived the retention");
}
