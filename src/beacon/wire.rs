//! The beacon's wire contract as terms (see `DESIGN.md`, "Beacon wire contract"). It is
//! byte-compatible with seed 000's Elixir client:
//! - `{register, {Node, Module, Resource, [Requirement]}}` → `ok`;
//! - `{get_requirements, Node}` → `nil` or `{ok, [#{module, name, node}]}` (`nil` when nothing
//!   is on offer, as the seed's beacon answers);
//! - `get_nodes` → `[#{node, status, resource, requirements, module, since}]` (+ `reason`), or
//!   `{error, busy}` when the caller's connection is backed up (ask again);
//! - `{subscribe, Pid}` (or `{subscribe, Pid, [Resource]}`: only changes of nodes providing
//!   those) → `ok`, then `{beacon_event, {registered, #{...}}}`,
//!   `{beacon_event, {offline, Node, Reason}}` and, after a subscriber fell behind and caught
//!   up, `{beacon_event, resync}` (the subscriber should read `get_nodes` again);
//! - `{forget, Node}` → `ok` | `{error, online}` | `{error, not_found}`;
//! - `{leave, Node}` → `ok` | `{error, not_found}` | `{error, not_allowed}`: a node stopping
//!   cleanly says so before it disconnects, so the table tells a clean stop (`stopped`) from a
//!   crash (`connection_closed`, `net_tick_timeout`, …). Only the node itself may say it.
//!
//! A request outside the contract is answered `{error, {badarg, Text}}` at once.

use super::state::{Change, Entry, Provider, Registration};
use crate::dist::term::{atom, list, map, tuple, Pid, Term};

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
    Subscribe(Pid),
    /// Subscribe to the changes of the nodes providing these resources only (what a node
    /// waiting for its requirements needs: a thousand nodes each hearing of every other would
    /// be a million pushes).
    SubscribeTo(Pid, Vec<String>),
    /// Remove an offline node.
    Forget(String),
    /// The node is stopping cleanly.
    Leave(String),
    /// The node reports something about itself (`{report, Node, #{Key => Value}}`, at most
    /// 16 pairs of scalars): a replica's lag, shown by `names --cluster` and `monitor`.
    Report(String, Vec<(String, String)>),
}

/// Most pairs in a report.
pub const MAX_REPORT_PAIRS: usize = 16;
/// Longest rendered value in a report.
pub const MAX_REPORT_VALUE: usize = 128;

/// Reads a report map: scalar values only, rendered as text, sorted by key.
pub fn parse_report(m: &Term) -> Result<Vec<(String, String)>, String> {
    let pairs = m
        .map_pairs()
        .ok_or_else(|| format!("report: Report must be a map, got {m}"))?;
    let mut out = Vec::new();
    for (k, v) in pairs {
        let key = k
            .as_atom()
            .ok_or_else(|| format!("report: keys must be atoms, got {k}"))?
            .to_owned();
        let value = match v {
            Term::Int(i) => i.to_string(),
            Term::Atom(a) => a.as_str().to_owned(),
            Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            other => {
                return Err(format!(
                    "report: values must be integers, atoms or binaries, got {other}"
                ))
            }
        };
        if value.len() > MAX_REPORT_VALUE {
            return Err(format!(
                "report: the value of {key} is longer than {MAX_REPORT_VALUE} bytes"
            ));
        }
        out.push((key, value));
    }
    if out.len() > MAX_REPORT_PAIRS {
        return Err(format!("report: more than {MAX_REPORT_PAIRS} pairs"));
    }
    out.sort();
    Ok(out)
}

fn report_term(report: &[(String, String)]) -> Term {
    crate::dist::term::map_of(
        report
            .iter()
            .map(|(k, v)| (atom(k), crate::dist::term::binary(v.clone())))
            .collect(),
    )
}

/// Why a request was not understood. A known request with bad arguments is answered
/// `{error, {badarg, Text}}`; an unknown one `{error, {unknown_call, Request}}`, like every
/// process does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String, Option<Term>);

impl BadRequest {
    fn malformed(text: String) -> BadRequest {
        BadRequest(text, None)
    }

    /// The error reply.
    pub fn to_term(&self) -> Term {
        match &self.1 {
            Some(request) => tuple(vec![
                atom("error"),
                tuple(vec![atom("unknown_call"), request.clone()]),
            ]),
            None => tuple(vec![
                atom("error"),
                tuple(vec![
                    atom("badarg"),
                    crate::dist::term::binary(self.0.clone()),
                ]),
            ]),
        }
    }
}

