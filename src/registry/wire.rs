//! The terms `cluster_server` speaks, with no I/O: the messages between the servers of a
//! cluster, and the `gen_server` contract that Erlang and Elixir callers use (seed 002).
//!
//! Between servers (plain messages to `{cluster_server, Node}`, sent without connecting):
//!
//! | message | meaning |
//! |---|---|
//! | `{cs_discover, Server, Info}` | "here I am; send me your entries" |
//! | `{cs_sync, Server, Info, [Entry]}` | every entry the sender owns; replaces what it owned before |
//! | `{cs_reg, Server, Entry}` / `{cs_unreg, Server, Type, Id, Pid}` | one change by the owner |
//! | `{cs_info, Server, Info}` | the sender's hosted types and role load, when they change |
//! | `{cs_spawn, Home, Tag, Type, Id}` → `{cs_spawned, Tag, {ok, Entry} \| {error, Reason}}` | the home of a key asks the chosen node to create it |
//! | `{cs_del, Server, Type, Id, Pid}` | a `del_process` that reached a node that does not own the entry |
//!
//! `Entry` is `{Type, Id, Pid, Meta, {Clock, Owner}, Restart}` and `Info` is
//! `#{hosts => [Type], load => Integer, factories => [{Type, Pid}]}`.
//!
//! Calls (`gen_server:call({cluster_server, Node}, Request)`):
//!
//! | request | reply |
//! |---|---|
//! | `{create_process, Type, Id}`, `{create_process, Type, Id, Selector}`, `{create_process, Type, Id, undefined, Selector}` | `{ok, Record}` \| `{error, Reason}` |
//! | `{get_process, Type, Id}` | `{ok, Record}` \| `{error, not_find}` |
//! | `{set_process, Type, Id, Pid}`, `{set_process, Type, Id, Pid, Meta}` | `ok` \| `{error, {already_registered, Record}}` |
//! | `{del_process, Type, Id}` | `ok` |
//! | `{register_factory, Type, Pid}` | `ok`: a BEAM process that answers `{create, Type, Id}` with `{ok, Pid}` |
//! | `{procs, Type \| all, Node \| all}` | `[Record]` |
//! | `loads` | `[{Node, #{procs, types, load, hosts}}]` |
//! | `status` | a map of counters |
//! | `{claims, Type, Id}` | `[Entry]`: every claim on the key, with its stamp |
//!
//! `Record` is the seed's `{cluster_process, Type, Id, Node, Pid, Meta}`. A `Selector` is
//! `least_loaded`, `hash`, `random` or `{node, Node}`.

use crate::dist::term::{atom, int, list, map, tuple, Atom, Pid, Ref, Term};

use super::state::{Entry, Key, Selector, Stamp};

/// A term that is not a message of this protocol, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cluster_server message: {0}")]
pub struct WireError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(what.into()))
}

/// What a server says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// The types its node hosts (its role's `hosts`, and Rust factories added at run time).
    pub hosts: Vec<Atom>,
    /// Its role's own load figure (a gate's sessions, …), added to its process count.
    pub load: u64,
    /// BEAM factories registered with it: the type, and the factory process.
    pub factories: Vec<(Atom, Pid)>,
}

impl Info {
    /// `#{hosts, load, factories}`.
    pub fn to_term(&self) -> Term {
        map(vec![
            (
                "hosts",
                list(self.hosts.iter().cloned().map(Term::Atom).collect()),
            ),
            ("load", int(self.load as i64)),
            (
                "factories",
                list(
                    self.factories
                        .iter()
                        .map(|(t, p)| tuple(vec![Term::Atom(t.clone()), Term::Pid(p.clone())]))
                        .collect(),
                ),
            ),
        ])
    }

