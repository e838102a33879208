//! Creates: placement among the nodes that host a type, the create this node is home to
//! (now, or by asking the chosen node with a deadline), its outcome, and the retries when the
//! chosen node's view lags.

use tokio::time::Instant;
use tracing::warn;

use crate::dist::node::{Dest, From};
use crate::dist::process::Ctx;
use crate::dist::term::{atom, tuple, Atom, Pid, Ref, Term};

use super::super::state::{place, Candidate, Entry, Key, Selector};
use super::super::wire::Peer;
use super::{create_reply, error, Pending, Retry, Server, CREATE_TIMEOUT, MAX_ATTEMPTS};

impl Server {
    /// Every node running `cluster_server` that this one knows, itself included.
    pub(super) fn servers(&self) -> Vec<Atom> {
        let mut v: Vec<Atom> = self.peers.keys().cloned().collect();
        v.push(self.me.clone());
        v
    }

    pub(super) fn candidates(&self, ty: &Atom) -> Vec<Candidate> {
        let t = self.table();
        let load = |node: &Atom, extra: u64| {
            t.hosted_on(node.as_str()) as u64
                + self.in_flight.get(node).copied().unwrap_or(0)
                + extra
        };
        let mut out: Vec<Candidate> = Vec::new();
        let mut push = |node: &Atom, extra: u64| {
            if !out.iter().any(|c| &c.node == node) {
                out.push(Candidate {
                    node: node.clone(),
                    load: load(node, extra),
                });
            }
        };
        let mine = self.info();
        if mine.hosts.contains(ty) {
            push(&self.me, mine.load);
        }
        for (node, p) in &self.peers {
            if p.info.hosts.contains(ty) {
                push(node, p.info.load);
            }
        }
        for (fty, pid) in self
            .beam_factories
            .iter()
            .flat_map(|(t, v)| v.iter().map(move |(p, _)| (t, p)))
            .chain(
                self.peers
                    .values()
                    .flat_map(|p| p.info.factories.iter().map(|(t, p)| (t, p))),
            )
        {
            if fty == ty {
                push(&pid.node, 0);
            }
        }
        out
    }

    pub(super) fn beam_factory(&self, ty: &Atom, node: &Atom) -> Option<Pid> {
        self.beam_factories
            .get(ty)
            .into_iter()
            .flatten()
            .map(|(p, _)| p)
            .chain(
                self.peers
                    .values()
                    .flat_map(|p| p.info.factories.iter())
                    .filter(|(t, _)| t == ty)
                    .map(|(_, p)| p),
            )
            .find(|p| &p.node == node)
            .cloned()
    }

    /// Creates `key` (this node is its home): now, if this node is chosen; otherwise by asking
    /// the chosen node, with a deadline.
    pub(super) fn create(
        &mut self,
        ctx: &Ctx<'_>,
        key: Key,
        selector: Selector,
        waiters: Vec<From>,
        failover: Option<Atom>,
        attempts: u8,
    ) {
        let existing = self.table().get(&key).cloned();
        if let Some(e) = existing {
            self.answer(ctx, &key, waiters, Ok(e), failover.as_ref());
            return;
        }
        if let Some(p) = self.pending.get_mut(&key) {
            p.waiters.extend(waiters);
            if failover.is_some() && p.failover.is_none() {
                p.failover = failover;
            }
            return;
        }
        let cands = self.candidates(&key.ty);
        let Some(target) = place(&key, &selector, &cands, rand::random()).map(|c| c.node.clone())
        else {
            let why = match &selector {
                Selector::Node(n) => tuple(vec![
                    atom("not_hosted"),
                    Term::Atom(key.ty.clone()),
                    Term::Atom(n.clone()),
                ]),
                _ => tuple(vec![atom("no_host"), Term::Atom(key.ty.clone())]),
            };
            self.answer(ctx, &key, waiters, Err(why), failover.as_ref());
            return;
        };
        if target == self.me {
            let result = self.create_here(ctx, &key);
            self.answer(ctx, &key, waiters, result, failover.as_ref());
            return;
        }
        let tag = ctx.node().make_ref();
        if self
            .peers
            .get(&target)
            .is_some_and(|p| p.info.hosts.contains(&key.ty))
        {
            Self::to_server(
                ctx,
                &target,
                Peer::Spawn(ctx.pid(), tag.clone(), key.clone()).encode(),
            );
        } else if let Some(factory) = self.beam_factory(&key.ty, &target) {
            // A BEAM factory: `{create, Type, Id}` as a gen_server call whose reply comes to us.
            let call = tuple(vec![
                atom("$gen_call"),
                tuple(vec![Term::Pid(ctx.pid()), Term::Ref(tag.clone())]),
                tuple(vec![
                    atom("create"),
                    Term::Atom(key.ty.clone()),
                    key.id.clone(),
                ]),
            ]);
            let _ = ctx.send(&Dest::Pid(factory), call);
        }
        *self.in_flight.entry(target.clone()).or_default() += 1;
        self.pending_tags.insert(tag.clone(), key.clone());
        self.pending.insert(
            key,
            Pending {
                tag,
                deadline: Instant::now() + CREATE_TIMEOUT,
                target,
                waiters,
                selector,
                attempts,
                failover,
            },
        );
    }

