//! The scope's state driven by hand with recorded effects, then whole scopes on nodes joined by
//! the in-memory transport.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::state::{Effects, Sent, Shared, State, Table};
use super::wire::{self, PeerMsg, PidOrPids};
use super::*;
use crate::dist::term::{int, list};

const ME: &str = "a@h";

fn pid(node: &str, id: u32) -> Pid {
    Pid::new(node, id, 0, 1)
}

/// Records what the state asked for; sends to `busy` pids are refused as a full queue would.
#[derive(Default)]
struct Rec {
    next: u32,
    monitored: Vec<(Pid, Ref)>,
    demonitored: Vec<Ref>,
    sent: Vec<(Pid, Term)>,
    busy: HashSet<Pid>,
}

impl Effects for Rec {
    fn monitor(&mut self, pid: &Pid) -> Option<Ref> {
        if pid.node.as_str() == "bad" {
            return None;
        }
        self.next += 1;
        let r = Ref::new(ME, 1, &[self.next, 0, 0]);
        self.monitored.push((pid.clone(), r.clone()));
        Some(r)
    }

    fn demonitor(&mut self, reference: &Ref) {
        self.demonitored.push(reference.clone());
    }

    fn send(&mut self, to: &Pid, msg: Term) -> Sent {
        if self.busy.contains(to) {
            return Sent::Busy;
        }
        self.sent.push((to.clone(), msg));
        Sent::Done
    }
}

impl Rec {
    fn monitor_of(&self, pid: &Pid) -> Ref {
        self.monitored
            .iter()
            .rev()
            .find(|(p, _)| p == pid)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{pid:?} not monitored"))
    }

    fn take_sent(&mut self) -> Vec<(Pid, Term)> {
        std::mem::take(&mut self.sent)
    }
}

fn fresh() -> (State, Shared, Rec) {
    let table: Shared = Arc::new(RwLock::new(Table::default()));
    (State::new(pid(ME, 1), table.clone()), table, Rec::default())
}

fn members(t: &Shared, g: &str) -> Vec<Pid> {
    state::read(t).members(&atom(g))
}

fn local_members(t: &Shared, g: &str) -> Vec<Pid> {
    state::read(t).local_members(&atom(g))
}

/// A peer scope `b@h` that has discovered us.
fn with_peer(st: &mut State, fx: &mut Rec) -> Pid {
    let peer = pid("b@h", 1);
    st.discover(fx, &peer).unwrap();
    fx.take_sent();
    peer
}

#[test]
fn local_joins_and_leaves_update_the_table_and_tell_peers_in_otps_shapes() {
    let (mut st, t, mut fx) = fresh();
    let peer = with_peer(&mut st, &mut fx);
    let (p, q) = (pid(ME, 10), pid(ME, 11));
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone()));
    st.join_local(
        &mut fx,
        &atom("g"),
        &PidOrPids::Many(vec![q.clone(), p.clone()]),
    );
    // Newest first; p twice; p and q monitored once each.
    assert_eq!(members(&t, "g"), vec![q.clone(), p.clone(), p.clone()]);
    assert_eq!(local_members(&t, "g"), members(&t, "g"));
    assert_eq!(fx.monitored.len(), 3, "the peer, p and q");
    let sent = fx.take_sent();
    assert_eq!(
        sent,
        vec![
            (
                peer.clone(),
                tuple(vec![
                    atom("join"),
                    Term::Pid(pid(ME, 1)),
                    atom("g"),
                    Term::Pid(p.clone())
                ])
            ),
            (
                peer.clone(),
                tuple(vec![
                    atom("join"),
                    Term::Pid(pid(ME, 1)),
                    atom("g"),
                    list(vec![Term::Pid(q.clone()), Term::Pid(p.clone())])
                ])
            ),
        ]
    );
    // One leave removes one membership.
    assert!(st.leave_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone())));
    assert_eq!(members(&t, "g"), vec![q.clone(), p.clone()]);
    assert!(fx.demonitored.is_empty(), "p is still a member");
    assert_eq!(
        fx.take_sent(),
        vec![(
            peer.clone(),
            tuple(vec![
                atom("leave"),
                Term::Pid(pid(ME, 1)),
                Term::Pid(p.clone()),
                list(vec![atom("g")])
            ])
        )]
    );
    assert!(st.leave_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone())));
    assert_eq!(fx.demonitored, vec![fx.monitor_of(&p)]);
    // Not a member any more: not_joined, nothing sent.
    assert!(!st.leave_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone())));
    assert!(!st.leave_local(&mut fx, &atom("other"), &PidOrPids::One(q.clone())));
    fx.take_sent();
    assert!(st.leave_local(&mut fx, &atom("g"), &PidOrPids::Many(vec![q])));
    assert!(state::read(&t).groups().is_empty(), "empty groups go");
    assert_eq!(st.local_count(), 0);
}

