//! RPC over the in-process broker, through the core's client and server: what the
//! conformance suite (`integration-tests/src/conformance/rpc.rs`, which runs on memory)
//! does not check: JSON entry points, balancing, expiry, namespaces and versions,
//! the server's concurrency bound, lifecycle, serializers, instances and virtual hosts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::rpc::demo::demo_endpoint;
use messaging_core::rpc::{
    RemoteError, RpcClient, RpcEndpoint, RpcOperation, RpcSerializer, RpcServer,
};
use messaging_core::{Context, DriverRegistry, ErrorKind, Result, Target, Transport, TransportUrl};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn transport(url: &str) -> Transport {
    let registry = DriverRegistry::new();
    registry.register(driver_memory::factory());
    Transport::open_with(&registry, &TransportUrl::parse(url).unwrap(), &[]).unwrap()
}

#[derive(Debug, Serialize, Deserialize)]
struct AddArgs {
    a: i64,
    b: i64,
}

fn calc() -> RpcEndpoint {
    RpcEndpoint::new().method("add", |_ctx, args: AddArgs| async move {
        Ok::<_, RemoteError>(args.a + args.b)
    })
}

/// An endpoint whose `who` method names the server that answered.
fn named(name: &str, hits: Arc<AtomicUsize>) -> RpcEndpoint {
    let name = name.to_owned();
    RpcEndpoint::new().method("who", move |_ctx, (): ()| {
        let name = name.clone();
        hits.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, RemoteError>(name) }
    })
}

async fn server(t: &Transport, target: Target, ep: RpcEndpoint) -> RpcServer {
    let s = RpcServer::builder(t, target).endpoint(ep).build().unwrap();
    s.start().await.unwrap();
    s
}

