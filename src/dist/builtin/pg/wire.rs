//! The messages `pg` scopes send each other, parsed into types and built back, with nothing
//! else: no state, no I/O. Parsing is strict, because these messages come from the network:
//! a message that is a scope message by its tag but has a bad shape is a [`Malformed`] error
//! (the scope logs it and goes on), never a panic and never half applied.
//!
//! Shapes, as OTP 25.2.3 (kernel 8.5.3) sends and expects them (see the module docs of
//! [`super`] for how they were checked):
//! - `{discover, Peer}`, plain;
//! - `{'$gen_cast', {sync, Peer, [{Group, [Pid]}]}}`;
//! - `{join, Peer, Group, PidOrPids}`, plain, with a pid or a list of pids;
//! - `{leave, Peer, PidOrPids, [Group]}`, plain.
//!
//! One rule OTP does not check and we do: a scope only ever speaks for processes of its own
//! node (`pg:join` refuses others with `{nolocal, Pid}`), so every member pid must be on the
//! node of the `Peer` that announces it. Anything else is a peer lying about another node's
//! processes, and is refused whole.

use std::collections::HashSet;

use crate::dist::term::{atom, list, tuple, Pid, Term};

/// A pid or a list of pids, kept as the sender gave it (OTP echoes `join`'s argument as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidOrPids {
    /// One pid.
    One(Pid),
    /// A list of pids (possibly empty, possibly with repeats: a pid may join a group twice).
    Many(Vec<Pid>),
}

impl PidOrPids {
    /// The pids, in order.
    pub fn pids(&self) -> &[Pid] {
        match self {
            PidOrPids::One(p) => std::slice::from_ref(p),
            PidOrPids::Many(v) => v,
        }
    }

    /// The term: a pid or a list.
    pub fn to_term(&self) -> Term {
        match self {
            PidOrPids::One(p) => Term::Pid(p.clone()),
            PidOrPids::Many(v) => pid_list(v),
        }
    }

    /// Reads a pid or a proper list of pids.
    pub fn from_term(t: &Term) -> Result<PidOrPids, Malformed> {
        match t {
            Term::Pid(p) => Ok(PidOrPids::One(p.clone())),
            Term::List(items) => items
                .iter()
                .map(|i| i.as_pid().cloned().ok_or_else(|| not_pid(i)))
                .collect::<Result<Vec<_>, _>>()
                .map(PidOrPids::Many),
            other => Err(Malformed::NotPids(short(other))),
        }
    }
}

/// A list of pids as a term.
pub fn pid_list(pids: &[Pid]) -> Term {
    list(pids.iter().cloned().map(Term::Pid).collect())
}

/// A message from another node's scope.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMsg {
    /// `{discover, Peer}`: a scope that wants our members (and will send its own).
    Discover {
        /// The peer scope.
        peer: Pid,
    },
    /// `{sync, Peer, Groups}` (a cast): every member the peer has, replacing what we knew.
    Sync {
        /// The peer scope.
        peer: Pid,
        /// Each group once, with its members on the peer's node.
        groups: Vec<(Term, Vec<Pid>)>,
    },
    /// `{join, Peer, Group, PidOrPids}`.
    Join {
        /// The peer scope.
        peer: Pid,
        /// The group.
        group: Term,
        /// Who joined.
        pids: PidOrPids,
    },
    /// `{leave, Peer, PidOrPids, Groups}`.
    Leave {
        /// The peer scope.
        peer: Pid,
        /// Who left.
        pids: PidOrPids,
        /// The groups they left (a group twice means twice).
        groups: Vec<Term>,
    },
}

impl PeerMsg {
    /// The peer scope the message is from.
    pub fn peer(&self) -> &Pid {
        match self {
            PeerMsg::Discover { peer }
            | PeerMsg::Sync { peer, .. }
            | PeerMsg::Join { peer, .. }
            | PeerMsg::Leave { peer, .. } => peer,
        }
    }

