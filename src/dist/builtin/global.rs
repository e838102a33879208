//! `global_name_server`: OTP 25's `global` protocol (version 8), so BEAM nodes treat ours as
//! full members: `global:sync()` returns, connections are transitive (everyone ends meshed),
//! `global` names and locks span both kinds of node.
//!
//! Facts, verified against OTP 25.2.3 (kernel 8.5.3) by tracing real nodes (the research
//! notes are summarised here; no OTP code is copied):
//! - Every message between nodes goes to the registered `global_name_server`. Casts are
//!   `{'$gen_cast', Msg}`; calls are `gen_server:multi_call`s with tag `{Ref, Node}`, answered
//!   with `{{Ref, Node}, Reply}` to the caller's pid. A call that cannot be answered because its
//!   node went down counts as `true` (multi_call's bad nodes).
//! - After a **visible** nodeup both sides run one session: cast
//!   `{init_connect, {8, Tag}, Node, {locker, no_longer_a_pid, #{}, LockerPid}}`; answer the
//!   peer's with the plain message `{init_connect_ack, Me, HisTag, MyTag}`; lock our partition
//!   with `{set_lock, {global, sort([OurLocker, HisLocker])}}` on the highest-named node first,
//!   then on `[Me | Known]`; cast `{lock_set, Locker, true, Known, HisTag}`; when both locks are
//!   held, cast `{exchange, Me, [{Name, Pid, Method}], [], HisTag}`; resolve conflicts and cast
//!   `{resolved, Me, OpsForHim, [{Node, Vsn}], unused, [], HisTag}`; finally cast
//!   `{new_nodes, Me, Ops, [], NewNodes, [{vsn, V}, {lock, LockId}]}` to our old partition
//!   **before** releasing the lock, connect to every node the peer knows and cast
//!   `{in_sync, Me, true}` to it. Tags are integers echoed exactly; messages with a stale tag
//!   are dropped. We start locking at once (BEAM waits 200 ms to 3 s), so `global:sync()` on a
//!   BEAM peer returns within milliseconds.
//! - Erlang orders pids by serial, number, node, creation; the lock id's sorted pair depends on
//!   it (see the term order).
//! - A name registration takes the lock `{global, RegistrarPid}` and calls
//!   `{register, Name, Pid, Method}` **from that same pid** on every node (BEAM keeps the name
//!   only if the caller holds a `global` lock). Names die with their process: every node
//!   monitors every registered pid; no message says so.
//! - Conflicts (the same name on both sides of a session) are resolved by the node with the
//!   smaller name. When that is us we apply the method's meaning natively: by default
//!   `random_exit_name` keeps the pid on the node with the smaller name and kills the other;
//!   `random_notify_name` and `notify_all_name` send `{global_name_conflict, …}` instead.
//! - `prevent_overlapping_partitions`: a peer that asks `{remove_connection, Peer}` must be
//!   disconnected and forgotten, or `global:sync()` on it hangs forever. `lost_connection`
//!   reports are ignored (we never report one ourselves), which never disconnects anyone.
//! - Hidden connections take no part.
//!
//! Our own rules, which keep every session ending when many nodes meet at once (one session
//! at a time takes our partition's lock; both sides of a session lock and say `lock_set`):
//! - `lock_set true` is a promise: a side that gives its lock up after saying it (another
//!   session went first, the attempt timed out) says `lock_set false`, or the peer exchanges
//!   on a lock that is gone and holds his partition waiting; a ring of such sessions waits
//!   for good. A `false` after our exchange voids it: the session restarts on both sides.
//! - Once a session has exchanged, our partition stands still until it ends: `new_nodes`
//!   from other sessions wait, since every node we tell of the peer at the end must be one
//!   our `resolved` told him of (else it waits for his `in_sync` for ever).
//! - Every wait is bounded: an attempt ends within [`LOCK_WAIT`] (held with the peer's
//!   `lock_set`, or failed and retried after a growing random pause), and a session that
//!   exchanged restarts if the peer says nothing for [`EXCHANGE_WAIT`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use crate::dist::node::{Dest, NodeEvent};
use crate::dist::process::unknown_call;
use crate::dist::term::{atom, list, map, tuple, Atom, Export, Pid, Ref, Term};
use crate::dist::{Call, CallError, Ctx, Flow, From, Node, NodeName, Process};

/// The registered name.
pub const NAME: &str = "global_name_server";
/// The protocol version we speak.
pub const VSN: i64 = 8;
/// How long one locking attempt may take, from asking for our lock to the peer's `lock_set`,
/// before we release what it holds and retry.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long a session that has sent its `exchange` may wait for the peer's `exchange` and
/// `resolved` before it starts over (the peer's side of it is gone without a word).
const EXCHANGE_WAIT: Duration = Duration::from_secs(15);
/// The ceiling of the first random pause before a failed lock is tried again; it doubles with
/// every failure of the session up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(125);
const RETRY_MAX: Duration = Duration::from_secs(4);
/// Calls made by a registrar.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

enum Lock {
    Idle,
    Acquiring {
        boss_stage: bool,
        waiting: BTreeSet<Atom>,
        rest: Vec<Atom>,
        got: Vec<Atom>,
    },
    Held,
}

struct Session {
    my_tag: Term,
    his_tag: Option<Term>,
    his_locker: Option<Pid>,
    his_vsn: i64,
    lock: Lock,
    lock_id: Option<Term>,
    locked: Vec<Atom>,
    his_lock_set: bool,
    sent_lock_set: bool,
    exchanged: bool,
    his_names: Option<Vec<Term>>,
    ops: Option<Vec<Term>>,
    his_resolved: Option<(Vec<Term>, Vec<Term>)>,
    /// The current locking attempt, unique in this process (sessions restarted with the same
    /// peer reuse the lock id, so replies are matched to the attempt that asked); how many
    /// attempts the session made, and how many failed (retries back off).
    attempt: u64,
    attempts: u32,
    failures: u32,
}

impl Session {
    /// Whether the current attempt holds or is asking for our lock on `node`.
    fn holds_or_asks(&self, node: &Atom) -> bool {
        self.locked.contains(node)
            || matches!(&self.lock, Lock::Acquiring { waiting, got, .. }
                if waiting.contains(node) || got.contains(node))
    }
}

struct NameEntry {
    pid: Pid,
    method: Term,
    monitor: Option<Ref>,
}

struct LockEntry {
    req: Term,
    owners: Vec<(Pid, Option<Ref>)>,
}

/// The process.
#[derive(Default)]
pub struct Global {
    known: BTreeMap<Atom, i64>,
    synced: BTreeSet<Atom>,
    sessions: HashMap<Atom, Session>,
    pre: HashMap<Atom, (i64, Term, Pid)>,
    names: BTreeMap<Term, NameEntry>,
    locks: HashMap<Term, LockEntry>,
    /// The session taking or holding our partition's lock, and the sessions waiting to.
    active: Option<Atom>,
    lock_queue: BTreeSet<Atom>,
    /// Our outstanding lock calls: tag → (session peer, lock id, node called, attempt).
    calls: HashMap<Ref, (Atom, Term, Atom, u64)>,
    next_tag: i64,
    next_attempt: u64,
    /// `new_nodes` casts that arrived while a session was past its exchange, applied when it
    /// ends (see [`Global::on_new_nodes`]).
    deferred: VecDeque<Term>,
    draining: bool,
}

fn me(ctx: &Ctx<'_>) -> Atom {
    Atom::from(ctx.node().name().as_str())
}

fn gns(node: &Atom) -> Option<Dest> {
    NodeName::parse(node.as_str())
        .ok()
        .map(|n| Dest::name(NAME, &n))
}

fn cast(ctx: &Ctx<'_>, node: &Atom, msg: Term) {
    if let Some(d) = gns(node) {
        let _ = ctx.send(&d, tuple(vec![atom("$gen_cast"), msg]));
    }
}

