//! The beacon and the roles as a user runs them: separate `cluster start` processes, the
//! `requirements` tool, `get_gates`, a provider killed and restarted, the beacon restarted,
//! and `cluster up`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::util::{cluster_async, cluster_spawn, stdout, wait_for, wait_line, Daemon, Proc};
use cluster::beacon::{BeaconClient, Event, SubscriptionEvent};
use cluster::dist::{Cookie, Node, NodeConfig, NodeName};
use cluster::roles::gates::GateManagerClient;

const DEADLINE: Duration = Duration::from_secs(30);
const ROLES: [&str; 5] = [
    "beacon",
    "gate_manager",
    "gate",
    "data_contact",
    "data_service",
];

fn roles_file() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/roles.toml").to_owned()
}

fn start_role(role: &str, epmd: &Daemon) -> Proc {
    start_named(&format!("{role}1@127.0.0.1"), role, epmd)
}

async fn observer(epmd: &Daemon) -> (Node, BeaconClient) {
    let cfg = NodeConfig::hidden_client(
        NodeName::parse("observer@127.0.0.1").unwrap(),
        Cookie::new("e2e"),
    )
    .with_epmd_port(epmd.port);
    let node = Node::start(cfg).await.unwrap();
    let client = BeaconClient::new(node.clone(), NodeName::parse("beacon1@127.0.0.1").unwrap());
    (node, client)
}

async fn requirements(epmd: &Daemon, node: &str, extra: &[&str]) -> std::process::Output {
    let port = epmd.port.to_string();
    let roles = roles_file();
    let mut args = vec![
        "requirements",
        node,
        "--cookie",
        "e2e",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
    ];
    args.extend_from_slice(extra);
    cluster_async(&args).await
}

