//! `cargo bench --bench s3`: wharf on the S3 backend against a real object store on loopback, next to the
//! same work done directly with aws-sdk-s3 in the same run. See BENCHMARKS.md.
//!
//! ```text
//! bench process ──FTPS──▶ target/release/wharf serve (S3 backend) ──S3──▶ Garage on 127.0.0.1
//!      └──────────────── aws-sdk-s3, same part size and parts in flight ──────────▲ (the reference)
//! ```
//!
//! Start the store first: `eval "$(scripts/garage.sh /tmp/garage)"` (it prints the AWS_* credentials,
//! WHARF_BENCH_S3_ENDPOINT and WHARF_BENCH_S3_BUCKET, default `wharf-bench`). `WHARF_BENCH_QUICK=1` shrinks
//! every size.

#[path = "ftps/client.rs"]
mod client;
#[path = "s3/direct.rs"]
mod direct;
#[path = "s3/peak.rs"]
mod peak;
#[path = "s3/source.rs"]
mod source;
#[path = "ftps/stats.rs"]
mod stats;
// Shared with the fs benchmark, which uses all of it.
#[allow(dead_code)]
#[path = "ftps/wharf.rs"]
mod wharf;

use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;

use client::{client_config, Client};
use direct::Direct;
use peak::Peak;
use source::Source;
use stats::{mb_s, median, runs, sha256, verdict};
use wharf::Wharf;

const MIB: usize = 1 << 20;
const PART: usize = 8 * MIB;
const IN_FLIGHT: usize = 4;

/// The parallel sessions and the small files send slices of the one source of `big_bytes`, so they fit in it.
struct Plan {
    big_bytes: usize,
    big_runs: usize,
    sessions: usize,
    session_bytes: usize,
    parallel_runs: usize,
    small_files: usize,
    small_bytes: usize,
    small_runs: usize,
}

impl Plan {
    fn from_env() -> Plan {
        if std::env::var("WHARF_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") {
            Plan {
                big_bytes: 64 * MIB,
                big_runs: 1,
                sessions: 4,
                session_bytes: 16 * MIB,
                parallel_runs: 1,
                small_files: 100,
                small_bytes: 4096,
                small_runs: 1,
            }
        } else {
            Plan {
                big_bytes: 1024 * MIB,
                big_runs: 3,
                sessions: 16,
                session_bytes: 64 * MIB,
                parallel_runs: 3,
                small_files: 1000,
                small_bytes: 4096,
                small_runs: 3,
            }
        }
    }
}

#[derive(Default)]
struct Results {
    direct_up: Vec<f64>,
    direct_down: Vec<f64>,
    upload: Vec<f64>,
    download: Vec<f64>,
    idle_kib: u64,
    upload_peak_kib: Vec<u64>,
    download_peak_kib: Vec<u64>,
    parallel: Vec<f64>,
    parallel_peak_kib: Vec<u64>,
    direct_small: Vec<f64>,
    small: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::from_env();
    let store = direct::Store::from_env()?;
    let dir = tempfile::Builder::new().prefix("wharf-bench-s3-").tempdir()?;
    let settings = store.wharf_settings(PART, IN_FLIGHT);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Wharf::start(dir.path(), &settings)?;
    eprintln!("wharf (pid {}) on {}, storing in {} at {}", server.pid(), server.addr, store.bucket, store.endpoint);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let results = match runtime.block_on(measure(&plan, &store, &server)) {
        Ok(results) => results,
        Err(e) => return Err(e.context(format!("server log kept in {}", dir.keep().display()))),
    };
    drop(server);
    print_report(&plan, &results, started.elapsed());
    Ok(())
}

