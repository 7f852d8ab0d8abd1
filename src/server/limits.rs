//! Session limits across the instance and per client IP, which a reload changes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Session limits: across the instance and per client IP. A reload changes the maxima; sessions already
/// admitted stay when a limit drops below their number, and new ones wait until they are under it.
pub(crate) struct Limits {
    counts: Mutex<Counts>,
    max: AtomicUsize,
    max_per_ip: AtomicUsize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Holds a session's place until dropped.
pub(super) struct Admission {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    pub(super) fn new(max: usize, max_per_ip: usize) -> Self {
        Limits { counts: Mutex::default(), max: AtomicUsize::new(max), max_per_ip: AtomicUsize::new(max_per_ip) }
    }

    pub(crate) fn set(&self, max: usize, max_per_ip: usize) {
        self.max.store(max, Ordering::Relaxed);
        self.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }

    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, &'static str> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap();
        if counts.total >= self.max.load(Ordering::Relaxed) {
            return Err("Too many sessions on this server");
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip.load(Ordering::Relaxed) {
            return Err("Too many sessions from your address");
        }
        counts.per_ip.insert(ip, from_ip + 1);
        counts.total += 1;
        Ok(Admission { limits: self.clone(), ip })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap();
        counts.total -= 1;
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_global_limits_hold_and_release() {
        let limits = Arc::new(Limits::new(3, 2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_err());
        let _b1 = limits.admit(b).unwrap();
        assert!(limits.admit(b).is_err(), "global limit");
        drop(a1);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn lowered_limits_keep_admitted_sessions_and_refuse_new_ones() {
        let limits = Arc::new(Limits::new(10, 10));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        limits.set(10, 1);
        assert!(limits.admit(a).is_err(), "two held, one allowed");
        drop(first);
        assert!(limits.admit(a).is_err(), "still one held");
        drop(second);
        let _again = limits.admit(a).unwrap();
        limits.set(1, 10);
        assert!(limits.admit("127.0.0.2".parse().unwrap()).is_err(), "global limit");
    }
}
