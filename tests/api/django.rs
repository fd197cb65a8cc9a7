//! Accounts whose password column holds a Django hash, as `authd import-django` is to leave
//! them: the right password logs in once with it, and the login rewrites it as authd's Argon2id;
//! a wrong one changes nothing; Django's weak and unusable formats never log in.

use authd::crypto::{HashClass, Scheme};
use reqwest::{Method, StatusCode};

use crate::helpers::{PASSWORD, TestApp};

/// Django 5.2's hashes of `PASSWORD`, made and checked by its own hashers
/// (tests/django/make_hashes.py; the unit tests in src/crypto/django.rs have more). PBKDF2 at
/// 36,000 iterations (Django 2.0's) rather than today's 1,000,000, which costs seconds per
/// check in a debug build.
const DJANGO_HASHES: [(&str, &str); 7] = [
    (
        "pbkdf2_sha256",
        "pbkdf2_sha256$36000$DrHMLCExdCId$cesaT/b7kMSrejWi2hPAFN3/Jsqw0BUZMDX5SZN/SCU=",
    ),
    (
        "pbkdf2_sha1",
        "pbkdf2_sha1$10000$AsvkvVLJsbmfF5NT1GdBcQ$r0SLBHTnumPh1arR9jq5bLtPZbE=",
    ),
    (
        "argon2id",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$VkFOM3A2bUpJczBTbGZ4QmdvaGt4NQ$spZigUZPzpXw/HaYcsoEN7D98Cb+zgiVmiZqCdwV0/Q",
    ),
    (
        "argon2i, no version",
        "argon2$argon2i$m=512,t=2,p=2$cGVwaDNSejl1WE1DcGVwdkRSczBudA$pprTS9xlRRKRRDmkwsl3Fw",
    ),
    (
        "bcrypt_sha256",
        "bcrypt_sha256$$2b$12$mghdYTRcnukvsbJPPrBqVeH6kNbiX5cf3dbJnGSL0iYDnhzfbUDoy",
    ),
    (
        "bcrypt",
        "bcrypt$$2b$12$wHZOTJFpwEno8nSH.lqogefCTkAE2v/uPWJOReceHJebgSopm4JW6",
    ),
    (
        "scrypt",
        "scrypt$16384$wsDAlfkfCEGYb1h7GbAERc$8$5$UcCvYAybTFaoswKpsbqnph+tUQB9MXs/l5Ce/dzZd/7v5+MUYRLP/2gdeS5rW/AV6fcWzXx2RZfKFWbGtSRRuQ==",
    ),
];

/// What authd's own hashes of today's default cost start with.
const ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// Registers `username` and puts `hash` in its password column, as an import would.
async fn with_hash(app: &TestApp, username: &str, hash: &str) -> i64 {
    let created = app.register(username, PASSWORD).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json()["id"].as_i64().expect("id");
    app.exec(&format!(
        "UPDATE auth_user SET password = '{hash}' WHERE id = {id}"
    ))
    .await;
    id
}

async fn stored_hash(app: &TestApp, id: i64) -> String {
    authd::store::users::credentials(app.db(), id)
        .await
        .expect("query")
        .expect("user")
        .password_hash
}

#[tokio::test]
async fn a_django_hash_logs_in_and_becomes_argon2id() {
    let app = TestApp::spawn().await;
    for (index, (algorithm, hash)) in DJANGO_HASHES.into_iter().enumerate() {
        let username = format!("user{index}");
        let id = with_hash(&app, &username, hash).await;
        let wrong = app.login(&username, "not the password").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{algorithm}");
        assert_eq!(stored_hash(&app, id).await, hash, "{algorithm}");

        app.token_for(&username, PASSWORD).await;
        let upgraded = stored_hash(&app, id).await;
        assert!(upgraded.starts_with(ARGON2ID), "{algorithm}: {upgraded}");
        app.token_for(&username, PASSWORD).await;
        assert_eq!(stored_hash(&app, id).await, upgraded, "{algorithm}");
        assert_eq!(
            app.login(&username, "not the password").await.status,
            StatusCode::BAD_REQUEST,
            "{algorithm}"
        );
    }
}

