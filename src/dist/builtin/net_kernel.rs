//! `net_kernel`, as far as other nodes talk to it: `net_adm:ping/1` monitors it and calls
//! `{is_auth, Node}`; a connected peer is authenticated, so the answer is `yes`.
//! `net_kernel:get_net_ticktime()` calls `ticktime` and gets the tick time in seconds (what
//! `cluster doctor` compares across nodes, ours and erl's alike). Anything else
//! gets `{error, {unknown_call, Req}}` at once. It refuses `sys:terminate`: the node needs it.

use crate::dist::node::From;
use crate::dist::process::{unknown_call, Call, Ctx, Process, StopPolicy};
use crate::dist::proto::term::{atom, Term};

/// Its registered name.
pub const NAME: &str = "net_kernel";

/// The process.
#[derive(Default)]
pub struct NetKernel {
    answered: u64,
}

impl Process for NetKernel {
    fn name(&self) -> String {
        NAME.into()
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        match request.as_tuple() {
            Some([verb, _node]) if verb.is_atom("is_auth") => {
                self.answered += 1;
                Call::Reply(atom("yes"))
            }
            _ if request.is_atom("ticktime") => {
                Call::Reply(Term::from(ctx.node().config().ticktime.as_secs()))
            }
            _ => unknown_call(request),
        }
    }

    fn state(&self) -> Term {
        crate::dist::proto::term::map(vec![("is_auth_answered", Term::from(self.answered))])
    }

    fn stop_policy(&self) -> StopPolicy {
        StopPolicy::Refuse
    }
}

/// `net_adm:ping/1`: asks `target`'s `net_kernel` `{is_auth, Us}` from `node`; `Ok` is pong.
pub async fn ping(
    node: &crate::dist::Node,
    target: &crate::dist::NodeName,
    limit: std::time::Duration,
) -> Result<(), crate::dist::CallError> {
    let request = crate::dist::term::tuple(vec![atom("is_auth"), atom(node.name().as_str())]);
    let reply = node
        .call(&crate::dist::Dest::name(NAME, target), request, limit)
        .await?;
    if reply.is_atom("yes") {
        Ok(())
    } else {
        Err(crate::dist::CallError::Exit(format!(
            "unexpected reply {reply}"
        )))
    }
}

/// `net_kernel:get_net_ticktime()` on `target`, in seconds (OTP answers an integer, or
/// `{ongoing_change_to, T}` while a change is in progress: then `T`).
pub async fn ticktime(
    node: &crate::dist::Node,
    target: &crate::dist::NodeName,
    limit: std::time::Duration,
) -> Result<u64, crate::dist::CallError> {
    let reply = node
        .call(
            &crate::dist::Dest::name(NAME, target),
            atom("ticktime"),
            limit,
        )
        .await?;
    let value = match reply.as_tuple() {
        Some([k, t]) if k.is_atom("ongoing_change_to") => t.as_int(),
        _ => reply.as_int(),
    };
    value
        .and_then(|t| u64::try_from(t).ok())
        .ok_or_else(|| crate::dist::CallError::Exit(format!("unexpected reply {reply}")))
}
