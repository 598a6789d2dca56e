//! Finding the method a request names: by namespace, version and name, with
//! oslo's rules.
//!
//! Endpoints are tried in the order added. An endpoint is a candidate when its
//! namespace equals the request's (both absent counts as equal) and its version is
//! compatible with the requested one (same major; its minor at least the requested
//! minor; with equal minors, its revision at least the requested one). The first
//! candidate that has the method wins. When candidates exist but none has the
//! method, the error is `NoSuchMethod`; when there is no candidate at all, it is
//! `UnsupportedVersion` (oslo's classes, so Python callers see what they expect).

use std::fmt;
use std::str::FromStr;

use super::endpoint::{MethodFn, RemoteError, RpcEndpoint};
use crate::error::{Error, ErrorKind, Result};

/// The module oslo's dispatcher errors come from (kept for Python callers).
const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";

/// An interface version `major.minor[.revision]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    revision: u64,
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("malformed version {text:?}: expected major.minor[.revision]");
        let mut parts = text.trim().split('.').map(|p| p.parse::<u64>());
        let major = parts.next().and_then(|p| p.ok()).ok_or_else(bad)?;
        let minor = match parts.next() {
            None => 0,
            Some(p) => p.map_err(|_| bad())?,
        };
        let revision = match parts.next() {
            None => 0,
            Some(p) => p.map_err(|_| bad())?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Version {
            major,
            minor,
            revision,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.revision != 0 {
            write!(f, ".{}", self.revision)?;
        }
        Ok(())
    }
}

impl Version {
    /// Whether an endpoint implementing `self` can serve a request for `requested`.
    pub(crate) fn serves(self, requested: Version) -> bool {
        self.major == requested.major
            && (self.minor, self.revision) >= (requested.minor, requested.revision)
    }
}

#[derive(Debug)]
struct Entry {
    endpoint: RpcEndpoint,
    version: Version,
}

/// The endpoints of one server, with their versions parsed.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    entries: Vec<Entry>,
}

