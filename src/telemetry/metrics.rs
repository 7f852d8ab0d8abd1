//! The server's metrics.
