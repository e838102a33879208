//! Data frames of a connected distribution channel, in both of the layouts OTP uses.
//!
//! After the handshake every frame is a u32 big-endian length and that many bytes; a zero
//! length is a tick. What follows the length depends on the flags both sides advertised
//! ([`Framing`]):
//! - **Pass-through** (no `DFLAG_FRAGMENTS`): the byte 112, the control term (`131, …`), then,
//!   for operations that carry one, the payload term (`131, …`): a message, or an exit reason
//!   for the payload-exit operations.
//! - **Header** (`DFLAG_FRAGMENTS` on both sides, as between OTP 22+ nodes): a distribution
//!   header `131, 68` with an atom-cache count of 0, then the control and payload terms
//!   *without* their version bytes. A message whose payload is larger than [`FRAGMENT_SIZE`]
//!   goes as a sequence of fragments: a start frame `131, 69, SeqId:64, FragId:64, 0`, the
//!   control term and the first part of the payload, then continuation frames
//!   `131, 70, SeqId:64, FragId:64` with the rest. FragId counts down to 1, the last fragment.
//!   Other messages may travel between the fragments of a sequence, which is the point: a
//!   200 MB message does not hold up a small call on the same connection.
//!   With the header layout agreed, OTP drops a connection that sends it a pass-through frame,
//!   so a connection uses one layout for everything.
//!
//! We never advertise the atom cache, so a header with atom-cache references is refused.
//! Reassembling fragments is [`super::reassembly`]'s business; this module decodes one frame.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::control::{BadControl, Control};
use super::flags;
use super::term::{self, DecodeError, Pid, Term};

/// Default largest message accepted from a peer: 256 MiB. Larger messages are refused on their
/// own; the connection stays up.
pub const DEFAULT_MAX_MESSAGE: usize = 256 << 20;
/// Payloads larger than this are sent as fragments of this size (OTP's own fragment size).
pub const FRAGMENT_SIZE: usize = 64 * 1024;
/// The pass-through marker that starts every frame of the pass-through layout.
pub const PASS_THROUGH: u8 = 112;
/// A tick: a frame of length zero.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

const VERSION: u8 = 131;
const DIST_HEADER: u8 = 68;
const FRAG_HEADER: u8 = 69;
const FRAG_CONT: u8 = 70;
/// Bytes before the control term in a start fragment: 131, 69, seq, frag, atom count.
const START_HEADER: usize = 2 + 8 + 8 + 1;
/// Bytes of a continuation fragment's header: 131, 70, seq, frag.
const CONT_HEADER: usize = 2 + 8 + 8;

/// How frames are laid out on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Byte 112, then terms with version bytes; no fragments.
    PassThrough,
    /// A distribution header, then terms without version bytes; fragments allowed.
    Header,
}

impl Framing {
    /// The layout for a peer that advertised `peer_flags` (we always advertise
    /// `DFLAG_FRAGMENTS`, so the peer decides).
    pub fn for_peer(peer_flags: u64) -> Framing {
        if peer_flags & flags::FRAGMENTS != 0 {
            Framing::Header
        } else {
            Framing::PassThrough
        }
    }

    fn decode_term(self, buf: &Bytes, at: usize) -> Result<(Term, usize), DecodeError> {
        match self {
            Framing::PassThrough => term::decode(buf, at),
            Framing::Header => term::decode_body(buf, at),
        }
    }

    fn encode_term(self, t: &Term, out: &mut BytesMut) {
        match self {
            Framing::PassThrough => term::encode(t, out),
            Framing::Header => term::encode_body(t, out),
        }
    }

    fn term_len(self, t: &Term) -> usize {
        match self {
            Framing::PassThrough => term::encoded_len(t),
            Framing::Header => term::encoded_len(t) - 1,
        }
    }
}

/// Errors in a data frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame that does not start the way the connection's layout says.
    #[error("unexpected frame start {0:?} for this connection's layout")]
    BadStart(Vec<u8>),
    /// A distribution header with atom-cache references (we never agree to the atom cache).
    #[error("distribution header with {0} atom-cache references (the atom cache was not agreed)")]
    AtomCache(u8),
    /// A fragment header with fragment id 0.
    #[error("fragment id 0 in sequence {0}")]
    BadFragment(u64),
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

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The control message.
    pub control: Control,
    /// The message term, for the operations that carry one.
    pub payload: Option<Term>,
}

