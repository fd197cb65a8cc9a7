use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{PASSWORD, Reply, TestApp};

const SPEC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

/// `openapi.yaml` is generated from the code; `UPDATE_OPENAPI=1 cargo test` rewrites it.
#[test]
fn committed_spec_matches_the_code() {
    let generated = authd::http::openapi_yaml("");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(SPEC_FILE, &generated).expect("write openapi.yaml");
    }
    let committed = std::fs::read_to_string(SPEC_FILE).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is out of date: run `UPDATE_OPENAPI=1 cargo test committed_spec` (or `cargo run -- openapi > openapi.yaml`) and commit it"
    );
}

#[test]
fn paths_keep_djosers_trailing_slashes_and_protected_operations_need_a_token() {
    let document = authd::http::openapi_document("");
    let paths = document["paths"].as_object().expect("paths");
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/groups/",
            "/groups/{id}/",
            "/oauth/introspect",
            "/oauth/revoke",
            "/oauth/token",
            "/permissions/",
            "/permissions/{id}/",
            "/token/keys/",
            "/token/keys/{id}/",
            "/token/login/",
            "/token/logout/",
            "/token/logoutall/",
            "/token/sessions/",
            "/token/sessions/{id}/",
            "/token/verify/",
            "/users/",
            "/users/activation/",
            "/users/me/",
            "/users/me/events/",
            "/users/resend_activation/",
            "/users/reset_password/",
            "/users/reset_password_confirm/",
            "/users/reset_username/",
            "/users/reset_username_confirm/",
            "/users/set_password/",
            "/users/set_username/",
            "/users/{id}/",
            "/users/{id}/groups/",
            "/users/{id}/permissions/",
            "/users/{id}/roles/"
        ]
    );
    let open = [
        ("/users/", "post"),
        ("/token/login/", "post"),
        ("/users/activation/", "post"),
        ("/users/resend_activation/", "post"),
        ("/users/reset_password/", "post"),
        ("/users/reset_password_confirm/", "post"),
        ("/users/reset_username/", "post"),
        ("/users/reset_username_confirm/", "post"),
    ];
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let security = operation
                .get("security")
                .map(|s| s.to_string())
                .unwrap_or_default();
            let expected = if path == "/oauth/introspect" {
                r#"[{"clientBasic":[]}]"#
            } else if path.starts_with("/oauth/")
                || open.contains(&(path.as_str(), method.as_str()))
            {
                ""
            } else {
                r#"[{"tokenAuth":[]},{"oauth2":[]},{"apiKeyAuth":[]}]"#
            };
            assert_eq!(security, expected, "{method} {path}");
        }
    }
    let password_flow = &document["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
    assert_eq!(password_flow["tokenUrl"], "/oauth/token");
    assert_eq!(password_flow["scopes"], serde_json::json!({}));
    assert_eq!(
        authd::http::openapi_document("/auth")["components"]["securitySchemes"]["oauth2"]["flows"]
            ["password"]["tokenUrl"],
        "/auth/oauth/token",
        "the token URL moves under the prefix"
    );
    let key_scheme = &document["components"]["securitySchemes"]["apiKeyAuth"];
    assert_eq!(key_scheme["type"], "apiKey");
    assert_eq!(key_scheme["in"], "header");
    assert_eq!(key_scheme["name"], "X-API-Key");
    let scheme = &document["components"]["securitySchemes"]["tokenAuth"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["name"], "Authorization");
    assert!(
        scheme["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Token <key>")
    );
    let login = &paths["/token/login/"]["post"]["requestBody"]["content"];
    for media in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        assert!(login.get(media).is_some(), "{media}");
    }
}