fn plain(ctx: &Ctx<'_>, node: &Atom, msg: Term) {
    if let Some(d) = gns(node) {
        let _ = ctx.send_noconnect(&d, msg);
    }
}

fn node_of(pid: &Pid) -> Atom {
    pid.node.clone()
}

fn now_tag() -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(1);
    -nanos.abs()
}

/// `fun global:random_exit_name/3`, the method our own registrations carry.
pub fn default_method() -> Term {
    Term::Export(Box::new(Export {
        module: Atom::from("global"),
        function: Atom::from("random_exit_name"),
        arity: 3,
    }))
}

fn method_name(method: &Term) -> &str {
    match method {
        Term::Export(e) if e.module.as_str() == "global" => e.function.as_str(),
        _ => "random_exit_name",
    }
}

impl Global {
    fn session(&mut self, n: &Atom) -> Option<&mut Session> {
        self.sessions.get_mut(n)
    }

    fn nodeup(&mut self, ctx: &Ctx<'_>, n: Atom) {
        if self.known.contains_key(&n) || self.sessions.contains_key(&n) {
            return;
        }
        self.new_session(ctx, n);
    }

    fn new_session(&mut self, ctx: &Ctx<'_>, n: Atom) {
        if self.next_tag == 0 {
            self.next_tag = now_tag();
        }
        self.next_tag -= 1;
        let my_tag = Term::Int(self.next_tag);
        cast(
            ctx,
            &n,
            tuple(vec![
                atom("init_connect"),
                tuple(vec![Term::Int(VSN), my_tag.clone()]),
                Term::Atom(me(ctx)),
                tuple(vec![
                    atom("locker"),
                    atom("no_longer_a_pid"),
                    map(vec![]),
                    Term::Pid(ctx.pid()),
                ]),
            ]),
        );
        self.sessions.insert(
            n.clone(),
            Session {
                my_tag,
                his_tag: None,
                his_locker: None,
                his_vsn: VSN,
                lock: Lock::Idle,
                lock_id: None,
                locked: Vec::new(),
                his_lock_set: false,
                sent_lock_set: false,
                exchanged: false,
                his_names: None,
                ops: None,
                his_resolved: None,
                attempt: 0,
                attempts: 0,
                failures: 0,
            },
        );
        if let Some((vsn, tag, locker)) = self.pre.remove(&n) {
            self.his_init_connect(ctx, n, vsn, tag, locker);
        }
    }

    fn restart(&mut self, ctx: &Ctx<'_>, n: Atom) {
        self.abort(ctx, &n);
        self.new_session(ctx, n);
    }

    fn abort(&mut self, ctx: &Ctx<'_>, n: &Atom) {
        if let Some(s) = self.sessions.remove(n) {
            self.release(ctx, &s);
        }
        self.lock_done(ctx, n);
    }

    /// The session with `n` no longer takes or holds our partition's lock: let the next one.
    fn lock_done(&mut self, ctx: &Ctx<'_>, n: &Atom) {
        self.lock_queue.remove(n);
        if self.active.as_ref() == Some(n) {
            self.active = None;
            self.next_lock(ctx);
        }
        self.drain_deferred(ctx);
    }

    /// Whether a session is past its exchange (at most one is: the one holding our lock).
    fn exchanging(&self) -> bool {
        self.sessions.values().any(|s| s.exchanged)
    }

    /// Applies the `new_nodes` deferred while a session exchanged, once none does.
    fn drain_deferred(&mut self, ctx: &Ctx<'_>) {
        if self.draining {
            return;
        }
        self.draining = true;
        while !self.exchanging() {
            let Some(msg) = self.deferred.pop_front() else {
                break;
            };
            self.on_new_nodes(ctx, &msg);
        }
        self.draining = false;
    }

    /// Starts the next queued session's locking: one whose peer already holds its side
    /// first, otherwise one at random.
    fn next_lock(&mut self, ctx: &Ctx<'_>) {
        if self.active.is_some() {
            return;
        }
        let sessions = &self.sessions;
        self.lock_queue.retain(|n| {
            sessions
                .get(n)
                .is_some_and(|s| matches!(s.lock, Lock::Idle) && s.his_locker.is_some())
        });
        let ready: Vec<&Atom> = self.lock_queue.iter().collect();
        let pick = ready
            .iter()
            .find(|n| sessions.get(**n).is_some_and(|s| s.his_lock_set))
            .or_else(|| ready.get(rand::random::<usize>() % ready.len().max(1)))
            .map(|n| (*n).clone());
        if let Some(n) = pick {
            self.start_lock(ctx, &n);
        }
    }

    fn his_init_connect(&mut self, ctx: &Ctx<'_>, n: Atom, vsn: i64, his_tag: Term, locker: Pid) {
        let Some(s) = self.sessions.get_mut(&n) else {
            self.pre.insert(n, (vsn, his_tag, locker));
            return;
        };
        if s.his_tag.is_some() {
            debug!(peer = %n, "global: a second init_connect in one session; restarting it");
            self.restart(ctx, n.clone());
            return self.his_init_connect(ctx, n, vsn, his_tag, locker);
        }
        plain(
            ctx,
            &n,
            tuple(vec![
                atom("init_connect_ack"),
                Term::Atom(me(ctx)),
                his_tag.clone(),
                s.my_tag.clone(),
            ]),
        );
        s.his_tag = Some(his_tag);
        s.his_locker = Some(locker);
        s.his_vsn = vsn.min(VSN);
        // BEAM's locker waits up to seconds before it starts; we start at once.
        self.start_lock(ctx, &n);
    }

    // ---- locking our partition ----

    fn start_lock(&mut self, ctx: &Ctx<'_>, n: &Atom) {
        // One session at a time takes our partition's lock, as OTP's single locker process
        // does: sessions locking for different pairs at once only take the lock from each
        // other (a mesh of two halves could spin like that for minutes). A session whose
        // peer already holds its side goes ahead of one still waiting for its peer.
        if let Some(active) = self.active.clone().filter(|a| a != n) {
            let his_first = self.sessions.get(n).is_some_and(|s| s.his_lock_set);
            let active_waits = self
                .sessions
                .get(&active)
                .is_none_or(|s| !s.his_lock_set && !s.exchanged);
            if his_first && active_waits {
                debug!(peer = %n, yielding = %active, "global: the peer holds its side; locking for it first");
                self.active = None;
                self.lock_failed(ctx, &active);
            } else {
                self.lock_queue.insert(n.clone());
                return;
            }
        }
        if self.sessions.get(n).is_none_or(|s| s.his_locker.is_none()) {
            return;
        }
        self.lock_queue.remove(n);
        self.active = Some(n.clone());
        let mine = ctx.pid();
        let me = me(ctx);
        let known: Vec<Atom> = self.known.keys().cloned().collect();
        let Some(s) = self.sessions.get_mut(n) else {
            return;
        };
        let Some(his) = s.his_locker.clone() else {
            return;
        };
        let mut pair = [Term::Pid(mine), Term::Pid(his)];
        pair.sort();
        let lock_id = tuple(vec![atom("global"), list(pair.to_vec())]);
        let mut nodes = vec![me];
        nodes.extend(known);
        let Some(boss) = nodes.iter().max().cloned() else {
            return;
        };
        let rest: Vec<Atom> = nodes.into_iter().filter(|x| *x != boss).collect();
        self.next_attempt += 1;
        s.attempt = self.next_attempt;
        s.attempts += 1;
        // The attempt must end within LOCK_WAIT: held with the peer's `lock_set`, or failed.
        ctx.send_after(
            LOCK_WAIT,
            tuple(vec![
                atom("lock_wait"),
                Term::Atom(n.clone()),
                s.my_tag.clone(),
                Term::Int(s.attempt as i64),
            ]),
        );
        s.lock = Lock::Acquiring {
            boss_stage: true,
            waiting: [boss.clone()].into_iter().collect(),
            rest,
            got: Vec::new(),
        };
        s.lock_id = Some(lock_id.clone());
        self.lock_request(ctx, n, &lock_id, vec![boss]);
    }

