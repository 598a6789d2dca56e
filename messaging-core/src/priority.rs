//! Notification priorities.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// The priority of a notification, as oslo.messaging defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// `audit`
    Audit,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn` (alias `warning`)
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `sample` (metering samples)
    Sample,
}

impl Priority {
    /// Every priority, in oslo's order.
    pub const ALL: [Priority; 7] = [
        Priority::Audit,
        Priority::Debug,
        Priority::Info,
        Priority::Warn,
        Priority::Error,
        Priority::Critical,
        Priority::Sample,
    ];

    /// Lowercase name, as used in topic names (`notifications.info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Audit => "audit",
            Priority::Debug => "debug",
            Priority::Info => "info",
            Priority::Warn => "warn",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Sample => "sample",
        }
    }

    /// Uppercase name, as written in the message's `priority` field (`INFO`).
    pub fn as_wire(self) -> &'static str {
        match self {
            Priority::Audit => "AUDIT",
            Priority::Debug => "DEBUG",
            Priority::Info => "INFO",
            Priority::Warn => "WARN",
            Priority::Error => "ERROR",
            Priority::Critical => "CRITICAL",
            Priority::Sample => "SAMPLE",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = Error;

    /// Case-insensitive; `warning` is accepted for `warn`.
    fn from_str(s: &str) -> Result<Self, Error> {
        // Compared in place: this runs for every received notification.
        let is = |name: &str| s.eq_ignore_ascii_case(name);
        let p = match () {
            _ if is("audit") => Priority::Audit,
            _ if is("debug") => Priority::Debug,
            _ if is("info") => Priority::Info,
            _ if is("warn") || is("warning") => Priority::Warn,
            _ if is("error") => Priority::Error,
            _ if is("critical") => Priority::Critical,
            _ if is("sample") => Priority::Sample,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "unknown priority {s:?}; expected one of audit, debug, info, warn, error, critical, sample"
                    ),
                ))
            }
        };
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_alias() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
            assert_eq!(p.as_wire().parse::<Priority>().unwrap(), p);
        }
        assert_eq!("WARNING".parse::<Priority>().unwrap(), Priority::Warn);
        assert_eq!("iNfO".parse::<Priority>().unwrap(), Priority::Info);
        assert!("loud".parse::<Priority>().is_err());
        assert!("infoo".parse::<Priority>().is_err());
        assert!("İnfo".parse::<Priority>().is_err());
    }
}
