//! Routing: what each incoming control message does to the process table, and how the
//! table's [`Effect`]s are carried out. Everything here runs on a connection's reader task and
//! returns without waiting: messages go into unbounded mailboxes, and control messages to
//! peers are queued without waiting (a peer too far behind loses them, and is about to be
//! declared down anyway).

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::super::connection::{ConnHandle, Dispatch, DownReason};
use super::super::proto::flags;
use super::super::proto::reassembly::{Refusal, Refused};
use super::super::proto::term::{atom, binary, tuple, Atom, Pid, Term, Truncated};
use super::super::proto::{Control, Message};
use super::super::NodeName;
use super::events::NodeEvent;
use super::procs::{Effect, SignalKind};
use super::{lock, Inner};
use crate::net::warn::Verdict;

impl Inner {
    /// Whether `pid` names our node (whatever its creation): such a pid is never routed to a
    /// peer.
    pub(super) fn is_our_node(&self, pid: &Pid) -> bool {
        pid.node.as_str() == self.cfg.name.as_str()
    }

    /// Whether `pid` is a process of this run of our node: our name and one of our creations.
    /// A pid of a previous run under the same name is a dead process, as in erts: messages to
    /// it are dropped, and monitors and links on it end with `noproc`.
    pub(super) fn is_local(&self, pid: &Pid) -> bool {
        self.is_our_node(pid)
            && (pid.creation == self.creation.load(std::sync::atomic::Ordering::Relaxed)
                || lock(&self.procs).is_local(pid))
    }

    /// Puts a message in local process `id`'s mailbox (dropped if it does not exist).
    pub(super) fn deliver(&self, id: u32, msg: Term, size: usize) {
        let queue = lock(&self.procs).get(id).map(|e| e.queue.clone());
        if let Some(q) = queue {
            if let Some(hw) = q.push(msg, size) {
                self.high_water(id, hw);
            }
        }
    }

    /// Puts a message in the mailbox of the process registered as `name`.
    pub(super) fn deliver_name(&self, name: &Atom, msg: Term, size: usize) {
        let target = {
            let procs = lock(&self.procs);
            procs
                .whereis(name.as_str())
                .and_then(|id| procs.get(id).map(|e| (id, e.queue.clone())))
        };
        match target {
            Some((id, q)) => {
                if let Some(hw) = q.push(msg, size) {
                    self.high_water(id, hw);
                }
            }
            None => debug!(
                name = name.as_str(),
                "message to an unregistered name dropped"
            ),
        }
    }

    fn high_water(&self, id: u32, hw: super::HighWater) {
        let (pid, names) = {
            let procs = lock(&self.procs);
            let names: Vec<String> = procs
                .get(id)
                .map(|e| e.names.iter().map(|n| n.as_str().to_owned()).collect())
                .unwrap_or_default();
            (procs.pid(id), names)
        };
        let who = names.first().cloned().unwrap_or_else(|| format!("{pid:?}"));
        if self.warn.check(&format!("mailbox {who}")) == Verdict::Log {
            warn!(
                process = %who,
                queue_len = hw.len,
                queue_bytes = hw.bytes,
                "mailbox high-water mark: the process is not keeping up"
            );
        }
        let info = tuple(vec![
            atom("mailbox_high_water"),
            Term::Pid(pid),
            names.first().map_or_else(|| atom("undefined"), |n| atom(n)),
            Term::from(hw.len as u64),
            Term::from(hw.bytes as u64),
        ]);
        self.broadcast_event(info, Some(id));
    }

    /// Carries out table effects.
    pub(super) fn execute(&self, effects: Vec<Effect>) {
        for fx in effects {
            match fx {
                Effect::Deliver { to, msg } => self.deliver(to, msg, 0),
                Effect::Remote { node, control } => self.send_connected(&node, &control),
                Effect::Ended { queue } => queue.end(),
            }
        }
    }

    /// Sends a control message on a live connection only: signals about a node we are not
    /// connected to have nothing left to act on there.
    fn send_connected(&self, node: &Atom, control: &Control) {
        let Ok(peer) = NodeName::parse(node.as_str()) else {
            return;
        };
        let conn = lock(&self.peers).up(&peer).cloned();
        if let Some(c) = conn {
            if let Err(e) = c.send(control, None) {
                debug!(%peer, "control message not sent: {e}");
            }
        }
    }

    /// Ends local process `id` with `reason`.
    pub(super) fn end_process(&self, id: u32, reason: Term) {
        let fx = lock(&self.procs).exit(id, reason);
        self.execute(fx);
    }

    /// Delivers a node event (or another system event) to every subscribed process except
    /// `skip`.
    pub(super) fn broadcast_event(&self, event: Term, skip: Option<u32>) {
        let queues: Vec<_> = {
            let procs = lock(&self.procs);
            procs
                .node_event_subscribers()
                .into_iter()
                .filter(|id| Some(*id) != skip)
                .filter_map(|id| procs.get(id).map(|e| e.queue.clone()))
                .collect()
        };
        for q in queues {
            q.push(event.clone(), 0);
        }
    }

    pub(super) fn node_event(&self, ev: NodeEvent) {
        self.broadcast_event(ev.to_term(), None);
    }

    /// A connection to `peer` is gone (closed, replaced, or never completed): every monitor
    /// and link across it ends with `noconnection`.
    pub(super) fn lost(&self, peer: &NodeName) {
        let fx = lock(&self.procs).node_down(&Atom::from(peer.as_str()));
        self.execute(fx);
    }

    fn local_pid_ok(&self, pid: &Pid, conn: &ConnHandle) -> bool {
        if self.is_local(pid) {
            return true;
        }
        if self.is_our_node(pid) {
            debug!(peer = %conn.peer.name, creation = pid.creation, "signal for a pid of a previous run of this node dropped");
        } else {
            debug!(peer = %conn.peer.name, "signal for a pid of another node ({}) dropped", pid.node.as_str());
        }
        false
    }
}

