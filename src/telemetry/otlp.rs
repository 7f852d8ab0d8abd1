//! OTLP/HTTP (protobuf) export of spans and metrics to a collector.
//!
//! The SDK exports from threads of its own (the batch span processor and the periodic metric reader), which
//! run no async runtime. [`RuntimeClient`] hands each request to the server's tokio runtime and waits for the
//! answer, so exports share the one HTTP stack (hyper + rustls) that the rest of wharf already uses.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;

use crate::config::TelemetryConfig;

/// A collector's answer is a small protobuf; anything bigger is not one.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// An [`HttpClient`] whose requests run on a tokio runtime, whichever thread asks.
#[derive(Clone)]
pub struct RuntimeClient {
    runtime: tokio::runtime::Handle,
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for RuntimeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeClient").field("timeout", &self.timeout).finish()
    }
}

impl RuntimeClient {
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> anyhow::Result<RuntimeClient> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .context("loading the system's root certificates for OTLP over https")?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(RuntimeClient { runtime, client, timeout })
    }
}

#[async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let task = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("no answer from the collector within {timeout:?}").into()))
        });
        task.await?
    }
}

/// What every exported span and metric says about where it comes from.
pub fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new("service.instance.id", crate::sessions::LiveSessions::default_instance_name()),
        ])
        .build()
}

fn signal_url(endpoint: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", endpoint.trim_end_matches('/'))
}

fn headers(config: &TelemetryConfig) -> HashMap<String, String> {
    config.otlp_headers.iter().map(|(name, value)| (name.clone(), value.expose().to_owned())).collect()
}

/// The span exporter for `telemetry.otlp_endpoint`, or `None` when export is off.
pub fn span_exporter(
    config: &TelemetryConfig,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<Option<opentelemetry_otlp::SpanExporter>> {
    let Some(endpoint) = &config.otlp_endpoint else { return Ok(None) };
    let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    let exporter = configured(builder, config, &signal_url(endpoint, "traces"), runtime)?
        .build()
        .context("configuration field `telemetry.otlp_endpoint`: building the span exporter")?;
    Ok(Some(exporter))
}

/// The metric exporter for `telemetry.otlp_endpoint`, or `None` when export is off.
pub fn metric_exporter(
    config: &TelemetryConfig,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<Option<opentelemetry_otlp::MetricExporter>> {
    let Some(endpoint) = &config.otlp_endpoint else { return Ok(None) };
    let builder = opentelemetry_otlp::MetricExporter::builder().with_http();
    let exporter = configured(builder, config, &signal_url(endpoint, "metrics"), runtime)?
        .build()
        .context("configuration field `telemetry.otlp_endpoint`: building the metric exporter")?;
    Ok(Some(exporter))
}

/// The settings both signals share: protobuf over HTTP to `url`, the timeout, the headers and the client.
fn configured<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    config: &TelemetryConfig,
    url: &str,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<B> {
    let timeout = Duration::from_secs(config.otlp_timeout_secs);
    Ok(builder
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(timeout)
        .with_headers(headers(config))
        .with_http_client(RuntimeClient::new(runtime.clone(), timeout)?))
}
