//! Whose storage a backend opens, and the tenant's own settings for it.

/// Whose storage a backend opens: what it needs to know of the tenant, and nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOwner {
    pub tenant_id: i64,
    /// The tenant's name: the fs backend's folder, and the S3 prefix in the shared bucket.
    pub tenant_name: String,
    /// The tenant's own S3 settings; all `None` means the server's.
    pub settings: TenantStorage,
}

/// Settings an operator gave that cannot work; the text says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSettings(pub String);

/// A tenant's own S3 settings (bring-your-own-bucket). Unset fields fall back to the server's S3 config;
/// with no bucket of its own the tenant lives under `<server prefix><tenant>/` in the default bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantStorage {
    pub bucket: Option<String>,
    /// Key prefix inside the bucket, stored with a trailing `/` (or empty).
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    /// Where the secret key is: `env:NAME` or `file:/path`. The secret itself is never stored.
    pub secret_ref: Option<String>,
}

impl TenantStorage {
    /// Checks what an operator typed, so that a tenant's storage fails at `tenant add`, not at login.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let invalid = |why: &str| Err(InvalidSettings(why.to_owned()));
        if let Some(bucket) = &self.bucket {
            let ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
            if !ok {
                return invalid("bucket must be 3-63 lower-case letters, digits, '-' or '.'");
            }
        }
        if let Some(prefix) = &self.prefix {
            if prefix.starts_with('/')
                || prefix.contains("//")
                || prefix.len() > 512
                || prefix.chars().any(char::is_control)
            {
                return invalid("prefix must be relative, without '//' or control characters, at most 512 bytes");
            }
        }
        if self.bucket.is_none() && self.prefix.as_deref().is_some_and(|p| Self::normalised_prefix(p).is_empty()) {
            return invalid("a tenant in the shared bucket needs a non-empty prefix");
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid("endpoint must start with http:// or https://");
            }
        }
        // The server's own credentials (static keys, an instance role) must never be sent to a store that a
        // tenant names: whoever runs that endpoint would receive them.
        if self.endpoint.is_some() && self.access_key_id.is_none() {
            return invalid("a tenant with its own endpoint must bring its own access key id and secret reference");
        }
        if self.access_key_id.is_some() != self.secret_ref.is_some() {
            return invalid("access key id and secret reference must be given together");
        }
        if let Some(reference) = &self.secret_ref {
            if !(reference.starts_with("env:") || reference.starts_with("file:")) || reference.len() < 6 {
                return invalid("secret reference must be env:NAME or file:/path");
            }
        }
        Ok(())
    }

    /// The prefix with exactly one trailing `/` (or empty).
    pub fn normalised_prefix(prefix: &str) -> String {
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }
    }
}
