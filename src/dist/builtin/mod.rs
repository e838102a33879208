//! Processes every node runs, each a [`Process`](super::process::Process) kept running by the
//! node (restarted if it is killed):
//! - [`net_kernel`]: answers `{is_auth, Node}` with `yes`, which is what `net_adm:ping/1` asks;
//! - [`cluster_events`]: streams nodeup/nodedown (and mailbox high-water marks) to
//!   subscribers such as `cluster monitor`;
//! - [`global`]: OTP's `global_name_server`, on visible nodes (unless switched off), so BEAM
//!   peers sync, mesh transitively, and share global names and locks with us;
//! - [`rex`] is a client only, for talking to plain Erlang nodes.

pub mod cluster_events;
pub mod global;
pub mod net_kernel;
pub mod rex;

use super::node::Node;

/// Starts the built-in processes on `node`.
pub fn start(node: &Node) {
    node.spawn_permanent(&[net_kernel::NAME], net_kernel::NetKernel::default);
    node.spawn_permanent(
        &[cluster_events::NAME],
        cluster_events::ClusterEvents::default,
    );
    if node.config().visible && node.config().global {
        node.spawn_permanent(&[global::NAME], global::Global::default);
    }
}
