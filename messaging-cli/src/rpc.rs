//! `messaging call`, `messaging cast`, `messaging rpc-server`, and the RPC benchmark.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use messaging_core::rpc::demo::demo_endpoint;
use messaging_core::{Context, Error, ErrorKind, Result, RpcClient, RpcServer, Target, Transport};
use serde::Serialize;

use crate::observe::{self, MetricsArgs, MetricsEndpoint};
use crate::send::{parse_context, parse_json};

/// Arguments shared by `call` and `cast`.
#[derive(Debug, Args)]
pub(crate) struct RpcArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://", env = "MESSAGING_URL")]
    url: String,
    /// Topic the servers listen on.
    #[arg(long)]
    topic: String,
    /// Method to invoke.
    #[arg(long)]
    method: String,
    /// Arguments, as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Context, as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// Send to this server only.
    #[arg(long)]
    server: Option<String>,
    /// Seconds to wait for a reply (call).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Cast to every server on the topic (cast only).
    #[arg(long)]
    fanout: bool,
    /// Also run the built-in demo server (ping, echo, add, context, sleep, fail) in this
    /// process: handy on `memory://`, which is in-process.
    #[arg(long)]
    demo_server: bool,
}

async fn client(a: &RpcArgs) -> Result<(Transport, RpcClient, Option<RpcServer>)> {
    let transport = Transport::open(&a.url)?;
    let server = if a.demo_server {
        let target = Target::new(&a.topic)
            .with_server(a.server.clone().unwrap_or_else(|| "demo".to_owned()));
        let s = RpcServer::builder(&transport, target)
            .endpoint(demo_endpoint())
            .build()?;
        s.start().await?;
        Some(s)
    } else {
        None
    };
    let mut c = RpcClient::new(&transport, Target::new(&a.topic))
        .with_timeout(Duration::from_secs_f64(a.timeout.max(0.001)));
    if let Some(s) = &a.server {
        c = c.with_server(s.clone());
    }
    Ok((transport, c, server))
}

async fn finish(transport: Transport, server: Option<RpcServer>) -> Result<()> {
    if let Some(s) = server {
        s.stop_and_wait().await?;
    }
    transport.close(Duration::from_secs(10)).await?;
    Ok(())
}

/// `messaging call`: print the reply as JSON.
pub(crate) async fn call(a: RpcArgs) -> Result<()> {
    let args = parse_json("args", &a.args)?;
    let ctx = parse_context(a.context.as_deref())?;
    let (transport, client, server) = client(&a).await?;
    let reply = client.call_json(&ctx, &a.method, args).await;
    finish(transport, server).await?;
    println!("{}", serde_json::to_string(&reply?)?);
    Ok(())
}

/// `messaging cast`: no reply.
pub(crate) async fn cast(a: RpcArgs) -> Result<()> {
    let args = parse_json("args", &a.args)?;
    let ctx = parse_context(a.context.as_deref())?;
    let (transport, client, server) = client(&a).await?;
    let sent = if a.fanout {
        client.fanout_json(&ctx, &a.method, args).await
    } else {
        client.cast_json(&ctx, &a.method, args).await
    };
    if server.is_some() {
        // Let the in-process demo server take the cast before it stops.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    finish(transport, server).await?;
    sent?;
    eprintln!("cast {} to {}", a.method, a.topic);
    Ok(())
}

/// Arguments of `messaging rpc-server`.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://", env = "MESSAGING_URL")]
    url: String,
    /// Topic to serve.
    #[arg(long)]
    topic: String,
    /// This server's name (for directed calls and fanout).
    #[arg(long, default_value = "demo")]
    server: String,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    timeout: Option<f64>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// `messaging rpc-server`: serve the demo endpoint.
pub(crate) async fn serve(a: ServerArgs) -> Result<()> {
    let obs = MetricsEndpoint::start(&a.metrics).await?;
    let transport = Transport::open(&a.url)?;
    let server = RpcServer::builder(&transport, Target::new(&a.topic).with_server(&a.server))
        .endpoint(demo_endpoint())
        .build()?;
    server.start().await?;
    obs.ready_when(observe::server_ready(&transport, &server));
    eprintln!(
        "serving ping, echo, add, context, sleep, fail on topic {} as {}",
        a.topic, a.server
    );
    match a.timeout {
        Some(t) => tokio::time::sleep(Duration::from_secs_f64(t.max(0.0))).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    obs.not_ready("stopping");
    finish(transport, Some(server)).await?;
    obs.finish().await;
    Ok(())
}

/// Figures of an RPC benchmark run.
#[derive(Debug, Serialize)]
pub(crate) struct RpcBenchReport {
    pub(crate) url: String,
    pub(crate) calls: u64,
    pub(crate) in_flight: usize,
    pub(crate) calls_per_sec: f64,
    pub(crate) latency_p50_us: u64,
    pub(crate) latency_p99_us: u64,
    pub(crate) latency_max_us: u64,
}

/// Call round trips per second against an in-process demo server.
pub(crate) async fn bench(
    url: &str,
    calls: u64,
    in_flight: usize,
    obs: &MetricsEndpoint,
) -> Result<RpcBenchReport> {
    let transport = Transport::open(url)?;
    let topic = format!(
        "rpc-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let server = RpcServer::builder(&transport, Target::new(&topic).with_server("bench"))
        .endpoint(demo_endpoint())
        .max_concurrency(in_flight.max(1))
        .build()?;
    server.start().await?;
    obs.ready_when(observe::server_ready(&transport, &server));
    let client =
        RpcClient::new(&transport, Target::new(&topic)).with_timeout(Duration::from_secs(30));
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| Error::new(ErrorKind::Internal, "histogram").with_source(e))?,
    ));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight.max(1) {
        let client = client.clone();
        let histogram = histogram.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let ctx = Context::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < calls {
                let t0 = Instant::now();
                let sum: i64 = client
                    .call(&ctx, "add", &serde_json::json!({"a": 1, "b": 2}))
                    .await?;
                if sum != 3 {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("add returned {sum}"),
                    ));
                }
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.record((t0.elapsed().as_micros() as u64).max(1));
                }
            }
            Ok::<(), Error>(())
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| Error::new(ErrorKind::Internal, "bench worker failed").with_source(e))??;
    }
    let secs = started.elapsed().as_secs_f64();
    obs.not_ready("finished");
    finish(transport.clone(), Some(server)).await?;
    let h = histogram
        .lock()
        .map_err(|_| Error::new(ErrorKind::Internal, "histogram lock"))?;
    Ok(RpcBenchReport {
        url: transport.url().to_string(),
        calls,
        in_flight,
        calls_per_sec: calls as f64 / secs,
        latency_p50_us: h.value_at_quantile(0.5),
        latency_p99_us: h.value_at_quantile(0.99),
        latency_max_us: h.max(),
    })
}
