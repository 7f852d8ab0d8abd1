//! HASH (draft-bryan-ftpext-hash), OPTS HASH and the XSHA256 / XCRC forms, answered from the checksums
//! recorded at upload rather than by reading the object again.

use super::{start, PART};
use crate::support::{bytes, sha256};

#[tokio::test]
async fn hash_answers_sha256_and_crc32_of_what_was_stored() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    for (name, data) in [("small.bin", bytes(1000, 40)), ("multi.bin", bytes(2 * PART + 3, 41)), ("empty", Vec::new())]
    {
        assert_eq!(ftp.store("STOR", name, &data).await.code, 226);
        let reply = ftp.cmd(&format!("HASH {name}")).await;
        let end = data.len().saturating_sub(1);
        assert_eq!(reply.text, format!("213 SHA-256 0-{end} {} {name}", sha256(&data)), "{name}");
        assert_eq!(ftp.cmd(&format!("XSHA256 {name}")).await.text, format!("213 {}", sha256(&data)));
        let crc = format!("{:08X}", crc32fast::hash(&data));
        assert_eq!(ftp.cmd(&format!("XCRC {name}")).await.text, format!("250 {crc}"));
    }

    assert_eq!(ftp.cmd("OPTS HASH").await.text, "200 SHA-256");
    assert_eq!(ftp.cmd("OPTS HASH CRC32").await.text, "200 CRC32");
    let data = bytes(1000, 40);
    let reply = ftp.cmd("HASH small.bin").await;
    assert_eq!(reply.text, format!("213 CRC32 0-999 {:08x} small.bin", crc32fast::hash(&data)));
    assert_eq!(ftp.cmd("OPTS HASH MD4").await.code, 504);
    assert_eq!(ftp.cmd("OPTS HASH").await.text, "200 CRC32", "unchanged by a refused choice");
}

#[tokio::test]
async fn hash_refuses_what_it_cannot_answer_truthfully() {
    let wharf = start(|_| {}).await;
    // Written by another S3 client: wharf recorded nothing, and will not read the object to find out.
    wharf.put_file("foreign.bin", b"not through wharf").await;
    let mut ftp = wharf.login().await;
    let reply = ftp.cmd("HASH foreign.bin").await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text.contains("No checksum"), "{reply:?}");
    assert_eq!(ftp.cmd("HASH missing.bin").await.code, 550);
    assert_eq!(ftp.cmd("MKD d").await.code, 257);
    assert_eq!(ftp.cmd("HASH d").await.code, 550);

    // Overwritten by another client after wharf stored it: the record no longer matches.
    assert_eq!(ftp.store("STOR", "changed.bin", b"by wharf").await.code, 226);
    wharf.put_file("changed.bin", b"by someone else").await;
    assert_eq!(ftp.cmd("HASH changed.bin").await.code, 550);

    // A rename keeps the checksums with the bytes.
    assert_eq!(ftp.store("STOR", "a.bin", b"moving").await.code, 226);
    assert_eq!(ftp.cmd("RNFR a.bin").await.code, 350);
    assert_eq!(ftp.cmd("RNTO b.bin").await.code, 250);
    assert_eq!(ftp.cmd("XSHA256 b.bin").await.text, format!("213 {}", sha256(b"moving")));
}
