//! The beacon's wire contract against a real Elixir node written for seed 000: it calls
//! `GenServer.call({BeaconServer.Beacon, beacon}, …)` exactly as the seed's clients do.

use std::time::Duration;

use crate::util::{elixir, have_elixir, wait_line, Daemon};
use cluster::beacon::{BeaconClient, Event, Registration, SubscriptionEvent};
use cluster::dist::term::atom;
use cluster::dist::{Dest, Node, NodeName};

const DEADLINE: Duration = Duration::from_secs(30);

async fn node(name: &str, epmd: &Daemon) -> Node {
    crate::util::start_node(name, epmd, "seed").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elixir_seed_client_registers_and_gets_online_providers_only() {
    if !have_elixir("an_elixir_seed_client_registers_and_gets_online_providers_only") {
        return;
    }
    let epmd = Daemon::start().await;
    let beacon = node("beacon1@127.0.0.1", &epmd).await;
    assert!(cluster::beacon::server::start(&beacon));

    let script = r#"
        beacon = :"beacon1@127.0.0.1"
        Process.register(self(), :driver)
        call = fn req -> GenServer.call({BeaconServer.Beacon, beacon}, req) end
        IO.puts("register #{inspect(call.({:register, {node(), Gate.Interface, :gate, [:gate_manager]}}))}")
        IO.puts("before #{inspect(call.({:get_requirements, node()}))}")
        receive do :go1 -> :ok after 30_000 -> IO.puts("timeout go1") end
        IO.puts("after #{inspect(call.({:get_requirements, node()}))}")
        receive do :go2 -> :ok after 30_000 -> IO.puts("timeout go2") end
        IO.puts("gone #{inspect(call.({:get_requirements, node()}))}")
    "#;
    let mut ex = elixir("gate_ex@127.0.0.1", epmd.port, "seed", script);
    let mut lines = ex.stdout_lines();
    assert_eq!(
        wait_line(&mut lines, "register", DEADLINE).await,
        "register :ok"
    );
    assert_eq!(
        wait_line(&mut lines, "before", DEADLINE).await,
        "before nil"
    );

    // A provider registers (a Rust node, through our client).
    let provider = node("gm1@127.0.0.1", &epmd).await;
    let client = BeaconClient::new(provider.clone(), beacon.name().clone());
    client
        .register(Registration {
            node: "gm1@127.0.0.1".into(),
            module: "Elixir.GateManager.Interface".into(),
            resource: "gate_manager".into(),
            requirements: vec![],
        })
        .await
        .unwrap();
    let driver = Dest::name("driver", &NodeName::parse("gate_ex@127.0.0.1").unwrap());
    beacon.send(&driver, atom("go1")).unwrap();
    assert_eq!(
        wait_line(&mut lines, "after", DEADLINE).await,
        r#"after {:ok, [%{module: GateManager.Interface, name: :gate_manager, node: :"gm1@127.0.0.1"}]}"#
    );

    // The provider stops: once the beacon has seen it go, it is no longer offered.
    let watcher_node = node("watcher@127.0.0.1", &epmd).await;
    let watcher = BeaconClient::new(watcher_node.clone(), beacon.name().clone());
    let mut events = watcher.subscribe().await.unwrap();
    provider.shutdown().await;
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.next().await.expect("beacon events") {
                SubscriptionEvent::Beacon(Event::Offline { node, .. })
                    if node == "gm1@127.0.0.1" =>
                {
                    return
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the beacon marks gm1 offline");
    beacon.send(&driver, atom("go2")).unwrap();
    assert_eq!(wait_line(&mut lines, "gone", DEADLINE).await, "gone nil");
}
