//! Child processes of the harness: a sweep's runs and a benchmark's cells. One place
//! starts them (each in its own process group, killed with its parent on Linux), waits
//! for them with a time limit (the whole group is killed past it), and says how one
//! ended, from what is known: its exit code or signal, its last output, and whether the
//! kernel's out-of-memory killer fired while it ran.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::records::run_record::Failure;

/// `command` set up as a child of the harness: its own process group (a Ctrl-C in the
/// terminal reaches the harness, which then takes the group down) and, on Linux, killed by
/// the kernel when the thread that started it dies, so that no child outlives a killed sweep.
pub fn prepare(command: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: `prctl` and `getppid` are async-signal-safe and touch no memory of the
        // parent; the closure runs in the child between fork and exec.
        unsafe {
            let parent = libc::getpid();
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the call: then nobody would signal us.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the parent died before the child started"));
                }
                Ok(())
            });
        }
    }
    command
}

/// Waits for `child`; past `timeout` since `started`, kills its process group and returns
/// `None`.
pub fn wait(child: &mut Child, started: Instant, timeout: Option<Duration>) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if timeout.is_some_and(|limit| started.elapsed() > limit) {
            kill_group(child);
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills `child` and everything in its process group.
pub fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    // SAFETY: a plain system call; a negative pid names the child's own process group
    // (it leads one, see `prepare`).
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
}

/// How a child that left no result ended, as far as is known, given its exit `status`,
/// its last line of output and whether an out-of-memory kill happened in this control
/// group while it ran: out of memory (the kernel's killer fired, or it said it could not
/// allocate), or crashed (an exit code, or a signal with what it usually means).
pub fn classify(status: ExitStatus, last_output: &str, oom_killed: bool) -> Failure {
    let said_oom = last_output.contains("memory allocation of") || last_output.to_lowercase().contains("out of memory");
    let how = describe(status);
    let detail = match last_output.is_empty() {
        true => how,
        false => format!("{how}; last output: {last_output}"),
    };
    match oom_killed || said_oom {
        true => Failure::OutOfMemory { detail },
        false => Failure::Crashed { detail },
    }
}

/// An exit status in words: the code, or the signal and what sends it.
pub fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return match signal {
                libc::SIGKILL => "killed by SIGKILL (no out-of-memory kill was seen: a time limit, a scheduler or a user)".into(),
                libc::SIGABRT => "aborted (SIGABRT: a failed allocation or a failed check in native code)".into(),
                libc::SIGSEGV => "segmentation fault (SIGSEGV)".into(),
                libc::SIGTERM => "terminated (SIGTERM: a scheduler or a user)".into(),
                libc::SIGINT => "interrupted (SIGINT)".into(),
                other => format!("killed by signal {other}"),
            };
        }
    }
    format!("exited with {status}")
}

/// The last non-empty line of `text`, at most 300 characters.
pub fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(300).collect()
}

/// The last non-empty line of the file at `path` (empty when it cannot be read).
pub fn last_line_of(path: &Path) -> String {
    // Bounded and regular only: a log replaced by a FIFO must not stall the sweep.
    last_line(&lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::LOG).unwrap_or_default())
}

/// The count of out-of-memory kills in this process's memory control group, read before
/// and after a child: a rise means the kernel killed something for memory meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct OomWatch(Option<u64>);

impl OomWatch {
    pub fn start() -> OomWatch {
        OomWatch(oom_kills())
    }

    /// Whether an out-of-memory kill happened since [`OomWatch::start`].
    pub fn fired(&self) -> bool {
        matches!((self.0, oom_kills()), (Some(before), Some(after)) if after > before)
    }
}

/// `oom_kill` of this process's memory cgroup (v2 `memory.events`, v1 `memory.oom_control`).
fn oom_kills() -> Option<u64> {
    let small = |path: &Path| lra_datasets::files::read_text_bounded(path, lra_datasets::files::limit::SMALL_TEXT);
    let groups = small(Path::new("/proc/self/cgroup")).unwrap_or_default();
    let path_of = |controller: &str| {
        groups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            (names == controller).then(|| path.trim_start_matches('/').to_string())
        })
    };
    let mut candidates = Vec::new();
    if let Some(path) = path_of("") {
        candidates.push(Path::new("/sys/fs/cgroup").join(path).join("memory.events"));
    }
    candidates.push("/sys/fs/cgroup/memory.events".into());
    if let Some(path) = path_of("memory") {
        candidates.push(Path::new("/sys/fs/cgroup/memory").join(path).join("memory.oom_control"));
    }
    candidates.push("/sys/fs/cgroup/memory/memory.oom_control".into());
    candidates.iter().find_map(|file| {
        let text = small(file).ok()?;
        text.lines().find_map(|line| line.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    #[test]
    fn exits_are_described_by_what_is_known() {
        let status = |script: &str| prepare(&mut shell(script)).status().unwrap();
        let kill = status("kill -KILL $$");
        assert_eq!(classify(kill, "", false), Failure::Crashed { detail: describe(kill) });
        assert!(describe(kill).contains("SIGKILL") && describe(kill).contains("no out-of-memory kill"));
        // The same signal with an out-of-memory kill seen is out of memory.
        assert!(matches!(classify(kill, "", true), Failure::OutOfMemory { .. }));
        let abort = status("kill -ABRT $$");
        assert!(matches!(classify(abort, "", false), Failure::Crashed { detail: d } if d.contains("SIGABRT")));
        // Rust's own allocation failure message names the cause.
        let said = classify(abort, "memory allocation of 1099511627776 bytes failed", false);
        assert!(matches!(said, Failure::OutOfMemory { detail: d } if d.contains("SIGABRT") && d.contains("memory allocation")));
        assert!(
            matches!(classify(status("exit 3"), "error: x", false), Failure::Crashed { detail: d } if d.contains("3") && d.contains("error: x"))
        );
    }

    #[test]
    fn a_child_past_its_time_dies_with_its_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild");
        // The child starts a grandchild in its group that would write a file after 2 s.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let mut child = prepare(&mut shell(&script)).spawn().unwrap();
        let started = Instant::now();
        assert_eq!(wait(&mut child, started, Some(Duration::from_millis(300))).unwrap(), None);
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }

    #[test]
    fn last_lines_skip_blank_endings() {
        assert_eq!(last_line("a\nb\n\n  \n"), "b");
        assert_eq!(last_line(""), "");
    }
}