    /// Reads [`Info::to_term`]; unknown keys are ignored (a newer peer may say more).
    pub fn from_term(t: &Term) -> Result<Info, WireError> {
        if t.map_pairs().is_none() {
            return bad("info is not a map");
        }
        let mut info = Info::default();
        if let Some(h) = t.map_get_atom("hosts") {
            let Some(items) = h.as_list() else {
                return bad("hosts is not a list");
            };
            for i in items {
                match i {
                    Term::Atom(a) => info.hosts.push(a.clone()),
                    _ => return bad("a hosted type is not an atom"),
                }
            }
        }
        if let Some(l) = t.map_get_atom("load") {
            match l.as_int() {
                Some(n) if n >= 0 => info.load = n as u64,
                _ => return bad("load is not a non-negative integer"),
            }
        }
        if let Some(f) = t.map_get_atom("factories") {
            let Some(items) = f.as_list() else {
                return bad("factories is not a list");
            };
            for i in items {
                match i.as_tuple() {
                    Some([Term::Atom(ty), Term::Pid(p)]) => {
                        info.factories.push((ty.clone(), p.clone()))
                    }
                    _ => return bad("a factory is not {Type, Pid}"),
                }
            }
        }
        Ok(info)
    }
}

/// `{Type, Id, Pid, Meta, {Clock, Owner}, Restart}`.
pub fn entry_to_term(e: &Entry) -> Term {
    tuple(vec![
        Term::Atom(e.key.ty.clone()),
        e.key.id.clone(),
        Term::Pid(e.pid.clone()),
        e.meta.clone(),
        tuple(vec![
            int(e.stamp.clock as i64),
            Term::Atom(e.stamp.owner.clone()),
        ]),
        atom(if e.restart { "true" } else { "false" }),
    ])
}

/// Reads [`entry_to_term`].
pub fn entry_from_term(t: &Term) -> Result<Entry, WireError> {
    let Some([Term::Atom(ty), id, Term::Pid(pid), meta, stamp, restart]) = t.as_tuple() else {
        return bad("an entry is not {Type, Id, Pid, Meta, Stamp, Restart}");
    };
    let Some([clock, Term::Atom(owner)]) = stamp.as_tuple() else {
        return bad("a stamp is not {Clock, Owner}");
    };
    let clock = match clock.as_int() {
        Some(c) if c >= 0 => c as u64,
        _ => return bad("a stamp's clock is not a non-negative integer"),
    };
    let restart = match restart.as_atom() {
        Some("true") => true,
        Some("false") => false,
        _ => return bad("restart is not a boolean"),
    };
    Ok(Entry {
        key: Key::new(ty.clone(), id.clone()),
        pid: pid.clone(),
        meta: meta.clone(),
        stamp: Stamp {
            clock,
            owner: owner.clone(),
        },
        restart,
    })
}

/// A message from another server.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// `{cs_discover, Server, Info}`.
    Discover(Pid, Info),
    /// `{cs_sync, Server, Info, [Entry]}`.
    Sync(Pid, Info, Vec<Entry>),
    /// `{cs_reg, Server, Entry}`.
    Reg(Pid, Entry),
    /// `{cs_unreg, Server, Type, Id, Pid}`.
    Unreg(Pid, Key, Pid),
    /// `{cs_info, Server, Info}`.
    Info(Pid, Info),
    /// `{cs_spawn, Home, Tag, Type, Id}`.
    Spawn(Pid, Ref, Key),
    /// `{cs_spawned, Tag, Result}`.
    Spawned(Ref, Result<Entry, Term>),
    /// `{cs_del, Server, Type, Id, Pid}`.
    Del(Pid, Key, Pid),
}

impl Peer {
    /// Whether `msg` looks like a server message at all (its tag), so that other messages
    /// (`DOWN`, node events) are not reported as malformed.
    pub fn is_peer_message(msg: &Term) -> bool {
        msg.as_tuple()
            .and_then(|t| t.first())
            .and_then(Term::as_atom)
            .is_some_and(|a| a.starts_with("cs_"))
    }