    fn lock_request(&mut self, ctx: &Ctx<'_>, peer: &Atom, lock_id: &Term, nodes: Vec<Atom>) {
        let me = me(ctx);
        let attempt = self.sessions.get(peer).map_or(0, |s| s.attempt);
        for nd in nodes {
            // A local refusal fails the attempt at once: ask no one else for it.
            let acquiring = self
                .sessions
                .get(peer)
                .is_some_and(|s| s.attempt == attempt && matches!(s.lock, Lock::Acquiring { .. }));
            if !acquiring {
                break;
            }
            if nd == me {
                let ok = self.local_set_lock(ctx, lock_id, ctx.pid());
                self.lock_reply(ctx, peer, &nd, ok);
            } else {
                let r = ctx.node().make_ref();
                let Some(dest) = gns(&nd) else { continue };
                let call = tuple(vec![
                    atom("$gen_call"),
                    tuple(vec![
                        Term::Pid(ctx.pid()),
                        tuple(vec![Term::Ref(r.clone()), Term::Atom(nd.clone())]),
                    ]),
                    tuple(vec![atom("set_lock"), lock_id.clone()]),
                ]);
                if ctx.send(&dest, call).is_ok() {
                    self.calls
                        .insert(r, (peer.clone(), lock_id.clone(), nd, attempt));
                } else {
                    // Unreachable: a bad node, which multi_call treats as agreeing.
                    self.lock_reply(ctx, peer, &nd, true);
                }
            }
        }
    }

    fn lock_reply(&mut self, ctx: &Ctx<'_>, peer: &Atom, nd: &Atom, ok: bool) {
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
        let Lock::Acquiring {
            boss_stage,
            waiting,
            rest,
            got,
        } = &mut s.lock
        else {
            return;
        };
        if !waiting.remove(nd) {
            return;
        }
        if ok {
            got.push(nd.clone());
        } else {
            s.locked = std::mem::take(got);
            self.lock_failed(ctx, peer);
            return;
        }
        if !waiting.is_empty() {
            return;
        }
        if *boss_stage && !rest.is_empty() {
            *boss_stage = false;
            let next = std::mem::take(rest);
            *waiting = next.iter().cloned().collect();
            let Some(id) = s.lock_id.clone() else { return };
            self.lock_request(ctx, peer, &id, next);
            return;
        }
        s.locked = std::mem::take(got);
        s.lock = Lock::Held;
        self.lock_held(ctx, peer);
    }

    fn lock_failed(&mut self, ctx: &Ctx<'_>, peer: &Atom) {
        if self.sessions.get(peer).is_some_and(|s| s.exchanged) {
            // Past the point of no return (the peer may act on our exchange): start over.
            debug!(%peer, "global: a session that exchanged lost its lock; restarting it");
            return self.restart(ctx, peer.clone());
        }
        self.next_attempt += 1;
        let fresh = self.next_attempt;
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
        // Everything this attempt holds: all of it when the lock was complete, what it got so
        // far when it fails half-way (the peer said no, another session went first). A lock
        // left behind on one node blocks every later session of the partition for good.
        let mut locked = std::mem::take(&mut s.locked);
        if let Lock::Acquiring { got, .. } = &mut s.lock {
            locked.append(got);
        }
        let id = s.lock_id.clone();
        // The peer must hear `false` if we told him `true` (it is void now) or he told us
        // (a BEAM locker blocks until we answer). A peer left believing we hold our side
        // exchanges and keeps his partition locked waiting for our exchange; three sessions
        // like that in a ring (A waiting on B, B on C, C on A) once locked a crowd for good.
        if s.his_lock_set || s.sent_lock_set {
            if let Some(tag) = s.his_tag.clone() {
                cast(
                    ctx,
                    peer,
                    tuple(vec![
                        atom("lock_set"),
                        Term::Pid(ctx.pid()),
                        atom("false"),
                        Term::nil(),
                        tag,
                    ]),
                );
            }
        }
        s.lock = Lock::Idle;
        s.his_lock_set = false;
        s.sent_lock_set = false;
        // Replies still on their way belong to a finished attempt.
        s.attempt = fresh;
        let my_tag = s.my_tag.clone();
        // Random and growing, as OTP's locker backs off: sessions that keep taking the
        // cluster-wide lock from each other drift apart instead of colliding for ever.
        s.failures += 1;
        let ceiling = (RETRY_FIRST.as_millis() as u64) << s.failures.min(6);
        let ceiling = ceiling.min(RETRY_MAX.as_millis() as u64);
        let pause = Duration::from_millis(20 + rand::random::<u64>() % ceiling);
        if let Some(id) = id {
            self.del_lock_on(ctx, &locked, &id);
        }
        ctx.send_after(
            pause,
            tuple(vec![atom("retry_lock"), Term::Atom(peer.clone()), my_tag]),
        );
        self.lock_done(ctx, peer);
    }

    fn lock_held(&mut self, ctx: &Ctx<'_>, peer: &Atom) {
        let known: Vec<Term> = self.known.keys().map(|k| Term::Atom(k.clone())).collect();
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
        if !s.sent_lock_set {
            if let Some(tag) = s.his_tag.clone() {
                cast(
                    ctx,
                    peer,
                    tuple(vec![
                        atom("lock_set"),
                        Term::Pid(ctx.pid()),
                        atom("true"),
                        list(known),
                        tag,
                    ]),
                );
            }
            s.sent_lock_set = true;
        }
        self.maybe_exchange(ctx, peer);
    }

    fn release(&mut self, ctx: &Ctx<'_>, s: &Session) {
        if let Some(id) = &s.lock_id {
            let mut locked = s.locked.clone();
            if let Lock::Acquiring { got, .. } = &s.lock {
                locked.extend(got.iter().cloned());
            }
            self.del_lock_on(ctx, &locked, id);
        }
    }

    /// Releases a lock on `nodes`: the others first, the boss last.
    fn del_lock_on(&mut self, ctx: &Ctx<'_>, nodes: &[Atom], id: &Term) {
        let boss = nodes.iter().max().cloned();
        let me = me(ctx);
        let mut order: Vec<&Atom> = nodes.iter().filter(|n| Some(*n) != boss.as_ref()).collect();
        if let Some(b) = &boss {
            order.push(b);
        }
        for nd in order {
            if *nd == me {
                self.local_del_lock(ctx, id, &ctx.pid());
            } else if let Some(dest) = gns(nd) {
                let r = ctx.node().make_ref();
                let _ = ctx.send(
                    &dest,
                    tuple(vec![
                        atom("$gen_call"),
                        tuple(vec![
                            Term::Pid(ctx.pid()),
                            tuple(vec![Term::Ref(r), Term::Atom(nd.clone())]),
                        ]),
                        tuple(vec![atom("del_lock"), id.clone()]),
                    ]),
                );
            }
        }
    }

    // ---- exchange, resolve, finish ----

    fn maybe_exchange(&mut self, ctx: &Ctx<'_>, peer: &Atom) {
        let names: Vec<Term> = self
            .names
            .iter()
            .map(|(n, e)| tuple(vec![n.clone(), Term::Pid(e.pid.clone()), e.method.clone()]))
            .collect();
        let Some(s) = self.sessions.get_mut(peer) else {
            return;
        };
        if !matches!(s.lock, Lock::Held) || !s.his_lock_set || s.exchanged {
            return;
        }
        let Some(tag) = s.his_tag.clone() else { return };
        cast(
            ctx,
            peer,
            tuple(vec![
                atom("exchange"),
                Term::Atom(me(ctx)),
                list(names),
                Term::nil(),
                tag,
            ]),
        );
        s.exchanged = true;
        ctx.send_after(
            EXCHANGE_WAIT,
            tuple(vec![
                atom("exchange_wait"),
                Term::Atom(peer.clone()),
                s.my_tag.clone(),
            ]),
        );
        self.maybe_resolve(ctx, peer);
    }

