//! The gate table of seed 000: a `gate_manager` node runs a process `gate_manager` that gates
//! register with (`{register_gate, Node}` → `ok`) and that answers `get_gates` with the list of
//! gate nodes. A gate that goes down is dropped from the table. [`GateManagerClient`] is the
//! typed client.

use std::collections::BTreeSet;
use std::time::Duration;

use tracing::info;

use crate::dist::process::unknown_call;
use crate::dist::term::{atom, list, map, tuple, Term};
use crate::dist::{Call, CallError, Ctx, Dest, Flow, From, Node, NodeEvent, NodeName, Process};

/// The registered name.
pub const NAME: &str = "gate_manager";
/// Time allowed for a gate_manager call.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the `gate_manager` process on `node` (restarted if it is killed).
pub fn start_manager(node: &Node) {
    node.spawn_permanent(&[NAME], GateManager::default);
}

/// The `gate_manager` process.
#[derive(Default)]
pub struct GateManager {
    gates: BTreeSet<String>,
}

impl Process for GateManager {
    fn name(&self) -> String {
        NAME.into()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
    }

    fn handle_call(&mut self, _ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        if request.is_atom("get_gates") {
            return Call::Reply(list(self.gates.iter().map(|g| atom(g)).collect()));
        }
        match request.as_tuple() {
            Some([verb, gate]) if verb.is_atom("register_gate") => match gate.as_atom() {
                Some(g) => {
                    if self.gates.insert(g.to_owned()) {
                        info!(gate = g, "gate registered");
                    }
                    Call::Reply(atom("ok"))
                }
                None => Call::Reply(tuple(vec![atom("error"), atom("badarg")])),
            },
            _ => unknown_call(request),
        }
    }

    fn handle_info(&mut self, _ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some(NodeEvent::Down { node, .. }) = NodeEvent::from_term(&msg) {
            if self.gates.remove(node.as_str()) {
                info!(gate = %node, "gate went down");
            }
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        map(vec![(
            "gates",
            list(self.gates.iter().map(|g| atom(g)).collect()),
        )])
    }
}

/// Calls one gate_manager.
#[derive(Clone)]
pub struct GateManagerClient {
    node: Node,
    manager: NodeName,
}

impl GateManagerClient {
    /// A client for the gate_manager on `manager`.
    pub fn new(node: Node, manager: NodeName) -> Self {
        GateManagerClient { node, manager }
    }

    /// Registers our node as a gate.
    pub async fn register_gate(&self) -> Result<(), CallError> {
        let req = tuple(vec![atom("register_gate"), atom(self.node.name().as_str())]);
        self.node
            .call(&Dest::name(NAME, &self.manager), req, TIMEOUT)
            .await
            .map(|_| ())
    }

    /// The registered gates.
    pub async fn gates(&self) -> Result<Vec<String>, CallError> {
        let reply = self
            .node
            .call(&Dest::name(NAME, &self.manager), atom("get_gates"), TIMEOUT)
            .await?;
        Ok(reply
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(Term::as_atom)
            .map(str::to_owned)
            .collect())
    }
}
