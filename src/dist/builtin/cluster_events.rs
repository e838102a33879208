//! `cluster_events`: what `cluster monitor NODE` subscribes to. `{subscribe, Pid}` (a plain
//! message) is answered with `{snapshot, [#{node, type}]}` sent to Pid, then Pid receives
//! `{nodeup, Node, #{type, connection}}`, `{nodedown, Node, #{type, connection, reason}}` and
//! `{mailbox_high_water, Pid, Name, Len, Bytes}` as they happen. `{unsubscribe, Pid}` stops
//! them. Pushes go through [`Subscribers`], so a subscriber that stops reading cannot hold the
//! process up.

use std::time::Duration;

use tracing::debug;

use crate::dist::node::{Dest, NodeEvent};
use crate::dist::process::{Ctx, Flow, Process, Subscribers};
use crate::dist::proto::term::{atom, list, map, tuple, Term};

/// Its registered name.
pub const NAME: &str = "cluster_events";
/// How often lagging subscribers are checked for having caught up.
const CATCH_UP: Duration = Duration::from_secs(1);

/// The process.
#[derive(Default)]
pub struct ClusterEvents {
    subscribers: Subscribers,
}

fn snapshot(ctx: &Ctx<'_>) -> Term {
    let members = ctx
        .node()
        .peers()
        .into_iter()
        .map(|(n, visible)| {
            map(vec![
                ("node", atom(n.as_str())),
                ("type", atom(if visible { "visible" } else { "hidden" })),
            ])
        })
        .collect();
    tuple(vec![atom("snapshot"), list(members)])
}

impl Process for ClusterEvents {
    fn name(&self) -> String {
        NAME.into()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
        ctx.send_after(CATCH_UP, atom("catch_up"));
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if self.subscribers.on_down(&msg) {
            return Flow::Continue;
        }
        let resync = snapshot(ctx);
        if msg.is_atom("catch_up") {
            self.subscribers.catch_up(ctx, &resync);
            ctx.send_after(CATCH_UP, atom("catch_up"));
            return Flow::Continue;
        }
        if let Some([verb, Term::Pid(pid)]) = msg.as_tuple() {
            if verb.is_atom("subscribe") {
                match self.subscribers.add(ctx, pid.clone()) {
                    Ok(()) => {
                        if ctx.send_noconnect(&Dest::Pid(pid.clone()), resync).is_err() {
                            self.subscribers.remove(ctx, pid);
                        }
                    }
                    Err(e) => debug!(subscriber = ?pid, "subscription refused: {e}"),
                }
                return Flow::Continue;
            }
            if verb.is_atom("unsubscribe") {
                self.subscribers.remove(ctx, pid);
                return Flow::Continue;
            }
        }
        if let Some(ev) = NodeEvent::from_term(&msg) {
            if let NodeEvent::Down { node, .. } = &ev {
                // Subscribers on the node that went away can hear nothing more.
                self.subscribers.remove_node(node.as_str());
            }
            self.subscribers.push(ctx, &msg, &resync);
            return Flow::Continue;
        }
        if matches!(msg.as_tuple(), Some([k, ..]) if k.is_atom("mailbox_high_water")) {
            self.subscribers.push(ctx, &msg, &resync);
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        map(vec![(
            "subscribers",
            list(
                self.subscribers
                    .pids()
                    .map(|p| Term::Pid(p.clone()))
                    .collect(),
            ),
        )])
    }
}

/// A connected member as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// The node.
    pub node: String,
    /// `visible` or `hidden`.
    pub kind: String,
}

/// What a subscription to a node's `cluster_events` yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The members connected to the target now (first, and again after falling behind).
    Snapshot(Vec<Member>),
    /// A node connected to the target.
    NodeUp {
        /// The node.
        node: String,
        /// `visible` or `hidden`.
        kind: String,
    },
    /// A node disconnected from the target.
    NodeDown {
        /// The node.
        node: String,
        /// `visible` or `hidden`.
        kind: String,
        /// Why.
        reason: String,
    },
    /// A process on the target is not keeping up with its mailbox.
    HighWater {
        /// The process (its registered name, or its pid).
        process: String,
        /// Messages queued.
        len: u64,
        /// Their approximate bytes.
        bytes: u64,
    },
    /// The target itself went down, or its `cluster_events` ended.
    TargetDown {
        /// Why.
        reason: String,
    },
}

