//! `cluster_events`: what `cluster monitor NODE` subscribes to. `{subscribe, Pid}` (a plain
//! message) is answered with `{snapshot, [#{node, type}]}` sent to Pid, then Pid receives
//! `{nodeup, Node, #{type, connection}}`, `{nodedown, Node, #{type, connection, reason}}` and
//! `{mailbox_high_water, Pid, Name, Len, Bytes}` as they happen. `{unsubscribe, Pid}` stops
//! them. Pushes go through [`Subscribers`], so a subscriber that stops reading cannot hold the
//! process up.
//!
//! The gen_call `stats` answers what `cluster top` shows of a node: each connection's traffic
//! (`#{node, type, msgs_in, bytes_in, msgs_out, bytes_out}`) and the processes whose queues
//! have grown the most (`#{pid, name, queue_len, queue_bytes, queue_peak}`, at most
//! [`STATS_PROCESSES`] of them), so a tool can compute message rates and spot a process that
//! falls behind without a `rex` (which our nodes do not run).

use std::time::Duration;

use tracing::debug;

use crate::dist::node::{Dest, From, NodeEvent};
use crate::dist::process::{unknown_call, Call, Ctx, Flow, Process, Subscribers};
use crate::dist::proto::term::{atom, list, map, tuple, Term};

/// Its registered name.
pub const NAME: &str = "cluster_events";
/// How often lagging subscribers are checked for having caught up.
const CATCH_UP: Duration = Duration::from_secs(1);
/// How many processes (those whose queues peaked highest) a `stats` reply lists.
pub const STATS_PROCESSES: usize = 16;

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

/// The `stats` reply.
fn stats_term(ctx: &Ctx<'_>) -> Term {
    let node = ctx.node();
    let peers = node
        .traffic()
        .into_iter()
        .map(|(n, visible, t)| {
            map(vec![
                ("node", atom(n.as_str())),
                ("type", atom(if visible { "visible" } else { "hidden" })),
                ("msgs_in", Term::from(t.msgs_in)),
                ("bytes_in", Term::from(t.bytes_in)),
                ("msgs_out", Term::from(t.msgs_out)),
                ("bytes_out", Term::from(t.bytes_out)),
            ])
        })
        .collect();
    let mut procs = node.processes();
    procs.sort_by(|a, b| {
        b.queue_peak
            .cmp(&a.queue_peak)
            .then(a.pid.id.cmp(&b.pid.id))
    });
    procs.truncate(STATS_PROCESSES);
    let procs = procs
        .into_iter()
        .map(|p| {
            map(vec![
                ("pid", Term::Pid(p.pid)),
                (
                    "name",
                    p.names
                        .first()
                        .map_or_else(|| atom("undefined"), |n| atom(n)),
                ),
                ("queue_len", Term::from(p.queue_len as u64)),
                ("queue_bytes", Term::from(p.queue_bytes as u64)),
                ("queue_peak", Term::from(p.queue_peak as u64)),
            ])
        })
        .collect();
    map(vec![("peers", list(peers)), ("processes", list(procs))])
}

impl Process for ClusterEvents {
    fn name(&self) -> String {
        NAME.into()
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        if request.is_atom("stats") {
            return Call::Reply(stats_term(ctx));
        }
        unknown_call(request)
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

/// One connection of a node, as `stats` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerTraffic {
    /// The node at the other end.
    pub node: String,
    /// `visible` or `hidden`.
    pub kind: String,
    /// Messages received on it.
    pub msgs_in: u64,
    /// Bytes received on it.
    pub bytes_in: u64,
    /// Messages sent on it.
    pub msgs_out: u64,
    /// Bytes sent on it.
    pub bytes_out: u64,
}

/// A process's queue, as `stats` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessQueue {
    /// Its registered name, or its pid.
    pub process: String,
    /// Messages queued now.
    pub len: u64,
    /// Their approximate bytes.
    pub bytes: u64,
    /// The longest the queue has been.
    pub peak: u64,
}

/// A node's `stats` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    /// Its connections, by peer name.
    pub peers: Vec<PeerTraffic>,
    /// Its processes whose queues peaked highest, highest first.
    pub processes: Vec<ProcessQueue>,
}

