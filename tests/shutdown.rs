//! Graceful shutdown (issue 6): stop accepting, let running transfers finish within
//! `ftp.shutdown_grace_secs`, then abort the rest leaving nothing behind; idle sessions get 421 at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{bytes, Wharf};

#[tokio::test]
async fn idle_sessions_get_421_and_new_connections_are_refused() {
    let mut wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    wharf.begin_shutdown();
    let reply = tokio::time::timeout(Duration::from_secs(5), ftp.reply()).await.expect("told at once");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(ftp.is_closed().await);
    wharf.stopped().await;
    let connect = tokio::net::TcpStream::connect(wharf.explicit).await;
    match connect {
        Err(_) => {}
        Ok(mut tcp) => {
            let mut buf = [0u8; 8];
            assert!(matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)), "no greeting after shutdown");
        }
    }
}

#[tokio::test]
async fn a_transfer_that_ends_within_the_grace_period_completes() {
    let mut wharf = Wharf::start_with(|c| c.ftp.shutdown_grace_secs = 10).await;
    let mut ftp = wharf.login().await;
    let data = bytes(3 << 20, 5);
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR kept.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&data[..1 << 20]).await.unwrap();
    wharf.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tls.write_all(&data[1 << 20..]).await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    assert_eq!(ftp.reply().await.code, 226, "the upload finished during the grace period");
    assert_eq!(ftp.reply().await.code, 421, "then the session is closed");
    wharf.stopped().await;
    assert!(wharf.read_file("kept.bin").await == data);
}

#[tokio::test]
async fn a_transfer_that_outlasts_the_grace_period_is_aborted_and_leaves_nothing() {
    let mut wharf = Wharf::start_with(|c| c.ftp.shutdown_grace_secs = 1).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR cut.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(1 << 20, 6)).await.unwrap();
    tls.flush().await.unwrap();
    wharf.begin_shutdown();
    // The client stalls past the grace period.
    let mut codes = Vec::new();
    while let Ok(reply) = tokio::time::timeout(Duration::from_secs(10), ftp.reply()).await {
        codes.push(reply.code);
        if reply.code == 421 {
            break;
        }
    }
    assert_eq!(codes.last(), Some(&421), "{codes:?}");
    assert!(codes.iter().all(|c| matches!(c, 426 | 451 | 421)), "{codes:?}");
    drop(tls);
    wharf.stopped().await;
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new(), "no file and no temporary upload");
}
