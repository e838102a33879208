//! `cluster`: Erlang-style clustering for game servers, wire-compatible with Erlang/OTP.
//!
//! The crate is both the library behind the `cluster` binary and a toolkit of its own:
//! - [`epmd`]: the port mapper, speaking the real EPMD protocol;
//! - [`dist`]: the Erlang distribution protocol and the node runtime (names, cookies,
//!   handshake, connections with ticks, mailboxes, gen_call, monitors);
//! - [`beacon`]: the registry of roles, byte-compatible with the seed's Elixir beacon;
//! - [`roles`]: what a role node does (register, wait for providers, keep the mesh);
//! - [`config`]: `roles.toml` and cookie resolution;
//! - [`cli`]: the subcommands of the `cluster` binary.
//!
//! `DESIGN.md` (in the project's shared folder) describes the architecture and the wire facts
//! that the protocol code follows.

#![warn(missing_docs)]

pub mod beacon;
pub mod cli;
pub mod config;
pub mod dist;
pub mod epmd;
pub mod roles;
