//! The beacon's wire contract as terms (see `DESIGN.md`, "Beacon wire contract"). It is
//! byte-compatible with seed 000's Elixir client:
//! - `{register, {Node, Module, Resource, [Requirement]}}` → `ok`;
//! - `{get_requirements, Node}` → `nil` or `{ok, [#{module, name, node}]}` (`nil` when nothing
//!   is on offer, as the seed's beacon answers);
//! - `get_nodes` → `[#{node, status, resource, requirements, module, since}]` (+ `reason`);
//! - `{subscribe, Pid}` → `ok`, then `{beacon_event, {registered, #{...}}}` and
//!   `{beacon_event, {offline, Node, Reason}}` pushes.

use std::collections::HashMap;

use eetf::Term;

use super::state::{Change, Entry, Provider, Registration};
use crate::dist::term::{self, atom, tuple};

/// A request the beacon understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Register a node.
    Register(Registration),
    /// What is on offer for this node?
    GetRequirements(String),
    /// Everything.
    GetNodes,
    /// Stream changes to this process.
    Subscribe(eetf::Pid),
}

/// Why a request was not understood; sent back as `{error, {badarg, Text}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn atom_list(t: &Term) -> Option<Vec<String>> {
    match t {
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| term::as_atom(e).map(str::to_owned))
            .collect(),
        _ => None,
    }
}

impl Request {
    /// Parses the request part of a gen_call.
    pub fn parse(t: &Term) -> Result<Request, BadRequest> {
        if term::as_atom(t) == Some("get_nodes") {
            return Ok(Request::GetNodes);
        }
        let bad = || BadRequest(format!("unknown beacon request {t}"));
        let els = term::as_tuple(t).ok_or_else(bad)?;
        match els {
            [verb, creds] if term::as_atom(verb) == Some("register") => {
                let parts = term::as_tuple(creds).ok_or_else(|| {
                    BadRequest(format!(
                        "register expects {{Node, Module, Resource, [Requirement]}}, got {creds}"
                    ))
                })?;
                let [node, module, resource, reqs] = parts else {
                    return Err(BadRequest(format!(
                        "register expects {{Node, Module, Resource, [Requirement]}}, got {creds}"
                    )));
                };
                let field = |t: &Term, what: &str| {
                    term::as_atom(t).map(str::to_owned).ok_or_else(|| {
                        BadRequest(format!("register: {what} must be an atom, got {t}"))
                    })
                };
                Ok(Request::Register(Registration {
                    node: field(node, "Node")?,
                    module: field(module, "Module")?,
                    resource: field(resource, "Resource")?,
                    requirements: atom_list(reqs).ok_or_else(|| {
                        BadRequest(format!(
                            "register: requirements must be a list of atoms, got {reqs}"
                        ))
                    })?,
                }))
            }
            [verb, node] if term::as_atom(verb) == Some("get_requirements") => {
                Ok(Request::GetRequirements(
                    term::as_atom(node)
                        .ok_or_else(|| {
                            BadRequest(format!(
                                "get_requirements: Node must be an atom, got {node}"
                            ))
                        })?
                        .to_owned(),
                ))
            }
            [verb, Term::Pid(pid)] if term::as_atom(verb) == Some("subscribe") => {
                Ok(Request::Subscribe(pid.clone()))
            }
            _ => Err(bad()),
        }
    }

    /// Builds the request term (for our own client).
    pub fn to_term(&self) -> Term {
        match self {
            Request::Register(r) => tuple(vec![
                atom("register"),
                tuple(vec![
                    atom(&r.node),
                    atom(&r.module),
                    atom(&r.resource),
                    term::list(r.requirements.iter().map(|q| atom(q)).collect()),
                ]),
            ]),
            Request::GetRequirements(n) => tuple(vec![atom("get_requirements"), atom(n)]),
            Request::GetNodes => atom("get_nodes"),
            Request::Subscribe(p) => tuple(vec![atom("subscribe"), term::pid(p)]),
        }
    }
}

