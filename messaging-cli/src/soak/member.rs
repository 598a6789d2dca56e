//! One listener process of a soak (`messaging soak-member`, started by `messaging
//! soak`): it joins a pool, handles with a misbehaving handler, and prints one line
//! per handled notification on stdout: `h NOTIFIER SEQ SENT_US HANDLED_US`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use messaging_core::{
    BatchEndpoint, Error, ErrorKind, HandlerOutcome, HandlerResult, Notification,
    NotificationEndpoint, NotificationListener, Result, StartPosition, Target, Transport,
};

/// Arguments of `messaging soak-member` (internal).
#[derive(Debug, Args)]
pub(crate) struct MemberArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    pool: String,
    /// Hand notifications over in batches of this size (0: one at a time).
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Per mille of handler calls that fail, panic, requeue and run slowly (200 ms).
    #[arg(long, default_value = "10,3,10,5")]
    misbehave: String,
}

/// What the soak payload carries: notifier, sequence number, send time (µs).
#[derive(serde::Deserialize)]
struct Id {
    n: u64,
    s: u64,
    t: u64,
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message).with_retryable(false)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How a handler call misbehaves, per mille.
#[derive(Debug, Clone, Copy)]
struct Misbehaviour {
    fail: u32,
    panic: u32,
    requeue: u32,
    slow: u32,
}

enum Fate {
    Fail,
    Panic,
    Requeue,
    Slow,
    Fine,
}

impl Misbehaviour {
    fn parse(text: &str) -> Result<Misbehaviour> {
        let parts: Vec<u32> = text
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| invalid(format!("--misbehave {text:?}: {e}")))?;
        let [fail, panic, requeue, slow] = parts[..] else {
            return Err(invalid(format!(
                "--misbehave takes four per-mille figures (fail,panic,requeue,slow), not {text:?}"
            )));
        };
        Ok(Misbehaviour {
            fail,
            panic,
            requeue,
            slow,
        })
    }

    fn draw(self) -> Fate {
        let r = fastrand::u32(0..1000);
        let mut edge = self.fail;
        if r < edge {
            return Fate::Fail;
        }
        edge += self.panic;
        if r < edge {
            return Fate::Panic;
        }
        edge += self.requeue;
        if r < edge {
            return Fate::Requeue;
        }
        edge += self.slow;
        if r < edge {
            return Fate::Slow;
        }
        Fate::Fine
    }

    /// Misbehave as drawn; `Some` is the outcome of a call that does not go on.
    async fn act(self) -> Option<HandlerResult> {
        match self.draw() {
            Fate::Fail => Some(Err("soak: a handler failure".into())),
            Fate::Panic => panic!("soak: a handler panic"),
            Fate::Requeue => Some(Ok(HandlerOutcome::Requeue)),
            Fate::Slow => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                None
            }
            Fate::Fine => None,
        }
    }
}

/// Print the handled notifications' ids (one write for the lot).
fn report(handled: &[Arc<Notification>]) {
    let at = now_us();
    let mut lines = String::new();
    for n in handled {
        if let Ok(id) = n.payload_as::<Id>() {
            lines.push_str(&format!("h {} {} {} {at}\n", id.n, id.s, id.t));
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(lines.as_bytes());
    let _ = out.flush();
}

/// Resolves when stdin closes: the soak that started this member is gone. (A plain
/// thread, not tokio's stdin, whose blocking read would hold up the runtime's
/// shutdown.)
fn orphaned() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    rx
}

/// Run the member until SIGTERM or the end of stdin (then stop gracefully), or
/// SIGKILL.
pub(crate) async fn run(a: MemberArgs) -> Result<()> {
    let misbehave = Misbehaviour::parse(&a.misbehave)?;
    let transport = Transport::open(&a.url)?;
    let builder = NotificationListener::builder(&transport)
        .target(Target::new(&a.topic))
        .pool(&a.pool)
        .start_position(StartPosition::Earliest)
        .allow_requeue(true)
        .max_concurrency(32);
    let builder = if a.batch > 0 {
        builder
            .batch_endpoint(BatchEndpoint::from_batch_fn(move |batch| async move {
                if let Some(outcome) = misbehave.act().await {
                    return outcome;
                }
                report(&batch);
                Ok(HandlerOutcome::Handled)
            }))
            .batch(a.batch, Duration::from_millis(200))
    } else {
        builder.endpoint(NotificationEndpoint::from_fn(move |n| async move {
            if let Some(outcome) = misbehave.act().await {
                return outcome;
            }
            report(std::slice::from_ref(&n));
            Ok(HandlerOutcome::Handled)
        }))
    };
    let listener = builder.build()?;
    listener.start().await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::new(ErrorKind::Internal, "SIGTERM handler").with_source(e))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = orphaned() => {}
    }
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(10)).await?;
    Ok(())
}
