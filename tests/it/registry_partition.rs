//! The process registry (`cluster_server`) where it is hardest: across a real network
//! partition that heals, where the conflict rule of `src/registry/mod.rs` must keep one claim
//! everywhere and tell the loser; and under churn (nodes killed with SIGKILL and restarted
//! while ids are being created), after which every node's table must match what really runs.
//! Both run real `cluster start` nodes; each prints its figures (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::UnboundedReceiver;

use cluster::dist::term::{atom, int, tuple, Pid, Term};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};
use cluster::registry::{Client, Selector};

use crate::util::{
    cluster_async_in, cluster_spawn_in, heavy, stdout, wait_for, wait_line, Daemon, NetNs,
    NsRuntime, Proc,
};

const DEADLINE: Duration = Duration::from_secs(20);
const COOKIE: &str = "regtest";
const CALL: Duration = Duration::from_secs(3);

fn n(s: &str) -> NodeName {
    NodeName::parse(s).expect("node name")
}

/// A roles file of its own: the beacon on `beacon_host`, a short tick, a role `game` with no
/// requirements in a full mesh, and (for `restart`) `echo` processes that fail over.
fn roles_file(beacon_host: &str, ticktime: u64, restart: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = format!(
        "[cluster]\nbeacon = \"beacon1@{beacon_host}\"\nnet_ticktime = {ticktime}\n\
         mesh = \"full\"\n\n[roles.beacon]\n\n[roles.game]\n\
         description = \"hosts the built-in echo\"\n"
    );
    if restart {
        text.push_str("\n[types.echo]\nrestart = \"elsewhere\"\n");
    }
    let path = dir.path().join("roles.toml");
    std::fs::write(&path, text).expect("write roles file");
    (dir, path.to_string_lossy().into_owned())
}

/// `cluster start` for `name` in `role`, inside `netns` when given.
fn start_node(netns: Option<&str>, name: &str, role: &str, epmd_port: u16, roles: &str) -> Proc {
    let port = epmd_port.to_string();
    let args = [
        "start",
        "--name",
        name,
        "--role",
        role,
        "--cookie",
        COOKIE,
        "--epmd-port",
        &port,
        "--roles",
        roles,
        "--no-epmd-start",
    ];
    cluster_spawn_in(netns, &args)
}

