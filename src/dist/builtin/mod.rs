//! Processes every node runs, each a [`Process`](super::process::Process) kept running by the
//! node (restarted if it is killed):
//! - [`net_kernel`]: answers `{is_auth, Node}` with `yes`, which is what `net_adm:ping/1` asks;
//! - [`cluster_events`]: streams nodeup/nodedown (and mailbox high-water marks) to
//!   subscribers such as `cluster monitor`;
//! - [`global`]: OTP's `global_name_server`, on visible nodes (unless switched off), so BEAM
//!   peers sync, mesh transitively, and share global names and locks with us;
//! - [`pg`]: OTP's default process-group scope `pg`, on visible nodes, so process groups span
//!   BEAM nodes and ours ([`pg::default_scope`] gives the handle; [`pg::start_scope`] starts
//!   named scopes). Erlang nodes only run it with `-kernel start_pg true` (or after
//!   `pg:start_link()`); a node without it drops our `discover` and shares nothing;
//! - [`rex`] is a client only, for talking to plain Erlang nodes.

pub mod cluster_events;
pub mod global;
pub mod net_kernel;
pub mod pg;
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
    if node.config().visible {
        pg::start_default(node);
    }
}
