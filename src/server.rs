//! Wiring: builds the directory, storage, TLS and listeners from a config and runs until shutdown.

use crate::config::Config;

/// Runs wharf until SIGINT/SIGTERM: prints where it listens and how to create a tenant and a user.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let _ = config;
    todo!()
}