fn atom_list(t: &Term) -> Option<Vec<String>> {
    t.as_list()?
        .iter()
        .map(|e| e.as_atom().map(str::to_owned))
        .collect()
}

const REGISTER_SHAPE: &str = "register expects {Node, Module, Resource, [Requirement]}";

impl Request {
    /// Parses the request part of a gen_call.
    pub fn parse(t: &Term) -> Result<Request, BadRequest> {
        if t.is_atom("get_nodes") {
            return Ok(Request::GetNodes);
        }
        let bad = || BadRequest(format!("unknown beacon request {t}"), Some(t.clone()));
        let els = t.as_tuple().ok_or_else(bad)?;
        match els {
            [verb, creds] if verb.is_atom("register") => {
                let Some([node, module, resource, reqs]) = creds.as_tuple() else {
                    return Err(BadRequest::malformed(format!(
                        "{REGISTER_SHAPE}, got {creds}"
                    )));
                };
                let field = |t: &Term, what: &str| {
                    t.as_atom().map(str::to_owned).ok_or_else(|| {
                        BadRequest::malformed(format!("register: {what} must be an atom, got {t}"))
                    })
                };
                Ok(Request::Register(Registration {
                    node: field(node, "Node")?,
                    module: field(module, "Module")?,
                    resource: field(resource, "Resource")?,
                    requirements: atom_list(reqs).ok_or_else(|| {
                        BadRequest::malformed(format!(
                            "register: requirements must be a list of atoms, got {reqs}"
                        ))
                    })?,
                }))
            }
            [verb, node] if verb.is_atom("get_requirements") => Ok(Request::GetRequirements(
                node.as_atom()
                    .ok_or_else(|| {
                        BadRequest::malformed(format!(
                            "get_requirements: Node must be an atom, got {node}"
                        ))
                    })?
                    .to_owned(),
            )),
            [verb, Term::Pid(pid)] if verb.is_atom("subscribe") => {
                Ok(Request::Subscribe(pid.clone()))
            }
            [verb, Term::Pid(pid), resources] if verb.is_atom("subscribe") => {
                let bad = || {
                    BadRequest::malformed(format!(
                        "subscribe: Resources must be a list of atoms, got {resources}"
                    ))
                };
                let list = resources.as_list().ok_or_else(bad)?;
                let names = list
                    .iter()
                    .map(|r| r.as_atom().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                Ok(Request::SubscribeTo(pid.clone(), names))
            }
            [verb, node] if verb.is_atom("forget") => Ok(Request::Forget(
                node.as_atom()
                    .ok_or_else(|| {
                        BadRequest::malformed(format!("forget: Node must be an atom, got {node}"))
                    })?
                    .to_owned(),
            )),
            [verb, node, report] if verb.is_atom("report") => Ok(Request::Report(
                node.as_atom()
                    .ok_or_else(|| {
                        BadRequest::malformed(format!("report: Node must be an atom, got {node}"))
                    })?
                    .to_owned(),
                parse_report(report).map_err(BadRequest::malformed)?,
            )),
            [verb, node] if verb.is_atom("leave") => Ok(Request::Leave(
                node.as_atom()
                    .ok_or_else(|| {
                        BadRequest::malformed(format!("leave: Node must be an atom, got {node}"))
                    })?
                    .to_owned(),
            )),
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
                    list(r.requirements.iter().map(|q| atom(q)).collect()),
                ]),
            ]),
            Request::GetRequirements(n) => tuple(vec![atom("get_requirements"), atom(n)]),
            Request::GetNodes => atom("get_nodes"),
            Request::Subscribe(p) => tuple(vec![atom("subscribe"), Term::Pid(p.clone())]),
            Request::SubscribeTo(p, resources) => tuple(vec![
                atom("subscribe"),
                Term::Pid(p.clone()),
                list(resources.iter().map(|r| atom(r)).collect()),
            ]),
            Request::Forget(n) => tuple(vec![atom("forget"), atom(n)]),
            Request::Leave(n) => tuple(vec![atom("leave"), atom(n)]),
            Request::Report(n, r) => tuple(vec![atom("report"), atom(n), report_term(r)]),
        }
    }
}

