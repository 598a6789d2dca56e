//! Driver option parsing: the core's value parsers and `OptionSpec` validation on
//! any text, then a URL built from the input (`<scheme>://<rest of the input>`,
//! the first byte picking the scheme) read through each driver's configuration
//! code, the way opening the driver reads it, without connecting to anything.
//! Nothing panics, and a value `validate` accepts is one the typed getters read.
#![no_main]

use driver_kafka::options::{PASSTHROUGH_PREFIX, SPECS as KAFKA_SPECS};
use driver_kafka::{ClientRole, KafkaConfig};
use libfuzzer_sys::fuzz_target;
use messaging_core::options::{parse_bool, parse_seconds};
use messaging_core::{
    DriverFactory, DriverOptions, OptionKind, OptionSpec, StartPosition, TransportHost,
    TransportUrl,
};

const SCHEMES: &[&str] = &[
    "kafka",
    "kafka+ssl",
    "kafka+sasl",
    "kafka+sasl+ssl",
    "kafka+mock",
    "rabbit",
    "rabbit+ssl",
    "amqp",
    "memory",
];

const KINDS: &[OptionSpec] = &[
    OptionSpec::new("b", OptionKind::Bool, None, ""),
    OptionSpec::new(
        "i",
        OptionKind::Int {
            min: -5,
            max: 1 << 40,
        },
        None,
        "",
    ),
    OptionSpec::new("s", OptionKind::Seconds, None, ""),
    OptionSpec::new("t", OptionKind::Text, None, ""),
    OptionSpec::new("c", OptionKind::Choice(&["all", "1", "0"]), None, ""),
];

/// The value parsers and every kind of spec on one value.
fn values(text: &str) {
    let _ = parse_bool(text);
    let _ = parse_seconds(text);
    for spec in KINDS {
        let valid = spec.validate(text).is_ok();
        let layer = [(spec.name.to_owned(), text.to_owned())];
        let resolved = DriverOptions::resolve(KINDS, &["x."], [layer.as_slice()]);
        assert_eq!(
            valid,
            resolved.is_ok(),
            "validate and resolve disagree on {text:?}"
        );
        if let Ok(o) = resolved {
            match spec.kind {
                OptionKind::Bool => assert!(o.bool("b").is_some(), "bool {text:?}"),
                OptionKind::Int { .. } => assert!(o.int("i").is_some(), "int {text:?}"),
                OptionKind::Seconds => assert!(o.seconds("s").is_some(), "seconds {text:?}"),
                _ => assert!(o.get(spec.name).is_some()),
            }
        }
    }
}

fn kafka(url: &TransportUrl) {
    let query = url.query_map();
    let Ok(options) =
        DriverOptions::resolve(KAFKA_SPECS, &[PASSTHROUGH_PREFIX], [query.as_slice()])
    else {
        return;
    };
    let Ok(config) = KafkaConfig::from_url(url, &options) else {
        return;
    };
    let _ = format!("{config:?}");
    for role in [
        ClientRole::Producer,
        ClientRole::Consumer {
            group: "pool".into(),
            start: StartPosition::Default,
        },
        ClientRole::Admin,
    ] {
        let _ = config.client_config(&role);
    }
    let _ = driver_kafka::client_config(url, &[], &ClientRole::Producer);
}

fn memory(url: &TransportUrl) {
    let factory = driver_memory::MemoryDriverFactory;
    let query = url.query_map();
    let Ok(options) = DriverOptions::resolve(factory.option_specs(), &[], [query.as_slice()])
    else {
        return;
    };
    // One broker instance for every input (instances live as long as the process).
    let mut fixed = TransportUrl::new("memory").with_host(TransportHost::new("fuzz", None));
    for (k, v) in url.query_pairs() {
        fixed = fixed.with_query(k.clone(), v.clone());
    }
    let _ = factory.open(&fixed, options);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    values(text);
    let scheme = SCHEMES[pick as usize % SCHEMES.len()];
    let Ok(url) = TransportUrl::parse(&format!("{scheme}://{text}")) else {
        return;
    };
    for (_, value) in url.query_pairs() {
        values(value);
    }
    match url.driver() {
        "kafka" => kafka(&url),
        "rabbit" | "amqp" => {
            let _ = driver_rabbit::__private::parse_config(&url, &[]);
        }
        _ => memory(&url),
    }
});
