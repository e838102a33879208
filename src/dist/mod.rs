//! The Erlang distribution protocol: node names and cookies, the handshake, framing and
//! control messages, connections with ticks, and the node runtime that routes messages to
//! mailboxes. Wire facts are in `DESIGN.md` ("Distribution protocol"), verified against OTP 25.
//!
//! `flags`, `name`, `handshake`, `term` and `codec` are sans-IO; `setup` and `connection` own
//! sockets; `node` owns the routing tables.

pub mod codec;
pub mod flags;
pub mod handshake;
pub mod name;
pub mod setup;
pub mod term;

pub use name::{Cookie, NameKind, NodeName};
