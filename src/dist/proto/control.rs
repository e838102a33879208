//! Distribution control messages: the first term of every data frame (`erl_dist_protocol`,
//! "Protocol between connected nodes"), as a typed enum with both directions of conversion.
//!
//! Exit reasons travel either inside the control tuple (EXIT 3, EXIT2 8, MONITOR_P_EXIT 21) or
//! as the payload term (PAYLOAD_EXIT 24, PAYLOAD_EXIT2 26, PAYLOAD_MONITOR_P_EXIT 28). Which form
//! we send depends on whether the peer advertised `EXIT_PAYLOAD`; both decode to the same
//! variant. Trace-token variants (`*_TT`) decode like their plain forms; the token is dropped,
//! as we do no sequential tracing.

use thiserror::Error;

use super::flags;
use super::term::{self, int, tuple, Atom, Pid, Ref, Term};

/// Why a control term is not a control message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed control message: {0}")]
pub struct BadControl(pub String);

/// The target of a monitor: a pid or a registered name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProcRef {
    /// A process by pid.
    Pid(Pid),
    /// A process by registered name.
    Name(Atom),
}

impl ProcRef {
    /// The term form: the pid, or the name as an atom.
    pub fn to_term(&self) -> Term {
        match self {
            ProcRef::Pid(p) => Term::Pid(p.clone()),
            ProcRef::Name(n) => Term::Atom(n.clone()),
        }
    }

    fn from_term(t: &Term) -> Result<ProcRef, BadControl> {
        match t {
            Term::Pid(p) => Ok(ProcRef::Pid(p.clone())),
            Term::Atom(a) => Ok(ProcRef::Name(a.clone())),
            other => Err(BadControl(format!("expected a pid or name, got {other:?}"))),
        }
    }
}

/// Operation codes (`DOP_*` in erts' `dist.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `{1, From, To}`.
    Link = 1,
    /// `{2, Unused, To}` + message.
    Send = 2,
    /// `{3, From, To, Reason}`.
    Exit = 3,
    /// `{4, From, To}` (pre-UNLINK_ID peers).
    Unlink = 4,
    /// `{6, From, Unused, ToName}` + message.
    RegSend = 6,
    /// `{7, From, To}`.
    GroupLeader = 7,
    /// `{8, From, To, Reason}`.
    Exit2 = 8,
    /// `{12, Unused, To, Token}` + message.
    SendTt = 12,
    /// `{13, From, To, Token, Reason}`.
    ExitTt = 13,
    /// `{16, From, Unused, ToName, Token}` + message.
    RegSendTt = 16,
    /// `{18, From, To, Token, Reason}`.
    Exit2Tt = 18,
    /// `{19, From, ToProc, Ref}`.
    MonitorP = 19,
    /// `{20, From, ToProc, Ref}`.
    DemonitorP = 20,
    /// `{21, FromProc, To, Ref, Reason}`.
    MonitorPExit = 21,
    /// `{22, From, To}` + message.
    SendSender = 22,
    /// `{23, From, To, Token}` + message.
    SendSenderTt = 23,
    /// `{24, From, To}` + reason.
    PayloadExit = 24,
    /// `{25, From, To, Token}` + reason.
    PayloadExitTt = 25,
    /// `{26, From, To}` + reason.
    PayloadExit2 = 26,
    /// `{27, From, To, Token}` + reason.
    PayloadExit2Tt = 27,
    /// `{28, FromProc, To, Ref}` + reason.
    PayloadMonitorPExit = 28,
    /// `{29, ReqId, From, GroupLeader, {M, F, A}, Opts}` + arguments.
    SpawnRequest = 29,
    /// `{30, …, Token}` + arguments.
    SpawnRequestTt = 30,
    /// `{31, ReqId, To, Flags, Result}`.
    SpawnReply = 31,
    /// `{32, …, Token}`.
    SpawnReplyTt = 32,
    /// `{33, From, Alias}` + message.
    AliasSend = 33,
    /// `{34, From, Alias, Token}` + message.
    AliasSendTt = 34,
    /// `{35, Id, From, To}`.
    UnlinkId = 35,
    /// `{36, Id, From, To}`.
    UnlinkIdAck = 36,
}