/// `nil`, or `{ok, [#{module, name, node}]}`.
pub fn offer_reply(offer: Option<Vec<Provider>>) -> Term {
    match offer {
        Some(list_) if !list_.is_empty() => tuple(vec![
            atom("ok"),
            list(
                list_
                    .into_iter()
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
    if t.is_atom("nil") {
        return Some(Vec::new());
    }
    let [ok, Term::List(items)] = t.as_tuple()? else {
        return None;
    };
    if !ok.is_atom("ok") {
        return None;
    }
    items
        .iter()
        .map(|m| {
            Some(Provider {
                module: m.map_get_atom("module")?.as_atom()?.to_owned(),
                name: m.map_get_atom("name")?.as_atom()?.to_owned(),
                node: m.map_get_atom("node")?.as_atom()?.to_owned(),
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
            list(r.requirements.iter().map(|q| atom(q)).collect()),
        ),
        ("module", atom(&r.module)),
        ("since", Term::from(e.since_ms)),
    ];
    if let Some(reason) = &e.reason {
        pairs.push(("reason", atom(reason)));
    }
    if !e.report.is_empty() {
        pairs.push(("report", report_term(&e.report)));
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
    /// What it last reported about itself while online (sorted by key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub report: Vec<(String, String)>,
}

impl NodeInfo {
    /// Whether it is online.
    pub fn is_online(&self) -> bool {
        self.status == "online"
    }

    /// Its requirements that no online node in `all` provides (what it is waiting for), in
    /// its own order: empty when it is ready. The same rule the beacon offers providers by.
    pub fn missing<'a>(&'a self, all: &[NodeInfo]) -> Vec<&'a str> {
        self.requirements
            .iter()
            .filter(|req| !all.iter().any(|n| n.is_online() && &n.resource == *req))
            .map(String::as_str)
            .collect()
    }
}

/// Decodes a `get_nodes` element.
pub fn parse_entry(m: &Term) -> Option<NodeInfo> {
    let since_ms = u64::try_from(m.map_get_atom("since")?.as_int()?).ok()?;
    Some(NodeInfo {
        node: m.map_get_atom("node")?.as_atom()?.to_owned(),
        status: m.map_get_atom("status")?.as_atom()?.to_owned(),
        resource: m.map_get_atom("resource")?.as_atom()?.to_owned(),
        requirements: atom_list(m.map_get_atom("requirements")?)?,
        module: m.map_get_atom("module")?.as_atom()?.to_owned(),
        since_ms,
        reason: m
            .map_get_atom("reason")
            .and_then(Term::as_atom)
            .map(str::to_owned),
        report: m
            .map_get_atom("report")
            .and_then(|r| parse_report(r).ok())
            .unwrap_or_default(),
    })
}

/// The push for a change: `{beacon_event, {registered, #{...}}}` or
/// `{beacon_event, {offline, Node, Reason}}`.
pub fn change_term(change: &Change) -> Term {
    let inner = match change {
        Change::Registered(e) => tuple(vec![atom("registered"), entry_term(e)]),
        Change::Offline { node, reason } => tuple(vec![atom("offline"), atom(node), atom(reason)]),
        Change::Report { node, report } => {
            tuple(vec![atom("report"), atom(node), report_term(report)])
        }
    };
    tuple(vec![atom("beacon_event"), inner])
}

/// The push telling a subscriber that caught up to read the whole table again.
pub fn resync_term() -> Term {
    tuple(vec![atom("beacon_event"), atom("resync")])
}

/// A decoded `{beacon_event, …}` push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node registered (or came online).
    Registered(NodeInfo),
    /// A node went offline.
    Offline {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A node reported something new about itself.
    Report {
        /// The node.
        node: String,
        /// What it reported, sorted by key.
        report: Vec<(String, String)>,
    },
    /// Pushes were skipped while we were behind: read the table again.
    Resync,
}

/// Decodes a beacon push; `None` for any other message.
pub fn parse_event(msg: &Term) -> Option<Event> {
    let [tag, ev] = msg.as_tuple()? else {
        return None;
    };
    if !tag.is_atom("beacon_event") {
        return None;
    }
    if ev.is_atom("resync") {
        return Some(Event::Resync);
    }
    match ev.as_tuple()? {
        [kind, entry] if kind.is_atom("registered") => Some(Event::Registered(parse_entry(entry)?)),
        [kind, node, report] if kind.is_atom("report") => Some(Event::Report {
            node: node.as_atom()?.to_owned(),
            report: parse_report(report).ok()?,
        }),
        [kind, node, reason] if kind.is_atom("offline") => Some(Event::Offline {
            node: node.as_atom()?.to_owned(),
            reason: reason
                .as_atom()
                .map_or_else(|| reason.to_string(), str::to_owned),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::state::Status;
    use crate::dist::term::int;

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
        let pid = Pid::new("a@h", 1, 0, 1);
        for req in [
            Request::Register(registration()),
            Request::GetRequirements("gate1@127.0.0.1".into()),
            Request::GetNodes,
            Request::Subscribe(pid.clone()),
            Request::SubscribeTo(pid.clone(), vec!["gate_manager".into()]),
            Request::SubscribeTo(pid, vec![]),
            Request::Forget("gate1@127.0.0.1".into()),
            Request::Leave("gate1@127.0.0.1".into()),
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
            tuple(vec![atom("n@h"), atom("M"), int(1), list(vec![])]),
        ]))
        .unwrap_err();
        assert!(e.0.contains("Resource must be an atom"), "{e}");
        let e = Request::parse(&tuple(vec![
            atom("register"),
            tuple(vec![atom("n@h"), atom("M"), atom("r"), atom("notalist")]),
        ]))
        .unwrap_err();
        assert!(e.0.contains("list of atoms"), "{e}");
        let unknown = Request::parse(&atom("dance")).unwrap_err();
        assert_eq!(
            unknown.to_term().to_string(),
            "{error,{unknown_call,dance}}"
        );
        assert!(Request::parse(&tuple(vec![atom("get_requirements"), int(3)])).is_err());
        let pid = Term::Pid(Pid::new("a@h", 1, 0, 1));
        for bad in [atom("gate"), list(vec![int(1)])] {
            let e = Request::parse(&tuple(vec![atom("subscribe"), pid.clone(), bad])).unwrap_err();
            assert!(e.0.contains("Resources must be a list of atoms"), "{e}");
        }
        assert!(e.to_term().as_tuple().is_some());
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
            connection: Some(1),
            creation: Some(1),
            report: Vec::new(),
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
        assert_eq!(parse_event(&resync_term()), Some(Event::Resync));
        assert_eq!(parse_event(&atom("hello")), None);
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            registration: registration(),
            status: Status::Offline,
            since_ms: 1_795_291_000_123,
            reason: Some("net_tick_timeout".into()),
            connection: None,
            creation: None,
            report: Vec::new(),
        };
        let info = parse_entry(&entry_term(&e)).unwrap();
        assert_eq!(info.node, "gate1@127.0.0.1");
        assert_eq!(info.status, "offline");
        assert_eq!(info.since_ms, 1_795_291_000_123);
        assert_eq!(info.requirements, ["gate_manager"]);
        assert_eq!(info.reason.as_deref(), Some("net_tick_timeout"));
    }

    #[test]
    fn reports_parse_render_and_refuse_what_they_cannot_show() {
        let req = tuple(vec![
            atom("report"),
            atom("ds@h"),
            crate::dist::term::map_of(vec![
                (atom("stale"), atom("false")),
                (atom("lag_versions"), int(3)),
                (atom("phase"), crate::dist::term::binary("following")),
            ]),
        ]);
        let parsed = Request::parse(&req).unwrap();
        let pairs: Vec<(String, String)> = [
            ("lag_versions", "3"),
            ("phase", "following"),
            ("stale", "false"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(parsed, Request::Report("ds@h".into(), pairs.clone()));
        assert_eq!(Request::parse(&parsed.to_term()).unwrap(), parsed);
        let ev = change_term(&Change::Report {
            node: "ds@h".into(),
            report: pairs.clone(),
        });
        assert_eq!(
            parse_event(&ev),
            Some(Event::Report {
                node: "ds@h".into(),
                report: pairs
            })
        );
        for (bad, why) in [
            (atom("x"), "must be a map"),
            (
                crate::dist::term::map_of(vec![(int(1), int(1))]),
                "keys must be atoms",
            ),
            (
                crate::dist::term::map_of(vec![(atom("k"), tuple(vec![]))]),
                "values must be integers, atoms or binaries",
            ),
        ] {
            let e = Request::parse(&tuple(vec![atom("report"), atom("ds@h"), bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn readiness_needs_an_online_provider_of_every_requirement() {
        let info = |node: &str, status: &str, resource: &str, reqs: &[&str]| NodeInfo {
            node: node.into(),
            status: status.into(),
            resource: resource.into(),
            requirements: reqs.iter().map(|r| r.to_string()).collect(),
            module: resource.into(),
            since_ms: 0,
            reason: None,
            report: Vec::new(),
        };
        let all = vec![
            info("g@h", "online", "gate", &["gate_manager", "data"]),
            info("gm@h", "offline", "gate_manager", &[]),
            info("d@h", "online", "data", &[]),
        ];
        assert_eq!(all[0].missing(&all), ["gate_manager"]);
        assert!(all[2].missing(&all).is_empty());
        let mut all = all;
        all[1].status = "online".into();
        assert!(all[0].missing(&all).is_empty());
    }
}
