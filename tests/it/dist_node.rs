//! The node runtime between Rust nodes over real sockets: connect, messages by pid and by
//! name, gen_call with `noproc`, links, monitors, exit signals, node events, the port-mapper
//! restart, and hostile peers on the distribution port.

use std::time::Duration;

use cluster::dist::term::{atom, int, tuple, Term};
use cluster::dist::{CallError, Dest, Node, NodeEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{next_event, node_config, start_node, Daemon};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_and_calls() {
    let epmd = Daemon::start().await;
    let a = start_node("a@127.0.0.1", &epmd, "c").await;
    let b = start_node("b@127.0.0.1", &epmd, "c").await;
    let mut events = a.monitor_nodes();
    let mut inbox = b.register("inbox").unwrap();

    // The first send dials in the background; the message waits on the connection.
    a.send(&Dest::name("inbox", b.name()), atom("hello"))
        .unwrap();
    let got = tokio::time::timeout(DEADLINE, inbox.recv()).await.unwrap();
    assert_eq!(got, Some(atom("hello")));
    assert_eq!(a.nodes(), vec![b.name().clone()]);
    let up = next_event("nodeup", &mut events, DEADLINE, |ev| match ev {
        NodeEvent::Up {
            visible,
            connection,
            ..
        } => Some((visible, connection)),
        _ => None,
    })
    .await;
    assert!(up.0);
    assert_eq!(Some(up.1), a.connection_id(b.name()));

    // By pid, the other way.
    let mut reply_box = a.spawn_mailbox();
    inbox.send(&Dest::Pid(reply_box.pid()), int(42)).unwrap();
    let got = tokio::time::timeout(DEADLINE, reply_box.recv())
        .await
        .unwrap();
    assert_eq!(got, Some(int(42)));

    // gen_call served by a Rust process.
    let server = tokio::spawn(async move {
        let msg = inbox.recv().await.unwrap();
        let (from, req) = cluster::dist::parse_gen_call(&msg).expect("gen_call");
        let reply = tuple(vec![atom("echo"), req.clone()]);
        inbox.node().reply(&from, reply).unwrap();
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

    // nodedown on disconnect, on both sides, naming the connection that ended.
    let conn = b.connection_id(a.name()).unwrap();
    let mut b_events = b.monitor_nodes();
    assert!(a.disconnect(b.name()));
    let down = next_event("nodedown on b", &mut b_events, DEADLINE, |ev| match ev {
        NodeEvent::Down {
            node, connection, ..
        } => Some((node, connection)),
        _ => None,
    })
    .await;
    assert_eq!((&down.0, down.1), (a.name(), conn));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_monitors_and_exit_signals_between_nodes() {
    let epmd = Daemon::start().await;
    let a = start_node("la@127.0.0.1", &epmd, "c").await;
    let b = start_node("lb@127.0.0.1", &epmd, "c").await;
    a.connect(b.name()).await.unwrap();

    // A trapping process on a is linked to one on b; b's ends with a reason.
    let mut watcher = a.spawn_mailbox();
    watcher.trap_exit(true);
    let target = b.spawn_mailbox();
    let target_pid = target.pid();
    watcher.link(&target_pid).unwrap();
    let mref = watcher.monitor(&Dest::Pid(target_pid.clone())).unwrap();
    // The link must be in place on b before the exit: a round trip through b settles it.
    b.call(
        &Dest::name("net_kernel", a.name()),
        tuple(vec![atom("is_auth"), atom("x")]),
        DEADLINE,
    )
    .await
    .unwrap();
    a.call(
        &Dest::name("net_kernel", b.name()),
        tuple(vec![atom("is_auth"), atom("x")]),
        DEADLINE,
    )
    .await
    .unwrap();
    target.exit(atom("boom"));
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            watcher
                .recv_timeout(DEADLINE)
                .await
                .expect("exit and down")
                .to_string(),
        );
    }
    got.sort();
    assert_eq!(
        got,
        [
            format!(
                "{{'DOWN',{},process,{},boom}}",
                Term::Ref(mref),
                Term::Pid(target_pid.clone())
            ),
            format!("{{'EXIT',{},boom}}", Term::Pid(target_pid)),
        ]
    );

    // Linking to a pid that does not exist gives noproc.
    let ghost = cluster::dist::Pid::new(b.name().as_str(), 999_999, 0, b.creation());
    watcher.link(&ghost).unwrap();
    let msg = watcher.recv_timeout(DEADLINE).await.expect("noproc exit");
    assert_eq!(
        msg.to_string(),
        format!("{{'EXIT',{},noproc}}", Term::Pid(ghost))
    );

    // exit(Pid, kill) kills even a trapping process, and its links hear `killed`.
    let mut victim = b.spawn_mailbox();
    victim.trap_exit(true);
    watcher.link(&victim.pid()).unwrap();
    a.call(
        &Dest::name("net_kernel", b.name()),
        tuple(vec![atom("is_auth"), atom("x")]),
        DEADLINE,
    )
    .await
    .unwrap();
    a.exit(&victim.pid(), atom("kill")).unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, victim.recv()).await.unwrap(),
        None
    );
    let msg = watcher.recv_timeout(DEADLINE).await.expect("killed exit");
    assert!(msg.to_string().ends_with(",killed}"), "{msg}");

    // Losing the connection: noconnection for links and monitors across it.
    let far = b.spawn_mailbox();
    watcher.link(&far.pid()).unwrap();
    let mref = watcher
        .monitor(&Dest::name("net_kernel", b.name()))
        .unwrap();
    a.call(
        &Dest::name("net_kernel", b.name()),
        tuple(vec![atom("is_auth"), atom("x")]),
        DEADLINE,
    )
    .await
    .unwrap();
    b.disconnect(a.name());
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            watcher
                .recv_timeout(DEADLINE)
                .await
                .expect("noconnection")
                .to_string(),
        );
    }
    got.sort();
    assert_eq!(
        got,
        [
            format!(
                "{{'DOWN',{},process,{{net_kernel,'lb@127.0.0.1'}},noconnection}}",
                Term::Ref(mref)
            ),
            format!("{{'EXIT',{},noconnection}}", Term::Pid(far.pid())),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_cookie_is_refused_both_ways() {
    let epmd = Daemon::start().await;
    let a = start_node("a@127.0.0.1", &epmd, "one").await;
    let b = start_node("b@127.0.0.1", &epmd, "two").await;
    let err = a.connect(b.name()).await.unwrap_err();
    assert_eq!(err.to_string(), "cookie rejected");
    let err = b.connect(a.name()).await.unwrap_err();
    assert_eq!(err.to_string(), "cookie rejected");
    assert!(a.nodes().is_empty() && b.nodes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_end_with_one_connection() {
    let epmd = Daemon::start().await;
    for round in 0..5 {
        let a = start_node(&format!("a{round}@127.0.0.1"), &epmd, "c").await;
        let b = start_node(&format!("b{round}@127.0.0.1"), &epmd, "c").await;
        let (ra, rb) = tokio::join!(a.connect(b.name()), b.connect(a.name()));
        ra.unwrap();
        rb.unwrap();
        assert_eq!(a.nodes(), vec![b.name().clone()]);
        assert_eq!(b.nodes(), vec![a.name().clone()]);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalls_on_the_dist_port_leave_the_node_up() {
    let epmd = Daemon::start().await;
    let mut cfg = node_config("victim@127.0.0.1", &epmd, "c");
    cfg.setup_time = Duration::from_millis(500);
    let victim = Node::start(cfg).await.unwrap();
    let friend = start_node("friend@127.0.0.1", &epmd, "c").await;
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
    // A 4-byte handshake length (as inside TLS) claiming gigabytes is refused, not buffered.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&[0xff, 0xff, b'N', 0]).await.unwrap();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut sink))
        .await
        .expect("bad length closed")
        .ok();

    // Still serving, and the existing connection is intact.
    assert_eq!(victim.nodes(), vec![friend.name().clone()]);
    let mut inbox = victim.register("still_here").unwrap();
    friend
        .send(&Dest::name("still_here", victim.name()), atom("ok"))
        .unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, inbox.recv()).await.unwrap(),
        Some(atom("ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_alone_its_caller_answered_and_the_connection_stays() {
    let epmd = Daemon::start().await;
    let mut cfg = node_config("small@127.0.0.1", &epmd, "c");
    cfg.max_message = 100_000;
    let small = Node::start(cfg).await.unwrap();
    let big = start_node("big@127.0.0.1", &epmd, "c").await;
    big.connect(small.name()).await.unwrap();
    let mut inbox = small.register("inbox").unwrap();
    let mut events = small.monitor_nodes();
    let to = Dest::name("inbox", small.name());

    // Over the limit: one plain message (cut into fragments on the wire), then a call.
    big.send(&to, Term::Binary(vec![7u8; 300_000].into()))
        .unwrap();
    let caller = big.spawn_mailbox();
    let pending = tokio::spawn(async move {
        let mut caller = caller;
        caller
            .call(&to, Term::Binary(vec![8u8; 200_000].into()), DEADLINE)
            .await
    });
    // Under it, after both: delivered, and first.
    big.send(
        &Dest::name("inbox", small.name()),
        Term::Binary(vec![9u8; 90_000].into()),
    )
    .unwrap();
    let got = tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.as_binary().map(|b| (b.len(), b[0])), Some((90_000, 9)));
    let reply = pending.await.unwrap().expect("the call is answered");
    assert_eq!(
        reply,
        tuple(vec![
            atom("error"),
            tuple(vec![
                atom("message_too_large"),
                Term::from(131_072u64),
                Term::from(100_000u64)
            ])
        ]),
        "refused when its second 64 KiB fragment passes the limit"
    );
    assert_eq!(small.nodes(), vec![big.name().clone()]);
    // (Small's own nodeup for big may land after the subscription; a nodedown may not.)
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev, NodeEvent::Down { .. }),
            "the connection stayed up: {ev:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carrying_an_undecodable_term_is_answered_with_an_error() {
    use cluster::dist::proto::{frame::data_frame, Control};
    use cluster::dist::Ref;
    let epmd = Daemon::start().await;
    let node = start_node("victim@127.0.0.1", &epmd, "c").await;
    let mut inbox = node.register("svc").unwrap();
    let mut raw =
        crate::util::RawPeer::connect("raw@127.0.0.1", "victim@127.0.0.1", epmd.port, "c").await;
    let me = raw.pid(3);
    let tag = Term::Ref(Ref::new("raw@127.0.0.1", 7, &[1, 2, 3]));
    let call = tuple(vec![
        atom("$gen_call"),
        tuple(vec![Term::Pid(me.clone()), tag.clone()]),
        int(1),
    ]);
    let ctl = Control::RegSend {
        from: me.clone(),
        to: "svc".into(),
    };
    // The request `1` (97, 1) becomes the unknown tag 255.
    let mut frame = data_frame(&ctl, Some(&call), raw.flags).to_vec();
    let n = frame.len();
    frame[n - 2..].copy_from_slice(&[255, 255]);
    raw.write(&frame).await;
    // Skip what else the node says to a new peer (global's hello).
    let reply = loop {
        let m = raw.recv(DEADLINE).await.expect("an answer");
        if matches!(&m.control, Control::Send { to, .. } if *to == me) {
            break m;
        }
    };
    let body = reply.payload.expect("a message");
    let Some([t, answer]) = body.as_tuple() else {
        panic!("{body:?}")
    };
    assert_eq!(t, &tag);
    let text = format!("{answer}");
    assert!(
        text.starts_with("{error,{bad_message,<<\"unsupported term tag 255"),
        "{text}"
    );
    // The connection is still up, and the next message gets through.
    let ok = data_frame(&ctl, Some(&atom("fine")), raw.flags);
    raw.write(&ok).await;
    assert_eq!(
        tokio::time::timeout(DEADLINE, inbox.recv()).await.unwrap(),
        Some(atom("fine"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_port_mapper_restart_the_node_registers_again_with_the_new_creation() {
    let epmd = Daemon::start().await;
    let port = epmd.port;
    let n = start_node("phoenix@127.0.0.1", &epmd, "c").await;
    let first = n.creation();
    let client = cluster::epmd::EpmdClient::new("127.0.0.1", port);
    assert!(client.port_please("phoenix").await.unwrap().is_some());
    // A fresh port mapper hands out the Unix time as a new name's creation: let a second pass
    // so the new one differs, as it would after any real restart.
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let registered_at = unix();
    crate::util::wait_for("the next second", DEADLINE, || async {
        (unix() > registered_at).then_some(())
    })
    .await;
    epmd.stop().await;
    let _again = Daemon::start_on(port).await;
    let entry = crate::util::wait_for("phoenix to register again", DEADLINE, || async {
        client.port_please("phoenix").await.ok().flatten()
    })
    .await;
    assert_eq!(entry.port, n.listen_port());
    let creation = crate::util::wait_for("the new creation", DEADLINE, || async {
        (n.creation() != first).then(|| n.creation())
    })
    .await;
    // Pids, references and existing processes carry it.
    assert_eq!(n.spawn_mailbox().pid().creation, creation);
    assert_eq!(n.make_ref().creation, creation);
    assert_eq!(n.whereis("net_kernel").unwrap().creation, creation);
    // And the node is reachable under it.
    let other = start_node("other@127.0.0.1", &_again, "c").await;
    other
        .call(
            &Dest::name("net_kernel", n.name()),
            tuple(vec![atom("is_auth"), atom("x")]),
            DEADLINE,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_connect_can_be_switched_off() {
    let epmd = Daemon::start().await;
    let mut cfg = node_config("shy@127.0.0.1", &epmd, "c");
    cfg.auto_connect = false;
    let shy = Node::start(cfg).await.unwrap();
    let other = start_node("other@127.0.0.1", &epmd, "c").await;
    let err = shy
        .send(&Dest::name("net_kernel", other.name()), atom("x"))
        .unwrap_err();
    assert!(err.to_string().contains("auto-connect is off"), "{err}");
    shy.connect(other.name()).await.unwrap();
    shy.send(&Dest::name("net_kernel", other.name()), atom("x"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_short_names_do_not_mix() {
    let epmd = Daemon::start().await;
    let a = start_node("long@127.0.0.1", &epmd, "c").await;
    let short = cluster::dist::NodeName::parse("short@localhost").unwrap();
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
    let cfg = node_config("again@127.0.0.1", &epmd, "c");
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
async fn sends_to_an_unreachable_node_never_wait() {
    let epmd = Daemon::start().await;
    let a = start_node("patient@127.0.0.1", &epmd, "c").await;
    let nowhere = cluster::dist::NodeName::parse("nowhere@127.0.0.1").unwrap();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        a.send(&Dest::name("x", &nowhere), atom("m")).unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(200));
    // A monitor across the failed attempt fires with noconnection.
    let w = a.spawn_mailbox();
    let r = w.monitor(&Dest::name("x", &nowhere)).unwrap();
    let mut w = w;
    let msg = w.recv_timeout(DEADLINE).await.expect("DOWN");
    assert_eq!(
        msg.to_string(),
        format!(
            "{{'DOWN',{},process,{{x,'nowhere@127.0.0.1'}},noconnection}}",
            Term::Ref(r)
        )
    );
    // And an explicit connect says why.
    let err = a.connect(&nowhere).await.unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_processes_are_registered() {
    let epmd = Daemon::start().await;
    let a = start_node("builtins@127.0.0.1", &epmd, "c").await;
    crate::util::wait_for("the built-in processes", DEADLINE, || async {
        ["net_kernel", "cluster_events", "global_name_server", "pg"]
            .iter()
            .all(|n| a.is_registered(n))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_events_stats_count_each_connections_traffic_and_queue_peaks() {
    use cluster::dist::builtin::cluster_events;
    let epmd = Daemon::start().await;
    let a = start_node("sa@127.0.0.1", &epmd, "c").await;
    let b = start_node("sb@127.0.0.1", &epmd, "c").await;
    let inbox = b.register("slow_inbox").unwrap();
    for i in 0..25 {
        a.send(&Dest::name("slow_inbox", b.name()), int(i)).unwrap();
    }
    // Nobody reads the inbox: its queue is 25 deep once every message is in.
    crate::util::wait_for("25 messages queued", DEADLINE, || async {
        (b.processes()
            .iter()
            .any(|p| p.names == ["slow_inbox"] && p.queue_len == 25))
        .then_some(())
    })
    .await;
    let stats = cluster_events::stats(&a, b.name(), DEADLINE).await.unwrap();
    let from_a = stats
        .peers
        .iter()
        .find(|p| p.node == "sa@127.0.0.1")
        .unwrap_or_else(|| panic!("{stats:?}"));
    assert_eq!(from_a.kind, "visible");
    // The 25 sends and the stats call itself (plus whatever global says on connecting).
    assert!(from_a.msgs_in >= 26, "{stats:?}");
    assert!(from_a.bytes_in > 26 * 10, "{stats:?}");
    let q = &stats.processes[0];
    assert_eq!((q.process.as_str(), q.len, q.peak), ("slow_inbox", 25, 25));
    // The other side counted the same messages going out.
    let out = a
        .traffic()
        .into_iter()
        .find(|(n, _, _)| n == b.name())
        .map(|(_, _, t)| t)
        .unwrap();
    assert!(out.msgs_out >= from_a.msgs_in, "{out:?} {stats:?}");
    drop(inbox);
    a.shutdown().await;
    b.shutdown().await;
}
