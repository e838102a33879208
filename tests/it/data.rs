//! The data roles as a user runs them: separate `cluster start` processes for the beacon, the
//! data_contact and its replicas, called through the distribution protocol by a Rust client
//! node, by Elixir, and over the kv line protocol; killed, stopped, edited and partitioned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{cluster_spawn, have_elixir, stderr, stdout, wait_for, wait_line, Daemon, Proc};
use cluster::dist::term::{atom, binary, int, tuple, Term};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};

const DEADLINE: Duration = Duration::from_secs(60);
const COOKIE: &str = "data";

/// One data tier: a port mapper, a roles file, a folder for stores, and a client node.
struct Tier {
    epmd: Daemon,
    dir: tempfile::TempDir,
    roles: String,
    client: Node,
}

fn b(s: &str) -> Term {
    binary(s.to_owned())
}

fn n(name: &str) -> NodeName {
    NodeName::parse(name).unwrap()
}

impl Tier {
    async fn new(ticktime: u64, data: &str) -> Tier {
        let epmd = Daemon::start().await;
        let dir = tempfile::tempdir().unwrap();
        let repo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/roles.toml"))
            .unwrap()
            .replace("net_ticktime = 60", &format!("net_ticktime = {ticktime}"));
        let roles = dir.path().join("roles.toml");
        std::fs::write(&roles, format!("{repo}\n{data}")).unwrap();
        let mut cfg = NodeConfig::hidden_client(n("data-client@127.0.0.1"), Cookie::new(COOKIE))
            .with_epmd_port(epmd.port);
        // The same tick time as the nodes, or a quiet client would look dead to them.
        cfg.ticktime = Duration::from_secs(ticktime);
        let client = Node::start(cfg).await.unwrap();
        Tier {
            epmd,
            dir,
            roles: roles.to_string_lossy().into_owned(),
            client,
        }
    }

    fn store_dir(&self, node: &str) -> std::path::PathBuf {
        self.dir.path().join(node)
    }

    fn start_with_roles(&self, role: &str, node: &str, roles: &str, extra: &[&str]) -> Proc {
        let port = self.epmd.port.to_string();
        let data_dir = self.store_dir(node).to_string_lossy().into_owned();
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
            roles,
            "--no-epmd-start",
        ];
        if role != "beacon" {
            args.extend_from_slice(&["--data-dir", &data_dir]);
        }
        args.extend_from_slice(extra);
        cluster_spawn(&args)
    }

    fn start(&self, role: &str, node: &str, extra: &[&str]) -> Proc {
        self.start_with_roles(role, node, &self.roles, extra)
    }

    async fn try_call(&self, node: &str, req: Term, limit: Duration) -> Result<Term, String> {
        self.client
            .call(&Dest::name("data", &n(node)), req, limit)
            .await
            .map_err(|e| e.to_string())
    }

    async fn call(&self, node: &str, req: Term) -> Term {
        self.try_call(node, req, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("call to {node}: {e}"))
    }

    async fn status(&self, node: &str) -> Option<Term> {
        let r = self
            .try_call(node, atom("status"), Duration::from_secs(2))
            .await
            .ok()?;
        match r.as_tuple() {
            Some([ok, m]) if ok.is_atom("ok") => Some(m.clone()),
            _ => None,
        }
    }

    async fn put(&self, node: &str, bucket: &str, key: &str, value: Term) -> u64 {
        let r = self
            .call(node, tuple(vec![atom("put"), b(bucket), b(key), value]))
            .await;
        match r.as_tuple() {
            Some([ok, v]) if ok.is_atom("ok") => v.as_int().unwrap() as u64,
            _ => panic!("put {bucket}/{key} on {node}: {r}"),
        }
    }

    /// Waits until `node` is a replica following its writer with every version up to `head`.
    async fn caught_up(&self, node: &str, head: u64) -> Term {
        wait_for(&format!("{node} caught up to {head}"), DEADLINE, || async {
            let s = self.status(node).await?;
            let version = s.map_get_atom("version")?.as_int()? as u64;
            let following = s.map_get_atom("phase")?.is_atom("following");
            (following && version >= head && s.map_get_atom("stale")?.is_atom("false")).then_some(s)
        })
        .await
    }

    /// Starts the beacon and a data_contact `dc1`, and waits until dc1 answers.
    async fn with_writer(&self, procs: &mut HashMap<String, Proc>, extra: &[&str]) {
        procs.insert(
            "beacon".into(),
            self.start("beacon", "beacon1@127.0.0.1", &[]),
        );
        procs.insert(
            "dc1".into(),
            self.start("data_contact", "dc1@127.0.0.1", extra),
        );
        self.writer_up("dc1@127.0.0.1").await;
    }

    /// The beacon, dc1, and a replica ds1 that follows `writes` puts (`p`/`k0`… = 0…) and is
    /// then stopped cleanly. Returns the writer's head.
    async fn replica_stopped_after(&self, procs: &mut HashMap<String, Proc>, writes: i64) -> u64 {
        self.with_writer(procs, &[]).await;
        let ds = self.start("data_service", "ds1@127.0.0.1", &[]);
        let mut head = 0;
        for i in 0..writes {
            head = self
                .put("dc1@127.0.0.1", "p", &format!("k{i}"), int(i))
                .await;
        }
        self.caught_up("ds1@127.0.0.1", head).await;
        ds.signal("TERM");
        let _ = ds.wait_output(DEADLINE).await;
        head
    }

    async fn writer_up(&self, node: &str) -> Term {
        wait_for(&format!("{node} answers"), DEADLINE, || async {
            self.status(node).await
        })
        .await
    }
}

