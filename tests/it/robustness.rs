//! One stalled or hostile peer must never wedge anything: the attacks of the robustness issue,
//! each under a deadline, each printing the time to detection or recovery and the worst
//! latency a bystander saw (collected for the closing note with `--nocapture`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::beacon::{BeaconClient, Registration};
use cluster::dist::builtin::net_kernel;
use cluster::dist::proto::Control;
use cluster::dist::term::{atom, tuple, Pid, Term};
use cluster::dist::{Dest, Node, NodeConfig, NodeEvent, NodeName};

use crate::util::{
    cluster_async, cluster_spawn, heavy, next_event, node_config, roles_file_with, rss_kib,
    start_node, stdout, wait_for, wait_line, Daemon, Proc, RawPeer,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn n(s: &str) -> NodeName {
    NodeName::parse(s).unwrap()
}

fn reg(node: &str, resource: &str, requirements: &[&str]) -> Registration {
    Registration {
        node: node.into(),
        module: format!("Elixir.{resource}"),
        resource: resource.into(),
        requirements: requirements.iter().map(|s| s.to_string()).collect(),
    }
}

/// A node running the beacon, in-process, with the given tick time.
async fn beacon_node(epmd: &Daemon, ticktime: Duration) -> Node {
    let mut cfg = node_config("beacon1@127.0.0.1", epmd, "rob");
    cfg.ticktime = ticktime;
    let node = Node::start(cfg).await.unwrap();
    assert!(cluster::beacon::server::start(&node));
    wait_for("the beacon", DEADLINE, || async {
        node.is_registered("beacon").then_some(())
    })
    .await;
    node
}

/// Registers made-up nodes with the beacon as fast as the beacon answers, until `stop`, so it
/// pushes to every subscriber all the time. Registrations carry long requirement lists, so
/// every push is a few kilobytes.
fn churn(
    node: Node,
    beacon: NodeName,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let client = BeaconClient::new(node, beacon);
        let reqs: Vec<String> = (0..100)
            .map(|i| format!("requirement_number_{i:04}"))
            .collect();
        let reqs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        let mut i = 0u64;
        while !stop.is_cancelled() {
            let r = reg(&format!("fake{}@127.0.0.1", i % 50), "fake", &reqs);
            let _ = client.register(r).await;
            i += 1;
        }
        i
    })
}

