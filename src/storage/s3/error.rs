//! The one mapping from SDK errors to storage kinds; the full report stays in the source
//! for the log.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::storage::{ErrorKind, StorageError};

/// The one mapping from SDK errors to storage kinds; the SDK's full report stays in the source for the log.
pub(super) fn sdk_error<E>(e: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::ServiceError(service) => match service.err().code() {
            Some("NoSuchKey" | "NotFound" | "NoSuchUpload") => ErrorKind::NotFound,
            // The tenant's storage is misconfigured: nothing the client could fix, and not "no such file".
            Some("NoSuchBucket" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => ErrorKind::Internal,
            Some("AccessDenied" | "Forbidden" | "KeyTooLongError") => ErrorKind::Denied,
            Some("InvalidRange") => ErrorKind::InvalidOffset,
            Some("EntityTooLarge") => ErrorKind::QuotaExceeded,
            Some(
                "SlowDown" | "ServiceUnavailable" | "RequestTimeout" | "InternalError" | "PreconditionFailed"
                | "OperationAborted",
            ) => ErrorKind::Transient,
            // HeadObject's 404 carries no code.
            _ => match service.raw().status().as_u16() {
                404 => ErrorKind::NotFound,
                403 => ErrorKind::Denied,
                416 => ErrorKind::InvalidOffset,
                500.. => ErrorKind::Transient,
                _ => ErrorKind::Internal,
            },
        },
        _ => ErrorKind::Internal,
    };
    let report = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    StorageError::with_source(kind, report)
}
