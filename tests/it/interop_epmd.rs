//! Interop with real Erlang/OTP: `erl` must use our port mapper as if it were its own `epmd`,
//! the real `epmd -names` must read our replies, and `cluster names` must read the real
//! `epmd`'s. CI installs OTP, so these always run there.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{cluster_async, erl, free_port, have_erlang, stdout, wait_for, Daemon, Proc};
use cluster::epmd::{EpmdClient, NodeEntry, NodeType};

/// erl takes about a second to boot; allow for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(30);

async fn registered(port: u16, name: &str) -> bool {
    EpmdClient::new("127.0.0.1", port)
        .names()
        .await
        .map(|n| n.names.iter().any(|l| l.name == name))
        .unwrap_or(false)
}

async fn real_epmd_names(port: u16) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("epmd")
            .args(["-port", &port.to_string(), "-names"])
            .output()
            .expect("run epmd -names")
    })
    .await
    .unwrap();
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_erl_registers_with_our_port_mapper() {
    if !have_erlang("a_erl_registers_with_our_port_mapper") {
        return;
    }
    let d = Daemon::start().await;
    let mut node = erl("interop_a@127.0.0.1", d.port, "timer:sleep(infinity).");
    wait_for("erl to register", DEADLINE, || async {
        registered(d.port, "interop_a").await.then_some(())
    })
    .await;

    // OTP's own client reads our NAMES reply.
    let listing = real_epmd_names(d.port).await;
    assert!(
        listing.contains(&format!("up and running on port {}", d.port)),
        "{listing}"
    );
    assert!(listing.contains("name interop_a at port "), "{listing}");

    // Our client reads what erl registered: a visible node speaking versions 5 and 6.
    let entry = EpmdClient::new("127.0.0.1", d.port)
        .port_please("interop_a")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(entry.node_type, NodeType::Normal);
    assert_eq!((entry.highest, entry.lowest), (6, 5));

    let out = cluster_async(&["names", "--epmd-port", &d.port.to_string(), "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "interop_a")
        .unwrap_or_else(|| panic!("interop_a missing from {rows}"));
    assert_eq!(row["port"], entry.port);
    assert_eq!(row["type"], "normal");

    node.kill();
    wait_for("erl to unregister", DEADLINE, || async {
        (!registered(d.port, "interop_a").await).then_some(())
    })
    .await;
    assert!(!real_epmd_names(d.port).await.contains("interop_a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_two_erl_nodes_find_each_other_through_us() {
    if !have_erlang("b_two_erl_nodes_find_each_other_through_us") {
        return;
    }
    let d = Daemon::start().await;
    let _target = erl("interop_b1@127.0.0.1", d.port, "timer:sleep(infinity).");
    wait_for("the first erl to register", DEADLINE, || async {
        registered(d.port, "interop_b1").await.then_some(())
    })
    .await;
    // The second node looks the first up through our PORT_PLEASE2 and our NAMES (erl_epmd
    // parses the text lines), then connects and pings.
    let caller = erl(
        "interop_b2@127.0.0.1",
        d.port,
        "{ok, Names} = erl_epmd:names(\"127.0.0.1\"), \
         io:format(\"names ~p~n\", [lists:sort([N || {N, _} <- Names])]), \
         io:format(\"ping ~p~n\", [net_adm:ping('interop_b1@127.0.0.1')]), halt().",
    );
    let out = caller.wait_output(DEADLINE).await;
    let text = stdout(&out);
    assert!(
        text.contains("ping pong"),
        "stdout: {text}\nstderr: {}",
        crate::util::stderr(&out)
    );
    assert!(
        text.contains("names [\"interop_b1\",\"interop_b2\"]"),
        "stdout: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_cluster_names_reads_a_real_epmd() {
    if !have_erlang("c_cluster_names_reads_a_real_epmd") {
        return;
    }
    let port = free_port();
    // The real epmd in the foreground, so the test owns its pid and stops it.
    let _epmd = Proc::new(
        Command::new("epmd")
            .args(["-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start epmd"),
    );
    wait_for("real epmd to answer", DEADLINE, || async {
        EpmdClient::new("127.0.0.1", port).names().await.ok()
    })
    .await;
    let _node = erl("interop_c@127.0.0.1", port, "timer:sleep(infinity).");
    wait_for("erl to register with real epmd", DEADLINE, || async {
        registered(port, "interop_c").await.then_some(())
    })
    .await;

    let out = cluster_async(&["names", "--epmd-port", &port.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    let table = stdout(&out);
    let line = table
        .lines()
        .find(|l| l.starts_with("interop_c "))
        .unwrap_or_else(|| panic!("no interop_c row in:\n{table}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols.len(), 4, "{line}");
    assert!(cols[1].parse::<u16>().is_ok(), "{line}");
    assert_eq!(&cols[2..], ["normal", "-"], "{line}");
}

/// Runs `epmd -dump` and `cluster epmd --dump` against the port mapper on `port`.
async fn both_dumps(port: u16) -> (Vec<u8>, Vec<u8>) {
    let real = tokio::task::spawn_blocking(move || {
        Command::new("epmd")
            .args(["-port", &port.to_string(), "-dump"])
            .output()
            .expect("run epmd -dump")
    })
    .await
    .unwrap();
    assert!(real.status.success(), "{real:?}");
    let ours = cluster_async(&["epmd", "--dump", "--port", &port.to_string()]).await;
    assert!(ours.status.success(), "{ours:?}");
    (real.stdout, ours.stdout)
}

/// Registers `gone` and lets it go, then waits until the port mapper lists it as old.
async fn a_name_that_came_and_went(port: u16) {
    let c = EpmdClient::new("127.0.0.1", port);
    drop(c.register(NodeEntry::new("gone", 9)).await.unwrap());
    wait_for("gone to be remembered", DEADLINE, || async {
        let dump = c.dump().await.ok()?.lines().ok()?;
        dump.iter()
            .any(|l| !l.active && l.name == "gone")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_cluster_epmd_dump_prints_what_epmd_dump_prints() {
    if !have_erlang("d_cluster_epmd_dump_prints_what_epmd_dump_prints") {
        return;
    }
    // Against the real epmd, with a real erl node and a name that came and went: both tools
    // print the same bytes.
    let port = free_port();
    let _epmd = Proc::new(
        Command::new("epmd")
            .args(["-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start epmd"),
    );
    wait_for("real epmd to answer", DEADLINE, || async {
        EpmdClient::new("127.0.0.1", port).names().await.ok()
    })
    .await;
    let _node = erl("interop_d@127.0.0.1", port, "timer:sleep(infinity).");
    wait_for("erl to register with real epmd", DEADLINE, || async {
        registered(port, "interop_d").await.then_some(())
    })
    .await;
    a_name_that_came_and_went(port).await;
    let (real, ours) = both_dumps(port).await;
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&real)
    );
    let text = String::from_utf8_lossy(&real);
    assert!(
        text.starts_with(&format!("epmd: up and running on port {port} with data:\n")),
        "{text:?}"
    );
    assert!(
        text.contains("active name     <interop_d> at port "),
        "{text:?}"
    );
    assert!(
        text.contains("old/unused name <gone>, port = 9, fd = "),
        "{text:?}"
    );

    // Against ours, `epmd -dump` reads our reply and prints what we print.
    let d = Daemon::start().await;
    let _live = EpmdClient::new("127.0.0.1", d.port)
        .register(NodeEntry::new("live", 7))
        .await
        .unwrap();
    a_name_that_came_and_went(d.port).await;
    let (real, ours) = both_dumps(d.port).await;
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&real)
    );
    let text = String::from_utf8_lossy(&ours);
    assert!(
        text.contains("active name     <live> at port 7, fd = "),
        "{text:?}"
    );
    assert!(
        text.contains("old/unused name <gone>, port = 9, fd = "),
        "{text:?}"
    );
}
