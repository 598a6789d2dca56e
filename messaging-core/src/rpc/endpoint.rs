//! [`RpcEndpoint`]: named async methods an RPC server dispatches to, and
//! [`RemoteError`], what a method returns when it fails.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::wire::{WireFailure, DEFAULT_VERSION};
use crate::notification::Context;

/// The error an RPC method returns; the caller receives it as an error of kind
/// [`crate::ErrorKind::Remote`] with this type name and message.
///
/// Any `std::error::Error` converts into it (so `?` works in a method), with the
/// Rust type's name as the type name; [`RemoteError::new`] names the type yourself.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteError {
    type_name: String,
    module: String,
    message: String,
}

impl RemoteError {
    /// An error with a type name of your choice (e.g. `ValueError`) and a message.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            type_name: type_name.into(),
            module: String::new(),
            message: message.into(),
        }
    }

    /// With the module the type lives in (oslo's `module`, shown to Python callers).
    pub fn with_module(mut self, module: impl Into<String>) -> Self {
        self.module = module.into();
        self
    }

    /// The type name the caller sees.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The module, or empty.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The message the caller sees.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_wire(self) -> WireFailure {
        WireFailure {
            class: self.type_name,
            module: self.module,
            args: vec![self.message.clone()],
            message: self.message,
            tb: Vec::new(),
            kwargs: serde_json::Map::new(),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for RemoteError {
    fn from(error: E) -> Self {
        let full = std::any::type_name::<E>();
        let base = full.split('<').next().unwrap_or(full);
        let (module, class) = base.rsplit_once("::").unwrap_or(("", base));
        RemoteError::new(class, error.to_string()).with_module(module)
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)
    }
}

impl fmt::Debug for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteError")
            .field("type_name", &self.type_name)
            .field("module", &self.module)
            .field("message", &self.message)
            .finish()
    }
}

/// A type-erased method: context and JSON arguments in, JSON result out.
pub(crate) type MethodFn =
    Arc<dyn Fn(Context, Value) -> BoxFuture<'static, Result<Value, RemoteError>> + Send + Sync>;

/// A set of named async methods, with the namespace and interface version they
/// implement (oslo's endpoint object and its `target`).
///
/// ```
/// use messaging_core::rpc::{RemoteError, RpcEndpoint};
/// #[derive(serde::Deserialize)]
/// struct AddArgs { a: i64, b: i64 }
/// let calc = RpcEndpoint::new()
///     .namespace("calc")
///     .version("1.2")
///     .method("add", |_ctx, args: AddArgs| async move { Ok::<_, RemoteError>(args.a + args.b) })
///     .method("parse", |_ctx, args: serde_json::Value| async move {
///         let n: i64 = args["text"].as_str().unwrap_or("").parse()?; // ParseIntError -> RemoteError
///         Ok::<_, RemoteError>(n)
///     });
/// assert_eq!(calc.method_names().collect::<Vec<_>>(), ["add", "parse"]);
/// ```
#[derive(Clone)]
pub struct RpcEndpoint {
    pub(crate) namespace: Option<String>,
    pub(crate) version: String,
    pub(crate) methods: BTreeMap<String, MethodFn>,
}

impl Default for RpcEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcEndpoint")
            .field("namespace", &self.namespace)
            .field("version", &self.version)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RpcEndpoint {
    /// An endpoint in the default namespace, version `1.0`, with no methods.
    pub fn new() -> Self {
        RpcEndpoint {
            namespace: None,
            version: DEFAULT_VERSION.to_owned(),
            methods: BTreeMap::new(),
        }
    }

    /// The namespace requests must name to reach these methods.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The interface version implemented, `major.minor[.revision]` (default `1.0`).
    /// A request for `X.Y` reaches this endpoint when the majors are equal and this
    /// minor is at least `Y`. Checked when the server is built.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Add (or replace) a method. `handler` gets the caller's context and the
    /// request's arguments deserialized into `A` (a struct whose fields are the
    /// keyword arguments; `serde_json::Value` for the raw object); its result is
    /// serialized to JSON for the reply. Arguments that do not fit `A` are refused
    /// with a remote error of type `InvalidArguments`.
    pub fn method<A, R, F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RemoteError>> + Send + 'static,
    {
        let name = name.into();
        let method_name = name.clone();
        let erased: MethodFn = Arc::new(move |ctx: Context, args: Value| {
            let parsed = match parse_args::<A>(args) {
                Ok(a) => a,
                Err(e) => {
                    let error = RemoteError::new(
                        "InvalidArguments",
                        format!("arguments of {method_name} do not fit: {e}"),
                    );
                    return futures::future::ready(Err(error)).boxed();
                }
            };
            let fut = handler(ctx, parsed);
            let method_name = method_name.clone();
            async move {
                let result = fut.await?;
                serde_json::to_value(result).map_err(|e| {
                    RemoteError::new(
                        "SerializationError",
                        format!("result of {method_name} does not serialize to JSON: {e}"),
                    )
                })
            }
            .boxed()
        });
        self.methods.insert(name, erased);
        self
    }

    /// The names of the methods, sorted.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }

    /// The namespace, if any.
    pub fn namespace_name(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The implemented version.
    pub fn implemented_version(&self) -> &str {
        &self.version
    }
}

/// Deserialize keyword arguments; an empty object also fits `()` and `Option<T>`.
fn parse_args<A: DeserializeOwned>(args: Value) -> Result<A, serde_json::Error> {
    let empty = matches!(&args, Value::Object(m) if m.is_empty());
    match serde_json::from_value(args) {
        Ok(a) => Ok(a),
        Err(e) if empty => serde_json::from_value(Value::Null).map_err(|_| e),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn std_errors_convert_with_their_type_name() {
        let e: RemoteError = "x".parse::<i32>().unwrap_err().into();
        assert_eq!(e.type_name(), "ParseIntError");
        assert_eq!(e.module(), "core::num::error");
        assert_eq!(e.message(), "invalid digit found in string");
        assert_eq!(
            e.to_string(),
            "ParseIntError: invalid digit found in string"
        );
    }

    #[tokio::test]
    async fn methods_deserialize_args_and_serialize_results() {
        #[derive(serde::Deserialize)]
        struct Add {
            a: i64,
            b: i64,
        }
        let ep = RpcEndpoint::new()
            .method("add", |_c, a: Add| async move {
                Ok::<_, RemoteError>(a.a + a.b)
            })
            .method(
                "unit",
                |_c, (): ()| async move { Ok::<_, RemoteError>("ok") },
            );
        let add = ep.methods.get("add").unwrap().clone();
        assert_eq!(
            add(Context::new(), json!({"a": 1, "b": 2})).await.unwrap(),
            json!(3)
        );
        let bad = add(Context::new(), json!({"a": "x"})).await.unwrap_err();
        assert_eq!(bad.type_name(), "InvalidArguments");
        let unit = ep.methods.get("unit").unwrap().clone();
        assert_eq!(unit(Context::new(), json!({})).await.unwrap(), json!("ok"));
    }
}