    /// Reads a plain message (`discover`, `join`, `leave`). `None` if it is not tagged as one
    /// of them; an error if it is but its shape is wrong.
    pub fn from_info(msg: &Term) -> Option<Result<PeerMsg, Malformed>> {
        let els = msg.as_tuple()?;
        let tag = els.first()?.as_atom()?;
        let parsed = match (tag, els) {
            ("discover", [_, peer]) => peer_pid(peer).map(|peer| PeerMsg::Discover { peer }),
            ("join", [_, peer, group, pids]) => (|| {
                let peer = peer_pid(peer)?;
                let pids = PidOrPids::from_term(pids)?;
                on_node_of(&peer, pids.pids())?;
                Ok(PeerMsg::Join {
                    peer,
                    group: group.clone(),
                    pids,
                })
            })(),
            ("leave", [_, peer, pids, groups]) => (|| {
                let peer = peer_pid(peer)?;
                let pids = PidOrPids::from_term(pids)?;
                on_node_of(&peer, pids.pids())?;
                let groups = groups
                    .as_list()
                    .ok_or_else(|| Malformed::GroupsNotList(short(groups)))?
                    .to_vec();
                Ok(PeerMsg::Leave { peer, pids, groups })
            })(),
            ("discover" | "join" | "leave", _) => Err(Malformed::Arity(short(msg))),
            _ => return None,
        };
        Some(parsed)
    }

