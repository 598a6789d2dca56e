//! The driver registry and option validation through it.

use std::sync::Arc;

use messaging_core::{
    Driver, DriverFactory, DriverOptions, DriverRegistry, ErrorKind, OptionKind, OptionSpec,
    Result, TransportUrl,
};

#[derive(Debug)]
struct Fake;

const OPTS: &[OptionSpec] = &[OptionSpec {
    name: "size",
    kind: OptionKind::Int { min: 1, max: 9 },
    default: Some("3"),
    help: "",
}];

impl DriverFactory for Fake {
    fn scheme(&self) -> &'static str {
        "fake"
    }
    fn option_specs(&self) -> &'static [OptionSpec] {
        OPTS
    }
    fn open(&self, _url: &TransportUrl, options: DriverOptions) -> Result<Arc<dyn Driver>> {
        Err(messaging_core::Error::new(
            ErrorKind::Internal,
            format!("opened with size={}", options.int("size").unwrap()),
        ))
    }
}

#[test]
fn unknown_scheme_lists_registered_ones() {
    let r = DriverRegistry::new();
    r.register(Arc::new(Fake));
    let err = r
        .open(&TransportUrl::parse("rabbit://h").unwrap(), &[])
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::UnknownDriver {
            scheme: "rabbit".into(),
            known: vec!["fake".into()]
        }
    );
    assert!(err.to_string().contains("fake"));
}

#[test]
fn suffix_is_stripped_and_url_overrides_config() {
    let r = DriverRegistry::new();
    r.register(Arc::new(Fake));
    let config = vec![("size".to_owned(), "5".to_owned())];
    let err = r
        .open(
            &TransportUrl::parse("fake+tls://h?size=7").unwrap(),
            &config,
        )
        .unwrap_err();
    assert!(err.to_string().contains("size=7"), "{err}");
    let err = r
        .open(&TransportUrl::parse("fake://h").unwrap(), &config)
        .unwrap_err();
    assert!(err.to_string().contains("size=5"), "{err}");
    let err = r
        .open(&TransportUrl::parse("fake://h?colour=red").unwrap(), &[])
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InvalidOption {
            key: "colour".into()
        }
    );
    let err = r
        .open(&TransportUrl::parse("fake://h?size=10").unwrap(), &[])
        .unwrap_err();
    assert!(err.to_string().contains("from 1 to 9"), "{err}");
}
