//! The Rust side of `benches/registry_vs_global.py`: library nodes (`cluster::registry`) that
//! join a cluster of `cluster start` nodes and time what only a library node can do (local
//! reads, the library's calls). Run by the script; by hand:
//!
//! ```sh
//! cargo bench --bench registry_load -- register --name r@127.0.0.1 --connect n1@127.0.0.1 --workers 16 --seconds 5 --count 200000 --epmd-port P
//! cargo bench --bench registry_load -- lookup --name l@127.0.0.1 --connect n1@127.0.0.1 --entries 2000 --count 5000000 --epmd-port P
//! cargo bench --bench registry_load -- joins --name j@127.0.0.1 --connect n1@127.0.0.1 --count 200000 --epmd-port P
//! cargo bench --bench registry_load -- visibility --name a@127.0.0.1 --name2 b@127.0.0.1 --connect n1@127.0.0.1 --count 300 --epmd-port P
//! ```
//!
//! Every mode prints one `RESULT k=v ...` line (integers, or integers joined by commas) and
//! exits; every wait has a bound (`--max-seconds`, and fixed bounds for joining the cluster).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cluster::dist::term::{atom, int, tuple, Pid, Term};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};
use cluster::registry::{self, Client, Options, Registry};

const COOKIE: &str = "bench";
/// How long joining the cluster may take (connections, servers and scopes discovered).
const JOIN_BOUND: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// WORKERS tasks each register new processes under unique keys `{reg, {W, I}}` one after
    /// the other (`Registry::register`, a call to this node's own server) for SECONDS or
    /// until COUNT in all, then wait until every connected server's table holds them all.
    Register,
    /// Register ENTRIES keys `{look, I}` here, then COUNT `Registry::whereis` of them, one
    /// thread, cycling through the keys.
    Lookup,
    /// COUNT `Registry::join` of this node's process to new groups `{g, I}`, one after the
    /// other, then wait until the last group is seen on every connected node's pg scope.
    Joins,
    /// COUNT samples: NAME registers `{vis, I}` while a thread spins on NAME2's table; the
    /// time from the register call to the key appearing there.
    Visibility,
}

/// Registry load generator.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// What to run.
    #[arg(value_enum)]
    mode: Mode,
    /// This node's name.
    #[arg(long)]
    name: String,
    /// The second node's name (visibility).
    #[arg(long)]
    name2: Option<String>,
    /// The cluster's nodes to connect to, comma-separated.
    #[arg(long, value_delimiter = ',')]
    connect: Vec<String>,
    /// Lookups, joins or samples.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Keys registered before the lookups.
    #[arg(long, default_value_t = 1000)]
    entries: u64,
    /// Concurrent registering tasks.
    #[arg(long, default_value_t = 1)]
    workers: u64,
    /// How long the registrations run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs of the lookup loop (each is printed).
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Milliseconds between visibility samples.
    #[arg(long, default_value_t = 2)]
    gap_ms: u64,
    /// The bound on the measured part.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// The port mapper's port.
    #[arg(long, default_value_t = 4369)]
    epmd_port: u16,
    /// Microseconds the runtime's thread spins before sleeping while busy, as `cluster start`
    /// does by default.
    #[arg(long, default_value_t = cluster::net::spin::DEFAULT_SPIN.as_micros() as u64)]
    spin: u64,
}

fn main() {
    // `cargo bench` passes `--bench`; it is not ours.
    let args = Args::parse_from(std::env::args().filter(|a| a != "--bench"));
    match args.mode {
        Mode::Lookup => {
            let rt = runtime(&args);
            rt.block_on(lookup(&args));
        }
        Mode::Register => {
            let rt = runtime(&args);
            rt.block_on(register(&args));
        }
        Mode::Joins => {
            let rt = runtime(&args);
            rt.block_on(joins(&args));
        }
        Mode::Visibility => visibility(&args),
    }
}

/// A current-thread runtime that spins as `cluster start`'s does.
fn runtime(args: &Args) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_current_thread();
    cluster::net::spin::install(&mut b, Duration::from_micros(args.spin));
    b.enable_all().build().expect("runtime")
}

fn node_name(s: &str) -> NodeName {
    NodeName::parse(s).unwrap_or_else(|e| panic!("node name {s}: {e}"))
}

