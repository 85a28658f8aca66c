//! The `chorus` binary: parse the config, set up logging, pick the domain modules, run the node.

use chorus_core::config::Config;
use chorus_core::server::Services;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::load()?;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
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
