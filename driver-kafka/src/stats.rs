//! librdkafka's statistics and error events turned into metrics, the driver's
//! connection health and a subscription's lag.
//!
//! Every client (producer, consumer) emits its statistics every
//! `statistics_interval` ([`crate::options::names::STATISTICS_INTERVAL`], librdkafka's
//! `statistics.interval.ms`); each emission sets the gauges below (registered per
//! emission, never per record) and tells whether some broker is up. librdkafka's
//! error callback reports all brokers down at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use messaging_core::observability::metrics::{self as m, Label, Labels};
use messaging_core::observability::{ConnectionState, ConnectionTracker, ErrorReport};
use messaging_core::ErrorKind;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

/// The driver's view of its clients: one connection state for all of them.
#[derive(Debug, Clone)]
pub(crate) struct KafkaHealth {
    connection: ConnectionTracker,
}

impl KafkaHealth {
    /// Nothing connected yet (the clients are created on first use): unknown.
    pub(crate) fn new() -> Self {
        KafkaHealth {
            connection: ConnectionTracker::new(ConnectionState::Unknown),
        }
    }

    /// What [`messaging_core::Driver::health`] reports.
    pub(crate) fn tracker(&self) -> &ConnectionTracker {
        &self.connection
    }

    /// The observer of one client.
    pub(crate) fn client(&self, role: &'static str, group: Option<&str>) -> Arc<ClientStats> {
        let mut labels = vec![
            Label::new(m::ATTR_SYSTEM, "kafka"),
            Label::new(m::ATTR_KAFKA_CLIENT, role),
        ];
        if let Some(group) = group {
            labels.push(Label::new(m::ATTR_CONSUMER_GROUP, group.to_owned()));
        }
        Arc::new(ClientStats {
            connection: self.connection.clone(),
            labels,
            group: group.map(str::to_owned),
            lag: Mutex::new(HashMap::new()),
        })
    }
}

/// One client's statistics sink (its librdkafka context holds it).
#[derive(Debug)]
pub(crate) struct ClientStats {
    connection: ConnectionTracker,
    labels: Labels,
    group: Option<String>,
    /// The consumer lag of each assigned partition, from the last statistics.
    lag: Mutex<HashMap<(String, i32), u64>>,
}

impl ClientStats {
    /// librdkafka's error callback.
    pub(crate) fn on_error(&self, error: &KafkaError, reason: &str) {
        let report = ErrorReport::new(ErrorKind::Transport, format!("{error}: {reason}"));
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.connection.disconnected(report);
            }
            Some(RDKafkaErrorCode::Authentication) => {
                let refused = ErrorReport::new(ErrorKind::Authentication, report.message);
                self.connection.disconnected(refused);
            }
            _ => self.connection.error(report),
        }
    }

    /// librdkafka's statistics callback.
    pub(crate) fn on_stats(&self, stats: &Statistics) {
        self.client_gauges(stats);
        let mut up = false;
        let mut known = false;
        for broker in stats.brokers.values() {
            // Bootstrap entries (node id -1) are not cluster members.
            if broker.nodeid < 0 {
                continue;
            }
            known = true;
            up |= broker.state == "UP";
            self.broker_gauges(broker);
        }
        if up {
            self.connection.connected();
        } else if known {
            let report = ErrorReport::new(ErrorKind::Transport, "no Kafka broker is up");
            self.connection.disconnected(report);
        }
        if self.group.is_some() {
            self.consumer_lag(stats);
        }
    }

    fn client_gauges(&self, stats: &Statistics) {
        let l = &self.labels;
        m::gauge(m::KAFKA_QUEUE_MESSAGES, l).set(stats.msg_cnt as f64);
        m::gauge(m::KAFKA_QUEUE_BYTES, l).set(stats.msg_size as f64);
        m::counter(m::KAFKA_TX_MESSAGES, l).absolute(stats.txmsgs.max(0) as u64);
        m::counter(m::KAFKA_RX_MESSAGES, l).absolute(stats.rxmsgs.max(0) as u64);
    }

    fn broker_gauges(&self, broker: &rdkafka::statistics::Broker) {
        let mut l = self.labels.clone();
        l.push(Label::new(m::ATTR_SERVER, broker.nodename.clone()));
        if let Some(rtt) = &broker.rtt {
            // librdkafka reports microseconds.
            m::gauge(m::KAFKA_BROKER_RTT, &l).set(rtt.avg as f64 / 1e6);
        }
        m::gauge(m::KAFKA_BROKER_OUTBUF, &l).set(broker.outbuf_cnt as f64);
        m::gauge(m::KAFKA_BROKER_WAITRESP, &l).set(broker.waitresp_cnt as f64);
    }

    /// The lag gauge of every partition this consumer fetches, kept for [`Self::lag`].
    fn consumer_lag(&self, stats: &Statistics) {
        let mut now = HashMap::new();
        for topic in stats.topics.values() {
            for p in topic.partitions.values() {
                // -1: the internal "unassigned" partition; not fetched: not ours.
                if p.partition < 0 || p.fetch_state == "none" {
                    continue;
                }
                let Some(lag) = partition_lag(p) else {
                    continue;
                };
                let mut l = self.labels.clone();
                l.push(Label::new(m::ATTR_DESTINATION, topic.topic.clone()));
                l.push(Label::new(m::ATTR_PARTITION, p.partition.to_string()));
                m::gauge(m::CONSUMER_LAG, &l).set(lag as f64);
                now.insert((topic.topic.clone(), p.partition), lag);
            }
        }
        *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// The consumer lag summed over the partitions of the last statistics (`None`
    /// before the first statistics with an assignment).
    pub(crate) fn lag(&self) -> Option<u64> {
        let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        (!lag.is_empty()).then(|| lag.values().sum())
    }
}

/// The records of a partition not handled yet: from the last offset the driver
/// stored or committed (the driver stores an offset only once its record was
/// handled) to the partition's end. librdkafka's own `consumer_lag` counts from the
/// records it already handed over, which this driver buffers ahead of the handlers,
/// so it is the fallback only while the group has no position (`None`: unknown).
fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<u64> {
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    let base = p.stored_offset.max(p.committed_offset);
    if base >= 0 && end >= 0 {
        Some(end.saturating_sub(base).max(0) as u64)
    } else if p.consumer_lag >= 0 {
        Some(p.consumer_lag as u64)
    } else {
        None
    }
}
