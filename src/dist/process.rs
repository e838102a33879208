//! The process behaviour: what `gen_server` is to Erlang. A [`Process`] implements handlers;
//! the runner here owns the mailbox and does everything every process must do the same way:
//! - `{'$gen_call', From, Req}` goes to [`Process::handle_call`] and its answer goes back to
//!   `From` with the tag exactly as received (an `[alias|Ref]` tag through the alias);
//! - `{'$gen_cast', Msg}` goes to [`Process::handle_cast`], everything else to
//!   [`Process::handle_info`];
//! - an unknown call is answered at once with `{error, {unknown_call, Req}}` (the default
//!   `handle_call`), so no caller ever waits for its timeout because it was not understood;
//! - OTP's `sys` protocol (`{system, From, Req}`): `get_state`, `get_status` (in
//!   gen_server's exact shape, which observer and Elixir pattern-match), `suspend`/`resume`
//!   (other messages wait meanwhile), `{terminate, Reason}` under the process's
//!   [`StopPolicy`] (the `ok` reply goes out before the exit, as `proc_lib:stop` needs),
//!   `{debug, …}`, and `{error, {unknown_system_msg, Req}}` for the rest.
//!
//! Handlers are synchronous on purpose: a shared service cannot await a peer if it cannot
//! await at all. Work that must wait runs in a task ([`Ctx::spawn`]) that posts its result
//! back to the mailbox ([`Ctx::me`]).
//!
//! [`Subscribers`] is the push fan-out that services share: a subscriber far behind (its
//! connection's queue is full) is marked lagging and logged once, skipped meanwhile, and sent a
//! resync when it catches up.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::node::{parse_gen_call, Dest, From, Mailbox, Node, SendError};
use super::proto::term::{atom, list, tuple, Atom, Pid, Ref, Term};
use super::NodeName;

/// What a call handler decided.
#[derive(Debug)]
pub enum Call {
    /// Reply now.
    Reply(Term),
    /// Reply later with [`Ctx::reply`] (the handler kept `From`).
    NoReply,
    /// Reply (if given), then stop with `reason`.
    Stop {
        /// The exit reason.
        reason: Term,
        /// The reply to send first.
        reply: Option<Term>,
    },
}

/// Whether the process goes on after a cast or message.
#[derive(Debug)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Stop with this reason.
    Stop(Term),
}

/// What `sys:terminate` and `GenServer.stop` may do to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPolicy {
    /// Stop as asked (`ok`, then exit with the reason).
    Allow,
    /// Refuse with `{error, not_allowed}`: the node needs this process (its `net_kernel`).
    Refuse,
}

/// The answer to an unknown call: `{error, {unknown_call, Request}}`.
pub fn unknown_call(request: Term) -> Call {
    Call::Reply(tuple(vec![
        atom("error"),
        tuple(vec![atom("unknown_call"), request]),
    ]))
}

/// A process behaviour. Every handler runs on the process's own task and must not block.
pub trait Process: Send + 'static {
    /// A short name for logs and `sys:get_status` (`Status for generic server NAME`).
    fn name(&self) -> String;

    /// Runs once before the first message.
    fn init(&mut self, _ctx: &mut Ctx<'_>) {}

    /// A `gen_server:call`. The default answers `{error, {unknown_call, Req}}`.
    fn handle_call(&mut self, _ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        unknown_call(request)
    }

    /// A `gen_server:cast`.
    fn handle_cast(&mut self, _ctx: &mut Ctx<'_>, _msg: Term) -> Flow {
        Flow::Continue
    }

    /// Any other message (including `DOWN`, `EXIT` when trapping, node events).
    fn handle_info(&mut self, _ctx: &mut Ctx<'_>, _msg: Term) -> Flow {
        Flow::Continue
    }

    /// Runs once when the process stops for any reason but being killed.
    fn terminate(&mut self, _ctx: &mut Ctx<'_>, _reason: &Term) {}

    /// The state `sys:get_state` returns, as a readable term.
    fn state(&self) -> Term;

    /// What `sys:terminate` may do.
    fn stop_policy(&self) -> StopPolicy {
        StopPolicy::Allow
    }
}

/// What handlers can do: send, reply, monitor, and start work that answers later.
pub struct Ctx<'a> {
    mb: &'a Mailbox,
}

