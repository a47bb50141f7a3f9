//! The workspace binaries under test, found next to the running test executable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binaries the kit runs; all are built together if one is missing.
const BINS: [&str; 2] = ["hush", "hush-relay"];

/// The directory holding the workspace's binaries (`<target>/<profile>`, the parent of the
/// test executable's `deps/`). `cargo test -p X` builds only X's binaries: whatever is
/// missing is built once per test process, into the same target directory and profile.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // <target>/<profile>/deps/<test> -> <target>/<profile>
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        if BINS.iter().any(|b| !exe_path(&dir, b).exists()) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "hush", "-p", "hush-relay", "--bins"]);
            if let Some(target) = dir.parent() {
                cmd.env("CARGO_TARGET_DIR", target);
            }
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let st = cmd.status().unwrap();
            assert!(st.success(), "building the hush binaries failed");
            for b in BINS {
                let p = exe_path(&dir, b);
                assert!(p.exists(), "{b} not found at {}", p.display());
            }
        }
        dir
    })
}

fn exe_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The `hush` client binary.
pub fn hush_bin() -> PathBuf {
    exe_path(bin_dir(), "hush")
}

/// The `hush-relay` binary.
pub fn relay_bin() -> PathBuf {
    exe_path(bin_dir(), "hush-relay")
}
