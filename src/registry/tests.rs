//! `cluster_server` between in-process nodes over the in-memory transport, under a paused
//! clock: the cases the churn and partition tests of `tests/it/registry_partition.rs` found,
//! each set up on purpose (a peer that has not noticed a node go down, a home that never heard
//! of an entry, a factory that never answers).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::state::home;
use super::*;
use crate::dist::term::{int, list};
use crate::dist::{Cookie, NodeConfig};
use crate::net::memory::MemoryTransport;

/// A node on `net` that connects only where a test says (no `global` meshing).
async fn node(net: &MemoryTransport, name: &str) -> Node {
    let mut cfg = NodeConfig::new(NodeName::parse(name).expect("name"), Cookie::new("mem"));
    cfg.transport = Arc::new(net.clone());
    cfg.global = false;
    Node::start(cfg).await.expect("node starts")
}

/// The registry on `node`, hosting `echo` or nothing; `echo` fails over.
fn registry(node: &Node, hosts_echo: bool) -> Registry {
    start(
        node,
        Options {
            hosts: if hosts_echo {
                vec![Atom::from(ECHO)]
            } else {
                Vec::new()
            },
            restart: [Atom::from(ECHO)].into_iter().collect(),
            ..Options::default()
        },
    )
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status(of: &Node) -> Term {
    Client::new(of.clone(), of.name().clone())
        .status()
        .await
        .expect("status")
}

fn servers(status: &Term) -> Vec<String> {
    let mut v: Vec<String> = status
        .map_get_atom("servers")
        .and_then(Term::as_list)
        .expect("servers")
        .iter()
        .filter_map(|t| t.as_atom().map(str::to_owned))
        .collect();
    v.sort();
    v
}

async fn sees(node: &Node, expected: &[&Node]) {
    let mut want: Vec<String> = expected.iter().map(|n| n.name().to_string()).collect();
    want.sort();
    eventually(&format!("{} to see {want:?}", node.name()), || async {
        (servers(&status(node).await) == want).then_some(())
    })
    .await;
}

/// An id whose home among `nodes` is `want`.
fn id_homed_at(want: &Node, nodes: &[&Node]) -> Term {
    let names: Vec<Atom> = nodes
        .iter()
        .map(|n| Atom::from(n.name().as_str()))
        .collect();
    (0..1000)
        .map(int)
        .find(|id| {
            home(&Key::new(ECHO, id.clone()), &names).map(Atom::as_str)
                == Some(want.name().as_str())
        })
        .expect("some id is homed there")
}

#[tokio::test(start_paused = true)]
async fn a_home_does_not_take_back_the_entry_of_a_node_it_saw_go_down() {
    let net = MemoryTransport::new();
    let (h, t, x) = (
        node(&net, "h@mem").await,
        node(&net, "t@mem").await,
        node(&net, "x@mem").await,
    );
    let (reg_h, _reg_t, reg_x) = (registry(&h, false), registry(&t, true), registry(&x, true));
    h.connect(t.name()).await.expect("h-t");
    h.connect(x.name()).await.expect("h-x");
    t.connect(x.name()).await.expect("t-x");
    for n in [&h, &t, &x] {
        sees(n, &[&h, &t, &x]).await;
    }
    // h is the home of the id once x is gone, and t the only node that can host it.
    let id = id_homed_at(&h, &[&h, &t]);
    let on_x = reg_x
        .create_process(ECHO, id.clone(), Selector::Node(x.name().as_str().into()))
        .await
        .expect("created on x");
    eventually("h to hold x's entry", || async {
        reg_h.whereis(ECHO, &id).filter(|r| r.pid == on_x.pid)
    })
    .await;

    // h loses x; t has not (x is alive and connected to it), so t answers h's failover
    // create with x's entry. h must not take it back, however long it keeps trying.
    h.disconnect(x.name());
    eventually("h to drop x's entry", || async {
        reg_h.whereis(ECHO, &id).is_none().then_some(())
    })
    .await;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            reg_h.whereis(ECHO, &id),
            None,
            "h must not take back an entry of a node it saw go down"
        );
    }
    // Its attempts are bounded: nothing piles up while it waits.
    let pending = status(&h)
        .await
        .map_get_atom("pending")
        .and_then(Term::as_int);
    assert!(pending.is_some_and(|p| p <= 1), "{pending:?}");

    // Once h reaches x again, x's sync brings the entry back.
    h.connect(x.name()).await.expect("h-x again");
    eventually("h to hold x's entry again", || async {
        reg_h.whereis(ECHO, &id).filter(|r| r.pid == on_x.pid)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_home_that_never_heard_of_a_dead_nodes_entry_is_asked_to_re_create_it() {
    let net = MemoryTransport::new();
    let (s, n, x) = (
        node(&net, "s@mem").await,
        node(&net, "n@mem").await,
        node(&net, "x@mem").await,
    );
    let (reg_s, reg_n, reg_x) = (registry(&s, true), registry(&n, true), registry(&x, true));
    // n and x never meet: x's entries reach s only.
    s.connect(n.name()).await.expect("s-n");
    s.connect(x.name()).await.expect("s-x");
    sees(&s, &[&s, &n, &x]).await;
    sees(&n, &[&s, &n]).await;
    sees(&x, &[&s, &x]).await;
    let id = id_homed_at(&n, &[&s, &n]);
    let process = x.spawn_mailbox();
    let pid = process.pid();
    reg_x
        .register(ECHO, id.clone(), pid.clone(), list(vec![]))
        .await
        .expect("x registers");
    eventually("s to hold x's entry", || async {
        reg_s.whereis(ECHO, &id).filter(|r| r.pid == pid)
    })
    .await;
    assert_eq!(reg_n.whereis(ECHO, &id), None);

    // x goes. s held the entry but is not its home; n is, and never heard of it.
    s.disconnect(x.name());
    let again = eventually("the process to be created again", || async {
        reg_s.whereis(ECHO, &id).filter(|r| r.pid != pid)
    })
    .await;
    assert_ne!(again.node(), x.name().as_str());
    assert_eq!(reg_n.whereis(ECHO, &id).map(|r| r.pid), Some(again.pid));
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_factory_never_answers_times_out() {
    let net = MemoryTransport::new();
    let (h, b) = (node(&net, "h@mem").await, node(&net, "b@mem").await);
    let _reg = registry(&h, false);
    // b runs no cluster_server, as a BEAM node would not: its factory is a process that
    // takes the create and never answers.
    let factory = b.spawn_mailbox();
    let register = tuple(vec![
        atom("register_factory"),
        atom("slow"),
        Term::Pid(factory.pid()),
    ]);
    eventually("cluster_server to take the factory", || async {
        h.call(
            &Dest::name(NAME, h.name()),
            register.clone(),
            Duration::from_secs(5),
        )
        .await
        .ok()
        .filter(|r| r.is_atom("ok"))
    })
    .await;
    let started = tokio::time::Instant::now();
    let result = Client::new(h.clone(), h.name().clone())
        .with_timeout(Duration::from_secs(60))
        .create_process("slow", int(1), Selector::LeastLoaded)
        .await;
    assert!(
        matches!(&result, Err(RegistryError::Refused(why)) if why == "timeout"),
        "{:?}",
        result.map(|r| r.pid)
    );
    assert!(started.elapsed() < server::CREATE_TIMEOUT + Duration::from_secs(1));
    assert_eq!(status(&h).await.map_get_atom("pending"), Some(&int(0)));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_server_keeps_no_entry_of_a_node_that_went_while_it_was_down() {
    let net = MemoryTransport::new();
    let (a, b) = (node(&net, "a@mem").await, node(&net, "b@mem").await);
    let (reg_a, reg_b) = (registry(&a, true), registry(&b, true));
    a.connect(b.name()).await.expect("a-b");
    sees(&a, &[&a, &b]).await;
    sees(&b, &[&a, &b]).await;
    let mine = reg_a
        .create_process(ECHO, int(1), Selector::Node(a.name().as_str().into()))
        .await
        .expect("on a");
    let theirs = reg_b
        .create_process(ECHO, int(2), Selector::Node(b.name().as_str().into()))
        .await
        .expect("on b");
    eventually("a to hold b's entry", || async {
        reg_a.whereis(ECHO, &int(2)).filter(|r| r.pid == theirs.pid)
    })
    .await;
    // a's server dies, and b goes while it is down: nobody on a sees that nodedown.
    let server = a.whereis(NAME).expect("a's server");
    a.exit(&server, atom("kill")).expect("kill");
    a.disconnect(b.name());
    eventually("a's server to be back", || async {
        a.whereis(NAME).filter(|p| *p != server)
    })
    .await;
    eventually("a to drop b's entry", || async {
        reg_a.whereis(ECHO, &int(2)).is_none().then_some(())
    })
    .await;
    // What a owns survives its server's restart.
    assert_eq!(reg_a.whereis(ECHO, &int(1)).map(|r| r.pid), Some(mine.pid));
}
