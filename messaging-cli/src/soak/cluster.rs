//! The processes a soak runs and disturbs: its own Tansu broker (through
//! `scripts/tansu.sh`), and the listener member processes of each pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::ledger::{member_label, Handling, Ledger};

fn failed(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, what)
}

/// A Tansu broker (sqlite storage) the soak started, and can kill and restart.
pub(crate) struct OwnBroker {
    script: PathBuf,
    name: String,
    /// `host:port`.
    pub(crate) servers: String,
}

impl OwnBroker {
    async fn script(script: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new(script)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .await
            .map_err(|e| failed(format!("cannot run {}", script.display())).with_source(e))?;
        if !out.status.success() {
            return Err(failed(format!(
                "{} {} failed: {}",
                script.display(),
                args.join(" "),
                out.status
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Start a broker named `name` with sqlite storage.
    pub(crate) async fn start(script: &Path, name: &str) -> Result<OwnBroker> {
        let servers = Self::script(script, &["start", "--name", name]).await?;
        Ok(OwnBroker {
            script: script.to_owned(),
            name: name.to_owned(),
            servers,
        })
    }

    /// The broker `name` started earlier, at `servers`.
    pub(crate) fn attach(script: PathBuf, name: String, servers: String) -> OwnBroker {
        OwnBroker {
            script,
            name,
            servers,
        }
    }

    /// kill -9, then the same broker again (same port, same storage).
    pub(crate) async fn kill_and_restart(&self) -> Result<()> {
        Self::script(&self.script, &["restart", "--name", &self.name])
            .await
            .map(drop)
    }

    pub(crate) async fn stop(&self) -> Result<()> {
        Self::script(&self.script, &["stop", "--name", &self.name])
            .await
            .map(drop)
    }
}

/// One listener process.
struct Member {
    id: u32,
    pool: usize,
    child: Child,
    /// Held open: the member exits when it closes (this process ended).
    _stdin: Option<tokio::process::ChildStdin>,
}

/// How members are started: the URL, topic and pools they join.
pub(crate) struct MemberPlan {
    pub(crate) url: String,
    pub(crate) topic: String,
    /// Pool names, and each pool's batch size (0: one at a time).
    pub(crate) pools: Vec<(String, usize)>,
    pub(crate) misbehave: String,
    pub(crate) log_dir: PathBuf,
}

/// The member processes alive, by pool.
pub(crate) struct Members {
    plan: MemberPlan,
    ledger: Arc<Mutex<Ledger>>,
    alive: Vec<Member>,
    next_id: u32,
}

/// Stop process `pid` for `pause` (SIGSTOP), then let it go on (SIGCONT).
pub(crate) async fn pause(pid: u32, pause: Duration) -> Result<()> {
    signal(pid, "-STOP").await?;
    tokio::time::sleep(pause).await;
    signal(pid, "-CONT").await
}

/// Send `signal` (`-STOP`, `-CONT`, `-TERM`) to `pid`.
async fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .map_err(|e| failed("cannot run kill").with_source(e))?;
    if !status.success() {
        return Err(failed(format!("kill {signal} {pid} failed: {status}")));
    }
    Ok(())
}

impl Members {
    pub(crate) fn new(plan: MemberPlan, ledger: Arc<Mutex<Ledger>>) -> Members {
        Members {
            plan,
            ledger,
            alive: Vec::new(),
            next_id: 1,
        }
    }

    /// Start a member in `pool`; its handled ids go to the ledger.
    pub(crate) fn spawn(&mut self, pool: usize) -> Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        let (pool_name, batch) = &self.plan.pools[pool];
        let log = std::fs::File::create(self.plan.log_dir.join(format!("member-{id}.log")))
            .map_err(|e| failed("cannot create a member log").with_source(e))?;
        let exe = std::env::current_exe()
            .map_err(|e| failed("cannot find this executable").with_source(e))?;
        let mut child = Command::new(exe)
            .args(["soak-member", "--url", &self.plan.url, "--topic"])
            .arg(&self.plan.topic)
            .args(["--pool", pool_name, "--batch", &batch.to_string()])
            .args(["--misbehave", &self.plan.misbehave])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("cannot start a member process").with_source(e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("a member without stdout"))?;
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(h) = parse_line(&line, pool, id) {
                    ledger.lock().unwrap_or_else(|e| e.into_inner()).handled(h);
                }
            }
        });
        let stdin = child.stdin.take();
        self.alive.push(Member {
            id,
            pool,
            child,
            _stdin: stdin,
        });
        Ok(id)
    }