/// Calls `get_requirements` every 20 ms until `stop`; returns the worst latency seen.
fn bystander(
    node: Node,
    beacon: NodeName,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let client = BeaconClient::new(node.clone(), beacon);
        let mut worst = Duration::ZERO;
        while !stop.is_cancelled() {
            let t = Instant::now();
            client
                .offer(node.name().as_str())
                .await
                .expect("the beacon answers");
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_stalls_nobody_and_is_declared_down() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let ticktime = Duration::from_secs(4);
    let beacon = beacon_node(&epmd, ticktime).await;
    let mut events = beacon.monitor_nodes();

    // A peer that completes the handshake, subscribes, and then never reads or writes again.
    let mut silent =
        RawPeer::connect("silent@127.0.0.1", "beacon1@127.0.0.1", epmd.port, "rob").await;
    let me = silent.pid(1);
    let call = tuple(vec![
        atom("$gen_call"),
        tuple(vec![Term::Pid(me.clone()), Term::Ref(beacon.make_ref())]),
        tuple(vec![atom("subscribe"), Term::Pid(me.clone())]),
    ]);
    silent
        .send(
            &Control::RegSend {
                from: me,
                to: "beacon".into(),
            },
            Some(&call),
        )
        .await;
    let quiet_since = Instant::now();

    let stop = tokio_util::sync::CancellationToken::new();
    let churner = start_node("churner@127.0.0.1", &epmd, "rob").await;
    let watcher = start_node("watcher@127.0.0.1", &epmd, "rob").await;
    BeaconClient::new(watcher.clone(), beacon.name().clone())
        .register(reg("watcher@127.0.0.1", "watch", &[]))
        .await
        .unwrap();
    let pushes = churn(churner, beacon.name().clone(), stop.clone());
    let worst = bystander(watcher, beacon.name().clone(), stop.clone());

    let down = next_event(
        "the silent peer's nodedown",
        &mut events,
        DEADLINE,
        |ev| match ev {
            NodeEvent::Down { node, reason, .. } if node.as_str() == "silent@127.0.0.1" => {
                Some(reason)
            }
            _ => None,
        },
    )
    .await;
    let detected = quiet_since.elapsed();
    // Keep attacking a little after detection, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let registrations = pushes.await.unwrap();
    let worst = worst.await.unwrap();
    println!(
        "silent subscriber: down ({down}) {detected:?} after its last byte (ticktime {ticktime:?}); \
         {registrations} registrations pushed meanwhile; worst bystander call {worst:?}"
    );
    assert_eq!(down, "net_tick_timeout");
    assert!(
        detected <= ticktime + ticktime / 4 + Duration::from_secs(1),
        "{detected:?}"
    );
    assert!(
        worst < Duration::from_millis(100),
        "a bystander waited {worst:?}"
    );
    assert!(
        registrations > 100,
        "the beacon kept serving: {registrations}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_role_node_is_declared_down_while_the_beacon_pushes_to_it() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let (_dir, roles) = roles_file_with(4, "requirements");
    let beacon = beacon_node(&epmd, Duration::from_secs(4)).await;
    let port = epmd.port.to_string();
    let gate = cluster_spawn(&[
        "start",
        "--name",
        "gate1@127.0.0.1",
        "--role",
        "gate",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
        "--no-epmd-start",
    ]);
    let client = BeaconClient::new(beacon.clone(), beacon.name().clone());
    wait_for("gate1 online", DEADLINE, || async {
        client
            .nodes()
            .await
            .ok()?
            .iter()
            .any(|n| n.node == "gate1@127.0.0.1" && n.status == "online")
            .then_some(())
    })
    .await;
    let mut sub = client.subscribe().await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let churner = start_node("churner@127.0.0.1", &epmd, "rob").await;
    let watcher = start_node("watcher@127.0.0.1", &epmd, "rob").await;
    BeaconClient::new(watcher.clone(), beacon.name().clone())
        .register(reg("watcher@127.0.0.1", "watch", &[]))
        .await
        .unwrap();
    let pushes = churn(churner, beacon.name().clone(), stop.clone());
    let worst = bystander(watcher, beacon.name().clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.signal("STOP");
    let stopped = Instant::now();
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(cluster::beacon::SubscriptionEvent::Beacon(
                cluster::beacon::Event::Offline { node, .. },
            )) = sub.next().await
            {
                if node == "gate1@127.0.0.1" {
                    return;
                }
            }
        }
    })
    .await
    .expect("gate1 offline");
    let detected = stopped.elapsed();
    stop.cancel();
    let registrations = pushes.await.unwrap();
    let worst = worst.await.unwrap();
    gate.signal("CONT");
    println!(
        "stopped gate: offline {detected:?} after SIGSTOP (ticktime 4 s); {registrations} \
         registrations pushed meanwhile; worst bystander call {worst:?}"
    );
    assert!(detected <= Duration::from_secs(6), "{detected:?}");
    assert!(
        worst < Duration::from_millis(100),
        "a bystander waited {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_is_auth_without_reading_leaves_pings_answered() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let victim = start_node("victim@127.0.0.1", &epmd, "rob").await;
    let mut flood =
        RawPeer::connect("flooder@127.0.0.1", "victim@127.0.0.1", epmd.port, "rob").await;
    let attack = tokio::spawn(async move {
        let me = flood.pid(1);
        for _ in 0..70_000 {
            let call = tuple(vec![
                atom("$gen_call"),
                tuple(vec![Term::Pid(me.clone()), atom("tag")]),
                tuple(vec![atom("is_auth"), atom("flooder@127.0.0.1")]),
            ]);
            flood
                .send(
                    &Control::RegSend {
                        from: me.clone(),
                        to: "net_kernel".into(),
                    },
                    Some(&call),
                )
                .await;
        }
        flood
    });
    let pinger = start_node("pinger@127.0.0.1", &epmd, "rob").await;
    let mut worst = Duration::ZERO;
    let mut pings = 0;
    while !attack.is_finished() || pings < 20 {
        let t = Instant::now();
        net_kernel::ping(&pinger, victim.name(), Duration::from_secs(5))
            .await
            .expect("pong during the flood");
        worst = worst.max(t.elapsed());
        pings += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _flood = attack.await.unwrap();
    // The real tool, too.
    let port = epmd.port.to_string();
    let out = cluster_async(&[
        "ping",
        "victim@127.0.0.1",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
    ])
    .await;
    assert!(stdout(&out).starts_with("pong"), "{out:?}");
    println!("is_auth flood (70,000 calls, never read): {pings} pings, worst {worst:?}");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_leaves_the_node_reachable_and_the_log_short() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    let mut victim = cluster_spawn(&[
        "start",
        "--name",
        "flooded@127.0.0.1",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--no-epmd-start",
    ]);
    let mut out = victim.stdout_lines();
    wait_line(&mut out, "up on port", DEADLINE).await;
    let log = victim.stderr_lines();
    let dist_port = cluster::epmd::EpmdClient::new("127.0.0.1", epmd.port)
        .port_please("flooded")
        .await
        .unwrap()
        .unwrap()
        .port;
    // 512 idle connections, re-opened as the node closes them, for the whole test.
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let flood = tokio::spawn(async move {
        let mut held: Vec<tokio::net::TcpStream> = Vec::new();
        let mut opened = 0u64;
        while !stop2.is_cancelled() {
            held.retain(|s| {
                let mut b = [0u8; 1];
                !matches!(s.try_read(&mut b), Ok(0))
            });
            while held.len() < 512 {
                match tokio::net::TcpStream::connect(("127.0.0.1", dist_port)).await {
                    Ok(s) => {
                        held.push(s);
                        opened += 1;
                    }
                    Err(_) => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        opened
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let out = cluster_async(&[
            "ping",
            "flooded@127.0.0.1",
            "--cookie",
            "rob",
            "--epmd-port",
            &port,
            "--timeout",
            "5",
        ])
        .await;
        worst = worst.max(t.elapsed());
        assert!(stdout(&out).starts_with("pong"), "{}", stdout(&out));
    }
    stop.cancel();
    let opened = flood.await.unwrap();
    victim.signal("TERM");
    drop(victim);
    let mut lines = Vec::new();
    let mut log = log;
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(5), log.recv()).await {
        lines.push(l);
    }
    let warnings = lines.iter().filter(|l| l.contains("WARN")).count();
    println!(
        "handshake flood: {opened} idle connections opened; 10/10 pongs, worst `cluster ping` \
         {worst:?}; {} log lines ({warnings} warnings)",
        lines.len()
    );
    assert!(
        lines.len() < 40,
        "the log grew with the flood:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_unreachable_pids_do_not_delay_anyone() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let victim = beacon_node(&epmd, Duration::from_secs(60)).await;
    let attacker = start_node("attacker@127.0.0.1", &epmd, "rob").await;
    // Pids of a node whose host swallows packets: every reply to them needs a dial that hangs.
    let ghost = Pid::new("ghost@10.255.255.1", 1, 0, 1);
    for i in 0..5 {
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(ghost.clone()), Term::Int(i)]),
            tuple(vec![atom("is_auth"), atom("ghost@10.255.255.1")]),
        ]);
        attacker
            .send(&Dest::name("net_kernel", victim.name()), call)
            .unwrap();
        attacker
            .send(
                &Dest::name("beacon", victim.name()),
                tuple(vec![atom("subscribe"), Term::Pid(ghost.clone())]),
            )
            .unwrap();
    }
    // And a registration for a node that cannot be reached, so the beacon pushes to them.
    BeaconClient::new(attacker.clone(), victim.name().clone())
        .register(reg("attacker@127.0.0.1", "gate", &[]))
        .await
        .unwrap();
    let other = start_node("other@127.0.0.1", &epmd, "rob").await;
    let client = BeaconClient::new(other.clone(), victim.name().clone());
    let mut worst = Duration::ZERO;
    for _ in 0..30 {
        let t = Instant::now();
        net_kernel::ping(&other, victim.name(), Duration::from_secs(5))
            .await
            .unwrap();
        client.nodes().await.unwrap();
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("replies to unreachable pids: worst is_auth + get_nodes from a bystander {worst:?}");
    assert!(worst < Duration::from_millis(100), "{worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_monitors_then_demonitors_keep_pings_fast() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    // The victim is a process of its own, as it would be in production.
    let mut victim_proc = cluster_spawn(&[
        "start",
        "--name",
        "mvictim@127.0.0.1",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--no-epmd-start",
    ]);
    let mut out = victim_proc.stdout_lines();
    wait_line(&mut out, "up on port", DEADLINE).await;
    let victim = n("mvictim@127.0.0.1");
    let attacker = start_node("mattacker@127.0.0.1", &epmd, "rob").await;
    attacker.connect(&victim).await.unwrap();
    let pinger = start_node("mpinger@127.0.0.1", &epmd, "rob").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let stop2 = stop.clone();
    let victim_name = victim.clone();
    let pings = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut count = 0;
        while !stop2.is_cancelled() {
            let t = Instant::now();
            net_kernel::ping(&pinger, &victim_name, Duration::from_secs(5))
                .await
                .unwrap();
            worst = worst.max(t.elapsed());
            count += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (worst, count)
    });
    let watcher = attacker.spawn_mailbox();
    let target = Dest::name("cluster_events", &victim);
    let mut refs = Vec::with_capacity(200_000);
    for i in 0..200_000 {
        refs.push(watcher.monitor(&target).unwrap());
        if i % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    net_kernel::ping(&attacker, &victim, DEADLINE)
        .await
        .unwrap();
    let started = Instant::now();
    for r in refs.iter().take(3_000) {
        watcher.demonitor(r);
    }
    // A round trip after the demonitors: the victim has handled them all.
    net_kernel::ping(&attacker, &victim, DEADLINE)
        .await
        .unwrap();
    let demonitored = started.elapsed();
    stop.cancel();
    let (worst, count) = pings.await.unwrap();
    victim_proc.signal("TERM");
    println!(
        "200,000 monitors then 3,000 demonitors: demonitors handled in {demonitored:?}; \
         {count} pings meanwhile, worst {worst:?}"
    );
    assert!(worst < Duration::from_millis(50), "{worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_peers_sending_huge_frames_stay_within_the_receive_budget() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    let budget: u64 = 256 << 20;
    let mut victim = cluster_spawn(&[
        "start",
        "--name",
        "big@127.0.0.1",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--no-epmd-start",
        "--receive-budget",
        &budget.to_string(),
    ]);
    let mut out = victim.stdout_lines();
    wait_line(&mut out, "up on port", DEADLINE).await;
    let (base, _) = rss_kib(victim.pid()).unwrap();
    let big = n("big@127.0.0.1");
    let payload = Term::Binary(vec![0x5a; 120 << 20].into());
    let mut senders = Vec::new();
    for i in 0..8 {
        let s = start_node(&format!("sender{i}@127.0.0.1"), &epmd, "rob").await;
        s.connect(&big).await.unwrap();
        senders.push(s);
    }
    let started = Instant::now();
    for s in &senders {
        s.send(&Dest::name("nosuch", &big), payload.clone())
            .unwrap();
    }
    drop(payload);
    // Until every sender's queue has drained and a call on each connection round-trips.
    for s in &senders {
        wait_for(
            "the frames to be read",
            Duration::from_secs(120),
            || async { (s.queued_to(&big) == Some(0)).then_some(()) },
        )
        .await;
        net_kernel::ping(s, &big, DEADLINE).await.unwrap();
    }
    let took = started.elapsed();
    let (_, hwm) = rss_kib(victim.pid()).unwrap();
    victim.signal("TERM");
    let _ = victim.wait_output(DEADLINE).await;
    let margin: u64 = 160 << 20;
    println!(
        "8 x 120 MB frames: read in {took:?}; victim RSS {} MiB before, peak {} MiB (budget {} MiB)",
        base / 1024,
        hwm / 1024,
        budget >> 20
    );
    assert!(hwm * 1024 < budget + margin, "peak RSS {} MiB", hwm / 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_ticks_at_the_roles_files_ticktime() {
    let epmd = Daemon::start().await;
    let (_dir, roles) = roles_file_with(8, "full");
    let port = epmd.port.to_string();
    let mut beacon = cluster_spawn(&[
        "start",
        "--name",
        "beacon1@127.0.0.1",
        "--role",
        "beacon",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
        "--no-epmd-start",
    ]);
    let mut lines = beacon.stdout_lines();
    wait_line(&mut lines, "beacon ready", DEADLINE).await;
    let out = cluster_async(&[
        "monitor",
        "--duration",
        "30",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
    ])
    .await;
    let err = crate::util::stderr(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(!err.contains("went down"), "{err}");
    println!("cluster monitor followed a beacon with net_ticktime 8 for 30 s with no false down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_from_nodes_that_close_at_once_leave_nothing_online() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let beacon = beacon_node(&epmd, Duration::from_secs(60)).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let port = epmd.port;
        let b = beacon.name().clone();
        tasks.push(tokio::spawn(async move {
            let mut cfg = NodeConfig::new(
                n(&format!("flash{i}@127.0.0.1")),
                cluster::dist::Cookie::new("rob"),
            )
            .with_epmd_port(port);
            cfg.global = false;
            let node = Node::start(cfg).await.unwrap();
            let client = BeaconClient::new(node.clone(), b);
            // Send the registration and close at once, without waiting for the answer.
            let msg = tuple(vec![
                atom("$gen_call"),
                tuple(vec![Term::Pid(node.system_pid()), atom("t")]),
                cluster::beacon::wire::Request::Register(reg(node.name().as_str(), "gate", &[]))
                    .to_term(),
            ]);
            node.send(&Dest::name("beacon", client.beacon()), msg)
                .unwrap();
            node.connect(client.beacon()).await.ok();
            node.shutdown().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let client = BeaconClient::new(beacon.clone(), beacon.name().clone());
    let flash_online = || async {
        client
            .nodes()
            .await
            .unwrap()
            .iter()
            .filter(|e| e.node.starts_with("flash") && e.status == "online")
            .count()
    };
    wait_for("no flash node online", Duration::from_secs(5), || async {
        (flash_online().await == 0).then_some(())
    })
    .await;
    let settled = started.elapsed();
    // And it stays that way through two reconcile rounds.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(flash_online().await, 0);
    let registered = client
        .nodes()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.node.starts_with("flash"))
        .count();
    println!("register and close x200: {registered} registered, 0 online {settled:?} after the first start");
}

/// Starts a role node as its own process.
fn role_proc(name: &str, role: &str, epmd: &Daemon, roles: &str) -> Proc {
    cluster_spawn(&[
        "start",
        "--name",
        name,
        "--role",
        role,
        "--cookie",
        "rob",
        "--epmd-port",
        &epmd.port.to_string(),
        "--roles",
        roles,
        "--no-epmd-start",
    ])
}

async fn online_set(client: &BeaconClient) -> Option<BTreeSet<String>> {
    Some(
        client
            .nodes()
            .await
            .ok()?
            .into_iter()
            .filter(|e| e.status == "online")
            .map(|e| e.node)
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_beacon_comes_back_with_a_true_table() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let (_dir, roles) = roles_file_with(4, "requirements");
    let mut beacon = role_proc("beacon1@127.0.0.1", "beacon", &epmd, &roles);
    let mut lines = beacon.stdout_lines();
    wait_line(&mut lines, "beacon ready", DEADLINE).await;
    let kinds = ["gate_manager", "gate", "data_contact", "data_service"];
    let mut procs = Vec::new();
    let mut expected: BTreeSet<String> = ["beacon1@127.0.0.1".to_owned()].into();
    for i in 0..32 {
        let role = kinds[i % 4];
        let name = format!("{role}{}@127.0.0.1", i / 4 + 1);
        procs.push(role_proc(&name, role, &epmd, &roles));
        expected.insert(name);
    }
    let mut cfg =
        NodeConfig::hidden_client(n("observer@127.0.0.1"), cluster::dist::Cookie::new("rob"))
            .with_epmd_port(epmd.port);
    cfg.ticktime = Duration::from_secs(4);
    let obs = Node::start(cfg).await.unwrap();
    let client = BeaconClient::new(obs.clone(), n("beacon1@127.0.0.1"));
    wait_for("all 33 online", Duration::from_secs(60), || async {
        (online_set(&client).await? == expected).then_some(())
    })
    .await;
    for round in 1..=5 {
        beacon.signal("STOP");
        tokio::time::sleep(Duration::from_secs(6)).await; // 1.5 x net_ticktime
        beacon.signal("CONT");
        let resumed = Instant::now();
        wait_for(
            &format!("round {round}: the table to match the live nodes"),
            Duration::from_secs(5),
            || async { (online_set(&client).await? == expected).then_some(()) },
        )
        .await;
        println!(
            "beacon paused 6 s (round {round}): table true again {:?} after SIGCONT",
            resumed.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_idle_connections_cannot_lock_local_nodes_out_of_the_port_mapper() {
    let _serial = heavy().await;
    let ns = match crate::util::NetNs::create(0) {
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
    let epmd = Daemon::start_with(cluster::epmd::ServerConfig {
        addresses: vec![ns.host_ip.parse().unwrap()],
        ..cluster::epmd::ServerConfig::default()
    })
    .await;
    // 1,100 idle connections from the other host, held open until we close its stdin.
    let script = format!(
        "import resource, socket, sys\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n\
         held = []\n\
         for _ in range(1100):\n\
         \x20   s = socket.create_connection(('{}', {}), timeout=5)\n\
         \x20   held.append(s)\n\
         print('holding', len(held), flush=True)\n\
         sys.stdin.read()\n",
        ns.host_ip, epmd.port
    );
    let mut holder = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ip netns exec");
    let stdout_pipe = holder.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut l = String::new();
        std::io::BufReader::new(stdout_pipe).read_line(&mut l).ok();
        l
    })
    .await
    .unwrap();
    assert!(line.starts_with("holding 1100"), "{line:?}");
    // The port mapper is full for other hosts, and says so; this host still registers.
    let port = epmd.port.to_string();
    let started = Instant::now();
    let mut node = cluster_spawn(&[
        "start",
        "--name",
        "local@127.0.0.1",
        "--cookie",
        "rob",
        "--epmd-port",
        &port,
        "--no-epmd-start",
    ]);
    let mut lines = node.stdout_lines();
    wait_line(&mut lines, "up on port", DEADLINE).await;
    println!(
        "1,100 idle connections from {}: a local node registered in {:?}",
        ns.ns_ip,
        started.elapsed()
    );
    drop(holder.stdin.take());
    let _ = holder.kill();
    let _ = holder.wait();
}

/// The `get_requirements` calls the beacon has served, from its `sys:get_state`.
async fn offers_served(node: &Node, beacon: &NodeName) -> i64 {
    let state = node
        .get_state(&Dest::name("beacon", beacon), DEADLINE)
        .await
        .unwrap();
    state
        .map_get_atom("get_requirements")
        .and_then(Term::as_int)
        .unwrap()
}

/// Waits until the last phase line a role node printed is `want`.
async fn phase_becomes(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    want: &str,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    loop {
        // Drain what is there, then judge the latest line.
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(l)) => {
                last = l;
                while let Ok(l) = lines.try_recv() {
                    last = l;
                }
                if last.ends_with(want) {
                    return;
                }
            }
            Ok(None) => panic!("the role node exited; last line {last:?}"),
            Err(_) => panic!("no {want:?} within {limit:?}; last line {last:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_storm_leaves_every_role_node_correct_within_five_seconds() {
    let _serial = heavy().await;
    let epmd = Daemon::start().await;
    let (_dir, roles) = roles_file_with(60, "requirements");
    let mut beacon = role_proc("beacon1@127.0.0.1", "beacon", &epmd, &roles);
    wait_line(&mut beacon.stdout_lines(), "beacon ready", DEADLINE).await;
    let _gm = role_proc("gate_manager1@127.0.0.1", "gate_manager", &epmd, &roles);
    let mut gates = Vec::new();
    let mut gate_lines = Vec::new();
    for i in 1..=3 {
        let mut g = role_proc(&format!("gate{i}@127.0.0.1"), "gate", &epmd, &roles);
        gate_lines.push(g.stdout_lines());
        gates.push(g);
    }
    for lines in &mut gate_lines {
        phase_becomes(lines, "ready gate_manager1@127.0.0.1", DEADLINE).await;
    }
    let beacon_name = n("beacon1@127.0.0.1");
    let storm = start_node("storm@127.0.0.1", &epmd, "rob").await;
    storm.connect(&beacon_name).await.unwrap();
    let before = offers_served(&storm, &beacon_name).await;

    // 20,000 re-registrations, fired without waiting for the answers: the storm node flips
    // between providing data_contact and gate_manager, and ends as a gate_manager.
    let me = storm.spawn_mailbox();
    let started = Instant::now();
    for i in 0..20_000 {
        let resource = if i % 2 == 0 {
            "data_contact"
        } else {
            "gate_manager"
        };
        let req = cluster::beacon::wire::Request::Register(reg("storm@127.0.0.1", resource, &[]));
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(me.pid()), Term::Int(i)]),
            req.to_term(),
        ]);
        me.send(&Dest::name("beacon", &beacon_name), call).unwrap();
    }
    let sent = started.elapsed();
    // A call behind the storm on the same connection: answered once the beacon is through it.
    BeaconClient::new(storm.clone(), beacon_name.clone())
        .with_timeout(DEADLINE)
        .nodes()
        .await
        .unwrap();
    let beacon_done = started.elapsed();
    println!("beacon through the storm after {beacon_done:?}");
    // Every gate converges on the truth: gate_manager1 and storm provide gate_manager.
    for lines in &mut gate_lines {
        phase_becomes(
            lines,
            "ready gate_manager1@127.0.0.1,storm@127.0.0.1",
            Duration::from_secs(5),
        )
        .await;
    }
    let converged = started.elapsed();
    // And is not wedged: one more change reaches every gate within 5 s.
    BeaconClient::new(storm.clone(), beacon_name.clone())
        .register(reg("storm@127.0.0.1", "data_contact", &[]))
        .await
        .unwrap();
    for lines in &mut gate_lines {
        phase_becomes(
            lines,
            "ready gate_manager1@127.0.0.1",
            Duration::from_secs(5),
        )
        .await;
    }
    let after = offers_served(&storm, &beacon_name).await;
    println!(
        "event storm: 20,000 re-registrations sent in {sent:?}; 3 gates correct {converged:?} \
         after the first; {} get_requirements calls from the gates in all (coalesced)",
        after - before
    );
    assert!(sent < Duration::from_secs(1), "{sent:?}");
    assert!(
        after - before < 3_000,
        "the gates asked {} times",
        after - before
    );
}
