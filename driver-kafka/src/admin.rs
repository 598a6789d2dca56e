//! Topic creation (`create_topics=true`, and always on the embedded mock cluster).
//!
//! Kafka brokers may refuse to auto-create topics (Tansu never does): a producer to
//! a missing topic then waits until `delivery_timeout`, and a consumer sees
//! UNKNOWN_TOPIC_OR_PART. With `create_topics=true` the driver creates the topics a
//! listener subscribes to before it joins, and the topic of each send before the
//! first record goes to it. A topic that already exists is fine. When the broker
//! refuses the credentials, the creation fails at once with
//! [`ErrorKind::Authentication`] (not after the request timeout): see
//! [`TopicAdmin::ensure_unless_refused`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{Error, ErrorKind, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::errors;
use crate::logging::{AuthWatch, LogContext};
use crate::mock::MockKafka;

/// How long one CreateTopics request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Who creates the topics: the mock cluster, an admin client of the brokers, or no one.
/// (Not the core's `Target`, which names a topic to send to or listen on.)
enum Creator {
    Mock(Arc<MockKafka>),
    Brokers {
        config: ClientConfig,
        /// Created on first use; dropped when the broker refuses its credentials.
        client: Mutex<Option<Arc<AdminClient<LogContext>>>>,
    },
    Disabled,
}

impl std::fmt::Debug for Creator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Creator::Mock(mock) => f.debug_tuple("Mock").field(mock).finish(),
            Creator::Brokers { config, client } => f
                .debug_struct("Brokers")
                .field("config", &crate::config::redacted(config))
                .field(
                    "client",
                    &client.lock().unwrap_or_else(|e| e.into_inner()).is_some(),
                )
                .finish(),
            Creator::Disabled => f.write_str("Disabled"),
        }
    }
}

/// Creates topics once per driver; remembers which ones exist.
#[derive(Debug)]
pub(crate) struct TopicAdmin {
    creator: Creator,
    partitions: i32,
    replication_factor: i32,
    known: Mutex<HashSet<String, foldhash::fast::RandomState>>,
    create: tokio::sync::Mutex<()>,
}

impl TopicAdmin {
    /// Creates topics on the mock cluster directly (it has no admin API).
    pub(crate) fn mock(mock: Arc<MockKafka>, partitions: i32) -> Self {
        Self::new(Creator::Mock(mock), partitions, 1)
    }

    /// Creates topics through the admin API of the brokers.
    pub(crate) fn brokers(config: ClientConfig, partitions: i32, replication_factor: i32) -> Self {
        Self::new(
            Creator::Brokers {
                config,
                client: Mutex::new(None),
            },
            partitions,
            replication_factor,
        )
    }

    /// Creates nothing (`create_topics=false`).
    pub(crate) fn disabled() -> Self {
        Self::new(Creator::Disabled, 1, 1)
    }

    fn new(creator: Creator, partitions: i32, replication_factor: i32) -> Self {
        TopicAdmin {
            creator,
            partitions,
            replication_factor,
            known: Mutex::default(),
            create: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether this admin creates topics at all.
    pub(crate) fn enabled(&self) -> bool {
        !matches!(self.creator, Creator::Disabled)
    }

    /// Whether every one of `topics` is known to exist (no list built: this runs on
    /// every send).
    fn all_known<S: AsRef<str>>(&self, topics: &[S]) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        topics.iter().all(|t| known.contains(t.as_ref()))
    }

    fn missing<S: AsRef<str>>(&self, topics: &[S]) -> Vec<String> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = topics
            .iter()
            .map(AsRef::as_ref)
            .filter(|t| !known.contains(*t))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn remember(&self, topic: String) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic);
    }

    /// [`TopicAdmin::ensure`], abandoned with [`ErrorKind::Authentication`] as soon as
    /// `refused` (the producer's watch: it uses the same credentials) reports that the
    /// broker refused them. rust-rdkafka never serves the admin client's own error
    /// events, so without this a refused admin request would wait for its timeout.
    /// The admin client is then discarded (it would go on reconnecting); the next call
    /// creates a fresh one.
    pub(crate) async fn ensure_unless_refused<S: AsRef<str> + Sync>(
        &self,
        topics: &[S],
        auth: &AuthWatch,
    ) -> Result<()> {
        if !self.enabled() || self.all_known(topics) {
            return Ok(());
        }
        // Subscribed only when something is to be created: not on every send.
        let mut refused = auth.subscribe();
        tokio::select! {
            biased;
            outcome = self.ensure(topics) => outcome,
            Some(refusal) = refused.refused() => {
                self.discard_client();
                Err(refusal)
            }
        }
    }

    /// Drop the admin client (off the async runtime: its drop joins a thread).
    fn discard_client(&self) {
        let Creator::Brokers { client, .. } = &self.creator else {
            return;
        };
        let Some(admin) = client.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let drop_it = move || drop(admin);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(drop_it)),
            Err(_) => drop_it(),
        }
    }

    /// Make sure `topics` exist (creating the missing ones); a no-op when disabled.
    pub(crate) async fn ensure<S: AsRef<str> + Sync>(&self, topics: &[S]) -> Result<()> {
        if !self.enabled() || self.all_known(topics) {
            return Ok(());
        }
        // One creation at a time: concurrent first sends to a topic create it once.
        let _guard = self.create.lock().await;
        let missing = self.missing(topics);
        if missing.is_empty() {
            return Ok(());
        }
        match &self.creator {
            Creator::Disabled => Ok(()),
            Creator::Mock(mock) => {
                for topic in missing {
                    mock.create_topic(&topic, self.partitions)?;
                    self.remember(topic);
                }
                Ok(())
            }
            Creator::Brokers { config, client } => {
                let admin = {
                    let mut slot = client.lock().unwrap_or_else(|e| e.into_inner());
                    match &*slot {
                        Some(a) => a.clone(),
                        None => {
                            let created = Arc::new(
                                config
                                    .create_with_context::<_, AdminClient<LogContext>>(
                                        LogContext::new("admin"),
                                    )
                                    .map_err(|e| {
                                        errors::transport(
                                            "could not create the Kafka admin client",
                                            e,
                                        )
                                    })?,
                            );
                            *slot = Some(created.clone());
                            created
                        }
                    }
                };
                self.create_on_brokers(&admin, missing).await
            }
        }
    }

    async fn create_on_brokers(
        &self,
        admin: &AdminClient<LogContext>,
        missing: Vec<String>,
    ) -> Result<()> {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| errors::transport(format!("could not create topics {missing:?}"), e))?;
        let mut failure = None;
        for result in results {
            match result {
                Ok(topic) => {
                    tracing::info!(topic, partitions = self.partitions, "created a Kafka topic");
                    self.remember(topic);
                }
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => self.remember(topic),
                Err((topic, code)) => {
                    tracing::warn!(topic, error = %code, "could not create a Kafka topic");
                    failure.get_or_insert_with(|| {
                        let retryable = !matches!(
                            code,
                            RDKafkaErrorCode::InvalidTopic
                                | RDKafkaErrorCode::InvalidPartitions
                                | RDKafkaErrorCode::InvalidReplicationFactor
                                | RDKafkaErrorCode::TopicAuthorizationFailed
                                | RDKafkaErrorCode::ClusterAuthorizationFailed
                                | RDKafkaErrorCode::PolicyViolation
                        );
                        Error::new(
                            ErrorKind::Transport,
                            format!("could not create the Kafka topic {topic:?}: {code}"),
                        )
                        .with_retryable(retryable)
                    });
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}