    /// Reads a server message.
    pub fn decode(msg: &Term) -> Result<Peer, WireError> {
        let Some(items) = msg.as_tuple() else {
            return bad("not a tuple");
        };
        let tag = items.first().and_then(Term::as_atom).unwrap_or("");
        let server = |t: &Term| match t {
            Term::Pid(p) => Ok(p.clone()),
            _ => bad(format!("{tag}: the sender is not a pid")),
        };
        let key = |ty: &Term, id: &Term| match ty {
            Term::Atom(a) => Ok(Key::new(a.clone(), id.clone())),
            _ => bad(format!("{tag}: the type is not an atom")),
        };
        Ok(match items {
            [_, s, info] if tag == "cs_discover" => {
                Peer::Discover(server(s)?, Info::from_term(info)?)
            }
            [_, s, info, entries] if tag == "cs_sync" => {
                let Some(es) = entries.as_list() else {
                    return bad("cs_sync: the entries are not a list");
                };
                let server = server(s)?;
                let es = es
                    .iter()
                    .map(entry_from_term)
                    .collect::<Result<Vec<_>, _>>()?;
                Peer::Sync(server, Info::from_term(info)?, es)
            }
            [_, s, e] if tag == "cs_reg" => Peer::Reg(server(s)?, entry_from_term(e)?),
            [_, s, ty, id, Term::Pid(p)] if tag == "cs_unreg" => {
                Peer::Unreg(server(s)?, key(ty, id)?, p.clone())
            }
            [_, s, info] if tag == "cs_info" => Peer::Info(server(s)?, Info::from_term(info)?),
            [_, h, Term::Ref(r), ty, id] if tag == "cs_spawn" => {
                Peer::Spawn(server(h)?, r.clone(), key(ty, id)?)
            }
            [_, Term::Ref(r), result] if tag == "cs_spawned" => {
                let outcome = match result.as_tuple() {
                    Some([ok, e]) if ok.is_atom("ok") => Ok(entry_from_term(e)?),
                    Some([err, why]) if err.is_atom("error") => Err(why.clone()),
                    _ => {
                        return bad("cs_spawned: the result is not {ok, Entry} or {error, Reason}")
                    }
                };
                Peer::Spawned(r.clone(), outcome)
            }
            [_, s, ty, id, Term::Pid(p)] if tag == "cs_del" => {
                Peer::Del(server(s)?, key(ty, id)?, p.clone())
            }
            _ => return bad(format!("unknown or misshapen message {tag:?}")),
        })
    }

    /// The term for this message.
    pub fn encode(&self) -> Term {
        let key = |k: &Key| [Term::Atom(k.ty.clone()), k.id.clone()];
        match self {
            Peer::Discover(s, i) => {
                tuple(vec![atom("cs_discover"), Term::Pid(s.clone()), i.to_term()])
            }
            Peer::Sync(s, i, es) => tuple(vec![
                atom("cs_sync"),
                Term::Pid(s.clone()),
                i.to_term(),
                list(es.iter().map(entry_to_term).collect()),
            ]),
            Peer::Reg(s, e) => tuple(vec![atom("cs_reg"), Term::Pid(s.clone()), entry_to_term(e)]),
            Peer::Unreg(s, k, p) => {
                let [ty, id] = key(k);
                tuple(vec![
                    atom("cs_unreg"),
                    Term::Pid(s.clone()),
                    ty,
                    id,
                    Term::Pid(p.clone()),
                ])
            }
            Peer::Info(s, i) => tuple(vec![atom("cs_info"), Term::Pid(s.clone()), i.to_term()]),
            Peer::Spawn(h, r, k) => {
                let [ty, id] = key(k);
                tuple(vec![
                    atom("cs_spawn"),
                    Term::Pid(h.clone()),
                    Term::Ref(r.clone()),
                    ty,
                    id,
                ])
            }
            Peer::Spawned(r, res) => tuple(vec![
                atom("cs_spawned"),
                Term::Ref(r.clone()),
                match res {
                    Ok(e) => tuple(vec![atom("ok"), entry_to_term(e)]),
                    Err(why) => tuple(vec![atom("error"), why.clone()]),
                },
            ]),
            Peer::Del(s, k, p) => {
                let [ty, id] = key(k);
                tuple(vec![
                    atom("cs_del"),
                    Term::Pid(s.clone()),
                    ty,
                    id,
                    Term::Pid(p.clone()),
                ])
            }
        }
    }
}

