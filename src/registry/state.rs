//! The registry's table, with no I/O: entries, who owns them, the conflict rule, the home of a
//! key and placement. `server` feeds it messages; everything here is deterministic so that
//! every node that has seen the same entries computes the same answers.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::dist::term::{atom, encode_to_vec, tuple, Atom, Pid, Term};

/// What a registration is for: a process type and an id within it (`{player, 42}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The process type (`player`).
    pub ty: Atom,
    /// The id, any term.
    pub id: Term,
}

impl Key {
    /// A key.
    pub fn new(ty: impl Into<Atom>, id: Term) -> Key {
        Key { ty: ty.into(), id }
    }

    /// `{Type, Id}`.
    pub fn to_term(&self) -> Term {
        tuple(vec![Term::Atom(self.ty.clone()), self.id.clone()])
    }

    /// A stable 64-bit hash of the key together with `salt` (a node name), the same on every
    /// node: the key is hashed in its external term format, which does not depend on how a
    /// peer happened to encode it.
    pub fn hash_with(&self, salt: &str) -> u64 {
        let mut bytes = encode_to_vec(&self.to_term());
        bytes.extend_from_slice(salt.as_bytes());
        xxh3_64(&bytes)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}, {}}}", Term::Atom(self.ty.clone()), self.id)
    }
}

/// When and where an entry was registered: the owner's logical (Lamport) clock at that moment
/// and the owner's node name. Stamps are totally ordered, clock first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The owner's Lamport clock when it registered the entry.
    pub clock: u64,
    /// The node that registered it and monitors it.
    pub owner: Atom,
}

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is registered as.
    pub key: Key,
    /// The process.
    pub pid: Pid,
    /// Free data that the registrant attached.
    pub meta: Term,
    /// Its stamp, for the conflict rule.
    pub stamp: Stamp,
    /// Whether it is created again elsewhere when its node dies (`restart = "elsewhere"`).
    pub restart: bool,
}

impl Entry {
    /// The conflict rule: `self` beats `other` when its stamp is lower: the smaller Lamport
    /// clock, then the owner node whose name sorts first, then the smaller pid. It uses only
    /// what the two entries carry, so every node decides the same way whatever the order in
    /// which it heard of them.
    pub fn beats(&self, other: &Entry) -> bool {
        (
            self.stamp.clock,
            self.stamp.owner.as_str(),
            self.pid.node.as_str(),
            self.pid.id,
            self.pid.serial,
            self.pid.creation,
        ) < (
            other.stamp.clock,
            other.stamp.owner.as_str(),
            other.pid.node.as_str(),
            other.pid.id,
            other.pid.serial,
            other.pid.creation,
        )
    }

    /// The seed's record: `{cluster_process, Type, Id, Node, Pid, Meta}`.
    pub fn record(&self) -> Term {
        tuple(vec![
            atom("cluster_process"),
            Term::Atom(self.key.ty.clone()),
            self.key.id.clone(),
            Term::Atom(self.pid.node.clone()),
            Term::Pid(self.pid.clone()),
            self.meta.clone(),
        ])
    }
}

/// What adding an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The key was free; the entry is registered.
    New,
    /// The same process already held it (a re-sync); its meta and stamp are refreshed.
    Same,
    /// Another process holds the key too. Both are kept until the loser's owner retires its
    /// entry; lookups see the winner meanwhile.
    Conflict {
        /// The entry the rule picks.
        winner: Box<Entry>,
        /// The one that must go.
        loser: Box<Entry>,
    },
}

/// The replicated table. Each key maps to the entries claiming it, nearly always one; the one
/// the conflict rule picks is the one lookups see.
#[derive(Debug, Default)]
pub struct Table {
    entries: HashMap<Key, Vec<Entry>>,
    by_owner: HashMap<Atom, HashSet<(Key, Pid)>>,
    by_pid: HashMap<Pid, HashSet<Key>>,
    per_node: HashMap<Atom, usize>,
    per_type: HashMap<(Atom, Atom), usize>,
    clock: u64,
    len: usize,
}

