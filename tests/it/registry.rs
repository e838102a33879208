//! The process registry (seed 002): the seed's gen_server contract from Elixir, BEAM
//! factories, concurrent creates, failover after `kill -9`, the shared config, and bad input.
//! The partition/heal and churn tests are in `registry_partition`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cluster::dist::term::{atom, binary, int, tuple, Term};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};
use cluster::registry::{Client, Selector};

use crate::util::{
    cluster, cluster_spawn, have_elixir, start_node, stderr, stdout, wait_for, wait_line, Daemon,
    Proc,
};

const COOKIE: &str = "reg";
const DEADLINE: Duration = Duration::from_secs(30);

fn n(name: &str) -> NodeName {
    NodeName::parse(name).unwrap()
}

/// A port mapper, a roles file (echo fails over; a `game` role), and a hidden client node.
struct Reg {
    epmd: Daemon,
    dir: tempfile::TempDir,
    roles: String,
    client: Node,
}

impl Reg {
    async fn new() -> Reg {
        Reg::with_ticktime(10).await
    }

    async fn with_ticktime(ticktime: u64) -> Reg {
        let epmd = Daemon::start().await;
        let dir = tempfile::tempdir().unwrap();
        let roles = dir.path().join("roles.toml");
        std::fs::write(
            &roles,
            format!(
                "[cluster]\nbeacon = \"beacon1@127.0.0.1\"\nnet_ticktime = {ticktime}\n\
                 mesh = \"full\"\n[types.echo]\nrestart = \"elsewhere\"\n\
                 [roles.beacon]\n[roles.game]\ndescription = \"hosts echo\"\n"
            ),
        )
        .unwrap();
        let mut cfg = NodeConfig::hidden_client(n("reg-client@127.0.0.1"), Cookie::new(COOKIE))
            .with_epmd_port(epmd.port);
        cfg.ticktime = Duration::from_secs(ticktime);
        let client = Node::start(cfg).await.unwrap();
        Reg {
            epmd,
            dir,
            roles: roles.to_string_lossy().into_owned(),
            client,
        }
    }

    fn start(&self, role: &str, node: &str, extra: &[&str]) -> Proc {
        let port = self.epmd.port.to_string();
        let mut args = vec![
            "start",
            "--name",
            node,
            "--role",
            role,
            "--cookie",
            COOKIE,
            "--epmd-port",
            &port,
            "--roles",
            &self.roles,
            "--no-epmd-start",
        ];
        args.extend_from_slice(extra);
        cluster_spawn(&args)
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let port = self.epmd.port.to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&[
            "--cookie",
            COOKIE,
            "--epmd-port",
            &port,
            "--roles",
            &self.roles,
        ]);
        cluster(&all)
    }

    fn of(&self, node: &str) -> Client {
        Client::new(self.client.clone(), n(node)).with_timeout(Duration::from_secs(10))
    }

    async fn status(&self, node: &str) -> Option<Term> {
        self.of(node)
            .with_timeout(Duration::from_secs(2))
            .status()
            .await
            .ok()
    }

    /// Waits until every node in `nodes` runs cluster_server and lists all of them.
    async fn meshed(&self, nodes: &[&str]) {
        for node in nodes {
            wait_for(&format!("{node} sees every server"), DEADLINE, || async {
                let s = self.status(node).await?;
                let servers: HashSet<String> = s
                    .map_get_atom("servers")?
                    .as_list()?
                    .iter()
                    .filter_map(|t| t.as_atom().map(str::to_owned))
                    .collect();
                nodes.iter().all(|m| servers.contains(*m)).then_some(())
            })
            .await;
        }
    }
}

fn int_of(t: &Term, key: &str) -> i64 {
    t.map_get_atom(key)
        .and_then(Term::as_int)
        .unwrap_or_else(|| panic!("no {key} in {t}"))
}

