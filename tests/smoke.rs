//! The shortest path through the product: log in, upload, list, download.

use crate::support::raw::Ftp;
use crate::support::{bytes, Wharf, PASSWORD};

#[tokio::test]
async fn upload_list_download_round_trip() {
    let wharf = Wharf::start().await;
    let mut ftp = Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
    let data = bytes(300_000, 1);
    assert_eq!(ftp.store("STOR", "hello.bin", &data).await.code, 226);
    let (listing, reply) = ftp.listing("LIST").await;
    assert_eq!(reply.code, 226);
    assert!(listing.contains("hello.bin"), "{listing}");
    let (back, reply) = ftp.retr("hello.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(back, data);
    assert_eq!(wharf.files_on_disk("acme").await, vec!["hello.bin"]);
}