/// A call to `cluster_server`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `create_process` (and the forwarded `{cs_create, Type, Id, Selector, Hops}`).
    Create {
        /// The key.
        key: Key,
        /// Where to place it.
        selector: Selector,
        /// How many servers have passed it on already.
        hops: u8,
    },
    /// `{get_process, Type, Id}`.
    Get(Key),
    /// `{set_process, Type, Id, Pid[, Meta]}`.
    Set(Key, Pid, Term),
    /// `{del_process, Type, Id}`.
    Del(Key),
    /// `{register_factory, Type, Pid}`.
    RegisterFactory(Atom, Pid),
    /// `{procs, Type | all, Node | all}`.
    Procs(Option<Atom>, Option<Atom>),
    /// `loads`.
    Loads,
    /// `status`.
    Status,
    /// `{claims, Type, Id}`: every claim on the key with its stamp (for operators and tests
    /// checking the conflict rule).
    Claims(Key),
}

impl Request {
    /// Reads a call. An unknown request is `Ok(None)` (answered as an unknown call); a known
    /// one with bad arguments is an error naming what was wrong.
    pub fn decode(req: &Term) -> Result<Option<Request>, WireError> {
        if req.is_atom("loads") {
            return Ok(Some(Request::Loads));
        }
        if req.is_atom("status") {
            return Ok(Some(Request::Status));
        }
        let Some(items) = req.as_tuple() else {
            return Ok(None);
        };
        let tag = items.first().and_then(Term::as_atom).unwrap_or("");
        let key = |ty: &Term, id: &Term| match ty {
            Term::Atom(a) => Ok(Key::new(a.clone(), id.clone())),
            _ => bad(format!("{tag}: the type {ty} is not an atom")),
        };
        let selector = |s: &Term| {
            Selector::from_term(s).ok_or_else(|| {
                WireError(format!(
                    "{tag}: unknown selector {s}: least_loaded, hash, random or {{node, Node}}"
                ))
            })
        };
        let pid = |p: &Term| match p {
            Term::Pid(p) => Ok(p.clone()),
            _ => bad(format!("{tag}: {p} is not a pid")),
        };
        let filter = |t: &Term| match t {
            Term::Atom(a) if a.as_str() == "all" => Ok(None),
            Term::Atom(a) => Ok(Some(a.clone())),
            _ => bad(format!("{tag}: {t} is not an atom")),
        };
        Ok(Some(match (tag, items) {
            ("create_process", [_, ty, id]) => Request::Create {
                key: key(ty, id)?,
                selector: Selector::LeastLoaded,
                hops: 0,
            },
            ("create_process", [_, ty, id, s]) => Request::Create {
                key: key(ty, id)?,
                selector: selector(s)?,
                hops: 0,
            },
            ("create_process", [_, ty, id, callback, s]) => {
                if !callback.is_atom("undefined") && !callback.is_atom("default") {
                    return bad(format!(
                        "create_process: callback {callback} is not supported: register a \
                         factory for {ty} ({{register_factory, Type, Pid}}) and pass undefined"
                    ));
                }
                Request::Create {
                    key: key(ty, id)?,
                    selector: selector(s)?,
                    hops: 0,
                }
            }
            ("cs_create", [_, ty, id, s, hops]) => Request::Create {
                key: key(ty, id)?,
                selector: selector(s)?,
                hops: hops
                    .as_int()
                    .and_then(|h| u8::try_from(h).ok())
                    .ok_or_else(|| WireError("cs_create: hops is not a small integer".into()))?,
            },
            ("get_process", [_, ty, id]) => Request::Get(key(ty, id)?),
            ("set_process", [_, ty, id, p]) => Request::Set(key(ty, id)?, pid(p)?, Term::nil()),
            ("set_process", [_, ty, id, p, meta]) => {
                Request::Set(key(ty, id)?, pid(p)?, meta.clone())
            }
            ("del_process", [_, ty, id]) => Request::Del(key(ty, id)?),
            ("register_factory", [_, Term::Atom(ty), p]) => {
                Request::RegisterFactory(ty.clone(), pid(p)?)
            }
            ("procs", [_, ty, node]) => Request::Procs(filter(ty)?, filter(node)?),
            ("claims", [_, ty, id]) => Request::Claims(key(ty, id)?),
            (
                "create_process" | "get_process" | "set_process" | "del_process"
                | "register_factory" | "procs" | "claims" | "cs_create",
                _,
            ) => return bad(format!("{tag}: wrong number or kind of arguments in {req}")),
            _ => return Ok(None),
        }))
    }

