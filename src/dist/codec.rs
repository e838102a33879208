//! Framing and control messages of a connected distribution channel.
//!
//! After the handshake every frame is a u32 big-endian length and that many bytes; a zero
//! length is a tick. We use pass-through frames only (no atom cache, no fragments): the byte
//! 112, then the control tuple as a full term (`131, …`), then, for messages that carry one,
//! the payload term. The frame decoder is a `tokio_util` codec, so reading is cancel-safe.

use bytes::{Buf, BufMut, BytesMut};
use eetf::{Atom, Pid, Reference, Term};
use thiserror::Error;
use tokio_util::codec::Decoder;

use super::term::{self, TermError};

/// Default largest frame accepted: 128 MiB.
pub const DEFAULT_MAX_FRAME: usize = 128 << 20;
/// The pass-through marker that starts every data frame we accept.
const PASS_THROUGH: u8 = 112;
/// MONITOR_P_EXIT with the reason carried as the payload term.
const PAYLOAD_MONITOR_P_EXIT: i32 = 28;

/// Errors on a connected channel.
#[derive(Debug, Error)]
pub enum CodecError {
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The frame is not a pass-through frame.
    #[error("unsupported frame type {0} (only pass-through frames are supported)")]
    NotPassThrough(u8),
    /// A term in the frame is malformed.
    #[error(transparent)]
    Term(#[from] TermError),
    /// The control term is not a control message we understand.
    #[error("malformed control message: {0}")]
    BadControl(String),
    /// Bytes after the last term.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One frame read from the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A keep-alive.
    Tick,
    /// A data frame's payload (after the length).
    Data(BytesMut),
}

/// The `tokio_util` decoder for connected frames.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A decoder that refuses frames above `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec { max_frame }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len == 0 {
            src.advance(4);
            return Ok(Some(Frame::Tick));
        }
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(Frame::Data(src.split_to(len))))
    }
}

/// The target of a monitor: a pid or a registered name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcRef {
    /// A process by pid.
    Pid(Pid),
    /// A process by registered name.
    Name(String),
}

impl ProcRef {
    fn to_term(&self) -> Term {
        match self {
            ProcRef::Pid(p) => term::pid(p),
            ProcRef::Name(n) => term::atom(n),
        }
    }

    fn from_term(t: &Term) -> Result<ProcRef, CodecError> {
        match t {
            Term::Pid(p) => Ok(ProcRef::Pid(p.clone())),
            Term::Atom(a) => Ok(ProcRef::Name(a.name.clone())),
            other => Err(CodecError::BadControl(format!(
                "expected a pid or name, got {other}"
            ))),
        }
    }
}

/// A distribution control message (the first term of a data frame).
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// `{2, '', ToPid}` + message.
    Send {
        /// Receiver.
        to: Pid,
    },
    /// `{6, FromPid, '', ToName}` + message.
    RegSend {
        /// Sender.
        from: Pid,
        /// Registered name.
        to: String,
    },
    /// `{22, FromPid, ToPid}` + message.
    SendSender {
        /// Sender.
        from: Pid,
        /// Receiver.
        to: Pid,
    },
    /// `{19, FromPid, ToProc, Ref}`.
    Monitor {
        /// The monitoring process.
        from: Pid,
        /// The monitored process.
        to: ProcRef,
        /// The monitor reference.
        reference: Reference,
    },
    /// `{20, FromPid, ToProc, Ref}`.
    Demonitor {
        /// The monitoring process.
        from: Pid,
        /// The monitored process.
        to: ProcRef,
        /// The monitor reference.
        reference: Reference,
    },
    /// `{21, FromProc, ToPid, Ref, Reason}`, or `{28, FromProc, ToPid, Ref}` with the reason as
    /// payload (PAYLOAD_MONITOR_P_EXIT, which OTP sends to peers that advertise EXIT_PAYLOAD).
    MonitorExit {
        /// The process that went away.
        from: ProcRef,
        /// The monitoring process.
        to: Pid,
        /// The monitor reference.
        reference: Reference,
        /// Why it went away.
        reason: Term,
    },
    /// `{33, FromPid, Alias}` + message.
    AliasSend {
        /// Sender.
        from: Pid,
        /// The alias (a reference) to deliver to.
        alias: Reference,
    },
    /// `{29, ReqId, From, GroupLeader, {M, F, A}, Opts}` + argument list: a remote spawn.
    SpawnRequest {
        /// The request's reference, echoed in the reply.
        req_id: Reference,
        /// Who asked.
        from: Pid,
    },
    /// `{31, ReqId, To, Flags, Result}`: the answer to a spawn request.
    SpawnReply {
        /// The request's reference.
        req_id: Reference,
        /// Who asked.
        to: Pid,
        /// A pid, or an error atom.
        result: Term,
    },
    /// Any other operation (links, exits, group leader…), kept for logging.
    Other {
        /// The operation code.
        op: i32,
    },
}

