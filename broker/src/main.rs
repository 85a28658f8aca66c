//! The `chorus` binary: parse the config, set up logging, pick the domain modules, run the node.

use chorus_core::config::Config;
use chorus_core::module::Module;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::load()?;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let modules: Vec<Arc<dyn Module>> = vec![chorus_event_booking::module(), chorus_movie_voting::module()];
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(chorus_core::server::run(config, modules))
}