impl TryFrom<u8> for Op {
    type Error = u8;
    fn try_from(v: u8) -> Result<Op, u8> {
        use Op::*;
        Ok(match v {
            1 => Link,
            2 => Send,
            3 => Exit,
            4 => Unlink,
            6 => RegSend,
            7 => GroupLeader,
            8 => Exit2,
            12 => SendTt,
            13 => ExitTt,
            16 => RegSendTt,
            18 => Exit2Tt,
            19 => MonitorP,
            20 => DemonitorP,
            21 => MonitorPExit,
            22 => SendSender,
            23 => SendSenderTt,
            24 => PayloadExit,
            25 => PayloadExitTt,
            26 => PayloadExit2,
            27 => PayloadExit2Tt,
            28 => PayloadMonitorPExit,
            29 => SpawnRequest,
            30 => SpawnRequestTt,
            31 => SpawnReply,
            32 => SpawnReplyTt,
            33 => AliasSend,
            34 => AliasSendTt,
            35 => UnlinkId,
            36 => UnlinkIdAck,
            other => return Err(other),
        })
    }
}

/// A control message.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// `From` links to `To`.
    Link {
        /// The linking process.
        from: Pid,
        /// The process linked to.
        to: Pid,
    },
    /// A message to a pid (SEND, SEND_SENDER and their TT forms).
    Send {
        /// The sender, when the peer says.
        from: Option<Pid>,
        /// The receiver.
        to: Pid,
    },
    /// A message to a registered name.
    RegSend {
        /// The sender.
        from: Pid,
        /// The name.
        to: Atom,
    },
    /// A message to a process alias.
    AliasSend {
        /// The sender.
        from: Pid,
        /// The alias.
        alias: Ref,
    },
    /// A link-exit signal: `From`, linked to `To`, exited.
    Exit {
        /// The process that exited.
        from: Pid,
        /// The linked process.
        to: Pid,
        /// Why.
        reason: Term,
    },
    /// An exit signal sent with `exit(To, Reason)`.
    Exit2 {
        /// The sender.
        from: Pid,
        /// The target.
        to: Pid,
        /// The reason (`kill` cannot be trapped).
        reason: Term,
    },
    /// The old unlink (peers without UNLINK_ID).
    Unlink {
        /// The unlinking process.
        from: Pid,
        /// The process unlinked from.
        to: Pid,
    },
    /// Unlink with an id, acknowledged with [`Control::UnlinkIdAck`].
    UnlinkId {
        /// Ties the acknowledgement to the request.
        id: u64,
        /// The unlinking process.
        from: Pid,
        /// The process unlinked from.
        to: Pid,
    },
    /// Acknowledges an [`Control::UnlinkId`].
    UnlinkIdAck {
        /// The request's id.
        id: u64,
        /// The acknowledging process.
        from: Pid,
        /// The process that unlinked.
        to: Pid,
    },
    /// `From` monitors `To`.
    Monitor {
        /// The monitoring process.
        from: Pid,
        /// The monitored process.
        to: ProcRef,
        /// The monitor reference.
        reference: Ref,
    },
    /// `From` stops monitoring.
    Demonitor {
        /// The monitoring process.
        from: Pid,
        /// The monitored process.
        to: ProcRef,
        /// The monitor reference.
        reference: Ref,
    },
    /// A monitored process went away.
    MonitorExit {
        /// The process that went away, as the monitor named it.
        from: ProcRef,
        /// The monitoring process.
        to: Pid,
        /// The monitor reference.
        reference: Ref,
        /// Why.
        reason: Term,
    },
    /// `erlang:group_leader/2` on a remote process.
    GroupLeader {
        /// The new group leader.
        from: Pid,
        /// The process.
        to: Pid,
    },
    /// A remote spawn request.
    SpawnRequest {
        /// The request's reference, echoed in the reply.
        req_id: Ref,
        /// Who asked.
        from: Pid,
        /// `{M, F, A}`, for logs.
        mfa: Term,
    },
    /// The answer to a spawn request.
    SpawnReply {
        /// The request's reference.
        req_id: Ref,
        /// Who asked.
        to: Pid,
        /// A pid, or an error atom.
        result: Term,
    },
    /// An operation we do not know.
    Other {
        /// Its code.
        op: i64,
    },
}

