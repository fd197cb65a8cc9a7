//! The email flows end to end, through a real SMTP server on 127.0.0.1.

use std::time::Duration;

use authd::config::{EmailBackend, Settings};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};
use crate::smtp::SmtpServer;

const DOMAIN: &str = "app.example.test";
const NEW_PASSWORD: &str = "a completely different secret";

fn use_smtp(settings: &mut Settings, port: u16) {
    settings.mail.backend = EmailBackend::Smtp(authd::config::DatabaseUrl::new(format!(
        "smtp://127.0.0.1:{port}"
    )));
    settings.mail.frontend_domain = DOMAIN.into();
    settings.mail.site_name = Some("Example".into());
    settings.mail.retry_base = Duration::from_millis(300);
}

pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let port = smtp.port;
    let app = TestApp::spawn_with(|s| {
        use_smtp(s, port);
        configure(s);
    })
    .await;
    (app, smtp)
}

async fn register(app: &TestApp, username: &str, email: &str) -> crate::helpers::Reply {
    app.post_json(
        "/users/",
        json!({"username": username, "email": email, "password": PASSWORD}),
        None,
    )
    .await
}

#[tokio::test]
async fn register_activate_log_in_through_real_smtp() {
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.djoser.send_confirmation_email = true;
    })
    .await;
    let reply = register(&app, "alice", "alice@example.com").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST,
        "inactive until activated"
    );

    let messages = smtp.wait_for(1).await;
    let activation = &messages[0];
    assert_eq!(activation.recipients, ["alice@example.com"]);
    assert_eq!(activation.subject(), "Account activation on Example");
    assert!(activation.raw.contains(
        "You're receiving this email because you need to finish activation process on Example."
    ));
    assert!(activation.raw.contains("text/html"), "an HTML alternative");
    assert!(
        activation
            .link()
            .starts_with(&format!("http://{DOMAIN}/#/activate/")),
        "{}",
        activation.link()
    );
    let (uid, token) = activation.uid_and_token();
    assert_eq!(uid, "MQ");

    let activated = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None,
        )
        .await;
    assert_eq!(
        activated.status,
        StatusCode::NO_CONTENT,
        "{}",
        activated.text
    );
    let confirmation = &smtp.wait_for(2).await[1];
    assert_eq!(
        confirmation.subject(),
        "Example - Your account has been successfully created and activated!"
    );
    app.token_for("alice", PASSWORD).await;

    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await
    .assert(
        StatusCode::FORBIDDEN,
        json!({"detail": "Stale token for given user."}),
    );
}

#[tokio::test]
async fn activation_rejects_bad_input_in_djoser_order() {
    let (app, smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    let before = app.snapshot().await;
    let post = |body| app.post_json("/users/activation/", body, None);
    post(json!({})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"uid": ["This field is required."], "token": ["This field is required."]}),
    );
    post(json!({"uid": "wrong-uid", "token": "wrong-token"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"uid": ["Invalid user id or user doesn't exist."]}),
        );
    post(json!({"uid": "Mg", "token": token})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"uid": ["Invalid user id or user doesn't exist."]}),
    );
    post(json!({"uid": uid, "token": "wrong-token"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]}),
        );
    post(json!({"uid": 1, "token": 12345})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"uid": ["Invalid user id or user doesn't exist."]}),
    );
    post(json!({"uid": uid, "token": 12345})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
    post(json!({"uid": true, "token": [1]})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"uid": ["Not a valid string."], "token": ["Not a valid string."]}),
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn activation_needs_an_address_and_rejects_header_injection() {
    let (app, _smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    app.register("alice", PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["This field is required."]}),
    );
    register(&app, "bob", "bob@example.com\r\nBcc: victim@example.com")
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"email": ["Enter a valid email address."]}),
        );
    assert_eq!(app.count("auth_user").await, 0);
}