/// The route table's idea of what anonymous callers may call (which decides what the
/// request-rate throttles count before DRF's 401) is exactly the operations documented without
/// a token.
#[test]
fn the_route_table_admits_anonymous_callers_where_no_token_is_documented() {
    let document = authd::http::openapi_document("");
    for (path, item) in document["paths"].as_object().expect("paths") {
        let Some(route) = authd::http::routes::find(path) else {
            assert!(
                path.starts_with("/oauth/"),
                "{path} is not in the route table"
            );
            continue;
        };
        for (method, operation) in item.as_object().expect("path item") {
            assert_eq!(
                route.admits_anonymous(&method.to_uppercase()),
                operation.get("security").is_none(),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn served_documents_match_the_committed_one() {
    let app = TestApp::spawn().await;
    let yaml = app.send(app.request(Method::GET, "/openapi.yaml")).await;
    assert_eq!(yaml.status, StatusCode::OK);
    assert_eq!(yaml.text, authd::http::openapi_yaml(""));
    let json = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(json.json(), authd::http::openapi_document(""));
    let docs = app.send(app.request(Method::GET, "/docs")).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.text.contains("SwaggerUIBundle"));
    assert!(
        docs.text.contains("\"/users/me/\""),
        "Swagger UI gets the slash-correct paths"
    );
    assert!(!docs.text.contains("\"/users/me\""));
}

/// Every documented operation is a route of the table, with the table's methods: the gate,
/// the `Allow` headers and the document cannot drift apart.
#[test]
fn documented_operations_are_the_route_tables() {
    let document = authd::http::openapi_document("");
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let route = authd::http::routes::ROUTES
            .iter()
            .find(|route| route.path == path)
            .unwrap_or_else(|| panic!("{path} is documented but not in the route table"));
        let mut documented: Vec<String> = item
            .as_object()
            .expect("path item")
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        documented.sort();
        let mut served: Vec<String> = route.methods().map(str::to_owned).collect();
        served.sort();
        assert_eq!(documented, served, "{path}");
    }
    assert_eq!(paths.len(), authd::http::routes::ROUTES.len());
}

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const SETTINGS_START: &str = "-->\n";

/// The settings reference in README.md is generated from the settings table;
/// `UPDATE_README=1 cargo test readme` rewrites it.
#[test]
fn readme_lists_every_setting_as_declared() {
    let text = std::fs::read_to_string(README).expect("README.md");
    let start = text.find("<!-- settings:start").expect("start marker");
    let start = start
        + text[start..]
            .find(SETTINGS_START)
            .expect("end of the marker")
        + SETTINGS_START.len();
    let end = text.find("<!-- settings:end -->").expect("end marker");
    let generated = authd::config::table::markdown();
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{generated}{}", &text[..start], &text[end..]);
        std::fs::write(README, updated).expect("write README.md");
        return;
    }
    assert!(
        text[start..end] == generated,
        "README.md's settings are out of date: run `UPDATE_README=1 cargo test readme` and commit it"
    );
}

/// Every operation may be shed with 503 and `Retry-After`: the hashing queue, or the database
/// being away.
#[test]
fn shedding_is_documented_everywhere() {
    let document = authd::http::openapi_document("");
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let response = &operation["responses"]["503"];
            assert!(
                response["headers"].get("Retry-After").is_some(),
                "{method} {path}: {response}"
            );
        }
    }
}

/// Every DRF operation but forward auth documents the 429 of the request-rate throttles, with
/// `Retry-After`; of OAuth2's, only the token endpoint (the password grant's failure limits).
#[test]
fn throttling_is_documented_where_it_can_happen() {
    let document = authd::http::openapi_document("");
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let throttles = (!path.starts_with("/oauth/") && path != "/token/verify/")
                || path == "/oauth/token";
            match operation["responses"].get("429") {
                Some(response) => {
                    assert!(throttles, "{method} {path} cannot throttle");
                    assert!(response["headers"].get("Retry-After").is_some());
                }
                None => assert!(!throttles, "{method} {path} does not document 429"),
            }
        }
    }
}

/// resend_activation answers djoser's empty 400 (no body, no Content-Type) while activation
/// emails are off: its 400 must not promise a JSON body, or a conformance fuzzer flags it.
#[test]
fn the_empty_400_of_resend_activation_is_documented() {
    let document = authd::http::openapi_document("");
    let response = &document["paths"]["/users/resend_activation/"]["post"]["responses"]["400"];
    assert!(response.is_object(), "a 400 is documented");
    assert!(response.get("content").is_none(), "{response}");
    assert!(
        response["description"]
            .as_str()
            .unwrap_or_default()
            .contains("empty"),
        "{response}"
    );
}

