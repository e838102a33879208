//! Distribution interop with real Erlang/OTP: pings both ways, messages and gen_server calls
//! both ways, cookies, failure detection with ticks, and `cluster monitor`. CI installs OTP, so
//! these always run there.

use std::time::{Duration, Instant};

use crate::util::{
    cluster_async, cluster_spawn, erl, erl_with, have_erlang, next_event, stdout, wait_for,
    wait_line, Daemon,
};
use cluster::dist::term::{atom, int, list, tuple, Term};
use cluster::dist::{parse_gen_call, Dest, Node, NodeEvent};

const DEADLINE: Duration = Duration::from_secs(30);

async fn rust_node(name: &str, epmd: &Daemon, cookie: &str) -> Node {
    crate::util::start_node(name, epmd, cookie).await
}

async fn registered(port: u16, name: &str) -> bool {
    cluster::epmd::EpmdClient::new("127.0.0.1", port)
        .port_please(name)
        .await
        .map(|e| e.is_some())
        .unwrap_or(false)
}

async fn wait_registered(port: u16, name: &str) {
    wait_for(&format!("{name} to register"), DEADLINE, || async {
        registered(port, name).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erl_pings_calls_and_messages_a_rust_node() {
    if !have_erlang("erl_pings_calls_and_messages_a_rust_node") {
        return;
    }
    let epmd = Daemon::start().await;
    let node = rust_node("rs_a@127.0.0.1", &epmd, "interop").await;
    let mut inbox = node.register("inbox").unwrap();
    let mut server = node.register("echo_server").unwrap();
    tokio::spawn(async move {
        while let Some(msg) = server.recv().await {
            if let Some((from, req)) = parse_gen_call(&msg) {
                let reply = tuple(vec![atom("echoed"), req.clone()]);
                let _ = server.node().reply(&from, reply);
            }
        }
    });

    let script = "
        io:format(\"ping ~p~n\", [net_adm:ping('rs_a@127.0.0.1')]),
        {inbox, 'rs_a@127.0.0.1'} ! {hello, [1,2,3], <<\"bin\">>, self()},
        io:format(\"call ~p~n\", [gen_server:call({echo_server, 'rs_a@127.0.0.1'}, {add, 1, 2})]),
        io:format(\"noproc ~p~n\", [catch gen_server:call({nosuch, 'rs_a@127.0.0.1'}, x, 5000)]),
        R = erlang:spawn_request('rs_a@127.0.0.1', erlang, self, [], []),
        receive {spawn_reply, R, error, E} -> io:format(\"spawn ~p~n\", [E])
        after 5000 -> io:format(\"spawn timeout~n\") end,
        halt().";
    let out = erl("erl_a@127.0.0.1", epmd.port, script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    assert!(
        text.contains("ping pong"),
        "{text}\n{}",
        crate::util::stderr(&out)
    );
    assert!(text.contains("call {echoed,{add,1,2}}"), "{text}");
    assert!(
        text.contains("noproc {'EXIT',{noproc,{gen_server,call,"),
        "{text}"
    );
    // A remote spawn is refused at once rather than left to time out.
    assert!(text.contains("spawn notsup"), "{text}");

    let msg = tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .expect("message from erl")
        .unwrap();
    let els = msg.as_tuple().expect("a tuple");
    assert_eq!(els[0], atom("hello"));
    // Erlang sends a list of small integers as STRING_EXT; it is the same list.
    assert_eq!(els[1], list(vec![int(1), int(2), int(3)]));
    assert_eq!(els[2], Term::Binary(b"bin".to_vec().into()));
    assert!(matches!(&els[3], Term::Pid(p) if p.node.as_str() == "erl_a@127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_messages_and_calls_an_erl_node() {
    if !have_erlang("rust_messages_and_calls_an_erl_node") {
        return;
    }
    let epmd = Daemon::start().await;
    let node = rust_node("rs_b@127.0.0.1", &epmd, "interop").await;
    let mut ready = node.register("ready").unwrap();
    // erl tells us its inbox exists, echoes what it gets, and answers one call with
    // gen_server:reply/2, as a gen_server would.
    let script = "
        register(inbox, self()),
        {ready, 'rs_b@127.0.0.1'} ! {ready, self()},
        receive {From, Msg} -> From ! {got, Msg} after 20000 -> io:format(\"timeout~n\") end,
        receive {'$gen_call', F, Req} -> gen_server:reply(F, {erl_says, Req}) after 20000 -> ok end,
        receive stop -> ok after 20000 -> ok end,
        halt().";
    let _erl = erl("erl_b@127.0.0.1", epmd.port, script);
    let msg = tokio::time::timeout(DEADLINE, ready.recv())
        .await
        .expect("erl says ready")
        .unwrap();
    assert_eq!(msg.as_tuple().map(|t| t[0].clone()), Some(atom("ready")));

    let erl_name = cluster::dist::NodeName::parse("erl_b@127.0.0.1").unwrap();
    let mut me = node.spawn_mailbox();
    me.send(
        &Dest::name("inbox", &erl_name),
        tuple(vec![Term::Pid(me.pid()), atom("from_rust")]),
    )
    .unwrap();
    let got = tokio::time::timeout(DEADLINE, me.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, tuple(vec![atom("got"), atom("from_rust")]));

    let reply = node
        .call(&Dest::name("inbox", &erl_name), atom("question"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(reply, tuple(vec![atom("erl_says"), atom("question")]));
    node.send(&Dest::name("inbox", &erl_name), atom("stop"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ping_against_erl_and_rust_nodes() {
    if !have_erlang("cluster_ping_against_erl_and_rust_nodes") {
        return;
    }
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    let _erl = erl("erl_c@127.0.0.1", epmd.port, "timer:sleep(infinity).");
    let mut rust = cluster_spawn(&[
        "start",
        "--name",
        "rs_c@127.0.0.1",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
        "--no-epmd-start",
    ]);
    let mut rust_log = rust.stderr_lines();
    wait_registered(epmd.port, "erl_c").await;
    wait_registered(epmd.port, "rs_c").await;

    let out = cluster_async(&[
        "ping",
        "erl_c@127.0.0.1",
        "rs_c@127.0.0.1",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("pong erl_c@127.0.0.1 ("), "{text}");
    assert!(text.contains("pong rs_c@127.0.0.1 ("), "{text}");

    // Wrong cookie: pang both ways, and the Rust node logs who was refused.
    let out = cluster_async(&[
        "ping",
        "erl_c@127.0.0.1",
        "rs_c@127.0.0.1",
        "--cookie",
        "wrong",
        "--epmd-port",
        &port,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("pang erl_c@127.0.0.1: cookie rejected"),
        "{text}"
    );
    assert!(
        text.contains("pang rs_c@127.0.0.1: cookie rejected"),
        "{text}"
    );
    let line = wait_line(&mut rust_log, "cookie mismatch", DEADLINE).await;
    assert!(
        line.contains("cluster-cli-") && line.contains("127.0.0.1:"),
        "{line}"
    );

    let out = erl_with(
        "erl_wrong@127.0.0.1",
        epmd.port,
        "not_the_cookie",
        &[],
        "io:format(\"~p~n\", [net_adm:ping('rs_c@127.0.0.1')]), halt().",
    )
    .wait_output(DEADLINE)
    .await;
    assert_eq!(stdout(&out).trim(), "pang");
    let line = wait_line(&mut rust_log, "cookie mismatch", DEADLINE).await;
    assert!(line.contains("erl_wrong@127.0.0.1"), "{line}");

    // Unknown node.
    let out = cluster_async(&[
        "ping",
        "nosuch@127.0.0.1",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).starts_with("pang nosuch@127.0.0.1: name nosuch not registered"),
        "{}",
        stdout(&out)
    );
}

/// Starts `cluster start --name NAME@127.0.0.1` and an erl node that connects to it and waits
/// for its nodedown; sends `signal` to the Rust node and returns erl's nodedown line and the
/// Rust process.
async fn erl_sees_nodedown_after(
    signal: &str,
    name: &str,
    epmd: &Daemon,
) -> (String, crate::util::Proc) {
    let port = epmd.port.to_string();
    let node = format!("{name}@127.0.0.1");
    let rust = cluster_spawn(&[
        "start",
        "--name",
        &node,
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
        "--no-epmd-start",
    ]);
    wait_registered(epmd.port, name).await;
    let script = format!(
        "net_kernel:monitor_nodes(true, [nodedown_reason]),
        pong = net_adm:ping('{node}'),
        io:format(\"connected~n\"),
        receive {{nodedown, N, Info}} -> io:format(\"nodedown ~p ~p~n\", [N, Info])
        after 20000 -> io:format(\"no nodedown~n\") end,
        halt()."
    );
    let mut watcher = erl(&format!("watch_{name}@127.0.0.1"), epmd.port, &script);
    let mut lines = watcher.stdout_lines();
    wait_line(&mut lines, "connected", DEADLINE).await;
    rust.signal(signal);
    let line = wait_line(&mut lines, "nodedown", DEADLINE).await;
    assert!(line.contains(&format!("'{node}'")), "{line}");
    (line, rust)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erl_sees_nodedown_when_a_rust_node_is_killed() {
    if !have_erlang("erl_sees_nodedown_when_a_rust_node_is_killed") {
        return;
    }
    let epmd = Daemon::start().await;
    let (line, _rust) = erl_sees_nodedown_after("KILL", "rs_d", &epmd).await;
    assert!(line.contains("connection_closed"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_a_node_down_gracefully() {
    if !have_erlang("sigterm_shuts_a_node_down_gracefully") {
        return;
    }
    let epmd = Daemon::start().await;
    let (_line, rust) = erl_sees_nodedown_after("TERM", "rs_t", &epmd).await;
    let out = rust.wait_output(DEADLINE).await;
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    assert!(!registered(epmd.port, "rs_t").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_erl_node_times_out_with_net_tick_timeout() {
    if !have_erlang("a_stopped_erl_node_times_out_with_net_tick_timeout") {
        return;
    }
    let epmd = Daemon::start().await;
    let mut cfg = crate::util::node_config("rs_e@127.0.0.1", &epmd, "interop");
    cfg.ticktime = Duration::from_secs(4);
    let node = Node::start(cfg).await.unwrap();
    let mut events = node.monitor_nodes();
    let erl_node = erl_with(
        "erl_e@127.0.0.1",
        epmd.port,
        "interop",
        &["-kernel", "net_ticktime", "4"],
        "pong = net_adm:ping('rs_e@127.0.0.1'), timer:sleep(infinity).",
    );
    next_event("erl to connect", &mut events, DEADLINE, |ev| match ev {
        NodeEvent::Up { node, .. } if node.as_str() == "erl_e@127.0.0.1" => Some(()),
        _ => None,
    })
    .await;
    erl_node.signal("STOP");
    let stopped = Instant::now();
    let reason = next_event("nodedown", &mut events, DEADLINE, |ev| match ev {
        NodeEvent::Down { node, reason, .. } if node.as_str() == "erl_e@127.0.0.1" => Some(reason),
        _ => None,
    })
    .await;
    let after = stopped.elapsed();
    erl_node.signal("CONT");
    assert_eq!(reason, "net_tick_timeout");
    assert!(
        after >= Duration::from_secs(3) && after <= Duration::from_millis(5500),
        "nodedown after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_monitor_shows_an_erl_node_coming_and_going() {
    if !have_erlang("cluster_monitor_shows_an_erl_node_coming_and_going") {
        return;
    }
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    let node = rust_node("rs_f@127.0.0.1", &epmd, "interop").await;
    let mut monitor = cluster_spawn(&[
        "monitor",
        "rs_f@127.0.0.1",
        "--count",
        "2",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
    ]);
    let mut lines = monitor.stdout_lines();
    // The monitor has subscribed once cluster_events reports a snapshot; it prints no member
    // line for itself, so wait for its hidden connection instead.
    wait_for("the monitor to connect", DEADLINE, || async {
        (!node.connected(true).is_empty()).then_some(())
    })
    .await;
    let out = erl(
        "erl_f@127.0.0.1",
        epmd.port,
        "pong = net_adm:ping('rs_f@127.0.0.1'), halt().",
    )
    .wait_output(DEADLINE)
    .await;
    assert!(out.status.success(), "{out:?}");
    let up = wait_line(&mut lines, "nodeup", DEADLINE).await;
    assert!(
        up.contains("erl_f@127.0.0.1") && up.contains("type=visible"),
        "{up}"
    );
    let down = wait_line(&mut lines, "nodedown", DEADLINE).await;
    assert!(
        down.contains("erl_f@127.0.0.1") && down.contains("reason=connection_closed"),
        "{down}"
    );
    let status = monitor.wait_output(DEADLINE).await.status;
    assert!(
        status.success(),
        "monitor exits 0 after --count 2: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_monitor_falls_back_to_rex_on_plain_erlang() {
    if !have_erlang("cluster_monitor_falls_back_to_rex_on_plain_erlang") {
        return;
    }
    let epmd = Daemon::start().await;
    let port = epmd.port.to_string();
    let _target = erl("erl_g@127.0.0.1", epmd.port, "timer:sleep(infinity).");
    wait_registered(epmd.port, "erl_g").await;
    let mut monitor = cluster_spawn(&[
        "monitor",
        "erl_g@127.0.0.1",
        "--count",
        "1",
        "--json",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
    ]);
    let mut lines = monitor.stdout_lines();
    let mut log = monitor.stderr_lines();
    wait_line(&mut log, "polling rex", DEADLINE).await;
    let _joiner = erl(
        "erl_h@127.0.0.1",
        epmd.port,
        "pong = net_adm:ping('erl_g@127.0.0.1'), timer:sleep(infinity).",
    );
    let up = wait_line(&mut lines, "nodeup", DEADLINE).await;
    let v: serde_json::Value = serde_json::from_str(&up).unwrap();
    assert_eq!(v["event"], "nodeup");
    assert_eq!(v["node"], "erl_h@127.0.0.1");
    assert!(monitor.wait_output(DEADLINE).await.status.success());
}