/// Why subscribing failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The target has no `cluster_events` (a plain Erlang node).
    #[error("{0} has no cluster_events")]
    NoProc(String),
    /// The target went down.
    #[error("{target} went down: {reason}")]
    Down {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("no answer from cluster_events on {0}")]
    Timeout(String),
    /// The subscription could not be sent.
    #[error(transparent)]
    Send(#[from] crate::dist::SendError),
}

/// A live subscription to one node's `cluster_events`.
pub struct Subscription {
    mailbox: crate::dist::Mailbox,
    watch: crate::dist::Ref,
}

fn str_field(m: &Term, key: &str) -> String {
    m.map_get_atom(key)
        .map(|v| v.as_atom().map_or_else(|| v.to_string(), str::to_owned))
        .unwrap_or_default()
}

fn members(items: &[Term]) -> Vec<Member> {
    items
        .iter()
        .map(|m| Member {
            node: str_field(m, "node"),
            kind: str_field(m, "type"),
        })
        .collect()
}

impl Subscription {
    /// Subscribes to `target`'s `cluster_events` from `node`, waiting up to `limit` for the
    /// first snapshot (returned as the first event).
    pub async fn start(
        node: &crate::dist::Node,
        target: &crate::dist::NodeName,
        limit: Duration,
    ) -> Result<(Subscription, Vec<Member>), SubscribeError> {
        node.connect(target)
            .await
            .map_err(|e| SubscribeError::Send(e.into()))?;
        // The target's loss shows as the monitor's DOWN (`noconnection`); our own node events
        // are not wanted here, as they look like the pushes.
        let mailbox = node.spawn_mailbox();
        let dest = Dest::name(NAME, target);
        let watch = mailbox.monitor(&dest)?;
        mailbox.send(
            &dest,
            tuple(vec![atom("subscribe"), Term::Pid(mailbox.pid())]),
        )?;
        let mut sub = Subscription { mailbox, watch };
        let first = tokio::time::timeout(limit, sub.next())
            .await
            .map_err(|_| SubscribeError::Timeout(target.to_string()))?;
        match first {
            Some(ClusterEvent::Snapshot(m)) => Ok((sub, m)),
            Some(ClusterEvent::TargetDown { reason }) if reason == "noproc" => {
                Err(SubscribeError::NoProc(target.to_string()))
            }
            Some(ClusterEvent::TargetDown { reason }) => Err(SubscribeError::Down {
                target: target.to_string(),
                reason,
            }),
            _ => Err(SubscribeError::Timeout(target.to_string())),
        }
    }

    fn decode(&self, msg: &Term) -> Option<ClusterEvent> {
        let els = msg.as_tuple()?;
        match els {
            [k, Term::List(items)] if k.is_atom("snapshot") => {
                Some(ClusterEvent::Snapshot(members(items)))
            }
            [k, n, info] if k.is_atom("nodeup") => Some(ClusterEvent::NodeUp {
                node: n.as_atom()?.to_owned(),
                kind: str_field(info, "type"),
            }),
            [k, n, info] if k.is_atom("nodedown") => Some(ClusterEvent::NodeDown {
                node: n.as_atom()?.to_owned(),
                kind: str_field(info, "type"),
                reason: str_field(info, "reason"),
            }),
            [k, pid, name, len, bytes] if k.is_atom("mailbox_high_water") => {
                Some(ClusterEvent::HighWater {
                    process: match name.as_atom() {
                        Some("undefined") | None => pid.to_string(),
                        Some(n) => n.to_owned(),
                    },
                    len: len
                        .as_int()
                        .and_then(|i| u64::try_from(i).ok())
                        .unwrap_or(0),
                    bytes: bytes
                        .as_int()
                        .and_then(|i| u64::try_from(i).ok())
                        .unwrap_or(0),
                })
            }
            [down, Term::Ref(r), _, _, reason] if down.is_atom("DOWN") && *r == self.watch => {
                Some(ClusterEvent::TargetDown {
                    reason: reason
                        .as_atom()
                        .map_or_else(|| reason.to_string(), str::to_owned),
                })
            }
            _ => None,
        }
    }

    /// The next event; `None` once our node has stopped.
    pub async fn next(&mut self) -> Option<ClusterEvent> {
        loop {
            let msg = self.mailbox.recv().await?;
            if let Some(ev) = self.decode(&msg) {
                return Some(ev);
            }
        }
    }
}
