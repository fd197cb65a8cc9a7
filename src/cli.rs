//! The `authd` command line: serve (default), migrate, openapi, createsuperuser, changepassword,
//! and the management of clients, permissions, groups and users' grants.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::authz::{self, Edit, Who};
use crate::config::{Flags, Settings};
use crate::domain::FieldErrors;
use crate::domain::permissions::PermissionName;
use crate::startup::{self, Application};
use crate::state::AppState;
use crate::store::django;
use crate::{accounts, import, oauth};

#[derive(Debug, Parser)]
#[command(
    name = "authd",
    version,
    about = "Djoser-compatible token authentication service"
)]
pub struct Cli {
    /// TOML settings file (keys as the AUTHD_ variables, lower case, without the prefix).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: AUTHD_BIND] [default: 127.0.0.1:8000].
    #[arg(long, global = true, value_name = "ADDR")]
    pub bind: Option<String>,
    /// sqlite://PATH?mode=rwc or postgres://… [env: DATABASE_URL] [default: sqlite://authd.sqlite3?mode=rwc].
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Print the OpenAPI document (the committed openapi.yaml).
    Openapi,
    /// Create a staff superuser; prompts for the password.
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from AUTHD_SUPERUSER_PASSWORD instead of prompting.
        #[arg(long)]
        no_input: bool,
    },
    /// Set a user's password (prompts) and revoke all of their tokens.
    Changepassword { username: String },
    /// Deactivate an account: it cannot log in or reactivate itself; its tokens and links die.
    Deactivate { username: String },
    /// Activate an account (deactivated, or still waiting for activation by email).
    Activate { username: String },
    /// Bring a Django site's users, password hashes, DRF tokens, groups and permissions into
    /// authd's database; run it again to bring what changed since.
    ImportDjango(ImportDjangoArgs),
    /// Register, list and delete OAuth2 clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create, list and delete permissions (`app_label.codename`).
    #[command(subcommand)]
    Permission(PermissionCommand),
    /// Create, list and delete groups, and change their permissions.
    #[command(subcommand)]
    Group(GroupCommand),
    /// A user's groups, permissions and roles.
    #[command(subcommand)]
    User(UserCommand),
    /// Show the audit trail (docs/audit.md), oldest first: one line per event, or one JSON
    /// object per line with --json.
    Audit(AuditArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only the events of this account, found by its current name: its whole history, under
    /// whatever names it had.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only events of this kind.
    #[arg(long, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(crate::audit::KINDS))]
    pub kind: Option<String>,
    /// Only events since then: a span back from now (30m, 24h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::audit::parse_since(text, chrono::Utc::now())
}

#[derive(Debug, clap::Args)]
pub struct ImportDjangoArgs {
    /// The Django database: sqlite:///path/to/db.sqlite3, postgres://… or mysql://… (the last
    /// needs authd built with `--features mysql`). Read only.
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// Decide everything, write nothing, and print what would happen.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Accounts whose name (or email, under LOGIN_FIELD=email) differs only in case from
    /// another's: skip and list them (the lowest id comes over), or refuse the whole import.
    #[arg(long, value_enum, default_value = "skip")]
    pub on_conflict: ConflictChoice,
    /// Import into a database that already holds accounts of its own, skipping and listing the
    /// Django accounts whose id or name they hold.
    #[arg(long)]
    pub allow_existing: bool,
    /// Inactive accounts that never logged in arrive waiting for activation by email (they can
    /// ask for the activation mail again), not deactivated.
    #[arg(long)]
    pub inactive_as_pending: bool,
    /// Superusers arrive as ordinary accounts (neither superuser nor staff).
    #[arg(long)]
    pub no_superusers: bool,
    /// Count AUTHD_TOKEN_TTL_SECONDS from each DRF token's creation, not from the import.
    #[arg(long)]
    pub keep_token_age: bool,
    /// The site's TIME_ZONE, when it ran with USE_TZ=False (SQLite and MySQL sources store
    /// naive local times).
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub source_timezone: String,
    /// Accounts per transaction.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConflictChoice {
    Skip,
    Fail,
}

