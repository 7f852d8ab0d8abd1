//! The reliability soak (`scripts/soak.sh`; ignored by the normal run): uploads and downloads of mixed
//! sizes, 1 KiB to 256 MiB, through the fault proxy with 5 % of S3 requests failing at random. Clients
//! behave as real ones do: an upload that gets a 4xx saying bytes were kept continues with REST + STOR,
//! any other failure is tried again from the start. It prints what happened and asserts the promises:
//! every file that got 226 reads back with its SHA-256, no partial object is visible, and after the sweep
//! no multipart upload is left in the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::faults::FaultProxy;
use crate::support::raw::Ftp;
use crate::support::{bytes, s3, sha256, Wharf, PASSWORD};

const TRIES: usize = 8;

#[derive(Default)]
struct Tally {
    transfers: u64,
    replies_226: u64,
    retries: u64,
    resumed: u64,
    failed: u64,
    downloads_checked: u64,
}

/// Log-uniform sizes from 1 KiB to 256 MiB, repeatable for a seed.
fn size_of(seed: u64) -> usize {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 31;
    let exponent = 10.0 + (x % 1_000_000) as f64 / 1_000_000.0 * 18.0;
    2f64.powf(exponent) as usize
}

/// One upload, tried as a client would; true once it got 226.
async fn upload(ftp: &mut Ftp, name: &str, data: &[u8], tally: &Mutex<Tally>) -> bool {
    let mut offset = 0usize;
    for attempt in 0..TRIES {
        if attempt > 0 {
            tally.lock().unwrap().retries += 1;
        }
        if offset > 0 && ftp.cmd(&format!("REST {offset}")).await.code != 350 {
            offset = 0;
        }
        let reply = ftp.store("STOR", name, &data[offset..]).await;
        match reply.code {
            226 => return true,
            _ => {
                // "the first N bytes are kept": continue from there; otherwise from the start.
                offset = reply
                    .text
                    .split("the first ")
                    .nth(1)
                    .and_then(|t| t.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if offset > 0 {
                    tally.lock().unwrap().resumed += 1;
                }
            }
        }
    }
    false
}

#[tokio::test]
#[ignore = "a soak of several minutes: scripts/soak.sh"]
async fn soak_with_random_store_faults() {
    let transfers: u64 = std::env::var("SOAK_TRANSFERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let workers: u64 = 4;
    let proxy = FaultProxy::start(s3::endpoint()).await;
    let endpoint = proxy.endpoint.clone();
    // Defaults, but for times short enough to see the sweep within the soak: leases of 10 s, parked
    // uploads kept 20 s, a sweep every second.
    let wharf = Arc::new(
        Wharf::start_s3_with(|c| {
            c.storage.s3.endpoint = Some(endpoint);
            c.storage.s3.lease_secs = 10;
            c.storage.s3.park_secs = 20;
            c.storage.s3.sweep_interval_secs = 1;
        })
        .await,
    );
    let seed: u64 = std::env::var("SOAK_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    proxy.random(50, seed);
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stored: Arc<Mutex<BTreeMap<String, (usize, String)>>> = Arc::default();
    // One future per session, driven together (the test client is not `Sync`, so no tasks).
    let sessions = (0..workers).map(|worker| {
        let (wharf, tally, stored) = (wharf.clone(), tally.clone(), stored.clone());
        async move {
            let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
            for i in (worker..transfers).step_by(workers as usize) {
                tally.lock().unwrap().transfers += 1;
                let existing: Vec<(String, (usize, String))> =
                    stored.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                if i % 2 == 1 && !existing.is_empty() {
                    let (name, (_, digest)) = &existing[(i as usize * 7) % existing.len()];
                    let mut ok = false;
                    for _ in 0..TRIES {
                        let (data, reply) = ftp.retr(name).await;
                        if reply.code == 226 {
                            assert_eq!(&sha256(&data), digest, "{name} read back different bytes");
                            ok = true;
                            break;
                        }
                        tally.lock().unwrap().retries += 1;
                    }
                    let mut t = tally.lock().unwrap();
                    if ok {
                        t.replies_226 += 1;
                        t.downloads_checked += 1;
                    } else {
                        t.failed += 1;
                    }
                    continue;
                }
                let size = size_of(i ^ seed);
                let data = bytes(size, i);
                let name = format!("soak-{i}.bin");
                if upload(&mut ftp, &name, &data, &tally).await {
                    tally.lock().unwrap().replies_226 += 1;
                    stored.lock().unwrap().insert(name, (size, sha256(&data)));
                } else {
                    tally.lock().unwrap().failed += 1;
                }
            }
        }
    });
    futures_util::future::join_all(sessions).await;
    let elapsed = started.elapsed();
    let (injected, requests) = (proxy.injected(), proxy.requests());
    proxy.heal();

    let bucket = wharf.s3.as_ref().unwrap();
    let stored = stored.lock().unwrap().clone();
    let (mut verified, mut lost) = (0u64, 0u64);
    for (name, (size, digest)) in &stored {
        match bucket.get(&format!("acme/{name}")).await {
            Some(back) if sha256(&back) == *digest => verified += 1,
            _ => lost += *size as u64,
        }
    }
    let visible = bucket.keys("acme/").await;
    let partial = visible.iter().filter(|k| !stored.contains_key(k.trim_start_matches("acme/"))).count();
    // Lease + parking time + a sweep, and a little more: every upload left open is out of time.
    let mut orphans = bucket.open_uploads().await;
    let until = Instant::now() + Duration::from_secs(45);
    while orphans > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        orphans = bucket.open_uploads().await;
    }
    let t = tally.lock().unwrap();
    let total: usize = stored.values().map(|(size, _)| size).sum();
    println!("soak: {} transfers by {workers} sessions in {:.0} s, seed {seed}", t.transfers, elapsed.as_secs_f64());
    println!("  S3 faults injected:            {injected} of {requests} requests");
    println!("  226 replies:                   {}", t.replies_226);
    println!("  retries by the clients:        {} ({} resumed from kept bytes)", t.retries, t.resumed);
    println!("  transfers that never got 226:  {}", t.failed);
    println!("  downloads checked (SHA-256):   {}", t.downloads_checked);
    println!("  files stored, verified:        {} of {} ({:.1} MiB)", verified, stored.len(), total as f64 / 1048576.0);
    println!("  bytes lost:                    {lost}");
    println!("  partial objects visible:       {partial}");
    println!("  multipart uploads left open:   {orphans}");
    assert_eq!(lost, 0, "every 226'd file reads back intact");
    assert_eq!(partial, 0, "no partial object is visible");
    assert_eq!(orphans, 0, "no multipart upload outlives the sweep");
}
