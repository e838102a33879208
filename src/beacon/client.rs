//! Calls to a beacon from any node: what roles, `cluster requirements`, `cluster names
//! --beacon` and `cluster up` use.

use std::time::Duration;

use thiserror::Error;

use super::state::{Provider, Registration};
use super::wire::{self, NodeInfo, Request};
use crate::dist::{CallError, Dest, Mailbox, Node, NodeName};

/// Default time allowed for a beacon call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors talking to the beacon.
#[derive(Debug, Error)]
pub enum BeaconError {
    /// The call failed.
    #[error("beacon {beacon}: {source}")]
    Call {
        /// The beacon.
        beacon: String,
        /// Why.
        #[source]
        source: CallError,
    },
    /// The beacon answered something outside the contract.
    #[error("beacon {beacon} sent an unexpected reply: {reply}")]
    Unexpected {
        /// The beacon.
        beacon: String,
        /// What it sent.
        reply: String,
    },
}

/// A handle for calling one beacon.
#[derive(Clone)]
pub struct BeaconClient {
    node: Node,
    beacon: NodeName,
    timeout: Duration,
}

impl BeaconClient {
    /// Calls `beacon` from `node`.
    pub fn new(node: Node, beacon: NodeName) -> Self {
        BeaconClient {
            node,
            beacon,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The beacon's node name.
    pub fn beacon(&self) -> &NodeName {
        &self.beacon
    }

    async fn call(&self, req: Request) -> Result<eetf::Term, BeaconError> {
        self.node
            .call(
                &Dest::name("beacon", &self.beacon),
                req.to_term(),
                self.timeout,
            )
            .await
            .map_err(|source| BeaconError::Call {
                beacon: self.beacon.to_string(),
                source,
            })
    }

    fn unexpected(&self, reply: &eetf::Term) -> BeaconError {
        BeaconError::Unexpected {
            beacon: self.beacon.to_string(),
            reply: reply.to_string(),
        }
    }

    /// `{register, …}`.
    pub async fn register(&self, reg: Registration) -> Result<(), BeaconError> {
        let reply = self.call(Request::Register(reg)).await?;
        if crate::dist::term::as_atom(&reply) == Some("ok") {
            Ok(())
        } else {
            Err(self.unexpected(&reply))
        }
    }

    /// `{get_requirements, Node}`: the online providers on offer (empty for `nil`).
    pub async fn offer(&self, node: &str) -> Result<Vec<Provider>, BeaconError> {
        let reply = self.call(Request::GetRequirements(node.into())).await?;
        wire::parse_offer(&reply).ok_or_else(|| self.unexpected(&reply))
    }

    /// `get_nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, BeaconError> {
        let reply = self.call(Request::GetNodes).await?;
        match &reply {
            eetf::Term::List(l) => l
                .elements
                .iter()
                .map(wire::parse_entry)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.unexpected(&reply)),
            _ => Err(self.unexpected(&reply)),
        }
    }

    /// `{subscribe, Pid}`: changes are pushed to `mailbox` as `{beacon_event, …}`.
    pub async fn subscribe(&self, mailbox: &Mailbox) -> Result<(), BeaconError> {
        let reply = self.call(Request::Subscribe(mailbox.pid().clone())).await?;
        if crate::dist::term::as_atom(&reply) == Some("ok") {
            Ok(())
        } else {
            Err(self.unexpected(&reply))
        }
    }
}
