//! Per-user permissions, for the whole tree and per sub-path, checked for every command family before it
//! runs (550, storage untouched); and the client networks a tenant or user may log in from (530 like any
//! failed login, counted like one).

use std::net::IpAddr;

use chrono::Utc;
use wharf::access::{Networks, Permissions};
use wharf::config::{BanRule, Config};

use crate::support::postgres::Database;
use crate::support::raw::{Ftp, Reply};
use crate::support::{Wharf, PASSWORD};

/// Creates `user@acme` with `permissions` in its whole tree and the given path rules.
async fn user_with(wharf: &Wharf, user: &str, permissions: &str, rules: &[(&str, &str)]) {
    wharf.add_user("acme", user, PASSWORD).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let set: Permissions = permissions.parse().unwrap();
    wharf.directory.set_permissions(acme.id, user, set).await.unwrap();
    let rules: Vec<(String, Permissions)> =
        rules.iter().map(|(path, set)| (path.to_string(), set.parse().unwrap())).collect();
    wharf.directory.set_path_permissions(acme.id, user, &rules).await.unwrap();
}

fn assert_denied(reply: &Reply, expected: &str) {
    assert_eq!((reply.code, reply.text.as_str()), (550, format!("550 Permission denied: {expected}").as_str()));
}

/// The lines of a listing, without CR.
fn lines(listing: &str) -> Vec<&str> {
    listing.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect()
}

#[tokio::test]
async fn a_read_only_user_lists_and_downloads_but_every_change_is_refused_and_nothing_changes() {
    let wharf = Wharf::start().await;
    wharf.put_file("/out/a.txt", b"hello").await;
    wharf.put_dir("/empty").await;
    user_with(&wharf, "reader", "list,read", &[]).await;
    let before = wharf.files_on_disk("acme").await;
    let mut ftp = Ftp::login(wharf.explicit, "reader@acme", PASSWORD).await;

    // Allowed: listing, reading, facts, moving around.
    let (listing, reply) = ftp.listing("LIST /out").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert!(listing.contains("a.txt"), "{listing}");
    let (names, reply) = ftp.listing("NLST /out").await;
    assert_eq!((reply.code, lines(&names)), (226, vec!["a.txt"]));
    let (mlsd, reply) = ftp.listing("MLSD /out").await;
    assert_eq!(reply.code, 226);
    assert!(lines(&mlsd).iter().any(|l| l.contains("perm=r;") && l.ends_with(" a.txt")), "{mlsd}");
    assert!(ftp.cmd("MLST /out/a.txt").await.text.contains("perm=r;"));
    assert_eq!(ftp.cmd("STAT /out").await.code, 212);
    let (data, reply) = ftp.retr("/out/a.txt").await;
    assert_eq!((data.as_slice(), reply.code), (&b"hello"[..], 226), "download");
    assert_eq!(ftp.cmd("SIZE /out/a.txt").await.code, 213);
    assert_eq!(ftp.cmd("MDTM /out/a.txt").await.code, 213);
    assert_eq!(ftp.cmd("CWD /out").await.code, 250);
    assert_eq!(ftp.cmd("PWD").await.code, 257);
    assert_eq!(ftp.cmd("CDUP").await.code, 250);

    // Refused before anything happens, each naming what is missing where.
    assert_denied(&ftp.store("STOR", "/new.txt", b"x").await, "no write access to /new.txt");
    assert_denied(&ftp.store("APPE", "/out/a.txt", b"x").await, "no write access to /out/a.txt");
    assert_denied(&ftp.store("STOU", "", b"x").await, "no write access to /");
    assert_denied(&ftp.cmd("MFMT 20200102030405 /out/a.txt").await, "no write access to /out/a.txt");
    assert_denied(&ftp.cmd("DELE /out/a.txt").await, "no delete access to /out/a.txt");
    assert_denied(&ftp.cmd("RNFR /out/a.txt").await, "no rename access to /out/a.txt");
    assert_denied(&ftp.cmd("MKD /newdir").await, "no mkdir access to /newdir");
    assert_denied(&ftp.cmd("RMD /empty").await, "no delete access to /empty");
    assert_denied(&ftp.cmd("XRMD empty").await, "no delete access to /empty");

    // The refused uploads consumed their data connections; the session goes on normally.
    assert_eq!(ftp.retr("out/a.txt").await.1.code, 226);
    assert_eq!(wharf.files_on_disk("acme").await, before, "storage untouched");
    assert_eq!(wharf.read_file("/out/a.txt").await, b"hello");
    assert!(wharf.is_dir("/empty").await && !wharf.exists("/newdir").await);
}

