//! The one place an admin API failure becomes an HTTP response: RFC 9457 `application/problem+json`, with
//! the field at fault for validation errors. Internal detail goes to the log, never into a response.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::directory::DirectoryError;

/// Why a call failed. Each variant documents the status it produces.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    Malformed(String),
    /// 401: no token, or one that is unknown or expired.
    Unauthenticated,
    /// 403: the token is valid but its scope does not cover the route.
    Forbidden(&'static str),
    /// 404: nothing here, or nothing the caller's scope can see (a tenant admin never learns whether another
    /// tenant's resources exist).
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: a unique name is taken.
    Conflict(String),
    /// 413: the body is larger than the API accepts.
    TooLarge,
    /// 422: the input breaks a rule; `field` names the input at fault (a JSON path such as `quota.max_bytes`
    /// or a query parameter).
    Invalid { field: Option<String>, detail: String },
    /// 503: the directory cannot be reached; try again.
    Unavailable,
    /// 503 from `/readyz`: which part is down.
    Unready(&'static str),
    /// 500: a bug or a broken store; the cause is logged where the error was made.
    Internal,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid { field: Some(field.into()), detail: detail.into() }
    }

    /// Names `field` as the input at fault when this is a validation error without one.
    pub fn at(self, name: &str) -> ApiError {
        match self {
            ApiError::Invalid { field: None, detail } => ApiError::Invalid { field: Some(name.to_owned()), detail },
            other => other,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable | ApiError::Unready(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Malformed(why) => Some(why.clone()),
            ApiError::Unauthenticated => Some("a valid bearer token is required".to_owned()),
            ApiError::Forbidden(why) => Some((*why).to_owned()),
            ApiError::NotFound => None,
            ApiError::MethodNotAllowed => None,
            ApiError::Conflict(what) => Some(format!("{what} already exists")),
            ApiError::TooLarge => None,
            ApiError::Invalid { detail, .. } => Some(detail.clone()),
            ApiError::Unavailable => Some("the directory cannot be reached; try again later".to_owned()),
            ApiError::Unready(why) => Some((*why).to_owned()),
            ApiError::Internal => None,
        };
        let field = match self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> ApiError {
        match e {
            DirectoryError::NotFound => ApiError::NotFound,
            DirectoryError::Conflict(what) => ApiError::Conflict(what.to_owned()),
            DirectoryError::Invalid(detail) => ApiError::Invalid { field: None, detail },
            DirectoryError::Unavailable(source) => {
                tracing::warn!(error = %source, "admin API: directory unavailable");
                ApiError::Unavailable
            }
            DirectoryError::Internal(source) => {
                tracing::error!(error = %source, "admin API: directory error");
                ApiError::Internal
            }
        }
    }
}

/// Maps a directory result, naming `field` when the directory refused the input.
pub trait FieldExt<T> {
    fn field(self, name: &str) -> Result<T, ApiError>;
}

impl<T> FieldExt<T> for Result<T, DirectoryError> {
    fn field(self, name: &str) -> Result<T, ApiError> {
        self.map_err(|e| ApiError::from(e).at(name))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what happened.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The input at fault, for validation errors (422): a JSON path into the body or a query parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The problem responses every authenticated route may give, for the OpenAPI document.
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            ("400", "The body is not JSON"),
            ("401", "No valid bearer token"),
            ("403", "The token's scope does not cover this route"),
            ("404", "Not found, or not visible to the token's scope"),
            ("409", "The name is taken"),
            ("422", "Invalid input; `field` names it"),
            ("503", "The directory cannot be reached"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new().schema(Some(Problem::schema())).build();
            let response = ResponseBuilder::new().description(description).content("application/problem+json", content);
            (status.to_owned(), RefOr::T(response.build()))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn problem_of(e: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, kind, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn directory_errors_map_to_statuses_without_internals() {
        let table: Vec<(DirectoryError, u16)> = vec![
            (DirectoryError::NotFound, 404),
            (DirectoryError::Conflict("tenant"), 409),
            (DirectoryError::Invalid("bad name".into()), 422),
            (DirectoryError::Unavailable("connection refused by 10.0.0.7".into()), 503),
            (DirectoryError::Internal("syntax error at SELECT secret".into()), 500),
        ];
        for (e, status) in table {
            let (got, kind, body) = problem_of(ApiError::from(e)).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(kind, "application/problem+json");
            assert_eq!(body["status"], status);
            let text = body.to_string();
            assert!(!text.contains("10.0.0.7") && !text.contains("SELECT"), "internals leaked: {text}");
        }
    }

    #[tokio::test]
    async fn validation_errors_name_their_field() {
        let e = Err::<(), _>(DirectoryError::Invalid("must be 1-64 characters".into())).field("username");
        let (status, _, body) = problem_of(e.unwrap_err()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["field"], "username");
        assert_eq!(body["detail"], "must be 1-64 characters");
        let named = ApiError::invalid("limit", "too large").at("other");
        assert!(matches!(named, ApiError::Invalid { field: Some(f), .. } if f == "limit"));
    }
}
