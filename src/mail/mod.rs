//! Email: djoser's six messages and authd's notice of an email change, rendered from templates,
//! written to the outbox in the same transaction as the change that causes them, and delivered
//! (by `accounts::email::Delivery`) through one backend.

use std::io::Write as _;
use std::path::Path;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use tokio::sync::Notify;

use crate::config::{EmailBackend, Mail};
use crate::store::Principal;
use crate::store::outbox::NewMessage;

/// The messages, by their djoser template names (and authd's own notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Activation,
    Confirmation,
    PasswordReset,
    PasswordChangedConfirmation,
    UsernameReset,
    UsernameChangedConfirmation,
    /// To the previous address of an account whose email changed: no link, ever.
    EmailChangedNotice,
    /// To the owner of a new API key: its name, scope and expiry, never the key.
    ApiKeyCreatedNotice,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Activation,
        Kind::Confirmation,
        Kind::PasswordReset,
        Kind::PasswordChangedConfirmation,
        Kind::UsernameReset,
        Kind::UsernameChangedConfirmation,
        Kind::EmailChangedNotice,
        Kind::ApiKeyCreatedNotice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Activation => "activation",
            Kind::Confirmation => "confirmation",
            Kind::PasswordReset => "password_reset",
            Kind::PasswordChangedConfirmation => "password_changed_confirmation",
            Kind::UsernameReset => "username_reset",
            Kind::UsernameChangedConfirmation => "username_changed_confirmation",
            Kind::EmailChangedNotice => "email_changed_notice",
            Kind::ApiKeyCreatedNotice => "api_key_created_notice",
        }
    }

    fn builtin(self, part: Part) -> &'static str {
        macro_rules! pick {
            ($name:literal) => {
                match part {
                    Part::Subject => {
                        include_str!(concat!("../../templates/email/", $name, "_subject.txt"))
                    }
                    Part::Text => include_str!(concat!("../../templates/email/", $name, ".txt")),
                    Part::Html => include_str!(concat!("../../templates/email/", $name, ".html")),
                }
            };
        }
        match self {
            Kind::Activation => pick!("activation"),
            Kind::Confirmation => pick!("confirmation"),
            Kind::PasswordReset => pick!("password_reset"),
            Kind::PasswordChangedConfirmation => pick!("password_changed_confirmation"),
            Kind::UsernameReset => pick!("username_reset"),
            Kind::UsernameChangedConfirmation => pick!("username_changed_confirmation"),
            Kind::EmailChangedNotice => pick!("email_changed_notice"),
            Kind::ApiKeyCreatedNotice => pick!("api_key_created_notice"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn file_name(self, kind: Kind) -> String {
        match self {
            Part::Subject => format!("{}_subject.txt", kind.name()),
            Part::Text => format!("{}.txt", kind.name()),
            Part::Html => format!("{}.html", kind.name()),
        }
    }
}

/// A single-use link: djoser's `uid` and the token.
#[derive(Clone)]
pub struct Link {
    pub uid: String,
    pub token: String,
}

/// What the notice of an email change says: the new address, already masked, and when.
#[derive(Debug, Clone)]
pub struct EmailChange {
    pub new_address_masked: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What the notice of a new API key says: never the key itself.
#[derive(Debug, Clone)]
pub struct KeyCreated {
    pub name: String,
    /// Permission names, sorted; empty: the key only says whose it is.
    pub scope: Vec<String>,
    pub expires: chrono::DateTime<chrono::Utc>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What a message says beyond its user and link.
#[derive(Debug, Clone, Copy)]
enum Details<'a> {
    None,
    EmailChange(&'a EmailChange),
    KeyCreated(&'a KeyCreated),
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("email template {0}: {1}")]
    Template(String, String),
    #[error("email set-up: {0}")]
    Setup(String),
}

enum Transport {
    Console,
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

pub struct Mailer {
    settings: Mail,
    from: Mailbox,
    templates: Environment<'static>,
    transport: Transport,
    wakeup: Notify,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("backend", &self.settings.backend)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Loads the templates (an operator's file wins over the built-in one) and checks that each
    /// renders, so a broken template stops start-up instead of a request.
    pub fn new(settings: &Mail) -> Result<Self, MailError> {
        let from: Mailbox = settings
            .default_from_email
            .parse()
            .map_err(|e| MailError::Setup(format!("AUTHD_DEFAULT_FROM_EMAIL: {e}")))?;
        let mut templates = Environment::new();
        for kind in Kind::ALL {
            for part in Part::ALL {
                let file_name = part.file_name(kind);
                let source = match operator_template(settings.templates_dir.as_deref(), &file_name)?
                {
                    Some(source) => source,
                    None => kind.builtin(part).to_owned(),
                };
                templates
                    .add_template_owned(file_name.clone(), source)
                    .map_err(|e| MailError::Template(file_name, e.to_string()))?;
            }
        }
        let transport = match &settings.backend {
            EmailBackend::Console => Transport::Console,
            EmailBackend::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MailError::Setup(format!(
                        "AUTHD_EMAIL_URL: cannot create {}: {e}",
                        dir.display()
                    ))
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            EmailBackend::Smtp(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| {
                        MailError::Setup(format!(
                            "AUTHD_EMAIL_URL {}: {}",
                            url.redacted(),
                            url.scrub(&e.to_string())
                        ))
                    })?;
                Transport::Smtp(
                    builder
                        .timeout(Some(std::time::Duration::from_secs(20)))
                        .build(),
                )
            }
        };
        let mailer = Self {
            settings: settings.clone(),
            from,
            templates,
            transport,
            wakeup: Notify::new(),
        };
        let sample = Link {
            uid: "MQ".into(),
            token: "sample".into(),
        };
        let user = sample_user();
        for kind in Kind::ALL {
            mailer.compose(kind, &user, Some(&sample))?;
        }
        mailer.compose_email_change(
            &user,
            &EmailChange {
                new_address_masked: "s***@e***.com".into(),
                at: chrono::Utc::now(),
            },
        )?;
        mailer.compose_key_created(
            &user,
            &KeyCreated {
                name: "deploy bot".into(),
                scope: vec!["blog.add_post".into()],
                expires: chrono::Utc::now(),
                at: chrono::Utc::now(),
            },
        )?;
        Ok(mailer)
    }

    pub fn settings(&self) -> &Mail {
        &self.settings
    }

    pub fn backend(&self) -> &EmailBackend {
        &self.settings.backend
    }

    /// Renders one message to `user`; `None` when the user has no address (djoser skips them).
    pub fn compose(
        &self,
        kind: Kind,
        user: &Principal,
        link: Option<&Link>,
    ) -> Result<Option<NewMessage>, MailError> {
        self.render(kind, user, link, Details::None)
    }

    /// Renders the notice of an email change, to `user` as it was (its previous address).
    pub fn compose_email_change(
        &self,
        user: &Principal,
        change: &EmailChange,
    ) -> Result<Option<NewMessage>, MailError> {
        self.render(
            Kind::EmailChangedNotice,
            user,
            None,
            Details::EmailChange(change),
        )
    }

    /// Renders the notice of a new API key, to its owner.
    pub fn compose_key_created(
        &self,
        user: &Principal,
        key: &KeyCreated,
    ) -> Result<Option<NewMessage>, MailError> {
        self.render(
            Kind::ApiKeyCreatedNotice,
            user,
            None,
            Details::KeyCreated(key),
        )
    }

    fn render(
        &self,
        kind: Kind,
        user: &Principal,
        link: Option<&Link>,
        details: Details<'_>,
    ) -> Result<Option<NewMessage>, MailError> {
        let change = match details {
            Details::EmailChange(change) => Some(change),
            _ => None,
        };
        let key = match details {
            Details::KeyCreated(key) => Some(key),
            _ => None,
        };
        let minute =
            |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
        if user.email.is_empty() {
            return Ok(None);
        }
        let mail = &self.settings;
        let url = link.map(|link| {
            let template = match kind {
                Kind::PasswordReset => &mail.password_reset_confirm_url,
                Kind::UsernameReset => &mail.username_reset_confirm_url,
                _ => &mail.activation_url,
            };
            template
                .replace("{uid}", &link.uid)
                .replace("{token}", &link.token)
        });
        let link_text = url.as_ref().map(|url| {
            format!(
                "{}://{}/{url}",
                mail.frontend_protocol, mail.frontend_domain
            )
        });
        let context = minijinja::context! {
            site_name => mail.site_name(),
            domain => &mail.frontend_domain,
            protocol => &mail.frontend_protocol,
            url => url,
            link => link_text,
            uid => link.map(|l| l.uid.clone()),
            token => link.map(|l| l.token.clone()),
            username => &user.username,
            email => &user.email,
            new_email => change.map(|change| change.new_address_masked.clone()),
            changed_at => change.map(|change| minute(&change.at)),
            key_name => key.map(|key| key.name.clone()),
            key_scope => key.map(|key| key.scope.clone()),
            key_expires => key.map(|key| minute(&key.expires)),
            created_at => key.map(|key| minute(&key.at)),
        };
        let render = |part: Part| -> Result<String, MailError> {
            let name = part.file_name(kind);
            let template = self
                .templates
                .get_template(&name)
                .map_err(|e| MailError::Template(name.clone(), e.to_string()))?;
            template
                .render(&context)
                .map_err(|e| MailError::Template(name, e.to_string()))
        };
        // Django joins a subject's lines; a line break in a header would inject headers.
        let subject: String = render(Part::Subject)?.lines().collect::<Vec<_>>().join("");
        Ok(Some(NewMessage {
            message_id: new_message_id(),
            recipient: user.email.clone(),
            subject: subject.trim().to_owned(),
            text_body: render(Part::Text)?,
            html_body: render(Part::Html)?,
        }))
    }

    /// Sends one message. Errors are reported as text: they are stored and retried.
    pub async fn deliver(&self, row: &NewMessage) -> Result<(), String> {
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .message_id(Some(row.message_id.clone()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(readable_part(ContentType::TEXT_PLAIN, &row.text_body))
                    .singlepart(readable_part(ContentType::TEXT_HTML, &row.html_body)),
            )
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match &self.transport {
            Transport::Console => {
                let mut out = std::io::stdout().lock();
                let printed = writeln!(out, "---------- authd email (console backend) ----------")
                    .and_then(|_| out.write_all(&message.formatted()))
                    .and_then(|_| writeln!(out, "\n---------- end of email ----------"))
                    .and_then(|_| out.flush());
                printed.map_err(|e| e.to_string())
            }
            Transport::File(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Transport::Smtp(transport) => transport.send(message).await.map(|_| ()).map_err(|e| {
                // Kept in the outbox and logged: never with the SMTP password in it.
                match &self.settings.backend {
                    EmailBackend::Smtp(url) => url.scrub(&e.to_string()),
                    _ => e.to_string(),
                }
            }),
        }
    }

    /// Tells the worker there is something to do (after a commit).
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Resolves when [`Mailer::wake`] was called.
    pub async fn woken(&self) {
        self.wakeup.notified().await;
    }
}

/// A fresh `Message-ID`.
pub fn new_message_id() -> String {
    format!("<{}@authd>", crate::crypto::random_hex(16))
}

/// ASCII bodies go out as 7bit, so links survive copy and paste from raw messages (console
/// backend, `.eml` files, SMTP sinks). lettre only picks 7bit for lines under 76 characters,
/// but RFC 5322 allows 998: checked here, with CRLF line endings. Anything else gets lettre's
/// own encoding.
fn readable_part(content_type: ContentType, text: &str) -> SinglePart {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let seven_bit = crlf.is_ascii()
        && !crlf.replace("\r\n", "").contains(['\r', '\n', '\0'])
        && crlf.split("\r\n").all(|line| line.len() <= 998);
    let body = if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    };
    SinglePart::builder().header(content_type).body(body)
}

fn operator_template(dir: Option<&Path>, file_name: &str) -> Result<Option<String>, MailError> {
    let Some(dir) = dir else { return Ok(None) };
    let path = dir.join(file_name);
    match std::fs::read_to_string(&path) {
        Ok(source) => Ok(Some(source)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(MailError::Template(
            path.display().to_string(),
            err.to_string(),
        )),
    }
}

fn sample_user() -> Principal {
    Principal {
        id: 1,
        username: "sample".into(),
        username_canonical: "sample".into(),
        email: "sample@example.com".into(),
        email_canonical: None,
        password_version: 0,
        is_active: true,
        activation_pending: false,
        is_staff: false,
        is_superuser: false,
        date_joined: chrono::Utc::now(),
        last_login: None,
    }
}