#[tokio::test]
async fn an_upload_only_user_stores_but_cannot_list_or_read_anything() {
    let wharf = Wharf::start().await;
    wharf.put_file("/secret.txt", b"not yours").await;
    user_with(&wharf, "dropper", "write", &[]).await;
    let mut ftp = Ftp::login(wharf.explicit, "dropper@acme", PASSWORD).await;

    assert_eq!(ftp.store("STOR", "drop.txt", b"delivered").await.code, 226);
    assert_eq!(wharf.read_file("/drop.txt").await, b"delivered");
    assert_denied(&ftp.listing("LIST").await.1, "no list access to /");
    assert_denied(&ftp.listing("NLST").await.1, "no list access to /");
    assert_denied(&ftp.listing("MLSD /").await.1, "no list access to /");
    assert_denied(&ftp.cmd("MLST secret.txt").await, "no list access to /secret.txt");
    assert_denied(&ftp.cmd("STAT /").await, "no list access to /");
    assert_eq!(ftp.cmd("STAT").await.code, 211, "the session's status needs nothing");
    assert_denied(&ftp.retr("/secret.txt").await.1, "no read access to /secret.txt");
    assert_denied(&ftp.cmd("SIZE /secret.txt").await, "no read access to /secret.txt");
    assert_denied(&ftp.cmd("MDTM /secret.txt").await, "no read access to /secret.txt");
    assert_denied(&ftp.cmd("HASH /drop.txt").await, "no read access to /drop.txt");
    assert_denied(&ftp.cmd("XSHA256 /drop.txt").await, "no read access to /drop.txt");
    assert_eq!(ftp.cmd("CWD /").await.code, 250, "moving around needs no permission");
    // A path that does not resolve is still a 553, whatever the permissions.
    assert_eq!(ftp.cmd("SIZE bad\\name").await.code, 553);
}

/// Write under `/in` only; everything under `/in/work`; list and read elsewhere.
async fn a_path_rule_grants_write_under_one_folder_only(wharf: Wharf) {
    wharf.put_dir("/in/work").await;
    wharf.put_file("/in/work/a.txt", b"a").await;
    wharf.put_file("/out.txt", b"out").await;
    user_with(&wharf, "partner", "list,read", &[("/in", "list,read,write"), ("/in/work", "all")]).await;
    let mut ftp = Ftp::login(wharf.explicit, "partner@acme", PASSWORD).await;

    assert_eq!(ftp.store("STOR", "/in/x.txt", b"x").await.code, 226);
    assert_eq!(ftp.cmd("CWD in").await.code, 250);
    assert_eq!(ftp.store("STOR", "rel.txt", b"r").await.code, 226, "relative to the working directory");
    assert_eq!(ftp.store("APPE", "x.txt", b"y").await.code, 226);
    assert_eq!(ftp.cmd("CWD /").await.code, 250);
    assert_eq!(wharf.read_file("/in/x.txt").await, b"xy");
    assert_denied(&ftp.store("STOR", "/x.txt", b"x").await, "no write access to /x.txt");
    assert_denied(&ftp.store("STOR", "/inbox.txt", b"x").await, "no write access to /inbox.txt");
    assert_denied(&ftp.store("STOR", "/in/../x.txt", b"x").await, "no write access to /x.txt");
    assert_denied(&ftp.cmd("DELE /in/x.txt").await, "no delete access to /in/x.txt");
    assert_denied(&ftp.cmd("MKD /in/sub").await, "no mkdir access to /in/sub");
    assert_denied(&ftp.cmd("RNFR /in/x.txt").await, "no rename access to /in/x.txt");

    // Inside /in/work everything; renaming out of it needs rename and write at the target.
    assert_eq!(ftp.cmd("MKD /in/work/sub").await.code, 257);
    assert_eq!(ftp.cmd("RNFR /in/work/a.txt").await.code, 350);
    assert_eq!(ftp.cmd("RNTO /in/work/sub/b.txt").await.code, 250);
    assert_eq!(ftp.cmd("RNFR /in/work/sub/b.txt").await.code, 350);
    assert_denied(&ftp.cmd("RNTO /in/b.txt").await, "no rename access to /in/b.txt");
    assert_eq!(ftp.cmd("RNFR /in/work/sub/b.txt").await.code, 350);
    assert_denied(&ftp.cmd("RNTO /b.txt").await, "no write or rename access to /b.txt");
    assert_eq!(ftp.cmd("DELE /in/work/sub/b.txt").await.code, 250);
    assert_eq!(ftp.cmd("RMD /in/work/sub").await.code, 250);

    // MLSD tells each entry's own permissions.
    let (mlsd, reply) = ftp.listing("MLSD /in").await;
    assert_eq!(reply.code, 226);
    let mlsd = lines(&mlsd);
    assert!(mlsd.iter().any(|l| l.contains(";perm=rwa;") && l.ends_with(" x.txt")), "{mlsd:?}");
    assert!(mlsd.iter().any(|l| l.contains(";perm=elcmdfp;") && l.ends_with(" work")), "{mlsd:?}");
    assert_eq!(ftp.retr("/out.txt").await.0, b"out");
    assert!(!wharf.exists("/x.txt").await && !wharf.exists("/b.txt").await && !wharf.exists("/in/b.txt").await);
}

