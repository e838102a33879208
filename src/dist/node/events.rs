//! Node events. A process that asks for them ([`super::Mailbox::monitor_nodes`]) receives them
//! as ordinary messages, in the same queue as everything else, so it sees them in order with
//! the messages around them: every message that came over a connection is queued before that
//! connection's nodedown. Each event names the connection it is about (its [`ConnId`]), so a
//! late nodedown of an old connection can be told from a newer nodeup.
//!
//! The terms are `{nodeup, Node, #{type => visible|hidden, connection => Id}}` and
//! `{nodedown, Node, #{type, connection, reason}}`; `cluster_events` pushes the same shape to
//! `cluster monitor`.

use super::super::connection::ConnId;
use super::super::proto::term::{atom, map, tuple, Term};
use super::super::NodeName;
use super::Mailbox;

/// A change in the set of connected nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A connection came up.
    Up {
        /// The peer.
        node: NodeName,
        /// Whether it is a visible node.
        visible: bool,
        /// The connection.
        connection: ConnId,
    },
    /// A connection went down.
    Down {
        /// The peer.
        node: NodeName,
        /// Whether it was a visible node.
        visible: bool,
        /// The connection that ended.
        connection: ConnId,
        /// Why (`net_tick_timeout`, `connection_closed`, …).
        reason: String,
    },
}

fn reason_atom(reason: &str) -> Term {
    let mut r: String = reason.chars().take(255).collect();
    if r.is_empty() {
        r.push_str("unknown");
    }
    atom(&r)
}

impl NodeEvent {
    /// The node the event is about.
    pub fn node(&self) -> &NodeName {
        match self {
            NodeEvent::Up { node, .. } | NodeEvent::Down { node, .. } => node,
        }
    }

    /// The event as the term processes receive.
    pub fn to_term(&self) -> Term {
        let kind = |visible: bool| atom(if visible { "visible" } else { "hidden" });
        match self {
            NodeEvent::Up {
                node,
                visible,
                connection,
            } => tuple(vec![
                atom("nodeup"),
                atom(node.as_str()),
                map(vec![
                    ("type", kind(*visible)),
                    ("connection", Term::from(*connection)),
                ]),
            ]),
            NodeEvent::Down {
                node,
                visible,
                connection,
                reason,
            } => tuple(vec![
                atom("nodedown"),
                atom(node.as_str()),
                map(vec![
                    ("type", kind(*visible)),
                    ("connection", Term::from(*connection)),
                    ("reason", reason_atom(reason)),
                ]),
            ]),
        }
    }

    /// Reads a node event back from a message; `None` for any other message.
    pub fn from_term(t: &Term) -> Option<NodeEvent> {
        let [kind, node, info] = t.as_tuple()? else {
            return None;
        };
        let node = NodeName::parse(node.as_atom()?).ok()?;
        let visible = info.map_get_atom("type")?.is_atom("visible");
        let connection = info
            .map_get_atom("connection")
            .and_then(Term::as_int)
            .and_then(|i| u64::try_from(i).ok())?;
        match kind.as_atom()? {
            "nodeup" => Some(NodeEvent::Up {
                node,
                visible,
                connection,
            }),
            "nodedown" => Some(NodeEvent::Down {
                node,
                visible,
                connection,
                reason: info
                    .map_get_atom("reason")
                    .map(|r| r.as_atom().map_or_else(|| r.to_string(), str::to_owned))
                    .unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// A stream of node events ([`super::Node::monitor_nodes`]).
pub struct NodeEvents {
    mailbox: Mailbox,
}

impl NodeEvents {
    pub(super) fn new(mailbox: Mailbox) -> NodeEvents {
        NodeEvents { mailbox }
    }

    /// The next event; `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        loop {
            let msg = self.mailbox.recv().await?;
            if let Some(ev) = NodeEvent::from_term(&msg) {
                return Some(ev);
            }
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        while let Some(msg) = self.mailbox.try_recv() {
            if let Some(ev) = NodeEvent::from_term(&msg) {
                return Some(ev);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_terms() {
        let n = NodeName::parse("a@127.0.0.1").unwrap();
        for ev in [
            NodeEvent::Up {
                node: n.clone(),
                visible: true,
                connection: 7,
            },
            NodeEvent::Down {
                node: n,
                visible: false,
                connection: 8,
                reason: "net_tick_timeout".into(),
            },
        ] {
            assert_eq!(NodeEvent::from_term(&ev.to_term()), Some(ev));
        }
        assert_eq!(NodeEvent::from_term(&atom("x")), None);
    }
}
