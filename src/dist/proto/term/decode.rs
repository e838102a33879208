//! Decoding the external term format, iteratively and without trusting declared sizes.
//!
//! Containers are built with an explicit stack of open frames, so depth costs heap, not stack.
//! A declared element count is used for pre-allocation only up to the number of bytes left in
//! the buffer (every element takes at least one byte), so a ten-byte message cannot ask for
//! gigabytes. Binaries are slices of the input [`Bytes`]: nothing is copied.
//!
//! Refused on purpose, as a connection without the atom cache never carries them: compressed
//! terms (80), distribution headers (68), atom-cache references (82), the pre-R7 `FUN_EXT`
//! (117) and `LOCAL_EXT` (121).

use bytes::Bytes;
use thiserror::Error;

use super::{improper, Atom, BigInt, Export, Fun, Pid, Port, Ref, Term, Terms};

/// The external term format's version byte.
pub(super) const VERSION: u8 = 131;

/// Why bytes are not a term.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end inside a term.
    #[error("term is truncated at byte {0}")]
    Truncated(usize),
    /// The first byte is not the version byte 131.
    #[error("term does not start with version byte 131 (got {0})")]
    BadVersion(u8),
    /// A tag we do not accept.
    #[error("unsupported term tag {tag} at byte {at}")]
    BadTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A declared count larger than the remaining bytes could hold.
    #[error("term declares {count} elements at byte {at}, more than the message holds")]
    Oversized {
        /// The declared count.
        count: u64,
        /// Its offset.
        at: usize,
    },
    /// A value that is not valid for its tag (an atom that is not text, a bitstring with a
    /// bad bit count, a reference with too many words, a float that is not a number…).
    #[error("invalid {what} at byte {at}")]
    Invalid {
        /// What was wrong.
        what: &'static str,
        /// Its offset.
        at: usize,
    },
    /// Bytes left over after the term.
    #[error("{0} trailing bytes after the term")]
    Trailing(usize),
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated(self.buf.len()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn slice(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..start + n))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn text_atom(&mut self, latin1: bool, len: usize) -> Result<Atom, DecodeError> {
        let at = self.pos;
        let bytes = self.take(len)?;
        let text: String = if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            std::str::from_utf8(bytes)
                .map_err(|_| DecodeError::Invalid {
                    what: "UTF-8 atom",
                    at,
                })?
                .to_owned()
        };
        if text.chars().count() > 255 {
            return Err(DecodeError::Invalid {
                what: "atom longer than 255 characters",
                at,
            });
        }
        Ok(Atom::from(text))
    }

    /// An atom in a position that must hold one (a pid's node, a module).
    fn atom(&mut self) -> Result<Atom, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            100 => {
                let n = self.u16()? as usize;
                self.text_atom(true, n)
            }
            115 => {
                let n = self.u8()? as usize;
                self.text_atom(true, n)
            }
            118 => {
                let n = self.u16()? as usize;
                self.text_atom(false, n)
            }
            119 => {
                let n = self.u8()? as usize;
                self.text_atom(false, n)
            }
            tag => Err(DecodeError::BadTag { tag, at }),
        }
    }

    fn ref_words(&mut self, n: usize, at: usize) -> Result<Vec<u32>, DecodeError> {
        if n == 0 || n > 5 {
            return Err(DecodeError::Invalid {
                what: "reference length",
                at,
            });
        }
        (0..n).map(|_| self.u32()).collect()
    }
}

/// What one header turned out to be.
enum Item {
    Leaf(Term),
    Open(Kind, usize),
}

#[derive(Clone, Copy)]
enum Kind {
    Tuple,
    /// A list: elements then the tail, which is the last child.
    List,
    Map,
}

struct Open {
    kind: Kind,
    items: Vec<Term>,
    left: usize,
}

fn big(negative: bool, mut magnitude: Vec<u8>) -> Term {
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    if magnitude.len() <= 8 {
        let mut a = [0u8; 8];
        a[..magnitude.len()].copy_from_slice(&magnitude);
        let m = u64::from_le_bytes(a);
        if !negative {
            if let Ok(v) = i64::try_from(m) {
                return Term::Int(v);
            }
        } else if m <= i64::MAX as u64 + 1 {
            return Term::Int((m as i128).wrapping_neg() as i64);
        }
    }
    Term::Big(Box::new(BigInt {
        negative,
        magnitude,
    }))
}