#[test]
fn a_member_that_exits_leaves_every_group_and_peers_hear_each_membership() {
    let (mut st, t, mut fx) = fresh();
    let peer = with_peer(&mut st, &mut fx);
    let p = pid(ME, 10);
    for g in ["g", "g", "h"] {
        st.join_local(&mut fx, &atom(g), &PidOrPids::One(p.clone()));
    }
    fx.take_sent();
    let r = fx.monitor_of(&p);
    assert!(st.monitors(&r, |x| *x == p));
    assert!(st.down(&mut fx, &r));
    assert!(state::read(&t).groups().is_empty());
    // As OTP sends it: the pid alone, every group it was in, repeats kept.
    assert_eq!(
        fx.take_sent(),
        vec![(
            peer,
            tuple(vec![
                atom("leave"),
                Term::Pid(pid(ME, 1)),
                Term::Pid(p),
                list(vec![atom("g"), atom("g"), atom("h")])
            ])
        )]
    );
    assert!(!st.down(&mut fx, &r), "a second DOWN is nothing");
}

#[test]
fn discover_is_answered_with_a_sync_and_a_discover_back_once() {
    let (mut st, _t, mut fx) = fresh();
    let p = pid(ME, 10);
    st.join_local(
        &mut fx,
        &atom("g"),
        &PidOrPids::Many(vec![p.clone(), p.clone()]),
    );
    let peer = pid("b@h", 1);
    st.discover(&mut fx, &peer).unwrap();
    let me = Term::Pid(pid(ME, 1));
    let sync = tuple(vec![
        atom("$gen_cast"),
        tuple(vec![
            atom("sync"),
            me.clone(),
            list(vec![tuple(vec![
                atom("g"),
                list(vec![Term::Pid(p.clone()), Term::Pid(p.clone())]),
            ])]),
        ]),
    ]);
    assert_eq!(
        fx.take_sent(),
        vec![
            (peer.clone(), sync.clone()),
            (peer.clone(), tuple(vec![atom("discover"), me]))
        ]
    );
    assert_eq!(st.peers().collect::<Vec<_>>(), vec![&peer]);
    // Known already: the sync only.
    st.discover(&mut fx, &peer).unwrap();
    assert_eq!(fx.take_sent(), vec![(peer, sync)]);
}

#[test]
fn sync_replaces_what_the_peer_announced_and_nothing_else() {
    let (mut st, t, mut fx) = fresh();
    let peer = pid("b@h", 1);
    let other = pid("c@h", 1);
    let (b1, b2, c1, mine) = (pid("b@h", 5), pid("b@h", 6), pid("c@h", 5), pid(ME, 5));
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(mine.clone()));
    // A sync from a scope we did not know makes it known (and monitored).
    st.sync(
        &mut fx,
        &peer,
        vec![
            (atom("g"), vec![b1.clone()]),
            (atom("h"), vec![b1.clone(), b2.clone()]),
        ],
    )
    .unwrap();
    st.sync(&mut fx, &other, vec![(atom("g"), vec![c1.clone()])])
        .unwrap();
    assert_eq!(members(&t, "g"), vec![c1.clone(), b1.clone(), mine.clone()]);
    assert_eq!(members(&t, "h"), vec![b1.clone(), b2.clone()]);
    // A second sync: g changes, h goes, i comes. c's and our members stay.
    st.sync(
        &mut fx,
        &peer,
        vec![(atom("g"), vec![b2.clone()]), (atom("i"), vec![b1.clone()])],
    )
    .unwrap();
    let mut g = members(&t, "g");
    g.sort();
    let mut want = vec![b2.clone(), c1.clone(), mine.clone()];
    want.sort();
    assert_eq!(g, want);
    assert!(members(&t, "h").is_empty());
    assert_eq!(members(&t, "i"), vec![b1.clone()]);
    assert_eq!(local_members(&t, "g"), vec![mine]);
    // An empty sync takes all of b's members away.
    st.sync(&mut fx, &peer, vec![]).unwrap();
    assert!(members(&t, "i").is_empty());
    assert_eq!(members(&t, "g").len(), 2);
}