#[derive(Debug, Subcommand)]
pub enum PermissionCommand {
    /// Create a permission, such as `blog.add_post --name "Can add post"`.
    Create {
        /// `app_label.codename`
        permission: String,
        #[arg(long)]
        name: String,
    },
    /// Delete a permission; everyone who held it loses it.
    Delete { permission: String },
    /// One JSON line per permission.
    List,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group, optionally with permissions.
    Create {
        name: String,
        /// `app_label.codename`; repeat for several.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
    },
    /// Give a group a permission (and so every member).
    Grant { group: String, permission: String },
    /// Take a permission from a group (and so from every member).
    Revoke { group: String, permission: String },
    /// Delete a group; its members lose what it gave them.
    Delete { name: String },
    /// One JSON line per group, with its permissions.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Put a user in a group.
    AddToGroup { username: String, group: String },
    /// Take a user out of a group.
    RemoveFromGroup { username: String, group: String },
    /// Give a user a permission of their own.
    Grant {
        username: String,
        permission: String,
    },
    /// Take a permission of their own from a user.
    Revoke {
        username: String,
        permission: String,
    },
    /// Make a user staff, or not.
    SetStaff {
        username: String,
        #[arg(action = clap::ArgAction::Set)]
        value: bool,
    },
    /// Make a user a superuser (every permission), or not.
    SetSuperuser {
        username: String,
        #[arg(action = clap::ArgAction::Set)]
        value: bool,
    },
    /// One JSON line per user: roles, groups and their own permissions.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} once (the secret is not kept).
    Create {
        name: String,
        /// A public client (an app that cannot keep a secret): no secret, and it cannot
        /// introspect.
        #[arg(long)]
        public: bool,
        /// Limit what the client may be granted to this permission (`app_label.codename`);
        /// repeat for several. A password grant through it gets at most these; without
        /// `scope`, these ∩ what the user holds.
        #[arg(long = "scope", value_name = "PERMISSION")]
        scopes: Vec<String>,
    },
    /// One JSON line per client.
    List,
    /// Delete a client and end every session minted through it.
    Delete { client_id: String },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    // The OpenAPI document needs no settings, so a misconfigured host can still print it.
    if let Command::Openapi = command {
        print!("{}", crate::http::openapi_yaml(""));
        return Ok(());
    }
    // Settings come first: every command logs in their format, and a bad one stops it.
    let flags = Flags {
        config: cli.config,
        bind: cli.bind,
        database_url: cli.database_url,
    };
    // A typo would otherwise be silently ignored; not an error, because environments are
    // shared across versions.
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    let unknown = crate::config::unknown_variables(names);
    let settings = match Settings::load(&flags, |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        // No log yet (its format is a setting): the typo that may explain the error goes with it.
        Err(err) if !unknown.is_empty() => {
            anyhow::bail!(
                "{err} (ignored, not authd settings: {})",
                unknown.join(", ")
            );
        }
        Err(err) => return Err(err.into()),
    };
    // The server logs its requests; one-off commands speak only when something is wrong.
    let default_level = match command {
        Command::Serve => "info",
        _ => "warn",
    };
    crate::telemetry::init(default_level, settings.log_format);
    for name in unknown {
        tracing::warn!(variable = %name, "ignoring {name}: it is not an authd setting");
    }
    match command {
        Command::Openapi => unreachable!("printed above"),
        Command::Serve => {
            let stop = startup::shutdown_signal().context("cannot handle SIGINT and SIGTERM")?;
            let app = Application::build(settings).await?;
            app.run(stop).await.context("server failed")?;
        }
        Command::Migrate => {
            startup::open_database(&settings).await?;
            println!(
                "{} database is up to date",
                settings.database_url.kind().name()
            );
        }
        Command::Createsuperuser {
            username,
            email,
            no_input,
        } => {
            let state = startup::open_state(settings).await?;
            let password = if no_input {
                std::env::var("AUTHD_SUPERUSER_PASSWORD").context(
                    "--no-input reads the password from AUTHD_SUPERUSER_PASSWORD, which is not set",
                )?
            } else {
                prompt_new_password()?
            };
            let user = accounts::create_superuser(&state, &username, &email, &password)
                .await
                .map_err(explain)?;
            println!("Superuser {} created (id {}).", user.username, user.id);
        }
        Command::Changepassword { username } => {
            let state = startup::open_state(settings).await?;
            let password = prompt_new_password()?;
            accounts::change_password(&state, &username, &password)
                .await
                .map_err(explain)?;
            println!(
                "Password changed successfully for user '{username}'; their tokens were revoked."
            );
        }
        Command::Deactivate { username } => {
            let state = startup::open_state(settings).await?;
            accounts::deactivate(&state, &username)
                .await
                .map_err(explain)?;
            println!("User '{username}' deactivated; their tokens and links were revoked.");
        }
        Command::ImportDjango(args) => import_django(settings, args).await?,
        Command::Client(command) => {
            let state = startup::open_state(settings).await?;
            run_client_command(&state, command).await?;
        }
        Command::Permission(command) => {
            let state = startup::open_state(settings).await?;
            run_permission_command(&state, command)
                .await
                .map_err(explain_authz)?;
        }
        Command::Group(command) => {
            let state = startup::open_state(settings).await?;
            run_group_command(&state, command)
                .await
                .map_err(explain_authz)?;
        }
        Command::User(command) => {
            let state = startup::open_state(settings).await?;
            run_user_command(&state, command)
                .await
                .map_err(explain_authz)?;
        }
        Command::Audit(args) => {
            let state = startup::open_state(settings).await?;
            show_audit(&state, args).await?;
        }
        Command::Activate { username } => {
            let state = startup::open_state(settings).await?;
            accounts::activate(&state, &username)
                .await
                .map_err(explain)?;
            println!("User '{username}' activated.");
        }
    }
    Ok(())
}