    /// The term for this call (what the typed client sends).
    pub fn encode(&self) -> Term {
        let k = |k: &Key| (Term::Atom(k.ty.clone()), k.id.clone());
        match self {
            Request::Create {
                key,
                selector,
                hops,
            } => {
                let (ty, id) = k(key);
                if *hops == 0 {
                    tuple(vec![atom("create_process"), ty, id, selector.to_term()])
                } else {
                    tuple(vec![
                        atom("cs_create"),
                        ty,
                        id,
                        selector.to_term(),
                        int(i64::from(*hops)),
                    ])
                }
            }
            Request::Get(key) => {
                let (ty, id) = k(key);
                tuple(vec![atom("get_process"), ty, id])
            }
            Request::Set(key, pid, meta) => {
                let (ty, id) = k(key);
                tuple(vec![
                    atom("set_process"),
                    ty,
                    id,
                    Term::Pid(pid.clone()),
                    meta.clone(),
                ])
            }
            Request::Del(key) => {
                let (ty, id) = k(key);
                tuple(vec![atom("del_process"), ty, id])
            }
            Request::RegisterFactory(ty, pid) => tuple(vec![
                atom("register_factory"),
                Term::Atom(ty.clone()),
                Term::Pid(pid.clone()),
            ]),
            Request::Procs(ty, node) => {
                let f = |a: &Option<Atom>| a.clone().map_or_else(|| atom("all"), Term::Atom);
                tuple(vec![atom("procs"), f(ty), f(node)])
            }
            Request::Claims(key) => {
                let (ty, id) = k(key);
                tuple(vec![atom("claims"), ty, id])
            }
            Request::Loads => atom("loads"),
            Request::Status => atom("status"),
        }
    }
}

