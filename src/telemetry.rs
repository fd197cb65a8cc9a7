//! Logging: `RUST_LOG` filters (default `info`); lines go to stderr so stdout stays free for
//! command output, as text or as JSON (`AUTHD_LOG_FORMAT`). No handler logs passwords, tokens or
//! headers, and what a library says about a URL it was given is scrubbed of the URL's password
//! before it is printed.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing-subscriber's human-readable lines.
    Text,
    /// One JSON object per line, in tracing-subscriber's field names, for log shippers.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `default_level` applies when `RUST_LOG` is not set.
///
/// JSON lines are tracing-subscriber's own: `timestamp`, `level`, `target`, `fields` (with
/// `message`), and `span` (the innermost span's fields: a request's `request_id`, the one
/// answered in `X-Request-Id`). Only the innermost span is written: the request span is the
/// only one authd opens, and a list of one would be noise on every line.
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// An error and every cause under it, `outer: inner: innermost`, for a log line: "database
/// error" alone says nothing about what failed.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The URL with its password replaced by `***`, even when it does not parse as a URL.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.has_host() => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        _ => match raw.split_once("://") {
            Some((scheme, rest)) => match rest.rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => raw.to_owned(),
            },
            None if raw.contains('@') => "***".into(),
            None => raw.to_owned(),
        },
    }
}

/// `text` (a library's error about `url`) with `url` redacted and its password replaced by
/// `***` wherever it appears: as written, percent-decoded, or percent-encoded in any way (any
/// byte as `%XX`, hex digits in either case). Drivers put URLs in their errors; whatever they
/// said must not carry the password into a log line or onto a terminal.
pub fn scrub_url_secret(text: &str, url: &str) -> String {
    let text = text.replace(url, &redact_url(url));
    let Some(password) = url_password(url) else {
        return text;
    };
    let secret: Vec<u8> = percent_encoding::percent_decode_str(password).collect();
    if secret.is_empty() {
        return text;
    }
    let bytes = text.as_bytes();
    let mut scrubbed = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match spelled_at(bytes, at, &secret) {
            Some(end) => {
                scrubbed.extend_from_slice(b"***");
                at = end;
            }
            None => {
                scrubbed.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&scrubbed).into_owned()
}

/// The password as written in a URL (between the first `:` of the userinfo and its last `@`),
/// whether or not the URL parses.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo
        .split_once(':')
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty())
}

/// Where a spelling of `secret` that starts at `at` ends: each byte either as itself or as
/// `%XX`.
fn spelled_at(text: &[u8], mut at: usize, secret: &[u8]) -> Option<usize> {
    for &expected in secret {
        let literal = text.get(at) == Some(&expected);
        let encoded = text.get(at) == Some(&b'%')
            && text
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                == Some(expected);
        at += match (literal, encoded) {
            (true, _) => 1,
            (false, true) => 3,
            (false, false) => return None,
        };
    }
    Some(at)
}
