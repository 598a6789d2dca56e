//! A Tansu broker of a test's own, through `scripts/tansu.sh` (named by
//! `MESSAGING_TANSU_SCRIPT`): started on sqlite storage (so that a kill -9, a
//! restart and SCRAM users all work), stopped and cleaned up when dropped (its
//! directory is kept, for its log, when the test failed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::unique;

/// One running Tansu instance; see the module docs.
#[derive(Debug)]
pub struct OwnTansu {
    script: PathBuf,
    name: String,
    /// `host:port` of the broker.
    pub servers: String,
}

impl OwnTansu {
    /// The script named by `MESSAGING_TANSU_SCRIPT`, if set.
    pub fn script() -> Option<PathBuf> {
        std::env::var_os("MESSAGING_TANSU_SCRIPT")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// Run the script; its stdout, trimmed. The error names only the subcommand (the
    /// arguments may hold test passwords).
    fn run(script: &Path, args: &[&str]) -> Result<String, String> {
        let out = Command::new(script)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} {} failed: {}",
                script.display(),
                args.first().copied().unwrap_or_default(),
                out.status
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Start a fresh instance (sqlite storage) named after `prefix`.
    pub fn start(script: PathBuf, prefix: &str) -> Result<Self, String> {
        let name = unique(prefix);
        let servers = Self::run(&script, &["start", "--sqlite", "--name", &name])?;
        Ok(OwnTansu {
            script,
            name,
            servers,
        })
    }

    /// Create a SCRAM user (`mechanism`: `scram256` or `scram512`). Only before
    /// [`OwnTansu::require_authentication`].
    pub fn create_user(&self, user: &str, password: &str, mechanism: &str) -> Result<(), String> {
        Self::run(
            &self.script,
            &[
                "create-user",
                user,
                password,
                "--mechanism",
                mechanism,
                "--name",
                &self.name,
            ],
        )
        .map(drop)
    }

    /// Create a topic with one partition.
    pub fn create_topic(&self, topic: &str) -> Result<(), String> {
        Self::run(&self.script, &["create-topic", topic, "--name", &self.name]).map(drop)
    }

    /// Restart the broker (same port and storage) requiring SASL SCRAM from now on.
    pub fn require_authentication(&self) -> Result<(), String> {
        Self::run(
            &self.script,
            &["restart", "--authentication", "--name", &self.name],
        )
        .map(drop)
    }

    /// Stop the broker (SIGTERM), keeping its storage; [`OwnTansu::kill_and_restart`]
    /// starts it again.
    pub fn stop(&self) -> Result<(), String> {
        Self::run(&self.script, &["stop", "--name", &self.name]).map(drop)
    }

    /// kill -9, then start the same broker again (same port, same storage).
    pub fn kill_and_restart(&self) -> Result<(), String> {
        Self::run(&self.script, &["restart", "--name", &self.name]).map(drop)
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        let _ = Self::run(&self.script, &["stop", "--name", &self.name]);
        // Keep the broker's directory (log, database) when the test failed.
        if !std::thread::panicking() {
            if let Ok(dir) = Self::run(&self.script, &["dir", "--name", &self.name]) {
                if dir.contains(&self.name) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}
