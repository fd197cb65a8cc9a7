//! End to end: authd and the contacts service both run in this process, each on a random port
//! and a fresh SQLite database; users sign up and log in over HTTP, and the operator's steps
//! (the client, the `contacts.*` permissions, grants) are done with authd's library calls, as
//! its CLI does.

use std::time::{Duration, Instant};

use chrono::Datelike;

use authd::authz::{self, Edit, PermissionChange, RolesChange, Who};
use authd::state::AppState;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct World {
    authd: String,
    authd_state: AppState,
    contacts: String,
    contacts_settings: contacts::config::Settings,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct User {
    id: i64,
    name: String,
    token: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
    www_authenticate: Option<String>,
}

impl World {
    async fn start() -> Self {
        Self::start_caching_for(Duration::from_secs(5)).await
    }

    async fn start_caching_for(cache_for: Duration) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let mut settings = authd::config::Settings::for_database(sqlite("authd.sqlite3"));
        settings.bind = "127.0.0.1:0".parse().expect("address");
        settings.hashing.queue_timeout = Duration::from_secs(60);
        let authd_app = authd::startup::Application::build(settings)
            .await
            .expect("authd starts");
        let authd = format!("http://{}", authd_app.address());
        let authd_state = authd_app.state().clone();
        tokio::spawn(authd_app.run(std::future::pending()));

        let client = authd::oauth::create_client(&authd_state, "contacts", false, &[])
            .await
            .expect("a client");
        for (codename, name) in [
            ("view_contact", "Can view contact"),
            ("change_contact", "Can change contact"),
            ("delete_contact", "Can delete contact"),
        ] {
            let change = PermissionChange {
                app_label: Some("contacts".into()),
                codename: Some(codename.into()),
                name: Some(name.into()),
            };
            authz::create_permission(&authd_state, Who::Operator, Ok(change))
                .await
                .expect("a permission");
        }

        let settings = contacts::config::Settings {
            bind: "127.0.0.1:0".parse().expect("address"),
            database_url: sqlite("contacts.sqlite3"),
            authd_url: authd.clone(),
            client_id: client.client_id,
            client_secret: client.client_secret.expect("a confidential client"),
            cache_for,
        };
        let contacts = serve(settings.clone()).await;
        Self {
            authd,
            authd_state,
            contacts,
            contacts_settings: settings,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Another instance of the contacts service, on the same database unless `configure`
    /// says otherwise; its base URL.
    async fn another_instance(
        &self,
        configure: impl FnOnce(&mut contacts::config::Settings),
    ) -> String {
        let mut settings = self.contacts_settings.clone();
        configure(&mut settings);
        serve(settings).await
    }

    /// Signs up and logs in over authd's HTTP API.
    async fn user(&self, name: &str) -> User {
        let form = [("username", name), ("password", PASSWORD)];
        let created: Value = self
            .http
            .post(format!("{}/users/", self.authd))
            .form(&form)
            .send()
            .await
            .expect("sign-up")
            .json()
            .await
            .expect("JSON");
        let login: Value = self
            .http
            .post(format!("{}/token/login/", self.authd))
            .form(&form)
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("JSON");
        User {
            id: created["id"].as_i64().expect("an id"),
            name: name.to_owned(),
            token: login["auth_token"].as_str().expect("a token").to_owned(),
        }
    }

    /// `authd user grant NAME PERMISSION`.
    async fn grant(&self, user: &User, permission: &str) {
        let id = authz::user_id(&self.authd_state, &user.name)
            .await
            .expect("the user");
        authz::set_user_permissions(
            &self.authd_state,
            Who::Operator,
            &id,
            Ok(Edit::Add(permission.into())),
        )
        .await
        .expect("granted");
    }

    /// `authd user set-staff` / `set-superuser NAME true`.
    async fn promote(&self, user: &User, roles: RolesChange) {
        let id = authz::user_id(&self.authd_state, &user.name)
            .await
            .expect("the user");
        authz::update_roles(&self.authd_state, Who::Operator, &id, Ok(roles))
            .await
            .expect("promoted");
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<String>,
        body: Option<&str>,
    ) -> Reply {
        self.send_to(&self.contacts, method, path, authorization, body)
            .await
    }

    async fn send_to(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        authorization: Option<String>,
        body: Option<&str>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("a response");
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().expect("ASCII").to_owned());
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
        };
        Reply {
            status,
            body,
            www_authenticate,
        }
    }

    async fn get(&self, user: &User, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(token(user)), None)
            .await
    }

    async fn post(&self, user: &User, path: &str, body: Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(token(user)),
            Some(&body.to_string()),
        )
        .await
    }

    async fn put(&self, user: &User, path: &str, body: Value) -> Reply {
        self.send(
            reqwest::Method::PUT,
            path,
            Some(token(user)),
            Some(&body.to_string()),
        )
        .await
    }

    async fn patch(&self, user: &User, path: &str, body: Value) -> Reply {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(token(user)),
            Some(&body.to_string()),
        )
        .await
    }

    async fn delete(&self, user: &User, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, Some(token(user)), None)
            .await
    }

    /// A contact `user` creates; its id.
    async fn contact(&self, user: &User, body: Value) -> i64 {
        let reply = self.post(user, "/contacts/", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().expect("an id")
    }
}

