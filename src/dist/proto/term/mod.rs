//! Erlang terms, as our own type rather than `eetf`'s, because terms arrive from the network:
//! - **No recursion anywhere.** Decoding, encoding, printing, comparing and dropping all walk
//!   with an explicit stack, so a term nested 100,000 levels deep (which OTP accepts) costs
//!   heap, never stack. `eetf` recursed in all five and panicked on some tags.
//! - **Zero-copy binaries.** A binary decoded from a frame is a [`Bytes`] slice of that frame,
//!   so a 200 MB message is not copied again on its way to a mailbox.
//! - **Bounded allocation.** A declared element count is trusted only as far as the bytes that
//!   are really there can hold it (see [`decode`]).
//!
//! The shape follows the external term format (`erl_ext_dist`): nil is an empty [`Term::List`],
//! `STRING_EXT` decodes to a list of integers (as it is in Erlang), and a list whose tail is
//! another list is flattened, so `[a | [b]]` and `[a, b]` are the same term, as in Erlang.

mod cmp;
mod decode;
mod encode;
mod fmt;
mod parse;

use std::sync::Arc;

use bytes::Bytes;

pub use decode::{decode, decode_body, decode_exact, DecodeError};
pub use encode::{encode, encode_body, encode_to_vec, encoded_len};
pub use fmt::Truncated;
pub use parse::{parse, ParseError};

/// An atom: at most 255 characters of text, shared cheaply.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom(Arc<str>);

impl Atom {
    /// The atom's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Ordering, equality and hashing are those of the text, so tables keyed by atoms can be
// searched with a `&str` (no allocation per lookup).
impl std::borrow::Borrow<str> for Atom {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom(Arc::from(s))
    }
}

impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom(Arc::from(s))
    }
}

impl std::fmt::Debug for Atom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt::write_atom(f, self.as_str())
    }
}

impl std::fmt::Display for Atom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt::write_atom(f, self.as_str())
    }
}

/// A process identifier (`NEW_PID_EXT`). The derived order is for tables only; Erlang's term
/// order is [`Term`]'s.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pid {
    /// The node the process lives on.
    pub node: Atom,
    /// The process number.
    pub id: u32,
    /// The serial (wraps of the process number).
    pub serial: u32,
    /// The node incarnation the pid belongs to.
    pub creation: u32,
}

impl Pid {
    /// A pid on `node`.
    pub fn new(node: &str, id: u32, serial: u32, creation: u32) -> Pid {
        Pid {
            node: Atom::from(node),
            id,
            serial,
            creation,
        }
    }
}

/// A port identifier (`V4_PORT_EXT`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Port {
    /// The node.
    pub node: Atom,
    /// The port number.
    pub id: u64,
    /// The node incarnation.
    pub creation: u32,
}

/// A reference (`NEWER_REFERENCE_EXT`): up to five 32-bit words. The derived order is for
/// tables only.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ref {
    /// The node that made it.
    pub node: Atom,
    /// The node incarnation.
    pub creation: u32,
    words: [u32; 5],
    len: u8,
}

impl Ref {
    /// A reference with the given words (at most five are kept).
    pub fn new(node: &str, creation: u32, words: &[u32]) -> Ref {
        Ref::with_atom(Atom::from(node), creation, words)
    }

    /// Like [`Ref::new`] with the node already an atom.
    pub fn with_atom(node: Atom, creation: u32, words: &[u32]) -> Ref {
        let mut w = [0; 5];
        let len = words.len().min(5);
        w[..len].copy_from_slice(&words[..len]);
        Ref {
            node,
            creation,
            words: w,
            len: len as u8,
        }
    }

    /// The reference's words.
    pub fn words(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }
}

/// An integer too large for `i64`: sign and little-endian magnitude, as `SMALL_BIG_EXT`
/// carries it, normalised (no high zero bytes, never a value that fits `i64`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BigInt {
    /// True for negative numbers.
    pub negative: bool,
    /// Magnitude, least significant byte first.
    pub magnitude: Vec<u8>,
}

/// A fun as received: kept as its encoded bytes so it can be passed on unchanged. We never
/// call it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Fun {
    /// The module that defined it.
    pub module: Atom,
    /// Its arity.
    pub arity: u8,
    /// The whole `NEW_FUN_EXT` encoding, tag included.
    pub encoded: Bytes,
}

/// An external fun `fun M:F/A`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Export {
    /// Module.
    pub module: Atom,
    /// Function.
    pub function: Atom,
    /// Arity.
    pub arity: u8,
}

/// The elements of a tuple, list or map. Cloning and dropping it walk nested containers with
/// a loop, so a deeply nested term never overflows the stack when it is copied or goes away.
#[derive(Default)]
pub struct Terms(Vec<Term>);

/// A container being copied by [`Terms::clone`].
struct CloneFrame<'a> {
    src: &'a [Term],
    at: usize,
    out: Vec<Term>,
    wrap: fn(Terms) -> Term,
}

