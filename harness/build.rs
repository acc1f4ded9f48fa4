//! Stamps the binary with the commit of the checkout it is built from (`+dirty` when
//! tracked files had uncommitted changes; `unknown` outside a git checkout), so that a
//! run records the code that ran even after the checkout has moved on.

use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let git =
        |args: &[&str]| Command::new("git").arg("-C").arg(&manifest).args(args).output().ok().filter(|o| o.status.success());
    let text = |out: std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(out) => {
            let commit = text(out);
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty { format!("{commit}+dirty") } else { commit }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=LRA_BUILD_COMMIT={commit}");
    // Stamp again when the commit moves or any source of the workspace changes.
    if let Some(out) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = text(out);
        for entry in ["HEAD", "index", "refs", "packed-refs"] {
            println!("cargo:rerun-if-changed={git_dir}/{entry}");
        }
    }
    for path in ["src", "../datasets/src", "../tasks/src", "../models/src", "../Cargo.toml", "../Cargo.lock"] {
        println!("cargo:rerun-if-changed={manifest}/{path}");
    }
}