    fn maybe_resolve(&mut self, ctx: &Ctx<'_>, peer: &Atom) {
        let Some(s) = self.sessions.get(peer) else {
            return;
        };
        if !s.exchanged || s.ops.is_some() {
            return;
        }
        let Some(his) = s.his_names.clone() else {
            return;
        };
        let tag = s.his_tag.clone();
        let (ops, res) = self.resolve(ctx, &his, peer);
        let known: Vec<Term> = self
            .known
            .iter()
            .map(|(n, v)| tuple(vec![Term::Atom(n.clone()), Term::Int(*v)]))
            .collect();
        if let Some(tag) = tag {
            cast(
                ctx,
                peer,
                tuple(vec![
                    atom("resolved"),
                    Term::Atom(me(ctx)),
                    list(res),
                    list(known),
                    atom("unused"),
                    Term::nil(),
                    tag,
                ]),
            );
        }
        if let Some(s) = self.sessions.get_mut(peer) {
            s.ops = Some(ops);
        }
        self.maybe_finish(ctx, peer);
    }

    /// Compares his names with ours: ops for us, and ops for him.
    fn resolve(&mut self, ctx: &Ctx<'_>, his: &[Term], peer: &Atom) -> (Vec<Term>, Vec<Term>) {
        let me = me(ctx);
        let mut ops = Vec::new();
        let mut res = Vec::new();
        for entry in his {
            let Some([name, Term::Pid(pid), method]) = entry.as_tuple() else {
                continue;
            };
            let insert = |n: &Term, p: &Pid, m: &Term| {
                tuple(vec![
                    atom("insert"),
                    tuple(vec![n.clone(), Term::Pid(p.clone()), m.clone()]),
                ])
            };
            match self.names.get(name) {
                Some(mine) if mine.pid == *pid => {}
                Some(mine) if me < *peer => {
                    let (pid2, method2) = (mine.pid.clone(), mine.method.clone());
                    match self.conflict(ctx, name, &method2, pid, &pid2) {
                        Some(w) if w == *pid => ops.push(insert(name, pid, method)),
                        Some(w) if w == pid2 => res.push(insert(name, &pid2, &method2)),
                        _ => {
                            let del = tuple(vec![atom("delete"), name.clone()]);
                            ops.push(del.clone());
                            res.push(del);
                        }
                    }
                }
                Some(_) => {}
                None => ops.push(insert(name, pid, method)),
            }
        }
        (ops, res)
    }

    /// Resolves a name registered to `p1` (his) and `p2` (ours) by `method`'s meaning.
    fn conflict(
        &self,
        ctx: &Ctx<'_>,
        name: &Term,
        method: &Term,
        p1: &Pid,
        p2: &Pid,
    ) -> Option<Pid> {
        let (min, max) = if p1.node < p2.node {
            (p1.clone(), p2.clone())
        } else {
            (p2.clone(), p1.clone())
        };
        match method_name(method) {
            "notify_all_name" => {
                for (p, other) in [(p1, p2), (p2, p1)] {
                    let msg = tuple(vec![
                        atom("global_name_conflict"),
                        name.clone(),
                        Term::Pid(other.clone()),
                    ]);
                    let _ = ctx.send(&Dest::Pid(p.clone()), msg);
                }
                None
            }
            "random_notify_name" => {
                let msg = tuple(vec![atom("global_name_conflict"), name.clone()]);
                let _ = ctx.send(&Dest::Pid(max), msg);
                Some(min)
            }
            _ => {
                info!(name = %name, kept = ?min, "global: name conflict; terminating {max:?}");
                let _ = ctx.node().exit(&max, atom("kill"));
                Some(min)
            }
        }
    }

    fn maybe_finish(&mut self, ctx: &Ctx<'_>, peer: &Atom) {
        let ready = self
            .sessions
            .get(peer)
            .is_some_and(|s| s.ops.is_some() && s.his_resolved.is_some());
        if !ready {
            return;
        }
        let Some(s) = self.sessions.remove(peer) else {
            return;
        };
        let (his_ops, his_known) = s.his_resolved.clone().unwrap_or_default();
        let mut all_ops = s.ops.clone().unwrap_or_default();
        all_ops.extend(his_ops);
        let mut new_nodes = vec![tuple(vec![Term::Atom(peer.clone()), Term::Int(s.his_vsn)])];
        new_nodes.extend(his_known.iter().cloned());
        let extra = list(vec![
            tuple(vec![atom("vsn"), Term::Int(s.his_vsn)]),
            tuple(vec![
                atom("lock"),
                s.lock_id.clone().unwrap_or_else(|| atom("undefined")),
            ]),
        ]);
        let msg = tuple(vec![
            atom("new_nodes"),
            Term::Atom(me(ctx)),
            list(all_ops.clone()),
            Term::nil(),
            list(new_nodes),
            extra,
        ]);
        let old: Vec<Atom> = self.known.keys().cloned().collect();
        for nd in &old {
            cast(ctx, nd, msg.clone());
        }
        self.apply_ops(ctx, &all_ops);
        self.release(ctx, &s);
        self.known.insert(peer.clone(), s.his_vsn);
        self.synced.insert(peer.clone());
        debug!(%peer, "global: synced");
        self.add_known(ctx, &his_known);
        // Last: the next session locks a partition that includes his, and the `new_nodes`
        // deferred meanwhile are applied on top of what this session brought.
        self.lock_done(ctx, peer);
    }

    /// Nodes learned from a peer: remember them, connect, and tell each we are in sync.
    fn add_known(&mut self, ctx: &Ctx<'_>, nodes: &[Term]) {
        let me = me(ctx);
        for t in nodes {
            let (n, v) = match t.as_tuple() {
                Some([Term::Atom(n), v]) => (n.clone(), v.as_int().unwrap_or(VSN)),
                _ => match t {
                    Term::Atom(n) => (n.clone(), VSN),
                    _ => continue,
                },
            };
            if n == me || self.known.contains_key(&n) {
                continue;
            }
            self.known.insert(n.clone(), v);
            self.abort(ctx, &n);
            let Ok(target) = NodeName::parse(n.as_str()) else {
                continue;
            };
            let node = ctx.node().clone();
            let me = me.clone();
            ctx.spawn(async move {
                match node.connect(&target).await {
                    Ok(()) => {
                        let msg = tuple(vec![
                            atom("$gen_cast"),
                            tuple(vec![atom("in_sync"), Term::Atom(me), atom("true")]),
                        ]);
                        let _ = node.send(&Dest::name(NAME, &target), msg);
                    }
                    Err(e) => {
                        warn!(peer = %target, "global: cannot connect to a node a peer knows: {e}")
                    }
                }
            });
        }
    }

    // ---- the name and lock tables ----

    fn apply_ops(&mut self, ctx: &Ctx<'_>, ops: &[Term]) {
        for op in ops {
            match op.as_tuple() {
                Some([k, entry]) if k.is_atom("insert") => {
                    if let Some([name, Term::Pid(pid), method]) = entry.as_tuple() {
                        self.insert_name(ctx, name.clone(), pid.clone(), method.clone());
                    }
                }
                Some([k, name]) if k.is_atom("delete") => self.delete_name(ctx, name),
                _ => {}
            }
        }
    }

    fn insert_name(&mut self, ctx: &Ctx<'_>, name: Term, pid: Pid, method: Term) {
        self.delete_name(ctx, &name);
        let monitor = ctx.monitor(&Dest::Pid(pid.clone())).ok();
        self.names.insert(
            name,
            NameEntry {
                pid,
                method,
                monitor,
            },
        );
    }