#[tokio::test]
async fn a_path_rule_grants_write_under_one_folder_only_on_sqlite() {
    a_path_rule_grants_write_under_one_folder_only(Wharf::start().await).await;
}

#[tokio::test]
async fn a_path_rule_grants_write_under_one_folder_only_on_postgres() {
    let db = Database::create().await;
    let wharf = Wharf::start_with(|cfg| cfg.database_url = Some(db.url.clone())).await;
    a_path_rule_grants_write_under_one_folder_only(wharf).await;
    db.drop().await;
}

#[tokio::test]
async fn permissions_are_read_at_login_and_kept_for_the_session() {
    let wharf = Wharf::start().await;
    user_with(&wharf, "bob", "list", &[]).await;
    let mut ftp = Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.set_permissions(acme.id, "bob", Permissions::ALL).await.unwrap();
    assert_denied(&ftp.cmd("MKD d").await, "no mkdir access to /d");
    assert_eq!(Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await.cmd("MKD d").await.code, 257, "next login");
}

/// A login on a connection of its own from `from`: the reply to PASS.
async fn login_from(wharf: &Wharf, from: &str, login: &str, password: &str) -> Reply {
    let (mut ftp, greeting) = Ftp::connect_from(wharf.explicit, from.parse::<IpAddr>().unwrap()).await;
    assert_eq!(greeting.code, 220, "{greeting:?}");
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd(&format!("USER {login}")).await.code, 331);
    ftp.cmd(&format!("PASS {password}")).await
}

/// Bans an address after `ip` failures; users are never banned here.
fn defence(cfg: &mut Config, ip: u32) {
    let d = &mut cfg.login_defence;
    d.ip = BanRule { threshold: ip, window_secs: 60, ban_secs: 60 };
    d.user = BanRule { threshold: 1000, window_secs: 60, ban_secs: 60 };
    d.max_delay_ms = 200;
}

#[tokio::test]
async fn a_user_outside_its_networks_gets_the_530_of_a_wrong_password_counted_like_one() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 2)).await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let only: Networks = "127.0.0.2/32".parse().unwrap();
    wharf.directory.set_user_networks(acme.id, "bob", &only).await.unwrap();

    let wrong = login_from(&wharf, "127.0.0.3", "bob@acme", "not the password").await;
    let outside = login_from(&wharf, "127.0.0.1", "bob@acme", PASSWORD).await;
    assert_eq!((outside.code, &outside.text), (530, &wrong.text), "no hint of why");
    assert_eq!(login_from(&wharf, "127.0.0.2", "bob@acme", PASSWORD).await.code, 230);
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230, "alice may, anywhere");

    // A second refusal from the same address reaches the threshold: banned as for wrong passwords.
    assert_eq!(login_from(&wharf, "127.0.0.1", "bob@acme", PASSWORD).await.code, 530);
    let bans: Vec<String> =
        wharf.directory.active_bans(Utc::now()).await.unwrap().into_iter().map(|b| b.scope).collect();
    assert_eq!(bans, ["ip:127.0.0.1"]);
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 530, "the address is banned");
}

