//! RPC: call and reply, cast, fanout, directed servers, timeouts, remote errors,
//! concurrency and a draining stop.
//!
//! Every case needs [`messaging_core::Capabilities::rpc`]. A driver that does not
//! claim it must refuse instead: each case then checks that its entry point fails
//! at once with `Unsupported`, naming the driver and the operation (Kafka).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcOperation, RpcServer};
use messaging_core::{Context, Error, ErrorKind, Target, Transport};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{unique, Harness};

#[derive(Debug, Serialize, Deserialize)]
struct AddArgs {
    a: i64,
    b: i64,
}

fn add_endpoint() -> RpcEndpoint {
    RpcEndpoint::new().method("add", |_ctx, args: AddArgs| async move {
        Ok::<_, RemoteError>(args.a + args.b)
    })
}

/// An endpoint whose `hit` method counts and names the server that ran it.
fn counting(name: &str, hits: Arc<AtomicUsize>) -> RpcEndpoint {
    let name = name.to_owned();
    RpcEndpoint::new().method("hit", move |_ctx, (): ()| {
        hits.fetch_add(1, Ordering::SeqCst);
        let name = name.clone();
        async move { Ok::<_, RemoteError>(name) }
    })
}

/// `n` servers `s0`, `s1`... on `topic`, each counting its calls of `hit`.
async fn counting_servers(
    t: &Transport,
    topic: &str,
    n: usize,
) -> (Vec<RpcServer>, Vec<Arc<AtomicUsize>>) {
    let hits: Vec<Arc<AtomicUsize>> = (0..n).map(|_| Arc::default()).collect();
    let mut servers = Vec::new();
    for (i, hit) in hits.iter().enumerate() {
        let name = format!("s{i}");
        let target = Target::new(topic).with_server(&name);
        servers.push(start(t, target, counting(&name, hit.clone())).await);
    }
    (servers, hits)
}

async fn start(t: &Transport, target: Target, endpoint: RpcEndpoint) -> RpcServer {
    let server = RpcServer::builder(t, target)
        .endpoint(endpoint)
        .build()
        .expect("server builds");
    server.start().await.expect("server starts");
    server
}

async fn wait_until(what: &str, patience: Duration, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + patience;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_unsupported(result: Result<impl std::fmt::Debug, Error>, driver: &str, operation: &str) {
    let e = result.expect_err("a driver without RPC must refuse");
    assert_eq!(
        e.kind(),
        &ErrorKind::Unsupported {
            driver: driver.to_owned(),
            operation: operation.to_owned()
        },
        "{e}"
    );
    assert!(
        e.to_string().contains(driver) && e.to_string().contains(operation),
        "{e}"
    );
}

/// Without the capability, the case's own entry point must refuse; returns
/// whether the case should go on.
async fn claims_rpc(h: &Harness, t: &Transport, operation: &str) -> bool {
    if h.capabilities().rpc {
        return true;
    }
    let driver = t.driver().name().to_owned();
    let client = RpcClient::new(t, Target::new(unique("rpc-none")));
    let ctx = Context::new();
    match operation {
        "rpc.call" => assert_unsupported(
            client.call::<_, i64>(&ctx, "m", &()).await,
            &driver,
            operation,
        ),
        "rpc.cast" => assert_unsupported(client.cast(&ctx, "m", &()).await, &driver, operation),
        "rpc.fanout" => assert_unsupported(client.fanout(&ctx, "m", &()).await, &driver, operation),
        _ => {
            let s = RpcServer::builder(t, Target::new(unique("rpc-none")))
                .endpoint(add_endpoint())
                .build()
                .unwrap();
            assert_unsupported(s.start().await, &driver, operation);
        }
    }
    t.close(h.patience()).await.unwrap();
    false
}

/// A call returns the method's typed result (a reply of another type is a `Decode`
/// error); the context travels to the server.
pub async fn rpc_call_and_reply(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.call").await {
        return;
    }
    let topic = unique("rpc-call");
    let ep = add_endpoint().method("whoami", |ctx, (): ()| async move {
        Ok::<_, RemoteError>(ctx.get("user").cloned())
    });
    let server = start(&t, Target::new(&topic), ep).await;
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience());
    let sum: i64 = client
        .call(&Context::new(), "add", &AddArgs { a: 20, b: 22 })
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let mut ctx = Context::new();
    ctx.insert("user".into(), json!("alice"));
    let user: Option<String> = client.call(&ctx, "whoami", &()).await.unwrap();
    assert_eq!(user.as_deref(), Some("alice"));
    let value = client
        .call_json(&ctx, "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(value, json!(3));
    let wrong: Result<String, Error> = client
        .call(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await;
    assert_eq!(
        wrong.unwrap_err().kind(),
        &ErrorKind::Decode,
        "a reply of the wrong type"
    );
    server.stop_and_wait().await.unwrap();
    assert_eq!(server.counters().replied, 4);
    t.close(h.patience()).await.unwrap();
}

/// A cast reaches exactly one server on the topic.
pub async fn rpc_cast(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.cast").await {
        return;
    }
    let topic = unique("rpc-cast");
    let (servers, hits) = counting_servers(&t, &topic, 2).await;
    let total = || hits.iter().map(|h| h.load(Ordering::SeqCst)).sum::<usize>();
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience());
    for _ in 0..10 {
        client.cast(&Context::new(), "hit", &()).await.unwrap();
    }
    wait_until("10 casts", h.patience(), || total() >= 10).await;
    tokio::time::sleep(h.quiet_period()).await;
    assert_eq!(total(), 10, "each cast ran exactly once");
    for s in servers {
        s.stop_and_wait().await.unwrap();
    }
    t.close(h.patience()).await.unwrap();
}