/// The empty atom SEND and REG_SEND carry in their unused slot, made once (it is on every
/// message's path).
fn unused() -> Term {
    static EMPTY: std::sync::OnceLock<Atom> = std::sync::OnceLock::new();
    Term::Atom(EMPTY.get_or_init(|| Atom::from("")).clone())
}

fn bad(what: &str, t: &Term) -> BadControl {
    BadControl(format!("{what}: {}", term::Truncated(t, 200)))
}

fn as_u64(t: &Term) -> Option<u64> {
    match t {
        Term::Int(i) => u64::try_from(*i).ok(),
        Term::Big(b) if !b.negative && b.magnitude.len() <= 8 => {
            let mut a = [0u8; 8];
            a[..b.magnitude.len()].copy_from_slice(&b.magnitude);
            Some(u64::from_le_bytes(a))
        }
        _ => None,
    }
}

impl Control {
    /// The process that sent this, when the operation names one.
    pub fn sender(&self) -> Option<&Pid> {
        match self {
            Control::Send { from, .. } => from.as_ref(),
            Control::RegSend { from, .. }
            | Control::AliasSend { from, .. }
            | Control::Link { from, .. }
            | Control::Exit { from, .. }
            | Control::Exit2 { from, .. }
            | Control::Unlink { from, .. }
            | Control::UnlinkId { from, .. }
            | Control::UnlinkIdAck { from, .. }
            | Control::Monitor { from, .. }
            | Control::Demonitor { from, .. }
            | Control::GroupLeader { from, .. }
            | Control::SpawnRequest { from, .. } => Some(from),
            Control::MonitorExit { from, .. } => match from {
                ProcRef::Pid(p) => Some(p),
                ProcRef::Name(_) => None,
            },
            Control::SpawnReply { .. } | Control::Other { .. } => None,
        }
    }

    /// Whether a message payload follows the control term (reasons carried as payload are
    /// part of the control message, not this).
    pub fn has_message(&self) -> bool {
        matches!(
            self,
            Control::Send { .. }
                | Control::RegSend { .. }
                | Control::AliasSend { .. }
                | Control::SpawnRequest { .. }
        )
    }

