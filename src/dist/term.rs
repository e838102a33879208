//! Erlang terms: a bounded validator for External Term Format bytes that arrive from the
//! network, and small helpers to build and take apart the terms the protocol uses.
//!
//! We decode terms with the `eetf` crate, but it trusts its input: it pre-allocates whatever
//! element count a list or tuple declares (a 10-byte frame can ask for 4 G elements), recurses
//! once per nesting level, inflates compressed terms to their declared size, and panics on a
//! distribution header. [`check`] walks the bytes first, iteratively and in linear time, and
//! admits only terms whose every declared size fits in the bytes that are really there, whose
//! nesting is at most [`MAX_DEPTH`], and which use only the tags a pass-through connection
//! carries. Only then is `eetf` called.

use eetf::{Atom, FixInteger, List, Pid, Reference, Term, Tuple};
use thiserror::Error;

/// Deepest nesting accepted from the network. Real messages are far shallower; this keeps the
/// recursive decoder (and `Drop`) well inside a tokio worker's stack.
pub const MAX_DEPTH: usize = 256;

const VERSION: u8 = 131;

/// Why bytes are not an acceptable term.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TermError {
    /// The bytes end inside a term.
    #[error("term is truncated at byte {0}")]
    Truncated(usize),
    /// The first byte is not the ETF version 131.
    #[error("term does not start with version byte 131 (got {0})")]
    BadVersion(u8),
    /// A tag we do not accept here.
    #[error("unsupported term tag {tag} at byte {at}")]
    BadTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A declared element count larger than the remaining bytes could hold.
    #[error("term declares {count} elements at byte {at}, more than the message holds")]
    Oversized {
        /// The declared count.
        count: u64,
        /// Its offset.
        at: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("term is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// `eetf` refused bytes the validator admitted.
    #[error("term could not be decoded: {0}")]
    Decode(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(TermError::Truncated(self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, TermError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&mut self) -> Result<u64, TermError> {
        let b = self.take(4)?;
        Ok(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn atom(&mut self) -> Result<(), TermError> {
        let at = self.pos;
        match self.u8()? {
            100 | 118 => {
                let n = self.u16()?;
                self.take(n)?;
            }
            115 | 119 => {
                let n = self.u8()? as usize;
                self.take(n)?;
            }
            tag => return Err(TermError::BadTag { tag, at }),
        }
        Ok(())
    }

    /// Reads one term header; returns how many child terms follow it.
    fn header(&mut self) -> Result<u64, TermError> {
        let at = self.pos;
        let tag = self.u8()?;
        let children = match tag {
            97 => self.take(1).map(|_| 0)?,
            98 => self.take(4).map(|_| 0)?,
            99 => self.take(31).map(|_| 0)?,
            70 => self.take(8).map(|_| 0)?,
            100 | 118 => {
                let n = self.u16()?;
                self.take(n).map(|_| 0)?
            }
            115 | 119 => {
                let n = self.u8()? as usize;
                self.take(n).map(|_| 0)?
            }
            106 => 0,
            107 => {
                let n = self.u16()?;
                self.take(n).map(|_| 0)?
            }
            109 => {
                let n = self.u32()? as usize;
                self.take(n).map(|_| 0)?
            }
            77 => {
                let n = self.u32()? as usize;
                let bits = self.u8()?;
                // ETF allows 1..=8 bits in the last byte (0 only for an empty binary); eetf
                // shifts by `8 - bits` and panics on anything else.
                let valid = if n == 0 {
                    bits == 0
                } else {
                    (1..=8).contains(&bits)
                };
                if !valid {
                    return Err(TermError::BadTag { tag, at });
                }
                self.take(n).map(|_| 0)?
            }
            110 => {
                let n = self.u8()? as usize;
                self.take(1 + n).map(|_| 0)?
            }
            111 => {
                let n = self.u32()? as usize;
                self.take(1 + n).map(|_| 0)?
            }
            // REFERENCE_EXT and PORT_EXT: node atom, u32 id, u8 creation.
            101 | 102 => {
                self.atom()?;
                self.take(5).map(|_| 0)?
            }
            89 => {
                self.atom()?;
                self.take(8).map(|_| 0)?
            }
            120 => {
                self.atom()?;
                self.take(12).map(|_| 0)?
            }
            103 => {
                self.atom()?;
                self.take(9).map(|_| 0)?
            }
            88 => {
                self.atom()?;
                self.take(12).map(|_| 0)?
            }
            114 | 90 => {
                let n = self.u16()?;
                self.atom()?;
                self.take(if tag == 114 { 1 } else { 4 })?;
                self.take(4 * n).map(|_| 0)?
            }
            104 => self.u8()? as u64,
            105 => self.u32()?,
            108 => self.u32()? + 1,
            116 => self.u32()? * 2,
            113 => 3,
            112 => {
                // Size, arity, uniq, index, then NumFree; module, old index, old uniq and pid
                // are terms, followed by the free variables.
                self.take(4 + 1 + 16 + 4)?;
                4 + self.u32()?
            }
            tag => return Err(TermError::BadTag { tag, at }),
        };
        if children > self.remaining() {
            return Err(TermError::Oversized {
                count: children,
                at,
            });
        }
        Ok(children)
    }
}

/// Validates one term at the start of `buf` (version byte included) and returns its length.
pub fn check(buf: &[u8]) -> Result<usize, TermError> {
    let mut cur = Cursor { buf, pos: 0 };
    let version = cur.u8()?;
    if version != VERSION {
        return Err(TermError::BadVersion(version));
    }
    // Children still to read at each open nesting level.
    let mut pending: Vec<u64> = vec![1];
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let children = cur.header()?;
        if children > 0 {
            if pending.len() > MAX_DEPTH {
                return Err(TermError::TooDeep);
            }
            pending.push(children);
        }
    }
    Ok(cur.pos)
}

/// Validates and decodes one term at the start of `buf`; returns it and its length.
pub fn decode(buf: &[u8]) -> Result<(Term, usize), TermError> {
    let len = check(buf)?;
    let term = Term::decode(&buf[..len]).map_err(|e| TermError::Decode(e.to_string()))?;
    Ok((term, len))
}

/// Encodes a term, version byte included, onto `out`.
pub fn encode(term: &Term, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every Term we build is encodable.
    let _ = term.encode(out);
}

/// An atom term.
pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

/// A small integer term.
pub fn int(value: i32) -> Term {
    Term::FixInteger(FixInteger::from(value))
}

/// A tuple term.
pub fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(elements))
}

/// A proper list term.
pub fn list(elements: Vec<Term>) -> Term {
    Term::List(List::from(elements))
}

/// A pid term.
pub fn pid(pid: &Pid) -> Term {
    Term::Pid(pid.clone())
}

/// A reference term.
pub fn reference(r: &Reference) -> Term {
    Term::Reference(Box::new(r.clone()))
}

/// The atom's name, if the term is an atom.
pub fn as_atom(term: &Term) -> Option<&str> {
    match term {
        Term::Atom(a) => Some(&a.name),
        _ => None,
    }
}

/// The elements, if the term is a tuple.
pub fn as_tuple(term: &Term) -> Option<&[Term]> {
    match term {
        Term::Tuple(t) => Some(&t.elements),
        _ => None,
    }
}

/// A map's value by atom key, if the term is a map with that key.
pub fn map_get<'a>(m: &'a Term, key: &str) -> Option<&'a Term> {
    match m {
        Term::Map(map) => map.map.get(&atom(key)),
        _ => None,
    }
}