impl Dispatcher {
    /// Check every endpoint's version.
    pub(crate) fn new(endpoints: Vec<RpcEndpoint>) -> Result<Self> {
        let mut entries = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let version = endpoint.version.parse().map_err(|e: String| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("RPC endpoint version: {e}"),
                )
            })?;
            entries.push(Entry { endpoint, version });
        }
        Ok(Dispatcher { entries })
    }

    /// The method a request names, or the remote error the caller gets.
    pub(crate) fn find(
        &self,
        namespace: Option<&str>,
        version: &str,
        method: &str,
    ) -> Result<&MethodFn, RemoteError> {
        let ns_text = namespace.map_or_else(
            || "the default namespace".to_owned(),
            |n| format!("namespace {n:?}"),
        );
        let requested: Version = version.parse().map_err(|e: String| {
            RemoteError::new(
                "UnsupportedVersion",
                format!("{e} (method {method}, {ns_text})"),
            )
            .with_module(DISPATCHER_MODULE)
        })?;
        let mut compatible = false;
        for entry in &self.entries {
            if entry.endpoint.namespace.as_deref() != namespace || !entry.version.serves(requested)
            {
                continue;
            }
            if let Some(m) = entry.endpoint.methods.get(method) {
                return Ok(m);
            }
            compatible = true;
        }
        if compatible {
            return Err(RemoteError::new(
                "NoSuchMethod",
                format!(
                    "no endpoint in {ns_text} serving version {requested} has a method {method:?}"
                ),
            )
            .with_module(DISPATCHER_MODULE));
        }
        let offered: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.endpoint.namespace.as_deref() == namespace)
            .map(|e| e.version.to_string())
            .collect();
        let detail = if offered.is_empty() {
            format!("no endpoint serves {ns_text}")
        } else {
            format!("{ns_text} offers {}", offered.join(", "))
        };
        Err(RemoteError::new(
            "UnsupportedVersion",
            format!("version {requested} is not supported for method {method:?}: {detail}"),
        )
        .with_module(DISPATCHER_MODULE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn versions_parse_and_compare_like_oslo() {
        assert_eq!(v("1"), v("1.0"));
        assert_eq!(v("2.3.1").to_string(), "2.3.1");
        for bad in ["", "x", "1.x", "1.2.3.4", "-1.0", "1..2"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
        assert!(v("1.2").serves(v("1.0")));
        assert!(v("1.2").serves(v("1.2")));
        assert!(!v("1.2").serves(v("1.3")));
        assert!(!v("2.0").serves(v("1.0")));
        assert!(!v("1.9").serves(v("2.0")));
        assert!(v("1.2.3").serves(v("1.2.1")));
        assert!(!v("1.2.0").serves(v("1.2.1")));
        assert!(v("1.3.0").serves(v("1.2.5")));
    }

    fn ep(ns: Option<&str>, version: &str, methods: &[&str]) -> RpcEndpoint {
        let mut e = RpcEndpoint::new().version(version);
        if let Some(ns) = ns {
            e = e.namespace(ns);
        }
        for m in methods {
            let name = (*m).to_owned();
            e = e.method(*m, move |_c, _a: serde_json::Value| {
                let name = name.clone();
                async move { Ok::<_, RemoteError>(name) }
            });
        }
        e
    }

    async fn which(
        d: &Dispatcher,
        ns: Option<&str>,
        version: &str,
        method: &str,
    ) -> Result<String, RemoteError> {
        let m = d.find(ns, version, method)?;
        Ok(m(Default::default(), serde_json::json!({}))
            .await?
            .as_str()
            .unwrap()
            .to_owned())
    }

    #[tokio::test]
    async fn dispatches_by_namespace_version_and_name() {
        let d = Dispatcher::new(vec![
            ep(None, "1.0", &["a"]),
            ep(Some("calc"), "1.2", &["add"]),
            ep(Some("calc"), "2.0", &["add", "mul"]),
        ])
        .unwrap();
        assert_eq!(which(&d, None, "1.0", "a").await.unwrap(), "a");
        assert_eq!(which(&d, Some("calc"), "1.1", "add").await.unwrap(), "add");
        assert_eq!(which(&d, Some("calc"), "2.0", "mul").await.unwrap(), "mul");

        let e = which(&d, Some("calc"), "1.0", "mul").await.unwrap_err();
        assert_eq!(e.type_name(), "NoSuchMethod");
        assert!(e.message().contains("\"mul\""), "{e}");

        let e = which(&d, Some("calc"), "1.3", "add").await.unwrap_err();
        assert_eq!(e.type_name(), "UnsupportedVersion");
        assert!(e.message().contains("offers 1.2, 2.0"), "{e}");

        let e = which(&d, Some("other"), "1.0", "add").await.unwrap_err();
        assert_eq!(e.type_name(), "UnsupportedVersion");
        assert!(
            e.message()
                .contains("no endpoint serves namespace \"other\""),
            "{e}"
        );

        // The default namespace does not see namespaced endpoints.
        let e = which(&d, None, "1.0", "add").await.unwrap_err();
        assert_eq!(e.type_name(), "NoSuchMethod");

        let e = which(&d, None, "one", "a").await.unwrap_err();
        assert_eq!(e.type_name(), "UnsupportedVersion");
        assert!(e.message().contains("malformed"));
    }

    #[tokio::test]
    async fn first_compatible_endpoint_wins() {
        let d =
            Dispatcher::new(vec![ep(None, "1.1", &["x"]), ep(None, "1.5", &["x", "y"])]).unwrap();
        assert!(d.find(None, "1.0", "x").is_ok());
        assert_eq!(which(&d, None, "1.2", "y").await.unwrap(), "y");
        // 1.2 is only served by the second endpoint, which has x as well.
        assert!(d.find(None, "1.2", "x").is_ok());
    }

    #[test]
    fn bad_endpoint_versions_are_refused() {
        let e = Dispatcher::new(vec![RpcEndpoint::new().version("one")]).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    }
}
