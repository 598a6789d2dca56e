//! `messaging`: send, listen, call, cast, sign, verify, publish samples, benchmark
//! and demo the notification bus from the command line.
//!
//! Every command takes `--url` (default `memory://`); `kafka://host:9092` talks to
//! a Kafka cluster, `rabbit://user:pass@host:5672/` to RabbitMQ.

mod bench;
mod demo;
mod listen;
mod observe;
mod rpc;
mod send;
mod soak;
mod stress;
mod telemetry;

use clap::{Parser, Subcommand};

// glibc's allocator serialises the notifier's and the listener's threads on its arena
// lock under load; mimalloc keeps per-thread heaps. It is built with `no_thp`: on a
// kernel with transparent huge pages set to `always`, mimalloc's fresh pages were
// faulted in as 2 MiB huge pages and zeroed whole, which took 46% of the sending
// thread's time in `bench --url kafka://...` (notify rate 59-89 k/s before, 190-268 k/s
// after, same machine, same broker).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "messaging",
    version,
    about = "A notification bus for Rust services, wire-compatible with oslo.messaging"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send notifications.
    Send(send::SendArgs),
    /// Listen to notifications and print one JSON object per line.
    Listen(listen::ListenArgs),
    /// A self-contained demonstration: services, pools, a filter, a batch listener.
    Demo(demo::DemoArgs),
    /// Measure notify-to-handler throughput and latency (`--rpc`: call round trips).
    Bench(bench::BenchArgs),
    /// Call a remote method and print its reply (exits non-zero on a transport without RPC).
    Call(rpc::RpcArgs),
    /// Cast to a remote method, or fan out with --fanout (no reply).
    Cast(rpc::RpcArgs),
    /// Serve the built-in demo RPC endpoint.
    RpcServer(rpc::ServerArgs),
    /// Sign the JSON object on stdin as Ceilometer does and print it.
    Sign(telemetry::SignArgs),
    /// Exit 0 only if the JSON object on stdin carries a valid Ceilometer signature.
    Verify(telemetry::VerifyArgs),
    /// Publish one signed metering sample through a Ceilometer publisher URL.
    PublishSample(telemetry::PublishSampleArgs),
    /// Soak a broker: notifiers and listener processes in two pools for a duration,
    /// under faults, accounting for every message (lost, duplicated, latency, memory).
    Soak(soak::SoakArgs),
    /// Stress scenarios (a backlog drained by a new pool, one listener on many
    /// topics, many notifiers at once, payloads up to the size limit), each with its
    /// time and peak memory.
    Stress(stress::StressArgs),
    /// One listener process of a soak (started by `messaging soak`).
    #[command(hide = true)]
    SoakMember(soak::member::MemberArgs),
}

/// The command's logs: stderr, filtered by `MESSAGING_LOG` (default `warn`).
fn log_subscriber() -> impl tracing::Subscriber + Send + Sync {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESSAGING_LOG")
        .unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish()
}

/// Install the global `tracing` subscriber: the log subscriber, or for `bench
/// --observability` the bench's gate in front of it.
fn init_logging(command: &Command) -> messaging_core::Result<()> {
    use tracing_subscriber::util::SubscriberInitExt;
    if let Command::Bench(a) = command {
        if let Some(parts) = a.observability() {
            return bench::install_observability(parts, Box::new(log_subscriber()));
        }
    }
    let _ = log_subscriber().try_init();
    Ok(())
}

/// Register every driver this tool ships with.
pub(crate) fn register_drivers() {
    driver_memory::register();
    driver_kafka::register();
    driver_rabbit::register();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.command) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    register_drivers();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Send(a) => send::run(a).await,
            Command::Listen(a) => listen::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Call(a) => rpc::call(a).await,
            Command::Cast(a) => rpc::cast(a).await,
            Command::RpcServer(a) => rpc::serve(a).await,
            Command::Sign(a) => telemetry::run_sign(a).await,
            Command::Verify(a) => telemetry::run_verify(a).await,
            Command::PublishSample(a) => telemetry::run_publish_sample(a).await,
            Command::Soak(a) => soak::run(a).await,
            Command::Stress(a) => stress::run(a).await,
            Command::SoakMember(a) => soak::member::run(a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