#[tokio::test]
async fn password_reset_end_to_end_revokes_every_token() {
    let (app, smtp) = spawn(|s| {
        s.djoser.password_reset_confirm_retype = true;
        s.djoser.password_changed_email_confirmation = true;
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    let token = app.token_for("alice", PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .status,
        StatusCode::OK
    );

    let reply = app
        .post_json(
            "/users/reset_password/",
            json!({"email": " alice@example.com "}),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let reset = &smtp.wait_for(1).await[0];
    assert_eq!(reset.subject(), "Password reset on Example");
    assert!(
        reset
            .raw
            .contains("Your username, in case you've forgotten: alice")
    );
    assert!(
        reset
            .link()
            .starts_with(&format!("http://{DOMAIN}/#/password/reset/confirm/"))
    );
    let (uid, link_token) = reset.uid_and_token();

    let confirm = |body| app.post_json("/users/reset_password_confirm/", body, None);
    let before = app.snapshot().await;
    confirm(json!({})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({
            "uid": ["This field is required."],
            "token": ["This field is required."],
            "new_password": ["This field is required."],
            "re_new_password": ["This field is required."]
        }),
    );
    // "_w" decodes to the byte 0xFF (not UTF-8); "Mg" is user 2, who does not exist.
    confirm(json!({"uid": "MQ\u{0}", "token": link_token, "new_password": NEW_PASSWORD, "re_new_password": NEW_PASSWORD}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"uid": ["Null characters are not allowed."]}));
    for bad_uid in ["x", "_w", "Mg"] {
        confirm(json!({"uid": bad_uid, "token": link_token, "new_password": NEW_PASSWORD, "re_new_password": NEW_PASSWORD}))
            .await
            .assert(StatusCode::BAD_REQUEST, json!({"uid": ["Invalid user id or user doesn't exist."]}));
    }
    assert_eq!(app.snapshot().await, before);
    confirm(json!({"uid": "x", "token": "bad", "new_password": "123", "re_new_password": "123"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"new_password": [
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric."
            ]}),
        );
    confirm(json!({"uid": uid, "token": link_token, "new_password": NEW_PASSWORD, "re_new_password": "nope"}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"non_field_errors": ["The two password fields didn't match."]}));
    confirm(json!({"uid": uid, "token": "nope", "new_password": NEW_PASSWORD, "re_new_password": NEW_PASSWORD}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"token": ["Invalid token for given user."]}));
    let done = confirm(json!({"uid": uid, "token": link_token, "new_password": NEW_PASSWORD, "re_new_password": NEW_PASSWORD})).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);

    app.call(Method::GET, "/users/me/", &token, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."}),
        );
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    app.token_for("alice", NEW_PASSWORD).await;
    confirm(json!({"uid": uid, "token": link_token, "new_password": "yet another secret", "re_new_password": "yet another secret"}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"token": ["Invalid token for given user."]}));
    assert_eq!(
        smtp.wait_for(2).await[1].subject(),
        "Example - Your password has been successfully changed!"
    );
}

#[tokio::test]
async fn username_reset_end_to_end() {
    let (app, smtp) = spawn(|s| {
        s.djoser.username_reset_confirm_retype = true;
        s.djoser.username_changed_email_confirmation = true;
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    register(&app, "bob", "bob@example.com").await;
    app.post_json(
        "/users/reset_username/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let message = &smtp.wait_for(1).await[0];
    assert_eq!(message.subject(), "Username reset on Example");
    assert!(message.raw.contains("choose a new username"));
    let (uid, token) = message.uid_and_token();
    let confirm = |body| app.post_json("/users/reset_username_confirm/", body, None);
    confirm(json!({})).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"new_username": ["This field is required."], "re_new_username": ["This field is required."]}),
    );
    confirm(json!({"new_username": "bob", "re_new_username": "bob", "uid": uid, "token": "bad"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"new_username": ["A user with that username already exists."]}),
        );
    confirm(json!({"new_username": "new username", "re_new_username": "new username", "uid": uid, "token": token}))
        .await
        .assert(StatusCode::BAD_REQUEST, json!({"new_username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}));
    confirm(json!({"new_username": "carol", "re_new_username": "carl"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["The two username fields didn't match."]}),
        );
    confirm(json!({"new_username": "carol", "re_new_username": "carol", "token": token}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"uid": ["Invalid user id or user doesn't exist."]}),
        );
    confirm(json!({"new_username": "carol", "re_new_username": "carol", "uid": uid}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]}),
        );
    let done = confirm(
        json!({"new_username": "carol", "re_new_username": "carol", "uid": uid, "token": token}),
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
    app.token_for("carol", PASSWORD).await;
    assert_eq!(
        smtp.wait_for(2).await[1].subject(),
        "Example - Your username has been successfully changed!"
    );
}

#[tokio::test]
async fn tokens_are_bound_to_their_purpose() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    app.post_json(
        "/users/reset_username/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    reset_with(&app, &uid, &token).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
    app.deactivate(1).await;
    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
}

#[tokio::test]
async fn a_password_change_or_expiry_kills_outstanding_links() {
    let (app, smtp) = spawn(|s| {
        s.mail.token_lifetime = Duration::from_secs(2);
        s.mail.send_window = Duration::ZERO;
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    let session = app.token_for("alice", PASSWORD).await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    let changed = app
        .call(
            Method::POST,
            "/users/set_password/",
            &session,
            Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    app.post_json(
        "/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": "yet another secret"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );

    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(2).await[1].uid_and_token();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.post_json(
        "/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": "yet another secret"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_confirms_with_one_token_one_wins() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    let body = json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD});
    let replies = futures::future::join_all(
        (0..4).map(|_| app.post_json("/users/reset_password_confirm/", body.clone(), None)),
    )
    .await;
    let wins = replies
        .iter()
        .filter(|r| r.status == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(wins, 1, "{replies:#?}");
    for reply in replies
        .iter()
        .filter(|r| r.status != StatusCode::NO_CONTENT)
    {
        reply.assert(
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]}),
        );
    }
}

/// Known and unknown addresses get byte-identical answers and the same work before answering.
#[tokio::test]
async fn reset_requests_do_not_reveal_who_has_an_account() {
    let (app, smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await;
    for path in [
        "/users/reset_password/",
        "/users/reset_username/",
        "/users/resend_activation/",
    ] {
        let known = app
            .post_json(path, json!({"email": "alice@example.com"}), None)
            .await;
        let unknown = app
            .post_json(path, json!({"email": "nobody@example.com"}), None)
            .await;
        assert_eq!(known.status, StatusCode::NO_CONTENT);
        assert_eq!(
            (known.status, &known.text),
            (unknown.status, &unknown.text),
            "{path}"
        );
        let names = |r: &crate::helpers::Reply| {
            let mut names: Vec<String> = r
                .headers
                .keys()
                .map(|k| k.to_string())
                .filter(|k| k != "date" && k != "x-request-id")
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&known), names(&unknown), "{path}");
    }
    let messages = smtp.settle().await;
    let subjects: Vec<String> = messages.iter().map(|m| m.subject()).collect();
    assert_eq!(
        subjects,
        [
            "Account activation on Example",
            "Password reset on Example",
            "Username reset on Example"
        ],
        "an active user gets no activation email; unknown addresses get nothing"
    );
    app.post_json(
        "/users/reset_password/",
        json!({"email": "not an email"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["Enter a valid email address."]}),
    );
    app.post_json("/users/reset_password/", json!({}), None)
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field is required."]}),
        );
}

