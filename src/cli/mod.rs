//! The subcommands that manage a deployment's directory (`tenant`, `user`, `token`, `ban`, `usage`), one
//! module each, and the helpers they share: opening the directory, reading passwords, printing tables.

mod args;
mod ops;
mod tenant;
mod user;

use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use wharf::access::{Network, Networks, Permissions};
use wharf::auth::password;
use wharf::config::Backend;
use wharf::config::Config;
use wharf::directory::login_failures::{ip_scope, parse_user_scope, user_scope};
use wharf::directory::{self, Account, Directory, DirectoryError, NewUser, Quota, Tenant, TenantStorage};
use wharf::storage::fs::FsProvider;
use wharf::storage::s3::S3Provider;
use wharf::storage::StorageProvider;

pub(crate) use self::args::*;
pub(crate) use self::ops::*;
pub(crate) use self::tenant::*;
pub(crate) use self::user::*;

pub(crate) async fn open_directory(config: &Config) -> anyhow::Result<Arc<dyn Directory>> {
    open_directory_with(config, config.pool_options()).await
}

pub(crate) async fn open_directory_with(
    config: &Config,
    options: directory::PoolOptions,
) -> anyhow::Result<Arc<dyn Directory>> {
    let url = config.database_url();
    if sqlite_path(&url).is_some_and(|path| path.starts_with(&config.data_dir)) {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
    }
    directory::open_with(&url, &options)
        .await
        .with_context(|| format!("opening the directory at {}", wharf::config::redact_url(&url)))
}

pub(crate) fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

pub(crate) async fn existing_tenant(dir: &dyn Directory, name: &str) -> anyhow::Result<Tenant> {
    directory::validate_tenant_name(name)?;
    match dir.tenant_by_name(name).await? {
        Some(tenant) => Ok(tenant),
        None => bail!("tenant {name:?} does not exist (create it with `wharf tenant add {name}`)"),
    }
}

pub(crate) async fn ensure_hostname_free(dir: &dyn Directory, hostname: &str) -> anyhow::Result<()> {
    match dir.tenant_by_hostname(hostname).await? {
        Some(owner) => bail!("hostname {hostname:?} already selects tenant {:?}", owner.name),
        None => Ok(()),
    }
}

/// Turns the directory's terse conflict and not-found errors into sentences naming `what`.
pub(crate) fn explain(e: DirectoryError, kind: &str, what: &str) -> anyhow::Error {
    match e {
        DirectoryError::Conflict(kind) => anyhow::anyhow!("{kind} {what:?} already exists"),
        DirectoryError::NotFound => anyhow::anyhow!("{kind} {what:?} does not exist"),
        other => other.into(),
    }
}

pub(crate) fn split_login(login: &str) -> anyhow::Result<(&str, &str)> {
    match login.split_once('@') {
        Some((user, tenant)) if !user.is_empty() && !tenant.is_empty() => Ok((user, tenant)),
        _ => bail!("login {login:?} must be written user@tenant"),
    }
}

pub(crate) fn read_password(source: &PasswordSource) -> anyhow::Result<String> {
    let raw = match &source.password_file {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading the password from {}", path.display()))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading the password from stdin (one line; it will be echoed)");
            }
            let mut line = String::new();
            stdin.lock().read_line(&mut line).context("reading the password from stdin")?;
            line
        }
    };
    let password = raw.strip_suffix('\n').map_or(raw.as_str(), |s| s.strip_suffix('\r').unwrap_or(s));
    check_password(password)?;
    Ok(password.to_owned())
}

pub(crate) fn check_password(password: &str) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    if password.contains(['\r', '\n']) {
        bail!("the password must be a single line");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(())
}

pub(crate) async fn hash_password(secret: String, params: password::Params) -> anyhow::Result<String> {
    let hash = tokio::task::spawn_blocking(move || password::hash(&secret, &params)).await??;
    Ok(hash)
}

pub(crate) fn networks_summary(networks: &Networks) -> String {
    if networks.is_anywhere() {
        "anywhere".to_owned()
    } else {
        networks.to_string()
    }
}

pub(crate) fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