/// A fanout cast (`fanout`, or `cast` prepared `with_fanout`) reaches each of three
/// servers exactly once; a fanout *call* is refused.
pub async fn rpc_fanout_to_three_servers(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.fanout").await {
        return;
    }
    let topic = unique("rpc-fanout");
    let (servers, hits) = counting_servers(&t, &topic, 3).await;
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience());
    client.fanout(&Context::new(), "hit", &()).await.unwrap();
    let each = || hits.iter().all(|h| h.load(Ordering::SeqCst) >= 1);
    wait_until("every server to get the fanout", h.patience(), each).await;
    tokio::time::sleep(h.quiet_period()).await;
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit.load(Ordering::SeqCst), 1, "server s{i}");
    }
    client
        .prepare()
        .with_fanout(true)
        .cast(&Context::new(), "hit", &())
        .await
        .unwrap();
    let twice = || hits.iter().all(|h| h.load(Ordering::SeqCst) >= 2);
    wait_until("every server to get the second fanout", h.patience(), twice).await;
    let e = client
        .prepare()
        .with_fanout(true)
        .call::<_, String>(&Context::new(), "hit", &())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument, "a fanout call: {e}");
    tokio::time::sleep(h.quiet_period()).await;
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit.load(Ordering::SeqCst), 2, "server s{i}");
    }
    for s in servers {
        s.stop_and_wait().await.unwrap();
    }
    t.close(h.patience()).await.unwrap();
}

/// Calls and casts directed at one server reach only that server.
pub async fn rpc_directed_server(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.call").await {
        return;
    }
    let topic = unique("rpc-directed");
    let (servers, hits) = counting_servers(&t, &topic, 3).await;
    let client = RpcClient::new(&t, Target::new(&topic))
        .with_timeout(h.patience())
        .with_server("s2");
    for _ in 0..5 {
        let who: String = client.call(&Context::new(), "hit", &()).await.unwrap();
        assert_eq!(who, "s2");
    }
    client.cast(&Context::new(), "hit", &()).await.unwrap();
    wait_until("the directed cast", h.patience(), || {
        hits[2].load(Ordering::SeqCst) >= 6
    })
    .await;
    tokio::time::sleep(h.quiet_period()).await;
    assert_eq!(hits[0].load(Ordering::SeqCst), 0);
    assert_eq!(hits[1].load(Ordering::SeqCst), 0);
    assert_eq!(hits[2].load(Ordering::SeqCst), 6);
    for s in servers {
        s.stop_and_wait().await.unwrap();
    }
    t.close(h.patience()).await.unwrap();
}

/// A call nobody answers fails with `Timeout` after about its timeout.
pub async fn rpc_timeout_without_server(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.call").await {
        return;
    }
    let timeout = Duration::from_millis(300);
    let client = RpcClient::new(&t, Target::new(unique("rpc-nobody"))).with_timeout(timeout);
    let started = tokio::time::Instant::now();
    let e = client
        .call::<_, i64>(&Context::new(), "add", &AddArgs { a: 1, b: 2 })
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), &ErrorKind::Timeout, "{e}");
    assert!(took >= timeout, "gave up early: {took:?}");
    assert!(took < timeout + h.patience(), "gave up late: {took:?}");
    t.close(h.patience()).await.unwrap();
}

/// A failing method reaches the caller as a remote error with its type name and
/// message; a panicking one too; unknown methods and versions have their own kinds.
pub async fn rpc_remote_error(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.call").await {
        return;
    }
    let topic = unique("rpc-error");
    let ep = RpcEndpoint::new()
        .version("1.1")
        .method("fail", |_ctx, (): ()| async move {
            Err::<(), _>(RemoteError::new("ValueError", "bad value: 7"))
        })
        .method("panic", |_ctx, (): ()| async move {
            if true {
                panic!("method exploded");
            }
            Ok::<_, RemoteError>(())
        });
    let server = start(&t, Target::new(&topic), ep).await;
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience());
    let ctx = Context::new();

    let e = client.call::<_, ()>(&ctx, "fail", &()).await.unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "ValueError".into()
        }
    );
    assert_eq!(e.message(), "bad value: 7");

    let e = client.call::<_, ()>(&ctx, "panic", &()).await.unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "Panic".into()
        }
    );
    assert!(e.message().contains("method exploded"), "{e}");

    let e = client
        .call::<_, ()>(&ctx, "missing", &())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NoSuchMethod, "{e}");
    let e = client
        .prepare()
        .with_version("1.2")
        .call::<_, ()>(&ctx, "fail", &())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnsupportedVersion, "{e}");
    server.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A hundred calls in flight at once all get their own reply.