#[tokio::test]
async fn a_tenant_network_rule_holds_for_all_its_users_and_users_narrow_it() {
    let wharf = Wharf::start().await;
    wharf.add_user("beta", "carol", PASSWORD).await;
    wharf.add_user("beta", "dave", PASSWORD).await;
    let beta = wharf.directory.tenant_by_name("beta").await.unwrap().unwrap();
    let tenant: Networks = "127.0.0.2/31".parse().unwrap();
    wharf.directory.set_tenant_networks(beta.id, &tenant).await.unwrap();
    // dave's own list reaches beyond the tenant's; only where both allow counts.
    let dave: Networks = "127.0.0.0/8".parse().unwrap();
    wharf.directory.set_user_networks(beta.id, "dave", &dave).await.unwrap();
    let carol_only: Networks = "127.0.0.3".parse().unwrap();

    for (from, user, code) in [
        ("127.0.0.1", "carol@beta", 530),
        ("127.0.0.2", "carol@beta", 230),
        ("127.0.0.3", "carol@beta", 230),
        ("127.0.0.4", "dave@beta", 530),
        ("127.0.0.3", "dave@beta", 230),
        ("127.0.0.4", "alice@acme", 230),
    ] {
        assert_eq!(login_from(&wharf, from, user, PASSWORD).await.code, code, "{user} from {from}");
    }
    wharf.directory.set_user_networks(beta.id, "carol", &carol_only).await.unwrap();
    assert_eq!(login_from(&wharf, "127.0.0.2", "carol@beta", PASSWORD).await.code, 530);
    wharf.directory.set_tenant_networks(beta.id, &Networks::anywhere()).await.unwrap();
    assert_eq!(login_from(&wharf, "127.0.0.3", "carol@beta", PASSWORD).await.code, 230);
    assert_eq!(login_from(&wharf, "127.0.0.1", "dave@beta", PASSWORD).await.code, 230, "anywhere again");
}

/// `wharf user set`, `wharf tenant networks` and what `user list` and `tenant list` show, with clear errors.
#[tokio::test]
async fn the_cli_sets_permissions_and_networks_and_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WHARF_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(dir.path()).env_remove("RUST_LOG").args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    assert!(run(&["tenant", "add", "acme"], None).0);
    assert!(run(&["user", "add", "alice@acme", "--password-stdin"], Some("a long password\n")).0);

    let set = [
        "user",
        "set",
        "alice@acme",
        "--permissions",
        "list,read",
        "--path-permissions",
        "/in=list,read,write",
        "--allow-network",
        "127.0.0.2",
    ];
    let (ok, out) = run(&set, None);
    assert!(ok, "{out}");
    assert!(out.contains("may do list,read; /in=list,read,write from 127.0.0.2/32"), "{out}");
    let (ok, out) = run(&["tenant", "networks", "acme", "--allow-network", "127.0.0.0/8"], None);
    assert!(ok && out.contains("may log in from 127.0.0.0/8"), "{out}");
    let (_, users) = run(&["user", "list"], None);
    assert!(users.contains("PERMISSIONS") && users.contains("list,read; /in=list,read,write  127.0.0.2/32"), "{users}");
    assert!(run(&["tenant", "list"], None).1.contains("127.0.0.0/8"));

    for (args, error) in [
        (&["user", "set", "alice@acme"][..], "required arguments were not provided"),
        (&["user", "set", "alice@acme", "--permissions", "list,wirte"], "unknown permission \"wirte\""),
        (&["user", "set", "alice@acme", "--path-permissions", "/in"], "must be PATH=PERMS"),
        (&["user", "set", "alice@acme", "--path-permissions", "/a/../b=all"], "must not contain '.' or '..'"),
        (&["user", "set", "alice@acme", "--allow-network", "10.0.0.1/8"], "did you mean 10.0.0.0/8?"),
        (&["user", "set", "alice@acme", "--anywhere", "--allow-network", "10.0.0.0/8"], "cannot be used with"),
        (&["user", "set", "bob@acme", "--permissions", "all"], "user \"bob@acme\" does not exist"),
        (&["tenant", "networks", "acme"], "required arguments were not provided"),
        (&["tenant", "networks", "nope", "--anywhere"], "tenant \"nope\" does not exist"),
    ] {
        let (ok, out) = run(args, None);
        assert!(!ok && out.contains(error), "{args:?}: {out}");
    }
    // A refused change changed nothing.
    assert_eq!(run(&["user", "list"], None).1, users);

    let (ok, out) = run(&["user", "set", "alice@acme", "--no-path-permissions", "--anywhere"], None);
    assert!(ok && out.contains("may do list,read from anywhere"), "{out}");
    assert!(run(&["tenant", "networks", "acme", "--anywhere"], None).0);
}
