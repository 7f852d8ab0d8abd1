//! A fault-injecting proxy between wharf and the S3 store. Requests pass through unchanged until a rule
//! matches one: by operation, after letting a number of that operation's calls through, for a number of
//! calls. A matched request gets its fault instead of (or on top of) the store's answer:
//!
//! - `Status(503)`: the proxy answers with that status and an S3 error body, the store never sees it;
//! - `Reset`: half of the request body reaches the store, then both connections are cut;
//! - `Hang(d)`: the request waits `d` before it goes on (the store looks frozen);
//! - `DropReply`: the store applies the request, and the connection is cut as its reply begins;
//! - `CutBody`: the reply's head and first bytes reach wharf, then the connection is cut.
//!
//! It speaks just enough HTTP/1.1 for aws-sdk-s3: requests with a `Content-Length` body (the SDK sends no
//! chunked bodies to wharf's store), replies streamed back as they come.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The S3 operations a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    ListObjectsV2,
    DeleteObject,
    DeleteObjects,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    Reset,
    Hang(Duration),
    DropReply,
    CutBody,
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    /// Only requests whose path ends with this (`/<key>`), when set.
    key: Option<String>,
    fault: Fault,
    /// Calls of `op` still let through before the fault applies.
    skip: u64,
    /// Calls the fault still applies to.
    times: u64,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<(Op, u64)>,
    injected: u64,
    /// Faults at random: per mille of requests, and the generator's state (xorshift).
    random: Option<(u64, u64)>,
}