/// Every registration `node` holds, as `(type, id) -> pid`.
async fn table(reg: &Reg, node: &str) -> Option<HashMap<(String, String), cluster::Pid>> {
    let records = reg.of(node).procs(None, None).await.ok()?;
    Some(
        records
            .into_iter()
            .map(|r| ((r.key.ty.as_str().to_owned(), r.key.id.to_string()), r.pid))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elixir_uses_the_seed_contract_and_hosts_a_type_through_a_factory() {
    if !have_elixir("elixir_uses_the_seed_contract_and_hosts_a_type_through_a_factory") {
        return;
    }
    let reg = Reg::new().await;
    let _b = reg.start("beacon", "beacon1@127.0.0.1", &[]);
    let _n1 = reg.start("game", "n1@127.0.0.1", &[]);
    let _n2 = reg.start("game", "n2@127.0.0.1", &[]);
    reg.meshed(&["beacon1@127.0.0.1", "n1@127.0.0.1", "n2@127.0.0.1"])
        .await;
    let script = r#"
        n1 = :"n1@127.0.0.1"
        n2 = :"n2@127.0.0.1"
        true = Node.connect(n1)
        call = fn node, req -> GenServer.call({:cluster_server, node}, req) end
        # Polls a lookup until it matches, for at most 10 s (a registration reaches the
        # other nodes a moment after the reply).
        poll = fn f, pred ->
          Enum.reduce_while(1..200, nil, fn _, _ ->
            r = f.()
            if pred.(r), do: {:halt, r}, else: (Process.sleep(50); {:cont, r})
          end)
        end
        player = fn -> receive do {:"$gen_call", from, req} -> GenServer.reply(from, {:player, req}) end end
        factory = spawn(fn ->
          loop = fn loop ->
            receive do
              {:"$gen_call", from, {:create, :player, id}} ->
                pid = spawn(fn -> Process.register(self(), :"player_#{id}"); player.() end)
                GenServer.reply(from, {:ok, pid})
                loop.(loop)
            end
          end
          loop.(loop)
        end)
        IO.puts("factory #{inspect(call.(n1, {:register_factory, :player, factory}))}")
        # n2 learns that this node hosts player from n1.
        hosts = poll.(fn -> call.(n2, :loads) end, fn l -> Enum.any?(l, fn {node, m} -> node == node() and :player in m.hosts end) end)
        IO.puts("hosted #{Enum.any?(hosts, fn {node, m} -> node == node() and :player in m.hosts end)}")
        {:ok, rec} = call.(n2, {:create_process, :player, 42})
        {:cluster_process, :player, 42, where, pid, _} = rec
        IO.puts("created_here #{where == node() and node(pid) == node()}")
        IO.puts("again_same #{call.(n1, {:create_process, :player, 42}) == {:ok, rec}}")
        got = poll.(fn -> call.(n1, {:get_process, :player, 42}) end, fn r -> r == {:ok, rec} end)
        IO.puts("get_other_node #{got == {:ok, rec}}")
        IO.puts("player_answers #{inspect(GenServer.call(pid, :hello))}")
        {:ok, {:cluster_process, :echo, 7, en, epid, _}} = call.(n1, {:create_process, :echo, 7, :undefined, :least_loaded})
        IO.puts("echo_on_cluster #{en in [n1, n2, :"beacon1@127.0.0.1"]}")
        IO.puts("echo_answers #{inspect(GenServer.call(epid, :hi))}")
        IO.puts("del #{inspect(call.(n2, {:del_process, :player, 42}))}")
        IO.puts("gone_here #{inspect(call.(n2, {:get_process, :player, 42}))}")
        gone = poll.(fn -> call.(n1, {:get_process, :player, 42}) end, fn r -> r == {:error, :not_find} end)
        IO.puts("gone_there #{inspect(gone)}")
        IO.puts("missing #{inspect(call.(n1, {:get_process, :player, 999}))}")
        me = spawn(fn -> receive do :stop -> :ok end end)
        IO.puts("set #{inspect(call.(n1, {:set_process, :session, 1, me}))}")
        {:error, {:already_registered, {:cluster_process, :session, 1, _, ^me, _}}} = call.(n1, {:set_process, :session, 1, self()})
        IO.puts("taken ok")
        seen = poll.(fn -> call.(n2, {:get_process, :session, 1}) end, fn r -> match?({:ok, _}, r) end)
        IO.puts("set_seen #{match?({:ok, {:cluster_process, :session, 1, _, ^me, _}}, seen)}")
        send(me, :stop)
        exited = poll.(fn -> call.(n2, {:get_process, :session, 1}) end, fn r -> r == {:error, :not_find} end)
        IO.puts("exit_removes #{inspect(exited)}")
        {:error, {:badarg, why}} = call.(n1, {:get_process, "player", 1})
        IO.puts("badarg #{why}")
        IO.puts("unknown #{inspect(call.(n1, {:no_such_thing, 1}))}")
    "#;
    let out = crate::util::elixir("ex_reg@127.0.0.1", reg.epmd.port, COOKIE, script)
        .wait_output(DEADLINE * 2)
        .await;
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}\n{err}");
    for want in [
        "factory :ok",
        "hosted true",
        "created_here true",
        "again_same true",
        "get_other_node true",
        "player_answers {:player, :hello}",
        "echo_on_cluster true",
        "echo_answers {:echo, :hi}",
        "del :ok",
        "gone_here {:error, :not_find}",
        "gone_there {:error, :not_find}",
        "missing {:error, :not_find}",
        "set :ok",
        "taken ok",
        "set_seen true",
        "exit_removes {:error, :not_find}",
        "badarg get_process: the type",
        "unknown {:error, {:unknown_call, {:no_such_thing, 1}}}",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}\n{err}");
    }
    // The factory's node went away with the script: its player is not left behind.
    wait_for("n1 forgets the BEAM node's processes", DEADLINE, || async {
        let t = table(&reg, "n1@127.0.0.1").await?;
        (!t.keys().any(|(ty, _)| ty == "player")).then_some(())
    })
    .await;
}

