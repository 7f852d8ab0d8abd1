//! Times every S3 operation of every client wharf builds, multipart parts and sweeps included, in one
//! place: an SDK interceptor, so no call site can forget it.
//!
//! A duration runs from before the request is built until the response headers are read, retries
//! included; a streamed body (GetObject) is the transfer's time, not the request's.

use std::time::Instant;

use aws_sdk_s3::config::interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::telemetry::metrics::S3Metrics;

#[derive(Debug)]
pub(super) struct Metered(pub(super) S3Metrics);

/// When the operation began, kept in the operation's own config bag.
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "wharf-metrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Started(started)) = cfg.load::<Started>() else { return Ok(()) };
        let operation = cfg.load::<Metadata>().map_or("unknown", |m| m.name());
        let error = match context.output_or_error() {
            Some(Ok(_)) => None,
            Some(Err(e)) if e.is_timeout_error() => Some("timeout"),
            Some(Err(e)) if e.is_connector_error() => Some("network"),
            _ => Some(match context.response().map(|r| r.status().as_u16()) {
                Some(404) => "not_found",
                Some(429 | 503) => "throttled",
                Some(400..=499) => "client",
                Some(500..=599) => "server",
                _ => "other",
            }),
        };
        self.0.request(operation, started.elapsed(), error);
        Ok(())
    }
}