pub async fn rpc_hundred_concurrent_calls(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.call").await {
        return;
    }
    let topic = unique("rpc-many");
    let ep = RpcEndpoint::new().method("slow_add", |_ctx, args: AddArgs| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, RemoteError>(args.a + args.b)
    });
    let server = start(&t, Target::new(&topic), ep).await;
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience() * 3);
    let calls = (0..100i64).map(|i| {
        let c = client.clone();
        async move {
            c.call::<_, i64>(&Context::new(), "slow_add", &AddArgs { a: i, b: 1000 })
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as i64 + 1000, "call {i}");
    }
    server.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// Stopping a server answers the calls it already took; calls it did not take are
/// answered by another server on the topic.
pub async fn rpc_stop_drains(h: Harness) {
    let t = h.transport().await;
    if !claims_rpc(&h, &t, "rpc.server").await {
        return;
    }
    let topic = unique("rpc-drain");
    let started = Arc::new(AtomicUsize::new(0));
    let slow = |name: &'static str, started: Arc<AtomicUsize>| {
        RpcEndpoint::new().method("work", move |_ctx, (): ()| {
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, RemoteError>(name)
            }
        })
    };
    let first = RpcServer::builder(&t, Target::new(&topic).with_server("first"))
        .endpoint(slow("first", started.clone()))
        .max_concurrency(2)
        .build()
        .unwrap();
    first.start().await.unwrap();
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(h.patience() * 2);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call::<_, String>(&Context::new(), "work", &()).await })
        })
        .collect();
    wait_until("the first server to take two calls", h.patience(), || {
        started.load(Ordering::SeqCst) >= 2
    })
    .await;
    first.stop();
    let second = start(
        &t,
        Target::new(&topic).with_server("second"),
        slow("second", Arc::default()),
    )
    .await;
    first.wait().await.unwrap();
    let mut by = Vec::new();
    for c in calls {
        by.push(c.await.unwrap().expect("every call gets its reply"));
    }
    let by_first = by.iter().filter(|w| *w == "first").count();
    assert_eq!(
        by_first, 2,
        "the stopping server answered what it took: {by:?}"
    );
    assert_eq!(
        by.len() - by_first,
        3,
        "the others went to the second server: {by:?}"
    );
    second.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// The `rpc` capability tells the truth: with it, the driver hands out its RPC
/// side for every operation; without it, every RPC entry point fails at once with
/// `Unsupported`, naming the driver and the operation.
pub async fn rpc_capability_is_truthful(h: Harness) {
    let t = h.transport().await;
    let driver = t.driver().name().to_owned();
    if h.capabilities().rpc {
        for op in RpcOperation::ALL {
            assert!(
                t.driver().rpc(op).is_ok(),
                "{driver} claims RPC but refuses {op}"
            );
        }
        t.close(h.patience()).await.unwrap();
        return;
    }
    for op in RpcOperation::ALL {
        assert_unsupported(t.driver().rpc(op).map(|_| ()), &driver, op.as_str());
    }
    let client = RpcClient::new(&t, Target::new(unique("rpc-none"))).with_timeout(h.patience());
    let ctx = Context::new();
    assert_unsupported(
        client.call::<_, i64>(&ctx, "m", &()).await,
        &driver,
        "rpc.call",
    );
    assert_unsupported(
        client.call_json(&ctx, "m", json!({})).await,
        &driver,
        "rpc.call",
    );
    assert_unsupported(client.cast(&ctx, "m", &()).await, &driver, "rpc.cast");
    assert_unsupported(
        client.cast_json(&ctx, "m", json!({})).await,
        &driver,
        "rpc.cast",
    );
    assert_unsupported(client.fanout(&ctx, "m", &()).await, &driver, "rpc.fanout");
    assert_unsupported(
        client.fanout_json(&ctx, "m", json!({})).await,
        &driver,
        "rpc.fanout",
    );
    let fanout = client.prepare().with_fanout(true);
    assert_unsupported(fanout.cast(&ctx, "m", &()).await, &driver, "rpc.fanout");
    let server = RpcServer::builder(&t, Target::new(unique("rpc-none")))
        .endpoint(add_endpoint())
        .build()
        .unwrap();
    assert_unsupported(server.start().await, &driver, "rpc.server");
    server.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}
