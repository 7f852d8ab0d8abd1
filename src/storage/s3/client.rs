//! Building S3 clients: the server's default one and those of tenants that bring their own store.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, RequestChecksumCalculation, ResponseChecksumValidation, SharedCredentialsProvider,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::super::{ErrorKind, StorageError};
use super::metered::Metered;
use crate::config::S3Config;
use crate::storage::TenantStorage;
use crate::telemetry::metrics::S3Metrics;

/// A client for the server's settings, overridden field by field by a tenant's own. Credentials come
/// from the tenant's secret reference, else the server's static keys, else AWS's default chain. Its requests
/// are timed into `metrics`.
pub(super) async fn build(
    config: &S3Config,
    tenant: Option<&TenantStorage>,
    metrics: &S3Metrics,
) -> Result<Client, StorageError> {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
    let region = tenant.and_then(|t| t.region.clone()).or_else(|| config.region.clone());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    // Checked again here (not only when the settings are saved): rows written by older versions, or by
    // hand, must not leak the server's credentials to a tenant's endpoint either.
    if tenant.is_some_and(|t| t.endpoint.is_some() && t.access_key_id.is_none()) {
        return Err(StorageError::with_source(ErrorKind::Denied, "a tenant endpoint without the tenant's own keys"));
    }
    let credentials = match tenant.and_then(|t| t.access_key_id.as_ref().zip(t.secret_ref.as_ref())) {
        Some((id, reference)) => Some(Credentials::new(id, secret_from_ref(reference)?, None, None, "wharf-tenant")),
        None => match (&config.access_key_id, &config.secret_access_key, &config.secret_access_key_file) {
            (Some(id), Some(secret), _) => Some(Credentials::new(id, secret.expose(), None, None, "wharf-config")),
            (Some(id), None, Some(file)) => {
                let secret = std::fs::read_to_string(file).map_err(|e| {
                    StorageError::with_source(ErrorKind::Internal, format!("reading {}: {e}", file.display()))
                })?;
                Some(Credentials::new(id, secret.trim(), None, None, "wharf-config"))
            }
            _ => None,
        },
    };
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(tenant.and_then(|t| t.path_style).unwrap_or(config.force_path_style))
        // Wharf sends each part's CRC-32 itself. Responses are checked only when asked for: stores differ in
        // how they report the checksum of a multipart object, and TLS already guards the wire.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // Slow FTP clients make slow bodies; the session's own stall timeout guards transfers instead (a
        // download whose store stops sending fails with 451 after it).
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .interceptor(Metered(metrics.clone()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(config.attempt_timeout_secs))
                .operation_timeout(Duration::from_secs(config.operation_timeout_secs))
                .build(),
        )
        // Adaptive: exponential backoff between attempts, and after a throttling answer (503 SlowDown) the
        // client also spaces out its next requests to the store.
        .retry_config(RetryConfig::adaptive().with_max_attempts(config.max_attempts));
    if shared.region().is_none() {
        builder = builder.region(Region::new("us-east-1"));
    }
    if let Some(endpoint) = tenant.and_then(|t| t.endpoint.as_ref()).or(config.endpoint.as_ref()) {
        builder = builder.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(builder.build()))
}

/// Reads a tenant's secret key from `env:NAME` or `file:/path`; the value is never logged.
fn secret_from_ref(reference: &str) -> Result<String, StorageError> {
    let failed = |why: String| StorageError::with_source(ErrorKind::Internal, why);
    if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name).map_err(|_| failed(format!("the tenant's secret variable {name} is not set")))
    } else if let Some(path) = reference.strip_prefix("file:") {
        std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| failed(format!("reading {path}: {e}")))
    } else {
        Err(failed("secret reference is neither env: nor file:".to_owned()))
    }
}