impl Table {
    /// The registered process for `key`, if any.
    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.entries
            .get(key)
            .and_then(|v| v.iter().reduce(|a, b| if b.beats(a) { b } else { a }))
    }

    /// Every claim on `key` (more than one only while a conflict is being resolved).
    pub fn claims(&self, key: &Key) -> &[Entry] {
        self.entries.get(key).map_or(&[], Vec::as_slice)
    }

    /// The number of claims.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next stamp for an entry this node registers.
    pub fn next_stamp(&mut self, me: &Atom) -> Stamp {
        self.clock += 1;
        Stamp {
            clock: self.clock,
            owner: me.clone(),
        }
    }

    /// The Lamport clock.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Adds a claim (a registration heard from its owner, or made here).
    pub fn add(&mut self, entry: Entry) -> Added {
        self.clock = self.clock.max(entry.stamp.clock);
        let claims = self.entries.entry(entry.key.clone()).or_default();
        if let Some(same) = claims.iter_mut().find(|e| e.pid == entry.pid) {
            if same.stamp.owner != entry.stamp.owner {
                // The same pid registered by another owner: the owner changes.
                let old = same.stamp.owner.clone();
                if let Some(set) = self.by_owner.get_mut(&old) {
                    set.remove(&(entry.key.clone(), entry.pid.clone()));
                }
                self.by_owner
                    .entry(entry.stamp.owner.clone())
                    .or_default()
                    .insert((entry.key.clone(), entry.pid.clone()));
            }
            *same = entry;
            return Added::Same;
        }
        let outcome = match claims.iter().reduce(|a, b| if b.beats(a) { b } else { a }) {
            None => Added::New,
            Some(current) if entry.beats(current) => Added::Conflict {
                winner: Box::new(entry.clone()),
                loser: Box::new(current.clone()),
            },
            Some(current) => Added::Conflict {
                winner: Box::new(current.clone()),
                loser: Box::new(entry.clone()),
            },
        };
        claims.push(entry.clone());
        self.len += 1;
        self.by_owner
            .entry(entry.stamp.owner.clone())
            .or_default()
            .insert((entry.key.clone(), entry.pid.clone()));
        self.by_pid
            .entry(entry.pid.clone())
            .or_default()
            .insert(entry.key.clone());
        *self.per_node.entry(entry.pid.node.clone()).or_default() += 1;
        *self
            .per_type
            .entry((entry.pid.node.clone(), entry.key.ty.clone()))
            .or_default() += 1;
        outcome
    }

    /// Removes `pid`'s claim on `key`.
    pub fn remove(&mut self, key: &Key, pid: &Pid) -> Option<Entry> {
        let claims = self.entries.get_mut(key)?;
        let at = claims.iter().position(|e| &e.pid == pid)?;
        let entry = claims.swap_remove(at);
        if claims.is_empty() {
            self.entries.remove(key);
        }
        self.len -= 1;
        if let Some(set) = self.by_owner.get_mut(&entry.stamp.owner) {
            set.remove(&(key.clone(), pid.clone()));
            if set.is_empty() {
                self.by_owner.remove(&entry.stamp.owner);
            }
        }
        if let Some(set) = self.by_pid.get_mut(pid) {
            set.remove(key);
            if set.is_empty() {
                self.by_pid.remove(pid);
            }
        }
        decrement(&mut self.per_node, &entry.pid.node);
        decrement(
            &mut self.per_type,
            &(entry.pid.node.clone(), entry.key.ty.clone()),
        );
        Some(entry)
    }

    /// Removes every claim of `pid` (it exited).
    pub fn remove_pid(&mut self, pid: &Pid) -> Vec<Entry> {
        let keys: Vec<Key> = self
            .by_pid
            .get(pid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter().filter_map(|k| self.remove(k, pid)).collect()
    }

    /// Removes every claim `owner` made (its node went down, or it re-synced).
    pub fn remove_owner(&mut self, owner: &str) -> Vec<Entry> {
        let pairs: Vec<(Key, Pid)> = self
            .by_owner
            .get(owner)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        pairs
            .iter()
            .filter_map(|(k, p)| self.remove(k, p))
            .collect()
    }

    /// Every node that owns claims.
    pub fn owners(&self) -> Vec<Atom> {
        self.by_owner.keys().cloned().collect()
    }

    /// The claims `owner` made.
    pub fn owned_by(&self, owner: &str) -> Vec<Entry> {
        let Some(set) = self.by_owner.get(owner) else {
            return Vec::new();
        };
        set.iter()
            .filter_map(|(k, p)| self.claims(k).iter().find(|e| &e.pid == p).cloned())
            .collect()
    }

    /// Every claim of `pid`.
    pub fn keys_of(&self, pid: &Pid) -> Vec<Key> {
        self.by_pid
            .get(pid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The processes registered that live on `node`.
    pub fn hosted_on(&self, node: &str) -> usize {
        self.per_node.get(node).copied().unwrap_or(0)
    }

    /// The processes of each type that live on `node`.
    pub fn types_on(&self, node: &str) -> Vec<(Atom, usize)> {
        let mut v: Vec<(Atom, usize)> = self
            .per_type
            .iter()
            .filter(|((n, _), _)| n.as_str() == node)
            .map(|((_, t), c)| (t.clone(), *c))
            .collect();
        v.sort();
        v
    }

    /// Every visible entry (the winner of each key), in key order.
    pub fn visible(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.keys().filter_map(|k| self.get(k)).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(c) = map.get_mut(key) {
        *c -= 1;
        if *c == 0 {
            map.remove(key);
        }
    }
}

/// The node that serialises creates of `key`: the highest rendezvous hash among `nodes`. Every
/// node with the same view of who runs `cluster_server` picks the same one, and when a node
/// leaves only its keys move.
pub fn home<'a>(key: &Key, nodes: impl IntoIterator<Item = &'a Atom>) -> Option<&'a Atom> {
    nodes
        .into_iter()
        .max_by_key(|n| (key.hash_with(n.as_str()), n.as_str()))
}

/// How `create_process` picks a node among those that host the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The node with the fewest registered processes, plus what its role reports (the
    /// default). Ties go to the rendezvous hash of the key, so equal nodes share the work.
    LeastLoaded,
    /// This node, if it hosts the type.
    Node(Atom),
    /// The rendezvous hash of the key: the same node for the same key while membership holds.
    Hash,
    /// Any hosting node, at random.
    Random,
}

