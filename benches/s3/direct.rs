//! The reference: the same bytes moved by aws-sdk-s3 itself, with the part size and parallelism wharf
//! uses, through the same HTTP client stack (hyper + rustls/ring).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

/// Where the store is, from the environment `scripts/garage.sh` prints.
pub struct Store {
    pub endpoint: String,
    pub bucket: String,
    region: String,
    key_id: String,
    secret: String,
}

impl Store {
    pub fn from_env() -> anyhow::Result<Store> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: start a store first with eval \"$(scripts/garage.sh /tmp/garage)\"")
            })
        };
        Ok(Store {
            endpoint: var("WHARF_BENCH_S3_ENDPOINT")?,
            bucket: std::env::var("WHARF_BENCH_S3_BUCKET").unwrap_or_else(|_| "wharf-bench".to_owned()),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "garage".to_owned()),
            key_id: var("AWS_ACCESS_KEY_ID")?,
            secret: var("AWS_SECRET_ACCESS_KEY")?,
        })
    }

    /// The server's environment: wharf reads the credentials from the AWS_* variables it inherits.
    pub fn wharf_settings(&self, part: usize, in_flight: usize) -> Vec<(String, String)> {
        [
            ("WHARF_STORAGE__BACKEND", "s3".to_owned()),
            ("WHARF_STORAGE__S3__ENDPOINT", self.endpoint.clone()),
            ("WHARF_STORAGE__S3__BUCKET", self.bucket.clone()),
            ("WHARF_STORAGE__S3__REGION", self.region.clone()),
            ("WHARF_STORAGE__S3__FORCE_PATH_STYLE", "true".to_owned()),
            ("WHARF_STORAGE__S3__PART_SIZE", part.to_string()),
            ("WHARF_STORAGE__S3__PARTS_IN_FLIGHT", in_flight.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

pub struct Direct {
    client: Client,
    bucket: String,
}

impl Direct {
    pub async fn new(store: &Store) -> Direct {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&store.endpoint)
            .force_path_style(true)
            .region(Region::new(store.region.clone()))
            .credentials_provider(Credentials::new(&store.key_id, &store.secret, None, None, "bench"))
            .http_client(http)
            .build();
        Direct { client: Client::from_conf(config), bucket: store.bucket.clone() }
    }

    /// A multipart upload of `data` in `part`-sized slices (no copies), `in_flight` at a time.
    pub async fn multipart_upload(
        &self,
        key: &str,
        data: &Bytes,
        part: usize,
        in_flight: usize,
    ) -> anyhow::Result<Duration> {
        let clock = Instant::now();
        let created = self.client.create_multipart_upload().bucket(&self.bucket).key(key).send().await?;
        let upload_id = created.upload_id().context("no upload id")?.to_owned();
        let parts = data.len().div_ceil(part);
        let completed: Vec<CompletedPart> = futures_util::stream::iter(0..parts)
            .map(|i| {
                let body = data.slice(i * part..((i + 1) * part).min(data.len()));
                let upload_id = upload_id.clone();
                async move {
                    let number = i as i32 + 1;
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .body(ByteStream::from(body))
                        .send()
                        .await?;
                    anyhow::Ok(
                        CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build(),
                    )
                }
            })
            .buffered(in_flight)
            .try_collect()
            .await?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await?;
        Ok(clock.elapsed())
    }

    /// GetObject streamed into `sink`, as an FTP client writes what it receives.
    pub async fn download(&self, key: &str, sink: &mut [u8]) -> anyhow::Result<Duration> {
        let clock = Instant::now();
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await?;
        let mut body = out.body;
        let mut at = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if at + chunk.len() > sink.len() {
                bail!("{key} is longer than expected");
            }
            sink[at..at + chunk.len()].copy_from_slice(&chunk);
            at += chunk.len();
        }
        Ok(clock.elapsed())
    }

    pub async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(data)).send().await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await?;
        Ok(())
    }

    /// SHA-256 of a stored object, read back in full (outside any timing).
    pub async fn sha256(&self, key: &str) -> anyhow::Result<[u8; 32]> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await?;
        let mut body = out.body;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finalize().into())
    }
}
