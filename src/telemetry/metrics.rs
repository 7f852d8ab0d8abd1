//! The server's metrics: one OpenTelemetry meter provider per [`Server`](crate::server::Server), never the
//! process-global one, so that several servers in one process (the tests) count apart.
//!
//! ```text
//! sessions, logins, transfers ─┐
//! S3 interceptor ──────────────┼─▶ instruments ─▶ SdkMeterProvider ─┬─▶ ManualReader ─▶ /metrics (Prometheus)
//! directory pool (at collect) ─┘                                    └─▶ PeriodicReader ─▶ OTLP (optional)
//! ```
//!
//! Instrument names follow OpenTelemetry's conventions (`wharf.transfer.bytes`, unit `By`);
//! [`super::prometheus`] turns them into Prometheus names (`wharf_transfer_bytes_total`).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _, UpDownCounter};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};

use crate::config::TelemetryConfig;
use crate::directory::Directory;

/// Transfer durations: from a small file on loopback to a large one over a slow link.
const TRANSFER_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// S3 requests: metadata calls take milliseconds; a part upload of a few MiB may take seconds.
const S3_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How a login attempt ended; the same words as the `wharf::login` log record's `result` where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    /// Wrong password, unknown user or tenant, disabled account, outside the allowed networks, banned.
    Rejected,
    /// The tenant's TLS policy refused the connection's TLS version.
    TlsPolicy,
    /// The directory could not be reached.
    Unavailable,
    /// The credentials were right but the session could not be set up (storage, home, registration).
    Error,
}

impl LoginResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Rejected => "rejected",
            LoginResult::TlsPolicy => "tls_policy",
            LoginResult::Unavailable => "unavailable",
            LoginResult::Error => "error",
        }
    }
}

/// Which way a transfer's data went, seen from wharf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Uploads (STOR, APPE, STOU).
    In,
    /// Downloads (RETR).
    Out,
    /// Listings (LIST, NLST, MLSD): sent to the client too, but counted apart so that `out` is file data.
    List,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::List => "list",
        }
    }
}

/// How a transfer ended, from its final reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferResult {
    /// 2xx: the data is stored or sent.
    Ok,
    /// 426: ABOR, or the client closed the data connection.
    Aborted,
    /// Anything else (a storage error, a quota, a timeout).
    Failed,
}

impl TransferResult {
    pub fn from_code(code: u16) -> TransferResult {
        match code {
            200..=299 => TransferResult::Ok,
            426 => TransferResult::Aborted,
            _ => TransferResult::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferResult::Ok => "ok",
            TransferResult::Aborted => "aborted",
            TransferResult::Failed => "failed",
        }
    }
}

/// One server's metrics; share it as `Arc<Metrics>`. Recording is cheap (no allocation for fixed labels).
pub struct Metrics {
    provider: SdkMeterProvider,
    /// The reader `/metrics` collects from; the provider holds the other handle.
    scrape: Arc<ManualReader>,
    meter: Meter,
    sessions_active: UpDownCounter<i64>,
    sessions_logged_in: UpDownCounter<i64>,
    logins: Counter<u64>,
    transfer_bytes: Counter<u64>,
    transfers: Counter<u64>,
    transfer_duration: Histogram<f64>,
    passive_relays: Counter<u64>,
    s3: S3Metrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics read by `/metrics` and, with `otlp`, pushed to that exporter every
    /// `telemetry.metrics_interval_secs` too, under the resource `telemetry` names.
    pub fn new(otlp: Option<opentelemetry_otlp::MetricExporter>, telemetry: &TelemetryConfig) -> Metrics {
        let scrape = Arc::new(ManualReader::builder().with_temporality(Temporality::Cumulative).build());
        let resource = super::otlp::resource(telemetry);
        let mut builder = SdkMeterProvider::builder().with_resource(resource).with_reader(SharedReader(scrape.clone()));
        if let Some(exporter) = otlp {
            let interval = Duration::from_secs(telemetry.metrics_interval_secs);
            builder = builder.with_reader(PeriodicReader::builder(exporter).with_interval(interval).build());
        }
        let provider = builder.build();
        let meter = provider.meter("wharf");
        let s3 = S3Metrics {
            duration: meter
                .f64_histogram("wharf.s3.request.duration")
                .with_unit("s")
                .with_description("S3 requests by operation, retries included, until the response headers")
                .with_boundaries(S3_BUCKETS.to_vec())
                .build(),
            errors: meter
                .u64_counter("wharf.s3.request.errors")
                .with_description("S3 requests that failed, by operation and kind")
                .build(),
        };
        let sessions_active = meter
            .i64_up_down_counter("wharf.sessions.active")
            .with_description("Control connections open on this instance")
            .build();
        let sessions_logged_in = meter
            .i64_up_down_counter("wharf.sessions.logged_in")
            .with_description("Logged-in sessions on this instance")
            .build();
        // Shown as 0 from the start rather than missing until the first session.
        sessions_active.add(0, &[]);
        sessions_logged_in.add(0, &[]);
        Metrics {
            sessions_active,
            sessions_logged_in,
            logins: meter.u64_counter("wharf.logins").with_description("Login attempts by result").build(),
            transfer_bytes: meter
                .u64_counter("wharf.transfer.bytes")
                .with_unit("By")
                .with_description("Bytes moved on data connections, by tenant and direction, counted at the end")
                .build(),
            transfers: meter
                .u64_counter("wharf.transfers")
                .with_description("Transfers ended, by tenant, direction and result")
                .build(),
            transfer_duration: meter
                .f64_histogram("wharf.transfer.duration")
                .with_unit("s")
                .with_description("Transfer durations by direction and result")
                .with_boundaries(TRANSFER_BUCKETS.to_vec())
                .build(),
            passive_relays: meter
                .u64_counter("wharf.passive.relays")
                .with_description(
                    "Passive data connections relayed between replicas: out (to the claiming replica) or in, by result",
                )
                .build(),
            s3,
            provider,
            scrape,
            meter,
        }
    }