impl Selector {
    /// Reads `least_loaded`, `hash`, `random`, `{node, Node}` (or a bare node-name atom).
    pub fn from_term(t: &Term) -> Option<Selector> {
        if let Some(a) = t.as_atom() {
            return Some(match a {
                "least_loaded" | "default" | "undefined" => Selector::LeastLoaded,
                "hash" => Selector::Hash,
                "random" => Selector::Random,
                other if other.contains('@') => Selector::Node(other.into()),
                _ => return None,
            });
        }
        match t.as_tuple() {
            Some([tag, n]) if tag.is_atom("node") => n.as_atom().map(|n| Selector::Node(n.into())),
            _ => None,
        }
    }

    /// The term [`Selector::from_term`] reads.
    pub fn to_term(&self) -> Term {
        match self {
            Selector::LeastLoaded => atom("least_loaded"),
            Selector::Hash => atom("hash"),
            Selector::Random => atom("random"),
            Selector::Node(n) => tuple(vec![atom("node"), Term::Atom(n.clone())]),
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Selector, String> {
        match s {
            "least_loaded" | "least-loaded" => Ok(Selector::LeastLoaded),
            "hash" => Ok(Selector::Hash),
            "random" => Ok(Selector::Random),
            n if n.contains('@') => Ok(Selector::Node(n.into())),
            other => Err(format!(
                "unknown selector {other:?}: least_loaded, hash, random or a node name"
            )),
        }
    }
}

/// One node that could host a new process, with its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: Atom,
    /// Registered processes living there, creates in flight to it, and its role's figure.
    pub load: u64,
}

/// Picks a node for `key` among `candidates` (already filtered to nodes hosting its type).
/// `roll` is a random number, used only by [`Selector::Random`].
pub fn place<'a>(
    key: &Key,
    selector: &Selector,
    candidates: &'a [Candidate],
    roll: u64,
) -> Option<&'a Candidate> {
    match selector {
        Selector::LeastLoaded => candidates.iter().min_by_key(|c| {
            (
                c.load,
                std::cmp::Reverse(key.hash_with(c.node.as_str())),
                c.node.as_str(),
            )
        }),
        Selector::Node(n) => candidates.iter().find(|c| &c.node == n),
        Selector::Hash => candidates
            .iter()
            .max_by_key(|c| (key.hash_with(c.node.as_str()), c.node.as_str())),
        Selector::Random if candidates.is_empty() => None,
        Selector::Random => candidates.get((roll % candidates.len() as u64) as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::term::int;

    fn entry(id: i64, pid: u32, node: &str, clock: u64, owner: &str) -> Entry {
        Entry {
            key: Key::new("player", int(id)),
            pid: Pid::new(node, pid, 0, 1),
            meta: Term::nil(),
            stamp: Stamp {
                clock,
                owner: owner.into(),
            },
            restart: false,
        }
    }

    #[test]
    fn the_lower_stamp_wins_whatever_the_order_of_arrival() {
        let a = entry(1, 10, "a@h", 5, "a@h");
        let b = entry(1, 20, "b@h", 3, "b@h");
        let mut t1 = Table::default();
        let mut t2 = Table::default();
        assert_eq!(t1.add(a.clone()), Added::New);
        assert_eq!(
            t1.add(b.clone()),
            Added::Conflict {
                winner: Box::new(b.clone()),
                loser: Box::new(a.clone())
            }
        );
        assert_eq!(t2.add(b.clone()), Added::New);
        assert_eq!(
            t2.add(a.clone()),
            Added::Conflict {
                winner: Box::new(b.clone()),
                loser: Box::new(a.clone())
            }
        );
        assert_eq!(t1.get(&a.key), Some(&b));
        assert_eq!(t2.get(&a.key), Some(&b));
        // Equal clocks: the owner whose name sorts first.
        let c = entry(2, 30, "c@h", 7, "c@h");
        let d = entry(2, 40, "d@h", 7, "d@h");
        assert!(c.beats(&d) && !d.beats(&c));
        // The loser's owner retires it; the winner stays.
        t1.remove(&a.key, &a.pid);
        assert_eq!(t1.claims(&a.key), std::slice::from_ref(&b));
    }

    #[test]
    fn clocks_follow_what_was_heard() {
        let mut t = Table::default();
        t.add(entry(1, 10, "a@h", 41, "a@h"));
        assert_eq!(t.next_stamp(&"b@h".into()).clock, 42);
    }

    #[test]
    fn owners_pids_and_counts_are_indexed() {
        let mut t = Table::default();
        t.add(entry(1, 10, "a@h", 1, "a@h"));
        t.add(entry(2, 10, "a@h", 2, "a@h"));
        t.add(entry(3, 11, "b@h", 1, "b@h"));
        // A remote pid registered by a@h: owned by a@h, hosted on b@h.
        t.add(entry(4, 12, "b@h", 3, "a@h"));
        assert_eq!(t.len(), 4);
        assert_eq!(t.hosted_on("a@h"), 2);
        assert_eq!(t.hosted_on("b@h"), 2);
        assert_eq!(t.types_on("b@h"), vec![("player".into(), 2)]);
        assert_eq!(t.owned_by("a@h").len(), 3);
        let gone = t.remove_pid(&Pid::new("a@h", 10, 0, 1));
        assert_eq!(gone.len(), 2);
        assert_eq!(t.hosted_on("a@h"), 0);
        let gone = t.remove_owner("a@h");
        assert_eq!(gone.len(), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.hosted_on("b@h"), 1);
        assert!(t.owned_by("a@h").is_empty());
        // Re-adding the same pid is a refresh, not a conflict.
        let e = entry(3, 11, "b@h", 9, "b@h");
        assert_eq!(t.add(e.clone()), Added::Same);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&e.key), Some(&e));
    }

    #[test]
    fn home_and_placement_are_deterministic() {
        let nodes: Vec<Atom> = ["a@h", "b@h", "c@h"].iter().map(|&n| n.into()).collect();
        let mut homes = HashMap::new();
        for i in 0..300 {
            let k = Key::new("player", int(i));
            let h = home(&k, &nodes).unwrap().clone();
            // Same answer whatever the order of the nodes.
            let mut rev = nodes.clone();
            rev.reverse();
            assert_eq!(home(&k, &rev), Some(&h));
            *homes.entry(h).or_insert(0) += 1;
        }
        // Every node is home to a fair share.
        assert_eq!(homes.len(), 3);
        assert!(homes.values().all(|&n| n > 60), "{homes:?}");
        // Dropping a node moves only its keys.
        for i in 0..300 {
            let k = Key::new("player", int(i));
            let h = home(&k, &nodes).unwrap().clone();
            if h.as_str() != "c@h" {
                assert_eq!(home(&k, &nodes[..2]), Some(&h));
            }
        }
        let cands = vec![
            Candidate {
                node: "a@h".into(),
                load: 5,
            },
            Candidate {
                node: "b@h".into(),
                load: 2,
            },
        ];
        let k = Key::new("player", int(1));
        assert_eq!(
            place(&k, &Selector::LeastLoaded, &cands, 0).unwrap().node,
            Atom::from("b@h")
        );
        assert_eq!(
            place(&k, &Selector::Node("a@h".into()), &cands, 0)
                .unwrap()
                .node,
            Atom::from("a@h")
        );
        assert!(place(&k, &Selector::Node("z@h".into()), &cands, 0).is_none());
        assert_eq!(
            place(&k, &Selector::Random, &cands, 1).unwrap().node,
            Atom::from("b@h")
        );
        assert!(place(&k, &Selector::Hash, &[], 0).is_none());
    }

    #[test]
    fn selectors_read_and_print() {
        for s in [
            Selector::LeastLoaded,
            Selector::Hash,
            Selector::Random,
            Selector::Node("n@h".into()),
        ] {
            assert_eq!(Selector::from_term(&s.to_term()), Some(s.clone()));
        }
        assert_eq!(
            Selector::from_term(&atom("n@h")),
            Some(Selector::Node("n@h".into()))
        );
        assert_eq!(Selector::from_term(&atom("nearest")), None);
        assert_eq!(Selector::from_term(&int(3)), None);
        assert!("fastest".parse::<Selector>().is_err());
    }
}