fn header(r: &mut Reader<'_>) -> Result<Item, DecodeError> {
    let at = r.pos;
    let tag = r.u8()?;
    let leaf = match tag {
        97 => Term::Int(i64::from(r.u8()?)),
        98 => Term::Int(i64::from(r.u32()? as i32)),
        70 => {
            let v = f64::from_bits(r.u64()?);
            if !v.is_finite() {
                return Err(DecodeError::Invalid { what: "float", at });
            }
            Term::Float(v)
        }
        99 => {
            let raw = r.take(31)?;
            let text = std::str::from_utf8(raw)
                .ok()
                .map(|s| s.trim_end_matches('\0').trim())
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite());
            Term::Float(text.ok_or(DecodeError::Invalid { what: "float", at })?)
        }
        100 | 115 | 118 | 119 => {
            r.pos = at;
            Term::Atom(r.atom()?)
        }
        106 => Term::nil(),
        107 => {
            let n = r.u16()? as usize;
            let chars = r.take(n)?;
            Term::List(Terms::from(
                chars
                    .iter()
                    .map(|&c| Term::Int(i64::from(c)))
                    .collect::<Vec<_>>(),
            ))
        }
        109 => {
            let n = r.u32()? as usize;
            Term::Binary(r.slice(n)?)
        }
        77 => {
            let n = r.u32()? as usize;
            let bits = r.u8()?;
            let data = r.slice(n)?;
            match (n, bits) {
                (0, 0) => Term::Binary(data),
                (0, _) => {
                    return Err(DecodeError::Invalid {
                        what: "bitstring",
                        at,
                    })
                }
                (_, 8) => Term::Binary(data),
                (_, 1..=7) => Term::Bits(data, bits),
                _ => {
                    return Err(DecodeError::Invalid {
                        what: "bitstring",
                        at,
                    })
                }
            }
        }
        110 | 111 => {
            let n = if tag == 110 {
                r.u8()? as usize
            } else {
                r.u32()? as usize
            };
            let sign = r.u8()?;
            if sign > 1 {
                return Err(DecodeError::Invalid {
                    what: "integer sign",
                    at,
                });
            }
            big(sign == 1, r.take(n)?.to_vec())
        }
        88 | 103 => {
            let node = r.atom()?;
            let id = r.u32()?;
            let serial = r.u32()?;
            let creation = if tag == 88 {
                r.u32()?
            } else {
                u32::from(r.u8()?)
            };
            Term::Pid(Pid {
                node,
                id,
                serial,
                creation,
            })
        }
        89 | 102 | 120 => {
            let node = r.atom()?;
            let (id, creation) = match tag {
                120 => (r.u64()?, r.u32()?),
                89 => (u64::from(r.u32()?), r.u32()?),
                _ => (u64::from(r.u32()?), u32::from(r.u8()?)),
            };
            Term::Port(Port { node, id, creation })
        }
        90 | 114 => {
            let n = r.u16()? as usize;
            let node = r.atom()?;
            let creation = if tag == 90 {
                r.u32()?
            } else {
                u32::from(r.u8()?)
            };
            let words = r.ref_words(n, at)?;
            Term::Ref(Ref::with_atom(node, creation, &words))
        }
        101 => {
            let node = r.atom()?;
            let id = r.u32()?;
            let creation = u32::from(r.u8()?);
            Term::Ref(Ref::with_atom(node, creation, &[id]))
        }
        113 => {
            let module = r.atom()?;
            let function = r.atom()?;
            let arity_at = r.pos;
            if r.u8()? != 97 {
                return Err(DecodeError::Invalid {
                    what: "export arity",
                    at: arity_at,
                });
            }
            let arity = r.u8()?;
            Term::Export(Box::new(Export {
                module,
                function,
                arity,
            }))
        }
        112 => {
            // Size covers itself and everything after it; we keep the bytes as they are.
            let size = r.u32()? as usize;
            if size < 4 + 1 + 16 + 4 + 4 + 2 {
                return Err(DecodeError::Invalid { what: "fun", at });
            }
            let body_start = r.pos;
            r.take(size - 4)?;
            let mut inner = Reader {
                buf: r.buf,
                pos: body_start,
            };
            let arity = inner.u8()?;
            inner.take(16 + 4 + 4)?;
            let module = inner.atom()?;
            if inner.pos > r.pos {
                return Err(DecodeError::Invalid { what: "fun", at });
            }
            Term::Fun(Box::new(Fun {
                module,
                arity,
                encoded: r.buf.slice(at..r.pos),
            }))
        }
        104 => {
            let n = u64::from(r.u8()?);
            return open(r, Kind::Tuple, n, at);
        }
        105 => {
            let n = u64::from(r.u32()?);
            return open(r, Kind::Tuple, n, at);
        }
        108 => {
            let n = u64::from(r.u32()?) + 1;
            return open(r, Kind::List, n, at);
        }
        116 => {
            let n = u64::from(r.u32()?) * 2;
            return open(r, Kind::Map, n, at);
        }
        tag => return Err(DecodeError::BadTag { tag, at }),
    };
    Ok(Item::Leaf(leaf))
}

