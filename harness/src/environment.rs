//! What machine and software a run used, for its record.

use std::process::Command;

use crate::record::Environment;

/// The burn release this harness is built against (pinned in the workspace Cargo.toml;
/// a test checks Cargo.lock agrees).
pub const BURN_VERSION: &str = "0.22.1";

pub fn capture(device_adapter: &str) -> Environment {
    let mut system = sysinfo::System::new();
    system.refresh_cpu_all();
    system.refresh_memory();
    let cpu = system
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown CPU".into());
    Environment {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_bytes: system.total_memory(),
        os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        device_adapter: device_adapter.to_string(),
        burn_version: BURN_VERSION.to_string(),
        git_commit: git_commit(),
        lra_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The commit of the checkout the binary was built from, with `+dirty` when it had
/// uncommitted changes; `unknown` outside a git checkout.
fn git_commit() -> String {
    let source_dir = env!("CARGO_MANIFEST_DIR");
    let git =
        |args: &[&str]| Command::new("git").arg("-C").arg(source_dir).args(args).output().ok().filter(|o| o.status.success());
    match git(&["rev-parse", "HEAD"]) {
        Some(out) => {
            let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty { format!("{commit}+dirty") } else { commit }
        }
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn burn_version_constant_matches_the_lock_file() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("\nname = \"burn\"\n")).expect("burn is in Cargo.lock");
        assert!(entry.contains(&format!("version = \"{}\"", super::BURN_VERSION)), "{entry}");
    }
}
