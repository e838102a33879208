//! The node runtime over the in-memory transport: no sockets, no port mapper.

use std::time::Duration;

use super::*;
use crate::dist::term::{atom, int};
use crate::net::memory::MemoryTransport;

fn config(net: &MemoryTransport, name: &str) -> NodeConfig {
    let mut cfg = NodeConfig::new(NodeName::parse(name).unwrap(), Cookie::new("mem"));
    cfg.transport = Arc::new(net.clone());
    cfg
}

async fn node(net: &MemoryTransport, name: &str) -> Node {
    Node::start(config(net, name)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_with_sends_always_end_with_one_live_connection() {
    let net = MemoryTransport::new();
    for round in 0..100 {
        let a = node(&net, &format!("a{round}@mem")).await;
        let b = node(&net, &format!("b{round}@mem")).await;
        let mut inbox_a = a.register("inbox").unwrap();
        let mut inbox_b = b.register("inbox").unwrap();
        // Both dial at once, and both send while the dials are in flight.
        let (ra, rb) = tokio::join!(
            async {
                a.send(&Dest::name("inbox", b.name()), int(1)).unwrap();
                a.connect(b.name()).await
            },
            async {
                b.send(&Dest::name("inbox", a.name()), int(2)).unwrap();
                b.connect(a.name()).await
            }
        );
        ra.unwrap();
        rb.unwrap();
        assert_eq!(
            inbox_b.recv_timeout(Duration::from_secs(10)).await,
            Some(int(1)),
            "round {round}"
        );
        assert_eq!(
            inbox_a.recv_timeout(Duration::from_secs(10)).await,
            Some(int(2)),
            "round {round}"
        );
        // Exactly one connection, the same on both sides, and it stays up.
        let (ca, cb) = (a.connection_id(b.name()), b.connection_id(a.name()));
        assert!(ca.is_some() && cb.is_some(), "round {round}");
        a.send(&Dest::name("inbox", b.name()), int(3)).unwrap();
        assert_eq!(
            inbox_b.recv_timeout(Duration::from_secs(10)).await,
            Some(int(3)),
            "round {round}"
        );
        assert_eq!(
            a.connection_id(b.name()),
            ca,
            "round {round}: a's connection changed"
        );
        assert_eq!(
            b.connection_id(a.name()),
            cb,
            "round {round}: b's connection changed"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn messages_links_and_monitors_over_memory() {
    let net = MemoryTransport::new();
    let a = node(&net, "a@mem").await;
    let b = node(&net, "b@mem").await;
    let mut inbox = b.register("inbox").unwrap();
    a.send(&Dest::name("inbox", b.name()), atom("hi")).unwrap();
    assert_eq!(
        inbox.recv_timeout(Duration::from_secs(5)).await,
        Some(atom("hi"))
    );
    let mut w = a.spawn_mailbox();
    let r = w.monitor(&Dest::name("inbox", b.name())).unwrap();
    a.call(
        &Dest::name("net_kernel", b.name()),
        crate::dist::term::tuple(vec![atom("is_auth"), atom("x")]),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    drop(inbox);
    let down = w.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        down.to_string(),
        format!("{{'DOWN',{},process,{{inbox,b@mem}},normal}}", Term::Ref(r))
    );
}