async fn measure(plan: &Plan, store: &direct::Store, server: &Wharf) -> anyhow::Result<Results> {
    let mut r = Results::default();
    ensure!(
        plan.sessions * plan.session_bytes <= plan.big_bytes && plan.small_files * plan.small_bytes <= plan.big_bytes,
        "the plan's sizes must fit in its big file"
    );
    let direct = Direct::new(store).await;
    // Names (and data stamps) of this run only, so that runs against the same bucket never meet.
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let tag = format!("{millis:x}");
    let mut source = Source::new(plan.big_bytes, millis);
    let mut sink = vec![0u8; plan.big_bytes];
    let mut peak = Peak::new(server.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.idle_kib = server.rss_kib()?;

    let mut ftp = Client::login(server.addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
    for run in 0..plan.big_runs {
        let data = source.fresh();
        let hash = sha256(&data);
        let key = format!("direct/{tag}/big-{run}.bin");
        let took = direct.multipart_upload(&key, &data, PART, IN_FLIGHT).await?;
        r.direct_up.push(mb_s(data.len(), took));
        let took = direct.download(&key, &mut sink).await?;
        ensure!(sha256(&sink) == hash, "direct download differs");
        r.direct_down.push(mb_s(data.len(), took));
        direct.delete(&key).await?;
        // Shadowing would keep it alive, and `fresh` stamps in place only when no handle is left.
        drop(data);

        let data = source.fresh();
        let hash = sha256(&data);
        let name = format!("{tag}-big-{run}.bin");
        peak.reset()?;
        let clock = Instant::now();
        ftp.stor(&name, &data).await?;
        r.upload.push(mb_s(data.len(), clock.elapsed()));
        r.upload_peak_kib.push(peak.read()?);
        ensure!(direct.sha256(&stored_key(&name)).await? == hash, "stored {name} differs");

        sink.fill(0);
        peak.reset()?;
        let clock = Instant::now();
        let received = ftp.retr(&name, &mut sink).await?;
        r.download.push(mb_s(data.len(), clock.elapsed()));
        r.download_peak_kib.push(peak.read()?);
        ensure!(received == data.len() && sha256(&sink) == hash, "downloaded {name} differs");
        ftp.expect(&format!("DELE {name}"), 250).await?;
        eprintln!(
            "run {run}: direct up {:.0} down {:.0} MB/s; wharf up {:.0} down {:.0} MB/s; peak RSS up {} down {} KiB",
            r.direct_up[run],
            r.direct_down[run],
            r.upload[run],
            r.download[run],
            r.upload_peak_kib[run],
            r.download_peak_kib[run]
        );
    }
    ftp.quit().await;
    drop(sink);

    for run in 0..plan.parallel_runs {
        // Each session sends its own part of the source: the same bytes 16 times would be stored once.
        let data = source.fresh();
        let names: Vec<String> = (0..plan.sessions).map(|i| format!("{tag}-parallel-{run}-{i}.bin")).collect();
        peak.reset()?;
        let clock = Instant::now();
        let addr = server.addr;
        let uploads = names.iter().enumerate().map(|(i, name)| {
            let (data, name) = (data.slice(i * plan.session_bytes..(i + 1) * plan.session_bytes), name.clone());
            tokio::spawn(async move {
                let mut ftp = Client::login(addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
                ftp.stor(&name, &data).await?;
                ftp.quit().await;
                anyhow::Ok(())
            })
        });
        for upload in futures_util::future::join_all(uploads).await {
            upload??;
        }
        let rate = mb_s(plan.sessions * plan.session_bytes, clock.elapsed());
        r.parallel.push(rate);
        r.parallel_peak_kib.push(peak.read()?);
        eprintln!("parallel run {run}: {} × {} MiB at {rate:.0} MB/s", plan.sessions, plan.session_bytes / MIB);
        // Outside the timing, so that the store does not fill up with gigabytes per bench run.
        for name in &names {
            direct.delete(&stored_key(name)).await?;
        }
    }

    for run in 0..plan.small_runs {
        let files = small_files(&source.fresh(), plan);
        let clock = Instant::now();
        for (i, file) in files.iter().enumerate() {
            direct.put(&format!("direct/{tag}/small-{run}/f{i:05}"), file.clone()).await?;
        }
        let direct_rate = files.len() as f64 / clock.elapsed().as_secs_f64();
        drop(files); // as above: the next `fresh` then stamps in place

        let files = small_files(&source.fresh(), plan);
        let mut ftp = Client::login(server.addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
        ftp.expect(&format!("MKD {tag}-small-{run}"), 257).await?;
        let clock = Instant::now();
        for (i, file) in files.iter().enumerate() {
            ftp.stor(&format!("{tag}-small-{run}/f{i:05}"), file).await?;
        }
        let rate = files.len() as f64 / clock.elapsed().as_secs_f64();
        ftp.quit().await;
        eprintln!("small files run {run}: direct {direct_rate:.0}/s, wharf {rate:.0}/s");
        r.direct_small.push(direct_rate);
        r.small.push(rate);
    }
    Ok(r)
}

/// The object key of a file the bench user stored as `/name` (the tenant's prefix in the default bucket).
fn stored_key(name: &str) -> String {
    format!("{}/{name}", wharf::TENANT)
}

/// The first `small_files` pieces of `small_bytes` each, as zero-copy slices.
fn small_files(data: &Bytes, plan: &Plan) -> Vec<Bytes> {
    (0..plan.small_files).map(|i| data.slice(i * plan.small_bytes..(i + 1) * plan.small_bytes)).collect()
}

fn print_report(plan: &Plan, r: &Results, elapsed: Duration) {
    let big = format!("{} MiB", plan.big_bytes / MIB);
    let kib = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    let budget_kib = ((PART * (IN_FLIGHT + 1)) / 1024 + 16 * 1024) as u64;
    let upload_growth = kib(&r.upload_peak_kib).saturating_sub(r.idle_kib);
    println!();
    println!("| measurement | wharf (median) | runs | direct aws-sdk-s3 (median) | ratio | target | result |");
    println!("| --- | ---: | --- | ---: | ---: | --- | --- |");
    let ratio_row = |what: &str, wharf: &[f64], direct: &[f64], reference: &str, target: f64| {
        let (w, d) = (median(wharf), median(direct));
        println!(
            "| {what} | {w:.0} | {} | {d:.0} {reference}(runs {}) | {:.2} | ≥ {target} | {} |",
            runs(wharf),
            runs(direct),
            w / d,
            verdict(w >= target * d)
        );
    };
    ratio_row(&format!("upload {big}, one session (MB/s)"), &r.upload, &r.direct_up, "", 0.75);
    ratio_row(&format!("download {big}, one session (MB/s)"), &r.download, &r.direct_down, "", 0.75);
    let small = format!("{} × {} KiB files, one session (files/s)", plan.small_files, plan.small_bytes / 1024);
    ratio_row(&small, &r.small, &r.direct_small, "PutObject/s ", 0.5);
    println!(
        "| peak RSS growth during one upload, largest of the runs (KiB) | {upload_growth} | idle {} KiB, peaks {:?} | — | — | ≤ {budget_kib} (8 MiB × 5 + 16 MiB) | {} |",
        r.idle_kib,
        r.upload_peak_kib,
        verdict(upload_growth <= budget_kib)
    );
    println!(
        "| peak RSS growth during one download, largest (KiB) | {} | peaks {:?} | — | — | (diagnostic) | |",
        kib(&r.download_peak_kib).saturating_sub(r.idle_kib),
        r.download_peak_kib
    );
    let budget = 1024 * 1024; // the default memory_budget, in KiB
    let parallel_growth = kib(&r.parallel_peak_kib).saturating_sub(r.idle_kib);
    println!(
        "| {} sessions × {} MiB uploads (aggregate MB/s) | {:.0} | {} | — | — | — | |",
        plan.sessions,
        plan.session_bytes / MIB,
        median(&r.parallel),
        runs(&r.parallel)
    );
    println!(
        "| peak RSS growth during them, largest (KiB) | {parallel_growth} | peaks {:?} | — | — | ≤ 1 GiB budget + 16 MiB | {} |",
        r.parallel_peak_kib,
        verdict(parallel_growth <= budget + 16 * 1024)
    );
    println!();
    println!("Bench time: {:.0} s.", elapsed.as_secs_f64());
}