async fn import_django(settings: Settings, args: ImportDjangoArgs) -> anyhow::Result<()> {
    let source = django::Source::parse(&args.from)?;
    if source.is_target(settings.database_url.expose()) {
        anyhow::bail!("the source is authd's own database (DATABASE_URL): nothing to import");
    }
    let source_timezone = args.source_timezone.parse().map_err(|_| {
        anyhow::anyhow!(
            "--source-timezone: {:?} is not a time zone name such as Europe/Paris",
            args.source_timezone
        )
    })?;
    let options = import::Options {
        source,
        dry_run: args.dry_run,
        on_conflict: match args.on_conflict {
            ConflictChoice::Skip => import::OnConflict::Skip,
            ConflictChoice::Fail => import::OnConflict::Fail,
        },
        allow_existing: args.allow_existing,
        inactive_as_pending: args.inactive_as_pending,
        no_superusers: args.no_superusers,
        keep_token_age: args.keep_token_age,
        source_timezone,
        batch_size: args.batch_size as usize,
    };
    let db = startup::open_database(&settings).await?;
    let bar = ProgressLine::new();
    let report = import::run(&db, &settings, &options, &|progress| bar.show(progress)).await;
    bar.finish();
    // A driver's message may hold the source's URL: printed only scrubbed of its password.
    let scrubbed = |err: &(dyn std::error::Error + 'static)| {
        crate::telemetry::scrub_url_secret(&crate::telemetry::chain(err), &args.from)
    };
    let report = report.map_err(|err| match err {
        import::ImportError::Database(err) => anyhow::anyhow!(
            "the import stopped: {}; what was committed is consistent, and a re-run finishes it",
            scrubbed(&err)
        ),
        other => anyhow::anyhow!(scrubbed(&other)),
    })?;
    match args.json {
        true => println!("{}", serde_json::to_string(&report)?),
        false => print!("{report}"),
    }
    Ok(())
}

/// Progress on stderr: a bar on a terminal, one line per batch otherwise (a log, CI).
struct ProgressLine(Option<indicatif::ProgressBar>);

