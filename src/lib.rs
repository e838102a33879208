//! `cluster`: Erlang-style clustering for game servers, wire-compatible with Erlang/OTP.
//!
//! The crate is the library behind the `cluster` binary and a toolkit of its own:
//! - [`epmd`]: the port mapper, speaking the real EPMD protocol;
//! - [`net`]: the transport seam (TCP with EPMD, in-memory for tests) and the guard in front
//!   of listeners;
//! - [`dist`]: the Erlang distribution protocol and the node runtime (names, cookies,
//!   handshake, connections with ticks, processes, links, monitors, gen_call, `sys`);
//! - [`beacon`]: the registry of roles, byte-compatible with the seed's Elixir beacon;
//! - [`roles`]: what a role node does (register, wait for providers, keep the mesh);
//! - [`registry`]: the cluster process registry (`cluster_server`: placement, failover,
//!   shared config);
//! - [`data`]: the data tier (a durable store, replicas, routing by bucket, the bulk channel);
//! - [`config`]: `roles.toml` and cookie resolution.
//!
//! `DESIGN.md` (in the project's shared folder) describes the architecture and the wire facts
//! that the protocol code follows.

#![warn(missing_docs)]

pub mod beacon;
pub mod config;
pub mod data;
pub mod dist;
pub mod epmd;
pub mod net;
pub mod registry;
pub mod roles;

pub use dist::{
    Atom, Call, CallError, ConnectError, Cookie, Ctx, Dest, Flow, From, Mailbox, Node, NodeConfig,
    NodeError, NodeEvent, NodeName, Pid, Process, Ref, SendError, Term,
};
