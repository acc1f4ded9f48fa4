//! Helpers shared by the integration tests.

use lra_harness::execute::train::Progress;

/// Training progress that reports nothing.
#[allow(dead_code)]
pub struct Silent;

impl Progress for Silent {
    fn step(&mut self, _: usize, _: f64, _: f64, _: f64) {}
    fn evaluated(&mut self, _: usize, _: f64, _: f64) {}
}

/// Processes (other than this test's) whose command line names `folder`: the children of
/// a sweep over it.
#[allow(dead_code)]
pub fn processes_using(folder: &std::path::Path) -> Vec<String> {
    let needle = folder.to_string_lossy().into_owned();
    let mine = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.chars().all(|c| c.is_ascii_digit()) || pid == mine {
                return None;
            }
            let command = std::fs::read(entry.path().join("cmdline")).ok()?;
            let command = String::from_utf8_lossy(&command).replace('\0', " ");
            command.contains(&needle).then(|| format!("{pid}: {command}"))
        })
        .collect()
}

/// Waits (at most 10 s) until no process names `folder`: a killed sweep's children die
/// with it, but the kernel takes a moment.
#[allow(dead_code)]
pub fn wait_until_gone(folder: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_using(folder).is_empty() {
        assert!(std::time::Instant::now() < deadline, "left running: {:?}", processes_using(folder));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