#[test]
fn remote_joins_and_leaves_and_a_peer_down_drop_only_that_peers_members() {
    let (mut st, t, mut fx) = fresh();
    let b = with_peer(&mut st, &mut fx);
    let c = pid("c@h", 1);
    st.discover(&mut fx, &c).unwrap();
    let (b1, c1, mine) = (pid("b@h", 5), pid("c@h", 5), pid(ME, 5));
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(mine.clone()));
    st.remote_join(&mut fx, &b, &atom("g"), &PidOrPids::One(b1.clone()))
        .unwrap();
    st.remote_join(&mut fx, &b, &atom("g"), &PidOrPids::Many(vec![b1.clone()]))
        .unwrap();
    st.remote_join(&mut fx, &c, &atom("g"), &PidOrPids::One(c1.clone()))
        .unwrap();
    assert_eq!(members(&t, "g").len(), 4);
    // A leave of [g, g] removes both of b1's memberships.
    st.remote_leave(
        &mut fx,
        &b,
        &PidOrPids::One(b1.clone()),
        &[atom("g"), atom("g")],
    )
    .unwrap();
    assert_eq!(members(&t, "g"), vec![c1.clone(), mine.clone()]);
    st.remote_join(&mut fx, &b, &atom("h"), &PidOrPids::One(b1.clone()))
        .unwrap();
    // b's scope goes down: its members go, c's and ours stay.
    let r = fx.monitor_of(&b);
    assert!(st.down(&mut fx, &r));
    assert!(members(&t, "h").is_empty());
    assert_eq!(members(&t, "g"), vec![c1, mine]);
    // Its late messages are ignored.
    assert!(matches!(
        st.remote_join(&mut fx, &b, &atom("g"), &PidOrPids::One(b1)),
        Err(state::Refused::UnknownPeer(_))
    ));
}

#[test]
fn lying_or_confused_peers_change_nothing() {
    let (mut st, t, mut fx) = fresh();
    let b = with_peer(&mut st, &mut fx);
    let c = pid("c@h", 1);
    st.discover(&mut fx, &c).unwrap();
    let (b1, c1, mine) = (pid("b@h", 5), pid("c@h", 5), pid(ME, 5));
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(mine.clone()));
    st.remote_join(&mut fx, &c, &atom("g"), &PidOrPids::One(c1.clone()))
        .unwrap();
    let before = members(&t, "g");
    // A scope that never discovered us.
    let stranger = pid("d@h", 1);
    assert!(matches!(
        st.remote_join(
            &mut fx,
            &stranger,
            &atom("g"),
            &PidOrPids::One(pid("d@h", 2))
        ),
        Err(state::Refused::UnknownPeer(_))
    ));
    assert!(st
        .remote_leave(
            &mut fx,
            &stranger,
            &PidOrPids::One(c1.clone()),
            &[atom("g")]
        )
        .is_err());
    // A "peer" on our own node: no discover back, no sync, no member of ours touched.
    let fake = pid(ME, 77);
    assert!(matches!(
        st.discover(&mut fx, &fake),
        Err(state::Refused::OwnNode(_))
    ));
    assert!(st.sync(&mut fx, &fake, vec![(atom("g"), vec![])]).is_err());
    assert!(st
        .remote_leave(&mut fx, &fake, &PidOrPids::One(mine.clone()), &[atom("g")])
        .is_err());
    // b leaving c's member, or ours, or a group it never announced: nothing happens.
    st.remote_leave(
        &mut fx,
        &b,
        &PidOrPids::Many(vec![c1.clone(), mine.clone(), b1.clone()]),
        &[atom("g"), atom("never"), int(3)],
    )
    .unwrap();
    // A peer that cannot be monitored is not taken on.
    assert!(matches!(
        st.discover(&mut fx, &pid("bad", 1)),
        Err(state::Refused::CannotMonitor(_))
    ));
    assert_eq!(members(&t, "g"), before);
    assert_eq!(st.peers().count(), 2);
    // A DOWN is only believed for the process monitored under that reference.
    let r = fx.monitor_of(&mine);
    assert!(!st.monitors(&r, |p| *p == c1));
    assert!(!st.monitors(&Ref::new(ME, 1, &[999]), |_| true));
}

