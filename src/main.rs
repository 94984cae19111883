use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = twofold::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match twofold::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("twofold: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
