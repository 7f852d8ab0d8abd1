//! Request plumbing shared by every route: JSON bodies and query strings whose errors are problems naming
//! the field at fault, and cursor pagination (`?limit=&cursor=` in, `{items, next_cursor}` out).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::directory::admin::Page;

/// A JSON body. Syntax errors are 400; a value of the wrong type, a missing or an unknown field is 422
/// naming the field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::Malformed("the body could not be read".to_owned())
            }
        })?;
        parse_json(&bytes).map(Body)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::Malformed(format!("the body is not valid JSON: {e}"));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return malformed(inner);
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or_default().to_owned();
        ApiError::Invalid { field: field_of(&path, &message), detail: message }
    })?;
    de.end().map_err(malformed)?;
    Ok(value)
}

/// The JSON path at fault; for a missing field serde reports the parent, so the name comes from the message
/// (`missing field `name``).
fn field_of(path: &str, message: &str) -> Option<String> {
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => Some(name.to_owned()),
        (".", None) => None,
        (path, Some(name)) => Some(format!("{path}.{name}")),
        (path, None) => Some(path.to_owned()),
    }
}

/// A query string; a parameter that does not parse is 422 naming it.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let detail = e.into_inner().to_string();
            let field = if field == "." { detail.split('`').nth(1).map(str::to_owned) } else { Some(field) };
            ApiError::Invalid { field, detail }
        })
    }
}

/// Path parameters; one that does not parse names nothing, so it is 404.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

/// A 201 response: the new resource with its `Location`.
pub struct Created<T> {
    pub location: String,
    pub body: T,
}

impl<T: Serialize> axum::response::IntoResponse for Created<T> {
    fn into_response(self) -> axum::response::Response {
        let location = [(axum::http::header::LOCATION, self.location)];
        (axum::http::StatusCode::CREATED, location, axum::Json(self.body)).into_response()
    }
}

/// A path segment for a `Location`: everything but unreserved characters percent-encoded.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Most items one page may hold.
pub const MAX_LIMIT: u32 = 500;
/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;

/// Which page of a listing to return.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; opaque.
    pub cursor: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            limit @ 1..=MAX_LIMIT => Ok(limit as usize),
            _ => Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}"))),
        }
    }

    /// The directory page for id-ordered listings: one row more than asked, so that [`paged`] can tell
    /// whether another page follows.
    pub fn page(&self) -> Result<Page, ApiError> {
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                decode(cursor).and_then(|key| key.strip_prefix("i:")?.parse::<i64>().ok()).ok_or_else(bad_cursor)?,
            ),
        };
        Ok(Page { after, limit: self.limit()? as i64 + 1 })
    }

    /// The key after which a listing ordered by a text key resumes (lists kept in memory: sessions, bans).
    pub fn after_key(&self) -> Result<Option<String>, ApiError> {
        match &self.cursor {
            None => Ok(None),
            Some(cursor) => decode(cursor)
                .and_then(|key| key.strip_prefix("s:").map(str::to_owned))
                .map(Some)
                .ok_or_else(bad_cursor),
        }
    }
}

fn bad_cursor() -> ApiError {
    ApiError::invalid("cursor", "is not a cursor this API returned")
}

fn decode(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

/// The page of `rows` (fetched with [`PageQuery::page`]), converted, with the cursor of the last row kept.
pub fn paged<R, T>(
    mut rows: Vec<R>,
    query: &PageQuery,
    id: impl Fn(&R) -> i64,
    view: impl FnMut(R) -> T,
) -> Result<List<T>, ApiError> {
    let limit = query.limit()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(|r| URL_SAFE_NO_PAD.encode(format!("i:{}", id(r)))) } else { None };
    Ok(List { items: rows.into_iter().map(view).collect(), next_cursor })
}

