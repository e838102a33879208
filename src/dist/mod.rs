//! The Erlang distribution protocol: node names and cookies, the handshake, framing and
//! control messages, connections with ticks, and the node runtime that routes messages to
//! mailboxes. Wire facts are in `DESIGN.md` ("Distribution protocol"), verified against OTP 25.
//!
//! `flags`, `name`, `handshake`, `term` and `codec` are sans-IO; `setup` and `connection` own
//! sockets; `node` owns the routing tables.

pub mod builtin;
pub mod codec;
pub mod connection;
pub mod flags;
pub mod handshake;
pub mod name;
pub mod node;
pub mod setup;
pub mod term;

pub use name::{Cookie, NameKind, NodeName};
pub use node::{
    parse_gen_call, CallError, ConnectError, Dest, From, Mailbox, Node, NodeConfig, NodeError,
    NodeEvent, SendError,
};
