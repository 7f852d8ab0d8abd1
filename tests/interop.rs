//! Interop: real clients (curl, lftp, Python's ftplib, rclone) against a real wharf, under the default
//! strict TLS policy unless a test says otherwise. Every client runs as a subprocess with a deadline; every
//! test that uploads also checks that no hidden upload temporaries stay behind.

mod concurrency;
mod curl;
mod ftplib;
mod lftp;
mod rclone;