async fn serve(settings: contacts::config::Settings) -> String {
    let app = contacts::Application::build(settings)
        .await
        .expect("contacts starts");
    let address = format!("http://{}", app.address());
    tokio::spawn(app.run(std::future::pending()));
    address
}

fn token(user: &User) -> String {
    format!("Token {}", user.token)
}

fn names(reply: &Reply) -> Vec<&str> {
    reply
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|contact| contact["first_name"].as_str().expect("a name"))
        .collect()
}

fn ada() -> Value {
    json!({
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "birthday": "1815-12-10",
        "notes": "Analytical Engine",
    })
}

#[tokio::test]
async fn without_a_valid_token_every_route_answers_401() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let id = world.contact(&alice, ada()).await;
    let contact = format!("/contacts/{id}/");
    for (authorization, detail) in [
        (None, "Authentication credentials were not provided."),
        (
            Some("Basic YWxpY2U6cGFzc3dvcmQ=".to_owned()),
            "Authentication credentials were not provided.",
        ),
        (Some("Token not-a-token".to_owned()), "Invalid token."),
        (Some("Bearer not-a-token".to_owned()), "Invalid token."),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, "/contacts/"),
            (reqwest::Method::POST, "/contacts/"),
            (reqwest::Method::GET, "/contacts/birthdays/"),
            (reqwest::Method::GET, contact.as_str()),
            (reqwest::Method::PUT, contact.as_str()),
            (reqwest::Method::DELETE, contact.as_str()),
        ] {
            let reply = world
                .send(method.clone(), path, authorization.clone(), Some("{}"))
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(reply.body, json!({"detail": detail}));
            assert_eq!(reply.www_authenticate.as_deref(), Some("Token"));
        }
    }
    // Nothing was changed or deleted.
    assert_eq!(
        world.get(&alice, &contact).await.body["notes"],
        "Analytical Engine"
    );
}

#[tokio::test]
async fn a_created_contact_is_returned_with_201_listed_and_searchable() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let reply = world.post(&alice, "/contacts/", ada()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["id"].as_i64().expect("an id");
    let mut expected = ada();
    expected["id"] = json!(id);
    expected["owner"] = json!(alice.id);
    assert_eq!(reply.body, expected);

    // A Bearer token works as well as DRF's `Token`.
    let read = world
        .send(
            reqwest::Method::GET,
            &format!("/contacts/{id}/"),
            Some(format!("Bearer {}", alice.token)),
            None,
        )
        .await;
    assert_eq!((read.status, read.body), (StatusCode::OK, expected.clone()));

    world
        .contact(
            &alice,
            json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.mil"}),
        )
        .await;
    let all = world.get(&alice, "/contacts/").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(names(&all), ["Grace", "Ada"]);
    assert_eq!(all.body[1], expected);
    let grace = &all.body[0];
    assert_eq!(
        (&grace["phone"], &grace["birthday"], &grace["notes"]),
        (&json!(""), &Value::Null, &json!(""))
    );

    for (search, found) in [
        ("love", vec!["Ada"]),
        ("ADA", vec!["Ada"]),
        ("navy", vec!["Grace"]),
        ("grace hopper", vec!["Grace"]),
        ("grace lovelace", vec![]),
        ("example.com", vec!["Ada"]),
        ("Engine", vec![]),
        // `%` and `_` are no wildcards (`%25` is `%` in a query string, `%40` is `@`).
        ("%25", vec![]),
        ("_", vec![]),
        ("ada%25", vec![]),
        ("ada%40", vec!["Ada"]),
        ("", vec!["Grace", "Ada"]),
    ] {
        let reply = world
            .get(&alice, &format!("/contacts/?search={search}"))
            .await;
        assert_eq!(names(&reply), found, "search={search}");
    }
}