    /// The control term to send to a peer with `peer_flags`, and the reason to send as the
    /// payload when the peer takes reasons as payload.
    pub fn to_term(&self, peer_flags: u64) -> (Term, Option<Term>) {
        let payload_exits = peer_flags & flags::EXIT_PAYLOAD != 0;
        let p = |pid: &Pid| Term::Pid(pid.clone());
        let r = |rf: &Ref| Term::Ref(rf.clone());
        match self {
            Control::Link { from, to } => (tuple(vec![int(1), p(from), p(to)]), None),
            Control::Send { from: None, to } => (tuple(vec![int(2), unused(), p(to)]), None),
            Control::Send { from: Some(f), to } if peer_flags & flags::SEND_SENDER != 0 => {
                (tuple(vec![int(22), p(f), p(to)]), None)
            }
            Control::Send { to, .. } => (tuple(vec![int(2), unused(), p(to)]), None),
            Control::RegSend { from, to } => (
                tuple(vec![int(6), p(from), unused(), Term::Atom(to.clone())]),
                None,
            ),
            Control::AliasSend { from, alias } => (tuple(vec![int(33), p(from), r(alias)]), None),
            Control::Exit { from, to, reason } if payload_exits => {
                (tuple(vec![int(24), p(from), p(to)]), Some(reason.clone()))
            }
            Control::Exit { from, to, reason } => {
                (tuple(vec![int(3), p(from), p(to), reason.clone()]), None)
            }
            Control::Exit2 { from, to, reason } if payload_exits => {
                (tuple(vec![int(26), p(from), p(to)]), Some(reason.clone()))
            }
            Control::Exit2 { from, to, reason } => {
                (tuple(vec![int(8), p(from), p(to), reason.clone()]), None)
            }
            Control::Unlink { from, to } => (tuple(vec![int(4), p(from), p(to)]), None),
            Control::UnlinkId { id, from, to } => {
                (tuple(vec![int(35), Term::from(*id), p(from), p(to)]), None)
            }
            Control::UnlinkIdAck { id, from, to } => {
                (tuple(vec![int(36), Term::from(*id), p(from), p(to)]), None)
            }
            Control::Monitor {
                from,
                to,
                reference,
            } => (
                tuple(vec![int(19), p(from), to.to_term(), r(reference)]),
                None,
            ),
            Control::Demonitor {
                from,
                to,
                reference,
            } => (
                tuple(vec![int(20), p(from), to.to_term(), r(reference)]),
                None,
            ),
            Control::MonitorExit {
                from,
                to,
                reference,
                reason,
            } if payload_exits => (
                tuple(vec![int(28), from.to_term(), p(to), r(reference)]),
                Some(reason.clone()),
            ),
            Control::MonitorExit {
                from,
                to,
                reference,
                reason,
            } => (
                tuple(vec![
                    int(21),
                    from.to_term(),
                    p(to),
                    r(reference),
                    reason.clone(),
                ]),
                None,
            ),
            Control::GroupLeader { from, to } => (tuple(vec![int(7), p(from), p(to)]), None),
            Control::SpawnRequest { req_id, from, mfa } => (
                tuple(vec![
                    int(29),
                    r(req_id),
                    p(from),
                    p(from),
                    mfa.clone(),
                    Term::nil(),
                ]),
                None,
            ),
            Control::SpawnReply { req_id, to, result } => (
                tuple(vec![int(31), r(req_id), p(to), int(0), result.clone()]),
                None,
            ),
            Control::Other { op } => (tuple(vec![int(*op)]), None),
        }
    }

