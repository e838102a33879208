//! Putting fragmented messages back together (sans-IO): one [`Reassembly`] per connection.
//!
//! Fragments of one sequence arrive in order, but fragments of other sequences and whole
//! messages may come between them. Each fragment's payload is copied once, into its
//! sequence's buffer; when the last fragment (id 1) arrives the payload is decoded from that
//! buffer, and binaries in it are slices of it, not copies.
//!
//! Everything a peer can make us hold is bounded: a sequence larger than the maximum message
//! size is refused on its own (its buffer is freed at once and its remaining fragments are
//! skipped), and so is a new sequence when too many are open. A fragment that breaks the
//! protocol (an unknown sequence, a fragment out of order) loses only its own sequence. The
//! caller learns of every refusal with the caller of the `gen_call` it carried, if any, so
//! that it can answer. How many bytes are held is [`Reassembly::held`], for the node-wide
//! receive budget.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::frame::{finish, sniff_payload_call, FrameError, Framing, Message};
use super::term::{Pid, Term};

/// Default cap on sequences open at once on one connection. An OTP peer has at most one per
/// sending process.
pub const DEFAULT_MAX_OPEN: usize = 1024;

/// Why a fragmented message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It grew past the maximum message size.
    TooLarge {
        /// Bytes received when it was refused.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// Too many sequences were open on the connection.
    TooManyOpen(usize),
    /// The node's receive budget was spent (by this connection's other open messages).
    Budget(usize),
    /// It was complete but did not decode.
    Malformed(FrameError),
    /// A fragment broke the protocol (out of order, or of a sequence never started).
    Protocol(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge { size, max } => write!(
                f,
                "message larger than the maximum of {max} bytes ({size} bytes received)"
            ),
            Refusal::TooManyOpen(n) => {
                write!(f, "more than {n} fragmented messages in progress at once")
            }
            Refusal::Budget(n) => write!(
                f,
                "the receive budget of {n} bytes is spent by other messages in progress"
            ),
            Refusal::Malformed(e) => write!(f, "{e}"),
            Refusal::Protocol(e) => f.write_str(e),
        }
    }
}

/// A message that will not be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Why.
    pub why: Refusal,
    /// The caller and tag of the `gen_call` it carried, when its start showed one.
    pub call: Option<(Pid, Term)>,
}

/// What a fragment completed.
#[derive(Debug)]
pub enum Step {
    /// Nothing yet: the sequence goes on.
    Pending,
    /// A whole message, and its payload's size in bytes.
    Complete(Message, usize),
    /// A message that will not be delivered.
    Refused(Refused),
}

struct Partial {
    control: Term,
    buf: BytesMut,
    /// The id the next fragment must carry.
    next: u64,
    /// Refused: its fragments are skipped until the last one.
    refused: bool,
    call: Option<(Pid, Term)>,
}

/// The sequences open on one connection.
pub struct Reassembly {
    open: HashMap<u64, Partial>,
    framing: Framing,
    max_message: usize,
    max_open: usize,
    held: usize,
}

impl Reassembly {
    /// An empty table for a connection laid out as `framing`.
    pub fn new(framing: Framing, max_message: usize, max_open: usize) -> Reassembly {
        Reassembly {
            open: HashMap::new(),
            framing,
            max_message,
            max_open: max_open.max(1),
            held: 0,
        }
    }

    /// Payload bytes held in open sequences.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Sequences open (refused ones still being skipped included).
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Refuses sequence `seq` at its first fragment, remembering it so that its remaining
    /// fragments are skipped quietly.
    fn refuse(
        &mut self,
        seq: u64,
        count: u64,
        control: Term,
        why: Refusal,
        call: Option<(Pid, Term)>,
    ) -> Step {
        self.open.insert(
            seq,
            Partial {
                control,
                buf: BytesMut::new(),
                next: count - 1,
                refused: true,
                call: None,
            },
        );
        Step::Refused(Refused { why, call })
    }

    /// The first fragment of sequence `seq`, of `count` fragments.
    pub fn start(&mut self, seq: u64, count: u64, control: Term, payload: Bytes) -> Step {
        let call = sniff_payload_call(&control, &payload, self.framing);
        let mut abandoned = None;
        if let Some(old) = self.remove(seq) {
            // A peer restarts a sequence id only after finishing it; this one never finished.
            if !old.refused {
                abandoned = Some(Refused {
                    why: Refusal::Protocol(format!(
                        "sequence {seq} restarted before its last fragment"
                    )),
                    call: old.call,
                });
            }
        }
        if count == 1 {
            return self.complete(control, payload, call);
        }
        if self.open.len() >= self.max_open {
            let why = Refusal::TooManyOpen(self.max_open);
            return self.refuse(seq, count, control, why, call);
        }
        if payload.len() > self.max_message {
            let why = Refusal::TooLarge {
                size: payload.len(),
                max: self.max_message,
            };
            return self.refuse(seq, count, control, why, call);
        }
        // Fragments are all the size of the first (OTP cuts them so), so this is the whole
        // payload's size, or a little more; memory is only touched as fragments arrive.
        let estimate = payload
            .len()
            .saturating_mul(usize::try_from(count).unwrap_or(usize::MAX))
            .min(self.max_message);
        let mut buf = BytesMut::with_capacity(estimate.max(payload.len()));
        buf.extend_from_slice(&payload);
        self.held += payload.len();
        self.open.insert(
            seq,
            Partial {
                control,
                buf,
                next: count - 1,
                refused: false,
                call,
            },
        );
        match abandoned {
            Some(r) => Step::Refused(r),
            None => Step::Pending,
        }
    }

