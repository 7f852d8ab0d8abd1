//! The FTP protocol engine: parsing, replies, sessions, data connections and listings.

pub mod command;
mod control;
pub mod data;
pub mod error;
mod handlers;
mod line;
pub mod listing;
pub mod policy;
pub mod proxy;
pub mod reply;
pub mod session;
pub mod shared_passive;
mod transfer;
