//! The Python side of the interoperability tests: the venv interpreter, the programs
//! in `tests/interop/`, scratch directories and their JSON-lines output.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

/// The venv interpreter, or `None` (skip) / a panic under `MESSAGING_REQUIRE_BROKER=1`.
pub fn python() -> Option<PathBuf> {
    match std::env::var("MESSAGING_INTEROP_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(PathBuf::from(p.trim())),
        _ if integration_tests::support::broker_required() => panic!(
            "MESSAGING_REQUIRE_BROKER=1 but MESSAGING_INTEROP_PYTHON is not set: \
             export MESSAGING_INTEROP_PYTHON=$(scripts/python-env.sh)"
        ),
        _ => {
            eprintln!(
                "oslo interop test skipped: set MESSAGING_INTEROP_PYTHON=$(scripts/python-env.sh) \
                 (and the broker's variable); MESSAGING_REQUIRE_BROKER=1 makes this a failure"
            );
            None
        }
    }
}

/// `tests/interop/`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// A program in `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    interop_dir().join(name)
}

/// A scratch directory removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(integration_tests::support::unique("interop-oslo"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command running `program` with the venv interpreter, output captured, killed
/// when dropped.
pub fn python_command(python: &Path, program: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(script(program))
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Each non-empty line of a program's stdout as JSON.
pub fn json_lines(stdout: &[u8], what: &str) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: bad line {l:?}: {e}")))
        .collect()
}

/// Wait until `path` exists (a program's ready file), up to `timeout`.
pub async fn wait_for_file(path: &Path, timeout: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    path.exists()
}

/// Start `oslo_rpc_server.py` as server `p1` on `topic` (with `extra` arguments, e.g.
/// `--trace`) and wait until it is consuming.
pub async fn python_rpc_server(
    python: &Path,
    url: &str,
    topic: &str,
    scratch: &Scratch,
    extra: &[&str],
) -> tokio::process::Child {
    let ready = scratch.path("ready");
    let server = python_command(python, "oslo_rpc_server.py")
        .args(["--url", url, "--topic", topic, "--server", "p1"])
        .args(extra)
        .arg("--ready-file")
        .arg(&ready)
        .spawn()
        .expect("the Python server starts");
    assert!(
        wait_for_file(&ready, std::time::Duration::from_secs(60)).await,
        "the Python server did not get ready"
    );
    server
}

/// Stop a Python server cleanly (SIGTERM) and take its output (a JSON line per
/// request served on stdout).
pub async fn stop_python_server(server: tokio::process::Child) -> std::process::Output {
    let pid = server.id().expect("the Python server runs").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        server.wait_with_output(),
    )
    .await
    .expect("the Python server stops on SIGTERM")
    .unwrap()
}
