//! A small built-in endpoint for trying RPC out (the CLI's demo server) and for tests.
//!
//! | method | arguments | result |
//! |---|---|---|
//! | `ping` | none | `"pong"` |
//! | `echo` | any | the arguments object |
//! | `add` | `{"a": number, "b": number}` | `a + b` (an integer when both are) |
//! | `context` | none | the caller's context |
//! | `sleep` | `{"seconds": number}` | `null`, after sleeping (at most 1 hour) |
//! | `fail` | `{"type_name"?: string, "message"?: string}` | a remote error (default `DemoError`) |

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{RemoteError, RpcEndpoint};

#[derive(Deserialize)]
struct AddArgs {
    a: serde_json::Number,
    b: serde_json::Number,
}

#[derive(Deserialize)]
struct SleepArgs {
    seconds: f64,
}

#[derive(Deserialize)]
struct FailArgs {
    #[serde(default)]
    type_name: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The demo endpoint (default namespace, version `1.0`); see the module docs.
pub fn demo_endpoint() -> RpcEndpoint {
    RpcEndpoint::new()
        .method("ping", |_ctx, (): ()| async move {
            Ok::<_, RemoteError>("pong")
        })
        .method("echo", |_ctx, args: Map<String, Value>| async move {
            Ok::<_, RemoteError>(args)
        })
        .method("add", |_ctx, args: AddArgs| async move {
            let sum = match (args.a.as_i64(), args.b.as_i64()) {
                (Some(a), Some(b)) => a
                    .checked_add(b)
                    .map(Value::from)
                    .ok_or_else(|| RemoteError::new("OverflowError", "integer overflow"))?,
                _ => Value::from(
                    args.a.as_f64().unwrap_or(f64::NAN) + args.b.as_f64().unwrap_or(f64::NAN),
                ),
            };
            Ok::<_, RemoteError>(sum)
        })
        .method(
            "context",
            |ctx, (): ()| async move { Ok::<_, RemoteError>(ctx) },
        )
        .method("sleep", |_ctx, args: SleepArgs| async move {
            if args.seconds.is_nan() || args.seconds < 0.0 {
                return Err(RemoteError::new(
                    "ValueError",
                    "seconds must be a number >= 0",
                ));
            }
            tokio::time::sleep(Duration::from_secs_f64(args.seconds.min(3600.0))).await;
            Ok::<_, RemoteError>(Value::Null)
        })
        .method("fail", |_ctx, args: FailArgs| async move {
            Err::<Value, _>(RemoteError::new(
                args.type_name.unwrap_or_else(|| "DemoError".to_owned()),
                args.message
                    .unwrap_or_else(|| "failed on request".to_owned()),
            ))
        })
}