/// The proxy; its `endpoint` goes into wharf's `storage.s3.endpoint`.
#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let proxy = FaultProxy { endpoint, state: Arc::default() };
        let serving = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (proxy, upstream) = (serving.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        proxy.serve(client, server).await;
                    }
                });
            }
        });
        proxy
    }

    /// From the `after + 1`-th call of `op` on, the next `times` calls get `fault`.
    pub fn inject(&self, op: Op, fault: Fault, after: u64, times: u64) {
        self.state.lock().unwrap().rules.push(Rule { op, key: None, fault, skip: after, times });
    }

    /// The same, counting only the calls of `op` on objects whose key ends with `/<key>`.
    pub fn inject_on(&self, op: Op, key: &str, fault: Fault, after: u64, times: u64) {
        let key = Some(format!("/{key}"));
        self.state.lock().unwrap().rules.push(Rule { op, key, fault, skip: after, times });
    }

    /// Every rule is dropped and random faults stop: the store behaves again.
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.rules.clear();
        state.random = None;
    }

    /// From now on, `per_mille` of the requests that no rule matches get a fault chosen at random (an error
    /// status, a reset, a lost reply, a second's hang; a cut body for downloads), repeatably for a `seed`.
    pub fn random(&self, per_mille: u64, seed: u64) {
        self.state.lock().unwrap().random = Some((per_mille, seed | 1));
    }

    /// Calls of `op` seen so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.state.lock().unwrap().calls.iter().find(|(o, _)| *o == op).map_or(0, |(_, n)| *n)
    }

    /// Requests seen so far, of every operation.
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().calls.iter().map(|(_, n)| n).sum()
    }

    /// Faults applied so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().unwrap().injected
    }

    /// The fault for the next call of `op`, counting the call.
    fn fault_for(&self, op: Op, path: &str) -> Option<Fault> {
        let mut state = self.state.lock().unwrap();
        match state.calls.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => state.calls.push((op, 1)),
        }
        let applies = |r: &Rule| r.op == op && r.key.as_ref().is_none_or(|k| path.ends_with(k.as_str()));
        let Some(rule) = state.rules.iter_mut().find(|r| applies(r) && (r.skip > 0 || r.times > 0)) else {
            let (per_mille, rng) = state.random.as_mut()?;
            let mut next = || {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                *rng
            };
            if next() % 1000 >= *per_mille {
                return None;
            }
            let faults: &[Fault] = match op {
                Op::GetObject => &[Fault::Status(500), Fault::Status(503), Fault::Reset, Fault::CutBody],
                _ => &[
                    Fault::Status(500),
                    Fault::Status(503),
                    Fault::Reset,
                    Fault::DropReply,
                    Fault::Hang(Duration::from_secs(1)),
                ],
            };
            let fault = faults[(next() % faults.len() as u64) as usize];
            state.injected += 1;
            return Some(fault);
        };
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.times -= 1;
        let fault = rule.fault;
        state.injected += 1;
        Some(fault)
    }

    /// One client connection, relayed over its own connection to the store, one request at a time (the
    /// SDK never pipelines).
    async fn serve(&self, mut client: TcpStream, mut server: TcpStream) {
        let mut pending = Vec::new();
        loop {
            let Some((head, body_len)) = read_head(&mut client, &mut pending).await else { return };
            let op = classify(&head);
            let fault = self.fault_for(op, &request_path(&head));
            if let Some(Fault::Hang(pause)) = fault {
                // A client that gives up meanwhile takes its request with it: nothing reaches the store later.
                let gone = async {
                    let mut byte = [0u8; 1];
                    loop {
                        match client.peek(&mut byte).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = gone => return,
                }
            }
            let mut body = std::mem::take(&mut pending);
            while (body.len() as u64) < body_len {
                let mut buf = vec![0; 64 * 1024];
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
            pending = body.split_off(body_len as usize);
            match fault {
                Some(Fault::Status(code)) => {
                    let text = if code == 503 { "SlowDown" } else { "InternalError" };
                    let xml =
                        format!("<?xml version=\"1.0\"?><Error><Code>{text}</Code><Message>injected</Message></Error>");
                    let reply = format!(
                        "HTTP/1.1 {code} {text}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{xml}",
                        xml.len()
                    );
                    if client.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Fault::Reset) => {
                    let _ = server.write_all(&head).await;
                    let _ = server.write_all(&body[..body.len() / 2]).await;
                    reset(client);
                    reset(server);
                    return;
                }
                _ => {}
            }
            if server.write_all(&head).await.is_err() || server.write_all(&body).await.is_err() {
                return;
            }
            match fault {
                Some(Fault::DropReply) => {
                    // The store has the request once its reply starts.
                    let mut byte = [0u8; 1];
                    let _ = server.read(&mut byte).await;
                    reset(client);
                    return;
                }
                Some(Fault::CutBody) => {
                    let mut buf = vec![0u8; 16 * 1024];
                    if let Ok(n) = server.read(&mut buf).await {
                        let _ = client.write_all(&buf[..n]).await;
                    }
                    reset(client);
                    return;
                }
                _ => {}
            }
            if !relay_reply(&mut server, &mut client, op == Op::HeadObject).await {
                return;
            }
        }
    }
}

/// Reads one request head (up to the blank line) from `client`, leaving what followed it in `pending`;
/// returns the head and its body's length.
async fn read_head(client: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(Vec<u8>, u64)> {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = pending.split_off(end + 4);
            let head = std::mem::replace(pending, rest);
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let len = header(&text, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!(header(&text, "transfer-encoding").is_none(), "the fault proxy relays no chunked bodies");
            return Some((head, len));
        }
        let mut buf = vec![0; 16 * 1024];
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Relays one reply from the store to the client: its head, then its body by `Content-Length` or chunks.
/// False when either side went away.
async fn relay_reply(server: &mut TcpStream, client: &mut TcpStream, head_only: bool) -> bool {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match server.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let text = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let chunked = header(&text, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header(&text, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let no_body = head_only || text.starts_with("http/1.1 204") || text.starts_with("http/1.1 304");
    if client.write_all(&got).await.is_err() {
        return false;
    }
    let mut body = got.split_off(head_end);
    if no_body {
        return true;
    }
    if !chunked {
        let mut left = length.saturating_sub(body.len());
        while left > 0 {
            match server.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    left = left.saturating_sub(n);
                    if client.write_all(&buf[..n]).await.is_err() {
                        return false;
                    }
                }
            }
        }
        return true;
    }
    // Chunked: relay until the last chunk ("0\r\n\r\n") has passed.
    loop {
        if body.ends_with(b"0\r\n\r\n") && chunks_end(&body) {
            return true;
        }
        match server.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                if client.write_all(&buf[..n]).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Whether a chunked body is complete: walks the chunk sizes to the zero-length one.
fn chunks_end(body: &[u8]) -> bool {
    let mut at = 0;
    loop {
        let Some(line_end) = body[at..].windows(2).position(|w| w == b"\r\n") else { return false };
        let size_text = String::from_utf8_lossy(&body[at..at + line_end]).to_string();
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            return false;
        };
        at += line_end + 2;
        if size == 0 {
            return body.len() >= at + 2;
        }
        at += size + 2;
        if at > body.len() {
            return false;
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// Closes a connection with a TCP reset, as a crashed peer or a broken network does.
fn reset(stream: TcpStream) {
    // A zero linger resets at once: the blocking on drop that deprecates `set_linger` cannot happen.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// The request's path, without its query.
fn request_path(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let target = text.split_whitespace().nth(1).unwrap_or("");
    target.split('?').next().unwrap_or("").to_owned()
}

/// The S3 operation a request head names (method, query and copy-source header).
fn classify(head: &[u8]) -> Op {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut words = text.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    let copy = header(&text, "x-amz-copy-source").is_some();
    match method {
        "put" if has("partnumber") && copy => Op::UploadPartCopy,
        "put" if has("partnumber") => Op::UploadPart,
        "put" if copy => Op::CopyObject,
        "put" => Op::PutObject,
        "post" if has("uploads") => Op::CreateMultipartUpload,
        "post" if has("uploadid") => Op::CompleteMultipartUpload,
        "post" if has("delete") => Op::DeleteObjects,
        "get" if has("list-type") => Op::ListObjectsV2,
        "get" if has("uploadid") => Op::ListParts,
        "get" if has("uploads") => Op::ListMultipartUploads,
        "get" => Op::GetObject,
        "head" => Op::HeadObject,
        "delete" if has("uploadid") => Op::AbortMultipartUpload,
        "delete" => Op::DeleteObject,
        _ => Op::Other,
    }
}