/// One data frame, decoded as far as its kind allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A whole message.
    Whole(Message),
    /// The first fragment of `count`: the control term, and the start of the payload.
    Start {
        /// Identifies the sequence on this connection.
        seq: u64,
        /// How many fragments the message has.
        count: u64,
        /// The control term, still undecoded into a [`Control`] (an exit reason may be in the
        /// payload).
        control: Term,
        /// The first part of the payload's bytes.
        payload: Bytes,
    },
    /// A later fragment.
    Cont {
        /// The sequence it belongs to.
        seq: u64,
        /// Its fragment id: the last fragment is 1.
        index: u64,
        /// Its part of the payload.
        payload: Bytes,
    },
}

/// The length announced by a frame header, if `buf` holds one; `Some(0)` is a tick.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let head: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(head) as usize)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn start_of(frame: &[u8]) -> FrameError {
    FrameError::BadStart(frame.iter().take(2).copied().collect())
}

/// Decodes a data frame's bytes (after the length) laid out as `framing`.
pub fn decode_frame(frame: &Bytes, framing: Framing) -> Result<Inbound, FrameError> {
    match framing {
        Framing::PassThrough => {
            if frame.first() != Some(&PASS_THROUGH) {
                return Err(start_of(frame));
            }
            Ok(Inbound::Whole(whole(frame, 1, framing)?))
        }
        Framing::Header => {
            if frame.len() < 3 || frame[0] != VERSION {
                return Err(start_of(frame));
            }
            match frame[1] {
                DIST_HEADER => {
                    atom_count(frame[2])?;
                    Ok(Inbound::Whole(whole(frame, 3, framing)?))
                }
                FRAG_HEADER if frame.len() >= START_HEADER => {
                    let seq = be64(&frame[2..]);
                    let count = be64(&frame[10..]);
                    if count == 0 {
                        return Err(FrameError::BadFragment(seq));
                    }
                    atom_count(frame[18])?;
                    let (control, at) = framing.decode_term(frame, START_HEADER)?;
                    Ok(Inbound::Start {
                        seq,
                        count,
                        control,
                        payload: frame.slice(at..),
                    })
                }
                FRAG_CONT if frame.len() >= CONT_HEADER => {
                    let seq = be64(&frame[2..]);
                    let index = be64(&frame[10..]);
                    if index == 0 {
                        return Err(FrameError::BadFragment(seq));
                    }
                    Ok(Inbound::Cont {
                        seq,
                        index,
                        payload: frame.slice(CONT_HEADER..),
                    })
                }
                _ => Err(start_of(frame)),
            }
        }
    }
}

fn atom_count(n: u8) -> Result<(), FrameError> {
    if n == 0 {
        Ok(())
    } else {
        Err(FrameError::AtomCache(n))
    }
}

/// A whole message: the control term at `at`, then its payload term if it has one.
fn whole(frame: &Bytes, at: usize, framing: Framing) -> Result<Message, FrameError> {
    let (ctl, at) = framing.decode_term(frame, at)?;
    finish(ctl, frame, at, framing)
}

/// Completes a message from its control term and the bytes of its payload (from `at` to the
/// end of `payload`).
pub fn finish(
    ctl: Term,
    payload: &Bytes,
    mut at: usize,
    framing: Framing,
) -> Result<Message, FrameError> {
    let mut reason = None;
    if Control::reason_in_payload(&ctl) {
        let (r, end) = framing.decode_term(payload, at)?;
        reason = Some(r);
        at = end;
    }
    let control = Control::from_term(&ctl, reason)?;
    let message = if control.has_message() {
        let (p, end) = framing.decode_term(payload, at)?;
        at = end;
        Some(p)
    } else if matches!(control, Control::Other { .. }) {
        // An operation we do not know: its payload, if any, goes unread.
        at = payload.len();
        None
    } else {
        None
    };
    if at != payload.len() {
        return Err(FrameError::Trailing(payload.len() - at));
    }
    Ok(Message {
        control,
        payload: message,
    })
}