impl Control {
    /// Whether a payload term follows this control message.
    pub fn has_payload(&self) -> bool {
        matches!(
            self,
            Control::Send { .. }
                | Control::RegSend { .. }
                | Control::SendSender { .. }
                | Control::AliasSend { .. }
                | Control::SpawnRequest { .. }
        )
    }

    fn to_term(&self) -> Term {
        use term::{atom, int, pid, reference, tuple};
        match self {
            Control::Send { to } => tuple(vec![int(2), atom(""), pid(to)]),
            Control::RegSend { from, to } => tuple(vec![int(6), pid(from), atom(""), atom(to)]),
            Control::SendSender { from, to } => tuple(vec![int(22), pid(from), pid(to)]),
            Control::Monitor {
                from,
                to,
                reference: r,
            } => tuple(vec![int(19), pid(from), to.to_term(), reference(r)]),
            Control::Demonitor {
                from,
                to,
                reference: r,
            } => tuple(vec![int(20), pid(from), to.to_term(), reference(r)]),
            Control::MonitorExit {
                from,
                to,
                reference: r,
                reason,
            } => tuple(vec![
                int(21),
                from.to_term(),
                pid(to),
                reference(r),
                reason.clone(),
            ]),
            Control::AliasSend { from, alias } => tuple(vec![int(33), pid(from), reference(alias)]),
            Control::SpawnRequest { req_id, from } => tuple(vec![
                int(29),
                reference(req_id),
                pid(from),
                pid(from),
                tuple(vec![atom("erlang"), atom("self"), int(0)]),
                term::list(vec![]),
            ]),
            Control::SpawnReply { req_id, to, result } => tuple(vec![
                int(31),
                reference(req_id),
                pid(to),
                int(0),
                result.clone(),
            ]),
            Control::Other { op } => tuple(vec![int(*op)]),
        }
    }

