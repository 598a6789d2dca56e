//! librdkafka's embedded mock cluster, for running the driver with no broker installed.
//!
//! A `kafka+mock://` URL makes the driver start a [`MockKafka`] and keep it alive as
//! long as the driver (and every consumer it created) lives. Tests can also start one
//! themselves and inject faults: brokers going down and up, protocol errors on chosen
//! requests.
//!
//! The mock cluster handle of rust-rdkafka cannot move between threads, so a
//! dedicated thread owns it and runs the operations asked through [`MockKafka`]'s
//! methods. The mock's consumer side is slow (a first group join takes ~3 s): use it
//! for faults, not for volume.

use std::fmt;
use std::sync::mpsc;
use std::thread;

use messaging_core::{Error, ErrorKind, Result};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub use rdkafka::types::{RDKafkaApiKey as ApiKey, RDKafkaRespErr as RespErr};

type Cluster = MockCluster<'static, DefaultProducerContext>;
type Operation = Box<dyn FnOnce(&Cluster) + Send>;

/// A running mock Kafka cluster. Dropping the last handle stops it.
pub struct MockKafka {
    ops: mpsc::Sender<Operation>,
    bootstrap: String,
    brokers: i32,
}

impl fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockKafka")
            .field("bootstrap", &self.bootstrap)
            .field("brokers", &self.brokers)
            .finish()
    }
}

fn mock_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Transport, format!("mock cluster: {what}: {e}"))
}

impl MockKafka {
    /// Start a mock cluster of `brokers` brokers (ids 1..=brokers) on loopback.
    pub fn start(brokers: i32) -> Result<Self> {
        let (ops_tx, ops_rx) = mpsc::channel::<Operation>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        thread::Builder::new()
            .name("kafka-mock-cluster".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(mock_error("start", e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until every handle is dropped; then the cluster is destroyed.
                while let Ok(op) = ops_rx.recv() {
                    op(&cluster);
                }
                tracing::debug!("mock Kafka cluster stopped");
            })
            .map_err(|e| mock_error("spawn thread", e))?;
        let bootstrap = ready_rx.recv().map_err(|e| mock_error("start", e))??;
        tracing::info!(%bootstrap, brokers, "mock Kafka cluster started");
        Ok(MockKafka {
            ops: ops_tx,
            bootstrap,
            brokers,
        })
    }

    /// The cluster's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// How many brokers the cluster has.
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    fn run<R: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&Cluster) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::channel();
        self.ops
            .send(Box::new(move |c| {
                let _ = tx.send(op(c));
            }))
            .map_err(|_| mock_error(what, "the cluster thread ended"))?;
        rx.recv()
            .map_err(|_| mock_error(what, "the cluster thread ended"))
    }

    /// Create a topic (the mock has no admin API). Creating an existing topic succeeds.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let name = topic.to_owned();
        self.run("create topic", move |c| {
            c.create_topic(&name, partitions, 1)
        })?
        .or_else(|e| match e.rdkafka_error_code() {
            Some(rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists) => Ok(()),
            _ => Err(mock_error("create topic", e)),
        })
    }

    /// Disconnect a broker and refuse new connections (`-1`: every broker).
    pub fn broker_down(&self, broker: i32) -> Result<()> {
        self.run("broker down", move |c| c.broker_down(broker))?
            .map_err(|e| mock_error("broker down", e))
    }

    /// Let a broker accept connections again (`-1`: every broker).
    pub fn broker_up(&self, broker: i32) -> Result<()> {
        self.run("broker up", move |c| c.broker_up(broker))?
            .map_err(|e| mock_error("broker up", e))
    }

    /// Make the next requests of this kind fail with these errors, one error per request.
    ///
    /// [`RespErr::RD_KAFKA_RESP_ERR__TRANSPORT`] makes the broker drop the connection.
    pub fn request_errors(&self, api: ApiKey, errors: &[RespErr]) -> Result<()> {
        let errors = errors.to_vec();
        self.run("request errors", move |c| c.request_errors(api, &errors))
    }

    /// Forget the errors still queued for this kind of request.
    pub fn clear_request_errors(&self, api: ApiKey) -> Result<()> {
        self.run("clear request errors", move |c| c.clear_request_errors(api))
    }
}
