//! The server's peak resident memory over a stretch of time: Linux keeps the high-water mark (VmHWM) and
//! lets it be reset by writing 5 to `/proc/<pid>/clear_refs`, so no sampling can miss a short peak.

pub struct Peak {
    pid: u32,
}

impl Peak {
    pub fn new(pid: u32) -> Peak {
        Peak { pid }
    }

    /// Starts a new stretch: the high-water mark drops to the current RSS.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")?;
        Ok(())
    }

    /// The highest RSS since the last reset, in KiB.
    pub fn read(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{}/status", self.pid))
    }
}