fn map(pairs: Vec<(&str, Term)>) -> Term {
    let m: HashMap<Term, Term> = pairs.into_iter().map(|(k, v)| (atom(k), v)).collect();
    Term::from(eetf::Map::from(m))
}

/// `nil`, or `{ok, [#{module, name, node}]}`.
pub fn offer_reply(offer: Option<Vec<Provider>>) -> Term {
    match offer {
        Some(list) if !list.is_empty() => tuple(vec![
            atom("ok"),
            term::list(
                list.into_iter()
                    .map(|p| {
                        map(vec![
                            ("module", atom(&p.module)),
                            ("name", atom(&p.name)),
                            ("node", atom(&p.node)),
                        ])
                    })
                    .collect(),
            ),
        ]),
        _ => atom("nil"),
    }
}

/// Parses an offer reply back into providers (`nil` is an empty offer).
pub fn parse_offer(t: &Term) -> Option<Vec<Provider>> {
    if term::as_atom(t) == Some("nil") {
        return Some(Vec::new());
    }
    let [ok, Term::List(list)] = term::as_tuple(t)? else {
        return None;
    };
    if term::as_atom(ok) != Some("ok") {
        return None;
    }
    list.elements
        .iter()
        .map(|m| {
            Some(Provider {
                module: term::as_atom(term::map_get(m, "module")?)?.to_owned(),
                name: term::as_atom(term::map_get(m, "name")?)?.to_owned(),
                node: term::as_atom(term::map_get(m, "node")?)?.to_owned(),
            })
        })
        .collect()
}

/// One `get_nodes` element.
pub fn entry_term(e: &Entry) -> Term {
    let r = &e.registration;
    let mut pairs = vec![
        ("node", atom(&r.node)),
        ("status", atom(e.status.as_str())),
        ("resource", atom(&r.resource)),
        (
            "requirements",
            term::list(r.requirements.iter().map(|q| atom(q)).collect()),
        ),
        ("module", atom(&r.module)),
        ("since", Term::from(eetf::BigInteger::from(e.since_ms))),
    ];
    if let Some(reason) = &e.reason {
        pairs.push(("reason", atom(reason)));
    }
    map(pairs)
}

/// A node as listed by `get_nodes`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// Full node name.
    pub node: String,
    /// `online` or `offline`.
    pub status: String,
    /// Its resource (role).
    pub resource: String,
    /// What it requires.
    pub requirements: Vec<String>,
    /// Its module.
    pub module: String,
    /// Milliseconds since the epoch when it entered its status.
    pub since_ms: u64,
    /// Why it is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Decodes a `get_nodes` element.
pub fn parse_entry(m: &Term) -> Option<NodeInfo> {
    let since_ms = match term::map_get(m, "since")? {
        Term::FixInteger(i) => u64::try_from(i.value).ok()?,
        Term::BigInteger(b) => b.value.to_string().parse().ok()?,
        _ => return None,
    };
    Some(NodeInfo {
        node: term::as_atom(term::map_get(m, "node")?)?.to_owned(),
        status: term::as_atom(term::map_get(m, "status")?)?.to_owned(),
        resource: term::as_atom(term::map_get(m, "resource")?)?.to_owned(),
        requirements: atom_list(term::map_get(m, "requirements")?)?,
        module: term::as_atom(term::map_get(m, "module")?)?.to_owned(),
        since_ms,
        reason: term::map_get(m, "reason")
            .and_then(term::as_atom)
            .map(str::to_owned),
    })
}

/// The push for a change: `{beacon_event, {registered, #{...}}}` or
/// `{beacon_event, {offline, Node, Reason}}`.
pub fn change_term(change: &Change) -> Term {
    let inner = match change {
        Change::Registered(e) => tuple(vec![atom("registered"), entry_term(e)]),
        Change::Offline { node, reason } => tuple(vec![atom("offline"), atom(node), atom(reason)]),
    };
    tuple(vec![atom("beacon_event"), inner])
}