impl<'a> CloneFrame<'a> {
    fn new(src: &'a [Term], wrap: fn(Terms) -> Term) -> CloneFrame<'a> {
        CloneFrame {
            src,
            at: 0,
            out: Vec::with_capacity(src.len()),
            wrap,
        }
    }
}

impl Clone for Terms {
    fn clone(&self) -> Terms {
        let mut stack = vec![CloneFrame::new(&self.0, Term::Tuple)];
        loop {
            let Some(top) = stack.last_mut() else {
                unreachable!("the root frame returns before the stack empties")
            };
            let Some(t) = top.src.get(top.at) else {
                let Some(done) = stack.pop() else {
                    unreachable!("the stack had a top frame")
                };
                let terms = Terms(done.out);
                match stack.last_mut() {
                    None => return terms,
                    Some(parent) => parent.out.push((done.wrap)(terms)),
                }
                continue;
            };
            top.at += 1;
            let frame = match t {
                Term::Tuple(c) => CloneFrame::new(&c.0, Term::Tuple),
                Term::List(c) => CloneFrame::new(&c.0, Term::List),
                Term::Improper(c) => CloneFrame::new(&c.0, Term::Improper),
                Term::Map(c) => CloneFrame::new(&c.0, Term::Map),
                // Not a container: its clone is shallow.
                leaf => {
                    top.out.push(leaf.clone());
                    continue;
                }
            };
            stack.push(frame);
        }
    }
}

impl Terms {
    /// The elements, moved out.
    pub fn into_vec(mut self) -> Vec<Term> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<Term>> for Terms {
    fn from(v: Vec<Term>) -> Terms {
        Terms(v)
    }
}

impl std::ops::Deref for Terms {
    type Target = [Term];
    fn deref(&self) -> &[Term] {
        &self.0
    }
}

impl Drop for Terms {
    fn drop(&mut self) {
        if !self.0.iter().any(Term::is_container) {
            return;
        }
        let mut stack = std::mem::take(&mut self.0);
        while let Some(t) = stack.pop() {
            match t {
                Term::Tuple(mut c)
                | Term::List(mut c)
                | Term::Improper(mut c)
                | Term::Map(mut c) => stack.append(&mut c.0),
                _ => {}
            }
        }
    }
}

/// An Erlang term.
#[derive(Clone)]
pub enum Term {
    /// An atom.
    Atom(Atom),
    /// An integer that fits `i64`.
    Int(i64),
    /// Any larger integer.
    Big(Box<BigInt>),
    /// A float.
    Float(f64),
    /// A binary.
    Binary(Bytes),
    /// A bitstring whose last byte holds only the given number of bits (1..=7).
    Bits(Bytes, u8),
    /// A pid.
    Pid(Pid),
    /// A port.
    Port(Port),
    /// A reference.
    Ref(Ref),
    /// A tuple.
    Tuple(Terms),
    /// A proper list; nil is the empty list.
    List(Terms),
    /// An improper list: the elements, then the tail as the last item (never a list).
    Improper(Terms),
    /// A map, as key, value, key, value… in the order received.
    Map(Terms),
    /// A fun, kept encoded.
    Fun(Box<Fun>),
    /// `fun M:F/A`.
    Export(Box<Export>),
}

impl Term {
    fn is_container(&self) -> bool {
        matches!(
            self,
            Term::Tuple(_) | Term::List(_) | Term::Improper(_) | Term::Map(_)
        )
    }

    /// The atom's text, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a.as_str()),
            _ => None,
        }
    }

    /// Whether this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        self.as_atom() == Some(name)
    }

    /// The elements, if this is a tuple.
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(t) => Some(t),
            _ => None,
        }
    }

    /// The elements, if this is a proper list (nil included).
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::List(l) => Some(l),
            _ => None,
        }
    }

    /// The integer, if this is one that fits `i64`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The pid, if this is one.
    pub fn as_pid(&self) -> Option<&Pid> {
        match self {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<&Ref> {
        match self {
            Term::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// The bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The value under `key`, if this is a map holding it.
    pub fn map_get(&self, key: &Term) -> Option<&Term> {
        let Term::Map(kv) = self else { return None };
        kv.chunks_exact(2).find(|p| p[0] == *key).map(|p| &p[1])
    }

    /// The value under the atom key `key`, if this is a map holding it.
    pub fn map_get_atom(&self, key: &str) -> Option<&Term> {
        let Term::Map(kv) = self else { return None };
        kv.chunks_exact(2)
            .find(|p| p[0].is_atom(key))
            .map(|p| &p[1])
    }

    /// The key/value pairs, if this is a map.
    pub fn map_pairs(&self) -> Option<impl Iterator<Item = (&Term, &Term)>> {
        match self {
            Term::Map(kv) => Some(kv.chunks_exact(2).map(|p| (&p[0], &p[1]))),
            _ => None,
        }
    }

    /// `[]`.
    pub fn nil() -> Term {
        Term::List(Terms::default())
    }

    /// Whether this is `[]`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Term::List(l) if l.is_empty())
    }

    /// The text of a binary or a list of character codes (an Erlang string), if it is one.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Term::Binary(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            Term::List(l) => l
                .iter()
                .map(|c| {
                    c.as_int()
                        .and_then(|i| u32::try_from(i).ok())
                        .and_then(char::from_u32)
                })
                .collect(),
            Term::Atom(a) => Some(a.as_str().to_owned()),
            _ => None,
        }
    }
}