#[tokio::test]
async fn another_users_contact_is_not_found() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");

    assert!(names(&world.get(&bob, "/contacts/").await).is_empty());
    assert!(names(&world.get(&bob, "/contacts/?search=ada").await).is_empty());
    let not_found = json!({"detail": "Not found."});
    for reply in [
        world.get(&bob, &path).await,
        world.put(&bob, &path, json!({"first_name": "Eve"})).await,
        world.patch(&bob, &path, json!({"first_name": "Eve"})).await,
        world.delete(&bob, &path).await,
        world.get(&bob, "/contacts/999/").await,
        world.get(&bob, "/contacts/not-a-number/").await,
    ] {
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::NOT_FOUND, not_found.clone())
        );
    }
    assert_eq!(world.get(&alice, &path).await.body["first_name"], "Ada");
}

#[tokio::test]
async fn view_contact_shows_everyones_contacts_but_does_not_let_them_be_changed() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let viewer = world.user("viewer").await;
    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");
    world.grant(&viewer, "contacts.view_contact").await;

    assert_eq!(names(&world.get(&viewer, "/contacts/").await), ["Ada"]);
    let read = world.get(&viewer, &path).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["owner"], alice.id);

    let forbidden = json!({"detail": "You do not have permission to perform this action."});
    for reply in [
        world
            .put(&viewer, &path, json!({"first_name": "Eve"}))
            .await,
        world
            .patch(&viewer, &path, json!({"notes": "changed"}))
            .await,
        world.delete(&viewer, &path).await,
    ] {
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::FORBIDDEN, forbidden.clone())
        );
    }
    let after = world.get(&alice, &path).await.body;
    assert_eq!(
        (&after["first_name"], &after["notes"]),
        (&json!("Ada"), &json!("Analytical Engine"))
    );

    // The viewer's own contacts are still theirs alone to create.
    let own = world
        .post(&viewer, "/contacts/", json!({"first_name": "Vera"}))
        .await;
    assert_eq!(own.body["owner"], viewer.id);
    assert!(names(&world.get(&alice, "/contacts/").await) == ["Ada"]);
}

