//! `cargo bench --bench ftps`: wharf's FTPS throughput, small-file rate and idle-session memory on
//! loopback with the fs backend, next to the ceilings measured in the same run. See BENCHMARKS.md.
//!
//! ```text
//! bench process ──FTPS (resumed TLS data connections)──▶ target/release/wharf serve ──▶ <tmp>/storage
//!      │ (client + raw TLS server, one tokio runtime)         (own process: its RSS and CPU stay its own)
//!      └──raw TLS──▶ bare tokio-rustls server (ceiling)     dd conv=fdatasync into <tmp> (ceiling)
//! ```
//!
//! `WHARF_BENCH_QUICK=1` shrinks every size for a check in seconds; `WHARF_BENCH_DIR` picks the folder
//! (and so the disk) the server's data goes to (default: the system temp folder).

// The bench's own modules live in benches/ftps/ (a crate root's modules resolve next to it otherwise).
#[path = "ftps/ceiling.rs"]
mod ceiling;
#[path = "ftps/client.rs"]
mod client;
#[path = "ftps/stats.rs"]
mod stats;
#[path = "ftps/wharf.rs"]
mod wharf;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures_util::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};

use ceiling::{Direction, RawTls};
use client::{client_config, Client, Negotiated};
use stats::{mb_s, median, pseudo_random, runs, sha256, verdict};
use wharf::Wharf;

struct Plan {
    big_bytes: usize,
    big_runs: usize,
    small_files: usize,
    small_bytes: usize,
    small_runs: usize,
    idle_sessions: usize,
    disk_runs: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("WHARF_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Plan {
                big_bytes: 64 << 20,
                big_runs: 3,
                small_files: 100,
                small_bytes: 4096,
                small_runs: 1,
                idle_sessions: 20,
                disk_runs: 1,
            }
        } else {
            Plan {
                big_bytes: 1 << 30,
                big_runs: 5,
                small_files: 1000,
                small_bytes: 4096,
                small_runs: 3,
                idle_sessions: 200,
                disk_runs: 3,
            }
        }
    }
}

/// Every number of one run, in MB/s (10^6 bytes per second), files/s or KiB.
#[derive(Default)]
struct Results {
    raw_up: Vec<f64>,
    raw_down: Vec<f64>,
    upload: Vec<f64>,
    download: Vec<f64>,
    disk: Vec<f64>,
    small: Vec<f64>,
    small_without_fsync: Vec<f64>,
    small_disk: Vec<f64>,
    memory: Option<Memory>,
    raw_tls: Option<Negotiated>,
    ftps_tls: Option<Negotiated>,
    resumed: u64,
    full_handshakes: u64,
}

struct Memory {
    sessions: usize,
    before_kib: u64,
    after_kib: u64,
    closed_kib: u64,
    again_kib: u64,
}

impl Memory {
    /// The measure the target is about: growth of a fresh server per idle logged-in session.
    fn per_session(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.sessions as f64
    }

    /// The same, for a second batch opened after the first was closed (allocator already warm).
    fn per_session_warm(&self) -> f64 {
        (self.again_kib as f64 - self.closed_kib as f64) / self.sessions as f64
    }
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::from_env();
    let base = std::env::var_os("WHARF_BENCH_DIR").map(Into::into).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new().prefix("wharf-bench-").tempdir_in(&base)?;
    eprintln!("data folder: {}", dir.path().display());
    let server = Wharf::start(&dir.path().join("default"), &[])?;
    eprintln!("wharf (pid {}) listening on {}", server.pid(), server.addr);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let results = match runtime.block_on(measure(&plan, &server, dir.path())) {
        Ok(results) => results,
        Err(e) => return Err(e.context(format!("data and server logs kept in {}", dir.keep().display()))),
    };
    drop(server);
    print_report(&plan, &results, dir.path(), started.elapsed());
    Ok(())
}

