//! `[log]` and `[telemetry]`: what wharf writes to its log and what it exports over OTLP.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info,wharf=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// `text` for people, `json` for log pipelines: one JSON object per line, so that the record of each
    /// login (`wharf::login`) and each transfer (`wharf::transfer`, the modern xferlog) is machine-readable.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { filter: "info".to_owned(), format: LogFormat::Text }
    }
}

/// OpenTelemetry export over OTLP/HTTP (protobuf): the spans of sessions, commands and transfers, and the
/// metrics that the admin listener also serves in Prometheus format.
///
/// # Defaults
/// Off: nothing is exported until `otlp_endpoint` names a collector, e.g. `http://127.0.0.1:4318` (spans go
/// to `<endpoint>/v1/traces`, metrics to `<endpoint>/v1/metrics`; `https://` uses the system's roots).
/// Spans of wharf's own targets at `info` and above are exported (`traces_filter`), every trace sampled,
/// metrics pushed every 30 s, and an export that has not finished in 10 s is dropped. Headers (for a
/// vendor's API key) are secrets: give them through the environment, e.g.
/// `WHARF_TELEMETRY__OTLP_HEADERS__AUTHORIZATION`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub otlp_headers: std::collections::BTreeMap<String, Secret>,
    pub otlp_timeout_secs: u64,
    /// `service.name` of the exported resource; `service.instance.id` is the instance's id.
    pub service_name: String,
    /// A `tracing` filter choosing the spans exported, independent of `log.filter`.
    pub traces_filter: String,
    /// The share of traces (sessions) exported, 0.0 to 1.0.
    pub traces_sample_ratio: f64,
    pub metrics_interval_secs: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_headers: Default::default(),
            otlp_timeout_secs: 10,
            service_name: "wharf".into(),
            traces_filter: "wharf=info".into(),
            traces_sample_ratio: 1.0,
            metrics_interval_secs: 30,
        }
    }
}

impl TelemetryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        if let Some(endpoint) = &self.otlp_endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.parse::<http::Uri>().is_err() {
                return invalid("telemetry.otlp_endpoint", "must be an http:// or https:// URL");
            }
        }
        for (name, value) in &self.otlp_headers {
            if http::HeaderName::try_from(name.as_str()).is_err()
                || http::HeaderValue::try_from(value.expose()).is_err()
            {
                return invalid("telemetry.otlp_headers", "each header needs a valid HTTP name and value");
            }
        }
        if !(1..=300).contains(&self.otlp_timeout_secs) {
            return invalid("telemetry.otlp_timeout_secs", "must be between 1 and 300");
        }
        if !(1..=3600).contains(&self.metrics_interval_secs) {
            return invalid("telemetry.metrics_interval_secs", "must be between 1 and 3600");
        }
        if !(0.0..=1.0).contains(&self.traces_sample_ratio) {
            return invalid("telemetry.traces_sample_ratio", "must be between 0.0 and 1.0");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.traces_filter).is_err() {
            return invalid("telemetry.traces_filter", "is not a valid tracing filter");
        }
        Ok(())
    }
}