    /// The pids of the members alive, by label (`member-ID`).
    pub(crate) fn pids(&self) -> BTreeMap<String, u32> {
        self.alive
            .iter()
            .filter_map(|m| Some((member_label(m.id), m.child.id()?)))
            .collect()
    }

    /// A random member of `pool` (the oldest with `oldest`).
    fn pick(&self, pool: usize, oldest: bool) -> Option<usize> {
        let of_pool: Vec<usize> = (0..self.alive.len())
            .filter(|&i| self.alive[i].pool == pool)
            .collect();
        if oldest {
            return of_pool.first().copied();
        }
        (!of_pool.is_empty()).then(|| of_pool[fastrand::usize(..of_pool.len())])
    }

    /// kill -9 a member of `pool`; returns its id.
    pub(crate) async fn kill(&mut self, pool: usize) -> Result<Option<u32>> {
        let Some(i) = self.pick(pool, false) else {
            return Ok(None);
        };
        let mut m = self.alive.remove(i);
        m.child
            .kill()
            .await
            .map_err(|e| failed("cannot kill a member").with_source(e))?;
        Ok(Some(m.id))
    }

    /// The pid of a random member of `pool`, to pause.
    pub(crate) fn pick_pid(&self, pool: usize) -> Option<u32> {
        self.alive[self.pick(pool, false)?].child.id()
    }

    /// Stop the oldest member of `pool` cleanly (SIGTERM: it drains, commits and
    /// leaves); returns its id.
    pub(crate) async fn leave(&mut self, pool: usize, patience: Duration) -> Result<Option<u32>> {
        let Some(i) = self.pick(pool, true) else {
            return Ok(None);
        };
        let mut m = self.alive.remove(i);
        stop_member(&mut m, patience).await?;
        Ok(Some(m.id))
    }

    /// Stop every member cleanly.
    pub(crate) async fn stop_all(&mut self, patience: Duration) -> Result<()> {
        for mut m in std::mem::take(&mut self.alive) {
            stop_member(&mut m, patience).await?;
        }
        Ok(())
    }

    /// How many members `pool` has.
    pub(crate) fn count(&self, pool: usize) -> usize {
        self.alive.iter().filter(|m| m.pool == pool).count()
    }
}

/// SIGTERM, and kill -9 if it has not exited within `patience`.
async fn stop_member(m: &mut Member, patience: Duration) -> Result<()> {
    if let Some(pid) = m.child.id() {
        signal(pid, "-TERM").await?;
    }
    match tokio::time::timeout(patience, m.child.wait()).await {
        Ok(_) => Ok(()),
        Err(_) => {
            tracing::warn!(member = m.id, "a member did not stop in time; killing it");
            m.child
                .kill()
                .await
                .map_err(|e| failed("cannot kill a member").with_source(e))
        }
    }
}

/// A member's line `h NOTIFIER SEQ SENT_US HANDLED_US`.
fn parse_line(line: &str, pool: usize, member: u32) -> Option<Handling> {
    let mut parts = line.split_ascii_whitespace();
    if parts.next()? != "h" {
        return None;
    }
    let mut next = || parts.next()?.parse::<u64>().ok();
    Some(Handling {
        pool,
        member,
        notifier: usize::try_from(next()?).ok()?,
        seq: next()?,
        sent_us: next()?,
        handled_us: next()?,
    })
}

/// Resident memory of `pid` in MiB (`None` when it is gone).
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((pages * 4096) as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lines_parse_and_others_are_ignored() {
        let h = parse_line("h 2 17 100 250", 1, 9).unwrap();
        assert_eq!((h.pool, h.member, h.notifier, h.seq), (1, 9, 2, 17));
        assert_eq!((h.sent_us, h.handled_us), (100, 250));
        assert!(parse_line("x 2 17 100 250", 1, 9).is_none());
        assert!(parse_line("h 2 17 100", 1, 9).is_none());
        assert!(parse_line("h two 17 100 250", 1, 9).is_none());
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(rss_mib(std::process::id()).unwrap() > 1.0);
    }
}