    /// Decodes a control term. `reason` is the payload term for the payload-exit operations
    /// (the caller decodes it first, see [`Control::reason_in_payload`]).
    pub fn from_term(t: &Term, reason: Option<Term>) -> Result<Control, BadControl> {
        let els = t.as_tuple().ok_or_else(|| bad("not a tuple", t))?;
        let code = els
            .first()
            .and_then(Term::as_int)
            .ok_or_else(|| bad("no operation code", t))?;
        let Ok(op) = u8::try_from(code)
            .map_err(|_| ())
            .and_then(|c| Op::try_from(c).map_err(|_| ()))
        else {
            return Ok(Control::Other { op: code });
        };
        let pid = |i: usize| match els.get(i) {
            Some(Term::Pid(p)) => Ok(p.clone()),
            _ => Err(bad("expected a pid", t)),
        };
        let rf = |i: usize| match els.get(i) {
            Some(Term::Ref(r)) => Ok(r.clone()),
            _ => Err(bad("expected a reference", t)),
        };
        let arity = |n: usize| {
            if els.len() == n {
                Ok(())
            } else {
                Err(bad("wrong arity", t))
            }
        };
        let mut reason = reason;
        let mut take_reason = |i: Option<usize>| -> Result<Term, BadControl> {
            match i {
                Some(i) => els.get(i).cloned().ok_or_else(|| bad("no reason", t)),
                None => reason.take().ok_or_else(|| bad("no reason payload", t)),
            }
        };
        use Op::*;
        Ok(match op {
            Link => {
                arity(3)?;
                Control::Link {
                    from: pid(1)?,
                    to: pid(2)?,
                }
            }
            Send | SendTt => {
                arity(if op == Send { 3 } else { 4 })?;
                Control::Send {
                    from: None,
                    to: pid(2)?,
                }
            }
            SendSender | SendSenderTt => {
                arity(if op == SendSender { 3 } else { 4 })?;
                Control::Send {
                    from: Some(pid(1)?),
                    to: pid(2)?,
                }
            }
            RegSend | RegSendTt => {
                arity(if op == RegSend { 4 } else { 5 })?;
                let to = match els.get(3) {
                    Some(Term::Atom(a)) => a.clone(),
                    _ => return Err(bad("expected a registered name", t)),
                };
                Control::RegSend { from: pid(1)?, to }
            }
            AliasSend | AliasSendTt => {
                arity(if op == AliasSend { 3 } else { 4 })?;
                Control::AliasSend {
                    from: pid(1)?,
                    alias: rf(2)?,
                }
            }
            Exit | ExitTt | PayloadExit | PayloadExitTt => {
                let (n, at) = match op {
                    Exit => (4, Some(3)),
                    ExitTt => (5, Some(4)),
                    PayloadExit => (3, None),
                    _ => (4, None),
                };
                arity(n)?;
                Control::Exit {
                    from: pid(1)?,
                    to: pid(2)?,
                    reason: take_reason(at)?,
                }
            }
            Exit2 | Exit2Tt | PayloadExit2 | PayloadExit2Tt => {
                let (n, at) = match op {
                    Exit2 => (4, Some(3)),
                    Exit2Tt => (5, Some(4)),
                    PayloadExit2 => (3, None),
                    _ => (4, None),
                };
                arity(n)?;
                Control::Exit2 {
                    from: pid(1)?,
                    to: pid(2)?,
                    reason: take_reason(at)?,
                }
            }
            Unlink => {
                arity(3)?;
                Control::Unlink {
                    from: pid(1)?,
                    to: pid(2)?,
                }
            }
            UnlinkId | UnlinkIdAck => {
                arity(4)?;
                let id = els
                    .get(1)
                    .and_then(as_u64)
                    .ok_or_else(|| bad("expected an unlink id", t))?;
                let (from, to) = (pid(2)?, pid(3)?);
                if op == UnlinkId {
                    Control::UnlinkId { id, from, to }
                } else {
                    Control::UnlinkIdAck { id, from, to }
                }
            }
            MonitorP | DemonitorP => {
                arity(4)?;
                let from = pid(1)?;
                let to = ProcRef::from_term(&els[2])?;
                let reference = rf(3)?;
                if op == MonitorP {
                    Control::Monitor {
                        from,
                        to,
                        reference,
                    }
                } else {
                    Control::Demonitor {
                        from,
                        to,
                        reference,
                    }
                }
            }
            MonitorPExit | PayloadMonitorPExit => {
                let at = if op == MonitorPExit {
                    arity(5)?;
                    Some(4)
                } else {
                    arity(4)?;
                    None
                };
                Control::MonitorExit {
                    from: ProcRef::from_term(&els[1])?,
                    to: pid(2)?,
                    reference: rf(3)?,
                    reason: take_reason(at)?,
                }
            }
            GroupLeader => {
                arity(3)?;
                Control::GroupLeader {
                    from: pid(1)?,
                    to: pid(2)?,
                }
            }
            SpawnRequest | SpawnRequestTt => {
                arity(if op == SpawnRequest { 6 } else { 7 })?;
                Control::SpawnRequest {
                    req_id: rf(1)?,
                    from: pid(2)?,
                    mfa: els[4].clone(),
                }
            }
            SpawnReply | SpawnReplyTt => {
                arity(if op == SpawnReply { 5 } else { 6 })?;
                Control::SpawnReply {
                    req_id: rf(1)?,
                    to: pid(2)?,
                    result: els[4].clone(),
                }
            }
        })
    }

    /// Whether the control term `t` carries its exit reason as the payload term.
    pub fn reason_in_payload(t: &Term) -> bool {
        let op = t.as_tuple().and_then(|e| e.first()).and_then(Term::as_int);
        matches!(op, Some(24..=28))
    }
}

