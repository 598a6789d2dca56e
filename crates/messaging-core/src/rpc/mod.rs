//! RPC: the driver side. (The client and server API build on this.)

use std::fmt::Debug;

/// The RPC half of a driver. Drivers without RPC keep [`crate::Driver::rpc`]'s
/// default, which refuses every operation with [`crate::ErrorKind::Unsupported`].
pub trait RpcDriver: Send + Sync + Debug {}
