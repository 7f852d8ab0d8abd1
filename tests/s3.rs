//! The S3 backend's own behaviour, against Garage on loopback (scripts/test.sh starts it; moto when run
//! without it): multipart uploads and their failure paths, the store's faults injected by a proxy, the
//! memory budget, resumable (parked) uploads, appends, listings, renames and HASH. The shared
//! protocol and client suites run on S3 as well (`WHARF_TEST_BACKEND=s3`, see scripts/test.sh).

mod faults;
mod hash;
mod listing;
mod renames;
mod resume;
mod soak;
mod tenants;
mod uploads;

use tokio::io::AsyncWriteExt;
use wharf::config::{Config, MIB};

use crate::support::raw::Ftp;
use crate::support::Wharf;

/// The smallest part S3 accepts, so that multipart paths are taken with small files.
pub const PART: usize = 5 * MIB as usize;

/// A wharf on S3 with 5 MiB parts, two in flight, and `adjust` applied.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Wharf {
    Wharf::start_s3_with(|c| {
        c.storage.s3.part_size = PART as u64;
        c.storage.s3.parts_in_flight = 2;
        c.storage.s3.park_secs = 3600;
        adjust(c);
    })
    .await
}

/// Sends `data` on a STOR of `path`, then cuts the data connection without a TLS close_notify, as a
/// crashing client or a broken network does; returns the final reply.
pub async fn store_and_cut(ftp: &mut Ftp, path: &str, data: &[u8]) -> crate::support::raw::Reply {
    let tcp = ftp.epsv().await;
    let opening = ftp.cmd(&format!("STOR {path}")).await;
    assert_eq!(opening.code, 150, "{opening:?}");
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(data).await.unwrap();
    tls.flush().await.unwrap();
    // Dropping the TCP stream under TLS sends a FIN without close_notify.
    let (tcp, _) = tls.into_inner();
    drop(tcp);
    ftp.reply().await
}

/// The object's ETag as S3 reports it (a multipart object's ends in `-<parts>`).
pub async fn etag(wharf: &Wharf, path: &str) -> String {
    let bucket = wharf.s3.as_ref().unwrap();
    let head = bucket.client.head_object().bucket(&bucket.name).key(format!("acme/{path}")).send().await.unwrap();
    head.e_tag().unwrap().trim_matches('"').to_owned()
}
