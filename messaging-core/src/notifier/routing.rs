//! The routing sink: sends each notification to the sinks whose rules match its
//! event type and priority (oslo's `routing` notifier driver).
//!
//! The rules file (YAML, or TOML by its `.toml` extension) has oslo's shape: groups
//! of sink names, each with optional `accepted_events` (glob patterns such as
//! `compute.instance.*`) and `accepted_priorities`:
//!
//! ```yaml
//! audit_trail:
//!   messaging:
//!     accepted_events: ["identity.*", "compute.instance.delete.*"]
//!   log:
//!     accepted_priorities: [error, critical]
//! ```
//!
//! A notification goes to a sink when any rule for that sink matches: every
//! criterion a rule gives must match, and a rule with neither matches everything.
//! Each sink gets a notification at most once.
//!
//! Reading rules files needs the crate's `routing-files` feature (on by default;
//! it brings in the YAML and TOML parsers). Without it, rules built in code with
//! [`RoutingRule::new`] work the same, and [`RoutingSink::from_file`] returns an
//! `InvalidArgument` error that names the feature.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use globset::{Glob, GlobSet, GlobSetBuilder};

#[cfg(feature = "routing-files")]
use super::sink_by_name;
use super::sinks::delivered_on;
use super::{NotificationSink, TopicResults};
use crate::error::{Error, ErrorKind, Result};
use crate::notification::OutgoingNotification;
use crate::priority::Priority;
use crate::retry::Retry;
use crate::transport::{DeliveryReceipt, Transport};

/// One routing rule: which notifications a named sink accepts.
#[derive(Debug, Clone)]
pub struct RoutingRule {
    sink: String,
    events: Option<GlobSet>,
    priorities: Option<Vec<Priority>>,
}

impl RoutingRule {
    /// A rule for `sink` with glob patterns on the event type and a set of priorities.
    pub fn new(
        sink: impl Into<String>,
        events: Option<&[String]>,
        priorities: Option<&[String]>,
    ) -> Result<Self> {
        let events = events
            .map(|patterns| {
                let mut b = GlobSetBuilder::new();
                for p in patterns {
                    b.add(Glob::new(p).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidArgument,
                            format!("bad event pattern {p:?}"),
                        )
                        .with_source(e)
                    })?);
                }
                b.build().map_err(|e| {
                    Error::new(ErrorKind::InvalidArgument, "bad event patterns").with_source(e)
                })
            })
            .transpose()?;
        let priorities = priorities
            .map(|ps| {
                ps.iter()
                    .map(|p| p.parse::<Priority>())
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(RoutingRule {
            sink: sink.into(),
            events,
            priorities,
        })
    }

    /// Whether the rule accepts a notification.
    pub fn matches(&self, event_type: &str, priority: Priority) -> bool {
        self.events.as_ref().is_none_or(|g| g.is_match(event_type))
            && self
                .priorities
                .as_ref()
                .is_none_or(|ps| ps.contains(&priority))
    }
}

#[cfg(feature = "routing-files")]
#[derive(Debug, serde::Deserialize)]
struct RuleText {
    accepted_events: Option<Vec<String>>,
    accepted_priorities: Option<Vec<String>>,
}

/// Routes notifications to other sinks by rules.
#[derive(Debug)]
pub struct RoutingSink {
    rules: Vec<RoutingRule>,
    sinks: BTreeMap<String, Arc<dyn NotificationSink>>,
}

impl RoutingSink {
    /// Route with `rules` to the named `sinks`; every rule must name a known sink.
    pub fn new(
        rules: Vec<RoutingRule>,
        sinks: BTreeMap<String, Arc<dyn NotificationSink>>,
    ) -> Result<Self> {
        for r in &rules {
            if !sinks.contains_key(&r.sink) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("routing rule names unknown sink {:?}", r.sink),
                ));
            }
        }
        Ok(RoutingSink { rules, sinks })
    }

    /// Parse rules from YAML (or TOML with `toml = true`) text.
    #[cfg(feature = "routing-files")]
    pub fn parse_rules(text: &str, toml: bool) -> Result<Vec<RoutingRule>> {
        let groups: BTreeMap<String, BTreeMap<String, RuleText>> = if toml {
            ::toml::from_str(text).map_err(|e| {
                Error::new(ErrorKind::InvalidArgument, "bad routing rules (TOML)").with_source(e)
            })?
        } else {
            yaml_serde::from_str(text).map_err(|e| {
                Error::new(ErrorKind::InvalidArgument, "bad routing rules (YAML)").with_source(e)
            })?
        };
        let mut rules = Vec::new();
        for sinks in groups.values() {
            for (sink, rule) in sinks {
                rules.push(RoutingRule::new(
                    sink.clone(),
                    rule.accepted_events.as_deref(),
                    rule.accepted_priorities.as_deref(),
                )?);
            }
        }
        Ok(rules)
    }

    /// Load rules from a file and build the sinks they name by oslo's driver names.
    #[cfg(feature = "routing-files")]
    pub fn from_file(path: &Path, transport: Option<&Transport>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot read routing rules {}", path.display()),
            )
            .with_source(e)
        })?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let rules = Self::parse_rules(&text, is_toml)?;
        let mut sinks = BTreeMap::new();
        for r in &rules {
            if !sinks.contains_key(&r.sink) {
                sinks.insert(r.sink.clone(), sink_by_name(&r.sink, transport)?);
            }
        }
        Self::new(rules, sinks)
    }

    /// Without the `routing-files` feature there is no rules-file parser: this
    /// always fails, naming the feature.
    #[cfg(not(feature = "routing-files"))]
    pub fn from_file(path: &Path, _transport: Option<&Transport>) -> Result<Self> {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "cannot read routing rules {}: messaging-core was built without its \"routing-files\" feature",
                path.display()
            ),
        ))
    }
}

