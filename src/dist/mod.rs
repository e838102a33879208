//! The Erlang distribution protocol and the node runtime.
//!
//! - [`proto`] is sans-IO: flags, the handshake, control messages, frames and terms;
//! - [`setup`] runs the handshake over a stream, [`connection`] runs an established one
//!   (reader, writer, and the [`tick`] state machine), [`outbox`] is its send queue;
//! - [`node`] is the runtime: connection slots, processes, routing, dial and accept;
//! - [`process`] is the process behaviour (gen_server-like, with `sys`), and [`builtin`] the
//!   processes every node runs.
//!
//! Wire facts are in `DESIGN.md` ("Distribution protocol"), verified against OTP 25.

pub mod builtin;
mod connection;
pub mod name;
pub mod node;
mod outbox;
pub mod process;
pub mod proto;
pub mod setup;
mod tick;

pub use name::{Cookie, NameKind, NodeName};
pub use node::{
    parse_gen_call, CallError, ConnectError, Dest, From, Mailbox, Node, NodeConfig, NodeError,
    NodeEvent, NodeEvents, SendError,
};
pub use process::{Call, Ctx, Flow, Process, StopPolicy, Subscribers};
pub use proto::term::{self, Atom, Pid, Ref, Term};