/// Why `stats` failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The call failed (`noproc` for a plain Erlang node, `timeout` for a stalled one).
    #[error(transparent)]
    Call(#[from] crate::dist::CallError),
    /// The node's `cluster_events` does not know `stats` (an older `cluster`).
    #[error("{0} does not answer stats")]
    Unsupported(String),
    /// The answer was not a stats map.
    #[error("unexpected stats reply from {node}: {reply}")]
    Unexpected {
        /// The node asked.
        node: String,
        /// What it sent (truncated).
        reply: String,
    },
}

fn u64_field(m: &Term, key: &str) -> Option<u64> {
    u64::try_from(m.map_get_atom(key)?.as_int()?).ok()
}

/// Decodes a `stats` reply; `None` if it is not one.
pub fn parse_stats(reply: &Term) -> Option<NodeStats> {
    let peers = reply
        .map_get_atom("peers")?
        .as_list()?
        .iter()
        .map(|p| {
            Some(PeerTraffic {
                node: p.map_get_atom("node")?.as_atom()?.to_owned(),
                kind: str_field(p, "type"),
                msgs_in: u64_field(p, "msgs_in")?,
                bytes_in: u64_field(p, "bytes_in")?,
                msgs_out: u64_field(p, "msgs_out")?,
                bytes_out: u64_field(p, "bytes_out")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let processes = reply
        .map_get_atom("processes")?
        .as_list()?
        .iter()
        .map(|p| {
            let name = p.map_get_atom("name")?;
            Some(ProcessQueue {
                process: match name.as_atom() {
                    Some("undefined") | None => p.map_get_atom("pid")?.to_string(),
                    Some(n) => n.to_owned(),
                },
                len: u64_field(p, "queue_len")?,
                bytes: u64_field(p, "queue_bytes")?,
                peak: u64_field(p, "queue_peak")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(NodeStats { peers, processes })
}

/// Asks `target`'s `cluster_events` for its `stats`, waiting at most `limit` (connecting
/// included).
pub async fn stats(
    node: &crate::dist::Node,
    target: &crate::dist::NodeName,
    limit: Duration,
) -> Result<NodeStats, StatsError> {
    let reply = node
        .call(&Dest::name(NAME, target), atom("stats"), limit)
        .await?;
    if let Some(s) = parse_stats(&reply) {
        return Ok(s);
    }
    match reply.as_tuple() {
        Some([e, why])
            if e.is_atom("error")
                && matches!(why.as_tuple(), Some([k, _]) if k.is_atom("unknown_call")) =>
        {
            Err(StatsError::Unsupported(target.to_string()))
        }
        _ => Err(StatsError::Unexpected {
            node: target.to_string(),
            reply: crate::dist::term::Truncated(&reply, 300).to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, msgs_in: i64) -> Term {
        map(vec![
            ("node", atom(node)),
            ("type", atom("visible")),
            ("msgs_in", Term::from(msgs_in)),
            ("bytes_in", Term::from(100u64)),
            ("msgs_out", Term::from(3u64)),
            ("bytes_out", Term::from(300u64)),
        ])
    }

    #[test]
    fn stats_replies_decode_and_malformed_ones_do_not() {
        let proc_ = map(vec![
            ("pid", Term::Pid(crate::dist::Pid::new("n@h", 7, 0, 1))),
            ("name", atom("undefined")),
            ("queue_len", Term::from(1u64)),
            ("queue_bytes", Term::from(10u64)),
            ("queue_peak", Term::from(9u64)),
        ]);
        let reply = map(vec![
            ("peers", list(vec![peer("a@h", 5)])),
            ("processes", list(vec![proc_])),
        ]);
        let s = parse_stats(&reply).unwrap();
        assert_eq!(s.peers[0].node, "a@h");
        assert_eq!((s.peers[0].msgs_in, s.peers[0].bytes_out), (5, 300));
        assert_eq!(s.processes[0].peak, 9);
        assert!(s.processes[0].process.contains('7'), "{:?}", s.processes[0]);

        // A negative counter, a missing key, or no map at all is not a stats reply.
        let bad = map(vec![
            ("peers", list(vec![peer("a@h", -1)])),
            ("processes", list(vec![])),
        ]);
        assert_eq!(parse_stats(&bad), None);
        assert_eq!(parse_stats(&map(vec![("peers", list(vec![]))])), None);
        assert_eq!(parse_stats(&atom("ok")), None);
    }
}