#[cfg(test)]
mod tests {
    use super::super::term::atom;
    use super::*;

    fn pid(id: u32) -> Pid {
        Pid::new("a@127.0.0.1", id, 0, 5)
    }

    fn rf() -> Ref {
        Ref::new("b@127.0.0.1", 5, &[1, 2, 3])
    }

    #[test]
    fn every_control_round_trips_in_both_exit_forms() {
        let cases = vec![
            Control::Link {
                from: pid(1),
                to: pid(2),
            },
            Control::Send {
                from: None,
                to: pid(1),
            },
            Control::Send {
                from: Some(pid(3)),
                to: pid(1),
            },
            Control::RegSend {
                from: pid(1),
                to: "beacon".into(),
            },
            Control::AliasSend {
                from: pid(1),
                alias: rf(),
            },
            Control::Exit {
                from: pid(1),
                to: pid(2),
                reason: atom("normal"),
            },
            Control::Exit2 {
                from: pid(1),
                to: pid(2),
                reason: atom("kill"),
            },
            Control::Unlink {
                from: pid(1),
                to: pid(2),
            },
            Control::UnlinkId {
                id: u64::MAX,
                from: pid(1),
                to: pid(2),
            },
            Control::UnlinkIdAck {
                id: 7,
                from: pid(2),
                to: pid(1),
            },
            Control::Monitor {
                from: pid(1),
                to: ProcRef::Name("net_kernel".into()),
                reference: rf(),
            },
            Control::Demonitor {
                from: pid(1),
                to: ProcRef::Pid(pid(3)),
                reference: rf(),
            },
            Control::MonitorExit {
                from: ProcRef::Name("nosuch".into()),
                to: pid(1),
                reference: rf(),
                reason: atom("noproc"),
            },
            Control::GroupLeader {
                from: pid(1),
                to: pid(2),
            },
            Control::SpawnReply {
                req_id: rf(),
                to: pid(1),
                result: atom("notsup"),
            },
        ];
        for peer_flags in [
            flags::OURS,
            flags::OURS & !(flags::EXIT_PAYLOAD | flags::SEND_SENDER),
        ] {
            for ctl in &cases {
                let (t, reason) = ctl.to_term(peer_flags);
                assert_eq!(reason.is_some(), Control::reason_in_payload(&t));
                let back = Control::from_term(&t, reason).unwrap();
                let expected = match (ctl, peer_flags & flags::SEND_SENDER) {
                    (Control::Send { to, .. }, 0) => Control::Send {
                        from: None,
                        to: to.clone(),
                    },
                    _ => ctl.clone(),
                };
                assert_eq!(back, expected, "{t}");
            }
        }
    }

    #[test]
    fn malformed_controls_are_errors_and_unknown_ops_pass() {
        for t in [
            atom("x"),
            tuple(vec![atom("x")]),
            tuple(vec![int(2), atom(""), atom("notapid")]),
            tuple(vec![int(6), Term::Pid(pid(1)), atom(""), int(3)]),
            tuple(vec![int(19), Term::Pid(pid(1)), int(5), Term::Ref(rf())]),
            tuple(vec![
                int(35),
                atom("id"),
                Term::Pid(pid(1)),
                Term::Pid(pid(2)),
            ]),
            tuple(vec![int(1), Term::Pid(pid(1))]),
        ] {
            assert!(Control::from_term(&t, None).is_err(), "{t}");
        }
        // A payload-exit without its reason.
        let t = tuple(vec![int(24), Term::Pid(pid(1)), Term::Pid(pid(2))]);
        assert!(Control::from_term(&t, None).is_err());
        assert_eq!(
            Control::from_term(&tuple(vec![int(99)]), None),
            Ok(Control::Other { op: 99 })
        );
        // Trace-token forms decode like the plain ones.
        let t = tuple(vec![int(12), atom(""), Term::Pid(pid(1)), atom("token")]);
        assert_eq!(
            Control::from_term(&t, None),
            Ok(Control::Send {
                from: None,
                to: pid(1)
            })
        );
    }
}