#[cfg(test)]
impl<'a> Ctx<'a> {
    /// A context over `mb`, to drive a process's handlers by hand in unit tests.
    pub(crate) fn for_test(mb: &'a Mailbox) -> Ctx<'a> {
        Ctx { mb }
    }
}

impl Ctx<'_> {
    /// The node.
    pub fn node(&self) -> &Node {
        self.mb.node()
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.mb.pid()
    }

    /// Sends without waiting.
    pub fn send(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.mb.send(to, msg)
    }

    /// Sends without connecting (dropped if the node is not connected).
    pub fn send_noconnect(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.mb.send_noconnect(to, msg)
    }

    /// Ends the connection to `peer` (both sides see nodedown).
    pub fn disconnect(&self, peer: &NodeName) -> bool {
        self.mb.node().disconnect(peer)
    }

    /// Replies to a call that returned [`Call::NoReply`].
    pub fn reply(&self, from: &From, reply: Term) {
        if let Err(e) = self.mb.node().reply(from, reply) {
            debug!("reply to {:?} not sent: {e}", from.pid);
        }
    }

    /// Monitors `target`.
    pub fn monitor(&self, target: &Dest) -> Result<Ref, SendError> {
        self.mb.monitor(target)
    }

    /// Removes a monitor.
    pub fn demonitor(&self, reference: &Ref) {
        self.mb.demonitor(reference)
    }

    /// Links with `other`.
    pub fn link(&self, other: &Pid) -> Result<(), SendError> {
        self.mb.link(other)
    }

    /// Exit signals become `{'EXIT', From, Reason}` messages.
    pub fn trap_exit(&self, on: bool) {
        self.mb.trap_exit(on)
    }

    /// Node events arrive as `{nodeup, …}` / `{nodedown, …}` messages.
    pub fn monitor_nodes(&self, on: bool) {
        self.mb.monitor_nodes(on)
    }

    /// A handle that posts messages to this process from anywhere.
    pub fn me(&self) -> Poster {
        Poster {
            node: self.mb.node().clone(),
            pid: self.mb.pid(),
        }
    }

    /// Runs `work` on the node's tracker (shutdown waits for it, bounded).
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.mb.node().spawn_task(work);
    }

    /// Sends `msg` to this process after `delay`.
    pub fn send_after(&self, delay: Duration, msg: Term) {
        let me = self.me();
        let node = self.mb.node().clone();
        self.spawn(async move {
            tokio::select! {
                _ = node.stopped() => {}
                _ = tokio::time::sleep(delay) => me.post(msg),
            }
        });
    }
}

/// Posts messages to one process (from a background task, a timer…).
#[derive(Clone)]
pub struct Poster {
    node: Node,
    pid: Pid,
}

impl Poster {
    /// Puts `msg` in the process's mailbox.
    pub fn post(&self, msg: Term) {
        let _ = self.node.send(&Dest::Pid(self.pid.clone()), msg);
    }

    /// The process's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }
}

/// A started process.
#[derive(Debug, Clone)]
pub struct Spawned {
    /// Its pid.
    pub pid: Pid,
}

/// Why a process could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// A name is taken.
    #[error("the name {0} is already registered")]
    NameTaken(String),
}

impl Node {
    /// Starts `process` registered under `names` (none for an anonymous process), on the
    /// node's tracker so shutdown waits for it.
    pub fn spawn_process<P: Process>(
        &self,
        names: &[&str],
        process: P,
    ) -> Result<Spawned, SpawnError> {
        self.start_process(names, process).map(|(s, _)| s)
    }

    /// Keeps a process made by `make` running under `names`: whenever it ends (killed,
    /// stopped, crashed) while the node runs, a fresh one is started after a short pause, as a
    /// supervisor restarts a permanent child.
    pub fn spawn_permanent<P, F>(&self, names: &[&str], make: F)
    where
        P: Process,
        F: Fn() -> P + Send + 'static,
    {
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.spawn_task(keep_running(self.clone(), names, make, None));
    }

    /// [`Node::spawn_permanent`], with the first start made now: its failure (a name taken)
    /// is returned instead of retried, so a caller that starts a service on demand hears
    /// that it could not.
    pub fn start_permanent<P, F>(&self, names: &[&str], make: F) -> Result<Spawned, SpawnError>
    where
        P: Process,
        F: Fn() -> P + Send + 'static,
    {
        let (spawned, task) = self.start_process(names, make())?;
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.spawn_task(keep_running(self.clone(), names, make, Some(task)));
        Ok(spawned)
    }