/// Whether the document allows `value` where it promises `schema`, for the part of OpenAPI
/// 3.0's JSON Schema that authd's document uses (`$ref`, `anyOf`, `nullable`, `type`,
/// `required`, `properties`, `additionalProperties`, `items`): the check `.ci/fuzz` makes,
/// here for the answers it once found undocumented.
fn conformance(document: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .ok_or_else(|| format!("unresolvable $ref {reference}"))?;
        return conformance(document, target, value);
    }
    if let Some(choices) = schema["anyOf"].as_array() {
        return match choices
            .iter()
            .any(|choice| conformance(document, choice, value).is_ok())
        {
            true => Ok(()),
            false => Err(format!("{value} matches none of {schema}")),
        };
    }
    if value.is_null() {
        return match schema["nullable"] == true {
            true => Ok(()),
            false => Err(format!("null where {schema} is not nullable")),
        };
    }
    let typed = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("type {other} is not handled here")),
    };
    if !typed {
        return Err(format!("{value} is not of type {}", schema["type"]));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{name} is missing from {value}"));
            }
        }
        for (name, field) in object {
            let property = schema["properties"]
                .get(name)
                .unwrap_or(&schema["additionalProperties"]);
            if *property == false {
                return Err(format!("{name} is not a documented property"));
            }
            conformance(document, property, field).map_err(|err| format!("{name}: {err}"))?;
        }
    }
    for item in value.as_array().into_iter().flatten() {
        conformance(document, &schema["items"], item)?;
    }
    Ok(())
}

/// The reply's status is documented for the operation, and its JSON body is one the document
/// allows.
#[track_caller]
fn assert_documented(document: &Value, method: &str, path: &str, reply: &Reply) {
    let response = &document["paths"][path][method]["responses"][reply.status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} does not document {}",
        reply.status
    );
    reply.assert_media_json();
    let schema = &response["content"]["application/json"]["schema"];
    if let Err(err) = conformance(document, schema, &reply.json()) {
        panic!("{method} {path} {}: {err}", reply.status);
    }
}

/// OAuth2's 400s are RFC 6749's `{"error", "error_description"}`, and so is what the
/// document promises for them (it once promised DRF's shapes, which the fuzzer flagged).
#[tokio::test]
async fn oauth2_errors_are_the_documented_ones() {
    let app = TestApp::spawn().await;
    let document = authd::http::openapi_document("");
    let created = app.command(&["client", "create", "Orders service"]).await;
    assert!(created.status.success(), "{created:?}");
    let client: Value = serde_json::from_slice(&created.stdout).expect("one JSON line");
    let (id, secret) = (
        client["client_id"].as_str().expect("client_id"),
        client["client_secret"].as_str().expect("client_secret"),
    );
    let requests = [
        ("/oauth/token", app.request(Method::POST, "/oauth/token")),
        ("/oauth/revoke", app.request(Method::POST, "/oauth/revoke")),
        (
            "/oauth/introspect",
            app.request(Method::POST, "/oauth/introspect")
                .basic_auth(id, Some(secret)),
        ),
    ];
    for (path, request) in requests {
        let reply = app.send(request.form(&[("token_type_hint", "")])).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_request", "{path}");
        assert_documented(&document, "post", path, &reply);
    }
}

/// A session not used since its login has `"last_used": null`, and one that never expires
/// `"expires": null`; the document allows both (the fuzzer found that it did not).
#[tokio::test]
async fn unused_and_unexpiring_sessions_are_documented() {
    let app = TestApp::spawn_with(|s| s.tokens.ttl = std::time::Duration::ZERO).await;
    let document = authd::http::openapi_document("");
    let (_, token) = app.create_user("alice").await;
    app.token_for("alice", PASSWORD).await;
    let reply = app
        .call(Method::GET, "/token/sessions/", &token, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let sessions = reply.json();
    let unused = sessions
        .as_array()
        .into_iter()
        .flatten()
        .find(|session| session["current"] == false)
        .expect("the second login's session");
    assert!(
        unused["last_used"].is_null() && unused["expires"].is_null(),
        "{unused}"
    );
    assert_documented(&document, "get", "/token/sessions/", &reply);
}