/// 8 callers on 3 nodes create the same 1,000 ids at once: one process per id, and every
/// caller got that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_the_same_ids_make_one_process_each() {
    let epmd = Daemon::start().await;
    let mut nodes = Vec::new();
    let mut regs = Vec::new();
    for name in ["c1@127.0.0.1", "c2@127.0.0.1", "c3@127.0.0.1"] {
        let node = start_node(name, &epmd, COOKIE).await;
        let r = cluster::registry::start(
            &node,
            cluster::registry::Options {
                hosts: vec!["echo".into()],
                ..Default::default()
            },
        );
        nodes.push(node);
        regs.push(r);
    }
    for a in &nodes {
        for b in &nodes {
            if a.name() != b.name() {
                a.connect(b.name()).await.unwrap();
            }
        }
    }
    wait_for("three servers know each other", DEADLINE, || async {
        for node in &nodes {
            let s = Client::new(nodes[0].clone(), node.name().clone())
                .status()
                .await
                .ok()?;
            if s.map_get_atom("servers")?.as_list()?.len() != 3 {
                return None;
            }
        }
        Some(())
    })
    .await;
    const IDS: i64 = 1000;
    let started = Instant::now();
    let mut callers = Vec::new();
    for c in 0..8 {
        let r = regs[c % 3].clone();
        callers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(IDS as usize);
            // Each caller walks the ids from a different place, so they collide all along.
            for i in 0..IDS {
                let id = (i + c as i64 * 125) % IDS;
                let rec = r
                    .create_process("echo", int(id), Selector::LeastLoaded)
                    .await
                    .unwrap_or_else(|e| panic!("caller {c} id {id}: {e}"));
                got.push((id, rec.pid));
            }
            got
        }));
    }
    let mut winner: HashMap<i64, cluster::Pid> = HashMap::new();
    for c in callers {
        for (id, pid) in c.await.unwrap() {
            let w = winner.entry(id).or_insert_with(|| pid.clone());
            assert_eq!(w, &pid, "id {id}: two callers got different processes");
        }
    }
    println!(
        "8 callers x {IDS} creates of the same ids on 3 nodes: {:?}",
        started.elapsed()
    );
    assert_eq!(winner.len(), IDS as usize);
    // Exactly 1,000 processes exist, spread over the nodes, and every table says so.
    wait_for(
        "every table holds exactly the winners",
        DEADLINE,
        || async {
            for r in &regs {
                let procs = r.procs(Some("echo"), None);
                if procs.len() != IDS as usize {
                    return None;
                }
                for p in procs {
                    let id = p.key.id.as_int()?;
                    if winner.get(&id) != Some(&p.pid) {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    let mut live = 0;
    let mut per_node = Vec::new();
    for node in &nodes {
        let s = Client::new(nodes[0].clone(), node.name().clone())
            .status()
            .await
            .unwrap();
        live += int_of(&s, "echo_live");
        per_node.push(int_of(&s, "echo_live"));
    }
    assert_eq!(live, IDS, "live echo processes per node: {per_node:?}");
    assert!(
        per_node.iter().all(|&c| c > 200),
        "least-loaded placement spreads the work: {per_node:?}"
    );
    // Groups (OTP's pg) through the same handle: a member joined on c1 is seen on c3.
    let mine = regs[0].procs(Some("echo"), Some("c1@127.0.0.1"))[0]
        .pid
        .clone();
    regs[0]
        .join(atom("players"), vec![mine.clone()])
        .await
        .unwrap();
    wait_for("c3 sees the member", DEADLINE, || async {
        regs[2]
            .members(&atom("players"))
            .contains(&mine)
            .then_some(())
    })
    .await;
    assert!(regs[0]
        .leave(atom("players"), vec![mine.clone()])
        .await
        .unwrap());
    wait_for("c3 sees it leave", DEADLINE, || async {
        regs[2].members(&atom("players")).is_empty().then_some(())
    })
    .await;
    for node in &nodes {
        node.shutdown().await;
    }
}

/// `kill -9` of a node hosting 1,000 `restart = "elsewhere"` processes: every one is
/// deregistered everywhere and created again on the others, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_recreates_a_killed_nodes_processes_once() {
    let _serial = crate::util::heavy().await;
    let reg = Reg::new().await;
    let _b = reg.start("beacon", "beacon1@127.0.0.1", &[]);
    let _n1 = reg.start("game", "f1@127.0.0.1", &[]);
    let _n2 = reg.start("game", "f2@127.0.0.1", &[]);
    let mut victim = reg.start("game", "f3@127.0.0.1", &[]);
    let all = [
        "beacon1@127.0.0.1",
        "f1@127.0.0.1",
        "f2@127.0.0.1",
        "f3@127.0.0.1",
    ];
    reg.meshed(&all).await;
    const IDS: i64 = 1000;
    let onto = Selector::Node("f3@127.0.0.1".into());
    let via = reg.of("f1@127.0.0.1");
    for i in 0..IDS {
        let r = via
            .create_process("echo", int(i), onto.clone())
            .await
            .unwrap();
        assert_eq!(r.node(), "f3@127.0.0.1");
    }
    for node in &all {
        wait_for(&format!("{node} holds the {IDS}"), DEADLINE, || async {
            (table(&reg, node).await?.len() == IDS as usize).then_some(())
        })
        .await;
    }
    let killed = Instant::now();
    victim.kill();
    let survivors = &all[..3];
    let mut seen = Vec::new();
    for node in survivors {
        let t = wait_for(&format!("{node} has them all again"), DEADLINE, || async {
            let t = table(&reg, node).await?;
            (t.len() == IDS as usize && t.values().all(|p| p.node.as_str() != "f3@127.0.0.1"))
                .then_some(t)
        })
        .await;
        seen.push(t);
    }
    let took = killed.elapsed();
    println!(
        "failover of {IDS} processes after kill -9: every survivor's table complete in {took:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "tables differ");
    // No duplicates, no stale entries: what runs is what the tables say.
    let mut live_total = 0;
    for node in survivors {
        let s = reg.status(node).await.unwrap();
        let hosted = seen[0]
            .values()
            .filter(|p| p.node.as_str() == *node)
            .count() as i64;
        assert_eq!(
            int_of(&s, "echo_live"),
            hosted,
            "{node}: live echo processes vs the table"
        );
        live_total += hosted;
    }
    assert_eq!(live_total, IDS);
    for (key, pid) in &seen[0] {
        let reply = reg
            .client
            .call(
                &Dest::Pid(pid.clone()),
                atom("ping"),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|e| panic!("{key:?} at {pid:?}: {e}"));
        assert_eq!(reply, tuple(vec![atom("echo"), atom("ping")]));
    }
    // The homes report how long their part took.
    let mut reported = Vec::new();
    for node in survivors {
        let s = reg.status(node).await.unwrap();
        for f in s.map_get_atom("failovers").unwrap().as_list().unwrap() {
            reported.push((node.to_string(), int_of(f, "processes"), int_of(f, "ms")));
        }
    }
    let total: i64 = reported.iter().map(|r| r.1).sum();
    assert_eq!(total, IDS, "failover reports: {reported:?}");
    println!("failover reports (node, processes, ms): {reported:?}");
    // The CLI shows the same.
    let out = reg.cli(&[
        "procs",
        "--type",
        "echo",
        "--node",
        "f1@127.0.0.1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f1 = seen[0]
        .values()
        .filter(|p| p.node.as_str() == "f1@127.0.0.1")
        .count();
    assert_eq!(rows.as_array().unwrap().len(), f1);
    let out = reg.cli(&["names", "--cluster"]);
    let text = stdout(&out);
    assert!(
        text.contains("LOAD") && text.contains(&format!("{f1} procs")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_finds_and_lists_processes() {
    let reg = Reg::new().await;
    let _b = reg.start("beacon", "beacon1@127.0.0.1", &[]);
    let _n1 = reg.start("game", "p1@127.0.0.1", &[]);
    reg.meshed(&["beacon1@127.0.0.1", "p1@127.0.0.1"]).await;
    let out = reg.cli(&[
        "procs",
        "create",
        "echo",
        "{zone, 3}",
        "--selector",
        "p1@127.0.0.1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("{zone,3}") && text.contains("p1@127.0.0.1"),
        "{text}"
    );
    let out = reg.cli(&["whereis", "echo", "{zone, 3}", "--via", "p1@127.0.0.1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("p1@127.0.0.1"));
    let out = reg.cli(&["whereis", "echo", "{zone, 4}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not registered"), "{}", stderr(&out));
    // Bad input names what was wrong.
    let out = reg.cli(&["whereis", "echo", "{zone,"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not an Erlang term"),
        "{}",
        stderr(&out)
    );
    let out = reg.cli(&["procs", "create", "echo", "1", "--selector", "fastest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown selector"),
        "{}",
        stderr(&out)
    );
    let out = reg.cli(&["procs", "create", "npc", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no node hosts"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_server_shrugs_off_malformed_input_and_keeps_its_table() {
    let reg = Reg::new().await;
    let _n1 = reg.start("beacon", "beacon1@127.0.0.1", &[]);
    reg.meshed(&["beacon1@127.0.0.1"]).await;
    let b = "beacon1@127.0.0.1";
    let rec = reg
        .of(b)
        .create_process("echo", int(1), Selector::LeastLoaded)
        .await
        .unwrap();
    let dest = Dest::name("cluster_server", &n(b));
    for garbage in [
        tuple(vec![atom("cs_sync"), int(1), int(2), int(3)]),
        tuple(vec![atom("cs_reg"), atom("x")]),
        tuple(vec![atom("cs_spawned"), int(1), atom("ok")]),
        tuple(vec![atom("cs_unreg"), int(1), atom("echo"), int(1), int(2)]),
        tuple(vec![atom("$gen_call"), int(1), int(2)]),
        binary(vec![0u8; 100_000]),
        atom("cs_tick"),
    ] {
        reg.client.send(&dest, garbage).unwrap();
    }
    for (req, want) in [
        (
            tuple(vec![atom("create_process"), int(1), int(2)]),
            "the type 1 is not an atom",
        ),
        (
            tuple(vec![
                atom("create_process"),
                atom("echo"),
                int(2),
                atom("fastest"),
            ]),
            "unknown selector",
        ),
        (
            tuple(vec![
                atom("set_process"),
                atom("echo"),
                int(2),
                atom("self"),
            ]),
            "is not a pid",
        ),
        (tuple(vec![atom("procs"), int(1)]), "wrong number"),
    ] {
        let reply = reg
            .client
            .call(&dest, req.clone(), Duration::from_secs(5))
            .await
            .unwrap();
        let text = match reply.as_tuple() {
            Some([e, inner]) if e.is_atom("error") => match inner.as_tuple() {
                Some([b, t]) if b.is_atom("badarg") => t.as_text().unwrap_or_default(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        assert!(text.contains(want), "{req}: {reply}");
    }
    let still = reg
        .of(b)
        .get_process("echo", int(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.pid, rec.pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_shared_pushed_to_watchers_and_survives_its_holder_restarting() {
    let reg = Reg::new().await;
    let data = reg.dir.path().join("beacon-data");
    let data = data.to_string_lossy().into_owned();
    let beacon = reg.start("beacon", "beacon1@127.0.0.1", &["--data-dir", &data]);
    let _g = reg.start("game", "g1@127.0.0.1", &[]);
    reg.meshed(&["beacon1@127.0.0.1", "g1@127.0.0.1"]).await;
    // The holder counts its watchers: the caches of both nodes, then the CLI's.
    let watchers = || async {
        let s = reg
            .client
            .get_state(
                &Dest::name("cluster_config", &n("beacon1@127.0.0.1")),
                Duration::from_secs(2),
            )
            .await
            .ok()?;
        Some(int_of(&s, "watchers"))
    };
    wait_for("both nodes' caches watch the holder", DEADLINE, || async {
        (watchers().await? == 2).then_some(())
    })
    .await;
    // A watcher from the CLI, started before the change.
    let port = reg.epmd.port.to_string();
    let mut watch = cluster_spawn(&[
        "config",
        "watch",
        "zone.",
        "--count",
        "2",
        "--cookie",
        COOKIE,
        "--epmd-port",
        &port,
        "--roles",
        &reg.roles,
    ]);
    let mut watch_lines = watch.stdout_lines();
    wait_for("the CLI watcher is registered", DEADLINE, || async {
        (watchers().await? == 3).then_some(())
    })
    .await;
    let out = reg.cli(&["config", "set", "zone.open", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "version 1");
    let out = reg.cli(&["config", "set", "motd", "hello world", "--text"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = reg.cli(&["config", "set", "zone.max", "{players, 500}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_line(&mut watch_lines, "zone.open true (version 1)", DEADLINE).await;
    wait_line(
        &mut watch_lines,
        "zone.max {players,500} (version 3)",
        DEADLINE,
    )
    .await;
    let _ = watch.wait_output(DEADLINE).await;
    // g1's own copy, read locally there.
    let cache = Dest::name("cluster_config_cache", &n("g1@127.0.0.1"));
    let get = |key: &'static str| {
        let c = reg.client.clone();
        let cache = cache.clone();
        async move {
            c.call(
                &cache,
                tuple(vec![atom("get"), binary(key)]),
                Duration::from_secs(2),
            )
            .await
            .ok()
        }
    };
    wait_for("g1's cache has motd", DEADLINE, || async {
        let r = get("motd").await?;
        (r == tuple(vec![atom("ok"), binary("hello world"), int(2)])).then_some(())
    })
    .await;
    // Restart the holder: the values survive, and g1's cache follows new changes.
    beacon.signal("TERM");
    let _ = beacon.wait_output(DEADLINE).await;
    let _beacon = reg.start("beacon", "beacon1@127.0.0.1", &["--data-dir", &data]);
    let got = wait_for("the restarted holder answers", DEADLINE, || async {
        let out = reg.cli(&["config", "get", "zone.max"]);
        out.status.success().then(|| stdout(&out))
    })
    .await;
    assert_eq!(got.trim(), "{players,500}");
    let out = reg.cli(&["config", "delete", "zone.open"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = reg.cli(&["config", "get", "zone.open"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    wait_for("g1's cache sees the delete", DEADLINE, || async {
        let r = get("zone.open").await?;
        (r == tuple(vec![atom("error"), atom("not_found")])).then_some(())
    })
    .await;
    let out = reg.cli(&["config", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["motd", "zone.max"]);
    let out = reg.cli(&["config", "set", "x", "{unclosed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--text"), "{}", stderr(&out));
}

/// A node stopped with SIGSTOP wedges nothing: lookups elsewhere stay fast, creates that need
/// it fail within their bound while the others succeed, and once its tick runs out its keys
/// move to the other nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_wedges_no_lookup_and_no_create_past_its_bound() {
    let _serial = crate::util::heavy().await;
    let reg = Reg::with_ticktime(4).await;
    let _b = reg.start("beacon", "beacon1@127.0.0.1", &[]);
    let _s1 = reg.start("game", "s1@127.0.0.1", &[]);
    let s2 = reg.start("game", "s2@127.0.0.1", &[]);
    let all = ["beacon1@127.0.0.1", "s1@127.0.0.1", "s2@127.0.0.1"];
    reg.meshed(&all).await;
    let s1 = reg.of("s1@127.0.0.1");
    for i in 0..30 {
        s1.create_process("echo", int(i), Selector::LeastLoaded)
            .await
            .unwrap();
    }
    s2.signal("STOP");
    // Creates of fresh ids: some have the stopped node as home or target.
    let started = Instant::now();
    let mut creates = Vec::new();
    for i in 100..140 {
        let c = s1.clone().with_timeout(Duration::from_secs(20));
        creates.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .create_process("echo", int(i), Selector::LeastLoaded)
                .await;
            (r.is_ok(), t.elapsed())
        }));
    }
    // Meanwhile lookups on s1 answer at once.
    let mut worst = Duration::ZERO;
    for i in 0..30 {
        let t = Instant::now();
        s1.get_process("echo", int(i)).await.unwrap().unwrap();
        worst = worst.max(t.elapsed());
    }
    let mut ok = 0;
    let mut slowest = Duration::ZERO;
    for c in creates {
        let (done, took) = c.await.unwrap();
        ok += usize::from(done);
        slowest = slowest.max(took);
    }
    println!(
        "s2 stopped: lookups on s1 took at most {worst:?}; {ok}/40 creates succeeded, the slowest answered in {slowest:?}"
    );
    assert!(
        worst < Duration::from_millis(500),
        "a lookup took {worst:?}"
    );
    assert!(ok > 0, "creates that do not need the stopped node succeed");
    assert!(
        slowest < Duration::from_secs(10),
        "every create answers within its bound, slowest {slowest:?}"
    );
    // Once the tick declares s2 down, every create succeeds on the others.
    wait_for("creates work without s2", DEADLINE, || async {
        for i in 200..220 {
            let r = s1
                .create_process("echo", int(i), Selector::LeastLoaded)
                .await
                .ok()?;
            if r.node() == "s2@127.0.0.1" {
                return None;
            }
        }
        Some(())
    })
    .await;
    println!(
        "creates route around s2 {:?} after it stopped",
        started.elapsed()
    );
    s2.signal("CONT");
}