    fn start_process<P: Process>(
        &self,
        names: &[&str],
        process: P,
    ) -> Result<(Spawned, tokio::task::JoinHandle<()>), SpawnError> {
        let mb = match names.first() {
            Some(first) => self
                .register(first)
                .ok_or_else(|| SpawnError::NameTaken((*first).to_owned()))?,
            None => self.spawn_mailbox(),
        };
        for n in names.iter().skip(1) {
            if !mb.register(n) {
                return Err(SpawnError::NameTaken((*n).to_owned()));
            }
        }
        let pid = mb.pid();
        let registered = names.first().map(|s| (*s).to_owned());
        let task = self.spawn_task(run(mb, process, registered));
        Ok((Spawned { pid }, task))
    }
}

/// Pause before restarting a permanent process.
const RESTART_PAUSE: Duration = Duration::from_millis(100);

/// The supervision loop of a permanent process; `running` is its first run if it was
/// started already.
async fn keep_running<P, F>(
    node: Node,
    names: Vec<String>,
    make: F,
    mut running: Option<tokio::task::JoinHandle<()>>,
) where
    P: Process,
    F: Fn() -> P + Send + 'static,
{
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut pause = RESTART_PAUSE;
    loop {
        let task = match running.take() {
            Some(t) => Ok(t),
            None => node.start_process(&names, make()).map(|(_, t)| t),
        };
        match task {
            Ok(task) => {
                let _ = task.await;
                pause = RESTART_PAUSE;
            }
            Err(e) => {
                warn!("cannot start {names:?}: {e}");
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        if node.is_stopping() {
            return;
        }
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        info!("restarting {}", names.first().copied().unwrap_or("process"));
    }
}

enum Step {
    Continue,
    Stop(Term),
}

async fn run<P: Process>(mut mb: Mailbox, mut p: P, registered: Option<String>) {
    let node = mb.node().clone();
    p.init(&mut Ctx { mb: &mb });
    let mut suspended = false;
    let mut deferred: VecDeque<Term> = VecDeque::new();
    let reason = loop {
        let next = if suspended {
            None
        } else {
            deferred.pop_front()
        };
        let msg = match next {
            Some(m) => m,
            None => {
                let got = tokio::select! {
                    m = mb.recv() => m,
                    _ = node.stopped() => None,
                };
                match got {
                    Some(m) => m,
                    // Killed, or the node is stopping: no terminate for a kill, as in Erlang.
                    None if mb.is_ended() => return,
                    None => break atom("shutdown"),
                }
            }
        };
        if let Some((from, req)) = system_message(&msg) {
            match system(
                &mut p,
                &mb,
                &from,
                req,
                &mut suspended,
                registered.as_deref(),
            ) {
                Step::Continue => continue,
                Step::Stop(r) => break r,
            }
        }
        if suspended {
            deferred.push_back(msg);
            continue;
        }
        let step = if let Some((from, request)) = parse_gen_call(&msg) {
            let request = request.clone();
            match p.handle_call(&mut Ctx { mb: &mb }, &from, request) {
                Call::Reply(r) => {
                    Ctx { mb: &mb }.reply(&from, r);
                    Step::Continue
                }
                Call::NoReply => Step::Continue,
                Call::Stop { reason, reply } => {
                    if let Some(r) = reply {
                        Ctx { mb: &mb }.reply(&from, r);
                    }
                    Step::Stop(reason)
                }
            }
        } else if let Some(cast) = gen_cast(&msg) {
            flow(p.handle_cast(&mut Ctx { mb: &mb }, cast))
        } else {
            flow(p.handle_info(&mut Ctx { mb: &mb }, msg))
        };
        if let Step::Stop(r) = step {
            break r;
        }
    };
    p.terminate(&mut Ctx { mb: &mb }, &reason);
    if !reason.is_atom("normal") && !reason.is_atom("shutdown") {
        warn!(process = %p.name(), reason = %super::proto::term::Truncated(&reason, 200), "process stopped");
    } else {
        debug!(process = %p.name(), "process stopped");
    }
    mb.exit(reason);
}

fn flow(f: Flow) -> Step {
    match f {
        Flow::Continue => Step::Continue,
        Flow::Stop(r) => Step::Stop(r),
    }
}

fn gen_cast(msg: &Term) -> Option<Term> {
    match msg.as_tuple()? {
        [kind, m] if kind.is_atom("$gen_cast") => Some(m.clone()),
        _ => None,
    }
}

fn system_message(msg: &Term) -> Option<(From, &Term)> {
    let [kind, from, req] = msg.as_tuple()? else {
        return None;
    };
    if !kind.is_atom("system") {
        return None;
    }
    match from.as_tuple()? {
        [Term::Pid(pid), tag] => Some((
            From {
                pid: pid.clone(),
                tag: tag.clone(),
            },
            req,
        )),
        _ => None,
    }
}

fn charlist(s: &str) -> Term {
    list(s.chars().map(|c| Term::Int(i64::from(c as u32))).collect())
}

fn status_term<P: Process>(p: &P, mb: &Mailbox, suspended: bool, registered: Option<&str>) -> Term {
    let me = mb.pid();
    let sys_state = atom(if suspended { "suspended" } else { "running" });
    let who = registered.map_or_else(|| format!("{me:?}"), str::to_owned);
    tuple(vec![
        atom("status"),
        Term::Pid(me.clone()),
        tuple(vec![atom("module"), atom("gen_server")]),
        list(vec![
            list(vec![tuple(vec![
                atom("$initial_call"),
                tuple(vec![atom(&p.name()), atom("init"), Term::Int(1)]),
            ])]),
            sys_state.clone(),
            Term::Pid(me.clone()),
            Term::nil(),
            list(vec![
                tuple(vec![
                    atom("header"),
                    charlist(&format!("Status for generic server {who}")),
                ]),
                tuple(vec![
                    atom("data"),
                    list(vec![
                        tuple(vec![charlist("Status"), sys_state]),
                        tuple(vec![charlist("Parent"), Term::Pid(me)]),
                        tuple(vec![charlist("Logged events"), Term::nil()]),
                    ]),
                ]),
                tuple(vec![
                    atom("data"),
                    list(vec![tuple(vec![charlist("State"), p.state()])]),
                ]),
            ]),
        ]),
    ])
}

fn error(what: Term) -> Term {
    tuple(vec![atom("error"), what])
}

fn system<P: Process>(
    p: &mut P,
    mb: &Mailbox,
    from: &From,
    req: &Term,
    suspended: &mut bool,
    registered: Option<&str>,
) -> Step {
    let ctx = Ctx { mb };
    let reply = |r: Term| ctx.reply(from, r);
    if let Some(kind) = req.as_atom() {
        match kind {
            "get_state" => reply(p.state()),
            "get_status" => reply(status_term(p, mb, *suspended, registered)),
            "suspend" => {
                *suspended = true;
                reply(atom("ok"));
            }
            "resume" => {
                *suspended = false;
                reply(atom("ok"));
            }
            _ => reply(error(tuple(vec![atom("unknown_system_msg"), req.clone()]))),
        }
        return Step::Continue;
    }
    match req.as_tuple() {
        Some([kind, reason]) if kind.is_atom("terminate") => match p.stop_policy() {
            StopPolicy::Allow => {
                // The reply must precede the exit signals on the wire: proc_lib:stop waits
                // for `ok` first, then for DOWN with this exact reason.
                reply(atom("ok"));
                info!(process = %p.name(), reason = %reason, "stopped by a system message");
                Step::Stop(reason.clone())
            }
            StopPolicy::Refuse => {
                reply(error(atom("not_allowed")));
                Step::Continue
            }
        },
        Some([kind, _]) if kind.is_atom("replace_state") => {
            // The argument is an Erlang fun, which we cannot run.
            reply(error(tuple(vec![
                atom("callback_failed"),
                tuple(vec![atom(&p.name()), atom("system_replace_state")]),
                error(atom("not_supported")),
            ])));
            Step::Continue
        }
        Some([kind, item]) if kind.is_atom("debug") => {
            reply(debug_reply(item));
            Step::Continue
        }
        Some([kind, ..]) if kind.is_atom("change_code") && *suspended => {
            reply(atom("ok"));
            Step::Continue
        }
        _ => {
            reply(error(tuple(vec![atom("unknown_system_msg"), req.clone()])));
            Step::Continue
        }
    }
}

/// `sys` debug options: we keep no log or statistics, and say so in OTP's terms.
fn debug_reply(item: &Term) -> Term {
    if item.is_atom("no_debug") {
        return atom("ok");
    }
    match item.as_tuple() {
        Some([k, v]) if k.is_atom("log") && v.is_atom("get") => {
            tuple(vec![atom("ok"), Term::nil()])
        }
        Some([k, v]) if k.is_atom("statistics") && v.is_atom("get") => {
            tuple(vec![atom("ok"), atom("no_statistics")])
        }
        Some([k, _])
            if [
                "log",
                "trace",
                "statistics",
                "log_to_file",
                "install",
                "remove",
            ]
            .iter()
            .any(|n| k.is_atom(n)) =>
        {
            atom("ok")
        }
        _ => atom("unknown_debug"),
    }
}

/// Push fan-out to subscriber processes, for services like the beacon and `cluster_events`.
/// - Every subscriber is monitored, so one that dies, or whose node goes down or never
///   answers, is dropped when its `DOWN` arrives (feed messages to [`Subscribers::on_down`]).
/// - Subscribers are capped in all and per node, so a peer cannot make every event cost the
///   service time per subscriber.
/// - A push never waits and never dials: a subscriber whose connection is far behind is
///   marked lagging (logged once), skipped, and sent [`Subscribers::catch_up`]'s resync once
///   its queue has room again.
pub struct Subscribers {
    subs: HashMap<Pid, Sub>,
    by_ref: HashMap<Ref, Pid>,
    per_node: HashMap<Atom, usize>,
    max: usize,
    max_per_node: usize,
}

struct Sub {
    lagging: bool,
    monitor: Ref,
}

/// Default cap on subscribers of one service.
pub const MAX_SUBSCRIBERS: usize = 10_000;
/// Default cap on subscribers of one service from one node.
pub const MAX_SUBSCRIBERS_PER_NODE: usize = 1_024;

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The service has as many subscribers as it takes.
    #[error("too many subscribers ({0})")]
    TooMany(usize),
    /// The subscriber's node has as many subscribers as one node may have.
    #[error("too many subscribers from node {node} ({max})")]
    TooManyFromNode {
        /// The node.
        node: String,
        /// The cap.
        max: usize,
    },
    /// The subscriber could not be monitored.
    #[error("cannot monitor the subscriber: {0}")]
    Monitor(String),
}

impl SubscribeError {
    /// The error as the term a caller gets: `{error, Reason}`.
    pub fn to_term(&self) -> Term {
        let reason = match self {
            SubscribeError::TooMany(_) | SubscribeError::TooManyFromNode { .. } => {
                atom("too_many_subscribers")
            }
            SubscribeError::Monitor(_) => atom("noproc"),
        };
        tuple(vec![atom("error"), reason])
    }
}

/// A subscriber's node.
fn node_of(pid: &Pid) -> Option<NodeName> {
    NodeName::parse(pid.node.as_str()).ok()
}

impl Default for Subscribers {
    fn default() -> Subscribers {
        Subscribers::with_limits(MAX_SUBSCRIBERS, MAX_SUBSCRIBERS_PER_NODE)
    }
}

impl Subscribers {
    /// No subscribers, with the default caps.
    pub fn new() -> Subscribers {
        Subscribers::default()
    }

    /// No subscribers, with the given caps.
    pub fn with_limits(max: usize, max_per_node: usize) -> Subscribers {
        Subscribers {
            subs: HashMap::new(),
            by_ref: HashMap::new(),
            per_node: HashMap::new(),
            max: max.max(1),
            max_per_node: max_per_node.max(1),
        }
    }

    /// Adds and monitors a subscriber (idempotent), within the caps.
    pub fn add(&mut self, ctx: &Ctx<'_>, pid: Pid) -> Result<(), SubscribeError> {
        if self.subs.contains_key(&pid) {
            return Ok(());
        }
        if self.subs.len() >= self.max {
            return Err(SubscribeError::TooMany(self.max));
        }
        let on_node = self.per_node.get(&pid.node).copied().unwrap_or(0);
        if on_node >= self.max_per_node {
            return Err(SubscribeError::TooManyFromNode {
                node: pid.node.as_str().to_owned(),
                max: self.max_per_node,
            });
        }
        let monitor = ctx
            .monitor(&Dest::Pid(pid.clone()))
            .map_err(|e| SubscribeError::Monitor(e.to_string()))?;
        self.by_ref.insert(monitor.clone(), pid.clone());
        *self.per_node.entry(pid.node.clone()).or_insert(0) += 1;
        self.subs.insert(
            pid,
            Sub {
                lagging: false,
                monitor,
            },
        );
        Ok(())
    }

    fn forget(&mut self, pid: &Pid) -> Option<Sub> {
        let sub = self.subs.remove(pid)?;
        self.by_ref.remove(&sub.monitor);
        if let Some(n) = self.per_node.get_mut(&pid.node) {
            *n -= 1;
            if *n == 0 {
                self.per_node.remove(&pid.node);
            }
        }
        Some(sub)
    }

    /// Removes a subscriber; true if it was there.
    pub fn remove(&mut self, ctx: &Ctx<'_>, pid: &Pid) -> bool {
        match self.forget(pid) {
            Some(sub) => {
                ctx.demonitor(&sub.monitor);
                true
            }
            None => false,
        }
    }

    /// Takes a `{'DOWN', Ref, process, _, _}` for one of our monitors: the subscriber is gone.
    /// Returns whether `msg` was such a message.
    pub fn on_down(&mut self, msg: &Term) -> bool {
        let Some([k, Term::Ref(r), _, _, _]) = msg.as_tuple() else {
            return false;
        };
        if !k.is_atom("DOWN") {
            return false;
        }
        match self.by_ref.get(r).cloned() {
            Some(pid) => {
                self.forget(&pid);
                true
            }
            None => false,
        }
    }

    /// Drops every subscriber on `node` (it went down; their monitors fire anyway).
    pub fn remove_node(&mut self, node: &str) {
        let gone: Vec<Pid> = self
            .subs
            .keys()
            .filter(|p| p.node.as_str() == node)
            .cloned()
            .collect();
        for p in gone {
            self.forget(&p);
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The subscribers.
    pub fn pids(&self) -> impl Iterator<Item = &Pid> {
        self.subs.keys()
    }

    /// Pushes `msg` to every subscriber that is keeping up. Lagging subscribers that have
    /// caught up get `resync` first (and then `msg`). Subscribers that are gone are dropped.
    pub fn push(&mut self, ctx: &Ctx<'_>, msg: &Term, resync: &Term) {
        self.push_where(ctx, msg, resync, |_| true)
    }

    /// [`Subscribers::push`] to the subscribers `wants` picks.
    pub fn push_where(
        &mut self,
        ctx: &Ctx<'_>,
        msg: &Term,
        resync: &Term,
        wants: impl Fn(&Pid) -> bool,
    ) {
        let node = ctx.node().clone();
        let mut gone = Vec::new();
        for (pid, sub) in self.subs.iter_mut() {
            if !wants(pid) {
                continue;
            }
            let remote = node_of(pid).filter(|n| n != node.name());
            if sub.lagging {
                if remote.as_ref().is_some_and(|n| node.is_busy(n)) {
                    continue;
                }
                sub.lagging = false;
                info!(subscriber = ?pid, "subscriber caught up; resyncing it");
                if ctx
                    .send_noconnect(&Dest::Pid(pid.clone()), resync.clone())
                    .is_err()
                {
                    sub.lagging = true;
                    continue;
                }
            }
            match ctx.send_noconnect(&Dest::Pid(pid.clone()), msg.clone()) {
                Ok(()) => {}
                Err(SendError::Busy(_)) => {
                    sub.lagging = true;
                    warn!(subscriber = ?pid, "subscriber is not keeping up; skipping it until it catches up");
                }
                Err(e) => {
                    debug!(subscriber = ?pid, "dropping subscriber: {e}");
                    gone.push(pid.clone());
                }
            }
        }
        for p in gone {
            if let Some(sub) = self.forget(&p) {
                ctx.demonitor(&sub.monitor);
            }
        }
    }

    /// Sends `resync` to lagging subscribers that have caught up (call it from a timer so a
    /// quiet service still resyncs them).
    pub fn catch_up(&mut self, ctx: &Ctx<'_>, resync: &Term) {
        let node = ctx.node().clone();
        for (pid, sub) in self.subs.iter_mut().filter(|(_, s)| s.lagging) {
            let busy = node_of(pid)
                .filter(|n| n != node.name())
                .is_some_and(|n| node.is_busy(&n));
            if !busy
                && ctx
                    .send_noconnect(&Dest::Pid(pid.clone()), resync.clone())
                    .is_ok()
            {
                sub.lagging = false;
                info!(subscriber = ?pid, "subscriber caught up; resynced it");
            }
        }
    }

    /// Whether any subscriber is lagging.
    pub fn any_lagging(&self) -> bool {
        self.subs.values().any(|s| s.lagging)
    }
}
