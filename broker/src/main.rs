//! The `chorus` binary: parse the config, set up logging, pick the domain modules, run the node.

use chorus_core::config::{Config, LogFormat};
use chorus_core::server::Services;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

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
    let config = Config::load()?;
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
            chorus_live_commerce::module(),
            chorus_study_groups::module(),
        ],
        socketio: vec![
            chorus_movie_voting::socketio(),
            chorus_live_commerce::socketio(),
            chorus_study_groups::socketio(),
        ],
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(chorus_core::server::run(config, services))
}
