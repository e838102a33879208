//! Encoding terms to the external term format, iteratively. We write what OTP 25 writes to a
//! peer with our flags: UTF-8 atoms, `NEW_PID_EXT`, `NEWER_REFERENCE_EXT`, `V4_PORT_EXT` when
//! a port number needs it, and `STRING_EXT` for short lists of bytes, as `term_to_binary` does.

use bytes::BufMut;

use super::decode::VERSION;
use super::{Atom, Term};

enum Todo<'a> {
    Term(&'a Term),
    Nil,
}

fn byte_string(items: &[Term]) -> bool {
    items.len() <= u16::MAX as usize
        && items
            .iter()
            .all(|t| matches!(t, Term::Int(i) if (0..=255).contains(i)))
}

fn put_atom<B: BufMut>(out: &mut B, a: &Atom) {
    let s = a.as_str().as_bytes();
    if s.len() <= 255 {
        out.put_u8(119);
        out.put_u8(s.len() as u8);
    } else {
        out.put_u8(118);
        out.put_u16(s.len() as u16);
    }
    out.put_slice(s);
}

fn atom_len(a: &Atom) -> usize {
    let n = a.as_str().len();
    if n <= 255 {
        2 + n
    } else {
        3 + n
    }
}

fn put_big<B: BufMut>(out: &mut B, negative: bool, magnitude: &[u8]) {
    if magnitude.len() <= 255 {
        out.put_u8(110);
        out.put_u8(magnitude.len() as u8);
    } else {
        out.put_u8(111);
        out.put_u32(magnitude.len() as u32);
    }
    out.put_u8(u8::from(negative));
    out.put_slice(magnitude);
}

fn int_magnitude(i: i64) -> Vec<u8> {
    let mut m = i.unsigned_abs().to_le_bytes().to_vec();
    while m.last() == Some(&0) {
        m.pop();
    }
    m
}

/// Appends `term`, version byte included, to `out`.
pub fn encode<B: BufMut>(term: &Term, out: &mut B) {
    out.put_u8(VERSION);
    encode_body(term, out);
}

/// Appends `term` without the version byte: the form terms take after a distribution header.
pub fn encode_body<B: BufMut>(term: &Term, out: &mut B) {
    let mut stack = vec![Todo::Term(term)];
    while let Some(todo) = stack.pop() {
        let t = match todo {
            Todo::Nil => {
                out.put_u8(106);
                continue;
            }
            Todo::Term(t) => t,
        };
        match t {
            Term::Atom(a) => put_atom(out, a),
            Term::Int(i) if (0..=255).contains(i) => {
                out.put_u8(97);
                out.put_u8(*i as u8);
            }
            Term::Int(i) if i32::try_from(*i).is_ok() => {
                out.put_u8(98);
                out.put_i32(*i as i32);
            }
            Term::Int(i) => put_big(out, *i < 0, &int_magnitude(*i)),
            Term::Big(b) => put_big(out, b.negative, &b.magnitude),
            Term::Float(f) => {
                out.put_u8(70);
                out.put_f64(*f);
            }
            Term::Binary(b) => {
                out.put_u8(109);
                out.put_u32(b.len() as u32);
                out.put_slice(b);
            }
            Term::Bits(b, bits) => {
                out.put_u8(77);
                out.put_u32(b.len() as u32);
                out.put_u8(*bits);
                out.put_slice(b);
            }
            Term::Pid(p) => {
                out.put_u8(88);
                put_atom(out, &p.node);
                out.put_u32(p.id);
                out.put_u32(p.serial);
                out.put_u32(p.creation);
            }
            Term::Port(p) => {
                if let Ok(id) = u32::try_from(p.id) {
                    out.put_u8(89);
                    put_atom(out, &p.node);
                    out.put_u32(id);
                } else {
                    out.put_u8(120);
                    put_atom(out, &p.node);
                    out.put_u64(p.id);
                }
                out.put_u32(p.creation);
            }
            Term::Ref(r) => {
                out.put_u8(90);
                out.put_u16(r.words().len() as u16);
                put_atom(out, &r.node);
                out.put_u32(r.creation);
                for w in r.words() {
                    out.put_u32(*w);
                }
            }
            Term::Fun(f) => out.put_slice(&f.encoded),
            Term::Export(e) => {
                out.put_u8(113);
                put_atom(out, &e.module);
                put_atom(out, &e.function);
                out.put_u8(97);
                out.put_u8(e.arity);
            }
            Term::Tuple(items) => {
                if items.len() <= 255 {
                    out.put_u8(104);
                    out.put_u8(items.len() as u8);
                } else {
                    out.put_u8(105);
                    out.put_u32(items.len() as u32);
                }
                stack.extend(items.iter().rev().map(Todo::Term));
            }
            Term::Map(kv) => {
                out.put_u8(116);
                out.put_u32((kv.len() / 2) as u32);
                stack.extend(kv.iter().rev().map(Todo::Term));
            }
            Term::List(items) if items.is_empty() => out.put_u8(106),
            Term::List(items) if byte_string(items) => {
                out.put_u8(107);
                out.put_u16(items.len() as u16);
                for i in items.iter() {
                    out.put_u8(i.as_int().unwrap_or(0) as u8);
                }
            }
            Term::List(items) => {
                out.put_u8(108);
                out.put_u32(items.len() as u32);
                stack.push(Todo::Nil);
                stack.extend(items.iter().rev().map(Todo::Term));
            }
            Term::Improper(items) => {
                out.put_u8(108);
                out.put_u32(items.len().saturating_sub(1) as u32);
                stack.extend(items.iter().rev().map(Todo::Term));
            }
        }
    }
}