/// Reads a `Record` (`{cluster_process, Type, Id, Node, Pid, Meta}`) back into an entry-like
/// view for clients: the key, the pid and the meta.
pub fn record_from_term(t: &Term) -> Result<(Key, Pid, Term), WireError> {
    match t.as_tuple() {
        Some([tag, Term::Atom(ty), id, Term::Atom(_), Term::Pid(p), meta])
            if tag.is_atom("cluster_process") =>
        {
            Ok((Key::new(ty.clone(), id.clone()), p.clone(), meta.clone()))
        }
        _ => bad(format!("{t} is not a cluster_process record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::term::{binary, parse};

    fn pid(n: u32) -> Pid {
        Pid::new("a@h", n, 0, 1)
    }

    /// The atom `pid` stands for a pid (the term parser reads no pids).
    fn with_pids(t: Term) -> Term {
        match t {
            Term::Atom(a) if a.as_str() == "pid" => Term::Pid(pid(1)),
            Term::Tuple(items) => tuple(items.into_vec().into_iter().map(with_pids).collect()),
            Term::List(items) => list(items.into_vec().into_iter().map(with_pids).collect()),
            other => other,
        }
    }

    fn sample() -> Entry {
        Entry {
            key: Key::new("player", int(42)),
            pid: pid(7),
            meta: binary("m"),
            stamp: Stamp {
                clock: 3,
                owner: "a@h".into(),
            },
            restart: true,
        }
    }

    #[test]
    fn every_peer_message_round_trips() {
        let info = Info {
            hosts: vec!["echo".into(), "player".into()],
            load: 7,
            factories: vec![("npc".into(), pid(9))],
        };
        let r = Ref::new("a@h", 1, &[1, 2, 3]);
        let k = Key::new("player", int(42));
        for m in [
            Peer::Discover(pid(1), info.clone()),
            Peer::Sync(pid(1), info.clone(), vec![sample(), sample()]),
            Peer::Reg(pid(1), sample()),
            Peer::Unreg(pid(1), k.clone(), pid(7)),
            Peer::Info(pid(1), Info::default()),
            Peer::Spawn(pid(1), r.clone(), k.clone()),
            Peer::Spawned(r.clone(), Ok(sample())),
            Peer::Spawned(r.clone(), Err(atom("no_factory"))),
            Peer::Del(pid(1), k.clone(), pid(7)),
        ] {
            let t = m.encode();
            assert!(Peer::is_peer_message(&t));
            assert_eq!(Peer::decode(&t), Ok(m));
        }
    }

    #[test]
    fn malformed_peer_messages_are_named() {
        for (text, want) in [
            ("{cs_reg, 1, 2}", "sender is not a pid"),
            ("{cs_sync, pid, #{}, nope}", "entries are not a list"),
            ("{cs_sync, pid, nope, []}", "info is not a map"),
            ("{cs_info, pid, #{hosts => [1]}}", "not an atom"),
            ("{cs_info, pid, #{load => -1}}", "non-negative"),
            ("{cs_info, pid, #{factories => [x]}}", "{Type, Pid}"),
            ("{cs_reg, pid, {player, 1, pid, [], {x, a}, true}}", "clock"),
            (
                "{cs_reg, pid, {player, 1, pid, [], {1, a}, perhaps}}",
                "boolean",
            ),
            ("{cs_reg, pid, {player, 1}}", "an entry is not"),
            ("{cs_unreg, pid, \"player\", 1, pid}", "not an atom"),
            ("{cs_spawned, x, ok}", "unknown or misshapen"),
            ("{cs_nonsense}", "unknown or misshapen"),
            ("cs_x", "not a tuple"),
        ] {
            let t = with_pids(parse(text).unwrap());
            let e = Peer::decode(&t).unwrap_err();
            assert!(e.0.contains(want), "{text}: {e}");
        }
        assert!(!Peer::is_peer_message(&parse("{'DOWN', 1}").unwrap()));
    }

    #[test]
    fn calls_read_and_bad_arguments_are_named() {
        let p = |s: &str| Request::decode(&with_pids(parse(s).unwrap()));
        assert_eq!(
            p("{create_process, player, 42}"),
            Ok(Some(Request::Create {
                key: Key::new("player", int(42)),
                selector: Selector::LeastLoaded,
                hops: 0
            }))
        );
        assert!(matches!(
            p("{create_process, player, 42, undefined, {node, 'b@h'}}"),
            Ok(Some(Request::Create {
                selector: Selector::Node(_),
                ..
            }))
        ));
        assert!(p("{create_process, player, 42, {m, f, []}, least_loaded}")
            .unwrap_err()
            .0
            .contains("register_factory"));
        assert!(p("{create_process, player, 42, fastest}")
            .unwrap_err()
            .0
            .contains("unknown selector"));
        assert!(p("{get_process, \"player\", 42}")
            .unwrap_err()
            .0
            .contains("not an atom"));
        assert!(p("{set_process, player, 42, myself}")
            .unwrap_err()
            .0
            .contains("not a pid"));
        assert!(p("{get_process, player}")
            .unwrap_err()
            .0
            .contains("wrong number"));
        assert_eq!(p("{something_else, 1}"), Ok(None));
        assert_eq!(p("hello"), Ok(None));
        for r in [
            Request::Create {
                key: Key::new("a", int(1)),
                selector: Selector::Hash,
                hops: 0,
            },
            Request::Create {
                key: Key::new("a", int(1)),
                selector: Selector::Random,
                hops: 2,
            },
            Request::Get(Key::new("a", int(1))),
            Request::Set(Key::new("a", int(1)), pid(3), int(5)),
            Request::Del(Key::new("a", int(1))),
            Request::RegisterFactory("a".into(), pid(3)),
            Request::Procs(Some("a".into()), None),
            Request::Loads,
            Request::Status,
            Request::Claims(Key::new("a", int(1))),
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(Some(r)));
        }
    }

    #[test]
    fn records_read_back() {
        let e = sample();
        let (k, p, m) = record_from_term(&e.record()).unwrap();
        assert_eq!((k, p, m), (e.key, e.pid, e.meta));
        assert!(record_from_term(&atom("x")).is_err());
    }
}