/// The caller of a `gen_call` whose message starts with `prefix` (a whole frame's bytes, or
/// only their beginning), so that a message we refuse or cannot decode is still answered.
pub fn sniff_frame_call(prefix: &Bytes, framing: Framing) -> Option<(Pid, Term)> {
    let at = match framing {
        Framing::PassThrough if prefix.first() == Some(&PASS_THROUGH) => 1,
        Framing::Header if prefix.get(..2) == Some(&[VERSION, DIST_HEADER]) => 3,
        Framing::Header if prefix.get(..2) == Some(&[VERSION, FRAG_HEADER]) => START_HEADER,
        _ => return None,
    };
    let (ctl, at) = framing.decode_term(prefix, at).ok()?;
    sniff_payload_call(&ctl, &prefix.slice(at..), framing)
}

/// The caller of a `gen_call` sent with control term `ctl`, from the beginning of its payload:
/// `{'$gen_call', {Pid, Tag}, …}` needs only its first few bytes to be read.
pub fn sniff_payload_call(ctl: &Term, payload: &Bytes, framing: Framing) -> Option<(Pid, Term)> {
    let op = ctl.as_tuple()?.first()?.as_int()?;
    // SEND, REG_SEND, their trace-token forms, SEND_SENDER and ALIAS_SEND (and its TT form).
    if !matches!(op, 2 | 6 | 12 | 16 | 22 | 23 | 33 | 34) {
        return None;
    }
    let mut at = usize::from(framing == Framing::PassThrough);
    let b = payload.as_ref();
    // A small tuple of three, whose first element is the atom '$gen_call'.
    if b.get(at..at + 2)? != [104, 3] {
        return None;
    }
    at += 2;
    let name: &[u8] = b"$gen_call";
    let atom_at = match *b.get(at)? {
        100 | 118 if b.get(at + 1..at + 3)? == [0, name.len() as u8] => at + 3,
        115 | 119 if *b.get(at + 1)? == name.len() as u8 => at + 2,
        _ => return None,
    };
    if b.get(atom_at..atom_at + name.len())? != name {
        return None;
    }
    at = atom_at + name.len();
    if b.get(at..at + 2)? != [104, 2] {
        return None;
    }
    let (pid, at) = term::decode_body(payload, at + 2).ok()?;
    let (tag, _) = term::decode_body(payload, at).ok()?;
    match pid {
        Term::Pid(p) => Some((p, tag)),
        _ => None,
    }
}

/// A message ready to queue: one frame, or a fragmented message.
#[derive(Debug)]
pub enum Outgoing {
    /// A whole frame, length included.
    Frame(Bytes),
    /// A message sent as fragments.
    Fragments(Fragments),
}

impl Outgoing {
    /// Bytes this message puts on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            Outgoing::Frame(f) => f.len(),
            Outgoing::Fragments(f) => f.wire_len(),
        }
    }
}

/// A message being cut into fragments, one frame at a time; the payload is sliced, not copied.
#[derive(Debug)]
pub struct Fragments {
    seq: u64,
    /// The next fragment's id; 0 once all are out.
    next: u64,
    /// The start fragment's bytes after its length: header and control term.
    head: Bytes,
    payload: Bytes,
    at: usize,
    size: usize,
}

impl Fragments {
    /// Bytes still to go on the wire.
    pub fn wire_len(&self) -> usize {
        let left = self.payload.len() - self.at;
        let frames = self.next as usize;
        let headers = if self.at == 0 {
            self.head.len() + frames.saturating_sub(1) * CONT_HEADER
        } else {
            frames * CONT_HEADER
        };
        left + headers + 4 * frames
    }