/// A visible node with this node's registry, connected to every node of `--connect`, once its
/// `cluster_server` knows all of their servers.
async fn join_cluster(args: &Args, name: &str) -> (Node, Registry) {
    let cfg = NodeConfig::new(node_name(name), Cookie::new(COOKIE)).with_epmd_port(args.epmd_port);
    let node = Node::start(cfg).await.expect("node starts");
    let reg = registry::start(
        &node,
        Options {
            hosts: vec!["echo".into()],
            ..Options::default()
        },
    );
    let deadline = Instant::now() + JOIN_BOUND;
    for peer in &args.connect {
        let peer = node_name(peer);
        loop {
            match node.connect(&peer).await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => panic!("cannot connect to {peer}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    let me = Client::new(node.clone(), node.name().clone()).with_timeout(Duration::from_secs(5));
    loop {
        let servers = me
            .status()
            .await
            .ok()
            .and_then(|s| {
                s.map_get_atom("servers")
                    .and_then(Term::as_list)
                    .map(<[Term]>::len)
            })
            .unwrap_or(0);
        if servers > args.connect.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: cluster_server knows {servers} servers, not {}",
            args.connect.len() + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (node, reg)
}

fn result(pairs: &[(&str, String)]) {
    let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", text.join(" "));
}

async fn lookup(args: &Args) {
    let (node, reg) = join_cluster(args, &args.name).await;
    let ids: Vec<Term> = (0..args.entries as i64).map(int).collect();
    // A process per name, as global needs (kept until the node stops).
    let holders: Vec<_> = ids.iter().map(|_| node.spawn_mailbox()).collect();
    let fill = Instant::now();
    for (id, holder) in ids.iter().zip(&holders) {
        reg.register("look", id.clone(), holder.pid(), Term::nil())
            .await
            .expect("register");
    }
    let fill_us = fill.elapsed().as_micros();
    let table = reg.procs(None, None).len();
    let (runs, count, max) = (args.runs, args.count, Duration::from_secs(args.max_seconds));
    let r = reg.clone();
    // The loop runs off the runtime's thread, so that the node keeps serving meanwhile (as a
    // BEAM node's other schedulers do).
    let (us, misses) = tokio::task::spawn_blocking(move || {
        let mut us = Vec::new();
        let mut misses = 0u64;
        for _ in 0..runs {
            let started = Instant::now();
            let mut done = 0u64;
            'run: while done < count {
                for id in &ids {
                    if done == count {
                        break;
                    }
                    match std::hint::black_box(r.whereis("look", id)) {
                        Some(rec) => {
                            std::hint::black_box(&rec.pid);
                        }
                        None => misses += 1,
                    }
                    done += 1;
                }
                if started.elapsed() > max {
                    break 'run;
                }
            }
            us.push((started.elapsed().as_micros() as u64, done));
        }
        (us, misses)
    })
    .await
    .expect("lookup loop");
    result(&[
        ("entries", args.entries.to_string()),
        ("table", table.to_string()),
        ("fill_us", fill_us.to_string()),
        ("misses", misses.to_string()),
        (
            "us",
            us.iter()
                .map(|(u, _)| u.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "done",
            us.iter()
                .map(|(_, d)| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]);
    node.shutdown().await;
}

/// The number of entries in `of`'s table (`status` -> `entries`).
async fn entries(node: &Node, of: &NodeName) -> Option<i64> {
    Client::new(node.clone(), of.clone())
        .with_timeout(Duration::from_secs(5))
        .status()
        .await
        .ok()?
        .map_get_atom("entries")?
        .as_int()
}

async fn register(args: &Args) {
    let (node, reg) = join_cluster(args, &args.name).await;
    let mut all: Vec<NodeName> = args.connect.iter().map(|n| node_name(n)).collect();
    all.push(node.name().clone());
    let mut base = Vec::new();
    for n in &all {
        base.push(entries(&node, n).await.expect("status"));
    }
    let each = args.count.div_ceil(args.workers);
    let run = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.workers)
        .map(|w| {
            let (node, reg) = (node.clone(), reg.clone());
            tokio::spawn(async move {
                // The processes stay alive (registered) until the node stops.
                let mut holders = Vec::new();
                let (mut ok, mut errors) = (0u64, 0u64);
                while ok + errors < each && started.elapsed() < run {
                    let mb = node.spawn_mailbox();
                    let id = tuple(vec![int(w as i64), int((ok + errors) as i64)]);
                    match reg.register("reg", id, mb.pid(), Term::nil()).await {
                        Ok(()) => ok += 1,
                        Err(_) => errors += 1,
                    }
                    holders.push(mb);
                }
                (ok, errors, holders)
            })
        })
        .collect();
    let (mut ok, mut errors, mut holders) = (0u64, 0u64, Vec::new());
    for t in tasks {
        let (o, e, h) = t.await.expect("register task");
        ok += o;
        errors += e;
        holders.push(h);
    }
    let acked_us = started.elapsed().as_micros();
    let bound = Instant::now() + Duration::from_secs(args.max_seconds);
    for (n, b) in all.iter().zip(&base) {
        while entries(&node, n).await.unwrap_or(0) < b + ok as i64 {
            assert!(Instant::now() < bound, "{n} never held every registration");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let visible_us = started.elapsed().as_micros();
    result(&[
        ("ops", ok.to_string()),
        ("errors", errors.to_string()),
        ("us", acked_us.to_string()),
        ("visible_us", visible_us.to_string()),
        ("servers", all.len().to_string()),
    ]);
    drop(holders);
    node.shutdown().await;
}

/// `{Ref, Pids}` from `{monitor, Group}` to `peer`'s pg scope, dropped again at once: whether
/// `pid` is a member of `group` there.
async fn member_on(node: &Node, peer: &NodeName, group: &Term, pid: &Pid) -> bool {
    let scope = Dest::name("pg", peer);
    let reply = node
        .call(
            &scope,
            tuple(vec![atom("monitor"), group.clone()]),
            Duration::from_secs(5),
        )
        .await;
    let Ok(reply) = reply else { return false };
    let Some([Term::Ref(r), Term::List(pids)]) = reply.as_tuple() else {
        return false;
    };
    let _ = node
        .call(
            &scope,
            tuple(vec![atom("demonitor"), Term::Ref(r.clone())]),
            Duration::from_secs(5),
        )
        .await;
    pids.iter().any(|p| p.as_pid() == Some(pid))
}

async fn joins(args: &Args) {
    let (node, reg) = join_cluster(args, &args.name).await;
    let me = node.spawn_mailbox();
    let pid = me.pid();
    let peers: Vec<NodeName> = args.connect.iter().map(|n| node_name(n)).collect();
    // The scopes have met: a probe group joined here is seen on every peer.
    let probe = tuple(vec![atom("probe"), int(0)]);
    reg.join(probe.clone(), vec![pid.clone()])
        .await
        .expect("join");
    let deadline = Instant::now() + JOIN_BOUND;
    for peer in &peers {
        while !member_on(&node, peer, &probe, &pid).await {
            assert!(Instant::now() < deadline, "{peer}'s pg scope never saw us");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let max = Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut done = 0u64;
    let mut errors = 0u64;
    while done < args.count && started.elapsed() < max {
        let group = tuple(vec![atom("g"), int(done as i64)]);
        if reg.join(group, vec![pid.clone()]).await.is_err() {
            errors += 1;
        }
        done += 1;
    }
    let acked_us = started.elapsed().as_micros();
    // Until the last join is seen on every peer (each peer applies joins in order).
    let last = tuple(vec![atom("g"), int(done as i64 - 1)]);
    let mut all_seen_us = 0u128;
    for peer in &peers {
        while !member_on(&node, peer, &last, &pid).await {
            assert!(
                started.elapsed() < max * 2,
                "{peer} never saw the last join"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        all_seen_us = started.elapsed().as_micros();
    }
    let local = reg.members(&last).len();
    result(&[
        ("joins", done.to_string()),
        ("errors", errors.to_string()),
        ("us", acked_us.to_string()),
        ("seen_us", all_seen_us.to_string()),
        ("peers", peers.len().to_string()),
        ("local_members", local.to_string()),
    ]);
    node.shutdown().await;
}

/// A node on its own thread and current-thread runtime (as a `cluster start` node runs).
struct OnThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OnThread {
    fn start(args: &Args) -> OnThread {
        let rt = runtime(args);
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = rt.block_on(stopped);
        });
        OnThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `fut` on this runtime and waits for it here, up to `bound`.
    fn run<T: Send + 'static>(
        &self,
        bound: Duration,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(bound)
            .expect("the node's task finished in time")
    }
}

impl Drop for OnThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn visibility(args: &Args) {
    let name_a = args.name.clone();
    let name_b = args.name2.clone().expect("--name2");
    let a = OnThread::start(args);
    let b = OnThread::start(args);
    let (a_args, b_args) = (args.clone(), args.clone());
    let (node_a, reg_a) = a.run(JOIN_BOUND * 2, async move {
        join_cluster(&a_args, &name_a).await
    });
    let (node_b, reg_b) = b.run(JOIN_BOUND * 2, async move {
        join_cluster(&b_args, &name_b).await
    });
    // Each sees the other's server too.
    for (on, reg, other) in [(&a, &reg_a, &node_b), (&b, &reg_b, &node_a)] {
        let (reg, other) = (reg.clone(), other.name().clone());
        on.run(JOIN_BOUND, async move {
            let me = Client::new(reg.node().clone(), reg.node().name().clone());
            let deadline = Instant::now() + JOIN_BOUND;
            loop {
                let knows = me.status().await.ok().is_some_and(|s| {
                    s.map_get_atom("servers")
                        .and_then(Term::as_list)
                        .is_some_and(|l| l.iter().any(|n| n.as_atom() == Some(other.as_str())))
                });
                if knows {
                    break;
                }
                assert!(Instant::now() < deadline, "the two library nodes never met");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    // A new process per sample, as global needs: a mailbox kept until the node stops.
    let holders: Vec<Pid> = {
        let (n, count) = (node_a.clone(), args.count);
        a.run(JOIN_BOUND, async move {
            (0..count)
                .map(|_| {
                    let mb = n.spawn_mailbox();
                    let pid = mb.pid();
                    std::mem::forget(mb);
                    pid
                })
                .collect()
        })
    };

    // The spinner: waits for an id, says it is armed, polls B's table until the id is there
    // (giving way between polls: on a busy machine a thread that never yields keeps B's own
    // thread, which applies the registration, off the CPU for a time slice), reports when.
    let armed = Arc::new(AtomicBool::new(false));
    let want = Arc::new(AtomicU64::new(u64::MAX));
    let (seen_tx, seen_rx) = mpsc::channel::<Option<Instant>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let spinner = {
        let (armed, want, reg_b) = (armed.clone(), want.clone(), reg_b.clone());
        let bound = Duration::from_secs(10);
        std::thread::spawn(move || {
            while go_rx.recv().is_ok() {
                let id = int(want.load(Ordering::SeqCst) as i64);
                armed.store(true, Ordering::SeqCst);
                let started = Instant::now();
                let seen = loop {
                    if reg_b.whereis("vis", &id).is_some() {
                        break Some(Instant::now());
                    }
                    if started.elapsed() > bound {
                        break None;
                    }
                    std::thread::yield_now();
                };
                if seen_tx.send(seen).is_err() {
                    return;
                }
            }
        })
    };
    let bound = Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let (mut vis, mut acks, mut lost) = (Vec::new(), Vec::new(), 0u64);
    for i in 0..args.count {
        if started.elapsed() > bound {
            break;
        }
        want.store(i, Ordering::SeqCst);
        armed.store(false, Ordering::SeqCst);
        go_tx.send(()).expect("spinner");
        while !armed.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let (reg, pid) = (reg_a.clone(), holders[i as usize].clone());
        let (t0, ack) = a.run(Duration::from_secs(30), async move {
            let t0 = Instant::now();
            reg.register("vis", int(i as i64), pid, Term::nil())
                .await
                .expect("register");
            (t0, Instant::now())
        });
        match seen_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("spinner")
        {
            Some(t1) => vis.push(t1.saturating_duration_since(t0).as_micros() as u64),
            None => lost += 1,
        }
        acks.push(ack.duration_since(t0).as_micros() as u64);
        std::thread::sleep(Duration::from_millis(args.gap_ms));
    }
    drop(go_tx);
    let _ = spinner.join();
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    result(&[
        ("vis", join(&vis)),
        ("ack", join(&acks)),
        ("lost", lost.to_string()),
    ]);
    let (na, nb) = (node_a.clone(), node_b.clone());
    a.run(Duration::from_secs(10), async move { na.shutdown().await });
    b.run(Duration::from_secs(10), async move { nb.shutdown().await });
}
