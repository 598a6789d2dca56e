//! Runnable example programs of the notification bus, one file each in `examples/`:
//!
//! ```sh
//! cargo run -p examples --example notifier_listener            # memory://
//! cargo run -p examples --example notifier_listener -- kafka://127.0.0.1:9092?create_topics=true
//! cargo run -p examples --example batch_listener
//! cargo run -p examples --example rpc_server_client
//! cargo run -p examples --example config_file                  # examples/config/memory.toml
//! cargo run -p examples --example config_file -- examples/config/kafka.toml
//! cargo run -p examples --example openstack_service            # examples/config/openstack-memory.toml
//! cargo run -p examples --example openstack_service -- examples/config/openstack.toml
//! ```
//!
//! Each runs to completion on `memory://` by default. This library holds what they
//! share: [`wait_for`], the bounded wait on a condition, and [`load_config`].

use std::time::Duration;

use tokio::sync::mpsc;

/// How long an example waits for what it sent before it gives up.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Receive `n` items from `rx`, failing with `Timeout` if they do not all arrive
/// within [`DEADLINE`].
pub async fn wait_for<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    n: usize,
) -> messaging_core::Result<Vec<T>> {
    let collect = async {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match rx.recv().await {
                Some(item) => got.push(item),
                None => break,
            }
        }
        got
    };
    let missing = |count: usize| {
        messaging_core::Error::new(
            messaging_core::ErrorKind::Timeout,
            format!("{count} of {n} arrived within {DEADLINE:?}"),
        )
    };
    match tokio::time::timeout(DEADLINE, collect).await {
        Ok(got) if got.len() == n => Ok(got),
        Ok(got) => Err(missing(got.len())),
        Err(_) => Err(missing(0)),
    }
}

/// Read a [`messaging_core::MessagingConfig`] from a TOML file.
pub fn load_config(
    path: &std::path::Path,
) -> messaging_core::Result<messaging_core::MessagingConfig> {
    use messaging_core::{Error, ErrorKind};
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot read {}", path.display()),
        )
        .with_source(e)
    })?;
    toml::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("bad configuration {}", path.display()),
        )
        .with_source(e)
    })
}

/// Register the drivers the examples can use (`memory://`, `kafka://`, `rabbit://`).
pub fn register_drivers() {
    driver_memory::register();
    driver_kafka::register();
    driver_rabbit::register();
}
