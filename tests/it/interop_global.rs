//! OTP's `global` against real erl nodes: `global:sync()` returns, connections are transitive
//! (erl and `cluster` nodes end fully meshed), global names registered on either kind are seen
//! by the other, locks complete, and a node's names go when it does. The test drives the erl
//! nodes over `rpc` from a hidden node.

use std::time::{Duration, Instant};

use cluster::dist::builtin::{global, rex};
use cluster::dist::term::{atom, int, list, tuple, Term};
use cluster::dist::{Dest, Node, NodeConfig, NodeName};

use crate::util::{
    cluster_async, elixir, erl, have_elixir, have_erlang, start_node, stdout, wait_for, Daemon,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn n(s: &str) -> NodeName {
    NodeName::parse(s).unwrap()
}

async fn rpc(driver: &Node, target: &str, m: &str, f: &str, args: Vec<Term>) -> Term {
    rex::call(driver, &n(target), m, f, args, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("rpc {target} {m}:{f}: {e}"))
}

async fn erl_nodes(driver: &Node, target: &str) -> Vec<String> {
    let mut v: Vec<String> = rpc(driver, target, "erlang", "nodes", vec![])
        .await
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Term::as_atom)
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn names(of: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = of.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erl_and_cluster_nodes_mesh_sync_and_share_global_names() {
    if !have_erlang("erl_and_cluster_nodes_mesh_sync_and_share_global_names") {
        return;
    }
    let epmd = Daemon::start().await;
    let _e1 = erl("ge1@127.0.0.1", epmd.port, "timer:sleep(infinity).");
    let _e2 = erl("ge2@127.0.0.1", epmd.port, "timer:sleep(infinity).");
    let c1 = start_node("gc1@127.0.0.1", &epmd, "interop").await;
    let c2 = start_node("gc2@127.0.0.1", &epmd, "interop").await;
    let driver = Node::start(
        NodeConfig::hidden_client(
            n("gdriver@127.0.0.1"),
            cluster::dist::Cookie::new("interop"),
        )
        .with_epmd_port(epmd.port),
    )
    .await
    .unwrap();
    for e in ["ge1@127.0.0.1", "ge2@127.0.0.1"] {
        wait_for(&format!("{e} to start"), DEADLINE, || async {
            rex::call(
                &driver,
                &n(e),
                "erlang",
                "node",
                vec![],
                Duration::from_secs(2),
            )
            .await
            .ok()
        })
        .await;
    }

    // erl1→cluster1, erl2→cluster2, erl1→erl2.
    let started = Instant::now();
    for (from, to) in [
        ("ge1@127.0.0.1", "gc1@127.0.0.1"),
        ("ge2@127.0.0.1", "gc2@127.0.0.1"),
        ("ge1@127.0.0.1", "ge2@127.0.0.1"),
    ] {
        let r = rpc(&driver, from, "net_kernel", "connect_node", vec![atom(to)]).await;
        assert!(r.is_atom("true"), "{from} -> {to}: {r}");
    }
    let all = [
        "ge1@127.0.0.1",
        "ge2@127.0.0.1",
        "gc1@127.0.0.1",
        "gc2@127.0.0.1",
    ];
    let others = |me: &str| names(&all.iter().copied().filter(|x| *x != me).collect::<Vec<_>>());
    wait_for("the full mesh", Duration::from_secs(2), || async {
        let e1 = erl_nodes(&driver, "ge1@127.0.0.1").await;
        let e2 = erl_nodes(&driver, "ge2@127.0.0.1").await;
        let r1: Vec<String> = c1.nodes().iter().map(|x| x.to_string()).collect();
        let r2: Vec<String> = c2.nodes().iter().map(|x| x.to_string()).collect();
        (e1 == others("ge1@127.0.0.1")
            && e2 == others("ge2@127.0.0.1")
            && names(&r1.iter().map(String::as_str).collect::<Vec<_>>()) == others("gc1@127.0.0.1")
            && names(&r2.iter().map(String::as_str).collect::<Vec<_>>()) == others("gc2@127.0.0.1"))
        .then_some(())
    })
    .await;
    println!("meshed {:?} after the first connect", started.elapsed());

    // `cluster monitor` shows the mesh too.
    let port = epmd.port.to_string();
    let out = cluster_async(&[
        "monitor",
        "gc1@127.0.0.1",
        "--duration",
        "1",
        "--cookie",
        "interop",
        "--epmd-port",
        &port,
    ])
    .await;
    let text = stdout(&out);
    for o in others("gc1@127.0.0.1") {
        assert!(
            text.contains(&format!("member   {o} type=visible")),
            "{o} in\n{text}"
        );
    }

    // global:sync() returns promptly on both erl nodes.
    for e in ["ge1@127.0.0.1", "ge2@127.0.0.1"] {
        if std::env::var_os("DEBUG_GLOBAL").is_some() {
            let st = rpc(
                &driver,
                e,
                "sys",
                "get_state",
                vec![atom("global_name_server")],
            )
            .await;
            println!("{e} state: {st}");
            println!("gc1: {:?}", global::synced(&c1).await);
            println!("gc2: {:?}", global::synced(&c2).await);
        }
        let r = rpc(
            &driver,
            e,
            "timer",
            "tc",
            vec![atom("global"), atom("sync"), list(vec![])],
        )
        .await;
        let Some([Term::Int(micros), ok]) = r.as_tuple() else {
            panic!("{r}")
        };
        assert!(ok.is_atom("ok"), "{r}");
        assert!(*micros < 1_000_000, "global:sync() on {e} took {micros} us");
        println!("global:sync() on {e}: {} ms", micros / 1000);
    }

    // A name registered on erl1 reaches the cluster nodes.
    let holder = rpc(
        &driver,
        "ge1@127.0.0.1",
        "erlang",
        "spawn",
        vec![atom("timer"), atom("sleep"), list(vec![atom("infinity")])],
    )
    .await;
    let r = rpc(
        &driver,
        "ge1@127.0.0.1",
        "global",
        "register_name",
        vec![atom("from_erl1"), holder.clone()],
    )
    .await;
    assert!(r.is_atom("yes"), "{r}");
    let seen = wait_for("from_erl1 on gc2", Duration::from_secs(5), || async {
        global::whereis_name(&c2, &atom("from_erl1"))
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(Term::Pid(seen), holder);

    // A name registered by a cluster process reaches erl2, which can send to it.
    let mut mine = c1.spawn_mailbox();
    assert!(global::register_name(&c1, atom("from_c1"), mine.pid())
        .await
        .unwrap());
    let r = rpc(
        &driver,
        "ge2@127.0.0.1",
        "global",
        "whereis_name",
        vec![atom("from_c1")],
    )
    .await;
    assert_eq!(r, Term::Pid(mine.pid()));
    let r = rpc(
        &driver,
        "ge2@127.0.0.1",
        "global",
        "send",
        vec![atom("from_c1"), atom("hello")],
    )
    .await;
    assert!(matches!(r, Term::Pid(_)), "{r}");
    assert_eq!(mine.recv_timeout(DEADLINE).await, Some(atom("hello")));
    // Taken names are refused, as global does.
    assert!(
        !global::register_name(&c2, atom("from_c1"), c2.spawn_mailbox().pid())
            .await
            .unwrap()
    );

    // Locks from erl complete with cluster nodes in the partition.
    let id = tuple(vec![atom("res"), atom("req")]);
    let fun_node = Term::Export(Box::new(cluster::dist::term::Export {
        module: "erlang".into(),
        function: "node".into(),
        arity: 0,
    }));
    let r = rpc(
        &driver,
        "ge2@127.0.0.1",
        "global",
        "trans",
        vec![id.clone(), fun_node.clone()],
    )
    .await;
    assert!(r.is_atom("ge2@127.0.0.1"), "{r}");
    // A lock a cluster process holds is refused to erl, then granted once released.
    let mut owner = c2.spawn_mailbox();
    assert!(global::set_lock(&mut owner, id.clone()).await.unwrap());
    let other = tuple(vec![atom("res"), atom("other")]);
    let everyone = list(all.iter().map(|x| atom(x)).collect());
    let r = rpc(
        &driver,
        "ge1@127.0.0.1",
        "global",
        "set_lock",
        vec![other.clone(), everyone.clone(), int(0)],
    )
    .await;
    assert!(r.is_atom("false"), "a held lock is refused: {r}");
    global::del_lock(&mut owner, id).await.unwrap();
    let r = rpc(
        &driver,
        "ge1@127.0.0.1",
        "global",
        "trans",
        vec![other, fun_node],
    )
    .await;
    assert!(r.is_atom("ge1@127.0.0.1"), "{r}");

    // The cluster node goes: its names go on the erl nodes.
    c1.shutdown().await;
    wait_for("from_c1 gone on ge2", DEADLINE, || async {
        rpc(
            &driver,
            "ge2@127.0.0.1",
            "global",
            "whereis_name",
            vec![atom("from_c1")],
        )
        .await
        .is_atom("undefined")
        .then_some(())
    })
    .await;
    // And erl2 still syncs: no healthy node was dropped.
    let r = rpc(&driver, "ge2@127.0.0.1", "global", "sync", vec![]).await;
    assert!(r.is_atom("ok"), "{r}");
    assert!(c2.nodes().contains(&n("ge1@127.0.0.1")));
    let _ = Dest::name("x", c2.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elixir_node_that_connects_to_one_node_meets_the_whole_cluster() {
    if !have_elixir("an_elixir_node_that_connects_to_one_node_meets_the_whole_cluster") {
        return;
    }
    let epmd = Daemon::start().await;
    let nodes: Vec<Node> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(start_node(&format!("mesh{i}@127.0.0.1"), &epmd, "interop").await);
        }
        v
    };
    // Our four nodes form a full mesh among themselves first (as a full-mesh cluster does).
    for a in &nodes {
        for b in &nodes {
            a.connect(b.name()).await.unwrap();
        }
    }
    let script = r#"
        true = Node.connect(:"mesh0@127.0.0.1")
        :ok = :global.sync()
        want = [:"mesh0@127.0.0.1", :"mesh1@127.0.0.1", :"mesh2@127.0.0.1", :"mesh3@127.0.0.1"]
        wait = fn wait, n ->
          if Enum.sort(Node.list()) == want or n == 0, do: :ok, else: (Process.sleep(50); wait.(wait, n - 1))
        end
        wait.(wait, 100)
        IO.puts("nodes #{inspect(Enum.sort(Node.list()))}")
    "#;
    let out = elixir("mex@127.0.0.1", epmd.port, "interop", script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    assert!(
        text.contains(r#"nodes [:"mesh0@127.0.0.1", :"mesh1@127.0.0.1", :"mesh2@127.0.0.1", :"mesh3@127.0.0.1"]"#),
        "{text}\n{}",
        crate::util::stderr(&out)
    );
}