    fn delete_name(&mut self, ctx: &Ctx<'_>, name: &Term) {
        if let Some(e) = self.names.remove(name) {
            if let Some(r) = e.monitor {
                ctx.demonitor(&r);
            }
        }
    }

    fn local_set_lock(&mut self, ctx: &Ctx<'_>, id: &Term, owner: Pid) -> bool {
        let Some([resource, req]) = id.as_tuple() else {
            return false;
        };
        let watch = |p: &Pid| {
            (*p != ctx.pid())
                .then(|| ctx.monitor(&Dest::Pid(p.clone())).ok())
                .flatten()
        };
        match self.locks.get_mut(resource) {
            None => {
                let mon = watch(&owner);
                self.locks.insert(
                    resource.clone(),
                    LockEntry {
                        req: req.clone(),
                        owners: vec![(owner, mon)],
                    },
                );
                true
            }
            Some(e) if e.req == *req => {
                if !e.owners.iter().any(|(p, _)| *p == owner) {
                    let mon = watch(&owner);
                    e.owners.push((owner, mon));
                }
                true
            }
            Some(_) => false,
        }
    }

    fn local_del_lock(&mut self, ctx: &Ctx<'_>, id: &Term, owner: &Pid) {
        let Some([resource, req]) = id.as_tuple() else {
            return;
        };
        let Some(e) = self.locks.get_mut(resource) else {
            return;
        };
        if e.req != *req {
            return;
        }
        if let Some(i) = e.owners.iter().position(|(p, _)| p == owner) {
            let (_, mon) = e.owners.remove(i);
            if let Some(r) = mon {
                ctx.demonitor(&r);
            }
        }
        if e.owners.is_empty() {
            self.locks.remove(resource);
        }
    }

    fn down(&mut self, r: &Ref) {
        self.names.retain(|_, e| e.monitor.as_ref() != Some(r));
        self.locks.retain(|_, e| {
            e.owners.retain(|(_, m)| m.as_ref() != Some(r));
            !e.owners.is_empty()
        });
    }

    fn nodedown(&mut self, ctx: &Ctx<'_>, n: &Atom) {
        // Lock calls to a node that went away count as agreeing, as multi_call's bad nodes.
        let pending: Vec<(Ref, Atom, u64)> = self
            .calls
            .iter()
            .filter(|(_, (_, _, nd, _))| nd == n)
            .map(|(r, (peer, _, _, attempt))| (r.clone(), peer.clone(), *attempt))
            .collect();
        for (r, peer, attempt) in pending {
            self.calls.remove(&r);
            if self
                .sessions
                .get(&peer)
                .is_some_and(|s| s.attempt == attempt)
            {
                self.lock_reply(ctx, &peer, n, true);
            }
        }
        self.forget(ctx, n);
        self.names.retain(|_, e| e.pid.node != *n);
        self.locks.retain(|_, e| {
            e.owners.retain(|(p, _)| p.node != *n);
            !e.owners.is_empty()
        });
    }

    fn forget(&mut self, ctx: &Ctx<'_>, n: &Atom) {
        self.abort(ctx, n);
        self.known.remove(n);
        self.synced.remove(n);
        self.pre.remove(n);
    }

    fn on_cast(&mut self, ctx: &Ctx<'_>, msg: &Term) {
        let Some(els) = msg.as_tuple() else { return };
        match els {
            [k, vsn_tag, Term::Atom(n), locker] if k.is_atom("init_connect") => {
                let (vsn, tag) = match vsn_tag.as_tuple() {
                    Some([v, t, ..]) => (v.as_int().unwrap_or(VSN), t.clone()),
                    _ => return,
                };
                let Some([_, _, _, Term::Pid(his)]) = locker.as_tuple() else {
                    return;
                };
                self.his_init_connect(ctx, n.clone(), vsn, tag, his.clone());
            }
            [k, Term::Pid(p), is_set, _known, tag] if k.is_atom("lock_set") => {
                self.lock_set(ctx, p, is_set.is_atom("true"), Some(tag));
            }
            [k, Term::Pid(p), is_set, _known] if k.is_atom("lock_set") => {
                self.lock_set(ctx, p, is_set.is_atom("true"), None);
            }
            [k, Term::Atom(n), names, _ext, tag] if k.is_atom("exchange") => {
                let Some(s) = self.session(n) else { return };
                if s.my_tag != *tag {
                    return;
                }
                s.his_names = names.as_list().map(<[Term]>::to_vec);
                let n = n.clone();
                self.maybe_resolve(ctx, &n);
            }
            [k, Term::Atom(n), ops, known, _unused, _ext, tag] if k.is_atom("resolved") => {
                let Some(s) = self.session(n) else { return };
                if s.my_tag != *tag {
                    return;
                }
                s.his_resolved = Some((
                    ops.as_list().unwrap_or_default().to_vec(),
                    known.as_list().unwrap_or_default().to_vec(),
                ));
                let n = n.clone();
                self.maybe_finish(ctx, &n);
            }
            [k, _from, _ops, _ext, _nodes, _extra] if k.is_atom("new_nodes") => {
                if self.exchanging() {
                    self.deferred.push_back(msg.clone());
                } else {
                    self.on_new_nodes(ctx, msg);
                }
            }
            [k, Term::Atom(n), _] if k.is_atom("in_sync") => {
                self.abort(ctx, n);
                self.synced.insert(n.clone());
            }
            _ => debug!(
                "global: ignoring cast {}",
                crate::dist::term::Truncated(msg, 200)
            ),
        }
    }

    /// `{new_nodes, From, Ops, NamesExt, Nodes, ExtraInfo}`: another session of our partition
    /// ended. Never applied while one of ours is past its exchange: the `resolved` we sent
    /// listed the nodes we knew, and at the end we tell the nodes we know of the peer. A node
    /// learned in between would hear of him (and say `in_sync` to him) while he never hears
    /// of it, and wait for his `in_sync` for ever. Our lock is what keeps our partition still
    /// meanwhile, but a session elsewhere that locked before it knew us needs no lock of ours.
    fn on_new_nodes(&mut self, ctx: &Ctx<'_>, msg: &Term) {
        let Some([_, _from, ops, _ext, nodes, _extra]) = msg.as_tuple() else {
            return;
        };
        self.apply_ops(ctx, ops.as_list().unwrap_or_default());
        let nodes = nodes.as_list().unwrap_or_default().to_vec();
        self.add_known(ctx, &nodes);
    }

    fn lock_set(&mut self, ctx: &Ctx<'_>, p: &Pid, is_set: bool, tag: Option<&Term>) {
        let n = node_of(p);
        let Some(s) = self.sessions.get_mut(&n) else {
            return;
        };
        if tag.is_some_and(|t| *t != s.my_tag) {
            return;
        }
        if !is_set {
            if s.exchanged {
                // He took back the `true` our exchange went on: the exchange is void.
                debug!(peer = %n, "global: the peer released its side after our exchange; restarting");
                self.restart(ctx, n);
                return;
            }
            // He does not hold his side (any more): give ours back, held or being taken (his
            // partition may be locked for another of his sessions, which needs ours: holding
            // on would stall both partitions until LOCK_WAIT). An idle session just notes it.
            s.his_lock_set = false;
            if !matches!(s.lock, Lock::Idle) {
                self.lock_failed(ctx, &n);
            }
            return;
        }
        s.his_lock_set = true;
        match s.lock {
            Lock::Held => self.lock_held(ctx, &n),
            Lock::Idle => self.start_lock(ctx, &n),
            Lock::Acquiring { .. } => {}
        }
    }
}

