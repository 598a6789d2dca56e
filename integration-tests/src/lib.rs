//! # integration-tests
//!
//! The driver conformance suite ([`conformance`]): one set of cases every driver
//! must pass, run through a small [`conformance::DriverHarness`] that each driver
//! supplies, with capability flags for what a driver may legitimately lack.
//!
//! Use [`conformance_tests!`] in a test file to get one `#[test]` per case.

pub mod conformance;
pub mod hostile;
pub mod metrics;
pub mod support;
pub mod tansu;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
pub mod readme {}

/// The user guide's examples, compiled and run as doc tests.
#[doc = include_str!("../../docs/user-guide.md")]
pub mod user_guide {}

/// The configuration reference's examples, compiled and run as doc tests.
#[doc = include_str!("../../docs/configuration.md")]
pub mod configuration_guide {}

/// The driver-writing guide's examples, compiled as doc tests.
#[doc = include_str!("../../docs/writing-a-driver.md")]
pub mod writing_a_driver {}

/// The RPC guide's examples, compiled and run as doc tests.
#[doc = include_str!("../../docs/rpc.md")]
pub mod rpc_guide {}

/// The OpenStack guide's examples (configuration mapping, telemetry), compiled and run
/// as doc tests.
#[doc = include_str!("../../docs/openstack.md")]
pub mod openstack_guide {}

/// The observability page's examples (the metrics recorder, the health API),
/// compiled and run as doc tests.
#[doc = include_str!("../../docs/observability.md")]
pub mod observability_guide {}

/// The RabbitMQ page's examples, compiled and run as doc tests.
#[doc = include_str!("../../docs/rabbit.md")]
pub mod rabbit_guide {}