impl Dispatch for Inner {
    fn dispatch(&self, conn: &Arc<ConnHandle>, msg: Message, size: usize) {
        let Message { control, payload } = msg;
        match control {
            Control::Send { to, .. } => {
                if let (Some(m), true) = (payload, self.local_pid_ok(&to, conn)) {
                    self.deliver(to.id, m, size);
                }
            }
            Control::RegSend { to, .. } => {
                if let Some(m) = payload {
                    self.deliver_name(&to, m, size);
                }
            }
            Control::AliasSend { .. } => {
                debug!(peer = %conn.peer.name, "message to an alias dropped: we create no aliases");
            }
            Control::Link { from, to } => {
                // A pid of a previous run of this node is answered `noproc` by the table.
                if self.is_our_node(&to) {
                    let fx = lock(&self.procs).remote_link(&from, &to);
                    self.execute(fx);
                }
            }
            Control::Exit { from, to, reason } => {
                if self.local_pid_ok(&to, conn) {
                    let fx = lock(&self.procs).exit_signal(to.id, &from, reason, SignalKind::Link);
                    self.execute(fx);
                }
            }
            Control::Exit2 { from, to, reason } => {
                if self.local_pid_ok(&to, conn) {
                    let fx = lock(&self.procs).exit_signal(to.id, &from, reason, SignalKind::Exit2);
                    self.execute(fx);
                }
            }
            Control::Unlink { from, to } => {
                if self.local_pid_ok(&to, conn) {
                    lock(&self.procs).unlink(to.id, &from);
                }
            }
            Control::UnlinkId { id, from, to } => {
                if self.local_pid_ok(&to, conn) {
                    lock(&self.procs).unlink(to.id, &from);
                }
                // Always acknowledged, linked or not, as erts does.
                let ack = Control::UnlinkIdAck {
                    id,
                    from: to,
                    to: from,
                };
                if let Err(e) = conn.send(&ack, None) {
                    debug!(peer = %conn.peer.name, "unlink ack not sent: {e}");
                }
            }
            Control::UnlinkIdAck { .. } => {
                // We drop our half of a link when we unlink, so there is nothing to finish.
            }
            Control::Monitor {
                from,
                to,
                reference,
            } => {
                let fx = lock(&self.procs).monitor_local(from, to, reference);
                self.execute(fx);
            }
            Control::Demonitor { reference, .. } => {
                lock(&self.procs).demonitor_local(&reference);
            }
            Control::MonitorExit {
                from,
                reference,
                reason,
                ..
            } => {
                let node = Atom::from(conn.peer.name.as_str());
                let fx = lock(&self.procs).remote_down(&reference, from, reason, &node);
                self.execute(fx);
            }
            Control::SpawnRequest { req_id, from, mfa } => {
                // We advertise SPAWN (part of the flag set verified against OTP 25) but run no
                // Erlang code: answer at once instead of leaving the caller to time out.
                debug!(peer = %conn.peer.name, mfa = %Truncated(&mfa, 200), "refusing a remote spawn");
                let reply = Control::SpawnReply {
                    req_id,
                    to: from,
                    result: atom("notsup"),
                };
                let _ = conn.send(&reply, None);
            }
            Control::GroupLeader { .. } | Control::SpawnReply { .. } => {}
            Control::Other { op } => {
                debug!(peer = %conn.peer.name, op, "ignoring an unsupported control message");
            }
        }
    }

    fn refused(&self, conn: &Arc<ConnHandle>, refused: Refused) {
        // Only a caller on the sending node can be answered on this connection.
        let Some((pid, tag)) = refused.call else {
            return;
        };
        if pid.node.as_str() != conn.peer.name.as_str() {
            return;
        }
        let why = match &refused.why {
            Refusal::TooLarge { size, max } => tuple(vec![
                atom("message_too_large"),
                Term::from(*size as u64),
                Term::from(*max as u64),
            ]),
            other => tuple(vec![atom("bad_message"), binary(other.to_string())]),
        };
        let reply = tuple(vec![tag.clone(), tuple(vec![atom("error"), why])]);
        let control = match &tag {
            Term::Improper(l) if conn.peer.flags & flags::ALIAS != 0 => match &l[..] {
                [head, Term::Ref(alias)] if head.is_atom("alias") => Control::AliasSend {
                    from: self.pid(super::SYSTEM_ID),
                    alias: alias.clone(),
                },
                _ => Control::Send {
                    from: None,
                    to: pid,
                },
            },
            _ => Control::Send {
                from: None,
                to: pid,
            },
        };
        if let Err(e) = conn.send(&control, Some(&reply)) {
            debug!(peer = %conn.peer.name, "error reply to a refused call not sent: {e}");
        }
    }

    fn closed(&self, conn: &Arc<ConnHandle>, reason: DownReason) {
        let peer = conn.peer.name.clone();
        let live = lock(&self.peers).closed(&peer, |c| c.id == conn.id);
        if !live {
            // Replaced: the replacement already reported this connection's end.
            return;
        }
        self.changed.send_modify(|v| *v += 1);
        self.lost(&peer);
        info!(%peer, %reason, "nodedown");
        self.node_event(NodeEvent::Down {
            node: peer,
            visible: self.cfg.visible && conn.peer.is_visible(),
            connection: conn.id,
            reason: reason.to_string(),
        });
    }
}

impl Inner {
    /// The pid of local process `id`, carrying the current creation (no lock taken).
    pub(super) fn pid(&self, id: u32) -> Pid {
        Pid {
            node: self.atom.clone(),
            id,
            serial: 0,
            creation: self.creation.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}
