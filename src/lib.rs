//! `cluster`: Erlang-style clustering for game servers, wire-compatible with Erlang/OTP.
//!
//! The crate is both the library behind the `cluster` binary and a toolkit of its own:
//! - [`epmd`]: the port mapper, speaking the real EPMD protocol;
//! - [`config`]: `roles.toml`, the declaration of every role's resource and requirements;
//! - [`cli`]: the subcommands of the `cluster` binary.
//!
//! `DESIGN.md` (in the project's shared folder) describes the architecture and the wire facts
//! that the protocol code follows.

pub mod beacon;
pub mod cli;
pub mod config;
pub mod dist;
pub mod epmd;
pub mod roles;