/// The integer, if the term is a small integer.
pub fn as_int(term: &Term) -> Option<i32> {
    match term {
        Term::FixInteger(i) => Some(i.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(term: &Term) -> Vec<u8> {
        let mut v = Vec::new();
        encode(term, &mut v);
        v
    }

    #[test]
    fn real_terms_pass_and_round_trip() {
        let p = Pid::new("a@127.0.0.1", 1, 2, 3);
        let r = Reference {
            node: Atom::from("a@127.0.0.1"),
            id: vec![1, 2, 3],
            creation: 9,
        };
        let term = tuple(vec![
            atom("$gen_call"),
            tuple(vec![pid(&p), reference(&r)]),
            list(vec![
                int(1),
                int(-5),
                Term::from(eetf::Binary::from(vec![0u8; 64])),
            ]),
            Term::from(eetf::Float::try_from(1.5).unwrap()),
            Term::from(eetf::Map::from([(atom("k"), atom("v"))])),
            Term::from(eetf::BigInteger::from(u64::MAX)),
            Term::from(eetf::ByteList::from("abc")),
            Term::from(eetf::ImproperList::from((
                vec![atom("alias")],
                reference(&r),
            ))),
            list(vec![]),
        ]);
        let bytes = enc(&term);
        assert_eq!(check(&bytes), Ok(bytes.len()));
        let (back, len) = decode(&bytes).unwrap();
        assert_eq!((back, len), (term, bytes.len()));
    }

    #[test]
    fn terms_from_erlang_are_accepted() {
        // Printed by OTP 25 on this machine (a non-distributed node, so nonode@nohost):
        // term_to_binary({ok, [1,2,3], <<"x">>, self(), make_ref(), #{a => 1.5},
        //                 [alias|make_ref()], 1 bsl 70})
        let from_erl: &[u8] = &[
            131, 104, 8, 100, 0, 2, 111, 107, 107, 0, 3, 1, 2, 3, 109, 0, 0, 0, 1, 120, 88, 100, 0,
            13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 9, 0, 0,
            0, 0, 0, 0, 0, 0, 90, 0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111,
            104, 111, 115, 116, 0, 0, 0, 0, 0, 2, 113, 245, 192, 212, 0, 1, 32, 88, 123, 242, 116,
            0, 0, 0, 1, 100, 0, 1, 97, 70, 63, 248, 0, 0, 0, 0, 0, 0, 108, 0, 0, 0, 1, 100, 0, 5,
            97, 108, 105, 97, 115, 90, 0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110,
            111, 104, 111, 115, 116, 0, 0, 0, 0, 0, 2, 113, 246, 192, 212, 0, 1, 32, 88, 123, 242,
            110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64,
        ];
        assert_eq!(check(from_erl), Ok(from_erl.len()));
        let (t, _) = decode(from_erl).unwrap();
        let els = as_tuple(&t).unwrap();
        assert_eq!(as_atom(&els[0]), Some("ok"));
        assert!(matches!(els[3], Term::Pid(_)));
        assert!(matches!(els[4], Term::Reference(_)));
        assert!(matches!(els[6], Term::ImproperList(_)));
        assert!(matches!(els[7], Term::BigInteger(_)));
    }

    #[test]
    fn huge_declared_counts_are_refused_before_allocating() {
        // LIST_EXT claiming 4G elements, in 7 bytes.
        assert!(matches!(
            check(&[131, 108, 255, 255, 255, 255, 106]),
            Err(TermError::Oversized { .. })
        ));
        assert!(matches!(
            check(&[131, 105, 255, 255, 255, 255]),
            Err(TermError::Oversized { .. })
        ));
        assert!(matches!(
            check(&[131, 116, 0, 0, 0, 2, 106, 106, 106]),
            Err(TermError::Oversized { .. })
        ));
        assert!(matches!(
            check(&[131, 109, 255, 255, 255, 255]),
            Err(TermError::Truncated(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![131];
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[104, 1]);
        }
        bytes.push(106);
        assert_eq!(check(&bytes), Err(TermError::TooDeep));
        // Improper-list tails nest too.
        let mut bytes = vec![131];
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[108, 0, 0, 0, 1, 106]);
        }
        bytes.push(106);
        assert_eq!(check(&bytes), Err(TermError::TooDeep));
        // The limit itself decodes fine on a test thread's stack.
        let mut ok = vec![131];
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[104, 1]);
        }
        ok.push(106);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn dangerous_tags_are_refused() {
        for (bytes, tag) in [
            (&[131u8, 80, 0, 0, 0, 10, 1][..], 80u8), // compressed
            (&[131, 68, 0][..], 68),                  // distribution header: eetf panics
            (&[131, 82, 0][..], 82),                  // atom cache reference
            (&[131, 121, 0][..], 121),                // LOCAL_EXT
            (&[131, 117, 0][..], 117),                // old FUN_EXT
        ] {
            assert!(
                matches!(check(bytes), Err(TermError::BadTag { tag: t, .. }) if t == tag),
                "{tag}"
            );
        }
        assert_eq!(check(&[130, 106]), Err(TermError::BadVersion(130)));
        // Found by the dist_frame fuzz target: a bit binary with 0 tail bits panicked eetf.
        let zero_bits = [0x83, 0x4d, 0, 0, 0, 1, 0, 0];
        assert!(matches!(
            check(&zero_bits),
            Err(TermError::BadTag { tag: 77, .. })
        ));
        assert!(decode(&zero_bits).is_err());
        assert!(check(&[0x83, 0x4d, 0, 0, 0, 1, 9, 0]).is_err());
        assert!(decode(&[0x83, 0x4d, 0, 0, 0, 1, 3, 0xff]).is_ok());
        assert_eq!(check(&[]), Err(TermError::Truncated(0)));
    }

    #[test]
    fn truncations_never_panic() {
        let term = tuple(vec![
            atom("x"),
            pid(&Pid::new("n@h", 1, 2, 3)),
            list(vec![int(7)]),
        ]);
        let bytes = enc(&term);
        for cut in 0..bytes.len() {
            assert!(check(&bytes[..cut]).is_err(), "cut {cut}");
            assert!(decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