impl From<Atom> for Term {
    fn from(a: Atom) -> Term {
        Term::Atom(a)
    }
}

impl From<Pid> for Term {
    fn from(p: Pid) -> Term {
        Term::Pid(p)
    }
}

impl From<Ref> for Term {
    fn from(r: Ref) -> Term {
        Term::Ref(r)
    }
}

impl From<i64> for Term {
    fn from(i: i64) -> Term {
        Term::Int(i)
    }
}

impl From<u64> for Term {
    fn from(i: u64) -> Term {
        match i64::try_from(i) {
            Ok(v) => Term::Int(v),
            Err(_) => Term::Big(Box::new(BigInt {
                negative: false,
                magnitude: trim(i.to_le_bytes().to_vec()),
            })),
        }
    }
}

impl From<Bytes> for Term {
    fn from(b: Bytes) -> Term {
        Term::Binary(b)
    }
}

fn trim(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// An atom term.
pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

/// An integer term.
pub fn int(value: i64) -> Term {
    Term::Int(value)
}

/// A tuple term.
pub fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(Terms(elements))
}

/// A proper list term.
pub fn list(elements: Vec<Term>) -> Term {
    Term::List(Terms(elements))
}

/// A binary term holding `text`.
pub fn binary(text: impl Into<Bytes>) -> Term {
    Term::Binary(text.into())
}

/// A map term with atom keys.
pub fn map(pairs: Vec<(&str, Term)>) -> Term {
    let mut kv = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        kv.push(atom(k));
        kv.push(v);
    }
    Term::Map(Terms(kv))
}

/// A map term with any keys.
pub fn map_of(pairs: Vec<(Term, Term)>) -> Term {
    let mut kv = Vec::with_capacity(pairs.len() * 2);
    for (k, v) in pairs {
        kv.push(k);
        kv.push(v);
    }
    Term::Map(Terms(kv))
}

/// An improper list `[e1, …, en | tail]`; a list tail is flattened in, as Erlang does.
pub fn improper(mut elements: Vec<Term>, tail: Term) -> Term {
    match tail {
        Term::List(rest) => {
            elements.extend(rest.into_vec());
            list(elements)
        }
        Term::Improper(rest) => {
            elements.extend(rest.into_vec());
            Term::Improper(Terms(elements))
        }
        tail if elements.is_empty() => tail,
        tail => {
            elements.push(tail);
            Term::Improper(Terms(elements))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_terms_drop_without_recursion() {
        // A million levels would overflow any stack if dropping recursed.
        let mut t = atom("leaf");
        for _ in 0..1_000_000 {
            t = tuple(vec![t]);
        }
        drop(t);
        let mut t = Term::nil();
        for _ in 0..1_000_000 {
            t = list(vec![int(1), t]);
        }
        drop(t);
    }

    #[test]
    fn deep_terms_clone_without_recursion() {
        let mut t = atom("leaf");
        for i in 0..200_000 {
            t = match i % 4 {
                0 => tuple(vec![int(1), t]),
                1 => list(vec![t]),
                2 => improper(vec![t], atom("tail")),
                _ => map_of(vec![(int(2), t)]),
            };
        }
        let copy = t.clone();
        assert!(copy == t, "the copy is equal");
        let small = tuple(vec![
            atom("a"),
            list(vec![int(1), int(2)]),
            map(vec![("k", atom("v"))]),
        ]);
        assert_eq!(small.clone(), small);
    }

    #[test]
    fn improper_lists_flatten_list_tails() {
        assert_eq!(
            improper(vec![atom("a")], list(vec![atom("b")])),
            list(vec![atom("a"), atom("b")])
        );
        assert_eq!(
            improper(vec![atom("a")], improper(vec![atom("b")], atom("c"))),
            improper(vec![atom("a"), atom("b")], atom("c"))
        );
        assert!(matches!(
            improper(vec![atom("a")], atom("t")),
            Term::Improper(_)
        ));
        assert_eq!(improper(vec![], atom("t")), atom("t"));
    }

    #[test]
    fn maps_and_accessors() {
        let m = map(vec![("k", int(1)), ("s", binary(&b"v"[..]))]);
        assert_eq!(m.map_get_atom("k"), Some(&int(1)));
        assert_eq!(
            m.map_get(&atom("s")).and_then(Term::as_text),
            Some("v".into())
        );
        assert_eq!(m.map_get_atom("x"), None);
        assert_eq!(list(vec![int(104), int(105)]).as_text(), Some("hi".into()));
        assert!(Term::nil().is_nil());
        assert_eq!(Term::from(u64::MAX).as_int(), None);
        assert_eq!(Term::from(5u64), int(5));
    }

    #[test]
    fn refs_keep_at_most_five_words() {
        let r = Ref::new("n@h", 1, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(r.words(), &[1, 2, 3, 4, 5]);
    }
}