    /// The next fragment as its frame header (length included) and its part of the payload,
    /// or `None` when all fragments are out.
    pub fn next_frame(&mut self) -> Option<(Bytes, Bytes)> {
        if self.next == 0 {
            return None;
        }
        let end = (self.at + self.size).min(self.payload.len());
        let chunk = self.payload.slice(self.at..end);
        let mut head = BytesMut::with_capacity(4 + self.head.len().max(CONT_HEADER));
        if self.at == 0 {
            head.put_u32((self.head.len() + chunk.len()) as u32);
            head.extend_from_slice(&self.head);
        } else {
            head.put_u32((CONT_HEADER + chunk.len()) as u32);
            head.put_u8(VERSION);
            head.put_u8(FRAG_CONT);
            head.put_u64(self.seq);
            head.put_u64(self.next);
        }
        self.at = end;
        self.next -= 1;
        Some((head.freeze(), chunk))
    }

    /// Whether every fragment has been handed out.
    pub fn is_done(&self) -> bool {
        self.next == 0
    }
}

/// Encodes a message for a peer with `peer_flags`. A payload larger than `fragment_size` to a
/// peer that takes fragments becomes a fragmented message with sequence id `seq`.
pub fn encode_message(
    control: &Control,
    message: Option<&Term>,
    peer_flags: u64,
    seq: u64,
    fragment_size: usize,
) -> Outgoing {
    let framing = Framing::for_peer(peer_flags);
    let (ctl, reason) = control.to_term(peer_flags);
    let payload = reason.as_ref().or(message);
    let payload_len = payload.map_or(0, |p| framing.term_len(p));
    let fragment_size = fragment_size.max(1);
    if framing == Framing::Header && payload_len > fragment_size {
        if let Some(p) = payload {
            let count = payload_len.div_ceil(fragment_size) as u64;
            let mut head = BytesMut::with_capacity(START_HEADER + framing.term_len(&ctl));
            head.put_u8(VERSION);
            head.put_u8(FRAG_HEADER);
            head.put_u64(seq);
            head.put_u64(count);
            head.put_u8(0);
            framing.encode_term(&ctl, &mut head);
            let mut body = BytesMut::with_capacity(payload_len);
            framing.encode_term(p, &mut body);
            return Outgoing::Fragments(Fragments {
                seq,
                next: count,
                head: head.freeze(),
                payload: body.freeze(),
                at: 0,
                size: fragment_size,
            });
        }
    }
    let mut out = BytesMut::new();
    encode_whole(&ctl, payload, framing, &mut out);
    Outgoing::Frame(out.freeze())
}

fn encode_whole(ctl: &Term, payload: Option<&Term>, framing: Framing, out: &mut BytesMut) {
    let start = match framing {
        Framing::PassThrough => 1,
        Framing::Header => 3,
    };
    let len = start + framing.term_len(ctl) + payload.map_or(0, |p| framing.term_len(p));
    out.reserve(4 + len);
    out.put_u32(len as u32);
    match framing {
        Framing::PassThrough => out.put_u8(PASS_THROUGH),
        Framing::Header => out.put_slice(&[VERSION, DIST_HEADER, 0]),
    }
    framing.encode_term(ctl, out);
    if let Some(p) = payload {
        framing.encode_term(p, out);
    }
}