    /// A continuation fragment.
    pub fn cont(&mut self, seq: u64, index: u64, payload: Bytes) -> Step {
        let Some(p) = self.open.get_mut(&seq) else {
            return Step::Refused(Refused {
                why: Refusal::Protocol(format!("fragment {index} of unknown sequence {seq}")),
                call: None,
            });
        };
        if index != p.next {
            let expected = p.next;
            let old = self.remove(seq).and_then(|p| p.call);
            return Step::Refused(Refused {
                why: Refusal::Protocol(format!(
                    "fragment {index} of sequence {seq} where {expected} was due"
                )),
                call: old,
            });
        }
        p.next -= 1;
        if p.refused {
            if p.next == 0 {
                self.open.remove(&seq);
            }
            return Step::Pending;
        }
        let size = p.buf.len() + payload.len();
        if size > self.max_message {
            let call = p.call.take();
            let freed = std::mem::take(&mut p.buf).len();
            p.refused = true;
            if p.next == 0 {
                self.open.remove(&seq);
            }
            self.held -= freed;
            return Step::Refused(Refused {
                why: Refusal::TooLarge {
                    size,
                    max: self.max_message,
                },
                call,
            });
        }
        p.buf.extend_from_slice(&payload);
        let more = p.next > 0;
        self.held += payload.len();
        if more {
            return Step::Pending;
        }
        let Some(p) = self.remove(seq) else {
            return Step::Pending;
        };
        self.complete(p.control, p.buf.freeze(), p.call)
    }

    /// Gives up on sequence `seq`: its buffer is freed and its remaining fragments will be
    /// skipped. Returns the refusal to report, unless it was already refused or is unknown.
    pub fn abandon(&mut self, seq: u64, why: Refusal) -> Option<Refused> {
        let p = self.open.get_mut(&seq)?;
        if p.refused {
            return None;
        }
        let freed = std::mem::take(&mut p.buf).len();
        p.refused = true;
        let call = p.call.take();
        self.held -= freed;
        Some(Refused { why, call })
    }

    fn remove(&mut self, seq: u64) -> Option<Partial> {
        let p = self.open.remove(&seq)?;
        self.held -= p.buf.len();
        Some(p)
    }

    fn complete(&mut self, control: Term, payload: Bytes, call: Option<(Pid, Term)>) -> Step {
        let size = payload.len();
        match finish(control, &payload, 0, self.framing) {
            Ok(m) => Step::Complete(m, size),
            Err(e) => Step::Refused(Refused {
                why: Refusal::Malformed(e),
                call,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::control::Control;
    use super::super::flags;
    use super::super::frame::{decode_frame, encode_message, Inbound, Outgoing};
    use super::super::term::{atom, binary, tuple, Ref};
    use super::*;

    fn caller() -> Pid {
        Pid::new("c@127.0.0.1", 42, 0, 3)
    }

    fn tag() -> Term {
        Term::Ref(Ref::new("c@127.0.0.1", 3, &[7, 8, 9]))
    }

    /// The frames (after their lengths) of a message of `n` payload bytes, as sequence `seq`.
    fn frames(seq: u64, n: usize, fragment: usize) -> (Term, Vec<Bytes>) {
        let msg = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(caller()), tag()]),
            binary(vec![5u8; n]),
        ]);
        let ctl = Control::RegSend {
            from: caller(),
            to: "svc".into(),
        };
        let Outgoing::Fragments(mut f) =
            encode_message(&ctl, Some(&msg), flags::OURS, seq, fragment)
        else {
            panic!("not fragmented")
        };
        let mut out = Vec::new();
        while let Some((head, chunk)) = f.next_frame() {
            let mut b = BytesMut::from(&head[4..]);
            b.extend_from_slice(&chunk);
            out.push(b.freeze());
        }
        (msg, out)
    }

    fn feed(r: &mut Reassembly, frame: &Bytes) -> Step {
        match decode_frame(frame, Framing::Header).unwrap() {
            Inbound::Start {
                seq,
                count,
                control,
                payload,
            } => r.start(seq, count, control, payload),
            Inbound::Cont {
                seq,
                index,
                payload,
            } => r.cont(seq, index, payload),
            Inbound::Whole(_) => panic!("whole"),
        }
    }

