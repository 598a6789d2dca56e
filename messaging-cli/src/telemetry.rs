//! `messaging sign`, `messaging verify` and `messaging publish-sample`: Ceilometer
//! message signatures and metering samples from the command line.

use std::io::Read;
use std::time::Duration;

use clap::Args;
use messaging_core::{Error, ErrorKind, Result};
use messaging_telemetry::signing::{compute_signature_json, verify_signature_json, SIGNATURE_KEY};
use messaging_telemetry::{CounterType, PublishPolicy, Sample, TelemetryPublisher, Volume};
use serde_json::{Map, Value};

/// Arguments of `messaging sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The shared secret (Ceilometer's `telemetry_secret`); empty disables signing.
    #[arg(long, env = "MESSAGING_TELEMETRY_SECRET", hide_env_values = true)]
    secret: String,
}

/// Arguments of `messaging verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The shared secret (Ceilometer's `telemetry_secret`).
    #[arg(long, env = "MESSAGING_TELEMETRY_SECRET", hide_env_values = true)]
    secret: String,
}

/// Arguments of `messaging publish-sample`.
#[derive(Debug, Args)]
pub(crate) struct PublishSampleArgs {
    /// Publisher URL: `notifier://HOST:9092?driver=kafka&topic=metering`,
    /// `kafka://HOST:9092?topic=metering` or `memory://?topic=metering`.
    #[arg(long, env = "MESSAGING_PUBLISHER_URL")]
    url: String,
    /// Meter name (`counter_name`), e.g. cpu.
    #[arg(long)]
    name: String,
    /// Meter type: gauge, delta or cumulative.
    #[arg(long = "type")]
    counter_type: CounterType,
    /// Unit (`counter_unit`), e.g. ns, B, instance.
    #[arg(long)]
    unit: String,
    /// Volume, a JSON number (`12`, `1.5`).
    #[arg(long, allow_hyphen_values = true)]
    volume: Volume,
    /// Resource id.
    #[arg(long)]
    resource_id: String,
    /// User id.
    #[arg(long)]
    user_id: Option<String>,
    /// Project id.
    #[arg(long)]
    project_id: Option<String>,
    /// Resource metadata, a JSON object.
    #[arg(long)]
    metadata: Option<String>,
    /// Source (default openstack).
    #[arg(long, default_value = messaging_telemetry::sample::DEFAULT_SOURCE)]
    source: String,
    /// Timestamp text (default: now, UTC ISO 8601).
    #[arg(long)]
    timestamp: Option<String>,
    /// The shared secret samples are signed with (empty: unsigned).
    #[arg(
        long,
        env = "MESSAGING_TELEMETRY_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    secret: String,
    /// Failure policy: default, queue or drop (overrides the URL's).
    #[arg(long)]
    policy: Option<PublishPolicy>,
    /// Retries under the default policy (overrides the URL's).
    #[arg(long)]
    max_retry: Option<u32>,
    /// Host name in the publisher id `telemetry.publisher.<host>` (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Seconds to wait for the transport to flush on exit.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

/// Read a JSON object from stdin: its exact text (numbers as written) and its value.
fn read_object() -> Result<(String, Map<String, Value>)> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, "cannot read stdin").with_source(e))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok((text, map)),
        Ok(_) => Err(invalid("stdin is JSON but not a JSON object")),
        Err(e) => Err(invalid("stdin is not valid JSON").with_source(e)),
    }
}

fn signing_error(e: messaging_telemetry::signing::SigningError) -> Error {
    Error::new(ErrorKind::InvalidArgument, "cannot sign stdin").with_source(e)
}

/// `messaging sign`: print the object from stdin with `message_signature` set.
pub(crate) async fn run_sign(a: SignArgs) -> Result<()> {
    let (text, mut map) = read_object()?;
    // The signature is computed on the text as written, so every number counts as
    // Python reads it (see messaging_telemetry::signing).
    let signature = compute_signature_json(&text, &a.secret).map_err(signing_error)?;
    if a.secret.is_empty() {
        eprintln!("warning: empty secret: signing is disabled (message_signature is empty)");
    }
    map.insert(SIGNATURE_KEY.to_owned(), Value::String(signature));
    println!("{}", serde_json::to_string(&Value::Object(map))?);
    Ok(())
}

/// `messaging verify`: exit 0 only if the object on stdin has a valid signature.
pub(crate) async fn run_verify(a: VerifyArgs) -> Result<()> {
    let (text, map) = read_object()?;
    if a.secret.is_empty() {
        eprintln!("warning: empty secret: signing is disabled, so every message verifies");
    }
    let valid = verify_signature_json(&text, &a.secret).map_err(signing_error)?;
    if valid {
        eprintln!("ok: the signature is valid");
        return Ok(());
    }
    let why = match map.get(SIGNATURE_KEY) {
        None => format!("the message has no {SIGNATURE_KEY}"),
        Some(Value::String(s)) if s.is_empty() => format!("the message's {SIGNATURE_KEY} is empty"),
        Some(Value::String(_)) => format!(
            "the {SIGNATURE_KEY} does not match: the secret is wrong or the message was altered"
        ),
        Some(_) => format!("the {SIGNATURE_KEY} is not a string"),
    };
    Err(invalid(format!("signature verification failed: {why}")))
}

/// `messaging publish-sample`: publish one signed sample through the telemetry publisher.
pub(crate) async fn run_publish_sample(a: PublishSampleArgs) -> Result<()> {
    let metadata = match a.metadata.as_deref() {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(invalid("--metadata must be a JSON object")),
            Err(e) => return Err(invalid("--metadata is not valid JSON").with_source(e)),
        },
    };
    let mut builder = Sample::builder(a.name, a.counter_type, a.unit, a.volume, a.resource_id)
        .source(a.source)
        .resource_metadata(metadata);
    if let Some(u) = a.user_id {
        builder = builder.user_id(u);
    }
    if let Some(p) = a.project_id {
        builder = builder.project_id(p);
    }
    if let Some(t) = a.timestamp {
        builder = builder.timestamp(Some(t));
    }
    let sample = builder.build();

    let mut publisher = TelemetryPublisher::builder(a.url).secret(a.secret.clone());
    if let Some(p) = a.policy {
        publisher = publisher.policy(p);
    }
    if let Some(n) = a.max_retry {
        publisher = publisher.max_retry(n);
    }
    if let Some(h) = a.host {
        publisher = publisher.host(h);
    }
    let publisher = publisher.build()?;
    let timeout = Duration::from_secs_f64(a.timeout.max(0.0));
    let published = publisher.publish(std::slice::from_ref(&sample)).await;
    let closed = publisher.close(timeout).await;
    let report = published?;
    let closed = closed?;
    if report.sent_samples == 0 || closed.abandoned_batches > 0 {
        let what = if report.dropped_samples > 0 {
            "dropped (policy drop)"
        } else {
            "queued, and the queue ends with this process (policy queue)"
        };
        return Err(Error::new(
            ErrorKind::DeliveryFailed,
            format!("the sample was not delivered: {what}"),
        ));
    }
    let mut signed = sample;
    signed.sign(&a.secret);
    println!("{}", serde_json::to_string(&signed)?);
    let url = publisher.url();
    eprintln!(
        "published 1 sample as {} to {} (topic {})",
        publisher.publisher_id(),
        url.transport_url(),
        url.topics().join(", ")
    );
    Ok(())
}