/// One whole frame (length included) for a peer with `peer_flags`, never fragmented.
pub fn data_frame(control: &Control, message: Option<&Term>, peer_flags: u64) -> Bytes {
    let (ctl, reason) = control.to_term(peer_flags);
    let mut out = BytesMut::new();
    encode_whole(
        &ctl,
        reason.as_ref().or(message),
        Framing::for_peer(peer_flags),
        &mut out,
    );
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::super::control::ProcRef;
    use super::super::term::{atom, binary, int, tuple, Pid, Ref};
    use super::*;

    fn p(id: u32) -> Pid {
        Pid::new("a@127.0.0.1", id, 0, 5)
    }

    const PASS: u64 = flags::OURS & !flags::FRAGMENTS;

    fn body(frame: Bytes) -> Bytes {
        assert_eq!(frame_len(&frame), Some(frame.len() - 4));
        frame.slice(4..)
    }

    fn whole_of(frame: &Bytes, framing: Framing) -> Message {
        match decode_frame(frame, framing).unwrap() {
            Inbound::Whole(m) => m,
            other => panic!("not whole: {other:?}"),
        }
    }

    fn cases() -> Vec<(Control, Option<Term>)> {
        let msg = tuple(vec![atom("hello"), int(1)]);
        vec![
            (
                Control::RegSend {
                    from: p(1),
                    to: "beacon".into(),
                },
                Some(msg.clone()),
            ),
            (
                Control::Send {
                    from: None,
                    to: p(2),
                },
                Some(msg),
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
        ]
    }

    #[test]
    fn frames_round_trip_in_both_layouts() {
        for (peer, framing) in [(PASS, Framing::PassThrough), (flags::OURS, Framing::Header)] {
            assert_eq!(Framing::for_peer(peer), framing);
            for (ctl, payload) in cases() {
                let f = body(data_frame(&ctl, payload.as_ref(), peer));
                let m = whole_of(&f, framing);
                assert_eq!((m.control, m.payload), (ctl, payload));
            }
        }
        // The header layout: 131, 68, no atom-cache references, terms without 131.
        let f = body(data_frame(&cases()[1].0, Some(&int(7)), flags::OURS));
        assert_eq!(&f[..4], &[131, 68, 0, 104]);
        assert_eq!(&f[f.len() - 2..], &[97, 7]);
    }

    #[test]
    fn the_documented_fragment_example_decodes() {
        // erl_ext_dist's example without its atom cache: {call, <0.245.2>, …} to `reg`, sent
        // as a start fragment and one continuation, with sequence id 0x2a8_0000_0553.
        let ctl = tuple(vec![int(6), Term::Pid(p(1)), atom(""), atom("reg")]);
        let payload = tuple(vec![atom("call"), binary(vec![0u8; 128])]);
        let mut whole = Vec::new();
        term::encode_body(&payload, &mut whole);
        let (a, b) = whole.split_at(100);
        let mut start = vec![
            131, 69, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 2, 0,
        ];
        term::encode_body(&ctl, &mut start);
        start.extend_from_slice(a);
        let mut cont = vec![131, 70, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 1];
        cont.extend_from_slice(b);
        let seq = 0x2a8_0000_0553;
        match decode_frame(&Bytes::from(start), Framing::Header).unwrap() {
            Inbound::Start {
                seq: s,
                count: 2,
                control,
                payload: first,
            } => {
                assert_eq!((s, &control), (seq, &ctl));
                assert_eq!(&first[..], a);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_frame(&Bytes::from(cont), Framing::Header).unwrap(),
            Inbound::Cont {
                seq,
                index: 1,
                payload: Bytes::copy_from_slice(b)
            }
        );
    }

    #[test]
    fn large_payloads_are_cut_into_fragments_that_decode_back() {
        let ctl = Control::RegSend {
            from: p(1),
            to: "sink".into(),
        };
        let msg = binary(vec![7u8; 300_000]);
        let Outgoing::Fragments(mut frags) =
            encode_message(&ctl, Some(&msg), flags::OURS, 9, FRAGMENT_SIZE)
        else {
            panic!("not fragmented");
        };
        let expected_wire = frags.wire_len();
        let mut wire = 0;
        let mut ctl_term = None;
        let mut payload = BytesMut::new();
        let mut ids = Vec::new();
        while let Some((head, chunk)) = frags.next_frame() {
            wire += head.len() + chunk.len();
            let mut f = BytesMut::from(&head[..]);
            f.extend_from_slice(&chunk);
            match decode_frame(&body(f.freeze()), Framing::Header).unwrap() {
                Inbound::Start {
                    seq: 9,
                    count,
                    control,
                    payload: part,
                } => {
                    ids.push(count);
                    ctl_term = Some(control);
                    payload.extend_from_slice(&part);
                }
                Inbound::Cont {
                    seq: 9,
                    index,
                    payload: part,
                } => {
                    ids.push(index);
                    payload.extend_from_slice(&part);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(frags.is_done());
        assert_eq!(wire, expected_wire);
        assert_eq!(ids, vec![5, 4, 3, 2, 1]);
        let m = finish(ctl_term.unwrap(), &payload.freeze(), 0, Framing::Header).unwrap();
        assert_eq!((m.control, m.payload), (ctl.clone(), Some(msg.clone())));
        // Small messages, and every message to a peer without fragments, stay whole.
        assert!(matches!(
            encode_message(&ctl, Some(&int(1)), flags::OURS, 1, FRAGMENT_SIZE),
            Outgoing::Frame(_)
        ));
        assert!(matches!(
            encode_message(&ctl, Some(&msg), PASS, 1, FRAGMENT_SIZE),
            Outgoing::Frame(_)
        ));
    }

    #[test]
    fn malformed_frames_are_errors() {
        use Framing::*;
        assert_eq!(
            decode_frame(&Bytes::new(), PassThrough),
            Err(FrameError::BadStart(vec![]))
        );
        assert_eq!(
            decode_frame(&Bytes::from_static(&[68, 1]), PassThrough),
            Err(FrameError::BadStart(vec![68, 1]))
        );
        // A pass-through frame where headers were agreed, and the reverse.
        assert!(matches!(
            decode_frame(&Bytes::from_static(&[112, 131, 106]), Header),
            Err(FrameError::BadStart(_))
        ));
        assert!(matches!(
            decode_frame(&Bytes::from_static(&[131, 68, 0, 106]), PassThrough),
            Err(FrameError::BadStart(_))
        ));
        assert_eq!(
            decode_frame(&Bytes::from_static(&[131, 68, 2, 0, 0]), Header),
            Err(FrameError::AtomCache(2))
        );
        // Truncated fragment headers, and fragment id 0.
        assert!(matches!(
            decode_frame(&Bytes::from_static(&[131, 69, 0, 0]), Header),
            Err(FrameError::BadStart(_))
        ));
        let mut cont = vec![131, 70];
        cont.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_frame(&Bytes::from(cont), Header),
            Err(FrameError::BadFragment(0))
        );
        assert!(matches!(
            decode_frame(&Bytes::from_static(&[112, 131]), PassThrough),
            Err(FrameError::Term(_))
        ));
        // A SEND without its message, and with trailing bytes.
        let send = Control::Send {
            from: None,
            to: p(1),
        };
        for (peer, framing) in [(PASS, PassThrough), (flags::OURS, Header)] {
            let f = body(data_frame(&send, None, peer));
            assert!(matches!(
                decode_frame(&f, framing),
                Err(FrameError::Term(_))
            ));
            let mut f = BytesMut::from(&body(data_frame(&send, Some(&int(1)), peer))[..]);
            f.put_u8(0);
            assert_eq!(
                decode_frame(&f.freeze(), framing),
                Err(FrameError::Trailing(1))
            );
        }
        assert_eq!(frame_len(&[0, 0, 1]), None);
        assert_eq!(frame_len(&TICK), Some(0));
    }

    #[test]
    fn unknown_operations_skip_their_payload() {
        let mut v = vec![112];
        term::encode(&tuple(vec![int(99), atom("x")]), &mut v);
        v.extend_from_slice(&[131, 106]);
        let m = whole_of(&Bytes::from(v), Framing::PassThrough);
        assert_eq!(m.control, Control::Other { op: 99 });
    }

    #[test]
    fn gen_call_callers_are_found_in_a_message_prefix() {
        let caller = Pid::new("c@127.0.0.1", 42, 0, 3);
        let tag = crate::dist::proto::term::improper(
            vec![atom("alias")],
            Term::Ref(Ref::new("c@127.0.0.1", 3, &[1, 2, 3])),
        );
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(caller.clone()), tag.clone()]),
            binary(vec![1u8; 10_000]),
        ]);
        let ctl = Control::RegSend {
            from: caller.clone(),
            to: "svc".into(),
        };
        for peer in [PASS, flags::OURS] {
            let framing = Framing::for_peer(peer);
            let f = body(data_frame(&ctl, Some(&call), peer));
            // The whole frame, and only its first 200 bytes.
            for prefix in [f.clone(), f.slice(..200)] {
                assert_eq!(
                    sniff_frame_call(&prefix, framing),
                    Some((caller.clone(), tag.clone()))
                );
            }
            // Too short to hold the tag, or not a call.
            assert_eq!(sniff_frame_call(&f.slice(..40), framing), None);
            let plain = body(data_frame(&ctl, Some(&int(1)), peer));
            assert_eq!(sniff_frame_call(&plain, framing), None);
        }
    }
}
