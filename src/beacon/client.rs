//! Calling a beacon from any node: what roles, `cluster requirements`, `cluster names
//! --beacon`, `cluster monitor` and `cluster up` use. Callers get typed values and typed
//! events; no caller builds or matches a term.

use std::time::Duration;

use thiserror::Error;

use super::state::{Provider, Registration};
use super::wire::{self, NodeInfo, Request};
use crate::dist::term::Term;
use crate::dist::{CallError, Dest, Mailbox, Node, NodeEvent, NodeName};

pub use super::wire::Event;

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
    /// The beacon refused the request.
    #[error("beacon {beacon} refused: {reason}")]
    Refused {
        /// The beacon.
        beacon: String,
        /// Its answer.
        reason: String,
    },
}

impl BeaconError {
    /// The connection error that made the call fail, if that is why it failed.
    pub fn connect_error(&self) -> Option<&crate::dist::ConnectError> {
        match self {
            BeaconError::Call { source, .. } => source.connect_error(),
            _ => None,
        }
    }
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

    /// Uses another call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The beacon's node name.
    pub fn beacon(&self) -> &NodeName {
        &self.beacon
    }

    fn dest(&self) -> Dest {
        Dest::name(super::server::NAMES[0], &self.beacon)
    }

    async fn call(&self, req: Request) -> Result<Term, BeaconError> {
        self.node
            .call(&self.dest(), req.to_term(), self.timeout)
            .await
            .map_err(|source| BeaconError::Call {
                beacon: self.beacon.to_string(),
                source,
            })
    }

    fn unexpected(&self, reply: &Term) -> BeaconError {
        BeaconError::Unexpected {
            beacon: self.beacon.to_string(),
            reply: crate::dist::term::Truncated(reply, 300).to_string(),
        }
    }

    fn expect_ok(&self, reply: Term) -> Result<(), BeaconError> {
        if reply.is_atom("ok") {
            return Ok(());
        }
        match reply.as_tuple() {
            Some([e, why]) if e.is_atom("error") => Err(BeaconError::Refused {
                beacon: self.beacon.to_string(),
                reason: why.to_string(),
            }),
            _ => Err(self.unexpected(&reply)),
        }
    }

    /// `{register, …}`.
    pub async fn register(&self, reg: Registration) -> Result<(), BeaconError> {
        let reply = self.call(Request::Register(reg)).await?;
        self.expect_ok(reply)
    }

    /// `{get_requirements, Node}`: the online providers on offer (`nil`, which the seed's
    /// contract uses both for "nothing on offer" and "never registered", is an empty offer).
    pub async fn offer(&self, node: &str) -> Result<Vec<Provider>, BeaconError> {
        let reply = self.call(Request::GetRequirements(node.into())).await?;
        wire::parse_offer(&reply).ok_or_else(|| self.unexpected(&reply))
    }

    /// `get_nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, BeaconError> {
        let reply = self.call(Request::GetNodes).await?;
        match reply.as_list() {
            Some(items) => items
                .iter()
                .map(wire::parse_entry)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.unexpected(&reply)),
            None => match reply.as_tuple() {
                Some([e, why]) if e.is_atom("error") => Err(BeaconError::Refused {
                    beacon: self.beacon.to_string(),
                    reason: why.to_string(),
                }),
                _ => Err(self.unexpected(&reply)),
            },
        }
    }

    /// `{forget, Node}`: removes an offline node.
    pub async fn forget(&self, node: &str) -> Result<(), BeaconError> {
        let reply = self.call(Request::Forget(node.into())).await?;
        self.expect_ok(reply)
    }

    /// `{leave, Node}`: tells the beacon this node is stopping cleanly (only the node itself
    /// may).
    pub async fn leave(&self, node: &str) -> Result<(), BeaconError> {
        let reply = self.call(Request::Leave(node.into())).await?;
        self.expect_ok(reply)
    }

    /// `{report, Node, Map}`: what this node says about itself (only the node itself may).
    pub async fn report(
        &self,
        node: &str,
        report: Vec<(String, String)>,
    ) -> Result<(), BeaconError> {
        let reply = self.call(Request::Report(node.into(), report)).await?;
        self.expect_ok(reply)
    }

    /// Subscribes to the beacon's changes. The subscription also watches the beacon process,
    /// so its end (the beacon's node going down, or the process being killed) arrives as
    /// [`SubscriptionEvent::BeaconDown`] in order with the pushes.
    pub async fn subscribe(&self) -> Result<Subscription, BeaconError> {
        self.subscribe_with(None).await
    }

    /// [`BeaconClient::subscribe`], to the changes of the nodes providing `resources` only
    /// (registrations and status changes; a resync is always sent).
    pub async fn subscribe_to(&self, resources: &[String]) -> Result<Subscription, BeaconError> {
        self.subscribe_with(Some(resources)).await
    }

    async fn subscribe_with(
        &self,
        resources: Option<&[String]>,
    ) -> Result<Subscription, BeaconError> {
        let mailbox = self.node.spawn_mailbox();
        mailbox.monitor_nodes(true);
        let watch = mailbox
            .monitor(&self.dest())
            .map_err(|e| BeaconError::Call {
                beacon: self.beacon.to_string(),
                source: CallError::Send(e),
            })?;
        let request = match resources {
            None => Request::Subscribe(mailbox.pid()),
            Some(r) => Request::SubscribeTo(mailbox.pid(), r.to_vec()),
        };
        let reply = self.call(request).await?;
        self.expect_ok(reply)?;
        Ok(Subscription {
            mailbox,
            beacon: self.beacon.clone(),
            watch,
        })
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// A beacon push.
    Beacon(Event),
    /// The beacon is gone (its node went down, or the process ended): register again when it
    /// is back.
    BeaconDown {
        /// Why.
        reason: String,
    },
    /// A node event of our own node (another peer went up or down).
    Node(NodeEvent),
}

/// A live subscription to a beacon.
pub struct Subscription {
    mailbox: Mailbox,
    beacon: NodeName,
    watch: crate::dist::Ref,
}

impl Subscription {
    fn decode(&self, msg: Term) -> Option<SubscriptionEvent> {
        if let Some(ev) = wire::parse_event(&msg) {
            return Some(SubscriptionEvent::Beacon(ev));
        }
        if let Some(ev) = NodeEvent::from_term(&msg) {
            if let NodeEvent::Down { node, reason, .. } = &ev {
                if *node == self.beacon {
                    return Some(SubscriptionEvent::BeaconDown {
                        reason: reason.clone(),
                    });
                }
            }
            return Some(SubscriptionEvent::Node(ev));
        }
        match msg.as_tuple() {
            Some([down, Term::Ref(r), _, _, reason])
                if down.is_atom("DOWN") && *r == self.watch =>
            {
                Some(SubscriptionEvent::BeaconDown {
                    reason: reason
                        .as_atom()
                        .map_or_else(|| reason.to_string(), str::to_owned),
                })
            }
            _ => None,
        }
    }

    /// The next event; `None` once our node has stopped.
    pub async fn next(&mut self) -> Option<SubscriptionEvent> {
        loop {
            let msg = self.mailbox.recv().await?;
            if let Some(ev) = self.decode(msg) {
                return Some(ev);
            }
        }
    }

    /// The next event if one is queued (to drain a burst before acting on it).
    pub fn try_next(&mut self) -> Option<SubscriptionEvent> {
        while let Some(msg) = self.mailbox.try_recv() {
            if let Some(ev) = self.decode(msg) {
                return Some(ev);
            }
        }
        None
    }
}
