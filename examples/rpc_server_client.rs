//! An RPC server and a client on `memory://` (the Kafka driver has no RPC): a call
//! with a typed result, a remote error that arrives typed, and a cast.
//!
//! ```sh
//! cargo run -p examples --example rpc_server_client
//! ```

use std::time::Duration;

use examples::{register_drivers, wait_for};
use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
use messaging_core::{Context, ErrorKind, Target, Transport};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Serialize, Deserialize)]
struct Pair {
    a: i64,
    b: i64,
}

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    register_drivers();
    let transport = Transport::open("memory://examples-rpc")?;

    let (logged, mut log) = mpsc::unbounded_channel();
    let calc = RpcEndpoint::new()
        .namespace("calc")
        .method("add", |_ctx, p: Pair| async move {
            Ok::<_, RemoteError>(p.a + p.b)
        })
        .method("div", |_ctx, p: Pair| async move {
            if p.b == 0 {
                return Err(RemoteError::new("ZeroDivisionError", "division by zero"));
            }
            Ok(p.a / p.b)
        })
        .method("log", move |_ctx, p: Pair| {
            let logged = logged.clone();
            async move {
                let _ = logged.send((p.a, p.b));
                Ok::<_, RemoteError>(())
            }
        });
    let server = RpcServer::builder(&transport, Target::new("calc").with_server("host1"))
        .endpoint(calc)
        .build()?;
    server.start().await?;

    let client = RpcClient::new(&transport, Target::new("calc").with_namespace("calc"))
        .with_timeout(Duration::from_secs(10));
    let ctx = Context::new();

    let sum: i64 = client.call(&ctx, "add", &Pair { a: 40, b: 2 }).await?;
    println!("add(40, 2) = {sum}");

    let err = client
        .call::<_, i64>(&ctx, "div", &Pair { a: 1, b: 0 })
        .await
        .expect_err("dividing by zero fails on the server");
    assert_eq!(
        err.kind(),
        &ErrorKind::Remote {
            type_name: "ZeroDivisionError".into()
        }
    );
    println!("div(1, 0) failed remotely: {}", err.message());

    // A cast returns once the transport accepted it; the server handles it later.
    client.cast(&ctx, "log", &Pair { a: 7, b: 8 }).await?;
    let casts = wait_for(&mut log, 1).await?;
    println!("cast handled: {:?}", casts[0]);

    server.stop_and_wait().await?;
    transport.close(Duration::from_secs(5)).await?;
    Ok(())
}