/// A decoded `{beacon_event, …}` push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node registered.
    Registered(NodeInfo),
    /// A node went offline.
    Offline {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// Decodes a beacon push; `None` for any other message.
pub fn parse_event(msg: &Term) -> Option<Event> {
    let [tag, ev] = term::as_tuple(msg)? else {
        return None;
    };
    if term::as_atom(tag) != Some("beacon_event") {
        return None;
    }
    match term::as_tuple(ev)? {
        [kind, entry] if term::as_atom(kind) == Some("registered") => {
            Some(Event::Registered(parse_entry(entry)?))
        }
        [kind, node, reason] if term::as_atom(kind) == Some("offline") => Some(Event::Offline {
            node: term::as_atom(node)?.to_owned(),
            reason: term::as_atom(reason).map_or_else(|| reason.to_string(), str::to_owned),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::state::Status;

    fn registration() -> Registration {
        Registration {
            node: "gate1@127.0.0.1".into(),
            module: "Elixir.Gate.Interface".into(),
            resource: "gate".into(),
            requirements: vec!["gate_manager".into()],
        }
    }

    #[test]
    fn requests_round_trip() {
        let pid = eetf::Pid::new("a@h", 1, 0, 1);
        for req in [
            Request::Register(registration()),
            Request::GetRequirements("gate1@127.0.0.1".into()),
            Request::GetNodes,
            Request::Subscribe(pid),
        ] {
            assert_eq!(Request::parse(&req.to_term()), Ok(req));
        }
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let e = Request::parse(&tuple(vec![atom("register"), atom("x")])).unwrap_err();
        assert!(
            e.0.contains("{Node, Module, Resource, [Requirement]}"),
            "{e}"
        );
        let e = Request::parse(&tuple(vec![
            atom("register"),
            tuple(vec![
                atom("n@h"),
                atom("M"),
                term::int(1),
                term::list(vec![]),
            ]),
        ]))
        .unwrap_err();
        assert!(e.0.contains("Resource must be an atom"), "{e}");
        let e = Request::parse(&tuple(vec![
            atom("register"),
            tuple(vec![atom("n@h"), atom("M"), atom("r"), atom("notalist")]),
        ]))
        .unwrap_err();
        assert!(e.0.contains("list of atoms"), "{e}");
        assert!(Request::parse(&atom("dance")).is_err());
        assert!(Request::parse(&tuple(vec![atom("get_requirements"), term::int(3)])).is_err());
    }

    #[test]
    fn empty_offer_is_nil_like_the_seed() {
        assert_eq!(offer_reply(None), atom("nil"));
        assert_eq!(offer_reply(Some(vec![])), atom("nil"));
        let p = Provider {
            module: "Elixir.GM".into(),
            name: "gate_manager".into(),
            node: "gm1@h".into(),
        };
        let t = offer_reply(Some(vec![p.clone()]));
        assert_eq!(parse_offer(&t), Some(vec![p]));
        assert_eq!(parse_offer(&atom("nil")), Some(vec![]));
    }

    #[test]
    fn pushes_round_trip() {
        let e = Entry {
            registration: registration(),
            status: Status::Online,
            since_ms: 5,
            reason: None,
        };
        let Some(Event::Registered(info)) = parse_event(&change_term(&Change::Registered(e)))
        else {
            panic!("registered push")
        };
        assert_eq!(info.resource, "gate");
        assert_eq!(
            parse_event(&change_term(&Change::Offline {
                node: "n@h".into(),
                reason: "net_tick_timeout".into()
            })),
            Some(Event::Offline {
                node: "n@h".into(),
                reason: "net_tick_timeout".into()
            })
        );
        assert_eq!(parse_event(&atom("hello")), None);
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            registration: registration(),
            status: Status::Offline,
            since_ms: 1_795_291_000_123,
            reason: Some("net_tick_timeout".into()),
        };
        let info = parse_entry(&entry_term(&e)).unwrap();
        assert_eq!(info.node, "gate1@127.0.0.1");
        assert_eq!(info.status, "offline");
        assert_eq!(info.since_ms, 1_795_291_000_123);
        assert_eq!(info.requirements, ["gate_manager"]);
        assert_eq!(info.reason.as_deref(), Some("net_tick_timeout"));
    }
}
