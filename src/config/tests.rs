use std::collections::HashMap;

use super::*;

fn load(env: &[(&str, &str)], flags: Flags) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load(&flags, |name| env.get(name).cloned())
}

fn with_file(contents: &str) -> (tempfile::TempDir, Flags) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("authd.toml");
    std::fs::write(&path, contents).expect("write");
    let flags = Flags {
        config: Some(path),
        ..Flags::default()
    };
    (dir, flags)
}

#[test]
fn defaults_are_djosers() {
    let settings = load(&[], Flags::default()).expect("defaults load");
    assert_eq!(settings.bind.to_string(), DEFAULT_BIND);
    assert_eq!(settings.database_url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(settings.djoser, Djoser::default());
    assert_eq!(settings.token_keywords, vec!["Token", "Bearer"]);
}

/// Every setting's example value arrives, through the environment and through the file, as
/// the same value; so every declared key is read from both sources.
#[test]
fn every_setting_round_trips_through_env_and_file() {
    let defaults = Settings::default();
    for def in table::SETTINGS {
        assert_ne!(
            def.show(&defaults),
            def.example,
            "{}: the example must differ from the default",
            def.key
        );
        let mut env = vec![(def.env, def.example)];
        if def.key == "email_url" {
            env.push(("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.com"));
        }
        // The TLS files come in pairs: each is given with its partner's example.
        let partner = match def.key {
            "tls_cert_file" => Some(lookup("tls_key_file")),
            "tls_key_file" => Some(lookup("tls_cert_file")),
            _ => None,
        };
        if let Some(partner) = partner {
            env.push((partner.env, partner.example));
        }
        let from_env = load(&env, Flags::default()).unwrap_or_else(|e| panic!("{}: {e}", def.env));
        assert_eq!(
            def.show(&from_env),
            def.example,
            "{} from the environment",
            def.env
        );

        let quoted = toml::Value::String(def.example.to_owned()).to_string();
        let mut file = format!("{} = {quoted}\n", def.key);
        if let Some(partner) = partner {
            let quoted = toml::Value::String(partner.example.to_owned()).to_string();
            file.push_str(&format!("{} = {quoted}\n", partner.key));
        }
        let (_dir, flags) = with_file(&file);
        let from_file = load(&[], flags).unwrap_or_else(|e| panic!("{}: {e}", def.key));
        assert_eq!(
            def.show(&from_file),
            def.example,
            "{} from the file",
            def.key
        );
        assert_eq!(def.env.to_lowercase().trim_start_matches("authd_"), def.key);
    }
}

/// A certificate without its key (or a key without its certificate) cannot serve HTTPS.
#[test]
fn tls_files_are_set_both_or_neither() {
    let cert = ("AUTHD_TLS_CERT_FILE", "/etc/authd/cert.pem");
    let key = ("AUTHD_TLS_KEY_FILE", "/etc/authd/key.pem");
    for (given, missing) in [(cert, key.0), (key, cert.0)] {
        let err = load(&[given], Flags::default()).expect_err("one of the pair");
        assert!(
            err.to_string()
                .contains(&format!("invalid setting {missing}")),
            "{err}"
        );
    }
    let both = load(&[cert, key], Flags::default()).expect("both");
    assert_eq!(both.tls_cert_file, Some(PathBuf::from(cert.1)));
    assert_eq!(both.tls_key_file, Some(PathBuf::from(key.1)));
}

#[test]
fn flags_beat_env_beat_file() {
    let (_dir, flags) =
        with_file("bind = \"127.0.0.1:1\"\nhide_users = false\nlogin_field = \"email\"\n");
    let settings = load(&[("AUTHD_BIND", "127.0.0.1:2")], flags.clone()).expect("load");
    assert_eq!(settings.bind.port(), 2);
    assert!(!settings.djoser.hide_users);
    assert_eq!(settings.djoser.login_field, LoginField::Email);
    let flags = Flags {
        bind: Some("127.0.0.1:3".into()),
        ..flags
    };
    let settings = load(&[("AUTHD_BIND", "127.0.0.1:2")], flags).expect("load");
    assert_eq!(settings.bind.port(), 3);
}

#[test]
fn toml_numbers_booleans_and_arrays_are_read() {
    let (_dir, flags) = with_file(
        "hide_users = false\ntoken_cache_seconds = 3\ntoken_keywords = [\"Bearer\", \"Token\"]\n",
    );
    let settings = load(&[], flags).expect("load");
    assert!(!settings.djoser.hide_users);
    assert_eq!(settings.token_cache_ttl, Duration::from_secs(3));
    assert_eq!(settings.token_keywords, vec!["Bearer", "Token"]);
}

#[test]
fn the_database_url_in_the_file_is_used() {
    let (_dir, flags) = with_file("database_url = \"postgres://db/authd\"\n");
    let settings = load(&[], flags).expect("load");
    assert_eq!(settings.database_url.expose(), "postgres://db/authd");
    assert_eq!(
        settings.database_max_connections, 10,
        "PostgreSQL's pool default"
    );
}

#[test]
fn bad_values_name_the_setting_as_the_operator_wrote_it() {
    for (env, name) in [
        (("AUTHD_HIDE_USERS", "maybe"), "AUTHD_HIDE_USERS"),
        (("AUTHD_ARGON2_MEMORY_KIB", "1024"), "ARGON2"),
        (("AUTHD_ARGON2_ITERATIONS", "1"), "ARGON2"),
        (("DATABASE_URL", "mysql://x"), "DATABASE_URL"),
        (("AUTHD_URL_PREFIX", "auth"), "AUTHD_URL_PREFIX"),
        (
            ("AUTHD_TRUSTED_PROXIES", "10.0.0.0/33"),
            "AUTHD_TRUSTED_PROXIES",
        ),
        (("AUTHD_HASH_THREADS", "0"), "AUTHD_HASH_THREADS"),
    ] {
        let err = load(&[env], Flags::default()).expect_err(env.0);
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(load(&[("AUTHD_HIDE_USERS", "TRUE")], Flags::default()).is_ok());
    let err = load(
        &[],
        Flags {
            database_url: Some("mysql://x".into()),
            ..Flags::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--database-url"), "{err}");
    let (_dir, flags) = with_file("hash_threads = -1\n");
    let err = load(&[], flags).unwrap_err();
    assert!(err.to_string().contains("hash_threads in"), "{err}");
}

/// Last uses are written in the background, at most every `min(60 s, idle ÷ 4)`: an idle limit
/// under a minute would log out tokens in use on another instance, so it stops start-up.
#[test]
fn idle_limits_under_a_minute_stop_start_up() {
    for short in ["1", "30", "59"] {
        let err = load(&[("AUTHD_TOKEN_IDLE_SECONDS", short)], Flags::default()).expect_err(short);
        assert!(
            err.to_string().contains("AUTHD_TOKEN_IDLE_SECONDS"),
            "{err}"
        );
    }
    for fine in ["0", "60", "1800"] {
        let settings = load(&[("AUTHD_TOKEN_IDLE_SECONDS", fine)], Flags::default()).expect(fine);
        assert_eq!(settings.tokens.idle.as_secs().to_string(), fine);
    }
}

/// No number can overflow a duration or a date later: every one has an upper bound.
#[test]
fn huge_numbers_are_refused_naming_the_setting() {
    for def in table::SETTINGS {
        if def.example.parse::<u64>().is_err() {
            continue;
        }
        let err = load(&[(def.env, "18446744073709551615")], Flags::default());
        assert!(
            matches!(&err, Err(e) if e.to_string().contains(def.env)),
            "{}: {err:?}",
            def.env
        );
    }
}

#[test]
fn unknown_file_keys_are_refused() {
    let (_dir, flags) = with_file("hid_users = true\n");
    let err = load(&[], flags).unwrap_err();
    assert!(err.to_string().contains("hid_users"), "{err}");
}

#[test]
fn unknown_authd_variables_are_reported_known_ones_are_not() {
    let names = [
        "AUTHD_HIDE_USER",
        "AUTHD_HIDE_USERS",
        "DATABASE_URL",
        "AUTHD_SUPERUSER_PASSWORD",
        "AUTHD_TEST_POSTGRES_URL",
        "AUTHD_BENCH_POSTGRES_URL",
        "HOME",
    ];
    assert_eq!(
        unknown_variables(names.iter().map(|n| n.to_string())),
        vec!["AUTHD_HIDE_USER"]
    );
}

#[test]
fn mail_settings_that_cannot_work_stop_start_up() {
    for (name, value) in [
        ("AUTHD_EMAIL_URL", "mailgun://x"),
        ("AUTHD_EMAIL_URL", "file://relative/dir"),
        ("AUTHD_ACTIVATION_URL", "#/activate/{uid}"),
        (
            "AUTHD_PASSWORD_RESET_CONFIRM_URL",
            "#/reset/{uid}/{token}/{user}",
        ),
        ("AUTHD_USERNAME_RESET_CONFIRM_URL", ""),
        ("AUTHD_EMAIL_FRONTEND_PROTOCOL", "ftp"),
        ("AUTHD_EMAIL_FRONTEND_DOMAIN", "example.com/path"),
        (
            "AUTHD_EMAIL_FRONTEND_SITE_NAME",
            "Example\r\nBcc: victim@example.com",
        ),
        ("AUTHD_DEFAULT_FROM_EMAIL", "not an address"),
        ("AUTHD_SEND_ACTIVATION_EMAIL", "yes"),
    ] {
        let err = load(&[(name, value)], Flags::default()).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = load(
        &[(
            "AUTHD_EMAIL_URL",
            "smtp://mail.example.com:587?tls=required",
        )],
        Flags::default(),
    )
    .expect_err("SMTP without a frontend domain");
    assert!(
        err.to_string().contains("AUTHD_EMAIL_FRONTEND_DOMAIN"),
        "{err}"
    );
    let settings = load(
        &[
            ("AUTHD_EMAIL_URL", "smtps://user:s3cret@mail.example.com"),
            ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.com"),
            ("AUTHD_SEND_ACTIVATION_EMAIL", "1"),
        ],
        Flags::default(),
    )
    .expect("valid mail settings");
    assert!(settings.djoser.send_activation_email);
    assert_eq!(
        settings.mail.site_name(),
        "app.example.com",
        "the site name defaults to the domain"
    );
    assert!(
        !format!("{settings:?}").contains("s3cret"),
        "the SMTP password is redacted"
    );
}

#[test]
fn passwords_in_urls_are_redacted_even_when_they_do_not_parse() {
    for raw in [
        "postgres://app:s3cret@db:5432/authd",
        "postgres://app:s3cret@db:notaport/authd",
        "smtps://user:s3cret@mail.example.com:99999",
        "app:s3cret@db",
    ] {
        let url = DatabaseUrl::new(raw);
        assert!(!format!("{url:?}").contains("s3cret"), "{raw}");
        assert!(!url.redacted().contains("s3cret"), "{raw}");
    }
}

/// A password with an unencoded `/`, `#`, `?` or `@` does not parse as meant, and drivers echo
/// such URLs whole in their errors: start-up stops with a message naming the setting, and the
/// message never holds the password.
#[test]
fn unencoded_passwords_stop_start_up_without_being_echoed() {
    for (name, raw) in [
        (
            "DATABASE_URL",
            "postgres://authd:pa#ss-SECRET@127.0.0.1:5432/authd",
        ),
        (
            "DATABASE_URL",
            "postgres://authd:pa/ss-SECRET@127.0.0.1:5432/authd",
        ),
        (
            "DATABASE_URL",
            "postgres://authd:pa@ss-SECRET@127.0.0.1:5432/authd",
        ),
        ("DATABASE_URL", "postgres://authd:12#SECRET@db/authd"),
        (
            "AUTHD_THROTTLE_REDIS_URL",
            "redis://:pa#ss-SECRET@127.0.0.1:6379",
        ),
        (
            "AUTHD_EMAIL_URL",
            "smtp://user:pa/ss-SECRET@mail.example.com:587",
        ),
    ] {
        let err = load(
            &[
                (name, raw),
                ("AUTHD_EMAIL_FRONTEND_DOMAIN", "app.example.com"),
            ],
            Flags::default(),
        )
        .expect_err(raw)
        .to_string();
        assert!(
            err.contains(&format!("{name}: the password must be percent-encoded")),
            "{err}"
        );
        assert!(!err.contains("SECRET"), "{err}");
    }
    for fine in [
        "postgres://authd:pa%23ss%2F%40x@127.0.0.1:5432/authd",
        "postgres://authd@db/authd",
        "postgres://db/authd?application_name=authd",
        "sqlite:///var/lib/authd/a@b.sqlite3?mode=rwc",
    ] {
        assert!(
            load(&[("DATABASE_URL", fine)], Flags::default()).is_ok(),
            "{fine}"
        );
    }
}

/// A library's error text may hold the URL it was given: whatever is printed passes through
/// the scrubber, which removes the password as written, percent-encoded and percent-decoded.
#[test]
fn library_errors_are_scrubbed_of_the_password_in_every_spelling() {
    let url = DatabaseUrl::new("postgres://authd:s3%2Fcr%40t+1@db.example.com:5432/authd");
    let leaky = "cannot connect to postgres://authd:s3%2Fcr%40t+1@db.example.com:5432/authd \
                 (password s3/cr@t+1, or s3%2Fcr%40t+1, or s3%2fcr%40t%2B1)";
    let scrubbed = url.scrub(leaky);
    for spelling in ["s3/cr@t+1", "s3%2Fcr%40t+1", "s3%2fcr%40t%2B1"] {
        assert!(!scrubbed.contains(spelling), "{spelling}: {scrubbed}");
    }
    assert!(scrubbed.contains("db.example.com"), "{scrubbed}");
    assert_eq!(
        DatabaseUrl::new("sqlite://authd.sqlite3?mode=rwc").scrub("disk I/O error"),
        "disk I/O error"
    );
}

#[test]
fn extra_user_fields_are_named_once_and_checked() {
    let settings = load(
        &[("AUTHD_USER_EXTRA_FIELDS", "permissions, groups,permissions")],
        Flags::default(),
    )
    .expect("loads");
    assert_eq!(
        settings.user_extra_fields,
        [UserExtraField::Groups, UserExtraField::Permissions]
    );
    let wrong = load(
        &[("AUTHD_USER_EXTRA_FIELDS", "groups,password")],
        Flags::default(),
    )
    .expect_err("password is no field to show");
    assert!(
        wrong.to_string().contains("\"password\" is not one of"),
        "{wrong}"
    );
}
