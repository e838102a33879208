//! The node runtime between two Rust nodes over real sockets: connect, messages by pid and by
//! name, gen_call with `noproc`, node events, and hostile peers on the distribution port.

mod util;

use std::time::Duration;

use cluster::dist::term::{self, atom, tuple};
use cluster::dist::{CallError, Cookie, Dest, Node, NodeConfig, NodeEvent, NodeName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::{next_event, Daemon};

const DEADLINE: Duration = Duration::from_secs(10);

async fn node(name: &str, epmd: &Daemon, cookie: &str) -> Node {
    let mut cfg = NodeConfig::new(NodeName::parse(name).unwrap(), Cookie::new(cookie));
    cfg.epmd_port = epmd.port;
    Node::start(cfg).await.expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_and_calls() {
    let epmd = Daemon::start().await;
    let a = node("a@127.0.0.1", &epmd, "c").await;
    let b = node("b@127.0.0.1", &epmd, "c").await;
    let mut events = a.monitor_nodes();
    let mut inbox = b.register("inbox").unwrap();

    a.send(&Dest::name("inbox", b.name()), atom("hello"))
        .await
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, atom("hello"));
    assert_eq!(a.nodes(), vec![b.name().clone()]);
    assert!(matches!(
        tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap(),
        NodeEvent::Up { visible: true, .. }
    ));

    // By pid, the other way.
    let mut reply_box = a.spawn_mailbox();
    inbox
        .send(&Dest::Pid(reply_box.pid().clone()), term::int(42))
        .await
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, reply_box.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, term::int(42));

    // gen_call served by a Rust process.
    let server = tokio::spawn(async move {
        let msg = inbox.recv().await.unwrap();
        let (from, req) = cluster::dist::parse_gen_call(&msg).expect("gen_call");
        let reply = tuple(vec![atom("echo"), req.clone()]);
        inbox.node().reply(&from, reply).await.unwrap();
        inbox
    });
    let reply = a
        .call(&Dest::name("inbox", b.name()), atom("ping"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(reply, tuple(vec![atom("echo"), atom("ping")]));
    let _inbox = server.await.unwrap();

    let err = a
        .call(&Dest::name("nosuch", b.name()), atom("x"), DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::NoProc), "{err:?}");

    // nodedown on disconnect, on both sides.
    let mut b_events = b.monitor_nodes();
    assert!(a.disconnect(b.name()));
    let down = next_event("nodedown on b", &mut b_events, DEADLINE, |ev| match ev {
        NodeEvent::Down { node, .. } => Some(node),
        _ => None,
    })
    .await;
    assert_eq!(&down, a.name());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_cookie_is_refused_both_ways() {
    let epmd = Daemon::start().await;
    let a = node("a@127.0.0.1", &epmd, "one").await;
    let b = node("b@127.0.0.1", &epmd, "two").await;
    let err = a.connect(b.name()).await.unwrap_err();
    assert_eq!(err.to_string(), "cookie rejected");
    let err = b.connect(a.name()).await.unwrap_err();
    assert_eq!(err.to_string(), "cookie rejected");
    assert!(a.nodes().is_empty() && b.nodes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_end_with_one_connection() {
    let epmd = Daemon::start().await;
    let a = node("a@127.0.0.1", &epmd, "c").await;
    let b = node("b@127.0.0.1", &epmd, "c").await;
    let (ra, rb) = tokio::join!(a.connect(b.name()), b.connect(a.name()));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(a.nodes(), vec![b.name().clone()]);
    assert_eq!(b.nodes(), vec![a.name().clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalls_on_the_dist_port_leave_the_node_up() {
    let epmd = Daemon::start().await;
    let mut cfg = NodeConfig::new(
        NodeName::parse("victim@127.0.0.1").unwrap(),
        Cookie::new("c"),
    );
    cfg.epmd_port = epmd.port;
    cfg.setup_time = Duration::from_millis(500);
    let victim = Node::start(cfg).await.unwrap();
    let friend = node("friend@127.0.0.1", &epmd, "c").await;
    friend.connect(victim.name()).await.unwrap();
    let port = victim.listen_port();

    // Garbage.
    let mut g = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    g.write_all(b"\x00\x10GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(DEADLINE, g.read_to_end(&mut sink))
        .await
        .expect("garbage connection closed")
        .ok();
    // A stall mid-handshake is closed after the setup time.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&[0, 30, b'N', 0, 0]).await.unwrap();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut sink))
        .await
        .expect("stalled connection closed")
        .ok();

    // Still serving, and the existing connection is intact.
    assert_eq!(victim.nodes(), vec![friend.name().clone()]);
    let mut inbox = victim.register("still_here").unwrap();
    friend
        .send(&Dest::name("still_here", victim.name()), atom("ok"))
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, inbox.recv()).await.unwrap(),
        Some(atom("ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_only_that_connection() {
    let epmd = Daemon::start().await;
    let mut cfg = NodeConfig::new(
        NodeName::parse("small@127.0.0.1").unwrap(),
        Cookie::new("c"),
    );
    cfg.epmd_port = epmd.port;
    cfg.max_frame = 1024;
    let small = Node::start(cfg).await.unwrap();
    let big = node("big@127.0.0.1", &epmd, "c").await;
    let other = node("other@127.0.0.1", &epmd, "c").await;
    other.connect(small.name()).await.unwrap();
    let mut events = small.monitor_nodes();

    let huge = eetf::Term::from(eetf::Binary::from(vec![7u8; 4096]));
    big.send(&Dest::name("net_kernel", small.name()), huge)
        .await
        .unwrap();
    let reason = next_event(
        "big's connection to close",
        &mut events,
        DEADLINE,
        |ev| match ev {
            NodeEvent::Down { node, reason, .. } if node.as_str() == "big@127.0.0.1" => {
                Some(reason)
            }
            _ => None,
        },
    )
    .await;
    assert!(reason.contains("exceeds the maximum"), "{reason}");
    assert_eq!(small.nodes(), vec![other.name().clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registers_again_when_the_port_mapper_restarts() {
    let epmd = Daemon::start().await;
    let port = epmd.port;
    let n = node("phoenix@127.0.0.1", &epmd, "c").await;
    let client = cluster::epmd::EpmdClient::new("127.0.0.1", port);
    assert!(client.port_please("phoenix").await.unwrap().is_some());
    epmd.stop().await;
    let _again = Daemon::start_on(port).await;
    let entry = util::wait_for("phoenix to register again", DEADLINE, || async {
        client.port_please("phoenix").await.ok().flatten()
    })
    .await;
    assert_eq!(entry.port, n.listen_port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_connect_can_be_switched_off() {
    let epmd = Daemon::start().await;
    let mut cfg = NodeConfig::new(NodeName::parse("shy@127.0.0.1").unwrap(), Cookie::new("c"));
    cfg.epmd_port = epmd.port;
    cfg.auto_connect = false;
    let shy = Node::start(cfg).await.unwrap();
    let other = node("other@127.0.0.1", &epmd, "c").await;
    let err = shy
        .send(&Dest::name("net_kernel", other.name()), atom("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("auto-connect is off"), "{err}");
    shy.connect(other.name()).await.unwrap();
    shy.send(&Dest::name("net_kernel", other.name()), atom("x"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_short_names_do_not_mix() {
    let epmd = Daemon::start().await;
    let a = node("long@127.0.0.1", &epmd, "c").await;
    let short = NodeName::parse("short@localhost").unwrap();
    let err = a.connect(&short).await.unwrap_err();
    assert!(err.to_string().contains("long-name node"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_waits_for_its_old_name_to_be_released() {
    let epmd = Daemon::start().await;
    let client = cluster::epmd::EpmdClient::new("127.0.0.1", epmd.port);
    // The previous incarnation's registration, still open.
    let old = client
        .register(cluster::epmd::NodeEntry::new("again", 1))
        .await
        .unwrap();
    let mut cfg = NodeConfig::new(
        NodeName::parse("again@127.0.0.1").unwrap(),
        Cookie::new("c"),
    );
    cfg.epmd_port = epmd.port;
    let mut starting = tokio::spawn(Node::start(cfg));
    // A refused registration would end start-up at once; it must still be waiting instead.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut starting)
            .await
            .is_err(),
        "start-up gave up while the old name was held"
    );
    drop(old);
    let node = tokio::time::timeout(DEADLINE, starting)
        .await
        .expect("starts once the name is free")
        .unwrap()
        .expect("node starts");
    let entry = client.port_please("again").await.unwrap().unwrap();
    assert_eq!(entry.port, node.listen_port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_is_capped_and_the_node_keeps_serving() {
    let epmd = Daemon::start().await;
    let mut cfg = NodeConfig::new(
        NodeName::parse("flooded@127.0.0.1").unwrap(),
        Cookie::new("c"),
    );
    cfg.epmd_port = epmd.port;
    cfg.setup_time = Duration::from_secs(3);
    let victim = Node::start(cfg).await.unwrap();
    let port = victim.listen_port();
    // More silent connections than the cap; those over it are closed at once.
    let mut idle = Vec::new();
    for _ in 0..cluster::dist::node::MAX_PENDING_HANDSHAKES + 20 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let mut closed_early = 0;
    for s in idle.iter_mut().rev().take(20) {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
            closed_early += 1;
        }
    }
    assert!(closed_early > 0, "no connection over the cap was closed");
    // Once the stalled handshakes time out, a real peer connects and is served.
    drop(idle);
    let mut events = victim.monitor_nodes();
    let friend = node("friend@127.0.0.1", &epmd, "c").await;
    friend.connect(victim.name()).await.unwrap();
    // The acceptor installs the connection just after the initiator sees the handshake end.
    let up = next_event(
        "friend's nodeup on the victim",
        &mut events,
        DEADLINE,
        |ev| match ev {
            NodeEvent::Up { node, .. } => Some(node),
            _ => None,
        },
    )
    .await;
    assert_eq!(&up, friend.name());
}
