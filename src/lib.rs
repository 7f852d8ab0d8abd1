//! Wharf: a multi-tenant FTPS server that keeps every file in object storage.
//!
//! ```text
//! client ──TCP/TLS──▶ server (listeners) ──▶ ftp::session (one task per control connection)
//!                                              │ line ─▶ ftp::command ─▶ handlers ─▶ ftp::reply
//!                                              │                          │
//!                                              │             auth ──▶ directory (SQLite | Postgres)
//!                                              │                          │
//!                                              └─ ftp::data ◀──────▶ vfs ──▶ storage (fs | s3)
//! ```
//!
//! [`server::Server`] wires the pieces from a [`config::Config`]; tests start one on port 0.

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