/// The creation a node printed in its `up on port P (creation C)` line.
async fn up_creation(lines: &mut UnboundedReceiver<String>) -> u32 {
    let line = wait_line(lines, "up on port", DEADLINE).await;
    line.rsplit_once("(creation ")
        .and_then(|(_, c)| c.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no creation in {line:?}"))
}

/// A hidden observer node, on the host or (with `ns`) inside a namespace: calls to the nodes
/// on its own side of the partition go through it.
struct Observer {
    node: Node,
    ns: Option<Arc<NsRuntime>>,
}

impl Observer {
    async fn start(name: &str, epmd_port: u16, ns: Option<Arc<NsRuntime>>) -> Observer {
        let mut cfg =
            NodeConfig::hidden_client(n(name), Cookie::new(COOKIE)).with_epmd_port(epmd_port);
        cfg.ticktime = Duration::from_secs(3);
        let start = async move { Node::start(cfg).await.expect("observer starts") };
        let node = match &ns {
            Some(rt) => rt.run(start).await,
            None => start.await,
        };
        Observer { node, ns }
    }

    /// Runs `work` where this observer's sockets live.
    async fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        match &self.ns {
            Some(rt) => rt.run(work).await,
            None => work.await,
        }
    }

    fn client(&self, target: &str) -> Client {
        Client::new(self.node.clone(), n(target)).with_timeout(CALL)
    }

    async fn status(&self, target: &str) -> Option<Term> {
        let c = self.client(target);
        self.run(async move { c.status().await.ok() }).await
    }

    async fn claims(&self, target: &str, id: Term) -> Option<Vec<cluster::registry::state::Entry>> {
        let c = self.client(target);
        self.run(async move { c.claims("echo", id).await.ok() })
            .await
    }

    async fn get(&self, target: &str, id: Term) -> Option<Option<Pid>> {
        let c = self.client(target);
        self.run(async move {
            c.get_process("echo", id)
                .await
                .ok()
                .map(|r| r.map(|r| r.pid))
        })
        .await
    }

    async fn create(&self, target: &str, id: Term, selector: Selector) -> Result<Pid, String> {
        let c = self.client(target).with_timeout(Duration::from_secs(8));
        self.run(async move {
            c.create_process("echo", id, selector)
                .await
                .map(|r| r.pid)
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Asks the process itself: an `echo` answers `{echo, Request}`.
    async fn echoes(&self, pid: &Pid) -> Result<(), String> {
        let node = self.node.clone();
        let pid = pid.clone();
        self.run(async move {
            match node.call(&Dest::Pid(pid.clone()), atom("ping"), CALL).await {
                Ok(r) if r == tuple(vec![atom("echo"), atom("ping")]) => Ok(()),
                Ok(other) => Err(format!("{pid:?} answered {other}")),
                Err(e) => Err(format!("{pid:?}: {e}")),
            }
        })
        .await
    }

    /// A mailbox monitoring `pid`.
    async fn watch(&self, pid: Pid) -> cluster::dist::node::Mailbox {
        let node = self.node.clone();
        self.run(async move {
            let mb = node.spawn_mailbox();
            mb.monitor(&Dest::Pid(pid)).expect("monitor");
            mb
        })
        .await
    }

    async fn shutdown(self) {
        let node = self.node.clone();
        self.run(async move { node.shutdown().await }).await;
    }
}

fn field(status: &Term, key: &str) -> i64 {
    status
        .map_get_atom(key)
        .and_then(Term::as_int)
        .unwrap_or_else(|| panic!("status has no integer {key}: {status}"))
}

fn servers(status: &Term) -> BTreeSet<String> {
    status
        .map_get_atom("servers")
        .and_then(Term::as_list)
        .unwrap_or_else(|| panic!("status has no servers: {status}"))
        .iter()
        .filter_map(|t| t.as_atom().map(str::to_owned))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The pid a `cluster procs create --json` printed.
fn created_pid(out: &std::process::Output) -> String {
    assert!(out.status.success(), "create failed: {out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(out)).expect("create prints JSON");
    v[0]["pid"].as_str().expect("a pid").to_owned()
}

fn pid_text(pid: &Pid) -> String {
    Term::Pid(pid.clone()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_heal_keeps_one_claim_by_the_documented_rule() {
    let _serial = heavy().await;
    let ns = match NetNs::create(1) {
        Ok(ns) => ns,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to create a network namespace: {why}"
            );
            println!("skipped: cannot create a network namespace ({why})");
            return;
        }
    };
    let ns_rt = Arc::new(ns.runtime().expect("a thread inside the namespace"));
    let (_dir, roles) = roles_file(&ns.host_ip, 3, false);
    let beacon = format!("beacon1@{}", ns.host_ip);
    let a = format!("a@{}", ns.host_ip);
    let z = format!("z@{}", ns.ns_ip);
    let everyone = set(&[&beacon, &a, &z]);

    // Each side has its own port mapper on the same port, as two hosts would.
    let epmd = Daemon::start_with(cluster::epmd::ServerConfig {
        addresses: vec![ns.host_ip.parse().expect("host ip")],
        ..cluster::epmd::ServerConfig::default()
    })
    .await;
    let port = epmd.port.to_string();
    let mut ns_epmd = cluster_spawn_in(Some(&ns.name), &["epmd", "--port", &port]);
    wait_line(&mut ns_epmd.stderr_lines(), "listening on", DEADLINE).await;

    let started = Instant::now();
    let mut beacon_proc = start_node(None, &beacon, "beacon", epmd.port, &roles);
    wait_line(&mut beacon_proc.stdout_lines(), "beacon ready", DEADLINE).await;
    let mut a_proc = start_node(None, &a, "game", epmd.port, &roles);
    let mut z_proc = start_node(Some(&ns.name), &z, "game", epmd.port, &roles);
    let mut logs: HashMap<String, UnboundedReceiver<String>> = HashMap::new();
    logs.insert(a.clone(), a_proc.stderr_lines());
    logs.insert(z.clone(), z_proc.stderr_lines());

    let host = Observer::start(&format!("obs@{}", ns.host_ip), epmd.port, None).await;
    let inside =
        Observer::start(&format!("obs@{}", ns.ns_ip), epmd.port, Some(ns_rt.clone())).await;
    let side = |node: &str| if node == z { &inside } else { &host };
    for node in [&beacon, &a, &z] {
        wait_for(
            &format!("{node} to see all three servers"),
            DEADLINE,
            || async {
                let st = side(node).status(node).await?;
                (servers(&st) == everyone).then_some(())
            },
        )
        .await;
    }
    println!(
        "beacon, a and z started and meshed in {:?}",
        started.elapsed()
    );

    // The partition: nothing passes the link; each side declares the other down at its tick.
    ns.set_link(false);
    let cut = Instant::now();
    for (node, sees) in [
        (&beacon, set(&[&beacon, &a])),
        (&a, set(&[&beacon, &a])),
        (&z, set(&[&z])),
    ] {
        wait_for(
            &format!("{node} to lose the other side"),
            DEADLINE,
            || async {
                let st = side(node).status(node).await?;
                (servers(&st) == sees).then_some(())
            },
        )
        .await;
    }
    println!(
        "partition detected on both sides {:?} after the cut (net_ticktime 3 s)",
        cut.elapsed()
    );

    // a registers a few processes first, so that its clock runs ahead of z's: the clock, not
    // the owner's name (a < z), must then decide.
    for i in 1..=3 {
        host.create(&a, int(1000 + i), Selector::Node(a.as_str().into()))
            .await
            .expect("a creates on its side");
    }
    let clock_a = field(&host.status(&a).await.expect("a's status"), "clock") as u64;
    let clock_z = field(&inside.status(&z).await.expect("z's status"), "clock") as u64;
    assert!(
        clock_a > clock_z,
        "a's clock {clock_a} must be ahead of z's {clock_z}"
    );

    // {echo, 77} on both sides at once, each with the CLI run on its own side.
    let create_args = |node: &str| {
        vec![
            "procs".to_owned(),
            "create".to_owned(),
            "echo".to_owned(),
            "77".to_owned(),
            "--selector".to_owned(),
            node.to_owned(),
            "--via".to_owned(),
            node.to_owned(),
            "--json".to_owned(),
            "--cookie".to_owned(),
            COOKIE.to_owned(),
            "--epmd-port".to_owned(),
            port.clone(),
            "--roles".to_owned(),
            roles.clone(),
        ]
    };
    let (args_a, args_z) = (create_args(&a), create_args(&z));
    let refs_a: Vec<&str> = args_a.iter().map(String::as_str).collect();
    let refs_z: Vec<&str> = args_z.iter().map(String::as_str).collect();
    let (out_a, out_z) = tokio::join!(
        cluster_async_in(None, &refs_a),
        cluster_async_in(Some(&ns.name), &refs_z)
    );
    let (text_a, text_z) = (created_pid(&out_a), created_pid(&out_z));
    assert_ne!(text_a, text_z, "each side created its own process");

    // Each side holds one claim, stamped with its owner's clock + 1.
    let claim_a = host.claims(&a, int(77)).await.expect("a's claims");
    let claim_z = inside.claims(&z, int(77)).await.expect("z's claims");
    assert_eq!(claim_a.len(), 1, "{claim_a:?}");
    assert_eq!(claim_z.len(), 1, "{claim_z:?}");
    let (claim_a, claim_z) = (claim_a[0].clone(), claim_z[0].clone());
    assert_eq!(pid_text(&claim_a.pid), text_a);
    assert_eq!(pid_text(&claim_z.pid), text_z);
    assert_eq!(
        (claim_a.stamp.clock, claim_a.stamp.owner.as_str()),
        (clock_a + 1, a.as_str())
    );
    assert_eq!(
        (claim_z.stamp.clock, claim_z.stamp.owner.as_str()),
        (clock_z + 1, z.as_str())
    );

    // The documented rule, computed here from the stamps: the lower (clock, owner) wins.
    let (winner, loser, loser_node, winner_node) =
        if (clock_a + 1, a.as_str()) < (clock_z + 1, z.as_str()) {
            (
                claim_a.pid.clone(),
                claim_z.pid.clone(),
                z.clone(),
                a.clone(),
            )
        } else {
            (
                claim_z.pid.clone(),
                claim_a.pid.clone(),
                a.clone(),
                z.clone(),
            )
        };
    assert_eq!(winner_node, z, "the clock decides: z's stamp is lower");

    // Watch both processes from their own side, and count what runs before the heal.
    let mut mb_a = host.watch(claim_a.pid.clone()).await;
    let mut mb_z = inside.watch(claim_z.pid.clone()).await;
    let live_before = field(
        &side(&loser_node).status(&loser_node).await.expect("status"),
        "echo_live",
    );

    // Heal. z's role runner finds the beacon again by itself; the mesh follows.
    ns.set_link(true);
    let healed = Instant::now();
    for node in [&beacon, &a, &z] {
        let id = int(77);
        let winner = winner.clone();
        wait_for(
            &format!("{node} to hold exactly one claim on {{echo, 77}}, the winner's"),
            Duration::from_secs(30),
            || {
                let (id, winner) = (id.clone(), winner.clone());
                let everyone = &everyone;
                async move {
                    let st = side(node).status(node).await?;
                    if servers(&st) != *everyone {
                        return None;
                    }
                    let claims = side(node).claims(node, id.clone()).await?;
                    let found = side(node).get(node, id).await??;
                    (claims.len() == 1 && claims[0].pid == winner && found == winner).then_some(())
                }
            },
        )
        .await;
    }
    let converged = healed.elapsed();

    // The loser was told, and its process stopped for that reason.
    let mb_loser = if loser_node == a {
        &mut mb_a
    } else {
        &mut mb_z
    };
    let down = mb_loser
        .recv_matching(DEADLINE, |m| {
            m.as_tuple()
                .is_some_and(|t| t.first().is_some_and(|k| k.is_atom("DOWN")))
        })
        .await
        .expect("the losing process goes down");
    let reason = down.as_tuple().expect("DOWN")[4].clone();
    assert_eq!(
        reason,
        tuple(vec![
            atom("shutdown"),
            tuple(vec![atom("name_conflict"), Term::Pid(winner.clone())]),
        ]),
        "the loser stops because of the notice"
    );
    let loser_obs = side(&loser_node);
    wait_for(
        "the loser's node to count one echo fewer",
        DEADLINE,
        || async {
            let st = loser_obs.status(&loser_node).await?;
            (field(&st, "echo_live") == live_before - 1).then_some(())
        },
    )
    .await;
    wait_line(
        logs.get_mut(&loser_node).expect("loser's log"),
        "name conflict",
        DEADLINE,
    )
    .await;
    for node in [&beacon, &a, &z] {
        let st = side(node).status(node).await.expect("status");
        let lost = if *node == loser_node { 1 } else { 0 };
        assert_eq!(field(&st, "conflicts_lost"), lost, "{node}: {st}");
    }
    // The winner is untouched, still answers, and a's other processes are still everywhere.
    let mb_winner = if loser_node == a {
        &mut mb_z
    } else {
        &mut mb_a
    };
    assert_eq!(mb_winner.try_recv(), None, "the winner must not go down");
    host.echoes(&winner).await.expect("the winner answers");
    for node in [&beacon, &a, &z] {
        for i in 1..=3 {
            let found = side(node).get(node, int(1000 + i)).await.expect("get");
            assert!(found.is_some(), "{node} lost {{echo, {}}}", 1000 + i);
        }
    }
    println!(
        "partition + heal: a stamped ({}, {a}), z stamped ({}, {z}); {} kept {} everywhere \
         {converged:?} after the heal; {} lost {} and was told",
        clock_a + 1,
        clock_z + 1,
        winner_node,
        pid_text(&winner),
        loser_node,
        pid_text(&loser)
    );

    drop((mb_a, mb_z));
    host.shutdown().await;
    inside.shutdown().await;
    drop((a_proc, z_proc, beacon_proc));
    drop(ns_epmd);
    epmd.stop().await;
}

/// The registry's log lines of every incarnation of every node, for the failure message.
type Logs = Arc<Mutex<Vec<String>>>;

/// One `cluster start` node of the churn test.
struct Member {
    name: String,
    role: &'static str,
    proc: Option<Proc>,
    creation: u32,
}

impl Member {
    async fn start(
        name: &str,
        role: &'static str,
        epmd_port: u16,
        roles: &str,
        logs: &Logs,
    ) -> Member {
        let mut proc = start_node(None, name, role, epmd_port, roles);
        let creation = up_creation(&mut proc.stdout_lines()).await;
        let mut lines = proc.stderr_lines();
        let (logs, who) = (logs.clone(), format!("{name}/{creation}"));
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                if line.contains("failover") || line.contains("conflict") || line.contains("WARN") {
                    logs.lock().expect("logs").push(format!("{who}: {line}"));
                }
            }
        });
        Member {
            name: name.to_owned(),
            role,
            proc: Some(proc),
            creation,
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.kill();
        }
    }

    async fn restart(&mut self, epmd_port: u16, roles: &str, logs: &Logs) {
        *self = Member::start(&self.name, self.role, epmd_port, roles, logs).await;
    }
}

/// What every node's table and counters look like once they agree.
struct Converged {
    table: BTreeMap<i64, Pid>,
}

/// Checks that every node holds the same table, that it has exactly one claim per id, that
/// every entry lives on the current incarnation of a node, that each node runs exactly the
/// echo processes its table says it hosts, and that every id created is there.
async fn check_tables(
    obs: &Observer,
    members: &[Member],
    created: &BTreeSet<i64>,
    attempted: &BTreeSet<i64>,
) -> Result<Converged, String> {
    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    let creations: HashMap<&str, u32> = members
        .iter()
        .map(|m| (m.name.as_str(), m.creation))
        .collect();
    let mut first: Option<(String, BTreeMap<i64, Pid>)> = None;
    let mut statuses = Vec::new();
    for m in members {
        let c = obs.client(&m.name);
        let st = c
            .status()
            .await
            .map_err(|e| format!("{}: status: {e}", m.name))?;
        if servers(&st) != names {
            return Err(format!("{} sees servers {:?}", m.name, servers(&st)));
        }
        if field(&st, "pending") != 0 {
            return Err(format!("{} has creates pending: {st}", m.name));
        }
        let procs = c
            .procs(None, None)
            .await
            .map_err(|e| format!("{}: procs: {e}", m.name))?;
        let mut table = BTreeMap::new();
        for r in &procs {
            let id = r.key.id.as_int().ok_or(format!("id {}", r.key.id))?;
            table.insert(id, r.pid.clone());
        }
        if field(&st, "entries") as usize != procs.len() {
            return Err(format!(
                "{} holds {} claims for {} ids",
                m.name,
                field(&st, "entries"),
                procs.len()
            ));
        }
        match &first {
            None => first = Some((m.name.clone(), table)),
            Some((who, t)) if *t != table => {
                let diff: Vec<_> = t
                    .iter()
                    .filter(|(k, v)| table.get(k) != Some(v))
                    .map(|(k, _)| *k)
                    .chain(table.keys().filter(|k| !t.contains_key(k)).copied())
                    .take(10)
                    .collect();
                return Err(format!(
                    "{} and {who} differ ({} vs {} entries), e.g. ids {diff:?}",
                    m.name,
                    table.len(),
                    t.len()
                ));
            }
            Some(_) => {}
        }
        statuses.push((m.name.clone(), st));
    }
    let (_, table) = first.expect("members");
    for (id, pid) in &table {
        match creations.get(pid.node.as_str()) {
            Some(&c) if c == pid.creation => {}
            Some(&c) => {
                return Err(format!(
                    "{{echo, {id}}} points at {pid:?}, of an old incarnation (now creation {c})"
                ))
            }
            None => return Err(format!("{{echo, {id}}} points at {pid:?}, on no member")),
        }
        if !attempted.contains(id) {
            return Err(format!("{{echo, {id}}} was never created"));
        }
    }
    if let Some(missing) = created.iter().find(|id| !table.contains_key(id)) {
        let short: Vec<_> = created
            .iter()
            .filter(|id| !table.contains_key(id))
            .take(10)
            .collect();
        return Err(format!(
            "{{echo, {missing}}} was created and is missing ({} missing, e.g. {short:?})",
            created.iter().filter(|id| !table.contains_key(id)).count()
        ));
    }
    for (name, st) in &statuses {
        let hosted = table.values().filter(|p| p.node.as_str() == name).count() as i64;
        let live = field(st, "echo_live");
        if live != hosted {
            return Err(format!(
                "{name} runs {live} echo processes and its table says it hosts {hosted}"
            ));
        }
    }
    Ok(Converged { table })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_every_table_matching_the_live_processes() {
    let _serial = heavy().await;
    let seed: u64 = std::env::var("REGISTRY_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("churn seed {seed} (REGISTRY_CHURN_SEED={seed} repeats the kill schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let epmd = Daemon::start().await;
    let (_dir, roles) = roles_file("127.0.0.1", 4, true);
    let logs: Logs = Arc::default();
    let mut members =
        vec![Member::start("beacon1@127.0.0.1", "beacon", epmd.port, &roles, &logs).await];
    for i in 1..=4 {
        let name = format!("n{i}@127.0.0.1");
        members.push(Member::start(&name, "game", epmd.port, &roles, &logs).await);
    }
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let obs = Observer::start("obs@127.0.0.1", epmd.port, None).await;
    let all: BTreeSet<String> = names.iter().cloned().collect();
    for name in &names {
        wait_for(
            &format!("{name} to see all five servers"),
            DEADLINE,
            || async {
                let st = obs.status(name).await?;
                (servers(&st) == all).then_some(())
            },
        )
        .await;
    }

    // 200 processes, spread by the default selector (least loaded), asked of every node.
    let mut created = BTreeSet::new();
    for id in 0..200i64 {
        let via = &names[id as usize % names.len()];
        obs.create(via, int(id), Selector::LeastLoaded)
            .await
            .unwrap_or_else(|e| panic!("create {id} via {via}: {e}"));
        created.insert(id);
    }
    let mut attempted: BTreeSet<i64> = created.clone();

    // More creates all through the churn, through whichever nodes are up.
    let up: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(names.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let creator = {
        let (up, stop, obs_node) = (up.clone(), stop.clone(), obs.node.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        tokio::spawn(async move {
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            let mut id = 1000i64;
            while !stop.is_cancelled() {
                let via = {
                    let up = up.lock().expect("up");
                    up[rng.gen_range(0..up.len())].clone()
                };
                let c = Client::new(obs_node.clone(), n(&via)).with_timeout(Duration::from_secs(8));
                match c
                    .create_process("echo", int(id), Selector::LeastLoaded)
                    .await
                {
                    Ok(_) => ok.push(id),
                    Err(_) => failed.push(id),
                }
                id += 1;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(20..120))).await;
            }
            (ok, failed)
        })
    };

    // 20 s of kill -9 and restarts, at random moments; at most two of the four down at once.
    let churn_for = Duration::from_secs(20);
    let churn_start = Instant::now();
    let (mut kills, mut restarts) = (0, 0);
    let mut down: Vec<(usize, Instant)> = Vec::new();
    while churn_start.elapsed() < churn_for {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1200))).await;
        let now = Instant::now();
        let due: Vec<usize> = down
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            down.retain(|(j, _)| *j != i);
            members[i].restart(epmd.port, &roles, &logs).await;
            up.lock().expect("up").push(members[i].name.clone());
            restarts += 1;
        }
        if down.len() < 2 && rng.gen_bool(0.7) {
            let candidates: Vec<usize> = (1..members.len())
                .filter(|i| !down.iter().any(|(j, _)| j == i))
                .collect();
            let victim = candidates[rng.gen_range(0..candidates.len())];
            up.lock()
                .expect("up")
                .retain(|n| n != &members[victim].name);
            members[victim].kill();
            kills += 1;
            let back = Duration::from_millis(rng.gen_range(300..2500));
            down.push((victim, Instant::now() + back));
        }
    }
    stop.cancel();
    let (ok, failed) = creator.await.expect("creator");
    for (i, _) in std::mem::take(&mut down) {
        members[i].restart(epmd.port, &roles, &logs).await;
        restarts += 1;
    }
    created.extend(ok.iter().copied());
    attempted.extend(ok.iter().chain(failed.iter()).copied());

    // Every table converges on the live processes.
    let settle = Instant::now();
    let limit = Duration::from_secs(30);
    let converged = loop {
        match check_tables(&obs, &members, &created, &attempted).await {
            Ok(c) => break c,
            Err(why) if settle.elapsed() > limit => {
                let logs = logs.lock().expect("logs");
                let tail = &logs[logs.len().saturating_sub(60)..];
                panic!(
                    "no convergence {limit:?} after the churn (seed {seed}): {why}\n\
                     the registry's last failover, conflict and warning lines:\n{}",
                    tail.join("\n")
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let took = settle.elapsed();
    for (id, pid) in &converged.table {
        obs.echoes(pid)
            .await
            .unwrap_or_else(|e| panic!("{{echo, {id}}} is registered but does not answer: {e}"));
    }
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in converged.table.values() {
        *per_node.entry(p.node.as_str()).or_default() += 1;
    }
    println!(
        "churn (seed {seed}): {kills} kills, {restarts} restarts in {churn_for:?}; {} creates \
         during it ({} refused or timed out); final {} entries {per_node:?}, every pid answers; \
         tables converged {took:?} after the last restart",
        ok.len() + failed.len(),
        failed.len(),
        converged.table.len()
    );
    assert!(kills >= 5, "the churn killed only {kills} nodes");

    obs.shutdown().await;
    for m in &mut members {
        m.kill();
    }
    epmd.stop().await;
}
