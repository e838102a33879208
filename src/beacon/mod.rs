//! The beacon (seed 000): the registry of which node provides which resource and which
//! resources each node requires. `state` is pure, `wire` is the term contract, `server` is the
//! registered process and `client` calls it with typed values and events.

pub mod client;
pub mod server;
pub mod state;
pub mod wire;

pub use client::{BeaconClient, BeaconError, Subscription, SubscriptionEvent};
pub use state::{BeaconState, Link, Provider, Registration, Status};
pub use wire::{Event, NodeInfo};