impl Process for Global {
    fn name(&self) -> String {
        NAME.into()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
        // Restarted after a crash: run sessions with the visible peers already connected.
        for (n, visible) in ctx.node().peers() {
            if visible {
                self.nodeup(ctx, Atom::from(n.as_str()));
            }
        }
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, from: &From, request: Term) -> Call {
        if let Some(k) = request.as_atom() {
            return match k {
                "get_known" => Call::Reply(list(
                    self.known.keys().map(|n| Term::Atom(n.clone())).collect(),
                )),
                "get_synced" => Call::Reply(list(
                    self.synced.iter().map(|n| Term::Atom(n.clone())).collect(),
                )),
                "get_protocol_version" => Call::Reply(Term::Int(VSN)),
                "get_names_ext" => Call::Reply(Term::nil()),
                "registered_names" => Call::Reply(list(self.names.keys().cloned().collect())),
                _ => unknown_call(request),
            };
        }
        match request.as_tuple() {
            Some([k, id]) if k.is_atom("set_lock") => {
                let ok = self.local_set_lock(ctx, id, from.pid.clone());
                Call::Reply(atom(if ok { "true" } else { "false" }))
            }
            Some([k, id]) if k.is_atom("del_lock") => {
                self.local_del_lock(ctx, id, &from.pid);
                Call::Reply(atom("true"))
            }
            Some([k, name, Term::Pid(pid), method]) if k.is_atom("register") => {
                self.insert_name(ctx, name.clone(), pid.clone(), method.clone());
                Call::Reply(atom("yes"))
            }
            Some([k, name, Term::Pid(pid), method, _]) if k.is_atom("register_ext") => {
                self.insert_name(ctx, name.clone(), pid.clone(), method.clone());
                Call::Reply(atom("yes"))
            }
            Some([k, name]) if k.is_atom("unregister") => {
                self.delete_name(ctx, name);
                Call::Reply(atom("ok"))
            }
            Some([k, name]) if k.is_atom("whereis") => Call::Reply(
                self.names
                    .get(name)
                    .map_or_else(|| atom("undefined"), |e| Term::Pid(e.pid.clone())),
            ),
            _ => unknown_call(request),
        }
    }