    pub(super) fn create_here(&mut self, ctx: &Ctx<'_>, key: &Key) -> Result<Entry, Term> {
        let existing = self.table().get(key).cloned();
        if let Some(e) = existing {
            return Ok(e);
        }
        let factory = self
            .shared
            .factories
            .read()
            .expect("factories")
            .get(&key.ty)
            .cloned();
        let Some(factory) = factory else {
            return Err(tuple(vec![atom("no_factory"), Term::Atom(key.ty.clone())]));
        };
        let pid = factory.create(ctx.node(), key)?;
        self.shared.stats.write().expect("stats").created += 1;
        let restart = self.opts.restart.contains(&key.ty);
        Ok(self.add_local(ctx, key.clone(), pid, Term::nil(), restart))
    }

    /// Tells the waiters of a create of `key` its outcome (and its failover batch, if any).
    pub(super) fn answer(
        &mut self,
        ctx: &Ctx<'_>,
        key: &Key,
        waiters: Vec<From>,
        result: Result<Entry, Term>,
        failover: Option<&Atom>,
    ) {
        if let Some(f) = failover {
            if let Err(why) = &result {
                warn!(node = %f.as_str(), key = %key, "failover create failed: {why}");
            }
            self.batch_step(f, key, result.is_ok());
        }
        let reply = create_reply(&result);
        for w in waiters {
            ctx.reply(&w, reply.clone());
        }
    }

    /// A create this node is home to has an outcome.
    pub(super) fn finish(&mut self, ctx: &Ctx<'_>, key: &Key, result: Result<Entry, Term>) {
        let Some(p) = self.pending.remove(key) else {
            return;
        };
        self.pending_tags.remove(&p.tag);
        if let Some(n) = self.in_flight.get_mut(&p.target) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&p.target);
            }
        }
        let stale = matches!(&result, Ok(e) if e.stamp.owner != self.me
            && !self.peers.contains_key(&e.stamp.owner));
        if stale {
            // The chosen node still holds an entry of a node we know is down (a failover
            // racing its nodedown): keeping it would leave a stale entry. Create it here if
            // this node can; otherwise try again on the next tick, until the chosen node's
            // view catches up (its tick declares the node down too).
            if self.info().hosts.contains(&key.ty) {
                let result = self.create_here(ctx, key);
                self.answer(ctx, key, p.waiters, result, p.failover.as_ref());
                return;
            }
            if p.attempts < MAX_ATTEMPTS {
                self.retries.push(Retry {
                    key: key.clone(),
                    selector: p.selector,
                    waiters: p.waiters,
                    failover: p.failover,
                    attempts: p.attempts + 1,
                });
                return;
            }
        }
        let result = if stale {
            Err(atom("stale_view"))
        } else {
            result
        };
        if let Ok(e) = &result {
            // The owner's own `cs_reg` may not have reached us yet.
            let added = self.table_mut().add(e.clone());
            self.settle(ctx, added);
        }
        self.answer(ctx, key, p.waiters, result, p.failover.as_ref());
    }

    /// Fails the creates whose deadline has passed (checked on every tick: one timer for all
    /// of them, so a burst of creates costs no timer each).
    pub(super) fn expire(&mut self, ctx: &Ctx<'_>) {
        for r in std::mem::take(&mut self.retries) {
            self.create(ctx, r.key, r.selector, r.waiters, r.failover, r.attempts);
        }
        let now = Instant::now();
        let late: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in late {
            self.finish(ctx, &k, Err(atom("timeout")));
        }
        let late: Vec<Ref> = self
            .relays
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for t in late {
            if let Some(r) = self.relays.remove(&t) {
                ctx.reply(&r.from, error(atom("timeout")));
            }
        }
    }
}
