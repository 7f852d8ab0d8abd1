//! Wharf: a multi-tenant FTPS server that keeps every file in object storage.
//!
//! ```text
//! client ──TCP/TLS──▶ server (listeners, wiring) ──▶ ftp::session (one task per control connection)
//!                                                      │ line ─▶ ftp::command ─▶ ftp::handlers ─▶ reply
//!                                                      │                            │
//!                      ftp::data (data connections) ◀──┤            auth ──▶ directory::LoginStore
//!                      ftp::transfer (the byte pump)   │                            │
//!                                                      └──▶ vfs::UserView ──▶ storage (fs | s3)
//!                                                           (paths, permissions,      │
//!                                                            quotas)                  └─▶ UploadLedger
//! cli, admin (axum) ──▶ services ──▶ directory (one SQL code base: Postgres | SQLite)
//! ```
//!
//! Dependencies point one way (DESIGN.md, "Layers and the stores they declare"; `tests/layers.rs` checks
//! it): a layer that needs something kept above it declares a narrow trait and the directory implements it
//! (`storage::UploadLedger`, `vfs::QuotaStore`), while the directory offers its own stores to each consumer
//! (`Tenants`, `LoginStore`, `ClaimStore`, `Quotas`, `AdminStore`). [`server::Server`] is the one place that
//! knows the concrete types: it wires the pieces from a [`config::Config`]; tests start one on port 0.
//!
//! A first read: follow one upload, from `ftp::command` through the STOR handler and `vfs::UserView::put`
//! to a storage backend's `Upload` and the 226 (the README's "Layout" lists the files in order).

pub mod access;
pub mod admin;
pub mod auth;
pub mod config;
pub mod directory;
pub mod ftp;
pub mod reload;
pub mod server;
pub mod services;
pub mod sessions;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod usage;
pub mod vfs;