/// The OAuth2 password grant logs in as `/token/login/` does, upgrade included.
#[tokio::test]
async fn the_password_grant_upgrades_a_django_hash_too() {
    let app = TestApp::spawn().await;
    let (_, hash) = DJANGO_HASHES[0];
    let id = with_hash(&app, "alice", hash).await;
    let grant = |password: &'static str| {
        app.send(app.request(Method::POST, "/oauth/token").form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ]))
    };
    assert_eq!(
        grant("not the password").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(stored_hash(&app, id).await, hash);
    let granted = grant(PASSWORD).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert!(stored_hash(&app, id).await.starts_with(ARGON2ID));
}

/// Django's unusable password, and its salted MD5 (which Django itself still accepts), never
/// log in, not even with the password hashed, and are left as they are.
#[tokio::test]
async fn unusable_and_md5_hashes_never_log_in() {
    let app = TestApp::spawn().await;
    for (username, hash) in [
        ("unusable", "!MNL4An3tqVPH9L5rqMneNzlA1gjdpqPq0gZeVggW"),
        (
            "md5",
            "md5$t5JMfXLiyKnHXXw2msahR8$54fbf653d1dcda227048232547c86a02",
        ),
        ("unsalted_md5", "9cc2ae8a1ba7a93da39b46fc1019c481"),
    ] {
        let id = with_hash(&app, username, hash).await;
        let refused = app.login(username, PASSWORD).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{username}");
        assert_eq!(stored_hash(&app, id).await, hash, "{username}");
    }
}

/// While accounts keep their Django hash, a login with no usable hash (an unknown name, an
/// unusable password) checks a dummy of the most common of those hashes at its cost, so it
/// answers as slowly as a failed login of an imported account; once all have logged in and
/// been upgraded, a dummy of authd's own Argon2id again. Seen in the class of the job each
/// login ran on the hash threads, not in timings.
#[tokio::test]
async fn the_dummy_follows_the_legacy_hashes() {
    let app = TestApp::spawn().await;
    let hasher = &app.state.hasher;
    let own = Scheme::Argon2id(app.state.settings.hashing.cost);
    assert_eq!(hasher.dummy_scheme(), own);
    let (_, pbkdf2_sha256) = DJANGO_HASHES[0];
    let (_, pbkdf2_sha1) = DJANGO_HASHES[1];
    let imported = [
        ("ann", pbkdf2_sha256),
        ("bob", pbkdf2_sha256),
        ("cyd", pbkdf2_sha1),
    ];
    for (username, hash) in imported {
        with_hash(&app, username, hash).await;
    }
    with_hash(&app, "gone", "!MNL4An3tqVPH9L5rqMneNzlA1gjdpqPq0gZeVggW").await;
    app.create_user("dee").await;
    let sample = |limit| authd::store::users::legacy_hashes(app.db(), limit);
    let mut legacy = sample(10).await.expect("sample");
    legacy.sort();
    assert_eq!(legacy, [pbkdf2_sha1, pbkdf2_sha256, pbkdf2_sha256]);
    assert_eq!(sample(2).await.expect("sample").len(), 2);
    let follow = || authd::tasks::follow_legacy_hashes(app.db(), hasher);
    let legacy = Scheme::Pbkdf2Sha256 { iterations: 36_000 };
    assert_eq!(follow().await.expect("follow"), legacy);
    assert_eq!(hasher.dummy_scheme(), legacy);

    let jobs = || {
        (
            hasher.jobs_done(HashClass::Pbkdf2Sha256),
            hasher.jobs_done(HashClass::Argon2id),
        )
    };
    for username in ["nobody", "gone", "ann"] {
        let (pbkdf2, argon2id) = jobs();
        let refused = app.login(username, "not the password").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{username}");
        assert_eq!(jobs(), (pbkdf2 + 1, argon2id), "{username}");
    }

    for (username, _) in imported {
        app.token_for(username, PASSWORD).await;
    }
    assert_eq!(follow().await.expect("follow"), own);
    assert_eq!(hasher.dummy_scheme(), own);
    for username in ["nobody", "gone", "dee"] {
        let (pbkdf2, argon2id) = jobs();
        let refused = app.login(username, "not the password").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{username}");
        assert_eq!(jobs(), (pbkdf2, argon2id + 1), "{username}");
    }
}