/// Waits until the beacon lists exactly these nodes as online.
async fn all_online(client: &BeaconClient, expected: usize, limit: Duration) {
    wait_for("every node online at the beacon", limit, || async {
        let nodes = client.nodes().await.ok()?;
        (nodes.iter().filter(|n| n.status == "online").count() == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_register_find_providers_and_recover() {
    let epmd = Daemon::start().await;
    let mut procs: HashMap<&str, Proc> = ROLES.iter().map(|r| (*r, start_role(r, &epmd))).collect();
    let (obs, client) = observer(&epmd).await;
    all_online(&client, 5, DEADLINE).await;

    // requirements: exit 0, naming gate_manager1.
    let out = requirements(&epmd, "gate1@127.0.0.1", &["--wait", "20"]).await;
    assert!(out.status.success(), "{out:?}");
    let table = stdout(&out);
    assert!(
        table.contains("gate_manager   gate_manager1@127.0.0.1   online"),
        "{table}"
    );

    // The gate registered itself with its gate_manager.
    let gm = NodeName::parse("gate_manager1@127.0.0.1").unwrap();
    let gates = wait_for("gate1 in get_gates", DEADLINE, || async {
        let g = GateManagerClient::new(obs.clone(), gm.clone())
            .gates()
            .await
            .ok()?;
        g.contains(&"gate1@127.0.0.1".to_string()).then_some(g)
    })
    .await;
    assert_eq!(gates, ["gate1@127.0.0.1"]);

    // kill -9 gate_manager1: offline at the beacon within 1 s, and requirements exits 1.
    let mut events = client.subscribe().await.unwrap();
    procs.get("gate_manager").unwrap().signal("KILL");
    let killed = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match events.next().await.expect("beacon events") {
                SubscriptionEvent::Beacon(Event::Offline { node, .. })
                    if node == "gate_manager1@127.0.0.1" =>
                {
                    return
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not offline 1 s after kill -9"));
    let offline_after = killed.elapsed();
    let out = requirements(&epmd, "gate1@127.0.0.1", &[]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("gate_manager1@127.0.0.1   offline"),
        "{}",
        stdout(&out)
    );
    println!("offline {offline_after:?} after kill -9");

    // Restarting it brings everything back.
    procs.insert("gate_manager", start_role("gate_manager", &epmd));
    let out = requirements(&epmd, "gate1@127.0.0.1", &["--wait", "20"]).await;
    assert!(out.status.success(), "{out:?}");
    wait_for("gate1 back in get_gates", DEADLINE, || async {
        let g = GateManagerClient::new(obs.clone(), gm.clone())
            .gates()
            .await
            .ok()?;
        g.contains(&"gate1@127.0.0.1".to_string()).then_some(())
    })
    .await;

    // Restarting the beacon: everyone registers again within 5 s of the new beacon's start.
    procs.get("beacon").unwrap().signal("KILL");
    procs.remove("beacon").unwrap().kill();
    let mut beacon = start_role("beacon", &epmd);
    let mut lines = beacon.stdout_lines();
    wait_line(&mut lines, "beacon ready", DEADLINE).await;
    let restarted = Instant::now();
    all_online(&client, 5, Duration::from_secs(5)).await;
    println!(
        "all registered again {:?} after the beacon restarted",
        restarted.elapsed()
    );
    procs.insert("beacon", beacon);
    obs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_role_is_refused_with_the_declared_roles() {
    let out = cluster_async(&[
        "start",
        "--name",
        "x@127.0.0.1",
        "--role",
        "wizard",
        "--cookie",
        "e2e",
        "--roles",
        &roles_file(),
    ])
    .await;
    // A configuration error: exit 2.
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = crate::util::stderr(&out);
    assert!(err.contains("unknown role \"wizard\""), "{err}");
    assert!(
        err.contains("beacon, gate_manager, gate, data_contact, data_service"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_starts_everything_and_sigint_leaves_nothing_behind() {
    let port = crate::util::free_port().to_string();
    // Its own HOME: `up` writes logs under the cache directory, never the user's.
    let home = crate::util::temp_home();
    let mut up = Proc::new(
        std::process::Command::new(crate::util::cluster_bin())
            .args(["up", "--epmd-port", &port, "--roles", &roles_file()])
            .env("CLUSTER_COOKIE", "e2e")
            .env("HOME", home.path())
            .env_remove("XDG_CACHE_HOME")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = up.stdout_lines();
    wait_line(&mut lines, "nodes up", DEADLINE).await;

    let out = cluster_async(&[
        "names",
        "--cluster",
        "--json",
        "--cookie",
        "e2e",
        "--epmd-port",
        &port,
        "--roles",
        &roles_file(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let online: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "online")
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(online.len(), 5, "{nodes}");

    up.signal("INT");
    let status = up.wait_output(DEADLINE).await.status;
    assert!(status.success(), "cluster up exits 0 on SIGINT: {status:?}");
    // No `cluster start` child of this run is left: none has our epmd port in its arguments.
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" start ") && c.contains(&format!("--epmd-port {port} ")))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    // The port mapper `up` started stays, as erl's epmd does; stop it.
    let _ = cluster_async(&["epmd", "--kill", "--port", &port]).await;
}

fn start_named(name: &str, role: &str, epmd: &Daemon) -> Proc {
    cluster_spawn(&[
        "start",
        "--name",
        name,
        "--role",
        role,
        "--cookie",
        "e2e",
        "--epmd-port",
        &epmd.port.to_string(),
        "--roles",
        &roles_file(),
        "--no-epmd-start",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_kills_and_stops_leaves_the_beacon_table_matching_reality() {
    let _serial = crate::util::heavy().await;
    let epmd = Daemon::start().await;
    // A short tick time, so stopped nodes are found out within the run.
    let (_dir, roles) = crate::util::roles_file_with(4, "full");
    let start = |name: &str, role: &str| {
        cluster_spawn(&[
            "start",
            "--name",
            name,
            "--role",
            role,
            "--cookie",
            "e2e",
            "--epmd-port",
            &epmd.port.to_string(),
            "--roles",
            &roles,
            "--no-epmd-start",
        ])
    };
    let _beacon = start("beacon1@127.0.0.1", "beacon");
    let kinds = ["gate_manager", "gate", "data_contact", "data_service"];
    let names: Vec<(String, &str)> = (0..10)
        .map(|i| {
            (
                format!("{}{}@127.0.0.1", kinds[i % 4], i / 4 + 1),
                kinds[i % 4],
            )
        })
        .collect();
    #[derive(PartialEq)]
    enum State {
        Running,
        Stopped,
        Dead,
    }
    let mut procs: Vec<(Option<Proc>, State)> = names
        .iter()
        .map(|(n, r)| (Some(start(n, r)), State::Running))
        .collect();
    let (obs, client) = observer(&epmd).await;
    all_online(&client, 11, DEADLINE).await;

    // 20 s of random kill -9, SIGSTOP, SIGCONT and restarts, paced; seeded, so reproducible.
    let mut rng: u64 = 0x5eed_cafe;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pace = tokio::time::interval(Duration::from_millis(250));
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut kills, mut stops, mut conts, mut restarts) = (0, 0, 0, 0);
    while tokio::time::Instant::now() < end {
        pace.tick().await;
        let i = (next() % names.len() as u64) as usize;
        let (p, state) = &mut procs[i];
        match state {
            State::Dead => {
                *p = Some(start(&names[i].0, names[i].1));
                *state = State::Running;
                restarts += 1;
            }
            State::Stopped => {
                if let Some(p) = p {
                    p.signal("CONT");
                }
                *state = State::Running;
                conts += 1;
            }
            State::Running if next() % 2 == 0 => {
                if let Some(p) = p.take() {
                    p.signal("KILL");
                }
                *state = State::Dead;
                kills += 1;
            }
            State::Running => {
                if let Some(p) = p {
                    p.signal("STOP");
                }
                *state = State::Stopped;
                stops += 1;
            }
        }
    }
    // Wake the stopped ones; then exactly the live processes must be online.
    for (p, state) in &mut procs {
        if *state == State::Stopped {
            if let Some(p) = p {
                p.signal("CONT");
            }
            *state = State::Running;
        }
    }
    let expected: std::collections::BTreeSet<String> = names
        .iter()
        .zip(&procs)
        .filter(|(_, (_, s))| *s == State::Running)
        .map(|((n, _), _)| n.clone())
        .chain(std::iter::once("beacon1@127.0.0.1".to_string()))
        .collect();
    let settled = Instant::now();
    let seen = wait_for(
        "the beacon to match the live processes",
        DEADLINE,
        || async {
            let nodes = client.nodes().await.ok()?;
            let online: std::collections::BTreeSet<String> = nodes
                .iter()
                .filter(|n| n.status == "online")
                .map(|n| n.node.clone())
                .collect();
            (online == expected).then_some(online)
        },
    )
    .await;
    println!(
        "churn: {kills} kills, {stops} stops, {conts} continues, {restarts} restarts; \
         {} online, table true {:?} after the last action",
        seen.len(),
        settled.elapsed()
    );
    assert!(kills > 3 && stops > 3 && restarts > 3);
    obs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_without_a_node_follows_the_beacon_with_registrations() {
    let epmd = Daemon::start().await;
    let _beacon = start_role("beacon", &epmd);
    let gm = start_role("gate_manager", &epmd);
    let (_obs, client) = observer(&epmd).await;
    all_online(&client, 2, DEADLINE).await;
    let port = epmd.port.to_string();
    let roles = roles_file();
    let mut monitor = cluster_spawn(&[
        "monitor",
        "--count",
        "4",
        "--cookie",
        "e2e",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
    ]);
    let mut lines = monitor.stdout_lines();
    // Both subscriptions are in place once the current members are printed.
    wait_line(&mut lines, "member   gate_manager1@127.0.0.1", DEADLINE).await;
    gm.signal("KILL");
    drop(gm);
    let offline = wait_line(&mut lines, "offline", DEADLINE).await;
    assert!(
        offline.contains("gate_manager1@127.0.0.1") && offline.contains("reason="),
        "{offline}"
    );
    let _gm = start_role("gate_manager", &epmd);
    let registered = wait_line(&mut lines, "registered", DEADLINE).await;
    assert!(
        registered.contains("gate_manager1@127.0.0.1 role=gate_manager"),
        "{registered}"
    );
    println!("{offline}\n{registered}");
    assert!(monitor.wait_output(DEADLINE).await.status.success());
}