    /// Reports the directory's pool at each collection (the callback runs then, not on a timer).
    pub fn observe_pool(&self, directory: Arc<dyn Directory>) {
        let status = move || directory.pool_status();
        let connections = status.clone();
        self.meter
            .u64_observable_gauge("wharf.db.pool.connections")
            .with_description("Directory database connections by state")
            .with_callback(move |gauge| {
                let s = connections();
                gauge.observe(u64::from(s.idle), &[KeyValue::new("state", "idle")]);
                gauge.observe(u64::from(s.size.saturating_sub(s.idle)), &[KeyValue::new("state", "in_use")]);
            })
            .build();
        self.meter
            .u64_observable_gauge("wharf.db.pool.max")
            .with_description("The directory pool's connection limit")
            .with_callback(move |gauge| gauge.observe(u64::from(status().max), &[]))
            .build();
    }

    /// Counts an open control connection until the returned guard drops.
    pub fn session_opened(&self) -> Held {
        Held::new(&self.sessions_active)
    }

    /// Counts a logged-in session until the returned guard drops.
    pub fn logged_in(&self) -> Held {
        Held::new(&self.sessions_logged_in)
    }

    /// One login attempt; `tenant` only where the tenant is certain.
    pub fn login(&self, result: LoginResult, tenant: Option<&str>) {
        let result = KeyValue::new("result", result.as_str());
        match tenant {
            Some(tenant) => self.logins.add(1, &[result, KeyValue::new("tenant", tenant.to_owned())]),
            None => self.logins.add(1, &[result]),
        }
    }

    /// One ended transfer: its bytes (whatever crossed the data connection, also when it failed), its
    /// count and its duration.
    pub fn transfer(&self, tenant: &str, direction: Direction, result: TransferResult, bytes: u64, took: Duration) {
        let tenant = KeyValue::new("tenant", tenant.to_owned());
        let direction = KeyValue::new("direction", direction.as_str());
        let result = KeyValue::new("result", result.as_str());
        self.transfer_bytes.add(bytes, &[tenant.clone(), direction.clone()]);
        self.transfer_duration.record(took.as_secs_f64(), &[direction.clone(), result.clone()]);
        self.transfers.add(1, &[tenant, direction, result]);
    }

    /// One passive data connection relayed between replicas: `way` `out` (this replica forwarded it) or
    /// `in` (it came from another); `result` `relayed`, `no_claim` (nobody waits for it anywhere), `failed`
    /// (the other replica or the directory could not be reached) or `refused` (an untrusted peer or a bad
    /// header).
    pub fn passive_relay(&self, way: &'static str, result: &'static str) {
        self.passive_relays.add(1, &[KeyValue::new("way", way), KeyValue::new("result", result)]);
    }

    /// The S3 instruments, for the S3 clients' interceptor.
    pub fn s3(&self) -> S3Metrics {
        self.s3.clone()
    }

    /// The Prometheus text exposition (format 0.0.4) of every instrument now.
    pub fn render_prometheus(&self) -> Result<String, opentelemetry_sdk::error::OTelSdkError> {
        let mut collected = ResourceMetrics::default();
        self.scrape.collect(&mut collected)?;
        Ok(super::prometheus::render(&collected))
    }

    /// Pushes what the OTLP reader has not sent yet and stops the readers. Blocks (an export may run): in
    /// async code call it from `spawn_blocking`.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing metrics failed");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "stopping the metrics provider");
        }
    }

    #[cfg(test)]
    pub(super) fn meter(&self) -> &Meter {
        &self.meter
    }
}

/// The S3 request instruments: cloned into every S3 client's interceptor.
#[derive(Clone, Debug)]
pub struct S3Metrics {
    duration: Histogram<f64>,
    errors: Counter<u64>,
}

impl S3Metrics {
    /// One S3 operation ended (after its retries); `error` names the kind when it failed.
    pub fn request(&self, operation: &str, took: Duration, error: Option<&'static str>) {
        let operation = KeyValue::new("operation", operation.to_owned());
        self.duration.record(took.as_secs_f64(), std::slice::from_ref(&operation));
        if let Some(kind) = error {
            self.errors.add(1, &[operation, KeyValue::new("kind", kind)]);
        }
    }
}

/// One unit of an up-down counter, given back when dropped, so every way out of a session counts.
pub struct Held {
    counter: UpDownCounter<i64>,
}

impl Held {
    fn new(counter: &UpDownCounter<i64>) -> Held {
        counter.add(1, &[]);
        Held { counter: counter.clone() }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.add(-1, &[]);
    }
}

/// The scrape reader, shared between the provider (which registers its pipeline) and [`Metrics`] (which
/// collects from it): `ManualReader` itself is not `Clone`.
#[derive(Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}
