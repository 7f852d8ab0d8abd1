//! Telemetry: the process's `tracing` subscriber and the export of spans and metrics over OpenTelemetry.
//!
//! ```text
//!                                  ┌─▶ log filter (log.filter, SIGHUP) ──▶ stderr: text | JSON lines
//! tracing spans and events ──▶ registry
//!                                  └─▶ traces filter ──▶ OpenTelemetry ──batch──▶ OTLP/HTTP collector
//!
//! Metrics (owned by the Server, never process-global) ──▶ Prometheus text on the admin listener
//!                                                     └──periodic──▶ OTLP/HTTP collector
//! ```
//!
//! Spans: `ftp.session` (one per control connection: client address, then tenant, user and session id at
//! login), `ftp.command` (one per command: verb and reply code) and `ftp.transfer` (one per data transfer:
//! command, path, tenant, user, bytes, result and reply code; its duration is the span's). Logs and export
//! filter independently, so quiet logs never starve the traces.

pub mod metrics;
pub mod otlp;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};

/// The installed subscriber's handles: what a reload may change and what must be flushed at exit.
#[derive(Clone)]
pub struct Telemetry {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` set at start wins over `log.filter`, then and at every reload.
    filter_from_env: bool,
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's subscriber. Call once, before anything logs. Exports, when configured, run on
    /// `runtime`.
    pub fn init(config: &Config, runtime: &tokio::runtime::Handle) -> anyhow::Result<Telemetry> {
        let filter_from_env = std::env::var_os("RUST_LOG").is_some();
        let filter = if filter_from_env {
            EnvFilter::try_from_default_env().context("RUST_LOG is not a valid tracing filter")?
        } else {
            parse_filter(&config.log.filter)?
        };
        let (filter, handle) = reload::Layer::new(filter);
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let log = match config.log.format {
            LogFormat::Text => fmt.boxed(),
            LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).boxed(),
        }
        .with_filter(filter);

        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.telemetry.traces_sample_ratio)));
        let tracer = otlp::span_exporter(&config.telemetry, runtime)?.map(|exporter| {
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(sampler)
                .with_resource(otlp::resource(&config.telemetry))
                .build()
        });
        let traces = match &tracer {
            Some(provider) => {
                let filter = EnvFilter::try_new(&config.telemetry.traces_filter)
                    .context("configuration field `telemetry.traces_filter`")?;
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("wharf"));
                Some(layer.with_filter(filter))
            }
            None => None,
        };
        tracing_subscriber::registry().with(log).with(traces).try_init().context("installing the log subscriber")?;
        Ok(Telemetry { filter: handle, filter_from_env, tracer })
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

    /// Exports the spans still buffered and stops exporting. Blocks until the collector answered or the
    /// export timed out: call it outside the async runtime, which must still be running.
    pub fn shutdown(&self) {
        if let Some(tracer) = &self.tracer {
            if let Err(e) = tracer.shutdown() {
                eprintln!("warning: exporting the last spans failed: {e}");
            }
        }
    }
}

fn parse_filter(filter: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(filter)
        .with_context(|| format!("configuration field `log.filter`: {filter:?} is not a valid filter"))
}
