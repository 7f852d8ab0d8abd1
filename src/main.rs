//! The `wharf` command line: run the server, apply migrations, manage tenants, users and their quotas, show
//! or recompute usage, and list or lift login bans.
//!
//! Passwords are never taken from the command line (it shows in `ps` and shell history): they come from
//! stdin or a file.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wharf::config::Config;
use wharf::directory;

use crate::cli::*;

#[derive(Parser)]
#[command(name = "wharf", version, about = "A multi-tenant FTPS server that keeps every file in object storage")]
struct Cli {
    /// TOML configuration file; `WHARF_*` environment variables override it.
    #[arg(long, global = true, env = "WHARF_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FTPS server until SIGINT or SIGTERM.
    Serve,
    /// Create the directory database if needed and apply its migrations.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users (logins are `user@tenant`).
    #[command(subcommand)]
    User(UserCommand),
    /// List and lift bans of client addresses and users that failed to log in too often. Bans live in the
    /// directory, so they hold on every instance that shares it.
    #[command(subcommand)]
    Ban(BanCommand),
    /// Show or recompute what tenants and users store (see `tenant quota` and `user quota`).
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Manage the admin API's bearer tokens (`wharf token create ops --operator` makes the first one).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    limit_retained_memory();
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("wharf {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let telemetry = wharf::telemetry::Telemetry::init(&config, runtime.handle())?;
    let result = runtime.block_on(dispatch(cli.command, config, cli.config, telemetry.clone()));
    // The runtime still runs, so the last spans can go out.
    telemetry.shutdown();
    result
}

async fn dispatch(
    command: Command,
    config: Config,
    config_file: Option<PathBuf>,
    telemetry: wharf::telemetry::Telemetry,
) -> anyhow::Result<()> {
    match command {
        Command::Serve => wharf::server::run(config, config_file, telemetry).await,
        Command::Migrate => {
            open_directory_with(&config, directory::PoolOptions { migrate: true, ..config.pool_options() }).await?;
            println!("migrations applied to {}", wharf::config::redact_url(&config.database_url()));
            Ok(())
        }
        Command::Tenant(command) => tenant_command(command, &*open_directory(&config).await?).await,
        Command::User(command) => {
            user_command(command, &*open_directory(&config).await?, config.password_params()).await
        }
        Command::Ban(command) => ban_command(command, &*open_directory(&config).await?, &config).await,
        Command::Usage(command) => usage_command(command, open_directory(&config).await?, &config).await,
        Command::Token(command) => token_command(command, &*open_directory(&config).await?).await,
        Command::Version => unreachable!("handled before the configuration is loaded"),
    }
}

/// Every login runs argon2id with a 19 MiB working buffer. glibc's malloc raises its mmap threshold after
/// the first such buffer is freed, so later ones come from per-thread arenas and stay resident: 200 logins
/// would leave ~780 MB behind. A fixed threshold keeps large buffers on mmap, returned to the system when
/// freed (measured in BENCHMARKS.md).
///
/// Fixing the mmap threshold also freezes the trim threshold at its 128 KiB default, and an S3 download
/// frees HTTP body buffers of a few hundred KiB all the time: each arena's top was handed back to the
/// kernel and faulted in again, about one page fault per 2 KiB downloaded (146,000 faults for 5 × 256 MiB,
/// 20 % of the server's CPU). Each arena now keeps up to 4 MiB at its top: 352 faults for the same
/// downloads, and at most 4 MiB × the number of arenas (8 per core) retained.
fn limit_retained_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any thread exists; mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    }
}
