//! The `chorus` binary: parse the config, set up logging, pick the domain modules, run the node.

use chorus_core::config::{Config, LogFormat};
use chorus_core::server::Services;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The modules' settings the binary takes besides the broker's options.
#[derive(Debug, clap::Args)]
struct ModuleFlags {
    /// Live commerce: serve accounts (`/api/auth`, `/api/users`). Turn off where an identity provider issues
    /// the tokens; the routes then answer 404.
    #[arg(long, env = "CHORUS_COMMERCE_ACCOUNTS", default_value_t = true, action = clap::ArgAction::Set)]
    commerce_accounts: bool,
    /// Live commerce: the Agora app id the stream routes issue RTC tokens for (32 hex digits).
    #[arg(long, env = "CHORUS_AGORA_APP_ID", requires = "agora_app_certificate")]
    agora_app_id: Option<String>,
    /// Live commerce: the Agora app certificate that signs the RTC tokens (32 hex digits).
    #[arg(long, env = "CHORUS_AGORA_APP_CERTIFICATE", hide_env_values = true, requires = "agora_app_id")]
    agora_app_certificate: Option<String>,
    /// Live commerce: reactions and product clicks one connection may send per second (a token bucket
    /// holding as many); beyond it a call is refused with code 2004.
    #[arg(long, env = "CHORUS_COMMERCE_INTERACTION_RATE",
          default_value_t = chorus_live_commerce::Settings::default().interactions_per_sec,
          value_parser = clap::value_parser!(u32).range(1..))]
    commerce_interaction_rate: u32,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line of plain words (with its causes), not a debug dump with a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let (config, flags) = Config::load_with::<ModuleFlags>()?;
    let agora = match (&flags.agora_app_id, &flags.agora_app_certificate) {
        (Some(id), Some(certificate)) => {
            Some(chorus_live_commerce::AgoraCredentials::new(id, certificate).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let commerce = chorus_live_commerce::Settings {
        interactions_per_sec: flags.commerce_interaction_rate,
        accounts: flags.commerce_accounts,
        agora,
        ..Default::default()
    };
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        // Colour codes only for a person at a terminal; a file or a log shipper gets plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    let services = Services {
        modules: vec![
            chorus_event_booking::module(),
            chorus_movie_voting::module(),
            chorus_live_commerce::module_with(commerce),
            chorus_study_groups::module(),
        ],
        socketio: vec![
            chorus_movie_voting::socketio(),
            chorus_live_commerce::socketio(),
            chorus_study_groups::socketio(),
        ],
    };
    // Always set: left unset, tokio reads `TOKIO_WORKER_THREADS` and panics on a bad value.
    let workers =
        config.workers.map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(chorus_core::server::run(config, services))
}