    /// Reads the body of a cast (`sync`). `None` if it is not tagged `sync`.
    pub fn from_cast(msg: &Term) -> Option<Result<PeerMsg, Malformed>> {
        let els = msg.as_tuple()?;
        if !els.first()?.is_atom("sync") {
            return None;
        }
        let [_, peer, groups] = els else {
            return Some(Err(Malformed::Arity(short(msg))));
        };
        Some((|| {
            let peer = peer_pid(peer)?;
            let entries = groups
                .as_list()
                .ok_or_else(|| Malformed::GroupsNotList(short(groups)))?;
            let mut seen = HashSet::with_capacity(entries.len());
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let Some([group, pids]) = e.as_tuple() else {
                    return Err(Malformed::SyncEntry(short(e)));
                };
                let Term::List(items) = pids else {
                    return Err(Malformed::NotPids(short(pids)));
                };
                let pids = items
                    .iter()
                    .map(|i| i.as_pid().cloned().ok_or_else(|| not_pid(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                on_node_of(&peer, &pids)?;
                // OTP sends a map's pairs, so each group once; a repeat would leave our
                // table and our record of the peer disagreeing.
                if !seen.insert(group.clone()) {
                    return Err(Malformed::RepeatedGroup(short(group)));
                }
                out.push((group.clone(), pids));
            }
            Ok(PeerMsg::Sync { peer, groups: out })
        })())
    }
}

/// Why a scope message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The tag is ours but the tuple has the wrong size.
    #[error("wrong number of elements in {0}")]
    Arity(String),
    /// The peer is not a pid.
    #[error("the peer {0} is not a pid")]
    PeerNotPid(String),
    /// A member is not a pid.
    #[error("the member {0} is not a pid")]
    MemberNotPid(String),
    /// Members are neither a pid nor a proper list.
    #[error("{0} is neither a pid nor a list of pids")]
    NotPids(String),
    /// Groups are not a proper list.
    #[error("the groups {0} are not a list")]
    GroupsNotList(String),
    /// A `sync` entry is not `{Group, Pids}`.
    #[error("the sync entry {0} is not {{Group, Pids}}")]
    SyncEntry(String),
    /// A `sync` names a group twice.
    #[error("the sync names group {0} twice")]
    RepeatedGroup(String),
    /// A member is on another node than the peer scope that announces it.
    #[error("the member {member} is not on the node of the peer scope {peer}")]
    ForeignMember {
        /// The member.
        member: String,
        /// The peer.
        peer: String,
    },
}

/// A term for an error message, cut short: these come from the network and may be huge.
fn short(t: &Term) -> String {
    crate::dist::term::Truncated(t, 120).to_string()
}

fn not_pid(t: &Term) -> Malformed {
    Malformed::MemberNotPid(short(t))
}

fn peer_pid(t: &Term) -> Result<Pid, Malformed> {
    t.as_pid()
        .cloned()
        .ok_or_else(|| Malformed::PeerNotPid(short(t)))
}

fn on_node_of(peer: &Pid, pids: &[Pid]) -> Result<(), Malformed> {
    match pids.iter().find(|p| p.node != peer.node) {
        Some(p) => Err(Malformed::ForeignMember {
            member: format!("{}", Term::Pid(p.clone())),
            peer: format!("{}", Term::Pid(peer.clone())),
        }),
        None => Ok(()),
    }
}

/// `{discover, Me}`.
pub fn discover(me: &Pid) -> Term {
    tuple(vec![atom("discover"), Term::Pid(me.clone())])
}

/// `{'$gen_cast', {sync, Me, [{Group, Pids}]}}`.
pub fn sync(me: &Pid, groups: Vec<(Term, Vec<Pid>)>) -> Term {
    let entries = groups
        .into_iter()
        .map(|(g, pids)| tuple(vec![g, pid_list(&pids)]))
        .collect();
    tuple(vec![
        atom("$gen_cast"),
        tuple(vec![atom("sync"), Term::Pid(me.clone()), list(entries)]),
    ])
}

/// `{join, Me, Group, PidOrPids}`.
pub fn join(me: &Pid, group: &Term, pids: &PidOrPids) -> Term {
    tuple(vec![
        atom("join"),
        Term::Pid(me.clone()),
        group.clone(),
        pids.to_term(),
    ])
}

/// `{leave, Me, PidOrPids, Groups}`.
pub fn leave(me: &Pid, pids: &PidOrPids, groups: &[Term]) -> Term {
    tuple(vec![
        atom("leave"),
        Term::Pid(me.clone()),
        pids.to_term(),
        list(groups.to_vec()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::term::int;

    fn pid(node: &str, id: u32) -> Pid {
        Pid::new(node, id, 0, 1)
    }

    /// Whether an error is the one a case expects.
    type Expect = fn(&Malformed) -> bool;

    fn info(t: Term) -> Result<PeerMsg, Malformed> {
        PeerMsg::from_info(&t).expect("a scope message")
    }

    fn cast_body(t: &Term) -> Term {
        match t.as_tuple() {
            Some([k, body]) if k.is_atom("$gen_cast") => body.clone(),
            _ => panic!("not a cast: {t}"),
        }
    }

    #[test]
    fn built_messages_parse_back() {
        let me = pid("b@h", 9);
        let (p1, p2) = (pid("b@h", 10), pid("b@h", 11));
        assert_eq!(
            info(discover(&me)),
            Ok(PeerMsg::Discover { peer: me.clone() })
        );
        for pids in [
            PidOrPids::One(p1.clone()),
            PidOrPids::Many(vec![p1.clone(), p2.clone(), p1.clone()]),
            PidOrPids::Many(vec![]),
        ] {
            assert_eq!(
                info(join(&me, &atom("g"), &pids)),
                Ok(PeerMsg::Join {
                    peer: me.clone(),
                    group: atom("g"),
                    pids: pids.clone()
                })
            );
            let groups = vec![atom("g"), int(7), atom("g")];
            assert_eq!(
                info(leave(&me, &pids, &groups)),
                Ok(PeerMsg::Leave {
                    peer: me.clone(),
                    pids,
                    groups
                })
            );
        }
        let groups = vec![(atom("g"), vec![p1.clone(), p2]), (int(1), vec![p1])];
        let body = cast_body(&sync(&me, groups.clone()));
        assert_eq!(
            PeerMsg::from_cast(&body),
            Some(Ok(PeerMsg::Sync { peer: me, groups }))
        );
    }

    #[test]
    fn the_shapes_are_those_a_real_otp_25_scope_sent() {
        // What kernel 8.5.3's scope sent a spy scope: {discover,P}, {'$gen_cast',{sync,P,[]}},
        // {join,P,g9,M}, {join,P,g9,[M,M]}, {leave,P,M,[g9]}, {leave,P,M,[g9,g9]}.
        let (p, m) = (pid("e@h", 75), pid("e@h", 94));
        let (tp, tm) = (Term::Pid(p.clone()), Term::Pid(m.clone()));
        let otp = [
            tuple(vec![atom("discover"), tp.clone()]),
            tuple(vec![
                atom("$gen_cast"),
                tuple(vec![atom("sync"), tp.clone(), Term::nil()]),
            ]),
            tuple(vec![atom("join"), tp.clone(), atom("g9"), tm.clone()]),
            tuple(vec![
                atom("join"),
                tp.clone(),
                atom("g9"),
                list(vec![tm.clone(), tm.clone()]),
            ]),
            tuple(vec![
                atom("leave"),
                tp.clone(),
                tm.clone(),
                list(vec![atom("g9")]),
            ]),
            tuple(vec![
                atom("leave"),
                tp.clone(),
                tm.clone(),
                list(vec![atom("g9"), atom("g9")]),
            ]),
        ];
        let g9 = atom("g9");
        let ours = [
            discover(&p),
            sync(&p, vec![]),
            join(&p, &g9, &PidOrPids::One(m.clone())),
            join(&p, &g9, &PidOrPids::Many(vec![m.clone(), m.clone()])),
            leave(&p, &PidOrPids::One(m.clone()), std::slice::from_ref(&g9)),
            leave(&p, &PidOrPids::One(m.clone()), &[g9.clone(), g9.clone()]),
        ];
        for (o, t) in ours.iter().zip(otp.iter()) {
            assert_eq!(o, t);
            let parsed = match PeerMsg::from_info(t) {
                Some(r) => r,
                None => PeerMsg::from_cast(&cast_body(t)).expect("sync"),
            };
            assert!(parsed.is_ok(), "{t}: {parsed:?}");
        }
    }

    #[test]
    fn other_messages_are_not_scope_messages() {
        for t in [
            atom("discover"),
            tuple(vec![]),
            tuple(vec![int(1), int(2)]),
            tuple(vec![atom("nodeup"), atom("a@h")]),
            tuple(vec![atom("sync"), Term::Pid(pid("b@h", 1)), Term::nil()]),
        ] {
            assert!(PeerMsg::from_info(&t).is_none(), "{t}");
        }
        assert!(PeerMsg::from_cast(&tuple(vec![atom("join_local")])).is_none());
    }

    #[test]
    fn malformed_shapes_are_errors() {
        let me = Term::Pid(pid("b@h", 9));
        let member = Term::Pid(pid("b@h", 10));
        let stranger = Term::Pid(pid("c@h", 10));
        let cases: Vec<(Term, Expect)> = vec![
            (tuple(vec![atom("discover")]), |e| {
                matches!(e, Malformed::Arity(_))
            }),
            (tuple(vec![atom("discover"), atom("me")]), |e| {
                matches!(e, Malformed::PeerNotPid(_))
            }),
            (
                tuple(vec![atom("join"), me.clone(), atom("g"), atom("x")]),
                |e| matches!(e, Malformed::NotPids(_)),
            ),
            (
                tuple(vec![
                    atom("join"),
                    me.clone(),
                    atom("g"),
                    list(vec![member.clone(), int(3)]),
                ]),
                |e| matches!(e, Malformed::MemberNotPid(_)),
            ),
            (
                tuple(vec![
                    atom("join"),
                    me.clone(),
                    atom("g"),
                    crate::dist::term::improper(vec![member.clone()], atom("t")),
                ]),
                |e| matches!(e, Malformed::NotPids(_)),
            ),
            (
                tuple(vec![atom("join"), me.clone(), atom("g"), stranger.clone()]),
                |e| matches!(e, Malformed::ForeignMember { .. }),
            ),
            (
                tuple(vec![atom("join"), atom("x"), atom("g"), member.clone()]),
                |e| matches!(e, Malformed::PeerNotPid(_)),
            ),
            (tuple(vec![atom("join"), me.clone(), atom("g")]), |e| {
                matches!(e, Malformed::Arity(_))
            }),
            (
                tuple(vec![atom("leave"), me.clone(), member.clone(), atom("g")]),
                |e| matches!(e, Malformed::GroupsNotList(_)),
            ),
            (
                tuple(vec![
                    atom("leave"),
                    me.clone(),
                    list(vec![stranger.clone()]),
                    list(vec![atom("g")]),
                ]),
                |e| matches!(e, Malformed::ForeignMember { .. }),
            ),
        ];
        for (t, ok) in cases {
            match PeerMsg::from_info(&t) {
                Some(Err(e)) => assert!(ok(&e), "{t}: {e}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_syncs_are_errors() {
        let me = Term::Pid(pid("b@h", 9));
        let member = Term::Pid(pid("b@h", 10));
        let sync_of = |groups: Term| tuple(vec![atom("sync"), me.clone(), groups]);
        let cases: Vec<(Term, Expect)> = vec![
            (sync_of(atom("all")), |e| {
                matches!(e, Malformed::GroupsNotList(_))
            }),
            (sync_of(list(vec![atom("g")])), |e| {
                matches!(e, Malformed::SyncEntry(_))
            }),
            (
                sync_of(list(vec![tuple(vec![atom("g"), member.clone()])])),
                |e| matches!(e, Malformed::NotPids(_)),
            ),
            (
                sync_of(list(vec![tuple(vec![
                    atom("g"),
                    list(vec![Term::Pid(pid("c@h", 1))]),
                ])])),
                |e| matches!(e, Malformed::ForeignMember { .. }),
            ),
            (
                sync_of(list(vec![
                    tuple(vec![atom("g"), list(vec![member.clone()])]),
                    tuple(vec![atom("g"), Term::nil()]),
                ])),
                |e| matches!(e, Malformed::RepeatedGroup(_)),
            ),
            (tuple(vec![atom("sync"), me.clone()]), |e| {
                matches!(e, Malformed::Arity(_))
            }),
            (tuple(vec![atom("sync"), atom("me"), Term::nil()]), |e| {
                matches!(e, Malformed::PeerNotPid(_))
            }),
        ];
        for (t, ok) in cases {
            match PeerMsg::from_cast(&t) {
                Some(Err(e)) => assert!(ok(&e), "{t}: {e}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }
}
