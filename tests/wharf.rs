//! Wharf's integration tests: one binary, one harness (`support`), one module per concern.

mod support;

mod admin;
mod bans;
mod cli;
mod database;
mod interop;
mod layers;
mod limits;
mod metrics;
mod passive_pool;
mod permissions;
mod protocol;
mod proxy;
mod quotas;
mod reload;
mod s3;
mod sessions;
mod shutdown;
mod smoke;
mod suppaftp;
mod telemetry;
mod tls_policy;