async fn measure(plan: &Plan, server: &Wharf, dir: &Path) -> anyhow::Result<Results> {
    let mut results = Results::default();
    let source = Arc::new(pseudo_random(plan.big_bytes.max(plan.small_files * plan.small_bytes)));
    let source_hash = sha256(&source);
    let mut sink = vec![0u8; source.len()];

    eprintln!("idle sessions: {}", plan.idle_sessions);
    results.memory = Some(idle_memory(server, plan.idle_sessions).await?);

    let raw = RawTls::start(source.clone()).await?;
    let raw_client = client_config();
    let mut ftp = Client::login(server.addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
    for run in 0..plan.big_runs {
        let (took, negotiated) = raw.transfer(&raw_client, Direction::Up, &mut sink).await?;
        results.raw_up.push(mb_s(source.len(), took));
        let (took, _) = raw.transfer(&raw_client, Direction::Down, &mut sink).await?;
        ensure!(sha256(&sink) == source_hash, "raw TLS download corrupted");
        results.raw_down.push(mb_s(source.len(), took));
        results.raw_tls = Some(negotiated);

        let name = format!("big-{run}.bin");
        let clock = Instant::now();
        ftp.stor(&name, &source).await?;
        let took = clock.elapsed();
        ensure!(sha256_file(&server.stored_path(&name))? == source_hash, "stored {name} differs from the source");
        results.upload.push(mb_s(source.len(), took));

        sink.fill(0);
        let clock = Instant::now();
        let received = ftp.retr(&name, &mut sink).await?;
        let took = clock.elapsed();
        ensure!(received == source.len(), "downloaded {received} of {} bytes", source.len());
        ensure!(sha256(&sink) == source_hash, "downloaded {name} differs from the source");
        results.download.push(mb_s(source.len(), took));
        ftp.expect(&format!("DELE {name}"), 250).await?;
        eprintln!(
            "run {run}: raw TLS up {:.0} down {:.0} MB/s; wharf upload {:.0} download {:.0} MB/s",
            results.raw_up[run], results.raw_down[run], results.upload[run], results.download[run]
        );
    }
    results.ftps_tls = ftp.negotiated.clone();
    (results.resumed, results.full_handshakes) = (ftp.resumed, ftp.full_handshakes);
    ftp.quit().await;
    drop(sink);

    // The same session pattern against a server that does not fsync (as ProFTPD does not), and the disk's
    // own rate for the commit sequence wharf runs per file when it does.
    let relaxed =
        tokio::task::block_in_place(|| Wharf::start(&dir.join("no-fsync"), &[("WHARF_STORAGE__FSYNC", "false")]))?;
    let files: Vec<&[u8]> = source.chunks(plan.small_bytes).take(plan.small_files).collect();
    for run in 0..plan.small_runs {
        let rate = small_files(server, &files, run, &mut results).await?;
        let without_fsync = small_files(&relaxed, &files, run, &mut results).await?;
        let disk = tokio::task::block_in_place(|| ceiling::durable_small_files_per_s(dir, &files))?;
        eprintln!("small files run {run}: {rate:.0} files/s; without fsync {without_fsync:.0}; disk {disk:.0}");
        results.small.push(rate);
        results.small_without_fsync.push(without_fsync);
        results.small_disk.push(disk);
    }
    drop(relaxed);

    let disk_mib = plan.big_bytes >> 20;
    for _ in 0..plan.disk_runs {
        let rate = tokio::task::block_in_place(|| ceiling::disk_write_mb_s(dir, disk_mib))?;
        eprintln!("dd {disk_mib} MiB conv=fdatasync: {rate:.0} MB/s");
        results.disk.push(rate);
    }
    Ok(results)
}

/// VmRSS of the server before and after `count` sessions log in and stay idle; then again for a second
/// batch after the first one closed.
async fn idle_memory(server: &Wharf, count: usize) -> anyhow::Result<Memory> {
    let settle = Duration::from_secs(1);
    tokio::time::sleep(settle).await;
    let before_kib = server.rss_kib()?;
    let sessions = open_sessions(server, count).await?;
    tokio::time::sleep(settle).await;
    let after_kib = server.rss_kib()?;
    close_sessions(sessions).await;
    tokio::time::sleep(settle).await;
    let closed_kib = server.rss_kib()?;
    let sessions = open_sessions(server, count).await?;
    tokio::time::sleep(settle).await;
    let again_kib = server.rss_kib()?;
    close_sessions(sessions).await;
    Ok(Memory { sessions: count, before_kib, after_kib, closed_kib, again_kib })
}

/// Logs in `count` sessions, each with its own TLS config as separate clients would have, a few at a time.
async fn open_sessions(server: &Wharf, count: usize) -> anyhow::Result<Vec<Client>> {
    let addr = server.addr;
    futures_util::stream::iter(0..count)
        .map(|_| Client::login(addr, client_config(), wharf::LOGIN, wharf::PASSWORD))
        .buffer_unordered(8)
        .try_collect()
        .await
}

async fn close_sessions(sessions: Vec<Client>) {
    futures_util::stream::iter(sessions).for_each_concurrent(16, Client::quit).await;
}

/// One session uploads `chunks`, one file each, into a new folder; files/s.
async fn small_files(server: &Wharf, chunks: &[&[u8]], run: usize, results: &mut Results) -> anyhow::Result<f64> {
    let mut ftp = Client::login(server.addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
    let folder = format!("small-{run}");
    ftp.expect(&format!("MKD {folder}"), 257).await?;
    let clock = Instant::now();
    for (i, chunk) in chunks.iter().enumerate() {
        ftp.stor(&format!("{folder}/f{i:05}"), chunk).await?;
    }
    let took = clock.elapsed();
    results.resumed += ftp.resumed;
    results.full_handshakes += ftp.full_handshakes;
    ftp.quit().await;
    for (i, chunk) in chunks.iter().enumerate() {
        let path = server.stored_path(&format!("{folder}/f{i:05}"));
        ensure!(std::fs::read(&path)? == **chunk, "stored {} differs from the source", path.display());
    }
    Ok(chunks.len() as f64 / took.as_secs_f64())
}

fn sha256_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

fn print_report(plan: &Plan, r: &Results, dir: &Path, elapsed: Duration) {
    let (raw_up, raw_down, disk) = (median(&r.raw_up), median(&r.raw_down), median(&r.disk));
    let (upload, download, small) = (median(&r.upload), median(&r.download), median(&r.small));
    let (small_without_fsync, small_disk) = (median(&r.small_without_fsync), median(&r.small_disk));
    let up_ceiling = raw_up.min(disk);
    let big = format!("{} MiB", plan.big_bytes >> 20);
    let small_kib = plan.small_bytes / 1024;
    println!();
    println!("| measurement | median | runs | ceiling (median) | ratio | target | result |");
    println!("| --- | ---: | --- | ---: | ---: | --- | --- |");
    println!(
        "| upload {big}, one session (MB/s) | {upload:.0} | {} | {up_ceiling:.0} = min(raw TLS up, disk) | {:.2} | ≥ 0.80 × ceiling | {} |",
        runs(&r.upload),
        upload / up_ceiling,
        verdict(upload >= 0.8 * up_ceiling)
    );
    println!(
        "| download {big}, one session (MB/s) | {download:.0} | {} | {raw_down:.0} = raw TLS down | {:.2} | ≥ 0.80 × ceiling | {} |",
        runs(&r.download),
        download / raw_down,
        verdict(download >= 0.8 * raw_down)
    );
    println!(
        "| {} × {small_kib} KiB uploads, one session (files/s) | {small:.0} | {} | {small_disk:.0} = disk, durable small files | {:.2} | ≥ 400 files/s | {} |",
        plan.small_files,
        runs(&r.small),
        small / small_disk,
        verdict(small >= 400.0)
    );
    println!(
        "| same, server with `storage.fsync = false` (files/s) | {small_without_fsync:.0} | {} | — | — | (diagnostic) | |",
        runs(&r.small_without_fsync)
    );
    if let Some(m) = &r.memory {
        println!(
            "| server memory per idle logged-in session (KiB) | {:.1} | VmRSS {} → {} KiB with {} sessions | — | — | ≤ 128 KiB | {} |",
            m.per_session(),
            m.before_kib,
            m.after_kib,
            m.sessions,
            verdict(m.per_session() <= 128.0)
        );
        println!(
            "| same, second batch after the first closed (KiB) | {:.1} | VmRSS {} → {} KiB | — | — | (diagnostic) | |",
            m.per_session_warm(),
            m.closed_kib,
            m.again_kib
        );
    }
    println!("| ceiling: raw TLS stream client → server (MB/s) | {raw_up:.0} | {} | | | | |", runs(&r.raw_up));
    println!("| ceiling: raw TLS stream server → client (MB/s) | {raw_down:.0} | {} | | | | |", runs(&r.raw_down));
    println!(
        "| ceiling: `dd bs=1M count={} conv=fdatasync` (MB/s) | {disk:.0} | {} | | | | |",
        plan.big_bytes >> 20,
        runs(&r.disk)
    );
    println!(
        "| ceiling: {small_kib} KiB files: create, write, fsync, rename, fsync folder (files/s) | {small_disk:.0} | {} | | | | |",
        runs(&r.small_disk)
    );
    println!();
    let tls = |n: &Option<Negotiated>| n.as_ref().map(|n| format!("{} {}", n.version, n.suite)).unwrap_or_default();
    println!("TLS: wharf data connections {}; raw stream {}.", tls(&r.ftps_tls), tls(&r.raw_tls));
    println!("Data connections resumed: {} of {}.", r.resumed, r.resumed + r.full_handshakes);
    println!("Data folder: {} (removed at exit). Bench time: {:.0} s.", dir.display(), elapsed.as_secs_f64());
}