fn open(r: &Reader<'_>, kind: Kind, children: u64, at: usize) -> Result<Item, DecodeError> {
    if children > r.remaining() as u64 {
        return Err(DecodeError::Oversized {
            count: children,
            at,
        });
    }
    let n = children as usize;
    if n == 0 {
        return Ok(Item::Leaf(match kind {
            Kind::Tuple => Term::Tuple(Terms::default()),
            Kind::Map => Term::Map(Terms::default()),
            Kind::List => Term::nil(),
        }));
    }
    Ok(Item::Open(kind, n))
}

fn close(frame: Open) -> Term {
    match frame.kind {
        Kind::Tuple => Term::Tuple(Terms::from(frame.items)),
        Kind::Map => Term::Map(Terms::from(frame.items)),
        Kind::List => {
            let mut items = frame.items;
            let tail = items.pop().unwrap_or_else(Term::nil);
            improper(items, tail)
        }
    }
}

/// Decodes one term starting at `start` (which must hold the version byte 131). Returns the
/// term and the offset just after it.
pub fn decode(buf: &Bytes, start: usize) -> Result<(Term, usize), DecodeError> {
    let mut r = Reader { buf, pos: start };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    decode_from(r)
}

/// Decodes one term starting at `start` with no version byte: the form terms take after a
/// distribution header. Returns the term and the offset just after it.
pub fn decode_body(buf: &Bytes, start: usize) -> Result<(Term, usize), DecodeError> {
    decode_from(Reader { buf, pos: start })
}

fn decode_from(mut r: Reader<'_>) -> Result<(Term, usize), DecodeError> {
    let mut stack: Vec<Open> = Vec::new();
    loop {
        let mut done = match header(&mut r)? {
            Item::Open(kind, left) => {
                // Every child takes at least one byte: never reserve more than that.
                let cap = left.min(r.remaining()).min(1 << 16);
                stack.push(Open {
                    kind,
                    items: Vec::with_capacity(cap),
                    left,
                });
                continue;
            }
            Item::Leaf(t) => t,
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok((done, r.pos));
            };
            top.items.push(done);
            top.left -= 1;
            if top.left > 0 {
                break;
            }
            let Some(frame) = stack.pop() else {
                unreachable!("the stack had a top frame")
            };
            done = close(frame);
        }
    }
}

