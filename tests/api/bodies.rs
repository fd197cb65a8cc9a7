//! Bad input of every kind gets DRF's 4xx and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> crate::helpers::Reply {
    let mut builder = app.request(Method::POST, path).body(body);
    if let Some(content_type) = content_type {
        builder = builder.header("Content-Type", content_type);
    }
    app.send(builder).await
}

#[tokio::test]
async fn unparsable_and_misshapen_bodies() {
    let app = TestApp::spawn().await;
    app.create_user("alice").await;
    let before = app.snapshot().await;
    for path in ["/users/", "/token/login/"] {
        let reply = raw_post(
            &app,
            path,
            Some("application/json"),
            b"{\"username\": ".to_vec(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let detail = reply.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.starts_with("JSON parse error - "), "{detail}");
        reply.assert_media_json();

        for (body, got) in [
            ("[]", "list"),
            ("\"text\"", "str"),
            ("12", "int"),
            ("1.5", "float"),
            ("true", "bool"),
        ] {
            raw_post(&app, path, Some("application/json"), body.as_bytes().to_vec()).await.assert(
                StatusCode::BAD_REQUEST,
                json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {got}.")]}),
            );
        }
        raw_post(&app, path, Some("application/json"), b"null".to_vec())
            .await
            .assert(
                StatusCode::BAD_REQUEST,
                json!({"non_field_errors": ["No data provided"]}),
            );
        raw_post(&app, path, None, b"username=alice".to_vec())
            .await
            .assert(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": "Unsupported media type \"\" in request."}),
            );
        raw_post(&app, path, Some("text/plain"), b"hello".to_vec())
            .await
            .assert(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"detail": "Unsupported media type \"text/plain\" in request."}),
            );
        raw_post(&app, path, Some("application/vnd.api+json"), b"{}".to_vec()).await.assert(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"detail": "Unsupported media type \"application/vnd.api+json\" in request."}),
        );
        let broken = raw_post(
            &app,
            path,
            Some("multipart/form-data; boundary=XYZ"),
            b"--XYZ\r\ngarbage".to_vec(),
        )
        .await;
        assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.text);
        assert!(
            broken.json()["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Multipart form parse error - ")
        );
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn empty_bodies_read_as_empty_objects_whatever_their_type() {
    let app = TestApp::spawn().await;
    for content_type in [
        None,
        Some("application/json"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        raw_post(&app, "/users/", content_type, Vec::new()).await.assert(
            StatusCode::BAD_REQUEST,
            json!({"username": ["This field is required."], "password": ["This field is required."]}),
        );
    }
    assert_eq!(app.count("auth_user").await, 0);
}

#[tokio::test]
async fn json_with_charset_and_urlencoded_nul_characters() {
    let app = TestApp::spawn().await;
    let ok = raw_post(
        &app,
        "/users/",
        Some("application/json; charset=utf-8"),
        json!({"username": "alice", "password": PASSWORD})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    raw_post(&app, "/users/", Some("application/x-www-form-urlencoded"), b"username=bob%00&password=x%00y".to_vec())
        .await
        .assert(
            StatusCode::BAD_REQUEST,
            json!({
                "username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.", "Null characters are not allowed."],
                "password": ["Null characters are not allowed."]
            }),
        );
    let form = reqwest::multipart::Form::new()
        .text("username", "   ")
        .text("password", "\t");
    app.send(app.request(Method::POST, "/users/").multipart(form)).await.assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["This field may not be blank."], "password": ["This field may not be blank."]}),
    );
    assert_eq!(app.count("auth_user").await, 1);
}

#[tokio::test]
async fn a_one_megabyte_body_is_parsed_and_rejected_a_larger_one_is_413() {
    let app = TestApp::spawn().await;
    let big_name = "a".repeat(1024 * 1024);
    app.post_json(
        "/users/",
        json!({"username": big_name, "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        json!({"username": ["Ensure this field has no more than 150 characters."]}),
    );
    let huge = "b".repeat(3 * 1024 * 1024);
    app.post_json(
        "/users/",
        json!({"username": huge, "password": PASSWORD}),
        None,
    )
    .await
    .assert(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"detail": "Request body is too large."}),
    );
    let chunked = reqwest::Body::wrap_stream(futures::stream::iter(
        (0..30).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100_000])),
    ));
    let reply = app
        .send(
            app.request(Method::POST, "/token/login/")
                .header("Content-Type", "application/json")
                .body(chunked),
        )
        .await;
    reply.assert(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"detail": "Request body is too large."}),
    );
    assert_eq!(app.count("auth_user").await, 0);
}

#[tokio::test]
async fn no_field_type_produces_a_server_error() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("alice").await;
    let values = [
        json!(null),
        json!(true),
        json!(1),
        json!(-1.5),
        json!([]),
        json!({}),
        json!(""),
        json!(" "),
        json!("\u{0}"),
        json!("x".repeat(5000)),
    ];
    let fields = [
        "username",
        "password",
        "email",
        "re_password",
        "current_password",
        "new_password",
        "re_new_password",
        "new_username",
    ];
    for value in &values {
        let body = serde_json::Value::Object(
            fields
                .iter()
                .map(|f| (f.to_string(), value.clone()))
                .collect(),
        );
        for (method, path) in [
            (Method::POST, "/users/"),
            (Method::POST, "/token/login/"),
            (Method::PATCH, "/users/me/"),
            (Method::PUT, "/users/1/"),
            (Method::POST, "/users/set_password/"),
            (Method::POST, "/users/set_username/"),
            (Method::DELETE, "/users/me/"),
        ] {
            let reply = app
                .call(method.clone(), path, &token, Some(body.clone()))
                .await;
            assert!(
                !reply.status.is_server_error(),
                "{method} {path} {value} → {} {}",
                reply.status,
                reply.text
            );
        }
    }
    assert_eq!(app.count("auth_user").await, 1);
}
