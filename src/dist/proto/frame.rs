//! Data frames of a connected distribution channel.
//!
//! After the handshake every frame is a u32 big-endian length and that many bytes; a zero
//! length is a tick. We send and accept pass-through frames: the byte 112, the control term
//! (`131, …`), then, for messages that carry one, the payload term (a message, or an exit
//! reason for the payload-exit operations). No atom cache, no fragments.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::control::{BadControl, Control};
use super::term::{self, DecodeError, Term};

/// Default largest frame accepted: 128 MiB.
pub const DEFAULT_MAX_FRAME: usize = 128 << 20;
/// The pass-through marker that starts every data frame we accept.
pub const PASS_THROUGH: u8 = 112;
/// A tick: a frame of length zero.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

/// Errors in a data frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Not a pass-through frame.
    #[error("unsupported frame type {0} (only pass-through frames are supported)")]
    NotPassThrough(u8),
    /// A term in the frame is malformed.
    #[error(transparent)]
    Term(#[from] DecodeError),
    /// The control term is not a control message.
    #[error(transparent)]
    Control(#[from] BadControl),
    /// Bytes after the last term.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// A decoded data frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The control message.
    pub control: Control,
    /// The message term, for the operations that carry one.
    pub payload: Option<Term>,
}

/// The length announced by a frame header, if `buf` holds one; `Ok(Some(0))` is a tick.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Decodes a data frame's bytes (after the length).
pub fn decode_data(frame: &Bytes) -> Result<Message, FrameError> {
    let kind = *frame.first().ok_or(FrameError::NotPassThrough(0))?;
    if kind != PASS_THROUGH {
        return Err(FrameError::NotPassThrough(kind));
    }
    let (ctl, mut at) = term::decode(frame, 1)?;
    let mut reason = None;
    if Control::reason_in_payload(&ctl) {
        let (r, end) = term::decode(frame, at)?;
        reason = Some(r);
        at = end;
    }
    let control = Control::from_term(&ctl, reason)?;
    let payload = if control.has_message() {
        let (p, end) = term::decode(frame, at)?;
        at = end;
        Some(p)
    } else if matches!(control, Control::Other { .. }) {
        // An operation we do not know: its payload, if any, goes unread.
        at = frame.len();
        None
    } else {
        None
    };
    if at != frame.len() {
        return Err(FrameError::Trailing(frame.len() - at));
    }
    Ok(Message { control, payload })
}

/// Appends a whole frame (length, pass-through byte, control term, payload term) for a peer
/// with `peer_flags` to `out`.
pub fn encode_data(control: &Control, message: Option<&Term>, peer_flags: u64, out: &mut BytesMut) {
    let (ctl, reason) = control.to_term(peer_flags);
    let payload = reason.as_ref().or(message);
    let len = 1 + term::encoded_len(&ctl) + payload.map_or(0, term::encoded_len);
    out.reserve(4 + len);
    out.put_u32(len as u32);
    out.put_u8(PASS_THROUGH);
    term::encode(&ctl, out);
    if let Some(p) = payload {
        term::encode(p, out);
    }
}

/// One frame as its own buffer.
pub fn data_frame(control: &Control, message: Option<&Term>, peer_flags: u64) -> Bytes {
    let mut out = BytesMut::new();
    encode_data(control, message, peer_flags, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::super::control::ProcRef;
    use super::super::flags;
    use super::super::term::{atom, int, tuple, Pid, Ref};
    use super::*;

    fn p(id: u32) -> Pid {
        Pid::new("a@127.0.0.1", id, 0, 5)
    }

    fn body(frame: Bytes) -> Bytes {
        assert_eq!(
            frame_len(&frame, DEFAULT_MAX_FRAME).unwrap(),
            Some(frame.len() - 4)
        );
        frame.slice(4..)
    }

    #[test]
    fn frames_round_trip() {
        let msg = tuple(vec![atom("hello"), int(1)]);
        let cases = vec![
            (
                Control::RegSend {
                    from: p(1),
                    to: "beacon".into(),
                },
                Some(msg.clone()),
            ),
            (
                Control::Exit {
                    from: p(1),
                    to: p(2),
                    reason: atom("killed"),
                },
                None,
            ),
            (
                Control::MonitorExit {
                    from: ProcRef::Name("x".into()),
                    to: p(1),
                    reference: Ref::new("a@127.0.0.1", 1, &[1]),
                    reason: atom("noproc"),
                },
                None,
            ),
        ];
        for (ctl, payload) in cases {
            let f = body(data_frame(&ctl, payload.as_ref(), flags::OURS));
            let m = decode_data(&f).unwrap();
            assert_eq!((m.control, m.payload), (ctl, payload));
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(
            decode_data(&Bytes::new()),
            Err(FrameError::NotPassThrough(0))
        );
        assert_eq!(
            decode_data(&Bytes::from_static(&[68, 1])),
            Err(FrameError::NotPassThrough(68))
        );
        assert!(matches!(
            decode_data(&Bytes::from_static(&[112, 131])),
            Err(FrameError::Term(_))
        ));
        // A SEND without its message, and with trailing bytes.
        let send = Control::Send {
            from: None,
            to: p(1),
        };
        let f = body(data_frame(&send, None, flags::OURS));
        assert!(matches!(decode_data(&f), Err(FrameError::Term(_))));
        let mut f = BytesMut::from(&body(data_frame(&send, Some(&int(1)), flags::OURS))[..]);
        f.put_u8(0);
        assert_eq!(decode_data(&f.freeze()), Err(FrameError::Trailing(1)));
        assert!(matches!(
            frame_len(&[0, 0, 1, 0], 16),
            Err(FrameError::TooLarge { len: 256, max: 16 })
        ));
        assert_eq!(frame_len(&[0, 0, 0], 16), Ok(None));
        assert_eq!(frame_len(&TICK, 16), Ok(Some(0)));
    }

    #[test]
    fn unknown_operations_skip_their_payload() {
        let mut v = vec![112];
        term::encode(&tuple(vec![int(99), atom("x")]), &mut v);
        v.extend_from_slice(&[131, 106]);
        let m = decode_data(&Bytes::from(v)).unwrap();
        assert_eq!(m.control, Control::Other { op: 99 });
    }
}
