//! Printing terms in Erlang syntax (as `io:format("~p")` would, minus line breaking), without
//! recursion. [`Truncated`] caps the output for log lines, so a 200 MB binary or a deep term
//! in a warning costs a few hundred bytes.

use std::fmt::{self, Write};

use super::Term;

pub(super) const RESERVED: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or", "orelse", "receive",
    "rem", "try", "when", "xor", "maybe", "else",
];

/// Whether `s` can be written as an atom without quotes.
pub(crate) fn bare_atom(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !RESERVED.contains(&s)
}

fn escape_into(out: &mut String, c: char, quote: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 32 || c as u32 == 127 => {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
        c => out.push(c),
    }
}

pub(crate) fn write_atom(f: &mut impl Write, s: &str) -> fmt::Result {
    if bare_atom(s) {
        f.write_str(s)
    } else {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('\'');
        for c in s.chars() {
            escape_into(&mut q, c, '\'');
        }
        q.push('\'');
        f.write_str(&q)
    }
}

fn printable_char(i: i64) -> bool {
    matches!(i, 32..=126 | 160..=255 | 8..=13 | 27)
}

fn float_text(f: f64) -> String {
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
        _ => s,
    }
}

enum Tok<'a> {
    Term(&'a Term),
    Lit(&'static str),
}

/// Renders `t` into `out`, stopping once `out` is longer than `limit`; returns whether it
/// stopped early.
fn render(t: &Term, out: &mut String, limit: usize) -> bool {
    let mut stack = vec![Tok::Term(t)];
    while let Some(tok) = stack.pop() {
        if out.len() > limit {
            return true;
        }
        let t = match tok {
            Tok::Lit(s) => {
                out.push_str(s);
                continue;
            }
            Tok::Term(t) => t,
        };
        match t {
            Term::Atom(a) => {
                let _ = write_atom(out, a.as_str());
            }
            Term::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Term::Big(b) => {
                // Printed in hex: exact, and big integers are rare enough in our traffic.
                out.push_str(if b.negative { "-16#" } else { "16#" });
                for byte in b.magnitude.iter().rev() {
                    let _ = write!(out, "{byte:02X}");
                }
            }
            Term::Float(f) => out.push_str(&float_text(*f)),
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) if s.chars().all(|c| !c.is_control() || "\n\t\r".contains(c)) => {
                    out.push_str("<<\"");
                    for c in s.chars() {
                        escape_into(out, c, '"');
                        if out.len() > limit {
                            return true;
                        }
                    }
                    out.push_str("\">>");
                }
                _ => {
                    out.push_str("<<");
                    for (i, byte) in b.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{byte}");
                        if out.len() > limit {
                            return true;
                        }
                    }
                    out.push_str(">>");
                }
            },
            Term::Bits(b, bits) => {
                out.push_str("<<");
                let last = b.len().saturating_sub(1);
                for (i, byte) in b.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if i == last {
                        let _ = write!(out, "{}:{bits}", byte >> (8 - bits));
                    } else {
                        let _ = write!(out, "{byte}");
                    }
                }
                out.push_str(">>");
            }
            Term::Pid(p) => {
                let _ = write!(out, "#Pid<{}.{}.{}>", p.node.as_str(), p.id, p.serial);
            }
            Term::Port(p) => {
                let _ = write!(out, "#Port<{}.{}>", p.node.as_str(), p.id);
            }
            Term::Ref(r) => {
                let _ = write!(out, "#Ref<{}", r.node.as_str());
                for w in r.words() {
                    let _ = write!(out, ".{w}");
                }
                out.push('>');
            }
            Term::Fun(f) => {
                let _ = write!(out, "#Fun<{}/{}>", f.module.as_str(), f.arity);
            }
            Term::Export(e) => {
                out.push_str("fun ");
                let _ = write_atom(out, e.module.as_str());
                out.push(':');
                let _ = write_atom(out, e.function.as_str());
                let _ = write!(out, "/{}", e.arity);
            }
            Term::Tuple(items) => {
                out.push('{');
                stack.push(Tok::Lit("}"));
                push_seq(&mut stack, items, ",");
            }
            Term::List(items)
                if !items.is_empty()
                    && items.iter().all(|c| c.as_int().is_some_and(printable_char)) =>
            {
                out.push('"');
                for c in items.iter() {
                    let code = c.as_int().unwrap_or(63) as u32;
                    escape_into(out, char::from_u32(code).unwrap_or('?'), '"');
                }
                out.push('"');
            }
            Term::List(items) => {
                out.push('[');
                stack.push(Tok::Lit("]"));
                push_seq(&mut stack, items, ",");
            }
            Term::Improper(items) => {
                out.push('[');
                stack.push(Tok::Lit("]"));
                if let Some((tail, head)) = items.split_last() {
                    stack.push(Tok::Term(tail));
                    stack.push(Tok::Lit("|"));
                    push_seq(&mut stack, head, ",");
                }
            }
            Term::Map(kv) => {
                out.push_str("#{");
                stack.push(Tok::Lit("}"));
                let pairs: Vec<&[Term]> = kv.chunks_exact(2).collect();
                for (i, p) in pairs.iter().enumerate().rev() {
                    stack.push(Tok::Term(&p[1]));
                    stack.push(Tok::Lit(" => "));
                    stack.push(Tok::Term(&p[0]));
                    if i > 0 {
                        stack.push(Tok::Lit(","));
                    }
                }
            }
        }
    }
    false
}

