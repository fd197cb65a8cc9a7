use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = authd::cli::Cli::parse();
    // The server logs its requests; one-off commands speak only when something is wrong.
    let serving = matches!(cli.command, None | Some(authd::cli::Command::Serve));
    authd::telemetry::init(if serving { "info" } else { "warn" });
    match authd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("authd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