    #[test]
    fn interleaved_sequences_complete_in_order_of_their_last_fragment() {
        let mut r = Reassembly::new(Framing::Header, 1 << 20, 8);
        let (a_msg, a) = frames(1, 5000, 1000);
        let (b_msg, b) = frames(2, 2500, 1000);
        let mut done = Vec::new();
        let mut steps = Vec::new();
        // a0 b0 a1 b1 a2 b2 a3 a4 a5
        for i in 0..a.len().max(b.len()) {
            for f in [a.get(i), b.get(i)].into_iter().flatten() {
                steps.push(feed(&mut r, f));
            }
        }
        for s in steps {
            match s {
                Step::Pending => {}
                Step::Complete(m, _) => done.push(m.payload.unwrap()),
                Step::Refused(x) => panic!("{x:?}"),
            }
        }
        assert_eq!(done, vec![b_msg, a_msg]);
        assert_eq!((r.open(), r.held()), (0, 0));
    }

    #[test]
    fn a_sequence_over_the_limit_is_refused_alone_and_its_caller_is_known() {
        let mut r = Reassembly::new(Framing::Header, 3000, 8);
        let (_, big) = frames(1, 10_000, 1000);
        let (small_msg, small) = frames(2, 1500, 1000);
        let mut refused = Vec::new();
        let mut done = Vec::new();
        for f in big.iter().chain(small.iter()) {
            match feed(&mut r, f) {
                Step::Pending => {}
                Step::Complete(m, _) => done.push(m.payload.unwrap()),
                Step::Refused(x) => refused.push(x),
            }
            assert!(r.held() <= 3000);
        }
        assert_eq!(refused.len(), 1, "refused once, then skipped: {refused:?}");
        assert!(matches!(
            refused[0].why,
            Refusal::TooLarge { max: 3000, .. }
        ));
        assert_eq!(refused[0].call, Some((caller(), tag())));
        assert_eq!(done, vec![small_msg]);
        assert_eq!((r.open(), r.held()), (0, 0));
    }

    #[test]
    fn protocol_breaks_lose_only_their_sequence() {
        let mut r = Reassembly::new(Framing::Header, 1 << 20, 2);
        let (_, a) = frames(1, 3000, 1000);
        let (b_msg, b) = frames(2, 3000, 1000);
        // Unknown sequence.
        assert!(matches!(
            feed(&mut r, &a[1]),
            Step::Refused(Refused {
                why: Refusal::Protocol(_),
                ..
            })
        ));
        // Out of order: a's fragment 2 skipped.
        feed(&mut r, &a[0]);
        match feed(&mut r, &a[2]) {
            Step::Refused(x) => assert_eq!(x.call, Some((caller(), tag()))),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.held(), 0);
        // b is unaffected.
        let mut got = None;
        for f in &b {
            if let Step::Complete(m, _) = feed(&mut r, f) {
                got = m.payload;
            }
        }
        assert_eq!(got, Some(b_msg));
        // Too many open: the third sequence is refused, and skipped quietly after.
        let (_, c) = frames(3, 3000, 1000);
        let (_, d) = frames(4, 3000, 1000);
        let (_, e) = frames(5, 3000, 1000);
        assert!(matches!(feed(&mut r, &c[0]), Step::Pending));
        assert!(matches!(feed(&mut r, &d[0]), Step::Pending));
        assert!(matches!(
            feed(&mut r, &e[0]),
            Step::Refused(Refused {
                why: Refusal::TooManyOpen(2),
                ..
            })
        ));
        assert!(matches!(feed(&mut r, &e[1]), Step::Pending));
    }

    #[test]
    fn an_undecodable_payload_is_refused_with_its_caller() {
        let mut r = Reassembly::new(Framing::Header, 1 << 20, 8);
        let (_, mut f) = frames(1, 3000, 1000);
        // Corrupt the last fragment's final bytes into a trailing garbage tag.
        let last = f.pop().unwrap();
        let mut bad = BytesMut::from(&last[..]);
        bad.extend_from_slice(&[255]);
        f.push(bad.freeze());
        let mut out = None;
        for x in &f {
            if let Step::Refused(r) = feed(&mut r, x) {
                out = Some(r);
            }
        }
        let out = out.expect("refused");
        assert!(matches!(out.why, Refusal::Malformed(_)));
        assert_eq!(out.call, Some((caller(), tag())));
    }

    #[test]
    fn an_abandoned_sequence_frees_its_buffer_and_skips_the_rest() {
        let mut r = Reassembly::new(Framing::Header, 1 << 20, 8);
        let (_, a) = frames(1, 3000, 1000);
        feed(&mut r, &a[0]);
        feed(&mut r, &a[1]);
        assert!(r.held() > 0);
        let refused = r.abandon(1, Refusal::Budget(10)).expect("refused");
        assert_eq!(refused.call, Some((caller(), tag())));
        assert_eq!(r.held(), 0);
        assert!(r.abandon(1, Refusal::Budget(10)).is_none(), "only once");
        for f in &a[2..] {
            assert!(matches!(feed(&mut r, f), Step::Pending));
        }
        assert_eq!(r.open(), 0);
    }
}