    fn handle_cast(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        self.on_cast(ctx, &msg);
        Flow::Continue
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some(ev) = NodeEvent::from_term(&msg) {
            match ev {
                NodeEvent::Up {
                    node,
                    visible: true,
                    ..
                } => self.nodeup(ctx, Atom::from(node.as_str())),
                NodeEvent::Down { node, .. } => self.nodedown(ctx, &Atom::from(node.as_str())),
                NodeEvent::Up { .. } => {}
            }
            return Flow::Continue;
        }
        let Some(els) = msg.as_tuple() else {
            return Flow::Continue;
        };
        match els {
            [k, Term::Atom(n), a, b] if k.is_atom("init_connect_ack") => {
                let Some(s) = self.sessions.get(n) else {
                    return Flow::Continue;
                };
                if s.my_tag != *a || s.his_tag.as_ref() != Some(b) {
                    plain(
                        ctx,
                        n,
                        tuple(vec![atom("cancel_connect"), Term::Atom(me(ctx)), b.clone()]),
                    );
                    self.restart(ctx, n.clone());
                }
            }
            [k, Term::Atom(n), t]
                if k.is_atom("cancel_connect")
                    && self.sessions.get(n).is_some_and(|s| s.my_tag == *t) =>
            {
                self.restart(ctx, n.clone());
            }
            [k, Term::Atom(n)]
                if k.is_atom("remove_connection")
                    && (self.known.contains_key(n) || self.sessions.contains_key(n)) =>
            {
                info!(peer = %n, "global: disconnecting as the peer asks, to prevent overlapping partitions");
                self.forget(ctx, n);
                if let Ok(peer) = NodeName::parse(n.as_str()) {
                    ctx.disconnect(&peer);
                }
            }
            [k, ..] if k.is_atom("lost_connection") => {}
            [reply_tag, reply] if reply_tag.as_tuple().is_some_and(|t| t.len() == 2) => {
                if let Some([Term::Ref(r), Term::Atom(nd)]) = reply_tag.as_tuple() {
                    if let Some((peer, id, called, attempt)) = self.calls.remove(r) {
                        let session = self
                            .sessions
                            .get(&peer)
                            .filter(|s| s.lock_id.as_ref() == Some(&id));
                        let current = session.is_some_and(|s| {
                            s.attempt == attempt
                                && matches!(&s.lock, Lock::Acquiring { waiting, .. } if waiting.contains(&called))
                        });
                        if current {
                            self.lock_reply(ctx, &peer, &called, reply.is_atom("true"));
                        } else if reply.is_atom("true")
                            && !session.is_some_and(|s| s.holds_or_asks(&called))
                        {
                            // A late grant for an abandoned attempt: give it back, unless the
                            // current attempt holds (or is asking for) that same lock there.
                            // Kept, it would block every other session for good; counted
                            // as the current attempt's, it would mix attempts (a stale
                            // refusal failing a new attempt, again and again).
                            self.del_lock_on(ctx, std::slice::from_ref(nd), &id);
                        }
                    }
                }
            }
            [k, Term::Ref(r), _, _, _] if k.is_atom("DOWN") => self.down(r),
            [k, Term::Atom(n), tag] if k.is_atom("retry_lock") => {
                let idle = self
                    .sessions
                    .get(n)
                    .is_some_and(|s| s.my_tag == *tag && matches!(s.lock, Lock::Idle));
                if idle {
                    self.start_lock(ctx, &n.clone());
                }
            }
            [k, Term::Atom(n), tag, Term::Int(attempt)] if k.is_atom("lock_wait") => {
                let stuck = self.sessions.get(n).is_some_and(|s| {
                    s.my_tag == *tag
                        && s.attempt as i64 == *attempt
                        && match s.lock {
                            Lock::Acquiring { .. } => true,
                            Lock::Held => !s.his_lock_set,
                            Lock::Idle => false,
                        }
                });
                if stuck {
                    debug!(peer = %n, "global: no lock_set from the peer in time; releasing and retrying");
                    self.lock_failed(ctx, &n.clone());
                }
            }
            [k, Term::Atom(n), tag]
                if k.is_atom("exchange_wait")
                    && self.sessions.get(n).is_some_and(|s| s.my_tag == *tag) =>
            {
                warn!(peer = %n, "global: no exchange from the peer in time; restarting the session");
                self.restart(ctx, n.clone());
            }
            [k, Term::Pid(p), is_set, _] if k.is_atom("lock_set") => {
                self.lock_set(ctx, p, is_set.is_atom("true"), None);
            }
            _ => {}
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        map(vec![
            (
                "known",
                list(self.known.keys().map(|n| Term::Atom(n.clone())).collect()),
            ),
            (
                "synced",
                list(self.synced.iter().map(|n| Term::Atom(n.clone())).collect()),
            ),
            (
                "names",
                list(
                    self.names
                        .iter()
                        .map(|(n, e)| tuple(vec![n.clone(), Term::Pid(e.pid.clone())]))
                        .collect(),
                ),
            ),
            (
                "locks",
                list(
                    self.locks
                        .iter()
                        .map(|(id, e)| {
                            let owners = e.owners.iter().map(|(p, _)| Term::Pid(p.clone()));
                            tuple(vec![id.clone(), e.req.clone(), list(owners.collect())])
                        })
                        .collect(),
                ),
            ),
            (
                "sessions",
                list(
                    self.sessions
                        .iter()
                        .map(|(n, s)| {
                            let lock = match &s.lock {
                                Lock::Idle => atom("idle"),
                                Lock::Acquiring { waiting, .. } => tuple(vec![
                                    atom("acquiring"),
                                    list(waiting.iter().map(|w| Term::Atom(w.clone())).collect()),
                                ]),
                                Lock::Held => atom("held"),
                            };
                            map(vec![
                                ("peer", Term::Atom(n.clone())),
                                ("lock", lock),
                                (
                                    "his_lock_set",
                                    atom(if s.his_lock_set { "true" } else { "false" }),
                                ),
                                (
                                    "exchanged",
                                    atom(if s.exchanged { "true" } else { "false" }),
                                ),
                                ("attempts", Term::Int(i64::from(s.attempts))),
                                ("failures", Term::Int(i64::from(s.failures))),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "locking",
                self.active
                    .as_ref()
                    .map_or(atom("none"), |a| Term::Atom(a.clone())),
            ),
            (
                "lock_queue",
                list(
                    self.lock_queue
                        .iter()
                        .map(|n| Term::Atom(n.clone()))
                        .collect(),
                ),
            ),
        ])
    }
}

// ---- the API for Rust callers ----

/// Why a global operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GlobalError {
    /// The local `global_name_server` did not answer.
    #[error("global_name_server: {0}")]
    Call(#[from] CallError),
    /// The lock could not be taken in time.
    #[error("could not take the global lock in time")]
    Busy,
}

fn local(node: &Node) -> Dest {
    Dest::name(NAME, node.name())
}

/// The pid registered globally as `name`, if any (a local lookup, as in OTP).
pub async fn whereis_name(node: &Node, name: &Term) -> Result<Option<Pid>, GlobalError> {
    let reply = node
        .call(
            &local(node),
            tuple(vec![atom("whereis"), name.clone()]),
            CALL_TIMEOUT,
        )
        .await?;
    Ok(reply.as_pid().cloned())
}

/// Every globally registered name.
pub async fn registered_names(node: &Node) -> Result<Vec<Term>, GlobalError> {
    let reply = node
        .call(&local(node), atom("registered_names"), CALL_TIMEOUT)
        .await?;
    Ok(reply.as_list().unwrap_or_default().to_vec())
}

/// Nodes our `global` is synced with.
pub async fn synced(node: &Node) -> Result<Vec<String>, GlobalError> {
    let reply = node
        .call(&local(node), atom("get_synced"), CALL_TIMEOUT)
        .await?;
    Ok(reply
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Term::as_atom)
        .map(str::to_owned)
        .collect())
}

/// Sends `msg` to the process registered globally as `name`; false if there is none.
pub async fn send(node: &Node, name: &Term, msg: Term) -> Result<bool, GlobalError> {
    match whereis_name(node, name).await? {
        Some(pid) => Ok(node.send(&Dest::Pid(pid), msg).is_ok()),
        None => Ok(false),
    }
}

/// Registers `pid` globally as `name` across every node our `global` knows; false if the name
/// is taken.
pub async fn register_name(node: &Node, name: Term, pid: Pid) -> Result<bool, GlobalError> {
    let req = tuple(vec![
        atom("register"),
        name.clone(),
        Term::Pid(pid),
        default_method(),
    ]);
    with_registrar_lock(node, |nodes_free| async move {
        let (mut registrar, nodes) = nodes_free;
        let taken = registrar
            .call(
                &local(node),
                tuple(vec![atom("whereis"), name]),
                CALL_TIMEOUT,
            )
            .await?
            .as_pid()
            .is_some();
        if taken {
            return Ok((registrar, false));
        }
        multi_call(&mut registrar, &nodes, &req).await;
        Ok((registrar, true))
    })
    .await
}

/// Removes a global name everywhere.
pub async fn unregister_name(node: &Node, name: Term) -> Result<(), GlobalError> {
    let req = tuple(vec![atom("unregister"), name]);
    with_registrar_lock(node, |(mut registrar, nodes)| async move {
        multi_call(&mut registrar, &nodes, &req).await;
        Ok((registrar, ()))
    })
    .await
}

/// Calls `req` on every node's `global_name_server` from `registrar`; a node that is gone
/// counts as done. Returns whether every answer was `true`/`yes`/`ok`.
async fn multi_call(registrar: &mut crate::dist::Mailbox, nodes: &[NodeName], req: &Term) -> bool {
    let mut all = true;
    for n in nodes {
        match registrar
            .call(&Dest::name(NAME, n), req.clone(), CALL_TIMEOUT)
            .await
        {
            Ok(r) => all &= r.is_atom("true") || r.is_atom("yes") || r.is_atom("ok"),
            Err(CallError::NodeDown | CallError::NoProc) => {}
            Err(CallError::Send(_)) => {}
            Err(_) => all = false,
        }
    }
    all
}

/// Takes `{global, Registrar}` on the boss then every known node (retrying with a random
/// pause on refusal), runs `work`, and releases it (the others first, the boss last).
async fn with_registrar_lock<T, F, Fut>(node: &Node, work: F) -> Result<T, GlobalError>
where
    F: FnOnce((crate::dist::Mailbox, Vec<NodeName>)) -> Fut,
    Fut: std::future::Future<Output = Result<(crate::dist::Mailbox, T), GlobalError>>,
{
    let mut registrar = node.spawn_mailbox();
    let id = tuple(vec![atom("global"), Term::Pid(registrar.pid())]);
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT * 3;
    loop {
        let known = registrar
            .call(&local(node), atom("get_known"), CALL_TIMEOUT)
            .await?;
        let mut nodes: Vec<NodeName> = vec![node.name().clone()];
        nodes.extend(
            known
                .as_list()
                .unwrap_or_default()
                .iter()
                .filter_map(Term::as_atom)
                .filter_map(|a| NodeName::parse(a).ok()),
        );
        let boss = nodes
            .iter()
            .max()
            .cloned()
            .unwrap_or_else(|| node.name().clone());
        let set = tuple(vec![atom("set_lock"), id.clone()]);
        let got = multi_call(&mut registrar, std::slice::from_ref(&boss), &set).await
            && multi_call(&mut registrar, &nodes, &set).await;
        let del = tuple(vec![atom("del_lock"), id.clone()]);
        let others: Vec<NodeName> = nodes.iter().filter(|n| **n != boss).cloned().collect();
        if got {
            let (mut registrar, out) = work((registrar, nodes)).await?;
            multi_call(&mut registrar, &others, &del).await;
            multi_call(&mut registrar, std::slice::from_ref(&boss), &del).await;
            return Ok(out);
        }
        multi_call(&mut registrar, &nodes, &del).await;
        if tokio::time::Instant::now() > deadline {
            return Err(GlobalError::Busy);
        }
        let pause = Duration::from_millis(100 + u64::from(rand::random::<u16>() % 400));
        tokio::time::sleep(pause).await;
    }
}

/// `global:set_lock({Resource, Requester}, [node() | nodes()], 0)` owned by `owner`: true if
/// every visible node granted it (where one refuses, the grants are given back).
pub async fn set_lock(owner: &mut crate::dist::Mailbox, id: Term) -> Result<bool, GlobalError> {
    let nodes = lock_nodes(owner.node());
    let granted = multi_call(owner, &nodes, &tuple(vec![atom("set_lock"), id.clone()])).await;
    if !granted {
        multi_call(owner, &nodes, &tuple(vec![atom("del_lock"), id])).await;
    }
    Ok(granted)
}

/// `global:del_lock/1` for a lock `owner` holds.
pub async fn del_lock(owner: &mut crate::dist::Mailbox, id: Term) -> Result<(), GlobalError> {
    let nodes = lock_nodes(owner.node());
    multi_call(owner, &nodes, &tuple(vec![atom("del_lock"), id])).await;
    Ok(())
}

fn lock_nodes(node: &Node) -> Vec<NodeName> {
    let mut nodes = vec![node.name().clone()];
    nodes.extend(node.nodes());
    nodes
}

#[cfg(test)]
mod tests {
    //! The session state machine driven by hand: our `Global` runs on node `a` (whose own
    //! `global` is off), and the peers' `global_name_server`s are plain mailboxes that record
    //! what we send them. Timers are not run; a test feeds the one it needs.

    use super::*;
    use crate::dist::node::{Mailbox, NodeConfig};
    use crate::dist::Cookie;
    use crate::net::memory::MemoryTransport;
    use std::sync::Arc;

    async fn node(net: &MemoryTransport, name: &str) -> Node {
        let mut cfg = NodeConfig::new(NodeName::parse(name).unwrap(), Cookie::new("mem"));
        cfg.transport = Arc::new(net.clone());
        cfg.global = false;
        Node::start(cfg).await.unwrap()
    }

    /// A peer node whose `global_name_server` is a mailbox.
    async fn peer(net: &MemoryTransport, name: &str) -> (Node, Mailbox) {
        let n = node(net, name).await;
        let inbox = n.register(NAME).unwrap();
        (n, inbox)
    }

    /// The next cast of `kind` the mailbox got (other messages are skipped).
    async fn next_cast(inbox: &mut Mailbox, kind: &str) -> Term {
        loop {
            let m = inbox
                .recv_timeout(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no {kind} cast"));
            if let Some([k, msg]) = m.as_tuple() {
                if k.is_atom("$gen_cast")
                    && msg
                        .as_tuple()
                        .and_then(<[Term]>::first)
                        .is_some_and(|t| t.is_atom(kind))
                {
                    return msg.clone();
                }
            }
        }
    }

    /// The first cast the mailbox got.
    async fn first_cast(inbox: &mut Mailbox) -> Term {
        loop {
            let m = inbox
                .recv_timeout(Duration::from_secs(5))
                .await
                .expect("a cast");
            if let Some([k, msg]) = m.as_tuple() {
                if k.is_atom("$gen_cast") {
                    return msg.clone();
                }
            }
        }
    }

    const HIS_TAG: i64 = -5;

    /// A session with `b` in which our side holds its lock and has said `lock_set true`.
    fn held(g: &mut Global, ctx: &Ctx<'_>, b: &Atom, his_locker: &Mailbox) -> Term {
        g.nodeup(ctx, b.clone());
        let init = tuple(vec![
            atom("init_connect"),
            tuple(vec![Term::Int(VSN), Term::Int(HIS_TAG)]),
            Term::Atom(b.clone()),
            tuple(vec![
                atom("locker"),
                atom("no_longer_a_pid"),
                map(vec![]),
                Term::Pid(his_locker.pid()),
            ]),
        ]);
        g.on_cast(ctx, &init);
        let s = &g.sessions[b];
        assert!(matches!(s.lock, Lock::Held) && s.sent_lock_set);
        assert_eq!(g.locks.len(), 1, "our partition (just us) is locked");
        s.my_tag.clone()
    }

    fn lock_set(locker: &Mailbox, is_set: bool, tag: &Term) -> Term {
        tuple(vec![
            atom("lock_set"),
            Term::Pid(locker.pid()),
            atom(if is_set { "true" } else { "false" }),
            Term::nil(),
            tag.clone(),
        ])
    }

    fn is_lock_set(msg: &Term, is_set: bool) -> bool {
        matches!(msg.as_tuple(), Some([_, _, v, _, t])
            if v.is_atom(if is_set { "true" } else { "false" }) && *t == Term::Int(HIS_TAG))
    }

    #[tokio::test]
    async fn a_lock_given_up_after_saying_lock_set_true_tells_the_peer_false() {
        let net = MemoryTransport::new();
        let a = node(&net, "a@mem").await;
        let (_b, mut b_gns) = peer(&net, "b@mem").await;
        let mb = a.spawn_mailbox();
        let ctx = Ctx::for_test(&mb);
        let b = Atom::from("b@mem");
        let mut g = Global::default();
        let my_tag = held(&mut g, &ctx, &b, &b_gns);
        assert!(is_lock_set(&next_cast(&mut b_gns, "lock_set").await, true));
        // His `lock_set` does not come in time: the attempt is given up...
        let attempt = Term::Int(g.sessions[&b].attempt as i64);
        let timeout = tuple(vec![
            atom("lock_wait"),
            Term::Atom(b.clone()),
            my_tag,
            attempt,
        ]);
        g.handle_info(&mut Ctx::for_test(&mb), timeout);
        assert!(matches!(g.sessions[&b].lock, Lock::Idle));
        assert!(g.locks.is_empty() && g.active.is_none());
        // ...and he hears so: believing we still held, he would exchange and keep his own
        // partition locked waiting for our exchange.
        assert!(is_lock_set(&next_cast(&mut b_gns, "lock_set").await, false));
    }

    #[tokio::test]
    async fn a_lock_set_false_after_our_exchange_restarts_the_session() {
        let net = MemoryTransport::new();
        let a = node(&net, "a@mem").await;
        let (_b, mut b_gns) = peer(&net, "b@mem").await;
        let mb = a.spawn_mailbox();
        let ctx = Ctx::for_test(&mb);
        let b = Atom::from("b@mem");
        let mut g = Global::default();
        let my_tag = held(&mut g, &ctx, &b, &b_gns);
        g.on_cast(&ctx, &lock_set(&b_gns, true, &my_tag));
        assert!(g.sessions[&b].exchanged);
        next_cast(&mut b_gns, "exchange").await;
        // He takes his `true` back (he gave his lock up before he had ours): our exchange
        // went on a lock that is gone. Going on from it would resolve and finish the session
        // without his partition locked, alongside other sessions.
        g.on_cast(&ctx, &lock_set(&b_gns, false, &my_tag));
        let s = &g.sessions[&b];
        assert_ne!(s.my_tag, my_tag, "a new session");
        assert!(!s.exchanged && s.his_tag.is_none());
        assert!(g.locks.is_empty() && g.active.is_none());
        let init = next_cast(&mut b_gns, "init_connect").await;
        assert_eq!(
            init.as_tuple().unwrap()[1].as_tuple().unwrap()[1],
            g.sessions[&b].my_tag
        );
    }

    #[tokio::test]
    async fn nodes_learned_after_our_exchange_are_not_told_of_the_peer_until_the_session_ends() {
        let net = MemoryTransport::new();
        let a = node(&net, "a@mem").await;
        let (_b, mut b_gns) = peer(&net, "b@mem").await;
        let (_c, mut c_gns) = peer(&net, "c@mem").await;
        let mb = a.spawn_mailbox();
        let ctx = Ctx::for_test(&mb);
        let (b, c) = (Atom::from("b@mem"), Atom::from("c@mem"));
        let mut g = Global::default();
        let my_tag = held(&mut g, &ctx, &b, &b_gns);
        g.on_cast(&ctx, &lock_set(&b_gns, true, &my_tag));
        assert!(g.sessions[&b].exchanged);
        // Another session of the partition ends meanwhile and tells us of c: it waits.
        let news = tuple(vec![
            atom("new_nodes"),
            atom("x@mem"),
            Term::nil(),
            Term::nil(),
            list(vec![tuple(vec![Term::Atom(c.clone()), Term::Int(VSN)])]),
            Term::nil(),
        ]);
        g.on_cast(&ctx, &news);
        assert!(!g.known.contains_key(&c));
        // The session goes on: our `resolved` lists the nodes we know (not c)...
        let his_exchange = tuple(vec![
            atom("exchange"),
            Term::Atom(b.clone()),
            Term::nil(),
            Term::nil(),
            my_tag.clone(),
        ]);
        g.on_cast(&ctx, &his_exchange);
        let resolved = next_cast(&mut b_gns, "resolved").await;
        assert_eq!(resolved.as_tuple().unwrap()[3], Term::nil());
        // ...so at the end c must not be told of b (b would never hear of c, and c would wait
        // for b's `in_sync` for ever). Then c is learned: we say `in_sync` to it.
        let his_resolved = tuple(vec![
            atom("resolved"),
            Term::Atom(b.clone()),
            Term::nil(),
            Term::nil(),
            atom("unused"),
            Term::nil(),
            my_tag,
        ]);
        g.on_cast(&ctx, &his_resolved);
        assert!(g.sessions.is_empty() && g.locks.is_empty());
        assert!(g.synced.contains(&b) && g.known.contains_key(&c));
        let first = first_cast(&mut c_gns).await;
        assert!(first.as_tuple().unwrap()[0].is_atom("in_sync"), "{first}");
    }
}