#[test]
fn malformed_peer_messages_reach_no_state() {
    // The shapes the process hands the state come from the wire parser, which refuses these
    // whole (more in `wire`'s tests); a join from b that names a pid of c is one of them.
    let b = Term::Pid(pid("b@h", 1));
    for t in [
        tuple(vec![
            atom("join"),
            b.clone(),
            atom("g"),
            Term::Pid(pid("c@h", 5)),
        ]),
        tuple(vec![atom("join"), b.clone(), atom("g"), int(5)]),
        tuple(vec![
            atom("leave"),
            b.clone(),
            Term::Pid(pid("b@h", 5)),
            atom("g"),
        ]),
        tuple(vec![atom("discover"), int(1)]),
    ] {
        assert!(matches!(PeerMsg::from_info(&t), Some(Err(_))), "{t}");
    }
}

#[test]
fn a_peer_that_refused_a_message_is_resynced_once_it_caught_up() {
    let (mut st, _t, mut fx) = fresh();
    let b = with_peer(&mut st, &mut fx);
    let (p, q) = (pid(ME, 10), pid(ME, 11));
    fx.busy.insert(b.clone());
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone()));
    assert!(st.any_lagging());
    // Skipped meanwhile, even once its queue has room: the order must hold.
    fx.busy.clear();
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(q.clone()));
    assert!(fx.take_sent().is_empty());
    st.catch_up(&mut fx, |_| true);
    assert!(st.any_lagging() && fx.take_sent().is_empty(), "still busy");
    st.catch_up(&mut fx, |_| false);
    assert!(!st.any_lagging());
    let sent = fx.take_sent();
    assert_eq!(sent.len(), 1);
    let Some(Ok(PeerMsg::Sync { groups, .. })) = sent[0]
        .1
        .as_tuple()
        .and_then(|t| t.get(1))
        .and_then(PeerMsg::from_cast)
    else {
        panic!("{sent:?}")
    };
    let mut g = groups[0].1.clone();
    g.sort();
    assert_eq!((groups.len(), g), (1, vec![p, q]));
    // Later changes flow again.
    st.join_local(&mut fx, &atom("h"), &PidOrPids::One(pid(ME, 12)));
    assert_eq!(fx.take_sent().len(), 1);
}

#[test]
fn watchers_hear_of_changes_until_they_stop_watching() {
    let (mut st, _t, mut fx) = fresh();
    let b = with_peer(&mut st, &mut fx);
    let (w_all, w_g) = (pid(ME, 50), pid(ME, 51));
    let p = pid(ME, 10);
    st.join_local(&mut fx, &atom("g"), &PidOrPids::One(p.clone()));
    let reply = st.watch_scope(&mut fx, &w_all).unwrap();
    let [Term::Ref(r_all), groups] = reply.as_tuple().unwrap() else {
        panic!("{reply}")
    };
    assert_eq!(
        groups.map_get(&atom("g")),
        Some(&list(vec![Term::Pid(p.clone())]))
    );
    let reply = st.watch_group(&mut fx, &w_g, &atom("g")).unwrap();
    let [Term::Ref(r_g), now] = reply.as_tuple().unwrap() else {
        panic!("{reply}")
    };
    assert_eq!(now, &list(vec![Term::Pid(p.clone())]));
    fx.take_sent();
    let b1 = pid("b@h", 5);
    st.remote_join(&mut fx, &b, &atom("g"), &PidOrPids::One(b1.clone()))
        .unwrap();
    st.remote_join(&mut fx, &b, &atom("h"), &PidOrPids::One(b1.clone()))
        .unwrap();
    let events: Vec<(Pid, ScopeEvent)> = fx
        .take_sent()
        .into_iter()
        .map(|(to, m)| (to, ScopeEvent::from_term(&m).unwrap()))
        .collect();
    let ev = |r: &Ref, g: &str| ScopeEvent {
        reference: r.clone(),
        joined: true,
        group: atom(g),
        pids: vec![b1.clone()],
    };
    assert!(events.contains(&(w_all.clone(), ev(r_all, "g"))));
    assert!(events.contains(&(w_g.clone(), ev(r_g, "g"))));
    assert!(events.contains(&(w_all.clone(), ev(r_all, "h"))));
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(st.unwatch(&mut fx, r_g).is_atom("ok"));
    assert!(st.unwatch(&mut fx, r_g).is_atom("false"));
    // A watcher that ends is forgotten.
    assert!(st.down(&mut fx, r_all));
    st.remote_join(&mut fx, &b, &atom("g"), &PidOrPids::One(b1))
        .unwrap();
    assert!(fx.take_sent().is_empty());
}