fn push_seq<'a>(stack: &mut Vec<Tok<'a>>, items: &'a [Term], sep: &'static str) {
    for (i, item) in items.iter().enumerate().rev() {
        stack.push(Tok::Term(item));
        if i > 0 {
            stack.push(Tok::Lit(sep));
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        render(self, &mut s, usize::MAX);
        f.write_str(&s)
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Truncated(self, 4096), f)
    }
}

/// A term printed to at most about this many bytes, then `...`: for log lines.
pub struct Truncated<'a>(pub &'a Term, pub usize);

impl fmt::Display for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if render(self.0, &mut s, self.1) {
            let mut cut = self.1.min(s.len());
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{atom, binary, improper, int, list, map, tuple, Pid};
    use super::*;

    #[test]
    fn erlang_syntax() {
        let t = tuple(vec![
            atom("ok"),
            atom("Elixir.Foo"),
            atom("end"),
            atom("it's"),
            list(vec![int(1), int(2)]),
            list(vec![int(104), int(105)]),
            Term::nil(),
            binary(&b"hi\n"[..]),
            binary(&[0u8, 1, 255][..]),
            Term::Bits(Bytes::from_static(&[0xff, 0xe0]), 3),
            map(vec![("a", int(1)), ("b", Term::Float(1e10))]),
            improper(vec![atom("alias")], atom("x")),
            Term::Pid(Pid::new("a@h", 5, 0, 1)),
            Term::Float(1.5),
        ]);
        assert_eq!(
            t.to_string(),
            "{ok,'Elixir.Foo','end','it\\'s',[1,2],\"hi\",[],<<\"hi\\n\">>,<<0,1,255>>,\
             <<255,7:3>>,#{a => 1,b => 10000000000.0},[alias|x],#Pid<a@h.5.0>,1.5}"
        );
    }

    #[test]
    fn truncation_bounds_the_output() {
        let big = binary(vec![b'a'; 1 << 20]);
        let s = Truncated(&big, 100).to_string();
        assert!(s.len() < 120 && s.ends_with("..."), "{s}");
        let mut deep = atom("x");
        for _ in 0..100_000 {
            deep = tuple(vec![deep]);
        }
        let s = format!("{deep:?}");
        assert!(s.len() < 5000 && s.ends_with("..."));
        assert_eq!(deep.to_string().len(), 200_001);
    }
}
