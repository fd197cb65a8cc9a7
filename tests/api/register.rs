use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

#[tokio::test]
async fn register_returns_djosers_body_and_stores_a_hash() {
    let app = TestApp::spawn().await;
    let reply = app
        .post_json("/users/", json!({"username": "alice", "email": "Alice@EXAMPLE.COM", "password": PASSWORD, "is_staff": true, "id": 99}), None)
        .await;
    reply.assert(
        StatusCode::CREATED,
        json!({"email": "Alice@example.com", "username": "alice", "id": 1}),
    );
    reply.assert_media_json();
    assert!(reply.headers.get("location").is_none());
    let keys: Vec<String> = reply
        .json()
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["email", "username", "id"]);
    assert_eq!(
        app.count("auth_token").await,
        0,
        "registration creates no token"
    );
    let user = authd::store::users::credentials(app.db(), 1)
        .await
        .expect("query")
        .expect("user");
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(
        !user.principal.is_staff,
        "unknown keys such as is_staff are ignored"
    );
}

#[tokio::test]
async fn register_field_errors_come_together() {
    let app = TestApp::spawn().await;
    app.post_json("/users/", json!({}), None).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["This field is required."], "password": ["This field is required."]}),
    );
    app.post_json("/users/", json!({"username": "  ", "password": "", "email": "nope"}), None).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["Enter a valid email address."], "username": ["This field may not be blank."], "password": ["This field may not be blank."]}),
    );
    app.post_json("/users/", json!({"username": null, "password": true}), None).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["This field may not be null."], "password": ["Not a valid string."]}),
    );
    app.post_json("/users/", json!({"username": "a\u{0}b", "password": PASSWORD}), None).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.", "Null characters are not allowed."]}),
    );
    assert_eq!(app.count("auth_user").await, 0);
}

#[tokio::test]
async fn username_length_limit_is_150() {
    let app = TestApp::spawn().await;
    app.register(&"a".repeat(150), PASSWORD).await.assert(
        StatusCode::CREATED,
        json!({"email": "", "username": "a".repeat(150), "id": 1}),
    );
    app.register(&"b".repeat(151), PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["Ensure this field has no more than 150 characters."]}),
    );
    app.register(&"$".repeat(151), PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": [
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            "Ensure this field has no more than 150 characters."
        ]}),
    );
    assert_eq!(app.count("auth_user").await, 1);
}