/// A routed sink's results folded into those of the sinks before it: per topic,
/// the receipts merged, or the first refusal.
fn fold_topic_results(acc: Option<TopicResults>, results: TopicResults) -> TopicResults {
    let Some(acc) = acc else { return results };
    acc.into_iter()
        .zip(results)
        .map(|(a, b)| match (a, b) {
            (Ok(a), Ok(b)) => Ok(DeliveryReceipt::merge([a, b])),
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
        .collect()
}

/// A resend after a failure through a routing sink goes to every sink the rules
/// pick for that topic, those that had it included.
#[async_trait]
impl NotificationSink for RoutingSink {
    async fn emit(
        &self,
        n: &OutgoingNotification,
        topics: &[String],
        retry: Retry,
    ) -> TopicResults {
        let mut acc = None;
        for (name, sink) in &self.sinks {
            if self
                .rules
                .iter()
                .any(|r| &r.sink == name && r.matches(&n.event_type, n.priority))
            {
                acc = Some(fold_topic_results(acc, sink.emit(n, topics, retry).await));
            }
        }
        acc.unwrap_or_else(|| delivered_on(topics))
    }
}

#[cfg(all(test, not(feature = "routing-files")))]
mod tests_without_files {
    #[test]
    fn from_file_names_the_missing_feature() {
        let err =
            super::RoutingSink::from_file(std::path::Path::new("rules.yaml"), None).unwrap_err();
        assert_eq!(err.kind(), &super::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("routing-files"), "{err}");
    }
}

#[cfg(all(test, feature = "routing-files"))]
mod tests {
    use super::*;
    use crate::notifier::RecordingSink;
    use crate::{Context, Notifier};

    #[tokio::test]
    async fn routes_by_event_and_priority() {
        let yaml = "g1:\n  audit:\n    accepted_events: ['identity.*']\n  errors:\n    accepted_priorities: [error, critical]\ng2:\n  audit:\n    accepted_events: ['compute.instance.delete.*']\n    accepted_priorities: [info]\n";
        let rules = RoutingSink::parse_rules(yaml, false).unwrap();
        let audit = Arc::new(RecordingSink::new());
        let errors = Arc::new(RecordingSink::new());
        let mut sinks: BTreeMap<String, Arc<dyn NotificationSink>> = BTreeMap::new();
        sinks.insert("audit".into(), audit.clone());
        sinks.insert("errors".into(), errors.clone());
        let router = Arc::new(RoutingSink::new(rules, sinks).unwrap());
        let n = Notifier::builder()
            .publisher_id("p")
            .sink(router)
            .build()
            .unwrap();
        let ctx = Context::new();
        n.info(&ctx, "identity.user.created", &1).await.unwrap();
        n.error(&ctx, "identity.user.deleted", &2).await.unwrap();
        n.info(&ctx, "compute.instance.delete.end", &3)
            .await
            .unwrap();
        n.warn(&ctx, "compute.instance.delete.end", &4)
            .await
            .unwrap();
        n.critical(&ctx, "volume.x", &5).await.unwrap();
        let got = |s: &RecordingSink| {
            s.records()
                .iter()
                .map(|r| r.payload.as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(got(&audit), vec![1, 2, 3]);
        assert_eq!(got(&errors), vec![2, 5]);
    }

    #[test]
    fn toml_rules_and_unknown_sink() {
        let toml = "[g.log]\naccepted_events = [\"a.*\"]\n";
        let rules = RoutingSink::parse_rules(toml, true).unwrap();
        assert!(rules[0].matches("a.b", Priority::Info));
        assert!(!rules[0].matches("b.a", Priority::Info));
        assert!(RoutingSink::new(rules, BTreeMap::new()).is_err());
        assert!(
            RoutingSink::parse_rules("g:\n  log:\n    accepted_priorities: [loud]\n", false)
                .is_err()
        );
    }
}