// ---- whole scopes ----

async fn mem_node(net: &crate::net::memory::MemoryTransport, name: &str) -> Node {
    let mut cfg = crate::dist::NodeConfig::new(
        NodeName::parse(name).unwrap(),
        crate::dist::Cookie::new("mem"),
    );
    cfg.transport = Arc::new(net.clone());
    cfg.global = false;
    Node::start(cfg).await.unwrap()
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_on_two_nodes_share_members_and_drop_them_with_their_node() {
    let net = crate::net::memory::MemoryTransport::new();
    let a = mem_node(&net, "a@mem").await;
    let b = mem_node(&net, "b@mem").await;
    let (sa, sb) = (default_scope(&a).unwrap(), default_scope(&b).unwrap());
    // Joined before the nodes meet: the discover/sync on nodeup brings it over.
    let early = a.spawn_mailbox();
    sa.join(atom("g"), vec![early.pid()]).await.unwrap();
    assert_eq!(sa.get_local_members(&atom("g")), vec![early.pid()]);
    a.connect(b.name()).await.unwrap();
    eventually("b sees a's early member", || {
        sb.get_members(&atom("g")) == vec![early.pid()]
    })
    .await;
    // Joined after: the join message.
    let late = b.spawn_mailbox();
    sb.join(atom("g"), vec![late.pid()]).await.unwrap();
    eventually("a sees b's member", || {
        sa.get_members(&atom("g")).len() == 2
    })
    .await;
    assert_eq!(sa.which_local_groups(), vec![atom("g")]);
    // A member that ends leaves.
    drop(early);
    eventually("the ended member gone on b", || {
        sb.get_members(&atom("g")) == vec![late.pid()]
    })
    .await;
    // Only our own processes can join through our scope.
    assert!(matches!(
        sa.join(atom("g"), vec![late.pid()]).await,
        Err(PgError::NotLocal(_))
    ));
    // b goes: its members go from a.
    b.shutdown().await;
    eventually("b's member gone on a", || sa.which_groups().is_empty()).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_leave_the_scope_running_and_its_members_in_place() {
    let net = crate::net::memory::MemoryTransport::new();
    let a = mem_node(&net, "ha@mem").await;
    let b = mem_node(&net, "hb@mem").await;
    let sa = default_scope(&a).unwrap();
    let member = a.spawn_mailbox();
    sa.join(atom("g"), vec![member.pid()]).await.unwrap();
    a.connect(b.name()).await.unwrap();
    let sb = default_scope(&b).unwrap();
    eventually("b sees a's member", || {
        sb.get_members(&atom("g")) == vec![member.pid()]
    })
    .await;
    let scope_pid = a.whereis("pg").unwrap();
    let to_a = Dest::name("pg", a.name());
    let liar = b.spawn_mailbox();
    let bpg = Term::Pid(b.whereis("pg").unwrap());
    for msg in [
        atom("junk"),
        tuple(vec![atom("join"), bpg.clone(), atom("g"), int(1)]),
        tuple(vec![
            atom("join"),
            bpg.clone(),
            atom("g"),
            Term::Pid(member.pid()),
        ]),
        tuple(vec![
            atom("leave"),
            bpg.clone(),
            Term::Pid(member.pid()),
            list(vec![atom("g")]),
        ]),
        tuple(vec![
            atom("leave"),
            Term::Pid(member.pid()),
            Term::Pid(member.pid()),
            list(vec![atom("g")]),
        ]),
        tuple(vec![atom("discover"), Term::Pid(member.pid())]),
        tuple(vec![
            atom("$gen_cast"),
            tuple(vec![atom("sync"), bpg.clone(), atom("x")]),
        ]),
        tuple(vec![atom("$gen_cast"), atom("junk")]),
        tuple(vec![
            atom("DOWN"),
            Term::Ref(Ref::new("ha@mem", a.creation(), &[999_999, 7, 7])),
            atom("process"),
            Term::Pid(member.pid()),
            atom("normal"),
        ]),
    ] {
        liar.send(&to_a, msg).unwrap();
    }
    // Calls: a join of b's pid through a's scope, and an unknown call.
    let mut caller = b.spawn_mailbox();
    let r = caller
        .call(
            &to_a,
            tuple(vec![atom("join_local"), atom("g"), Term::Pid(liar.pid())]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        tuple(vec![
            atom("error"),
            tuple(vec![atom("nolocal"), Term::Pid(liar.pid())])
        ])
    );
    let r = caller
        .call(&to_a, atom("what"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        r,
        tuple(vec![
            atom("error"),
            tuple(vec![atom("unknown_call"), atom("what")])
        ])
    );
    // Still the same process, still with its member, everywhere.
    assert_eq!(a.whereis("pg"), Some(scope_pid));
    assert_eq!(sa.get_members(&atom("g")), vec![member.pid()]);
    assert_eq!(sb.get_members(&atom("g")), vec![member.pid()]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_scopes_are_separate_and_started_once() {
    let net = crate::net::memory::MemoryTransport::new();
    let a = mem_node(&net, "na@mem").await;
    let b = mem_node(&net, "nb@mem").await;
    assert!(matches!(scope(&a, "games"), Err(PgError::NotStarted(_))));
    let ga = start_scope(&a, "games").unwrap();
    let again = start_scope(&a, "games").unwrap();
    assert!(Arc::ptr_eq(&ga.table, &again.table));
    assert!(matches!(start_scope(&a, ""), Err(PgError::BadName(_))));
    let _taken = a.register("busy_name").unwrap();
    assert!(matches!(
        start_scope(&a, "busy_name"),
        Err(PgError::Spawn(_))
    ));
    let gb = start_scope(&b, "games").unwrap();
    a.connect(b.name()).await.unwrap();
    let m = a.spawn_mailbox();
    ga.join(int(1), vec![m.pid()]).await.unwrap();
    eventually("b's games scope sees it", || {
        gb.get_members(&int(1)) == vec![m.pid()]
    })
    .await;
    assert!(default_scope(&b).unwrap().which_groups().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scope_starts_empty_and_is_rediscovered() {
    let net = crate::net::memory::MemoryTransport::new();
    let a = mem_node(&net, "ra@mem").await;
    let b = mem_node(&net, "rb@mem").await;
    let (sa, sb) = (default_scope(&a).unwrap(), default_scope(&b).unwrap());
    a.connect(b.name()).await.unwrap();
    let m = a.spawn_mailbox();
    sa.join(atom("g"), vec![m.pid()]).await.unwrap();
    eventually("b sees it", || sb.get_members(&atom("g")).len() == 1).await;
    let old = a.whereis("pg").unwrap();
    a.exit(&old, atom("kill")).unwrap();
    // As OTP's table goes with its process, the memberships go (on both nodes)...
    eventually("a restarted scope", || {
        a.whereis("pg").is_some_and(|p| p != old)
    })
    .await;
    eventually("b dropped the old scope's members", || {
        sb.which_groups().is_empty()
    })
    .await;
    assert!(sa.which_groups().is_empty());
    // ...and the new scope is a peer again: a join reaches b.
    sa.join(atom("g"), vec![m.pid()]).await.unwrap();
    eventually("b sees the new join", || {
        sb.get_members(&atom("g")).len() == 1
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn wire_and_state_agree_on_pid_lists() {
    let p = pid(ME, 3);
    assert_eq!(
        PidOrPids::from_term(&wire::pid_list(&[p.clone(), p.clone()])),
        Ok(PidOrPids::Many(vec![p.clone(), p]))
    );
}

#[test]
fn empty_joins_change_nothing_and_tell_no_one() {
    let (mut st, t, mut fx) = fresh();
    let b = with_peer(&mut st, &mut fx);
    st.join_local(&mut fx, &atom("g"), &PidOrPids::Many(vec![]));
    st.remote_join(&mut fx, &b, &atom("h"), &PidOrPids::Many(vec![]))
        .unwrap();
    st.sync(&mut fx, &b, vec![(atom("i"), vec![])]).unwrap();
    assert!(state::read(&t).groups().is_empty());
    assert!(fx.take_sent().is_empty());
}
