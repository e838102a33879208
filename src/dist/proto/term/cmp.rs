//! Erlang's term order and exact equality (`=:=`), walked with an explicit stack.
//!
//! number < atom < reference < fun < port < pid < tuple < map < nil < list < bitstring.
//! Tuples compare by size, then element by element; lists element by element, a shorter prefix
//! first; maps by size, then keys in order, then values. An integer and a float that are equal
//! in value differ (`1 =/= 1.0`); the integer sorts first.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use super::{BigInt, Term};

fn class(t: &Term) -> u8 {
    match t {
        Term::Int(_) | Term::Big(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Ref(_) => 2,
        Term::Fun(_) | Term::Export(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(l) if l.is_empty() => 8,
        Term::List(_) | Term::Improper(_) => 9,
        Term::Binary(_) | Term::Bits(..) => 10,
    }
}

fn big_f64(b: &BigInt) -> f64 {
    let m = b
        .magnitude
        .iter()
        .rev()
        .fold(0.0f64, |acc, &d| acc * 256.0 + f64::from(d));
    if b.negative {
        -m
    } else {
        m
    }
}

fn cmp_big(a: &BigInt, b: &BigInt) -> Ordering {
    match (a.negative, b.negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (neg, _) => {
            let mag = a
                .magnitude
                .len()
                .cmp(&b.magnitude.len())
                .then_with(|| a.magnitude.iter().rev().cmp(b.magnitude.iter().rev()));
            if neg {
                mag.reverse()
            } else {
                mag
            }
        }
    }
}

fn cmp_numbers(a: &Term, b: &Term) -> Ordering {
    match (a, b) {
        (Term::Int(x), Term::Int(y)) => x.cmp(y),
        (Term::Big(x), Term::Big(y)) => cmp_big(x, y),
        // A normalised big integer never fits i64, so its sign decides.
        (Term::Int(_), Term::Big(y)) => {
            if y.negative {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Term::Big(x), Term::Int(_)) => {
            if x.negative {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (Term::Float(x), Term::Float(y)) => x.total_cmp(y),
        (x, y) => {
            let fx = number_f64(x);
            let fy = number_f64(y);
            fx.partial_cmp(&fy)
                .unwrap_or(Ordering::Equal)
                .then_with(|| matches!(x, Term::Float(_)).cmp(&matches!(y, Term::Float(_))))
        }
    }
}

fn number_f64(t: &Term) -> f64 {
    match t {
        Term::Int(i) => *i as f64,
        Term::Big(b) => big_f64(b),
        Term::Float(f) => *f,
        _ => 0.0,
    }
}

enum Step<'a> {
    Pair(&'a Term, &'a Term),
    /// After a run of element pairs compared equal: the shorter sequence sorts first.
    Len(usize, usize),
}

fn sorted_pairs(kv: &[Term]) -> Vec<(&Term, &Term)> {
    let mut pairs: Vec<(&Term, &Term)> = kv.chunks_exact(2).map(|p| (&p[0], &p[1])).collect();
    pairs.sort_by(|a, b| compare(a.0, b.0));
    pairs
}

/// Compares two terms in Erlang's term order.
pub fn compare(a: &Term, b: &Term) -> Ordering {
    let mut stack = vec![Step::Pair(a, b)];
    while let Some(step) = stack.pop() {
        let (a, b) = match step {
            Step::Len(x, y) => match x.cmp(&y) {
                Ordering::Equal => continue,
                o => return o,
            },
            Step::Pair(a, b) => (a, b),
        };
        let order = class(a).cmp(&class(b));
        if order != Ordering::Equal {
            return order;
        }
        let order = match (a, b) {
            (Term::Atom(x), Term::Atom(y)) => x.as_str().cmp(y.as_str()),
            (Term::Int(_) | Term::Big(_) | Term::Float(_), _) => cmp_numbers(a, b),
            (Term::Ref(x), Term::Ref(y)) => x
                .node
                .cmp(&y.node)
                .then(x.creation.cmp(&y.creation))
                .then_with(|| x.words().iter().rev().cmp(y.words().iter().rev())),
            (Term::Fun(x), Term::Fun(y)) => x.encoded.cmp(&y.encoded),
            (Term::Export(x), Term::Export(y)) => {
                (&x.module, &x.function, x.arity).cmp(&(&y.module, &y.function, y.arity))
            }
            (Term::Fun(_), Term::Export(_)) => Ordering::Less,
            (Term::Export(_), Term::Fun(_)) => Ordering::Greater,
            (Term::Port(x), Term::Port(y)) => {
                (&x.node, x.creation, x.id).cmp(&(&y.node, y.creation, y.id))
            }
            // As erts compares pids (verified against OTP 25): serial, number, node, creation.
            (Term::Pid(x), Term::Pid(y)) => {
                (x.serial, x.id, &x.node, x.creation).cmp(&(y.serial, y.id, &y.node, y.creation))
            }
            (Term::Binary(x) | Term::Bits(x, _), Term::Binary(y) | Term::Bits(y, _)) => {
                let bits = |t: &Term| match t {
                    Term::Bits(_, n) => *n,
                    _ => 8,
                };
                x.cmp(y).then(bits(a).cmp(&bits(b)))
            }
            (Term::Tuple(x), Term::Tuple(y)) => match x.len().cmp(&y.len()) {
                Ordering::Equal => {
                    stack.extend(x.iter().zip(y.iter()).rev().map(|(p, q)| Step::Pair(p, q)));
                    continue;
                }
                o => o,
            },
            (Term::List(x) | Term::Improper(x), Term::List(y) | Term::Improper(y)) => {
                stack.push(Step::Len(x.len(), y.len()));
                stack.extend(x.iter().zip(y.iter()).rev().map(|(p, q)| Step::Pair(p, q)));
                continue;
            }
            (Term::Map(x), Term::Map(y)) => match x.len().cmp(&y.len()) {
                Ordering::Equal => {
                    let (px, py) = (sorted_pairs(x), sorted_pairs(y));
                    let keys: Vec<Step> = px
                        .iter()
                        .zip(py.iter())
                        .map(|(p, q)| Step::Pair(p.0, q.0))
                        .collect();
                    let values: Vec<Step> = px
                        .iter()
                        .zip(py.iter())
                        .map(|(p, q)| Step::Pair(p.1, q.1))
                        .collect();
                    stack.extend(values.into_iter().rev());
                    stack.extend(keys.into_iter().rev());
                    continue;
                }
                o => o,
            },
            _ => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        compare(self, other) == Ordering::Equal
    }
}

impl Eq for Term {}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Term) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Term) -> Ordering {
        compare(self, other)
    }
}

impl Hash for Term {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut stack = vec![self];
        while let Some(t) = stack.pop() {
            class(t).hash(state);
            match t {
                Term::Atom(a) => a.hash(state),
                Term::Int(i) => i.hash(state),
                Term::Big(b) => b.hash(state),
                Term::Float(f) => f.to_bits().hash(state),
                Term::Binary(b) | Term::Bits(b, _) => b.hash(state),
                Term::Pid(p) => p.hash(state),
                Term::Port(p) => p.hash(state),
                Term::Ref(r) => r.hash(state),
                Term::Fun(f) => f.hash(state),
                Term::Export(e) => e.hash(state),
                Term::Tuple(x) | Term::List(x) | Term::Improper(x) => {
                    x.len().hash(state);
                    stack.extend(x.iter());
                }
                // Equal maps may list their pairs in any order: hash only what order cannot
                // change.
                Term::Map(x) => x.len().hash(state),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{atom, binary, int, list, map, map_of, tuple, Pid, Ref};
    use super::*;

    #[test]
    fn term_order_between_classes() {
        let ordered = [
            int(-5),
            Term::Float(1.0),
            int(2),
            atom("a"),
            atom("b"),
            Term::Ref(Ref::new("n@h", 1, &[1])),
            Term::Pid(Pid::new("n@h", 1, 0, 1)),
            tuple(vec![int(9)]),
            tuple(vec![int(1), int(1)]),
            map(vec![("a", int(1))]),
            Term::nil(),
            list(vec![int(1)]),
            list(vec![int(1), int(2)]),
            list(vec![int(2)]),
            binary(&b"a"[..]),
            binary(&b"ab"[..]),
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(&w[1], &w[0]), Ordering::Greater);
        }
        assert_ne!(int(1), Term::Float(1.0));
        assert_eq!(compare(&int(1), &Term::Float(1.0)), Ordering::Less);
    }

    #[test]
    fn pids_order_by_serial_then_number_then_node_then_creation() {
        // The order OTP 25 gave for these pids, as (node, id, serial, creation).
        let p = |node: &str, id, serial, creation| Term::Pid(Pid::new(node, id, serial, creation));
        let sorted = [
            p("b@h", 1, 0, 1),
            p("z@h", 1, 0, 1),
            p("a@h", 5, 0, 1),
            p("a@h", 5, 0, 2),
            p("a@h", 100, 0, 1),
            p("a@h", 5, 1, 1),
        ];
        for w in sorted.windows(2) {
            assert!(w[0] < w[1], "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn maps_are_equal_in_any_order() {
        let a = map(vec![("x", int(1)), ("y", int(2))]);
        let b = map_of(vec![(atom("y"), int(2)), (atom("x"), int(1))]);
        assert_eq!(a, b);
        assert_ne!(a, map(vec![("x", int(1)), ("y", int(3))]));
        let hash = |t: &Term| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            t.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn deep_terms_compare_iteratively() {
        let make = |leaf: i64| {
            let mut t = int(leaf);
            for _ in 0..200_000 {
                t = tuple(vec![t]);
            }
            t
        };
        assert_eq!(make(1), make(1));
        assert!(make(1) < make(2));
    }
}
