//! Process limits and `/proc` readings.
//!
//! On this machine a process may hold at most 20,000 open files (`ulimit -n -H` = 20000), so one
//! process can hold about 19,900 sockets after its own descriptors: that bounds N per process
//! for the generator and for the server under test alike.

use std::io;
use std::path::Path;
use std::time::Duration;

/// Raises the soft open-file limit to the hard limit and returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The `VmRSS` of process `pid` in KiB, or `None` if it cannot be read (process gone).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_rss(Path::new(&format!("/proc/{pid}/status")))
}

/// The generator's own `VmRSS` in KiB.
pub fn own_rss_kib() -> Option<u64> {
    status_rss(Path::new("/proc/self/status"))
}

fn status_rss(path: &Path) -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string(path).ok()?)
}

/// Reads the `VmRSS:   12345 kB` line of a `/proc/PID/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time (user + system, all threads) consumed so far by process `pid`, from
/// `/proc/PID/stat`; `None` if it cannot be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The generator's own CPU time (user + system, all threads).
pub fn own_cpu_time() -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `/proc/PID/stat` reports times in USER_HZ ticks, which Linux fixes at 100 per second for
/// user space on every architecture this runs on.
const USER_HZ: u64 = 100;

/// Reads utime + stime (fields 14 and 15) from a `/proc/PID/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Number of local ports the kernel hands out for outgoing connections per source address.
/// Falls back to Linux's default range (32768–60999) if the file cannot be read.
pub fn ephemeral_port_count() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(60999 - 32768 + 1)
}

fn parse_port_range(text: &str) -> Option<usize> {
    let mut it = text.split_whitespace().map(|n| n.parse::<usize>());
    let (low, high) = (it.next()?.ok()?, it.next()?.ok()?);
    (high >= low).then(|| high - low + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_line() {
        let text = "Name:\tnode\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t7\n";
        assert_eq!(parse_vm_rss(text), Some(123_456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_rss_is_readable_and_positive() {
        assert!(own_rss_kib().is_some_and(|kib| kib > 0));
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
        // PID 0 never has a /proc entry.
        assert_eq!(rss_kib(0), None);
    }

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert!(own_cpu_time().is_some());
        assert!(cpu_time(std::process::id()).is_some());
    }

    #[test]
    fn port_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28_232));
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(parse_port_range("5 4"), None);
    }
}
