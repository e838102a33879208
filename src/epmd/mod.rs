//! The port mapper (EPMD): the wire codec, the name registry, the daemon and a client.
//!
//! Every host runs one port mapper. A node registers its name and distribution port with it
//! and a peer asks it where a name listens, exactly as Erlang's `epmd` does, so real `erl`
//! nodes and the `epmd` tool interoperate with ours. `proto` and `registry` are sans-IO;
//! `server` and `client` own the sockets.

pub mod client;
pub mod proto;
pub mod registry;
pub mod server;

pub use client::{ClientError, EpmdClient, Registration};
pub use proto::{NodeEntry, NodeType};
pub use server::{Server, ServerConfig, ServerError};

/// The port mapper's well-known port.
pub const DEFAULT_PORT: u16 = 4369;
