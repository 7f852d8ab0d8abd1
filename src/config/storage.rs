//! `[storage]`: where tenants' files live, the fs backend's settings and `[storage.s3]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of the fs backend; each tenant gets a folder named after it. Default: `<data_dir>/storage`.
    pub fs_root: Option<PathBuf>,
    /// Call fsync on every upload before its 226 (and on the directory after the rename).
    pub fsync: bool,
    /// Where tenants' files live: `fs` (a local folder, the embedded default) or `s3`.
    pub backend: Backend,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Fs,
    S3,
}

/// The S3 backend. Tenants without storage settings of their own use `bucket` with the key prefix
/// `<tenant>/`; a tenant may name its own bucket, prefix, endpoint, region and credentials.
///
/// Defaults: AWS's endpoint and credential chain (environment, profile, web identity, instance role),
/// virtual-hosted addressing, 8 MiB parts with 4 in flight, a 1 GiB budget for part buffers (256 MiB per
/// tenant), parked uploads kept for 24 hours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket of tenants that have none of their own. Required with `backend = "s3"`.
    pub bucket: Option<String>,
    /// Prepended to every tenant's default prefix (`<prefix><tenant>/`).
    pub prefix: String,
    /// An S3-compatible endpoint (MinIO, Garage, Ceph, R2), e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region; AWS's chain (`AWS_REGION`, profile) when unset, `us-east-1` as a last resort.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most self-hosted stores need.
    pub force_path_style: bool,
    /// Static credentials; the AWS credential chain when unset. Prefer `secret_access_key_file` or the
    /// standard `AWS_*` environment variables to a secret in the config file.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Bytes per multipart part at the start of an upload; it doubles every 900 parts so that an upload
    /// of unknown size still fits in S3's 10,000 parts, up to half of `tenant_memory_budget`. S3's
    /// minimum is 5 MiB.
    pub part_size: u64,
    /// Parts of one upload sent to S3 at once (fewer once parts grow so large that they would not fit in
    /// `tenant_memory_budget` together).
    pub parts_in_flight: usize,
    /// Bytes of part buffers all uploads together may hold; past it, wharf stops reading data sockets.
    pub memory_budget: u64,
    /// The same, for each tenant. It also bounds one upload's largest part (half of it), and so the
    /// largest file: about 905 GiB with the defaults, S3's 5 TiB from 2.5 GiB up (`wharf serve` prints it).
    pub tenant_memory_budget: u64,
    /// Objects one RNFR/RNTO of a directory may move; past it the rename is refused with 550.
    pub max_rename_objects: usize,
    /// How long an interrupted upload stays parked for REST/APPE to continue it; 0 aborts at once.
    pub park_secs: u64,
    /// How often expired parked uploads are looked for and aborted.
    pub sweep_interval_secs: u64,
    /// One request to the store, from its first byte sent to the reply's headers (a part's body
    /// included), before it is given up and retried. It must cover sending the largest part.
    pub attempt_timeout_secs: u64,
    /// One operation with all its retries; past it the command or transfer fails with 451 (an upload
    /// parks what the store confirmed).
    pub operation_timeout_secs: u64,
    /// Attempts per request, with exponential backoff between them; errors the store marks as
    /// throttling (503 SlowDown) also slow the client down.
    pub max_attempts: u32,
    /// How long a running multipart upload's row holds its lease; renewed every third of it while the
    /// upload lives. An upload whose instance died is aborted (or parked) once its lease is out.
    pub lease_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { fs_root: None, fsync: true, backend: Backend::Fs, s3: S3Config::default() }
    }
}

pub const MIB: u64 = 1024 * 1024;

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: None,
            prefix: String::new(),
            endpoint: None,
            region: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            part_size: 8 * MIB,
            parts_in_flight: 4,
            memory_budget: 1024 * MIB,
            tenant_memory_budget: 256 * MIB,
            max_rename_objects: 10_000,
            park_secs: 24 * 3600,
            sweep_interval_secs: 300,
            attempt_timeout_secs: 60,
            operation_timeout_secs: 180,
            max_attempts: 5,
            lease_secs: 120,
        }
    }
}

impl S3Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        if self.bucket.as_deref().is_none_or(str::is_empty) {
            return invalid("storage.s3.bucket", "is required with storage.backend = \"s3\"");
        }
        if !(5 * MIB..=5 * 1024 * MIB).contains(&self.part_size) {
            return invalid("storage.s3.part_size", "must be between 5 MiB and 5 GiB (S3's part size limits)");
        }
        if !(1..=64).contains(&self.parts_in_flight) {
            return invalid("storage.s3.parts_in_flight", "must be between 1 and 64");
        }
        let per_upload = self.part_size * (self.parts_in_flight as u64 + 1);
        if self.tenant_memory_budget < per_upload || self.memory_budget < self.tenant_memory_budget {
            return invalid(
                "storage.s3.memory_budget",
                "tenant_memory_budget must hold one upload (part_size x (parts_in_flight + 1)) and memory_budget \
                 one tenant's budget",
            );
        }
        if self.secret_access_key.is_some() && self.secret_access_key_file.is_some() {
            return invalid(
                "storage.s3.secret_access_key",
                "give secret_access_key or secret_access_key_file, not both",
            );
        }
        let has_secret = self.secret_access_key.is_some() || self.secret_access_key_file.is_some();
        if self.access_key_id.is_some() != has_secret {
            return invalid("storage.s3.access_key_id", "access_key_id and a secret must be given together");
        }
        if self.attempt_timeout_secs == 0 || self.operation_timeout_secs < self.attempt_timeout_secs {
            return invalid(
                "storage.s3.operation_timeout_secs",
                "attempt_timeout_secs must be at least 1 and operation_timeout_secs at least attempt_timeout_secs",
            );
        }
        if !(1..=20).contains(&self.max_attempts) {
            return invalid("storage.s3.max_attempts", "must be between 1 and 20");
        }
        if self.lease_secs < 3 {
            return invalid("storage.s3.lease_secs", "must be at least 3");
        }
        if self.max_rename_objects == 0 || self.sweep_interval_secs == 0 {
            return invalid(
                "storage.s3.max_rename_objects",
                "max_rename_objects and sweep_interval_secs must be at least 1",
            );
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid("storage.s3.endpoint", "must start with http:// or https://");
            }
        }
        Ok(())
    }
}
