//! Telemetry: the process's `tracing` subscriber (text or JSON logs on stderr, with a filter that SIGHUP can
//! change), and the metrics of one server.
//!
//! ```text
//! tracing spans and events ──▶ filter ──▶ fmt layer (stderr: text | JSON lines)
//!
//! Metrics (owned by the Server, never process-global) ──▶ Prometheus text on the admin listener
//! ```

pub mod metrics;
pub mod prometheus;

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{Config, LogFormat};

/// The installed subscriber's handles: what a reload may change.
#[derive(Clone)]
pub struct Telemetry {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` set at start wins over `log.filter`, then and at every reload.
    filter_from_env: bool,
}

impl Telemetry {
    /// Installs the process's subscriber. Call once, before anything logs.
    pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
        let filter_from_env = std::env::var_os("RUST_LOG").is_some();
        let filter = if filter_from_env {
            EnvFilter::try_from_default_env().context("RUST_LOG is not a valid tracing filter")?
        } else {
            parse_filter(&config.log.filter)?
        };
        let (filter, handle) = reload::Layer::new(filter);
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let registry = tracing_subscriber::registry().with(filter);
        match config.log.format {
            LogFormat::Text => registry.with(fmt).try_init(),
            LogFormat::Json => registry.with(fmt.json().flatten_event(true).with_current_span(false)).try_init(),
        }
        .context("installing the log subscriber")?;
        Ok(Telemetry { filter: handle, filter_from_env })
    }

    /// Applies a new `log.filter` (a reload). Ignored while `RUST_LOG` rules; an invalid filter is an error
    /// and the old one stays.
    pub fn set_filter(&self, filter: &str) -> anyhow::Result<()> {
        if self.filter_from_env {
            return Ok(());
        }
        let filter = parse_filter(filter)?;
        self.filter.reload(filter).context("replacing the log filter")
    }
}

fn parse_filter(filter: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(filter)
        .with_context(|| format!("configuration field `log.filter`: {filter:?} is not a valid filter"))
}