#[tokio::test]
async fn show_email_not_found_reveals_on_all_three_endpoints() {
    let (app, _smtp) = spawn(|s| {
        s.djoser.password_reset_show_email_not_found = true;
        s.djoser.send_activation_email = true;
    })
    .await;
    for path in [
        "/users/reset_password/",
        "/users/reset_username/",
        "/users/resend_activation/",
    ] {
        app.post_json(path, json!({"email": "nobody@example.com"}), None)
            .await
            .assert(
                StatusCode::BAD_REQUEST,
                json!(["User with given email does not exist."]),
            );
    }
}

#[tokio::test]
async fn resend_activation_follows_djoser() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    let reply = app
        .post_json(
            "/users/resend_activation/",
            json!({"email": "alice@example.com"}),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text.is_empty() && reply.header("content-type").is_none(),
        "djoser's empty 400"
    );
    assert!(smtp.settle().await.is_empty());

    // Djoser's resend, without authd's send window.
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.mail.send_window = Duration::ZERO;
    })
    .await;
    register(&app, "bob", "bob@example.com").await;
    smtp.wait_for(1).await;
    let resent = app
        .post_json(
            "/users/resend_activation/",
            json!({"email": "bob@example.com"}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::NO_CONTENT);
    let messages = smtp.wait_for(2).await;
    assert_eq!(messages[1].subject(), "Account activation on Example");
    let (uid, token) = messages[1].uid_and_token();
    assert_eq!(
        app.post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn every_account_sharing_an_address_gets_its_own_message() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "shared@example.com").await;
    register(&app, "bob", "shared@example.com").await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "shared@example.com"}),
        None,
    )
    .await;
    let messages = smtp.wait_for(2).await;
    assert!(
        messages.iter().any(|m| m.raw.contains("forgotten: alice")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.raw.contains("forgotten: bob")),
        "{messages:#?}"
    );
    assert_ne!(messages[0].uid_and_token(), messages[1].uid_and_token());
}

/// Djoser's `test_user_me.py` with activation on (Djoser's rule: no password), plus the notice
/// to the old address.
#[tokio::test]
async fn changing_the_email_under_activation_deactivates_and_resends() {
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.email_change_requires_password = false;
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await;
    let session = app.token_for("alice", PASSWORD).await;
    app.call(
        Method::PATCH,
        "/users/me/",
        &session,
        Some(json!({"email": "new@example.com"})),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({"email": "new@example.com", "id": 1, "username": "alice"}),
    );
    app.call(Method::GET, "/users/me/", &session, None)
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User inactive or deleted."}),
        );
    let messages = smtp.wait_for(3).await;
    let notice = messages
        .iter()
        .find(|m| m.recipients == ["alice@example.com"] && m.subject().contains("email address"))
        .expect("the notice to the old address");
    assert!(notice.raw.contains("n***@e***.com"), "{}", notice.raw);
    let message = messages
        .iter()
        .find(|m| m.recipients == ["new@example.com"])
        .expect("the activation to the new address");
    let (uid, token) = message.uid_and_token();
    assert_eq!(
        app.post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call(Method::GET, "/users/me/", &session, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn smtp_down_at_registration_delays_the_message_not_the_answer() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let app = TestApp::spawn_with(|s| {
        use_smtp(s, port);
        s.djoser.send_confirmation_email = true;
    })
    .await;
    let started = std::time::Instant::now();
    let reply = register(&app, "alice", "alice@example.com").await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request did not wait for SMTP"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let smtp = SmtpServer::start_on(port).await;
    let messages = smtp.wait_for(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].subject(),
        "Example - Your account has been successfully created and activated!"
    );
    let sent = smtp.settle().await;
    assert_eq!(sent.len(), 1, "sent once");
}

