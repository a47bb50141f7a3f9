//! The workspace binaries under test, found next to the running test executable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the workspace's binaries (`<target>/<profile>`, the parent of the
/// test executable's `deps/`).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // <target>/<profile>/deps/<test> -> <target>/<profile>
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    })
}

/// The `hush` client binary.
pub fn hush_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("hush", "hush")).clone()
}

/// The `hush-relay` binary.
pub fn relay_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("hush-relay", "hush-relay"))
        .clone()
}

/// Binary `name` of `package` in [`bin_dir`]. `cargo test -p X` builds only X's binaries:
/// one that is missing is built once per test process, into the same target directory and
/// profile, with the test hooks (and only that one: a relay suite never waits for the client
/// to build).
/// A binary that exists is used as it is, as before the kit: after changing the other
/// component's sources, build it too (`cargo test --workspace` does).
fn built(package: &str, name: &str) -> PathBuf {
    let dir = bin_dir();
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // The suites use the binaries' test hooks (clock offsets, crash points).
        cmd.args(["build", "-p", package, "--bin", name])
            .args(["--features", crate::hooks::CARGO_FEATURE]);
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().unwrap();
        assert!(st.success(), "building {name} failed");
        assert!(bin.exists(), "{name} not found at {}", bin.display());
    }
    bin
}
