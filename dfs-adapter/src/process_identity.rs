//! Who holds a lease, precisely enough to tell from the same machine that it has died.
//!
//! A lease names the holder's process: the kernel's boot id (a new random id each boot), the
//! holder's pid namespace and pid, and the process start time. A broker starting on the same
//! machine, in the same pid namespace, can then see that the holder no longer runs (no such
//! pid, a zombie, or a pid reused by a process started at another time) and take the lease
//! over at once instead of waiting a whole time to live: the common case of a broker restarted
//! after a crash. From any other machine or container the identity never matches and the
//! ordinary wait applies. Outside Linux (no `/proc`) there is no identity and always the wait.

use serde::{Deserialize, Serialize};

/// Identifies one process on one boot of one machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessIdentity {
    /// `/proc/sys/kernel/random/boot_id`.
    pub(crate) boot_id: String,
    /// The target of `/proc/self/ns/pid`, e.g. `pid:[4026531836]`.
    pub(crate) pid_namespace: String,
    /// Start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub(crate) start_ticks: u64,
}

impl ProcessIdentity {
    /// This process's identity, if `/proc` tells it.
    pub(crate) fn current() -> Option<ProcessIdentity> {
        Some(ProcessIdentity {
            boot_id: boot_id()?,
            pid_namespace: pid_namespace()?,
            start_ticks: start_ticks(std::process::id())?.0,
        })
    }

    /// True only when `pid` with this identity is certainly no longer running: the identity
    /// names this machine's current boot and this pid namespace, and the pid is free, a
    /// zombie, or a process started at another time. Anything uncertain answers false.
    pub(crate) fn has_exited(&self, pid: u32) -> bool {
        if boot_id().as_deref() != Some(self.boot_id.as_str())
            || pid_namespace().as_deref() != Some(self.pid_namespace.as_str())
        {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            Ok(stat) => match parse_stat(&stat) {
                Some((ticks, state)) => ticks != self.start_ticks || matches!(state, 'Z' | 'X'),
                None => false,
            },
        }
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn pid_namespace() -> Option<String> {
    let target = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(target.to_string_lossy().into_owned())
}

fn start_ticks(pid: u32) -> Option<(u64, char)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time and state from a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after the
/// last `)`: state is field 3, start time field 22.
fn parse_stat(stat: &str) -> Option<(u64, char)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ticks = fields.nth(18)?.parse().ok()?;
    Some((ticks, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_holds_spaces_and_parentheses() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    12345 67 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some((987654, 'S')));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R 1 2"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_running_process_is_alive_and_an_exited_one_is_gone() {
        let me = ProcessIdentity::current().expect("/proc tells this process's identity");
        assert!(!me.has_exited(std::process::id()));
        // The same pid started at another time is another process.
        let reused = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(reused.has_exited(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(me.has_exited(pid));
        // Another machine (or another boot) is never judged from here.
        let elsewhere = ProcessIdentity {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..me.clone()
        };
        assert!(!elsewhere.has_exited(pid));
        let other_namespace = ProcessIdentity {
            pid_namespace: "pid:[1]".into(),
            ..me
        };
        assert!(!other_namespace.has_exited(pid));
    }
}