fn int_of(t: &Term, key: &str) -> i64 {
    t.map_get_atom(key)
        .and_then(Term::as_int)
        .unwrap_or_else(|| panic!("no {key} in {t}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elixir_writes_through_one_replica_and_reads_its_write_through_another() {
    if !have_elixir("elixir_writes_through_one_replica_and_reads_its_write_through_another") {
        return;
    }
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    for r in ["ds1", "ds2"] {
        procs.insert(
            r.into(),
            tier.start("data_service", &format!("{r}@127.0.0.1"), &[]),
        );
    }
    for r in ["ds1@127.0.0.1", "ds2@127.0.0.1"] {
        tier.caught_up(r, 0).await;
    }
    let script = r#"
        ds1 = :"ds1@127.0.0.1"
        ds2 = :"ds2@127.0.0.1"
        {:ok, v} = GenServer.call({:data, ds1}, {:put, "players", "42", %{name: "hello", level: 3}})
        IO.puts("put #{v}")
        r = GenServer.call({:data, ds2}, {:get, "players", "42", v})
        IO.puts("read #{inspect(r)}")
        c = GenServer.call({:data, ds2}, {:put, "players", "42", :other, 0})
        IO.puts("cas #{inspect(c)} #{inspect(c == {:error, {:conflict, v}})}")
        {:ok, v2} = GenServer.call({:data, ds2}, {:put, "players", "42", :next, v})
        IO.puts("cas_ok #{v2 > v}")
        IO.puts("list #{inspect(GenServer.call({:data, ds1}, {:list, "players", "", 10}) |> elem(1) |> length)}")
    "#;
    let out = crate::util::elixir("ex_data@127.0.0.1", tier.epmd.port, COOKIE, script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}\n{err}");
    let v: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("put "))
        .unwrap_or_else(|| panic!("{text}\n{err}"))
        .parse()
        .unwrap();
    assert!(
        text.contains(&format!(
            "read {{:ok, %{{level: 3, name: \"hello\"}}, {v}}}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("cas {{:error, {{:conflict, {v}}}}} true")),
        "{text}"
    );
    assert!(text.contains("cas_ok true"), "{text}");
    assert!(text.contains("list 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_writer_mid_burst_loses_no_acknowledged_write() {
    let tier = Arc::new(Tier::new(60, "").await);
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    // 32 writers, each writing its own keys once; every acknowledgement is logged.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let tier = tier.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{w}-{i}");
                let req = tuple(vec![atom("put"), b("burst"), b(&key), int(i)]);
                match tier
                    .try_call("dc1@127.0.0.1", req, Duration::from_secs(5))
                    .await
                {
                    Ok(r) => match r.as_tuple() {
                        Some([ok, v]) if ok.is_atom("ok") => acked
                            .lock()
                            .unwrap()
                            .push((key, v.as_int().unwrap() as u64)),
                        _ => return,
                    },
                    Err(_) => return,
                }
            }
        }));
    }
    wait_for("300 acknowledged writes", DEADLINE, || async {
        (acked.lock().unwrap().len() >= 300).then_some(())
    })
    .await;
    procs.get("dc1").unwrap().signal("KILL");
    for t in tasks {
        let _ = tokio::time::timeout(DEADLINE, t).await;
    }
    let acked = acked.lock().unwrap().clone();
    procs.insert(
        "dc1".into(),
        tier.start("data_contact", "dc1@127.0.0.1", &[]),
    );
    tier.writer_up("dc1@127.0.0.1").await;
    let mut missing = Vec::new();
    for (key, version) in &acked {
        let r = tier
            .call(
                "dc1@127.0.0.1",
                tuple(vec![atom("get"), b("burst"), b(key)]),
            )
            .await;
        match r.as_tuple() {
            Some([ok, _, v]) if ok.is_atom("ok") && v.as_int() == Some(*version as i64) => {}
            _ => missing.push(format!("{key}@{version}: {r}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost after kill -9: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "{} acknowledged writes all present after kill -9",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_resumes_from_its_version_without_a_snapshot() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    let mut head = tier.replica_stopped_after(&mut procs, 50).await;
    for i in 50..300 {
        head = tier
            .put("dc1@127.0.0.1", "p", &format!("k{i}"), int(i))
            .await;
    }
    let mut ds = tier.start("data_service", "ds1@127.0.0.1", &[]);
    let mut err = ds.stderr_lines();
    let line = wait_line(&mut err, "resuming from version", DEADLINE).await;
    assert!(line.contains("resuming from version 50"), "{line}");
    let s = tier.caught_up("ds1@127.0.0.1", head).await;
    assert_eq!(int_of(&s, "snapshots"), 0, "{s}");
    assert_eq!(int_of(&s, "resumes"), 1, "{s}");
    let r = tier
        .call("ds1@127.0.0.1", tuple(vec![atom("get"), b("p"), b("k299")]))
        .await;
    assert_eq!(r, tuple(vec![atom("ok"), int(299), int(head as i64)]));
    procs.insert("ds1".into(), ds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_internal_messages_neither_release_reads_early_nor_stop_the_data_process() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    procs.insert(
        "ds1".into(),
        tier.start("data_service", "ds1@127.0.0.1", &[]),
    );
    let head = tier.put("dc1@127.0.0.1", "p", "k", int(1)).await;
    tier.caught_up("ds1@127.0.0.1", head).await;
    let tier = Arc::new(tier);
    // A read waiting for a version far ahead…
    let far = head as i64 + 1_000_000;
    let t = tier.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let req = tuple(vec![atom("get"), b("p"), b("k"), int(far)]);
        let r = t
            .try_call("ds1@127.0.0.1", req, Duration::from_secs(10))
            .await;
        (r, started.elapsed())
    });
    wait_for("the read parked on ds1", DEADLINE, || async {
        let s = tier.status("ds1@127.0.0.1").await?;
        (int_of(&s, "waiting") == 1).then_some(())
    })
    .await;
    // …is not answered by anyone who says the replica got there, and a version that does not
    // fit does not stop the data process.
    for v in [int(far * 10), int(-1)] {
        tier.client
            .send(
                &Dest::name("data", &n("ds1@127.0.0.1")),
                tuple(vec![atom("$applied"), v]),
            )
            .unwrap();
    }
    let (r, took) = waiting.await.unwrap();
    let timeout = tuple(vec![
        atom("error"),
        tuple(vec![atom("timeout"), int(head as i64)]),
    ]);
    assert_eq!(r.unwrap(), timeout);
    assert!(took >= Duration::from_secs(3), "answered after {took:?}");
    assert!(
        tier.status("ds1@127.0.0.1").await.is_some(),
        "the data process is gone"
    );
}

/// Fills the writer with `count` values of `size` bytes, 8 writes in flight.
async fn fill(tier: &Arc<Tier>, bucket: &str, count: usize, size: usize) -> u64 {
    let value = binary(vec![7u8; size]);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (tier, value, next, bucket) =
            (tier.clone(), value.clone(), next.clone(), bucket.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut head = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return head;
                }
                head = head.max(
                    tier.put("dc1@127.0.0.1", &bucket, &format!("{i:06}"), value.clone())
                        .await,
                );
            }
        }));
    }
    let mut head = 0;
    for t in tasks {
        head = head.max(t.await.unwrap());
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_snapshot_restarts_and_completes() {
    let _serial = crate::util::heavy().await;
    let tier = Arc::new(Tier::new(60, "").await);
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    let head = fill(&tier, "big", 200, 1 << 20).await;
    let mut ds = tier.start("data_service", "ds1@127.0.0.1", &[]);
    let mut err = ds.stderr_lines();
    wait_line(&mut err, "taking a snapshot", DEADLINE).await;
    ds.signal("KILL");
    let _ = ds.wait_output(DEADLINE).await;
    let ds = tier.start("data_service", "ds1@127.0.0.1", &[]);
    let s = tier.caught_up("ds1@127.0.0.1", head).await;
    assert_eq!(int_of(&s, "snapshots"), 1, "{s}");
    assert_eq!(int_of(&s, "entries"), 200, "{s}");
    procs.insert("ds1".into(), ds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_replica_store_is_found_out_on_start_and_resynced() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    let head = tier.replica_stopped_after(&mut procs, 20).await;

    // Edit one value behind the replica's back, as someone with a redb tool would.
    let file = tier.store_dir("ds1@127.0.0.1").join("store.redb");
    {
        // The store's layout: (bucket, key) → (version, ETF value).
        type Entries =
            redb::TableDefinition<'static, (&'static str, &'static [u8]), (u64, &'static [u8])>;
        const ENTRIES: Entries = redb::TableDefinition::new("entries");
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(("p", &b"k3"[..]), (4u64, &b"\x83d\x00\x06edited"[..]))
            .unwrap();
        txn.commit().unwrap();
    }
    let mut ds = tier.start("data_service", "ds1@127.0.0.1", &[]);
    let mut err = ds.stderr_lines();
    wait_line(&mut err, "does not add up to its own digest", DEADLINE).await;
    let s = tier.caught_up("ds1@127.0.0.1", head).await;
    assert_eq!(int_of(&s, "snapshots"), 1, "{s}");
    assert_eq!(int_of(&s, "resyncs"), 1, "{s}");
    let r = tier
        .call("ds1@127.0.0.1", tuple(vec![atom("get"), b("p"), b("k3")]))
        .await;
    assert_eq!(r, tuple(vec![atom("ok"), int(3), int(4)]));
    procs.insert("ds1".into(), ds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_serves_stale_reads_refuses_writes_and_catches_up_after() {
    let tier = Tier::new(2, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    procs.insert(
        "ds1".into(),
        tier.start("data_service", "ds1@127.0.0.1", &[]),
    );
    let v = tier.put("dc1@127.0.0.1", "p", "k", b("before")).await;
    tier.caught_up("ds1@127.0.0.1", v).await;

    procs.get("dc1").unwrap().signal("STOP");
    let stopped = Instant::now();
    let stale = wait_for("ds1 marks its reads stale", DEADLINE, || async {
        let r = tier
            .call("ds1@127.0.0.1", tuple(vec![atom("get"), b("p"), b("k")]))
            .await;
        match r.as_tuple() {
            Some([tag, lag, inner]) if tag.is_atom("stale") => Some((lag.clone(), inner.clone())),
            _ => None,
        }
    })
    .await;
    println!("stale after {:?}: {}", stopped.elapsed(), stale.0);
    // The replica reports it to the beacon, and `names --cluster` shows it.
    let port = tier.epmd.port.to_string();
    let names = || async {
        let out = crate::util::cluster_async(&[
            "names",
            "--cluster",
            "--cookie",
            COOKIE,
            "--epmd-port",
            &port,
            "--roles",
            &tier.roles,
        ])
        .await;
        stdout(&out)
    };
    let row = wait_for("names --cluster shows ds1 stale", DEADLINE, || async {
        let text = names().await;
        let row = text
            .lines()
            .find(|l| l.starts_with("ds1@127.0.0.1"))?
            .to_owned();
        row.contains("stale=true").then_some(row)
    })
    .await;
    assert!(row.contains("phase=cut_off"), "{row}");
    assert_eq!(stale.1, tuple(vec![atom("ok"), b("before"), int(v as i64)]));
    assert!(
        stale.0.map_get_atom("ms").and_then(Term::as_int).unwrap() > 0,
        "{}",
        stale.0
    );
    // A write through the cut-off replica fails, clearly and within a bound; nothing is
    // applied locally.
    let t = Instant::now();
    let r = tier
        .call(
            "ds1@127.0.0.1",
            tuple(vec![atom("put"), b("p"), b("k"), b("during")]),
        )
        .await;
    assert!(
        matches!(r.as_tuple(), Some([e, why]) if e.is_atom("error")
            && why.as_tuple().is_some_and(|w| w[1] == atom("dc1@127.0.0.1"))),
        "{r}"
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let r = tier
        .call("ds1@127.0.0.1", tuple(vec![atom("get"), b("p"), b("k")]))
        .await;
    assert!(
        r.to_string().contains("before"),
        "the refused write was applied: {r}"
    );

    procs.get("dc1").unwrap().signal("CONT");
    let v2 = wait_for("dc1 takes writes again", DEADLINE, || async {
        let r = tier
            .try_call(
                "dc1@127.0.0.1",
                tuple(vec![atom("put"), b("p"), b("k"), b("after")]),
                Duration::from_secs(2),
            )
            .await
            .ok()?;
        match r.as_tuple() {
            Some([ok, v]) if ok.is_atom("ok") => Some(v.as_int()? as u64),
            _ => None,
        }
    })
    .await;
    let s = tier.caught_up("ds1@127.0.0.1", v2).await;
    let r = tier
        .call("ds1@127.0.0.1", tuple(vec![atom("get"), b("p"), b("k")]))
        .await;
    assert_eq!(
        r,
        tuple(vec![atom("ok"), b("after"), int(v2 as i64)]),
        "{s}"
    );
    assert_eq!(int_of(&s, "resyncs"), 0, "{s}");
    wait_for(
        "names --cluster shows ds1 following again",
        DEADLINE,
        || async {
            let text = names().await;
            let row = text
                .lines()
                .find(|l| l.starts_with("ds1@127.0.0.1"))?
                .to_owned();
            (row.contains("stale=false") && row.contains("lag_versions=0")).then_some(row)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1gb_snapshot_streams_without_a_false_nodedown_or_a_slow_call() {
    let _serial = crate::util::heavy().await;
    let tier = Arc::new(Tier::new(4, "").await);
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    tier.put("dc1@127.0.0.1", "probe", "k", int(1)).await;
    let t = Instant::now();
    let head = fill(&tier, "big", 1024, 1 << 20).await;
    println!("1 GiB written in {:?}", t.elapsed());
    let mut ds = tier.start("data_service", "ds1@127.0.0.1", &[]);
    let mut err = ds.stderr_lines();
    // While the snapshot streams, call both nodes over the distribution protocol every 50 ms.
    let slowest = Arc::new(Mutex::new((Duration::ZERO, String::new())));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (tier, slowest, done) = (tier.clone(), slowest.clone(), done.clone());
        tokio::spawn(async move {
            let mut calls = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for node in ["dc1@127.0.0.1", "ds1@127.0.0.1", "ds1@127.0.0.1/net_kernel"] {
                    let t = Instant::now();
                    let ok = if let Some(name) = node.strip_suffix("/net_kernel") {
                        tier.client
                            .call(
                                &Dest::name("net_kernel", &n(name)),
                                tuple(vec![atom("is_auth"), atom("data-client@127.0.0.1")]),
                                Duration::from_secs(5),
                            )
                            .await
                            .is_ok()
                    } else {
                        tier.try_call(
                            node,
                            tuple(vec![atom("get"), b("probe"), b("k")]),
                            Duration::from_secs(5),
                        )
                        .await
                        .is_ok()
                    };
                    let took = t.elapsed();
                    if ok {
                        calls += 1;
                        let mut s = slowest.lock().unwrap();
                        if took > s.0 {
                            *s = (took, node.to_owned());
                        }
                        if took > Duration::from_millis(50) {
                            println!("slow: {node} {took:?}");
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            calls
        })
    };
    wait_line(&mut err, "taking a snapshot", DEADLINE).await;
    let t = Instant::now();
    let s = tier.caught_up("ds1@127.0.0.1", head).await;
    let took = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = prober.await.unwrap();
    println!(
        "1 GiB snapshot in {took:?} ({:.0} MB/s); {calls} calls, slowest {:?}",
        1024.0 / took.as_secs_f64(),
        slowest.lock().unwrap()
    );
    assert_eq!(int_of(&s, "entries"), 1025, "{s}");
    assert_eq!(int_of(&s, "snapshots"), 1, "{s}");
    // No nodedown: the replica never lost its writer while the snapshot streamed.
    let mut log = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(500), err.recv()).await {
        log.push(line);
    }
    assert!(
        !log.iter().any(|l| l.contains("nodedown")),
        "{}",
        log.join("\n")
    );
    procs.insert("ds1".into(), ds);
    let (worst, node) = slowest.lock().unwrap().clone();
    assert!(
        worst < Duration::from_millis(100),
        "a call to {node} took {worst:?} while the snapshot streamed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_by_bucket_hop_by_hop_and_loops_are_refused() {
    let tier = Tier::new(
        60,
        "[data]\nroutes = [[\"a\", \"m\", \"dc1@127.0.0.1\"], [\"n\", \"z\", \"dc2@127.0.0.1\"]]\n",
    )
    .await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    // dc2 has a table of its own that sends n..z back to dc1: a loop for those buckets.
    let looped = tier.dir.path().join("loop.toml");
    let text = std::fs::read_to_string(&tier.roles).unwrap().replace(
        "[\"n\", \"z\", \"dc2@127.0.0.1\"]",
        "[\"n\", \"r\", \"dc2@127.0.0.1\"], [\"s\", \"z\", \"dc1@127.0.0.1\"]",
    );
    std::fs::write(&looped, text).unwrap();
    procs.insert(
        "dc2".into(),
        tier.start_with_roles(
            "data_contact",
            "dc2@127.0.0.1",
            &looped.to_string_lossy(),
            &[],
        ),
    );
    tier.writer_up("dc2@127.0.0.1").await;
    // "nuts" belongs to dc2: written through dc1, it lands on dc2 only.
    let v = tier.put("dc1@127.0.0.1", "nuts", "k", b("v")).await;
    let on_dc2 = tier
        .call("dc2@127.0.0.1", tuple(vec![atom("get"), b("nuts"), b("k")]))
        .await;
    assert_eq!(on_dc2, tuple(vec![atom("ok"), b("v"), int(v as i64)]));
    let via_dc1 = tier
        .call("dc1@127.0.0.1", tuple(vec![atom("get"), b("nuts"), b("k")]))
        .await;
    assert_eq!(via_dc1, on_dc2);
    let s = tier.status("dc1@127.0.0.1").await.unwrap();
    assert_eq!(int_of(&s, "entries"), 0, "{s}");
    // Uncovered.
    let r = tier
        .call(
            "dc1@127.0.0.1",
            tuple(vec![atom("get"), b("Zebra"), b("k")]),
        )
        .await;
    assert_eq!(
        r,
        tuple(vec![
            atom("error"),
            tuple(vec![atom("no_route"), b("Zebra")])
        ])
    );
    // "tea": dc1 says dc2, dc2 says dc1.
    let r = tier
        .call("dc1@127.0.0.1", tuple(vec![atom("get"), b("tea"), b("k")]))
        .await;
    assert_eq!(
        r.to_string(),
        "{error,{routing_loop,['dc1@127.0.0.1','dc2@127.0.0.1','dc1@127.0.0.1']}}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_protocol_answers_as_the_guide_and_survives_garbage() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    procs.insert(
        "beacon".into(),
        tier.start("beacon", "beacon1@127.0.0.1", &[]),
    );
    let mut dc = tier.start("data_contact", "dc1@127.0.0.1", &["--kv-port", "0"]);
    let mut out = dc.stdout_lines();
    let line = wait_line(&mut out, "kv line protocol on port", DEADLINE).await;
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();
    procs.insert("dc1".into(), dc);
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    async fn exchange(sock: &mut tokio::net::TcpStream, send: &[u8], expect: &str) {
        sock.write_all(send).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let ok = tokio::time::timeout(Duration::from_secs(10), async {
            while !got.ends_with(expect.as_bytes()) {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(
            ok.is_ok(),
            "waited for {expect:?}, got {:?}",
            String::from_utf8_lossy(&got)
        );
        assert_eq!(String::from_utf8_lossy(&got), expect);
    }
    exchange(&mut sock, b"PUT shopping milk 1\r\n", "NOT FOUND\r\n").await;
    exchange(&mut sock, b"CREATE shopping\r\n", "OK\r\n").await;
    exchange(&mut sock, b"PUT shopping milk 1\r\n", "OK\r\n").await;
    exchange(&mut sock, b"GET shopping milk\r\n", "1\r\nOK\r\n").await;
    exchange(&mut sock, b"GET shopping eggs\r\n", "\r\nOK\r\n").await;
    exchange(&mut sock, b"DELETE shopping milk\r\n", "OK\r\n").await;
    exchange(&mut sock, b"GET shopping milk\r\n", "\r\nOK\r\n").await;
    // Garbage, binary junk, a half line completed later, and an over-long line.
    exchange(&mut sock, b"HELLO there\r\n", "UNKNOWN COMMAND\r\n").await;
    exchange(
        &mut sock,
        b"\xff\xfe\x00\r\n",
        "ERROR the line is not UTF-8\r\n",
    )
    .await;
    sock.write_all(b"PUT shop").await.unwrap();
    exchange(&mut sock, b"ping eggs 3\r\n", "OK\r\n").await;
    let long = vec![b'x'; 200_000];
    sock.write_all(&long).await.unwrap();
    exchange(&mut sock, b"\r\n", "ERROR line longer than 65536 bytes\r\n").await;
    // Still the same connection, still working.
    exchange(
        &mut sock,
        b"PUT shopping eggs 3\r\nGET shopping eggs\r\n",
        "OK\r\n3\r\nOK\r\n",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_bad_store_files_get_clear_errors() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &["--max-value-size", "1024"])
        .await;
    let r = tier
        .call(
            "dc1@127.0.0.1",
            tuple(vec![atom("put"), b("p"), b("k"), binary(vec![0u8; 2000])]),
        )
        .await;
    assert_eq!(
        r,
        tuple(vec![
            atom("error"),
            tuple(vec![atom("too_large"), int(2006), int(1024)])
        ])
    );
    let r = tier
        .call(
            "dc1@127.0.0.1",
            tuple(vec![atom("put"), b("p"), int(1), int(1)]),
        )
        .await;
    assert!(r.to_string().contains("the key must be a binary"), "{r}");
    // The node is fine.
    tier.put("dc1@127.0.0.1", "p", "k", int(1)).await;

    // A store file that is not a redb file: a clear error, exit 1, and the file untouched.
    let dir = tier.store_dir("dc9@127.0.0.1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("store.redb"), b"my notes, not a database").unwrap();
    let out = tier
        .start("data_contact", "dc9@127.0.0.1", &[])
        .wait_output(DEADLINE)
        .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("cannot open the store") && err.contains("is not a redb store"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("store.redb")).unwrap(),
        b"my notes, not a database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_kv_reads_and_writes_with_erlang_terms_and_exit_codes() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &["--max-value-size", "1000"])
        .await;
    let port = tier.epmd.port.to_string();
    let kv = |args: &[&str]| {
        let mut all = vec![
            "kv",
            "--cookie",
            COOKIE,
            "--epmd-port",
            &port,
            "--roles",
            &tier.roles,
        ];
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            crate::util::cluster_async(&refs).await
        }
    };
    // No --node: the beacon names dc1.
    let out = kv(&["put", "players", "42", "<<\"hello\">>"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "version 1");
    let out = kv(&["get", "players", "42"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "<<\"hello\">>");
    let out = kv(&[
        "--node",
        "dc1@127.0.0.1",
        "put",
        "players",
        "7",
        "#{hp => 10, name => <<\"x\">>}",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let out = kv(&["list", "players", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["key"], "42");
    let out = kv(&["get", "players", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("not found"), "{out:?}");
    let out = kv(&["put", "players", "42", "1", "--expect", "0"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("conflict: the key is at version 1"),
        "{out:?}"
    );
    let out = kv(&["put", "players", "42", "{unclosed"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("the value is not an Erlang term: 1:"),
        "{out:?}"
    );
    let big = format!("<<\"{}\">>", "x".repeat(2000));
    let out = kv(&["put", "players", "big", &big]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("takes at most 1000"), "{out:?}");
    let out = kv(&["buckets"]).await;
    assert_eq!(stdout(&out).trim(), "players", "{out:?}");
    let out = kv(&["status", "--json"]).await;
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["role"], "writer", "{s}");
    assert_eq!(s["version"], 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_bulk_port_do_not_keep_a_replica_out() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    let v = tier.put("dc1@127.0.0.1", "p", "k", int(1)).await;
    let s = tier.status("dc1@127.0.0.1").await.unwrap();
    let port = int_of(&s, "bulk_port") as u16;
    // More idle connections than the writer serves replicas; none proves a cookie.
    let mut idle = Vec::new();
    for _ in 0..80 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            idle.push(c);
        }
    }
    let t = Instant::now();
    procs.insert(
        "ds1".into(),
        tier.start("data_service", "ds1@127.0.0.1", &[]),
    );
    tier.caught_up("ds1@127.0.0.1", v).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the replica waited {:?} behind {} idle connections",
        t.elapsed(),
        idle.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_data_process_is_back_at_once_over_the_same_store() {
    let tier = Tier::new(60, "").await;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    tier.with_writer(&mut procs, &[]).await;
    let v = tier.put("dc1@127.0.0.1", "p", "k", int(1)).await;
    // Find its pid with sys:get_status, and kill it.
    let mut mb = tier.client.spawn_mailbox();
    let pid = {
        let r = mb
            .system_call(
                &Dest::name("data", &n("dc1@127.0.0.1")),
                atom("get_status"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        match r.as_tuple() {
            Some([_, Term::Pid(p), ..]) => p.clone(),
            _ => panic!("get_status: {r}"),
        }
    };
    tier.client.exit(&pid, atom("kill")).unwrap();
    let back = wait_for("a new data process", DEADLINE, || async {
        let r = tier
            .try_call(
                "dc1@127.0.0.1",
                tuple(vec![atom("get"), b("p"), b("k")]),
                Duration::from_secs(1),
            )
            .await
            .ok()?;
        (r == tuple(vec![atom("ok"), int(1), int(v as i64)])).then_some(())
    });
    back.await;
}