#[tokio::test]
async fn change_and_delete_contact_let_others_contacts_be_modified() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let editor = world.user("editor").await;
    let remover = world.user("remover").await;
    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");
    world.grant(&editor, "contacts.change_contact").await;
    world.grant(&remover, "contacts.delete_contact").await;

    // Changing is not deleting, and the other way round.
    assert_eq!(
        world.delete(&editor, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        world
            .patch(&remover, &path, json!({"notes": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let changed = world
        .patch(&editor, &path, json!({"notes": "Notes on the Engine"}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["notes"], "Notes on the Engine");
    assert_eq!(changed.body["owner"], alice.id, "the owner stays");
    let replaced = world
        .put(
            &editor,
            &path,
            json!({"first_name": "Augusta", "owner": editor.id}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(
        (
            &replaced.body["first_name"],
            &replaced.body["last_name"],
            &replaced.body["owner"]
        ),
        (&json!("Augusta"), &json!("Lovelace"), &json!(alice.id)),
        "fields left out of a PUT keep their values; owner is read-only"
    );

    let deleted = world.delete(&remover, &path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(world.get(&alice, &path).await.status, StatusCode::NOT_FOUND);
    assert!(names(&world.get(&alice, "/contacts/").await).is_empty());
}

#[tokio::test]
async fn is_staff_alone_grants_nothing() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let staff = world.user("staff").await;
    let staff_only = RolesChange {
        is_staff: Some(true),
        is_superuser: None,
    };
    world.promote(&staff, staff_only).await;
    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");

    assert!(names(&world.get(&staff, "/contacts/").await).is_empty());
    assert_eq!(world.get(&staff, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        world.delete(&staff, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(world.get(&alice, &path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn birthdays_lists_the_coming_days_soonest_first() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    let today = chrono::Utc::now().date_naive();
    // Born 28 years before the day `ahead` days from now: a multiple of four years, so even
    // a February 29 exists then.
    let born = |ahead: u64| {
        let day = today + chrono::Days::new(ahead);
        let birthday = day
            .with_year(day.year() - 28)
            .expect("a leap year for a leap day");
        birthday.format("%Y-%m-%d").to_string()
    };
    for (name, ahead) in [("Soon", 6), ("Today", 0), ("Later", 10), ("Past", 400)] {
        world
            .contact(&alice, json!({"first_name": name, "birthday": born(ahead)}))
            .await;
    }
    world
        .contact(&alice, json!({"first_name": "Unknown"}))
        .await;
    world
        .contact(&bob, json!({"first_name": "Bobs", "birthday": born(1)}))
        .await;

    let default = world.get(&alice, "/contacts/birthdays/").await;
    assert_eq!(default.status, StatusCode::OK);
    assert_eq!(names(&default), ["Today", "Soon"]);
    assert_eq!(
        names(&world.get(&alice, "/contacts/birthdays/?days=10").await),
        ["Today", "Soon", "Later"]
    );
    assert_eq!(
        names(&world.get(&alice, "/contacts/birthdays/?days=0").await),
        ["Today"]
    );
    assert_eq!(
        names(&world.get(&bob, "/contacts/birthdays/").await),
        ["Bobs"]
    );

    for (days, message) in [
        ("-1", "Ensure this value is greater than or equal to 0."),
        ("367", "Ensure this value is less than or equal to 366."),
        ("week", "A valid integer is required."),
    ] {
        let reply = world
            .get(&alice, &format!("/contacts/birthdays/?days={days}"))
            .await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::BAD_REQUEST, json!({"days": [message]}))
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_field_errors_and_changes_nothing() {
    let world = World::start().await;
    let alice = world.user("alice").await;

    for (body, errors) in [
        (
            json!({"last_name": "Lovelace"}),
            json!({"first_name": ["This field is required."]}),
        ),
        (
            json!({"first_name": "  ", "email": "ada at example", "birthday": "1815-02-30"}),
            json!({
                "first_name": ["This field may not be blank."],
                "email": ["Enter a valid email address."],
                "birthday": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."],
            }),
        ),
        (
            json!({"first_name": "Ada", "phone": "0".repeat(33), "last_name": null}),
            json!({
                "last_name": ["This field may not be null."],
                "phone": ["Ensure this field has no more than 32 characters."],
            }),
        ),
        (
            json!("Ada"),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
        ),
    ] {
        let reply = world.post(&alice, "/contacts/", body.clone()).await;
        assert_eq!(
            (reply.status, reply.body),
            (StatusCode::BAD_REQUEST, errors),
            "{body}"
        );
    }
    let not_json = world
        .send(
            reqwest::Method::POST,
            "/contacts/",
            Some(token(&alice)),
            Some("{\"first_name\":"),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(
        not_json.body["detail"]
            .as_str()
            .expect("a detail")
            .starts_with("JSON parse error"),
        "{}",
        not_json.body
    );
    assert!(names(&world.get(&alice, "/contacts/").await).is_empty());

    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");
    let before = world.get(&alice, &path).await.body;
    for reply in [
        world
            .put(&alice, &path, json!({"last_name": "Byron"}))
            .await,
        world
            .patch(
                &alice,
                &path,
                json!({"notes": "kept?", "birthday": "10/12/1815"}),
            )
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    }
    assert_eq!(world.get(&alice, &path).await.body, before);

    let cleared = world.patch(&alice, &path, json!({"birthday": null})).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.body["birthday"], Value::Null);
    assert_eq!(cleared.body["first_name"], "Ada");
}

#[tokio::test]
async fn a_revoked_token_stops_working_once_the_cache_expires() {
    let cache_for = Duration::from_secs(2);
    let world = World::start_caching_for(cache_for).await;
    let alice = world.user("alice").await;
    assert_eq!(world.get(&alice, "/contacts/").await.status, StatusCode::OK);
    let cached = Instant::now();

    let logout = world
        .http
        .post(format!("{}/token/logout/", world.authd))
        .header("Authorization", token(&alice))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let revoked = Instant::now();
    // The answer cached before the logout is still trusted: the price of not asking authd on
    // every request, bounded by `cache_for`.
    let at_once = world.get(&alice, "/contacts/").await;
    if cached.elapsed() < cache_for {
        assert_eq!(at_once.status, StatusCode::OK, "served from the cache");
    }
    loop {
        let reply = world.get(&alice, "/contacts/").await;
        if reply.status == StatusCode::UNAUTHORIZED {
            assert_eq!(reply.body, json!({"detail": "Invalid token."}));
            break;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            revoked.elapsed() < cache_for + Duration::from_millis(500),
            "still accepted {:?} after logout",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A live token is asked about again once its answer expires, and still works.
    let bob = world.user("bob").await;
    assert_eq!(world.get(&bob, "/contacts/").await.status, StatusCode::OK);
    tokio::time::sleep(cache_for + Duration::from_millis(100)).await;
    assert_eq!(world.get(&bob, "/contacts/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_permission_granted_later_applies_within_the_cache_time() {
    let cache_for = Duration::from_secs(1);
    let world = World::start_caching_for(cache_for).await;
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    world.contact(&alice, ada()).await;
    assert!(names(&world.get(&bob, "/contacts/").await).is_empty());
    world.grant(&bob, "contacts.view_contact").await;
    tokio::time::sleep(cache_for + Duration::from_millis(100)).await;
    assert_eq!(names(&world.get(&bob, "/contacts/").await), ["Ada"]);
}

#[tokio::test]
async fn a_superuser_holds_every_contacts_permission() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let root = world.user("root").await;
    let superuser = RolesChange {
        is_staff: None,
        is_superuser: Some(true),
    };
    world.promote(&root, superuser).await;
    let id = world.contact(&alice, ada()).await;
    let path = format!("/contacts/{id}/");

    assert_eq!(names(&world.get(&root, "/contacts/").await), ["Ada"]);
    let changed = world.patch(&root, &path, json!({"notes": "audited"})).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["owner"], alice.id);
    assert_eq!(
        world.delete(&root, &path).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(names(&world.get(&alice, "/contacts/").await).is_empty());
}

#[tokio::test]
async fn when_authd_cannot_be_asked_the_answer_is_503_not_401() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("an address");
    let unreachable = world
        .another_instance(|settings| settings.authd_url = format!("http://{closed}"))
        .await;
    let wrong_secret = world
        .another_instance(|settings| settings.client_secret = "not-the-secret".into())
        .await;
    for base in [unreachable, wrong_secret] {
        let reply = world
            .send_to(
                &base,
                reqwest::Method::POST,
                "/contacts/",
                Some(token(&alice)),
                Some(&ada().to_string()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.body),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": "The authentication service is unavailable."})
            )
        );
    }
    assert!(names(&world.get(&alice, "/contacts/").await).is_empty());
}

#[tokio::test]
async fn a_restarted_instance_keeps_the_contacts() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    let id = world.contact(&alice, ada()).await;
    // Its start finds the schema already made and leaves it as it is.
    let restarted = world.another_instance(|_| {}).await;
    let reply = world
        .send_to(
            &restarted,
            reqwest::Method::GET,
            &format!("/contacts/{id}/"),
            Some(token(&alice)),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["first_name"], "Ada");
}

#[tokio::test]
async fn changes_racing_a_deletion_answer_200_or_404_never_500() {
    let world = World::start().await;
    let alice = world.user("alice").await;
    for round in 0..20 {
        let id = world
            .contact(&alice, json!({"first_name": format!("Round {round}")}))
            .await;
        let path = format!("/contacts/{id}/");
        let (changed, deleted) = tokio::join!(
            world.patch(&alice, &path, json!({"notes": "raced"})),
            world.delete(&alice, &path),
        );
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND].contains(&changed.status),
            "{} {}",
            changed.status,
            changed.body
        );
        assert_eq!(world.get(&alice, &path).await.status, StatusCode::NOT_FOUND);
    }
    assert!(names(&world.get(&alice, "/contacts/").await).is_empty());
}
