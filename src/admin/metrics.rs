//! `/metrics`: this instance's metrics in the Prometheus text format, for scrapers. An operator token is
//! needed unless `admin.metrics_auth = "none"` opens it.

use axum::extract::{FromRequestParts as _, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::IntoResponse;

use super::auth::Operator;
use super::error::{ApiError, Problem};
use super::AdminState;
use crate::config::MetricsAuth;
use crate::telemetry::prometheus;

/// Every metric of this instance (Prometheus text exposition format 0.0.4). Needs an operator token unless
/// the server is configured with `admin.metrics_auth = "none"`.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "metrics", security(("bearer" = []), ()),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an operator token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The directory cannot be reached to check the token", body = Problem,
            content_type = "application/problem+json")))]
pub async fn metrics(State(state): State<AdminState>, mut parts: Parts) -> Result<impl IntoResponse, ApiError> {
    if state.metrics_auth == MetricsAuth::Token {
        Operator::from_request_parts(&mut parts, &state).await?;
    }
    let text = state.metrics.render_prometheus().map_err(|e| {
        tracing::error!(error = %e, "collecting the metrics failed");
        ApiError::Internal
    })?;
    Ok(([(CONTENT_TYPE, prometheus::CONTENT_TYPE)], text))
}