impl ProgressLine {
    fn new() -> Self {
        use std::io::IsTerminal as _;
        Self(std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg:>8} {wide_bar} {pos}/{len}")
            {
                bar.set_style(style);
            }
            bar
        }))
    }

    fn show(&self, progress: import::Progress) {
        let (done, total) = (progress.done as u64, progress.total as u64);
        match &self.0 {
            Some(bar) => {
                bar.set_message(progress.stage);
                bar.set_length(total);
                bar.set_position(done);
            }
            None => eprintln!("{}: {done}/{total}", progress.stage),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

async fn run_client_command(state: &AppState, command: ClientCommand) -> anyhow::Result<()> {
    let failed = |err: oauth::OAuthError| anyhow::Error::new(err);
    match command {
        ClientCommand::Create {
            name,
            public,
            scopes,
        } => {
            for permission in &scopes {
                authz::permission_id(state, permission)
                    .await
                    .with_context(|| format!("no such permission: {permission}"))?;
            }
            let registered = oauth::create_client(state, &name, public, &scopes)
                .await
                .map_err(failed)?;
            println!("{}", serde_json::to_string(&registered)?);
        }
        ClientCommand::List => {
            for client in oauth::list_clients(state).await.map_err(failed)? {
                println!("{}", serde_json::to_string(&client)?);
            }
        }
        ClientCommand::Delete { client_id } => {
            if !oauth::delete_client(state, &client_id)
                .await
                .map_err(failed)?
            {
                anyhow::bail!("no such client: {client_id}");
            }
            println!("Client {client_id} deleted; its sessions were ended.");
        }
    }
    Ok(())
}

async fn run_permission_command(state: &AppState, command: PermissionCommand) -> authz::Result<()> {
    match command {
        PermissionCommand::Create { permission, name } => {
            let parsed = PermissionName::parse(&permission).ok_or_else(|| {
                authz::Error::Invalid(FieldErrors::single(
                    "permission",
                    "Expected app_label.codename, such as blog.add_post.",
                ))
            })?;
            let change = authz::PermissionChange {
                app_label: Some(parsed.app_label),
                codename: Some(parsed.codename),
                name: Some(name),
            };
            let created = authz::create_permission(state, Who::Operator, Ok(change)).await?;
            println!("Permission {permission} created (id {}).", created.id);
        }
        PermissionCommand::Delete { permission } => {
            let id = authz::permission_id(state, &permission).await?;
            authz::delete_permission(state, Who::Operator, &id).await?;
            println!("Permission {permission} deleted.");
        }
        PermissionCommand::List => {
            for permission in authz::list_permissions(state, Who::Operator).await? {
                let line = serde_json::json!({
                    "id": permission.id,
                    "app_label": permission.app_label,
                    "codename": permission.codename,
                    "name": permission.name,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

async fn run_group_command(state: &AppState, command: GroupCommand) -> authz::Result<()> {
    let edit_group = async |group: &str, edit: Edit| -> authz::Result<()> {
        let id = authz::group_id(state, group).await?;
        let change = authz::GroupChange {
            name: None,
            permissions: Some(edit),
        };
        authz::update_group(state, Who::Operator, &id, Ok(change)).await?;
        Ok(())
    };
    match command {
        GroupCommand::Create { name, permissions } => {
            let change = authz::GroupChange {
                name: Some(name),
                permissions: Some(Edit::Replace(permissions)),
            };
            let group = authz::create_group(state, Who::Operator, Ok(change)).await?;
            println!("Group {} created (id {}).", group.name, group.id);
        }
        GroupCommand::Grant { group, permission } => {
            edit_group(&group, Edit::Add(permission.clone())).await?;
            println!("Group {group} now has {permission}.");
        }
        GroupCommand::Revoke { group, permission } => {
            edit_group(&group, Edit::Remove(permission.clone())).await?;
            println!("Group {group} no longer has {permission}.");
        }
        GroupCommand::Delete { name } => {
            let id = authz::group_id(state, &name).await?;
            authz::delete_group(state, Who::Operator, &id).await?;
            println!("Group {name} deleted.");
        }
        GroupCommand::List => {
            for group in authz::list_groups(state, Who::Operator).await? {
                let line = serde_json::json!({
                    "id": group.id,
                    "name": group.name,
                    "permissions": group.permissions,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

async fn run_user_command(state: &AppState, command: UserCommand) -> authz::Result<()> {
    match command {
        UserCommand::AddToGroup { username, group } => {
            let id = authz::user_id(state, &username).await?;
            authz::set_user_groups(state, Who::Operator, &id, Ok(Edit::Add(group.clone()))).await?;
            println!("User {username} is in group {group}.");
        }
        UserCommand::RemoveFromGroup { username, group } => {
            let id = authz::user_id(state, &username).await?;
            authz::set_user_groups(state, Who::Operator, &id, Ok(Edit::Remove(group.clone())))
                .await?;
            println!("User {username} is not in group {group}.");
        }
        UserCommand::Grant {
            username,
            permission,
        } => {
            let id = authz::user_id(state, &username).await?;
            let edit = Ok(Edit::Add(permission.clone()));
            authz::set_user_permissions(state, Who::Operator, &id, edit).await?;
            println!("User {username} has {permission}.");
        }
        UserCommand::Revoke {
            username,
            permission,
        } => {
            let id = authz::user_id(state, &username).await?;
            let edit = Ok(Edit::Remove(permission.clone()));
            authz::set_user_permissions(state, Who::Operator, &id, edit).await?;
            println!("User {username} no longer has {permission} of their own.");
        }
        UserCommand::SetStaff { username, value } => {
            let id = authz::user_id(state, &username).await?;
            let change = authz::RolesChange {
                is_staff: Some(value),
                is_superuser: None,
            };
            authz::update_roles(state, Who::Operator, &id, Ok(change)).await?;
            println!("User {username}: is_staff = {value}.");
        }
        UserCommand::SetSuperuser { username, value } => {
            let id = authz::user_id(state, &username).await?;
            let change = authz::RolesChange {
                is_staff: None,
                is_superuser: Some(value),
            };
            authz::update_roles(state, Who::Operator, &id, Ok(change)).await?;
            println!("User {username}: is_superuser = {value}.");
        }
        UserCommand::List => {
            for user in authz::user_summaries(state).await? {
                println!("{}", serde_json::to_string(&user).unwrap_or_default());
            }
        }
    }
    Ok(())
}

async fn show_audit(state: &AppState, args: AuditArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let user_id = match &args.user {
        Some(name) => Some(accounts::user_named(state, name).await.map_err(explain)?.id),
        None => None,
    };
    let filter = crate::audit::Filter {
        user_id,
        kind: args.kind,
        since: args.since,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::audit::search(&state.db, &filter, |event| match args.json {
        true => writeln!(out, "{}", crate::audit::to_json(event)),
        false => writeln!(out, "{}", crate::audit::to_line(event)),
    })
    .await?;
    out.flush()?;
    Ok(())
}

/// Authorization errors as a person reads them.
fn explain_authz(err: authz::Error) -> anyhow::Error {
    match err {
        authz::Error::Invalid(errors) => anyhow::anyhow!(describe(&errors)),
        authz::Error::NotFound(message) => anyhow::anyhow!(message),
        other => anyhow::Error::new(other),
    }
}

fn prompt_new_password() -> anyhow::Result<String> {
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second =
        rpassword::prompt_password("Password (again): ").context("cannot read the password")?;
    if first != second {
        anyhow::bail!("Your passwords didn't match.");
    }
    Ok(first)
}

/// Field errors as a person reads them: `password: This password is too common.`
fn explain(err: accounts::Error) -> anyhow::Error {
    match err {
        accounts::Error::Invalid(errors) => anyhow::anyhow!(describe(&errors)),
        accounts::Error::NoSuchUser => anyhow::anyhow!("no such user"),
        accounts::Error::CannotCreateUser => anyhow::anyhow!("Unable to create account."),
        accounts::Error::Conflict(refusal) => explain(*refusal),
        other => anyhow::Error::new(other),
    }
}

fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .flat_map(|(field, list)| {
            list.iter()
                .map(move |message| format!("{field}: {message}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
