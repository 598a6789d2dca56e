//! The driver registry: which driver serves which URL scheme.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::driver::{Driver, DriverFactory};
use crate::error::{Error, ErrorKind, Result};
use crate::options::DriverOptions;
use crate::url::TransportUrl;

/// Maps URL schemes to driver factories.
///
/// There is a process-wide registry ([`DriverRegistry::global`]) that driver crates
/// add themselves to (`driver_memory::register()`), and private registries can be
/// built for tests.
#[derive(Debug, Default)]
pub struct DriverRegistry {
    factories: RwLock<BTreeMap<String, Arc<dyn DriverFactory>>>,
}

impl DriverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static DriverRegistry {
        static GLOBAL: OnceLock<DriverRegistry> = OnceLock::new();
        GLOBAL.get_or_init(DriverRegistry::new)
    }

    /// Register (or replace) the factory for its scheme.
    pub fn register(&self, factory: Arc<dyn DriverFactory>) {
        let scheme = factory.scheme().to_ascii_lowercase();
        self.factories
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scheme, factory);
    }

    /// The registered schemes, sorted.
    pub fn schemes(&self) -> Vec<String> {
        self.factories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The factory for a URL's driver (its scheme without `+suffix`).
    pub fn factory(&self, url: &TransportUrl) -> Result<Arc<dyn DriverFactory>> {
        let scheme = url.driver();
        self.factories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(scheme)
            .cloned()
            .ok_or_else(|| {
                let known = self.schemes();
                Error::new(
                    ErrorKind::UnknownDriver {
                        scheme: scheme.to_owned(),
                        known: known.clone(),
                    },
                    format!(
                        "no driver for scheme {scheme:?}; registered drivers: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    /// Validate the options (config values, then the URL's query, which wins) and open a driver.
    pub fn open(
        &self,
        url: &TransportUrl,
        config_options: &[(String, String)],
    ) -> Result<Arc<dyn Driver>> {
        let factory = self.factory(url)?;
        let query = url.query_map();
        let options = DriverOptions::resolve(
            factory.option_specs(),
            factory.passthrough_prefixes(),
            [config_options, query.as_slice()],
        )?;
        factory.open(url, options)
    }
}