/// The term's encoding as a new vector.
pub fn encode_to_vec(term: &Term) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    encode(term, &mut v);
    v
}

/// How many bytes [`encode`] writes for `term` (version byte included), without writing them.
pub fn encoded_len(term: &Term) -> usize {
    let mut n = 1;
    let mut stack = vec![term];
    while let Some(t) = stack.pop() {
        n += match t {
            Term::Atom(a) => atom_len(a),
            Term::Int(i) if (0..=255).contains(i) => 2,
            Term::Int(i) if i32::try_from(*i).is_ok() => 5,
            Term::Int(i) => 3 + int_magnitude(*i).len(),
            Term::Big(b) if b.magnitude.len() <= 255 => 3 + b.magnitude.len(),
            Term::Big(b) => 6 + b.magnitude.len(),
            Term::Float(_) => 9,
            Term::Binary(b) => 5 + b.len(),
            Term::Bits(b, _) => 6 + b.len(),
            Term::Pid(p) => 1 + atom_len(&p.node) + 12,
            Term::Port(p) if p.id <= u64::from(u32::MAX) => 1 + atom_len(&p.node) + 8,
            Term::Port(p) => 1 + atom_len(&p.node) + 12,
            Term::Ref(r) => 3 + atom_len(&r.node) + 4 + 4 * r.words().len(),
            Term::Fun(f) => f.encoded.len(),
            Term::Export(e) => 1 + atom_len(&e.module) + atom_len(&e.function) + 2,
            Term::Tuple(items) => {
                stack.extend(items.iter());
                if items.len() <= 255 {
                    2
                } else {
                    5
                }
            }
            Term::Map(kv) => {
                stack.extend(kv.iter());
                5
            }
            Term::List(items) if items.is_empty() => 1,
            Term::List(items) if byte_string(items) => 3 + items.len(),
            Term::List(items) => {
                stack.extend(items.iter());
                6
            }
            Term::Improper(items) => {
                stack.extend(items.iter());
                5
            }
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{
        atom, binary, decode_exact, improper, int, list, map, tuple, BigInt, Export, Pid, Port, Ref,
    };
    use super::*;

    fn round_trip(t: &Term) {
        let v = encode_to_vec(t);
        assert_eq!(v.len(), encoded_len(t), "{t}");
        assert_eq!(&decode_exact(&Bytes::from(v)).unwrap(), t);
    }

    #[test]
    fn every_kind_round_trips() {
        for t in [
            atom("ok"),
            atom(&"x".repeat(255)),
            atom("ünïcode"),
            int(0),
            int(255),
            int(256),
            int(-1),
            int(i64::from(i32::MAX) + 1),
            int(i64::MIN),
            int(i64::MAX),
            Term::Big(Box::new(BigInt {
                negative: true,
                magnitude: vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            })),
            Term::Float(-2.5),
            binary(&b"hello"[..]),
            Term::Bits(Bytes::from_static(&[0xf0]), 4),
            Term::Pid(Pid::new("a@h", 1, 2, 3)),
            Term::Port(Port {
                node: "a@h".into(),
                id: 7,
                creation: 1,
            }),
            Term::Port(Port {
                node: "a@h".into(),
                id: u64::from(u32::MAX) + 9,
                creation: 1,
            }),
            Term::Ref(Ref::new("a@h", 4, &[1, 2, 3])),
            Term::Export(Box::new(Export {
                module: "lists".into(),
                function: "map".into(),
                arity: 2,
            })),
            Term::nil(),
            list(vec![int(104), int(105)]),
            list(vec![int(1), atom("a"), int(1000)]),
            improper(vec![atom("alias")], Term::Ref(Ref::new("a@h", 1, &[9]))),
            tuple(vec![]),
            tuple((0..300).map(int).collect()),
            map(vec![("a", int(1)), ("b", list(vec![tuple(vec![])]))]),
        ] {
            round_trip(&t);
        }
    }

    #[test]
    fn deep_terms_encode_iteratively() {
        let mut t = atom("x");
        for _ in 0..200_000 {
            t = list(vec![t, int(1000)]);
        }
        round_trip(&t);
    }
}