#[tokio::test]
async fn context_travels_and_json_entry_points_work() {
    let t = transport("memory://rpc-json");
    let s = server(&t, Target::new("demo"), demo_endpoint()).await;
    let client = RpcClient::new(&t, Target::new("demo"));
    let mut ctx = Context::new();
    ctx.insert("user".into(), json!("alice"));
    ctx.insert("auth_token".into(), json!("t0ken"));
    let back = client
        .call_json(&ctx, "context", Value::Null)
        .await
        .unwrap();
    assert_eq!(back, json!({"user": "alice", "auth_token": "t0ken"}));
    assert_eq!(
        client
            .call_json(&ctx, "add", json!({"a": 1, "b": 2.5}))
            .await
            .unwrap(),
        json!(3.5)
    );
    assert_eq!(
        client.call_json(&ctx, "ping", json!({})).await.unwrap(),
        json!("pong")
    );
    client
        .cast_json(&ctx, "sleep", json!({"seconds": 0}))
        .await
        .unwrap();
    let e = client
        .call_json(&ctx, "add", json!([1, 2]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    let e = client
        .call_json(&ctx, "add", json!({"a": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "InvalidArguments".into()
        }
    );
    s.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn topic_calls_are_balanced_across_servers() {
    let t = transport("memory://rpc-directed");
    let hits: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut servers = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        let name = format!("s{i}");
        let slow = named(&name, h.clone()).method("slow", |_ctx, (): ()| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, RemoteError>(())
        });
        let s = RpcServer::builder(&t, Target::new("dir").with_server(&name))
            .endpoint(slow)
            .max_concurrency(1)
            .build()
            .unwrap();
        s.start().await.unwrap();
        servers.push(s);
    }
    let client = RpcClient::new(&t, Target::new("dir"));
    let calls = (0..30).map(|_| {
        let c = client.clone();
        async move { c.call::<_, ()>(&Context::new(), "slow", &()).await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    for s in &servers {
        assert!(
            s.counters().replied >= 2,
            "{}: {:?}",
            s.server_name(),
            s.counters()
        );
    }
    for s in servers {
        s.stop_and_wait().await.unwrap();
    }
}

#[tokio::test]
async fn a_call_nobody_answers_times_out_and_expires() {
    let t = transport("memory://rpc-timeout");
    let client = RpcClient::new(&t, Target::new("nobody")).with_timeout(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let e = client
        .call::<_, Value>(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Timeout);
    assert!(e.to_string().contains("add"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The expired request is not handed to a server that starts later.
    let s = server(&t, Target::new("nobody"), calc()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.counters().received, 0);
    // A directed call to a server that does not exist times out as well.
    let e = client
        .prepare()
        .with_server("ghost")
        .call::<_, i64>(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Timeout);
    s.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn remote_failures_reach_the_caller_typed() {
    let t = transport("memory://rpc-errors");
    let ep = RpcEndpoint::new()
        .namespace("calc")
        .version("1.2")
        .method("div", |_ctx, args: AddArgs| async move {
            if args.b == 0 {
                return Err(RemoteError::new("ZeroDivisionError", "division by zero"));
            }
            Ok(args.a / args.b)
        })
        .method("parse", |_ctx, args: Value| async move {
            let n: i64 = args["text"].as_str().unwrap_or_default().parse()?;
            Ok::<_, RemoteError>(n)
        })
        .method("boom", |_ctx, (): ()| async move {
            if true {
                panic!("kaboom");
            }
            Ok::<_, RemoteError>(())
        });
    let s = server(&t, Target::new("err"), ep).await;
    let client = RpcClient::new(
        &t,
        Target::new("err")
            .with_namespace("calc")
            .with_version("1.1"),
    );
    let ctx = Context::new();

    let e = client
        .call::<_, i64>(&ctx, "div", &AddArgs { a: 1, b: 0 })
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "ZeroDivisionError".into()
        }
    );
    assert_eq!(e.message(), "division by zero");

    let e = client
        .call::<_, i64>(&ctx, "parse", &json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "ParseIntError".into()
        }
    );

    let e = client.call::<_, ()>(&ctx, "boom", &()).await.unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Remote {
            type_name: "Panic".into()
        }
    );
    assert!(e.message().contains("kaboom"), "{e}");

    let e = client.call::<_, ()>(&ctx, "nope", &()).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NoSuchMethod);

    let e = client
        .prepare()
        .with_version("1.3")
        .call::<_, i64>(&ctx, "div", &AddArgs { a: 4, b: 2 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnsupportedVersion);
    let e = client
        .prepare()
        .with_version("2.0")
        .call::<_, i64>(&ctx, "div", &AddArgs { a: 4, b: 2 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnsupportedVersion);
    let e = client
        .prepare()
        .with_default_namespace()
        .call::<_, i64>(&ctx, "div", &AddArgs { a: 4, b: 2 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnsupportedVersion);

    // The server survived all of it.
    let q: i64 = client
        .call(&ctx, "div", &AddArgs { a: 4, b: 2 })
        .await
        .unwrap();
    assert_eq!(q, 2);
    s.stop_and_wait().await.unwrap();
    assert_eq!(s.counters().failed, 7);
}

#[tokio::test]
async fn a_hundred_calls_in_flight() {
    let t = transport("memory://rpc-concurrent");
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let ep = RpcEndpoint::new().method("slow_add", move |_ctx, args: AddArgs| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, RemoteError>(args.a + args.b)
        }
    });
    let s = server(&t, Target::new("many"), ep).await;
    let client = RpcClient::new(&t, Target::new("many"));
    let calls = (0..100).map(|i| {
        let c = client.clone();
        async move {
            c.call::<_, i64>(&Context::new(), "slow_add", &AddArgs { a: i, b: 1 })
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as i64 + 1);
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 1 && peak <= 64, "peak concurrency {peak}");
    s.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn server_lifecycle_is_idempotent() {
    let t = transport("memory://rpc-life");
    let s = RpcServer::builder(&t, Target::new("life"))
        .endpoint(calc())
        .build()
        .unwrap();
    assert!(s.server_name().starts_with("server-"));
    s.wait().await.unwrap();
    s.start().await.unwrap();
    s.start().await.unwrap();
    s.stop();
    s.stop();
    s.wait().await.unwrap();
    s.wait().await.unwrap();
    assert_eq!(s.start().await.unwrap_err().kind(), &ErrorKind::Closed);

    let never = RpcServer::builder(&t, Target::new("life"))
        .endpoint(calc())
        .build()
        .unwrap();
    never.stop();
    assert_eq!(never.start().await.unwrap_err().kind(), &ErrorKind::Closed);
    never.wait().await.unwrap();

    let e = RpcServer::builder(&t, Target::new("life"))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    let e = RpcServer::builder(&t, Target::new("life"))
        .endpoint(calc().version("x"))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
}

#[derive(Debug, Default)]
struct Tagging {
    seen: Mutex<Vec<String>>,
}

impl RpcSerializer for Tagging {
    fn serialize_entity(&self, _ctx: &Context, entity: Value) -> Result<Value> {
        self.seen.lock().unwrap().push(format!("ser {entity}"));
        Ok(match entity {
            Value::Number(n) => json!({"wrapped": n}),
            other => other,
        })
    }
    fn deserialize_entity(&self, _ctx: &Context, entity: Value) -> Result<Value> {
        self.seen.lock().unwrap().push(format!("de {entity}"));
        Ok(match entity {
            Value::Object(mut m) if m.contains_key("wrapped") => m.remove("wrapped").unwrap(),
            other => other,
        })
    }
    fn serialize_context(&self, mut ctx: Context) -> Result<Context> {
        ctx.insert("serialized".into(), json!(true));
        Ok(ctx)
    }
    fn deserialize_context(&self, mut ctx: Context) -> Result<Context> {
        ctx.insert("deserialized".into(), json!(true));
        Ok(ctx)
    }
}

#[tokio::test]
async fn serializers_run_on_both_sides() {
    let t = transport("memory://rpc-serializer");
    let server_side = Arc::new(Tagging::default());
    let ep = RpcEndpoint::new().method("inspect", |ctx, args: Value| async move {
        Ok::<_, RemoteError>(json!({"ctx": ctx, "args": args}))
    });
    let s = RpcServer::builder(&t, Target::new("ser"))
        .endpoint(ep)
        .serializer(server_side.clone())
        .build()
        .unwrap();
    s.start().await.unwrap();
    let client_side = Arc::new(Tagging::default());
    let client = RpcClient::new(&t, Target::new("ser")).with_serializer(client_side.clone());
    let out = client
        .call_json(&Context::new(), "inspect", json!({"n": 7}))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"ctx": {"serialized": true, "deserialized": true}, "args": {"n": 7}})
    );
    assert_eq!(client_side.seen.lock().unwrap()[0], "ser 7");
    assert_eq!(server_side.seen.lock().unwrap()[0], r#"de {"wrapped":7}"#);
    s.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn instances_and_virtual_hosts_keep_traffic_apart() {
    let a = transport("memory://rpc-iso/a");
    let b = transport("memory://rpc-iso/b");
    let other = transport("memory://rpc-iso-other/a");
    let s = server(&a, Target::new("iso"), calc()).await;
    let args = AddArgs { a: 1, b: 2 };
    let short = Duration::from_millis(100);
    let same = RpcClient::new(&transport("memory://rpc-iso/a"), Target::new("iso"));
    assert_eq!(
        same.call::<_, i64>(&Context::new(), "add", &args)
            .await
            .unwrap(),
        3
    );
    for t in [&b, &other] {
        let e = RpcClient::new(t, Target::new("iso"))
            .with_timeout(short)
            .call::<_, i64>(&Context::new(), "add", &args)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Timeout);
    }
    let e = RpcClient::new(&a, Target::new("iso").with_exchange("nova"))
        .with_timeout(short)
        .call::<_, i64>(&Context::new(), "add", &args)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Timeout);
    s.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn a_closed_transport_refuses_rpc() {
    let t = transport("memory://rpc-closed");
    let s = server(&t, Target::new("c"), calc()).await;
    let client = RpcClient::new(&t, Target::new("c"));
    let _: i64 = client
        .call(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await
        .unwrap();
    t.close(Duration::from_secs(1)).await.unwrap();
    let e = client
        .call::<_, i64>(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Closed);
    let e = client
        .cast(&Context::new(), "add", &AddArgs { a: 1, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Closed);
    // The server notices and stops on its own; wait still returns.
    s.stop_and_wait().await.unwrap();
}

#[test]
fn memory_claims_rpc() {
    let t = transport("memory://rpc-caps");
    assert!(t.driver().capabilities().rpc);
    assert!(t.driver().rpc(RpcOperation::Call).is_ok());
}

#[test]
fn a_client_outlives_the_runtime_it_first_called_from() {
    let t = transport("memory://rpc-runtimes");
    let client = RpcClient::new(&t, Target::new("rt")).with_timeout(Duration::from_secs(5));
    for round in 0..2 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = server(&t, Target::new("rt"), calc()).await;
            let sum: i64 = client
                .call(&Context::new(), "add", &AddArgs { a: round, b: 1 })
                .await
                .unwrap();
            assert_eq!(sum, round + 1);
            s.stop_and_wait().await.unwrap();
        });
    }
}

#[derive(Debug, Deserialize)]
struct HitArgs {
    n: String,
}

/// A server drops a request whose `_unique_id` is one of the last 16 it took
/// (oslo's duplicate check), never one without `_unique_id`; an id that has fallen
/// out of the last 16 is taken again. The requests are written by hand, as oslo
/// (or a redelivering broker) would send them.
#[tokio::test]
async fn a_server_drops_a_request_whose_unique_id_it_just_took() {
    use messaging_core::rpc::{RpcAddress, RpcDelivery, RpcRequest, RECENT_UNIQUE_IDS};
    let t = transport("memory://rpc-dedup");
    let hits = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hits.clone();
    let ep = RpcEndpoint::new().method("hit", move |_ctx, args: HitArgs| {
        seen.lock().unwrap().push(args.n);
        async move { Ok::<_, RemoteError>(()) }
    });
    let s = server(&t, Target::new("dedup"), ep).await;
    let spec = s.listen_spec().clone();
    let rpc = t.driver().rpc(RpcOperation::Cast).unwrap();
    let cast = |n: &str, unique_id: Option<&str>| {
        let mut inner = json!({"method": "hit", "args": {"n": n}, "_context_user": "u"});
        if let Some(id) = unique_id {
            inner["_unique_id"] = json!(id);
        }
        let body = json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string();
        RpcRequest {
            to: RpcAddress {
                exchange: spec.exchange.clone(),
                topic: spec.topic.clone(),
                delivery: RpcDelivery::AnyServer,
            },
            body: body.into(),
            ttl: None,
        }
    };
    let mut sent = vec![
        cast("first", Some("a")),
        cast("again", Some("a")),
        cast("no-id-1", None),
        cast("no-id-2", None),
    ];
    for i in 0..RECENT_UNIQUE_IDS {
        sent.push(cast(&format!("f{i}"), Some(&format!("f{i}"))));
    }
    // `a` is now the 17th id back: taken again.
    sent.push(cast("later", Some("a")));
    let total = sent.len() as u64;
    for request in sent {
        rpc.send_request(request).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.counters().received < total || hits.lock().unwrap().len() < (total - 1) as usize {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", s.counters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.stop_and_wait().await.unwrap();
    let mut hits = hits.lock().unwrap().clone();
    hits.sort();
    let mut expected: Vec<String> = ["first", "no-id-1", "no-id-2", "later"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..RECENT_UNIQUE_IDS).map(|i| format!("f{i}")))
        .collect();
    expected.sort();
    assert_eq!(hits, expected);
    assert_eq!(s.counters().duplicates, 1);
    assert_eq!(s.counters().received, total);
}