/// Decodes a buffer that holds exactly one term.
pub fn decode_exact(buf: &Bytes) -> Result<Term, DecodeError> {
    let (t, end) = decode(buf, 0)?;
    if end != buf.len() {
        return Err(DecodeError::Trailing(buf.len() - end));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::{atom, encode_to_vec, int, list, tuple};
    use super::*;

    fn dec(bytes: &[u8]) -> Result<Term, DecodeError> {
        decode_exact(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn terms_from_erlang_decode() {
        // term_to_binary({ok, [1,2,3], <<"x">>, self(), make_ref(), #{a => 1.5},
        //                 [alias|make_ref()], 1 bsl 70}) on OTP 25 (nonode@nohost).
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
        let t = dec(from_erl).unwrap();
        let els = t.as_tuple().unwrap();
        assert!(els[0].is_atom("ok"));
        assert_eq!(els[1], list(vec![int(1), int(2), int(3)]));
        assert_eq!(els[2].as_binary().map(|b| &b[..]), Some(&b"x"[..]));
        assert_eq!(
            els[3].as_pid().map(|p| (p.id, p.node.as_str())),
            Some((9, "nonode@nohost"))
        );
        assert_eq!(els[4].as_ref().map(|r| r.words().len()), Some(3));
        assert!(matches!(els[5].map_get_atom("a"), Some(Term::Float(f)) if *f == 1.5));
        assert!(matches!(&els[6], Term::Improper(i) if i.len() == 2 && i[0].is_atom("alias")));
        assert!(matches!(&els[7], Term::Big(b) if !b.negative && b.magnitude.len() == 9));
        // And it encodes back to the same bytes (we always write UTF-8 atoms, so compare
        // through a second decode instead).
        let again = encode_to_vec(&t);
        assert_eq!(dec(&again).unwrap(), t);
    }

    #[test]
    fn binaries_are_slices_of_the_input() {
        let mut v = vec![131, 109, 0, 0, 0, 4];
        v.extend_from_slice(b"abcd");
        let buf = Bytes::from(v);
        let (t, _) = decode(&buf, 0).unwrap();
        let Term::Binary(b) = t else { panic!() };
        assert_eq!(b.as_ptr(), buf[6..].as_ptr());
    }

    #[test]
    fn huge_declared_counts_are_refused_before_allocating() {
        for bytes in [
            &[131u8, 108, 255, 255, 255, 255, 106][..],
            &[131, 105, 255, 255, 255, 255],
            &[131, 116, 0, 0, 0, 2, 106, 106, 106],
        ] {
            assert!(
                matches!(dec(bytes), Err(DecodeError::Oversized { .. })),
                "{bytes:?}"
            );
        }
        assert!(matches!(
            dec(&[131, 109, 255, 255, 255, 255]),
            Err(DecodeError::Truncated(_))
        ));
        assert!(matches!(
            dec(&[131, 111, 255, 255, 255, 255, 0]),
            Err(DecodeError::Truncated(_))
        ));
    }

    #[test]
    fn any_depth_decodes_iteratively() {
        let depth = 100_000;
        let mut bytes = vec![131];
        for _ in 0..depth {
            bytes.extend_from_slice(&[104, 1]);
        }
        bytes.push(106);
        let mut t = &dec(&bytes).unwrap();
        for _ in 0..depth {
            t = &t.as_tuple().unwrap()[0];
        }
        assert!(t.is_nil());
        // Improper-list tails nest too; they flatten into one list.
        let mut bytes = vec![131];
        for _ in 0..depth {
            bytes.extend_from_slice(&[108, 0, 0, 0, 1, 97, 7]);
        }
        bytes.push(106);
        assert_eq!(
            dec(&bytes).unwrap().as_list().map(<[Term]>::len),
            Some(depth)
        );
    }

    #[test]
    fn refused_tags_and_bad_values() {
        for (bytes, tag) in [
            (&[131u8, 80, 0, 0, 0, 10, 1][..], 80u8),
            (&[131, 68, 0][..], 68),
            (&[131, 82, 0][..], 82),
            (&[131, 121, 0][..], 121),
            (&[131, 117, 0][..], 117),
        ] {
            assert!(
                matches!(dec(bytes), Err(DecodeError::BadTag { tag: t, .. }) if t == tag),
                "{tag}"
            );
        }
        assert_eq!(dec(&[130, 106]), Err(DecodeError::BadVersion(130)));
        // Bitstrings: 0 tail bits with data, 9 bits, and bits on an empty one.
        assert!(dec(&[131, 77, 0, 0, 0, 1, 0, 0]).is_err());
        assert!(dec(&[131, 77, 0, 0, 0, 1, 9, 0]).is_err());
        assert!(dec(&[131, 77, 0, 0, 0, 0, 3]).is_err());
        assert!(matches!(
            dec(&[131, 77, 0, 0, 0, 1, 3, 0xe0]),
            Ok(Term::Bits(_, 3))
        ));
        // Invalid UTF-8 atom, references with 0 or 6 words.
        assert!(dec(&[131, 119, 1, 0xff]).is_err());
        assert!(dec(&[131, 90, 0, 0, 115, 1, b'n', 0, 0, 0, 1]).is_err());
        let mut six = vec![131, 90, 0, 6, 115, 1, b'n', 0, 0, 0, 1];
        six.extend_from_slice(&[0; 24]);
        assert!(dec(&six).is_err());
        assert!(dec(&[]).is_err());
        assert_eq!(dec(&[131, 106, 0]), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn latin1_atoms_strings_and_integers() {
        assert_eq!(dec(&[131, 100, 0, 1, 0xe9]).unwrap(), atom("é"));
        assert_eq!(
            dec(&[131, 107, 0, 2, b'h', b'i']).unwrap(),
            list(vec![int(104), int(105)])
        );
        assert_eq!(dec(&[131, 98, 255, 255, 255, 255]).unwrap(), int(-1));
        assert_eq!(dec(&[131, 110, 1, 1, 5]).unwrap(), int(-5));
        assert_eq!(
            dec(&[131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80]).unwrap(),
            int(i64::MIN)
        );
        assert!(matches!(
            dec(&[131, 110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]),
            Ok(Term::Big(_))
        ));
        assert_eq!(
            dec(&[131, 104, 2, 97, 1, 106]).unwrap(),
            tuple(vec![int(1), Term::nil()])
        );
    }

    #[test]
    fn truncations_never_panic() {
        let t = tuple(vec![
            atom("x"),
            Term::Pid(Pid::new("n@h", 1, 2, 3)),
            list(vec![int(7)]),
            super::super::map(vec![("k", int(300))]),
        ]);
        let bytes = encode_to_vec(&t);
        for cut in 0..bytes.len() {
            assert!(dec(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
