//! Declared driver options and their validation.
//!
//! Each driver declares the options it understands as [`OptionSpec`]s. The core
//! validates a URL's query (and configuration values) against them, so every driver
//! rejects unknown keys and bad values the same way, with an error naming the key
//! and what is allowed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// The type of an option's value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionKind {
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// An integer within bounds.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A number of seconds (fractions allowed), at least 0.
    Seconds,
    /// Any string.
    Text,
    /// One of a fixed set of strings (compared case-insensitively).
    Choice(&'static [&'static str]),
}

/// One option a driver understands.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// The option's name, as written in a URL query or config.
    pub name: &'static str,
    /// Its type.
    pub kind: OptionKind,
    /// Its default, as text (`None`: unset).
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

impl OptionSpec {
    /// A spec, for a driver's `static` table of options.
    pub const fn new(
        name: &'static str,
        kind: OptionKind,
        default: Option<&'static str>,
        help: &'static str,
    ) -> OptionSpec {
        OptionSpec {
            name,
            kind,
            default,
            help,
        }
    }

    /// Check a value against this spec.
    pub fn validate(&self, value: &str) -> Result<()> {
        let bad = |allowed: String| {
            Error::invalid_option(
                self.name,
                format!(
                    "bad value {value:?} for option {:?}: expected {allowed}",
                    self.name
                ),
            )
        };
        match &self.kind {
            OptionKind::Bool => parse_bool(value)
                .map(|_| ())
                .ok_or_else(|| bad("true or false".into())),
            OptionKind::Int { min, max } => match value.trim().parse::<i64>() {
                Ok(v) if v >= *min && v <= *max => Ok(()),
                _ => Err(bad(format!("an integer from {min} to {max}"))),
            },
            OptionKind::Seconds => parse_seconds(value)
                .map(|_| ())
                .ok_or_else(|| bad(format!("a number of seconds from 0 to {}", u64::MAX))),
            OptionKind::Text => Ok(()),
            OptionKind::Choice(choices) => {
                if choices.iter().any(|c| c.eq_ignore_ascii_case(value.trim())) {
                    Ok(())
                } else {
                    Err(bad(format!("one of {}", choices.join(", "))))
                }
            }
        }
    }
}

/// Parse a boolean the way configuration files write them.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parse a non-negative number of seconds (`1.5` is 1500 ms); `None` also for a
/// number too large for a [`Duration`] (more than `u64::MAX` seconds).
pub fn parse_seconds(value: &str) -> Option<Duration> {
    let v: f64 = value.trim().parse().ok()?;
    if !(v.is_finite() && v >= 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(v).ok()
}

/// Validated option values: the specs' defaults, overridden by configuration, then by the URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriverOptions {
    values: BTreeMap<String, String>,
    passthrough: BTreeMap<String, String>,
}

impl DriverOptions {
    /// Validate `layers` (lowest precedence first) against `specs`.
    ///
    /// A key that starts with one of `passthrough_prefixes` is kept apart,
    /// unvalidated, for the driver to hand to its client library.
    pub fn resolve<'a>(
        specs: &[OptionSpec],
        passthrough_prefixes: &[&str],
        layers: impl IntoIterator<Item = &'a [(String, String)]>,
    ) -> Result<Self> {
        let mut out = DriverOptions::default();
        for spec in specs {
            if let Some(d) = spec.default {
                out.values.insert(spec.name.to_owned(), d.to_owned());
            }
        }
        for layer in layers {
            for (key, value) in layer {
                if let Some(spec) = specs.iter().find(|s| s.name == key) {
                    spec.validate(value)?;
                    out.values.insert(key.clone(), value.trim().to_owned());
                } else if passthrough_prefixes
                    .iter()
                    .any(|p| key.starts_with(p) && key.len() > p.len())
                {
                    out.passthrough.insert(key.clone(), value.clone());
                } else {
                    let mut allowed: Vec<&str> = specs.iter().map(|s| s.name).collect();
                    allowed.sort_unstable();
                    let prefixes = if passthrough_prefixes.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", or a key starting with {}",
                            passthrough_prefixes.join(" or ")
                        )
                    };
                    return Err(Error::invalid_option(
                        key,
                        format!(
                            "unknown option {key:?}; known options: {}{prefixes}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The raw text of an option.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// An option as a boolean (validated earlier, so a bad value reads as `None`).
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(parse_bool)
    }

    /// An option as an integer.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.parse().ok())
    }

    /// An option as a duration in seconds.
    pub fn seconds(&self, name: &str) -> Option<Duration> {
        self.get(name).and_then(parse_seconds)
    }

    /// The passthrough options (prefix included in the key).
    pub fn passthrough(&self) -> &BTreeMap<String, String> {
        &self.passthrough
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            name: "size",
            kind: OptionKind::Int { min: 1, max: 10 },
            default: Some("5"),
            help: "",
        },
        OptionSpec {
            name: "codec",
            kind: OptionKind::Choice(&["none", "gzip"]),
            default: None,
            help: "",
        },
        OptionSpec {
            name: "wait",
            kind: OptionKind::Seconds,
            default: Some("1.0"),
            help: "",
        },
    ];

    #[test]
    fn layers_override_and_validate() {
        let config = vec![("size".to_owned(), "7".to_owned())];
        let url = vec![
            ("size".to_owned(), "9".to_owned()),
            ("lib.x".to_owned(), "y".to_owned()),
        ];
        let o =
            DriverOptions::resolve(SPECS, &["lib."], [config.as_slice(), url.as_slice()]).unwrap();
        assert_eq!(o.int("size"), Some(9));
        assert_eq!(o.seconds("wait"), Some(Duration::from_secs(1)));
        assert_eq!(o.passthrough().get("lib.x").map(String::as_str), Some("y"));
    }

    #[test]
    fn unknown_and_bad_values_name_the_key() {
        let bad = vec![("colour".to_owned(), "red".to_owned())];
        let e = DriverOptions::resolve(SPECS, &[], [bad.as_slice()]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "colour".into()
            }
        );
        assert!(e.to_string().contains("codec, size, wait"));
        let bad = vec![("codec".to_owned(), "lzma".to_owned())];
        let e = DriverOptions::resolve(SPECS, &[], [bad.as_slice()]).unwrap_err();
        assert!(e.to_string().contains("one of none, gzip"), "{e}");
        let bad = vec![("size".to_owned(), "11".to_owned())];
        assert!(DriverOptions::resolve(SPECS, &[], [bad.as_slice()]).is_err());
    }

    /// Regression: `Duration::from_secs_f64` panicked on seconds beyond `u64::MAX`
    /// (`?connection_timeout=1e300` in a URL took down the process opening it).
    #[test]
    fn seconds_beyond_a_duration_are_refused_not_a_panic() {
        for text in ["1e300", "18446744073709551616", "1.8446744073709552e19"] {
            assert_eq!(parse_seconds(text), None, "{text}");
            let bad = vec![("wait".to_owned(), text.to_owned())];
            let e = DriverOptions::resolve(SPECS, &[], [bad.as_slice()]).unwrap_err();
            assert!(
                e.to_string().contains("a number of seconds from 0 to"),
                "{e}"
            );
        }
        assert_eq!(
            parse_seconds("18446744073709549568"),
            Some(Duration::from_secs(18446744073709549568))
        );
        assert_eq!(parse_seconds(" -0.0 "), Some(Duration::ZERO));
        assert_eq!(parse_seconds("inf"), None);
        assert_eq!(parse_seconds("NaN"), None);
    }
}