    fn from_term(t: &Term) -> Result<Control, CodecError> {
        let bad = |what: &str| CodecError::BadControl(format!("{what}: {t}"));
        let els = term::as_tuple(t).ok_or_else(|| bad("not a tuple"))?;
        let op = els
            .first()
            .and_then(term::as_int)
            .ok_or_else(|| bad("no operation code"))?;
        let pid_at = |i: usize| match els.get(i) {
            Some(Term::Pid(p)) => Ok(p.clone()),
            _ => Err(bad("expected a pid")),
        };
        let ref_at = |i: usize| match els.get(i) {
            Some(Term::Reference(r)) => Ok((**r).clone()),
            _ => Err(bad("expected a reference")),
        };
        let arity = |n: usize| {
            if els.len() == n {
                Ok(())
            } else {
                Err(bad("wrong arity"))
            }
        };
        Ok(match op {
            2 => {
                arity(3)?;
                Control::Send { to: pid_at(2)? }
            }
            6 => {
                arity(4)?;
                let to = els
                    .get(3)
                    .and_then(term::as_atom)
                    .ok_or_else(|| bad("expected a name"))?;
                Control::RegSend {
                    from: pid_at(1)?,
                    to: to.to_owned(),
                }
            }
            22 => {
                arity(3)?;
                Control::SendSender {
                    from: pid_at(1)?,
                    to: pid_at(2)?,
                }
            }
            19 | 20 => {
                arity(4)?;
                let from = pid_at(1)?;
                let to = ProcRef::from_term(&els[2])?;
                let reference = ref_at(3)?;
                if op == 19 {
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
            21 => {
                arity(5)?;
                Control::MonitorExit {
                    from: ProcRef::from_term(&els[1])?,
                    to: pid_at(2)?,
                    reference: ref_at(3)?,
                    reason: els[4].clone(),
                }
            }
            29 => {
                arity(6)?;
                Control::SpawnRequest {
                    req_id: ref_at(1)?,
                    from: pid_at(2)?,
                }
            }
            31 => {
                arity(5)?;
                Control::SpawnReply {
                    req_id: ref_at(1)?,
                    to: pid_at(2)?,
                    result: els[4].clone(),
                }
            }
            PAYLOAD_MONITOR_P_EXIT => {
                arity(4)?;
                Control::MonitorExit {
                    from: ProcRef::from_term(&els[1])?,
                    to: pid_at(2)?,
                    reference: ref_at(3)?,
                    // Filled in from the payload by `decode_data`.
                    reason: Term::from(eetf::List::nil()),
                }
            }
            33 => {
                arity(3)?;
                Control::AliasSend {
                    from: pid_at(1)?,
                    alias: ref_at(2)?,
                }
            }
            op => Control::Other { op },
        })
    }
}

/// Decodes a data frame's payload into its control message and optional payload term.
/// Operations we do not handle keep their payload undecoded (it is dropped).
pub fn decode_data(frame: &[u8]) -> Result<(Control, Option<Term>), CodecError> {
    let (&kind, rest) = frame.split_first().ok_or(CodecError::NotPassThrough(0))?;
    if kind != PASS_THROUGH {
        return Err(CodecError::NotPassThrough(kind));
    }
    let (ctl_term, used) = term::decode(rest)?;
    let mut control = Control::from_term(&ctl_term)?;
    let rest = &rest[used..];
    let reason_in_payload = term::as_tuple(&ctl_term)
        .and_then(|t| t.first())
        .and_then(term::as_int)
        == Some(PAYLOAD_MONITOR_P_EXIT);
    if reason_in_payload {
        let (reason, used) = term::decode(rest)?;
        if used != rest.len() {
            return Err(CodecError::Trailing(rest.len() - used));
        }
        if let Control::MonitorExit { reason: slot, .. } = &mut control {
            *slot = reason;
        }
        return Ok((control, None));
    }
    if matches!(control, Control::Other { .. }) {
        return Ok((control, None));
    }
    if !control.has_payload() {
        if !rest.is_empty() {
            return Err(CodecError::Trailing(rest.len()));
        }
        return Ok((control, None));
    }
    let (payload, used) = term::decode(rest)?;
    if used != rest.len() {
        return Err(CodecError::Trailing(rest.len() - used));
    }
    Ok((control, Some(payload)))
}

/// Appends a whole frame (length, pass-through byte, control term, payload term) to `out`.
pub fn encode_data(control: &Control, payload: Option<&Term>, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(PASS_THROUGH);
    let mut w = out.writer();
    // Encoding into memory cannot fail for terms we construct.
    let _ = control.to_term().encode(&mut w);
    if let Some(p) = payload {
        let _ = p.encode(&mut w);
    }
    let out = w.into_inner();
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// An empty atom, as SEND and REG_SEND carry in their unused cookie slot.
pub fn empty_atom() -> Atom {
    Atom::from("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u32) -> Pid {
        Pid::new("a@127.0.0.1", id, 0, 5)
    }

    fn r() -> Reference {
        Reference {
            node: Atom::from("b@127.0.0.1"),
            id: vec![1, 2, 3],
            creation: 5,
        }
    }

    #[test]
    fn every_control_round_trips() {
        let msg = term::tuple(vec![term::atom("hello"), term::int(1)]);
        let cases = vec![
            (Control::Send { to: p(1) }, Some(msg.clone())),
            (
                Control::RegSend {
                    from: p(1),
                    to: "beacon".into(),
                },
                Some(msg.clone()),
            ),
            (
                Control::SendSender {
                    from: p(1),
                    to: p(2),
                },
                Some(msg.clone()),
            ),
            (
                Control::Monitor {
                    from: p(1),
                    to: ProcRef::Name("net_kernel".into()),
                    reference: r(),
                },
                None,
            ),
            (
                Control::Demonitor {
                    from: p(1),
                    to: ProcRef::Pid(p(3)),
                    reference: r(),
                },
                None,
            ),
            (
                Control::MonitorExit {
                    from: ProcRef::Name("nosuch".into()),
                    to: p(1),
                    reference: r(),
                    reason: term::atom("noproc"),
                },
                None,
            ),
            (
                Control::AliasSend {
                    from: p(1),
                    alias: r(),
                },
                Some(msg),
            ),
        ];
        for (ctl, payload) in cases {
            let mut out = BytesMut::new();
            encode_data(&ctl, payload.as_ref(), &mut out);
            let mut codec = FrameCodec::new(DEFAULT_MAX_FRAME);
            let Some(Frame::Data(data)) = codec.decode(&mut out).unwrap() else {
                panic!("no frame")
            };
            assert!(out.is_empty());
            assert_eq!(decode_data(&data).unwrap(), (ctl, payload));
        }
    }

    #[test]
    fn ticks_partial_frames_and_oversize() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Tick));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.put_u8(3);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.put_slice(b"ab");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.put_u8(b'c');
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Frame::Data(BytesMut::from(&b"abc"[..])))
        );
        let mut big = BytesMut::from(&17u32.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut big),
            Err(CodecError::FrameTooLarge { len: 17, max: 16 })
        ));
    }

    #[test]
    fn malformed_data_frames_are_errors() {
        assert!(matches!(
            decode_data(&[]),
            Err(CodecError::NotPassThrough(0))
        ));
        assert!(matches!(
            decode_data(&[68, 1]),
            Err(CodecError::NotPassThrough(68))
        ));
        assert!(matches!(decode_data(&[112, 131]), Err(CodecError::Term(_))));
        // A control that is not a tuple, a tuple without an op code, a SEND without a pid.
        let mut v = vec![112];
        term::encode(&term::atom("x"), &mut v);
        assert!(matches!(decode_data(&v), Err(CodecError::BadControl(_))));
        let mut v = vec![112];
        term::encode(&term::tuple(vec![term::atom("x")]), &mut v);
        assert!(matches!(decode_data(&v), Err(CodecError::BadControl(_))));
        let mut v = vec![112];
        term::encode(
            &term::tuple(vec![term::int(2), term::atom(""), term::atom("notapid")]),
            &mut v,
        );
        assert!(matches!(decode_data(&v), Err(CodecError::BadControl(_))));
        // SEND without its payload, and with trailing bytes.
        let mut out = BytesMut::new();
        encode_data(&Control::Send { to: p(1) }, None, &mut out);
        assert!(matches!(decode_data(&out[4..]), Err(CodecError::Term(_))));
        let mut out = BytesMut::new();
        encode_data(&Control::Send { to: p(1) }, Some(&term::int(1)), &mut out);
        out.put_u8(0);
        assert!(matches!(
            decode_data(&out[4..]),
            Err(CodecError::Trailing(1))
        ));
    }

    #[test]
    fn payload_monitor_exit_carries_the_reason_as_payload() {
        // {28, FromProc, ToPid, Ref} + Reason, as OTP 25 sends when EXIT_PAYLOAD is agreed.
        let mut v = vec![112];
        term::encode(
            &term::tuple(vec![
                term::int(28),
                term::atom("cluster_events"),
                term::pid(&p(1)),
                term::reference(&r()),
            ]),
            &mut v,
        );
        term::encode(&term::atom("noproc"), &mut v);
        assert_eq!(
            decode_data(&v).unwrap(),
            (
                Control::MonitorExit {
                    from: ProcRef::Name("cluster_events".into()),
                    to: p(1),
                    reference: r(),
                    reason: term::atom("noproc"),
                },
                None
            )
        );
        v.truncate(v.len() - 3);
        assert!(decode_data(&v).is_err());
    }

    #[test]
    fn unknown_operations_are_passed_up_without_their_payload() {
        let mut v = vec![112];
        term::encode(&term::tuple(vec![term::int(1), term::atom("x")]), &mut v);
        v.extend_from_slice(&[131, 106]);
        assert_eq!(decode_data(&v).unwrap(), (Control::Other { op: 1 }, None));
    }
}