/// Django normalises (NFKC) a username when it stores it; a name that normalisation lengthens
/// past 150 characters (150 × "ﬀ" becomes 300 × "f") would overflow the column. It is refused
/// with the length message, checked in code, since SQLite ignores column lengths.
#[tokio::test]
async fn the_length_limit_applies_to_the_stored_form() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let before = app.snapshot().await;
    let too_long = json!({"username": ["Ensure this field has no more than 150 characters."]});
    app.register(&"\u{fb00}".repeat(150), PASSWORD)
        .await
        .assert(StatusCode::BAD_REQUEST, too_long);
    app.call(
        reqwest::Method::POST,
        "/users/set_username/",
        &token,
        Some(json!({"new_username": "\u{fb00}".repeat(76), "current_password": PASSWORD})),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"new_username": ["Ensure this field has no more than 150 characters."]}),
    );
    // Huge inputs are refused by their length before any normalisation or lookup.
    app.register(&"\u{fdfa}".repeat(200_000), PASSWORD)
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"username": ["Ensure this field has no more than 150 characters."]}),
        );
    app.login(&"\u{fdfa}".repeat(200_000), PASSWORD)
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
        );
    // Lowercasing the domain doubles each "İ": 249 characters as typed, 489 as stored.
    let domain = format!("{}com", format!("{}.", "\u{130}".repeat(60)).repeat(4));
    app.post_json(
        "/users/",
        json!({"username": "bob", "email": format!("a@{domain}"), "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["Ensure this field has no more than 254 characters."]}),
    );
    assert_eq!(app.snapshot().await, before);
    app.register(&"\u{fb00}".repeat(75), PASSWORD).await.assert(
        StatusCode::CREATED,
        json!({"email": "", "username": "f".repeat(150), "id": 2}),
    );
}

#[tokio::test]
async fn password_validators_run_in_djangos_order_before_the_retype_check() {
    let app = TestApp::spawn_with(|s| s.djoser.user_create_password_retype = true).await;
    app.post_json("/users/", json!({"username": "alice", "password": "abc", "re_password": "xyz"}), None)
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"password": ["This password is too short. It must contain at least 8 characters.", "This password is too common."]}),
        );
    app.post_json("/users/", json!({"username": "alice", "password": "alice123", "re_password": "alice123"}), None)
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({"password": ["The password is too similar to the username.", "This password is too common."]}),
        );
    app.post_json(
        "/users/",
        json!({"username": "alice", "password": "12345678", "re_password": "12345678"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"password": ["This password is too common.", "This password is entirely numeric."]}),
    );
    app.post_json(
        "/users/",
        json!({"username": "alice", "password": PASSWORD, "re_password": "other thing entirely"}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["The two password fields didn't match."]}),
    );
    app.post_json(
        "/users/",
        json!({"username": "alice", "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"re_password": ["This field is required."]}),
    );
    assert_eq!(app.count("auth_user").await, 0);
    let reply = app
        .post_json(
            "/users/",
            json!({"username": "alice", "password": PASSWORD, "re_password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn passwords_over_4096_bytes_are_refused_before_hashing() {
    let app = TestApp::spawn().await;
    app.register("alice", &"é".repeat(2049)).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"password": ["Ensure this field has no more than 4096 characters."]}),
    );
    assert_eq!(app.count("auth_user").await, 0);
    assert_eq!(
        app.register("alice", &format!("x{}", "é".repeat(2047)))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn usernames_are_unique_on_their_canonical_form_and_stored_as_typed() {
    let app = TestApp::spawn().await;
    app.register("  Alice  ", PASSWORD).await.assert(
        StatusCode::CREATED,
        json!({"email": "", "username": "Alice", "id": 1}),
    );
    for clash in ["alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ"] {
        app.register(clash, PASSWORD).await.assert(
            StatusCode::BAD_REQUEST,
            json!({"username": ["A user with that username already exists."]}),
        );
    }
    app.register("straße", PASSWORD).await;
    app.register("STRASSE", PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["A user with that username already exists."]}),
    );
    app.register("fi", PASSWORD).await;
    app.register("ﬁ", PASSWORD).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["A user with that username already exists."]}),
    );
    assert_eq!(app.count("auth_user").await, 3);
    // Login matches on the canonical form too.
    assert_eq!(app.login("ALICE", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn email_login_makes_emails_required_and_unique() {
    let app =
        TestApp::spawn_with(|s| s.djoser.login_field = authd::config::LoginField::Email).await;
    app.post_json(
        "/users/",
        json!({"username": "alice", "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["This field is required."]}),
    );
    let reply = app
        .post_json(
            "/users/",
            json!({"username": "alice", "email": "Alice@Example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    app.post_json(
        "/users/",
        json!({"username": "bob", "email": "ALICE@example.COM", "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"email": ["user with this email address already exists."]}),
    );
    let login = app
        .post_json(
            "/token/login/",
            json!({"email": "alice@EXAMPLE.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    app.post_json(
        "/token/login/",
        json!({"username": "alice", "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
    );
}

#[tokio::test]
async fn switching_to_email_login_fills_canonical_emails_or_refuses_duplicates() {
    let app = TestApp::spawn().await;
    for (name, email) in [
        ("alice", "Alice@Example.com"),
        ("bob", "bob@example.com"),
        ("carol", ""),
    ] {
        let reply = app
            .post_json(
                "/users/",
                json!({"username": name, "email": email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let mut settings = (*app.state.settings).clone();
    settings.djoser.login_field = authd::config::LoginField::Email;
    let state = authd::startup::open_state(settings.clone())
        .await
        .expect("unique emails allow the switch");
    let alice = authd::store::users::find_by_email(&state.db, "alice@example.com")
        .await
        .expect("query");
    assert_eq!(
        alice.map(|u| u.principal.username),
        Some("alice".to_owned())
    );

    app.exec("UPDATE auth_user SET email_canonical = NULL")
        .await;
    app.exec("UPDATE auth_user SET email = 'ALICE@example.com' WHERE username = 'bob'")
        .await;
    let refused = authd::startup::open_state(settings)
        .await
        .expect_err("duplicate emails refuse the switch");
    assert!(
        refused.to_string().contains("ALICE@example.com")
            || refused.to_string().contains("Alice@Example.com"),
        "{refused}"
    );

    let mut back = (*app.state.settings).clone();
    back.djoser.login_field = authd::config::LoginField::Username;
    authd::startup::open_state(back)
        .await
        .expect("switching back always works");
    assert_eq!(
        app.count("auth_user WHERE email_canonical IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn set_username_changes_the_email_under_email_login() {
    let app =
        TestApp::spawn_with(|s| s.djoser.login_field = authd::config::LoginField::Email).await;
    for (name, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        app.post_json(
            "/users/",
            json!({"username": name, "email": email, "password": PASSWORD}),
            None,
        )
        .await;
    }
    let login = app
        .post_json(
            "/token/login/",
            json!({"email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let token = login.json()["auth_token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.call(
        reqwest::Method::POST,
        "/users/set_username/",
        &token,
        Some(json!({"new_email": "BOB@example.com", "current_password": PASSWORD})),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"new_email": ["user with this email address already exists."]}),
    );
    let ok = app
        .call(
            reqwest::Method::POST,
            "/users/set_username/",
            &token,
            Some(json!({"new_email": "new@example.com", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    let login = app
        .post_json(
            "/token/login/",
            json!({"email": "NEW@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
}

/// djoser makes LOGIN_FIELD read-only in the user serializers: under email login, PUT and
/// PATCH ignore `email` (only set_username, which asks for the password, changes it).
#[tokio::test]
async fn the_login_email_is_read_only_in_user_updates() {
    let app =
        TestApp::spawn_with(|s| s.djoser.login_field = authd::config::LoginField::Email).await;
    let created = app
        .post_json(
            "/users/",
            json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    let id = created.json()["id"].as_i64().expect("id");
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
    let before = app.snapshot().await;
    let unchanged = json!({"email": "alice@example.com", "id": id, "username": "alice"});
    for (method, path) in [
        (reqwest::Method::PATCH, "/users/me/".to_owned()),
        (reqwest::Method::PUT, "/users/me/".to_owned()),
        (reqwest::Method::PATCH, format!("/users/{id}/")),
    ] {
        app.call(
            method,
            &path,
            &token,
            Some(json!({"email": "mallory@example.com"})),
        )
        .await
        .assert(StatusCode::OK, unchanged.clone());
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");
    let stolen = app
        .post_json(
            "/token/login/",
            json!({"email": "mallory@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
}

/// A write that loses at a unique index of `auth_user` names which one, as the database words
/// it (SQLite and PostgreSQL word it differently): what turns a lost race into "taken".
#[tokio::test]
async fn a_lost_race_at_the_unique_indexes_names_the_username_or_the_email() {
    use authd::store::OnConstraint;
    use authd::store::users::{self, NewUser, Taken};
    let app = TestApp::spawn().await;
    let new = |name: &str, email: &str| NewUser {
        username: name.into(),
        username_canonical: name.into(),
        email: email.into(),
        email_canonical: Some(email.into()),
        password_hash: "!".into(),
        is_active: true,
        activation_pending: false,
        is_staff: false,
        is_superuser: false,
    };
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
    users::insert(app.db(), new("alice", "alice@example.com"))
        .await
        .expect("the first account");
    let username = users::insert(app.db(), new("alice", "other@example.com"))
        .await
        .on_constraint(Failed::Taken);
    assert_eq!(username.err(), Some(Failed::Taken(Taken::Username)));
    let email = users::insert(app.db(), new("bob", "alice@example.com"))
        .await
        .on_constraint(Failed::Taken);
    assert_eq!(email.err(), Some(Failed::Taken(Taken::Email)));
    assert_eq!(app.count("auth_user").await, 1);
}