/// The page of an in-memory listing ordered by `key` (unique per row).
pub fn paged_by_key<R, T>(
    mut rows: Vec<R>,
    query: &PageQuery,
    key: impl Fn(&R) -> String,
    view: impl FnMut(R) -> T,
) -> Result<List<T>, ApiError> {
    let limit = query.limit()?;
    let after = query.after_key()?;
    rows.sort_by_key(|r| key(r));
    rows.retain(|r| after.as_ref().is_none_or(|after| key(r) > *after));
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(|r| URL_SAFE_NO_PAD.encode(format!("s:{}", key(r)))) } else { None };
    Ok(List { items: rows.into_iter().map(view).collect(), next_cursor })
}

/// `Some(value)` for a field that is present, also when it is `null`: with `#[serde(default)]` on an
/// `Option<Option<T>>`, absent stays `None` (leave as is) and `null` becomes `Some(None)` (clear).
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Whether a path parameter could name anything (an id, a ban scope): short, no control characters. Anything
/// else is 404 without asking the directory (Postgres refuses NUL in text outright).
pub fn could_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= 512 && !value.chars().any(char::is_control)
}

/// Text an operator typed: no control characters, at most `max` characters.
pub fn plain_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, format!("must be 1-{max} characters without control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        quota: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        max_bytes: Option<i64>,
    }

    fn field(body: &str) -> Option<String> {
        match parse_json::<Sample>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(field(r#"{}"#).as_deref(), Some("name"));
        assert_eq!(field(r#"{"name": 3}"#).as_deref(), Some("name"));
        assert_eq!(field(r#"{"name": "a", "nmae": 1}"#).as_deref(), Some("nmae"));
        assert_eq!(field(r#"{"name": "a", "quota": {"max_bytes": "x"}}"#).as_deref(), Some("quota.max_bytes"));
        assert_eq!(field(r#"{"name": "a", "quota": {"max": 1}}"#).as_deref(), Some("quota.max"));
        assert!(matches!(parse_json::<Sample>(b"{\"name\": "), Err(ApiError::Malformed(_))));
        assert!(matches!(parse_json::<Sample>(b"{\"name\": \"a\"} x"), Err(ApiError::Malformed(_))));
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let query = PageQuery { limit: Some(2), cursor: None };
        let list = paged(vec![1, 2, 3], &query, |r| *r, |r| r).unwrap();
        assert_eq!(list.items, vec![1, 2]);
        let next = PageQuery { limit: Some(2), cursor: list.next_cursor };
        assert_eq!(next.page().unwrap(), Page { after: Some(2), limit: 3 });
        let last = paged(vec![3], &next, |r| *r, |r| r).unwrap();
        assert_eq!(last.next_cursor, None);

        let bad = PageQuery { limit: None, cursor: Some("not-a-cursor!".into()) };
        assert!(matches!(bad.page(), Err(ApiError::Invalid { field: Some(f), .. }) if f == "cursor"));
        let zero = PageQuery { limit: Some(0), cursor: None };
        assert!(matches!(zero.page(), Err(ApiError::Invalid { field: Some(f), .. }) if f == "limit"));
        assert!(PageQuery { limit: Some(MAX_LIMIT + 1), cursor: None }.page().is_err());
    }

    #[test]
    fn location_segments_are_ascii() {
        assert_eq!(segment("alice"), "alice");
        assert_eq!(segment("zoë/x y"), "zo%C3%AB%2Fx%20y");
    }

    #[test]
    fn keyed_pages_resume_after_the_last_key() {
        let rows = vec!["c".to_owned(), "a".to_owned(), "b".to_owned()];
        let first = PageQuery { limit: Some(2), cursor: None };
        let list = paged_by_key(rows.clone(), &first, |r| r.clone(), |r| r).unwrap();
        assert_eq!(list.items, vec!["a", "b"]);
        let second = PageQuery { limit: Some(2), cursor: list.next_cursor };
        let list = paged_by_key(rows, &second, |r| r.clone(), |r| r).unwrap();
        assert_eq!((list.items, list.next_cursor), (vec!["c".to_owned()], None));
    }
}
