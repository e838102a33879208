//! A client for OTP's `rex` (the `rpc` server every Erlang node runs), for tools that must work
//! against plain Erlang nodes: `rpc:call(Node, M, F, A)` is a gen_call to `rex` with
//! `{call, M, F, A, GroupLeader}`, answered with the result or `{badrpc, Reason}`.

use std::time::Duration;

use crate::dist::term::{atom, list, tuple, Term};
use crate::dist::{CallError, Dest, Node, NodeName};

/// Why an rpc failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The call itself failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The remote node reported `{badrpc, Reason}`.
    #[error("badrpc: {0}")]
    BadRpc(String),
}

/// `rpc:call(Target, Module, Function, Args)` from `node`.
pub async fn call(
    node: &Node,
    target: &NodeName,
    module: &str,
    function: &str,
    args: Vec<Term>,
    limit: Duration,
) -> Result<Term, RpcError> {
    // The group leader only receives I/O requests; a fresh mailbox that nobody reads will do.
    let gl = node.spawn_mailbox();
    let request = tuple(vec![
        atom("call"),
        atom(module),
        atom(function),
        list(args),
        Term::Pid(gl.pid()),
    ]);
    let reply = node
        .call(&Dest::name("rex", target), request, limit)
        .await?;
    match reply.as_tuple() {
        Some([k, why]) if k.is_atom("badrpc") => Err(RpcError::BadRpc(why.to_string())),
        _ => Ok(reply),
    }
}

/// `erlang:nodes()` on `target`.
pub async fn nodes(
    node: &Node,
    target: &NodeName,
    limit: Duration,
) -> Result<Vec<String>, RpcError> {
    let reply = call(node, target, "erlang", "nodes", Vec::new(), limit).await?;
    Ok(reply
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Term::as_atom)
        .map(str::to_owned)
        .collect())
}
