//! `cargo bench --bench login`: how fast wharf logs users in over FTPS at the default argon2id parameters,
//! and whether a login flood starves sessions that are already logged in. See BENCHMARKS.md.
//!
//! ```text
//! bench process ──FTPS (AUTH TLS, PBSZ, PROT, USER, PASS)──▶ target/release/wharf serve (SQLite, fs)
//!      └── the reference: argon2id hashes at the same parameters, timed in this process
//! ```
//!
//! `WHARF_BENCH_QUICK=1` shortens every phase.
//!
//! Around the 4-client phase the bench also reads the server's minor page faults and CPU time from
//! `/proc/<pid>/stat`, per login: what a login costs the kernel next to the hash itself.

// Shared with the transfer benchmarks; logins use only a part of each.
#[allow(dead_code)]
#[path = "ftps/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "ftps/stats.rs"]
mod stats;
// Shared with the fs benchmark, which uses all of it.
#[allow(dead_code)]
#[path = "ftps/wharf.rs"]
mod wharf;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{client_config, Client};
use stats::{median, verdict};
use wharf::Wharf;

struct Plan {
    /// Sequential logins of one client, for its latency.
    single: usize,
    /// How long each parallel phase runs.
    phase: Duration,
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::var_os("WHARF_BENCH_QUICK").is_some();
    let plan = if quick {
        Plan { single: 10, phase: Duration::from_secs(2), rounds: 1 }
    } else {
        Plan { single: 60, phase: Duration::from_secs(10), rounds: 3 }
    };
    let base = std::env::var_os("WHARF_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let server = Wharf::start(&dir.path().join("login"), &[])?;
    eprintln!("wharf (pid {}) on {}", server.pid(), server.addr);
    let started = Instant::now();

    let verify = argon2_verify_cost(if quick { 5 } else { 20 })?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = cores as f64 / verify.as_secs_f64();
    let mut single = Vec::new();
    let mut parallel = Vec::new();
    let mut per_login = Vec::new();
    let mut noop_p99 = Vec::new();
    let mut flood_rates = Vec::new();
    runtime.block_on(async {
        for round in 0..plan.rounds {
            let latencies = sequential_logins(server.addr, plan.single).await?;
            single.push(percentile(&latencies, 0.5));
            let before = ServerCost::read(server.pid())?;
            let (rate, logins) = parallel_logins(server.addr, 4, plan.phase).await?;
            let cost = ServerCost::read(server.pid())?.since(&before, logins);
            parallel.push(rate);
            per_login.push(cost);
            let (noops, flood) = noop_under_flood(server.addr, 100, plan.phase).await?;
            noop_p99.push(percentile(&noops, 0.99));
            flood_rates.push(flood);
            eprintln!(
                "round {round}: one client p50 {:.1} ms; 4 clients {rate:.1} logins/s ({:.0} minor faults, {:.1} ms \
                 user and {:.1} ms system CPU per login); NOOP p99 {:.1} ms under 100 clients logging in \
                 ({flood:.1} logins/s, {} NOOPs)",
                percentile(&latencies, 0.5),
                cost.minor_faults,
                cost.user_ms,
                cost.system_ms,
                percentile(&noops, 0.99),
                noops.len()
            );
        }
        anyhow::Ok(())
    })?;

    let ms = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ");
    println!();
    println!("One argon2id hash at the default parameters (m=19 MiB, t=2, p=1): {:.1} ms on one core, so {cores} cores bound logins near {ceiling:.0}/s.", verify.as_secs_f64() * 1e3);
    println!();
    println!("| measurement | median | runs | target | result |");
    println!("| --- | ---: | --- | --- | --- |");
    let p50 = median(&single);
    println!(
        "| one client: full login (connect, AUTH TLS, PBSZ, PROT, USER, PASS), p50 (ms) | {p50:.1} | {} | ≤ 50 | {} |",
        ms(&single),
        verdict(p50 <= 50.0)
    );
    let rate = median(&parallel);
    println!("| 4 parallel clients: logins/s | {rate:.1} | {} | ≥ 50 | {} |", ms(&parallel), verdict(rate >= 50.0));
    println!("| … as a share of the argon2id ceiling ({ceiling:.0}/s) | {:.2} | | | |", rate / ceiling);
    let costs = |cost: fn(&ServerCost) -> f64| per_login.iter().map(cost).collect::<Vec<f64>>();
    for (what, values) in [
        ("minor page faults", costs(|c| c.minor_faults)),
        ("user CPU (ms)", costs(|c| c.user_ms)),
        ("system CPU (ms)", costs(|c| c.system_ms)),
    ] {
        println!("| … server {what} per login | {:.1} | {} | | |", median(&values), ms(&values));
    }
    let p99 = median(&noop_p99);
    println!(
        "| NOOP p99 on a logged-in session while 100 clients log in (ms) | {p99:.1} | {} | < 50 | {} |",
        ms(&noop_p99),
        verdict(p99 < 50.0)
    );
    println!("| logins/s during that flood | {:.1} | {} | | |", median(&flood_rates), ms(&flood_rates));
    println!();
    println!("Bench time: {:.0} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// The median time of one argon2id hash at wharf's default parameters (a verification costs the same).
fn argon2_verify_cost(samples: usize) -> anyhow::Result<Duration> {
    let params = ::wharf::auth::password::Params::default();
    let mut took = Vec::new();
    for _ in 0..samples {
        let clock = Instant::now();
        ::wharf::auth::password::hash("a long enough password", &params)?;
        took.push(clock.elapsed().as_secs_f64());
    }
    Ok(Duration::from_secs_f64(median(&took)))
}

/// `count` logins one after the other; each one's time from connect to 230, in ms.
async fn sequential_logins(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let clock = Instant::now();
        let ftp = Client::login(addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
        latencies.push(clock.elapsed().as_secs_f64() * 1e3);
        ftp.quit().await;
    }
    Ok(latencies)
}

/// `clients` tasks logging in and out for `phase`; logins per second, and how many.
async fn parallel_logins(addr: std::net::SocketAddr, clients: usize, phase: Duration) -> anyhow::Result<(f64, u64)> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Instant::now();
    let tasks: Vec<_> = (0..clients).map(|_| tokio::spawn(login_loop(addr, done.clone(), stop.clone()))).collect();
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let logins = done.load(Ordering::Relaxed);
    Ok((logins as f64 / clock.elapsed().as_secs_f64(), logins))
}

async fn login_loop(addr: std::net::SocketAddr, done: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let ftp = Client::login(addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
        done.fetch_add(1, Ordering::Relaxed);
        ftp.quit().await;
    }
    Ok(())
}

/// One logged-in session sends NOOP every 20 ms while `clients` tasks log in and out; the NOOP round trips
/// in ms, and the logins per second of the flood.
async fn noop_under_flood(
    addr: std::net::SocketAddr,
    clients: usize,
    phase: Duration,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut session = Client::login(addr, client_config(), wharf::LOGIN, wharf::PASSWORD).await?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Instant::now();
    let tasks: Vec<_> = (0..clients).map(|_| tokio::spawn(login_loop(addr, done.clone(), stop.clone()))).collect();
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut noops = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while clock.elapsed() < phase {
        tick.tick().await;
        let sent = Instant::now();
        session.expect("NOOP", 200).await?;
        noops.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / clock.elapsed().as_secs_f64();
    session.quit().await;
    Ok((noops, rate))
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The server's counters from `/proc/<pid>/stat`; after [`ServerCost::since`], per login.
#[derive(Clone, Copy)]
struct ServerCost {
    minor_faults: f64,
    user_ms: f64,
    system_ms: f64,
}

impl ServerCost {
    fn read(pid: u32) -> anyhow::Result<ServerCost> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name in parentheses may hold spaces; the fields after it are plain numbers, the
        // first being field 3 (state): minflt is field 10, utime 14 and stime 15, in clock ticks.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
        let field = |n: usize| -> anyhow::Result<f64> {
            let value = fields.get(n - 3).ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: no field {n}"))?;
            Ok(value.parse::<u64>()? as f64)
        };
        // SAFETY: sysconf only reads a system setting.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let ms = |ticks: f64| ticks * 1e3 / ticks_per_s;
        Ok(ServerCost { minor_faults: field(10)?, user_ms: ms(field(14)?), system_ms: ms(field(15)?) })
    }

    fn since(&self, before: &ServerCost, logins: u64) -> ServerCost {
        let per = |after: f64, before: f64| (after - before) / logins.max(1) as f64;
        ServerCost {
            minor_faults: per(self.minor_faults, before.minor_faults),
            user_ms: per(self.user_ms, before.user_ms),
            system_ms: per(self.system_ms, before.system_ms),
        }
    }
}