/// Two instances share the outbox: every message goes out exactly once.
#[tokio::test]
async fn two_workers_never_send_a_message_twice() {
    let (app, smtp) = spawn(|s| s.djoser.send_confirmation_email = true).await;
    let _second = app.sibling().await;
    for index in 0..8 {
        register(
            &app,
            &format!("user{index}"),
            &format!("user{index}@example.com"),
        )
        .await;
    }
    smtp.wait_for(8).await;
    let messages = smtp.settle().await;
    assert_eq!(messages.len(), 8, "{messages:#?}");
    assert_eq!(
        app.count("email_outbox WHERE sent_at IS NOT NULL AND text_body = ''")
            .await,
        8,
        "bodies are blanked once sent"
    );
}

#[tokio::test]
async fn set_password_and_set_username_send_their_confirmations() {
    let (app, smtp) = spawn(|s| {
        s.djoser.password_changed_email_confirmation = true;
        s.djoser.username_changed_email_confirmation = true;
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    let session = app.token_for("alice", PASSWORD).await;
    app.call(
        Method::POST,
        "/users/set_password/",
        &session,
        Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
    )
    .await;
    app.call(
        Method::POST,
        "/users/set_username/",
        &session,
        Some(json!({"new_username": "alicia", "current_password": NEW_PASSWORD})),
    )
    .await;
    let subjects: Vec<String> = smtp.wait_for(2).await.iter().map(|m| m.subject()).collect();
    assert_eq!(
        subjects,
        [
            "Example - Your password has been successfully changed!",
            "Example - Your username has been successfully changed!"
        ]
    );
}

#[tokio::test]
async fn operators_can_replace_templates_and_links_ignore_the_host_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("activation_subject.txt"),
        "Welcome to {{ site_name }}, {{ username }}",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("activation.txt"),
        "Click {{ link }}\n<b>{{ username }}</b>",
    )
    .expect("write");
    let templates = dir.path().to_owned();
    let (app, smtp) = spawn(move |s| {
        s.djoser.send_activation_email = true;
        s.mail.templates_dir = Some(templates);
    })
    .await;
    let reply = app
        .send(
            app.request(Method::POST, "/users/")
                .header("Host", "evil.example.org")
                .header("X-Forwarded-Host", "evil.example.org")
                .json(&json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let message = &smtp.wait_for(1).await[0];
    assert_eq!(message.subject(), "Welcome to Example, alice");
    assert!(
        message
            .raw
            .contains(&format!("Click http://{DOMAIN}/#/activate/"))
    );
    assert!(
        message.raw.contains("<b>alice</b>"),
        "text templates are not HTML-escaped"
    );
    assert!(!message.raw.contains("evil.example.org"));
}

/// reset_password_confirm with a link's uid and token, to NEW_PASSWORD.
async fn reset_with(app: &TestApp, uid: &str, token: &str) -> crate::helpers::Reply {
    app.post_json(
        "/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD}),
        None,
    )
    .await
}

async fn link_from(smtp: &SmtpServer, count: usize) -> (String, String) {
    smtp.wait_for(count).await[count - 1].uid_and_token()
}

/// An operator deactivated the account: it must not be able to activate itself again by
/// email. resend_activation sends nothing, and old links stay dead.
#[tokio::test]
async fn a_deactivated_account_cannot_reactivate_itself() {
    let (app, smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = link_from(&smtp, 1).await;
    let activated = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None,
        )
        .await;
    assert_eq!(activated.status, StatusCode::NO_CONTENT);
    app.deactivate(1).await;

    let resent = app
        .post_json(
            "/users/resend_activation/",
            json!({"email": "alice@example.com"}),
            None,
        )
        .await;
    assert_eq!(
        resent.status,
        StatusCode::NO_CONTENT,
        "the same answer as ever"
    );
    assert_eq!(smtp.settle().await.len(), 1, "no new activation link");
    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// `authd deactivate` revokes every token at once, on the running instance too, and
/// `authd activate` lets the account in again.
#[tokio::test]
async fn operators_deactivate_and_activate_accounts() {
    let (app, smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = link_from(&smtp, 1).await;
    app.post_json(
        "/users/activation/",
        json!({"uid": uid, "token": token}),
        None,
    )
    .await;
    let session = app.token_for("alice", PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/users/me/", &session, None)
            .await
            .status,
        StatusCode::OK,
        "cached"
    );
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let (reset_uid, reset_token) = link_from(&smtp, 2).await;

    let output = app.command(&["deactivate", "alice"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let started = std::time::Instant::now();
    loop {
        let reply = app.call(Method::GET, "/users/me/", &session, None).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            reply.assert(
                StatusCode::UNAUTHORIZED,
                json!({"detail": "Invalid token."}),
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the running instance still answers from memory"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reset_with(&app, &reset_uid, &reset_token).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    let unknown = app.command(&["deactivate", "nobody"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"));

    let output = app.command(&["activate", "alice"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    app.token_for("alice", PASSWORD).await;
}

/// reset_password, reset_username and resend_activation send at most one message per account
/// and purpose per window; inside it nothing is minted and the link already sent works.
#[tokio::test]
async fn requested_links_are_limited_per_account_and_window() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    for _ in 0..5 {
        let reply = app
            .post_json(
                "/users/reset_password/",
                json!({"email": "alice@example.com"}),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    app.post_json(
        "/users/reset_username/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    let messages = smtp.settle().await;
    let subjects: Vec<String> = messages.iter().map(|m| m.subject()).collect();
    assert_eq!(
        subjects,
        ["Password reset on Example", "Username reset on Example"]
    );
    assert_eq!(
        app.count("email_token WHERE used_at IS NULL").await,
        2,
        "one live link per account and purpose"
    );
    let (uid, token) = messages[0].uid_and_token();
    let done = reset_with(&app, &uid, &token).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
}

/// After the window, a new request sends a new link, which kills the older one.
#[tokio::test]
async fn after_the_window_a_new_link_replaces_the_old_one() {
    let (app, smtp) = spawn(|s| s.mail.send_window = Duration::from_secs(1)).await;
    register(&app, "alice", "alice@example.com").await;
    let request = || {
        app.post_json(
            "/users/reset_password/",
            json!({"email": "alice@example.com"}),
            None,
        )
    };
    request().await;
    let (uid, first) = link_from(&smtp, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    request().await;
    let (_, second) = link_from(&smtp, 2).await;
    assert_ne!(first, second);
    reset_with(&app, &uid, &first).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"token": ["Invalid token for given user."]}),
    );
    let done = reset_with(&app, &uid, &second).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
}

/// Registration's activation mail opens its address's window, in which a resend sends nothing;
/// the activation mail of an email change (made with the password) is not limited.
#[tokio::test]
async fn registration_and_email_changes_always_send_their_activation_mail() {
    let (app, smtp) = spawn(|s| s.djoser.send_activation_email = true).await;
    register(&app, "alice", "alice@example.com").await;
    for _ in 0..2 {
        app.post_json(
            "/users/resend_activation/",
            json!({"email": "alice@example.com"}),
            None,
        )
        .await;
    }
    assert_eq!(
        smtp.settle().await.len(),
        1,
        "registration's; the resends fall in its window"
    );
    app.exec("UPDATE auth_user SET is_active = TRUE, activation_pending = FALSE")
        .await;
    let token = app.token_for("alice", PASSWORD).await;
    let changed = app
        .call(
            Method::PATCH,
            "/users/me/",
            &token,
            Some(json!({"email": "alice@elsewhere.example", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let messages = smtp.wait_for(3).await;
    assert!(
        messages
            .iter()
            .any(|m| m.recipients == ["alice@elsewhere.example"]
                && m.subject() == "Account activation on Example"),
        "the email change's activation: {messages:#?}"
    );
}

/// An app whose SMTP server is down; the port it will listen on is returned.
async fn spawn_with_smtp_down() -> (TestApp, u16) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    (TestApp::spawn_with(|s| use_smtp(s, port)).await, port)
}

async fn until_the_worker_tried(app: &TestApp) {
    let started = std::time::Instant::now();
    while app.count("email_outbox WHERE attempts > 0").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pending mail holds no working link: the token is minted when the message goes out.
#[tokio::test]
async fn pending_mail_holds_no_link_at_rest() {
    let (app, port) = spawn_with_smtp_down().await;
    register(&app, "alice", "alice@example.com").await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    until_the_worker_tried(&app).await;
    use authd::store::entity::email_outbox;
    use sea_orm::EntityTrait;
    for row in email_outbox::Entity::find()
        .all(app.db())
        .await
        .expect("rows")
    {
        for text in [&row.subject, &row.text_body, &row.html_body] {
            assert!(!text.contains("reset/confirm"), "a link at rest: {text}");
        }
    }

    let smtp = SmtpServer::start_on(port).await;
    let (uid, token) = link_from(&smtp, 1).await;
    assert_eq!(
        app.count("email_token WHERE used_at IS NULL").await,
        1,
        "each attempt's link replaced the previous attempt's"
    );
    let done = reset_with(&app, &uid, &token).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
}

/// A link message whose account changed between the request and the delivery is dropped.
#[tokio::test]
async fn a_message_for_an_account_that_changed_since_is_dropped() {
    let (app, port) = spawn_with_smtp_down().await;
    register(&app, "alice", "alice@example.com").await;
    let session = app.token_for("alice", PASSWORD).await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    until_the_worker_tried(&app).await;
    let changed = app
        .call(
            Method::POST,
            "/users/set_password/",
            &session,
            Some(json!({"new_password": NEW_PASSWORD, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        smtp.settle().await.is_empty(),
        "the stale reset was dropped"
    );
}

/// Spent rows do not pile up: used or expired links, and delivered mail past its retention,
/// are purged periodically.
#[tokio::test]
async fn spent_rows_are_purged() {
    let (app, smtp) = spawn(|s| {
        s.maintenance.purge_interval = Duration::from_millis(300);
        s.maintenance.email_retention = Duration::from_secs(1);
        s.mail.token_lifetime = Duration::from_secs(1);
        s.mail.send_window = Duration::from_secs(1);
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    app.post_json(
        "/users/reset_password/",
        json!({"email": "alice@example.com"}),
        None,
    )
    .await;
    link_from(&smtp, 1).await;
    assert_eq!(app.count("email_token").await, 1);
    assert_eq!(app.count("email_outbox").await, 1);
    let started = std::time::Instant::now();
    loop {
        let left = app.count("email_token").await
            + app.count("email_outbox").await
            + app.count("email_cooldown").await;
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{left} spent rows remain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stolen token alone cannot change the recovery address: changing the email needs
/// `current_password` (missing and wrong are field errors beside the email's own), the same
/// address or no address needs none, and the old address is told, with the new one masked and
/// no link that acts.
#[tokio::test]
async fn changing_the_email_needs_the_current_password_and_tells_the_old_address() {
    let (app, smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    let token = app.token_for("alice", PASSWORD).await;
    let before = app.snapshot().await;
    let patch = |body: serde_json::Value| app.call(Method::PATCH, "/users/me/", &token, Some(body));
    patch(json!({"email": "mallory@evil.example"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["This field is required."]}),
        );
    patch(json!({"email": "mallory@evil.example", "current_password": "not the password"}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"current_password": ["Invalid password."]}),
        );
    patch(json!({"email": "not-an-email", "current_password": ""}))
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"email": ["Enter a valid email address."], "current_password": ["This field may not be blank."]}),
        );
    app.call(
        Method::PUT,
        "/users/1/",
        &token,
        Some(json!({"email": "mallory@evil.example", "current_password": null})),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"current_password": ["This field may not be null."]}),
    );
    assert_eq!(app.snapshot().await, before, "nothing changed");
    for unchanged in [json!({}), json!({"email": "alice@example.com"})] {
        patch(unchanged).await.assert(
            StatusCode::OK,
            json!({"email": "alice@example.com", "id": 1, "username": "alice"}),
        );
    }
    patch(json!({"email": "alice.new@mail.example", "current_password": PASSWORD}))
        .await
        .assert(
            StatusCode::OK,
            json!({"email": "alice.new@mail.example", "id": 1, "username": "alice"}),
        );
    let notice = &smtp.wait_for(1).await[0];
    assert_eq!(notice.recipients, ["alice@example.com"]);
    assert_eq!(
        notice.subject(),
        "Example - The email address of your account has been changed"
    );
    assert!(notice.raw.contains("a***@m***.example"), "{}", notice.raw);
    assert!(
        !notice.raw.contains("alice.new"),
        "the new address is masked"
    );
    assert!(
        !notice.raw.contains("http://") && !notice.raw.contains("https://"),
        "no link: {}",
        notice.raw
    );
    assert_eq!(
        smtp.settle().await.len(),
        1,
        "one message, to the old address"
    );
}

/// An administrator changes a non-staff user's email without a password (as in Djoser), but a
/// staff or superuser account's only with their own `current_password` (and only a superuser
/// may: `authz::staff_cannot_take_over_an_account_with_more_power`); the old address is told
/// either way.
#[tokio::test]
async fn admins_need_their_password_to_change_a_staff_accounts_email() {
    let (app, smtp) = spawn(|_| {}).await;
    for name in ["admin", "bob", "carol", "root"] {
        register(&app, name, &format!("{name}@example.com")).await;
    }
    app.make_staff(3).await;
    app.exec("UPDATE auth_user SET is_superuser = TRUE WHERE id IN (1, 4)")
        .await;
    app.make_staff(1).await;
    app.state.auth.forget(&authd::auth::Invalidation::User(4));
    let admin = app.token_for("admin", PASSWORD).await;
    let app = &app;
    let change = |id: i64, body: serde_json::Value| {
        let path = format!("/users/{id}/");
        let admin = admin.clone();
        async move { app.call(Method::PATCH, &path, &admin, Some(body)).await }
    };
    let bob = change(2, json!({"email": "bob2@example.com"})).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text);
    for staff in [3, 4] {
        change(staff, json!({"email": "new@example.com"}))
            .await
            .assert(
                StatusCode::BAD_REQUEST,
                json!({"current_password": ["This field is required."]}),
            );
    }
    let carol = change(
        3,
        json!({"email": "carol2@example.com", "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(carol.status, StatusCode::OK, "{}", carol.text);
    let mut told: Vec<String> = smtp
        .wait_for(2)
        .await
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    told.sort();
    assert_eq!(told, ["bob@example.com", "carol@example.com"]);
}

/// `AUTHD_EMAIL_CHANGE_REQUIRES_PASSWORD=false` restores Djoser's behaviour; the old address is
/// still told.
#[tokio::test]
async fn without_the_password_rule_the_old_address_is_still_told() {
    let (app, smtp) = spawn(|s| s.email_change_requires_password = false).await;
    register(&app, "alice", "alice@example.com").await;
    let token = app.token_for("alice", PASSWORD).await;
    app.call(
        Method::PATCH,
        "/users/me/",
        &token,
        Some(json!({"email": "alice@elsewhere.example"})),
    )
    .await
    .assert(
        StatusCode::OK,
        json!({"email": "alice@elsewhere.example", "id": 1, "username": "alice"}),
    );
    assert_eq!(smtp.wait_for(1).await[0].recipients, ["alice@example.com"]);
}

/// Under `LOGIN_FIELD=email` the address changes through set_username (and a username reset
/// link); the old address is told there too.
#[tokio::test]
async fn the_email_login_path_tells_the_old_address() {
    let (app, smtp) = spawn(|s| s.djoser.login_field = authd::config::LoginField::Email).await;
    register(&app, "alice", "alice@example.com").await;
    let token = app
        .post_json(
            "/token/login/",
            json!({"email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await
        .json()["auth_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let changed = app
        .call(
            Method::POST,
            "/users/set_username/",
            &token,
            Some(json!({"new_email": "alice@new.example", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text);
    let notice = &smtp.wait_for(1).await[0];
    assert_eq!(notice.recipients, ["alice@example.com"]);
    assert!(notice.raw.contains("a***@n***.example"), "{}", notice.raw);
}

/// Wrong passwords on email changes count against the failure limits like any other
/// `current_password` check: past the limit, even the right one gets 429.
#[tokio::test]
async fn email_change_passwords_are_under_the_failure_limits() {
    let (app, _smtp) = spawn(|_| {}).await;
    register(&app, "alice", "alice@example.com").await;
    let token = app.token_for("alice", PASSWORD).await;
    for _ in 0..10 {
        let reply = app
            .call(
                Method::PATCH,
                "/users/me/",
                &token,
                Some(json!({"email": "mallory@evil.example", "current_password": "a guess"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    let refused = app
        .call(
            Method::PATCH,
            "/users/me/",
            &token,
            Some(json!({"email": "mallory@evil.example", "current_password": PASSWORD})),
        )
        .await;
    crate::helpers::assert_throttled(&refused, 15 * 60);
    assert_eq!(
        app.call(Method::GET, "/users/me/", &token, None)
            .await
            .json()["email"],
        "alice@example.com"
    );
}

/// Sign-up mail is limited per canonical address (NFKC, case folded), whatever the accounts and
/// purposes naming it: sign-ups that name a victim's address over and over mail it once per
/// window. Each sign-up still answers 201 and makes its account; `resend_activation` works once
/// the window has passed.
#[tokio::test]
async fn sign_up_mail_is_limited_per_address() {
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.mail.send_window = Duration::from_secs(3);
    })
    .await;
    for (name, address) in [
        ("alice", "victim@example.com"),
        ("bob", "VICTIM@example.com"),
        ("carol", "Victim@EXAMPLE.com"),
    ] {
        let created = register(&app, name, address).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    assert_eq!(app.count("auth_user").await, 3);
    let resent = app
        .post_json(
            "/users/resend_activation/",
            json!({"email": "victim@example.com"}),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::NO_CONTENT);
    let first = smtp.settle().await;
    assert_eq!(first.len(), 1, "one message per window: {first:#?}");
    assert_eq!(first[0].recipients, ["victim@example.com"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.post_json(
        "/users/resend_activation/",
        json!({"email": "VICTIM@example.com"}),
        None,
    )
    .await;
    let (uid, token) = smtp.wait_for(2).await[1].uid_and_token();
    assert_eq!(uid, "Mg", "bob's own link, once the window passed");
    let activated = app
        .post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None,
        )
        .await;
    assert_eq!(
        activated.status,
        StatusCode::NO_CONTENT,
        "{}",
        activated.text
    );
}

/// Confirmation mail (sign-up without activation) shares the address's window too.
#[tokio::test]
async fn confirmation_mail_is_limited_per_address() {
    let (app, smtp) = spawn(|s| s.djoser.send_confirmation_email = true).await;
    for name in ["alice", "bob", "carol"] {
        let created = register(&app, name, "victim@example.com").await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    assert_eq!(smtp.settle().await.len(), 1);
}

/// Pending reset and resend requests are kept once per (kind, canonical address), and at most
/// AUTHD_EMAIL_QUEUE_LIMIT of them: past it a request is answered as usual and dropped.
#[tokio::test]
async fn pending_requests_are_deduplicated_and_bounded() {
    let smtp = SmtpServer::start_slow(Duration::from_secs(3)).await;
    let port = smtp.port;
    let app = TestApp::spawn_with(|s| {
        use_smtp(s, port);
        s.mail.queue_limit = 2;
    })
    .await;
    for name in ["alice", "bob"] {
        register(&app, name, &format!("{name}@example.com")).await;
    }
    let request = |path: &'static str, email: &'static str| {
        app.post_json(path, json!({"email": email}), None)
    };
    request("/users/reset_password/", "alice@example.com").await;
    // The worker now waits on the slow server; what comes next stays pending.
    smtp.wait_for(1).await;
    for email in [
        "bob@example.com",
        "bob@example.com",
        "BOB@Example.com",
        "bob@example.com",
    ] {
        let reply = request("/users/reset_password/", email).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.count("email_request").await, 1, "one per address");
    request("/users/reset_username/", "bob@example.com").await;
    assert_eq!(app.count("email_request").await, 2, "one per kind");
    let dropped = request("/users/reset_password/", "alice@example.com").await;
    assert_eq!(dropped.status, StatusCode::NO_CONTENT, "answered as usual");
    assert_eq!(app.count("email_request").await, 2, "the queue is full");
    let messages = smtp.wait_for(3).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let messages = if messages.len() > 3 {
        messages
    } else {
        smtp.messages()
    };
    let mut subjects: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.recipients.join(","), m.subject()))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            (
                "alice@example.com".to_owned(),
                "Password reset on Example".to_owned()
            ),
            (
                "bob@example.com".to_owned(),
                "Password reset on Example".to_owned()
            ),
            (
                "bob@example.com".to_owned(),
                "Username reset on Example".to_owned()
            ),
        ]
    );
}

/// As in Djoser (`get_user` wants `has_usable_password()`): an account whose password is
/// unusable, as `authd import-django` leaves accounts that had none or a weak hash in Django,
/// is sent no reset link, for its password or its username, nor an activation mail again; the
/// answers are the same as for any address.
#[tokio::test]
async fn unusable_passwords_get_no_reset_or_activation_mail() {
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.mail.send_window = Duration::ZERO;
    })
    .await;
    for username in ["usable", "unusable", "waiting"] {
        let created = register(&app, username, &format!("{username}@example.com")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let activations = smtp.wait_for(3).await.len();
    app.exec("UPDATE auth_user SET is_active = true, activation_pending = false WHERE username <> 'waiting'")
        .await;
    app.exec("UPDATE auth_user SET password = '!MNL4An3tqVPH9L5rqMneNzlA1gjdpqPq0gZeVggW' WHERE username <> 'usable'")
        .await;
    for (path, username) in [
        ("/users/reset_password/", "unusable"),
        ("/users/reset_username/", "unusable"),
        ("/users/resend_activation/", "waiting"),
        ("/users/reset_password/", "usable"),
    ] {
        let reply = app
            .post_json(
                path,
                json!({"email": format!("{username}@example.com")}),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{path} {}",
            reply.text
        );
    }
    smtp.wait_for(activations + 1).await;
    let sent = smtp.settle().await;
    let recipients: Vec<&Vec<String>> = sent[activations..]
        .iter()
        .map(|message| &message.recipients)
        .collect();
    assert_eq!(recipients, [&vec!["usable@example.com".to_owned()]]);
}

/// A used link answers "stale" for as long as it would have worked, as Djoser's links do, not
/// only until the next purge: the purge deletes links once expired, used or not. (It ran at
/// start-up and once raced this very check in `register_activate_log_in_through_real_smtp`.)
#[tokio::test]
async fn a_used_link_stays_stale_across_purges() {
    let (app, smtp) = spawn(|s| {
        s.djoser.send_activation_email = true;
        s.maintenance.purge_interval = Duration::from_millis(200);
    })
    .await;
    register(&app, "alice", "alice@example.com").await;
    let (uid, token) = smtp.wait_for(1).await[0].uid_and_token();
    let activate = || {
        app.post_json(
            "/users/activation/",
            json!({"uid": uid, "token": token}),
            None,
        )
    };
    assert_eq!(activate().await.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    activate().await.assert(
        StatusCode::FORBIDDEN,
        json!({"detail": "Stale token for given user."}),
    );
}
