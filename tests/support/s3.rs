//! The S3 server behind the S3-backend tests: the store `S3_TEST_ENDPOINT` names (scripts/test.sh
//! starts Garage, which checks SigV4 signatures, and points it there), else moto's S3 (a Python
//! implementation of the S3 REST protocol) on loopback, one process per test binary; one fresh bucket per
//! test. Wharf talks to it through
//! aws-sdk-s3 exactly as it talks to AWS; the tests use their own client to look at what was stored.
//!
//! Moto keeps S3's flat-namespace semantics (a `dir/` marker is an object like any other, a file and a
//! directory may share a name), which folder-backed servers cannot. It does not check request signatures.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "wharf-test-access";
pub const SECRET_KEY: &str = "wharf-test-secret";
pub const REGION: &str = "us-east-1";

struct Moto {
    endpoint: String,
    /// Held open for the life of the test binary: the server exits when it closes.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// The endpoint of the shared server, started on first use. `S3_TEST_ENDPOINT` points the tests at
/// another store instead (for example Garage from scripts/garage.sh, whose key must be allowed to create
/// buckets), with the credentials in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
pub fn endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    static OTHER: OnceLock<Option<String>> = OnceLock::new();
    if let Some(endpoint) = OTHER.get_or_init(|| std::env::var("S3_TEST_ENDPOINT").ok()) {
        return endpoint;
    }
    &MOTO.get_or_init(start_moto).endpoint
}

/// The key pair for [`endpoint`]: any for moto, the environment's for another store.
pub fn credentials() -> (String, String) {
    match (
        std::env::var("S3_TEST_ENDPOINT"),
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(_), Ok(id), Ok(secret)) => (id, secret),
        _ => (ACCESS_KEY.to_owned(), SECRET_KEY.to_owned()),
    }
}

/// The region for [`endpoint`].
pub fn region() -> String {
    match std::env::var("S3_TEST_ENDPOINT") {
        Ok(_) => std::env::var("AWS_REGION").unwrap_or_else(|_| REGION.to_owned()),
        Err(_) => REGION.to_owned(),
    }
}

fn start_moto() -> Moto {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_server.py");
    let mut command = Command::new("python3");
    command.arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    // The server stops when its stdin closes, which happens when this process exits however it ends.
    let mut child = command.spawn().expect("python3 runs (the S3 tests need: pip install 'moto[server]')");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("moto did not start (pip install 'moto[server]'); it printed {line:?}"));
    let endpoint = ready["endpoint"].as_str().expect("endpoint").to_owned();
    let stdin = child.stdin.take().unwrap();
    Moto { endpoint, _stdin: Mutex::new(stdin), _child: Mutex::new(child) }
}

/// A bucket of its own for one test, with a client to inspect it.
pub struct Bucket {
    pub name: String,
    pub client: Client,
}

impl Bucket {
    pub async fn create() -> Bucket {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .force_path_style(true)
            .region(Region::new(region()))
            .credentials_provider(Credentials::new(credentials().0, credentials().1, None, None, "tests"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            // Moto reports a multipart object's checksum in a form the SDK would misread as a mismatch.
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        let client = Client::from_conf(config);
        let name = format!("wharf-test-{:016x}", rand::random::<u64>());
        client.create_bucket().bucket(&name).send().await.expect("bucket created");
        Bucket { name, client }
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.client.get_object().bucket(&self.name).key(key).send().await.ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }

    pub async fn put(&self, key: &str, data: &[u8]) {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .unwrap();
    }

    /// Every key below `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.name).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            keys.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        keys.sort();
        keys
    }

    /// Multipart uploads still open in the bucket.
    pub async fn open_uploads(&self) -> usize {
        let out = self.client.list_multipart_uploads().bucket(&self.name).send().await.unwrap();
        out.uploads().len()
    }

    /// Multipart uploads open once the aborts wharf runs in the background had their chance: an upload
    /// whose transfer was cancelled while the store was still creating it is aborted by the task that
    /// created it, after the client got its reply. Waits up to 10 s for none to be left.
    pub async fn open_uploads_settled(&self) -> usize {
        for _ in 0..100 {
            let open = self.open_uploads().await;
            if open == 0 {
                return 0;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.open_uploads().await
    }
}

/// A TCP relay in front of the S3 server that keeps what clients sent through it, so that a test can see
/// which endpoint a request went to and how it was signed (the SigV4 `Credential=` names the key id and
/// the region).
pub struct Relay {
    pub endpoint: String,
    sent: std::sync::Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    pub async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = endpoint_addr(endpoint());
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (log, upstream) = (log.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = client_read.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                                let _ = server_write.shutdown().await;
                                return;
                            }
                            log.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    };
                    let down = tokio::io::copy(&mut server_read, &mut client_write);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Relay { endpoint, sent }
    }

    /// Everything clients sent so far, as text (request lines, headers and bodies).
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn endpoint_addr(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned()
}
