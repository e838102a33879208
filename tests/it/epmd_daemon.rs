//! The port-mapper daemon over real sockets: registration lifetime, duplicates, lookups, the
//! control requests, and hostile clients. Each test runs its own daemon on a fresh port.

use std::time::Duration;

use crate::util::{wait_for, Daemon};
use cluster::epmd::proto::{ControlReply, NodeEntry, MAX_REQUEST_LEN};
use cluster::epmd::{ClientError, EpmdClient, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(10);

fn client(d: &Daemon) -> EpmdClient {
    EpmdClient::new("127.0.0.1", d.port).with_timeout(Duration::from_secs(5))
}

fn entry(name: &str, port: u16, role: &str) -> NodeEntry {
    let mut e = NodeEntry::new(name, port);
    e.extra = role.as_bytes().to_vec();
    e
}

async fn names(c: &EpmdClient) -> Vec<(String, u16)> {
    let mut v: Vec<_> = c
        .names()
        .await
        .expect("names")
        .names
        .into_iter()
        .map(|l| (l.name, l.port))
        .collect();
    v.sort();
    v
}

/// Reads until the server closes; returns what it sent.
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buf))
        .await
        .expect("server should close the connection")
        .ok();
    buf
}

#[tokio::test]
async fn register_lookup_names_and_unregister_on_close() {
    let d = Daemon::start().await;
    let c = client(&d);
    let reg = c.register(entry("gate1", 4001, "gate")).await.unwrap();
    assert!(reg.creation > 0);
    let _other = c.register(entry("beacon1", 4002, "beacon")).await.unwrap();

    assert_eq!(
        names(&c).await,
        [("beacon1".into(), 4002), ("gate1".into(), 4001)]
    );
    let found = c.port_please("gate1").await.unwrap().expect("registered");
    assert_eq!(found, entry("gate1", 4001, "gate"));
    assert_eq!(c.names().await.unwrap().epmd_port, u32::from(d.port));
    assert_eq!(c.port_please("nosuch").await.unwrap(), None);

    drop(reg);
    wait_for("gate1 to unregister", DEADLINE, || async {
        (names(&c).await == [("beacon1".into(), 4002)]).then_some(())
    })
    .await;
    assert_eq!(c.port_please("gate1").await.unwrap(), None);
}

#[tokio::test]
async fn a_byte_after_registering_unregisters() {
    let d = Daemon::start().await;
    let c = client(&d);
    let mut raw = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    let mut req = cluster::epmd::proto::Request::Alive2(entry("chatty", 1, "")).to_bytes();
    raw.write_all(&req).await.unwrap();
    let mut reply = [0u8; 6];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[..2], [b'v', 0]);
    assert!(c.port_please("chatty").await.unwrap().is_some());
    req.clear();
    raw.write_all(b"?").await.unwrap();
    wait_for("chatty to unregister", DEADLINE, || async {
        c.port_please("chatty")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn duplicate_live_name_is_refused_and_original_survives() {
    let d = Daemon::start().await;
    let c = client(&d);
    let first = c.register(entry("dup", 4001, "gate")).await.unwrap();
    match c.register(entry("dup", 5001, "other")).await {
        Err(ClientError::NameTaken { name, .. }) => assert_eq!(name, "dup"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    let found = c.port_please("dup").await.unwrap().unwrap();
    assert_eq!((found.port, found.extra), (4001, b"gate".to_vec()));

    // Once the first holder is gone the name is free again, with a new creation.
    let creation = first.creation;
    drop(first);
    let again = wait_for("dup to be free", DEADLINE, || async {
        c.register(entry("dup", 6001, "gate")).await.ok()
    })
    .await;
    assert_eq!(again.creation, creation.wrapping_add(1));
}

#[tokio::test]
async fn garbage_and_junk_connections_leave_registrations_intact() {
    let d = Daemon::start_with(ServerConfig {
        packet_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    let c = client(&d);
    let _keep = c.register(entry("survivor", 4321, "beacon")).await.unwrap();

    let junk: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        vec![0, 0],
        ((MAX_REQUEST_LEN + 1) as u16).to_be_bytes().to_vec(),
        vec![0xff, 0xff, b'x'],
        vec![0, 1, b'Q'],
        vec![0, 3, b'x', 0, 1],
        vec![0, 5, b'z', 0, b'a', 0, b'b'],
        vec![0, 20, b'n'],
        vec![],
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000usize {
        let bytes = junk[i % junk.len()].clone();
        let port = d.port;
        tasks.spawn(async move {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = s.write_all(&bytes).await;
                // Half of them hang up at once; the rest wait to be closed by the daemon.
                if i % 2 == 0 {
                    let mut sink = Vec::new();
                    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut sink)).await;
                }
            }
        });
        if tasks.len() >= 100 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}

    let found = c
        .port_please("survivor")
        .await
        .unwrap()
        .expect("still registered");
    assert_eq!((found.port, found.extra), (4321, b"beacon".to_vec()));
    assert_eq!(names(&c).await, [("survivor".into(), 4321)]);
    c.register(entry("newcomer", 1, ""))
        .await
        .expect("still accepting registrations");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_packet_timeout() {
    let d = Daemon::start_with(ServerConfig {
        packet_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let mut idle = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    // Half a request, then silence: the daemon must hang up rather than wait forever.
    idle.write_all(&[0, 10, b'z']).await.unwrap();
    assert_eq!(read_all(&mut idle).await, b"");
}

#[tokio::test]
async fn idle_connections_at_the_cap_make_room_for_new_clients() {
    let d = Daemon::start_with(ServerConfig {
        max_connections: 4,
        packet_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    })
    .await;
    let c = client(&d);
    let _reg = c.register(entry("capped", 9, "")).await.unwrap();
    // Far more idle connections than the cap: each newcomer evicts the oldest idle one.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(("127.0.0.1", d.port)).await.unwrap());
    }
    let listed = tokio::time::timeout(DEADLINE, c.names())
        .await
        .expect("answered at once")
        .expect("a client still gets an answer");
    assert_eq!(listed.names.len(), 1, "the registration held");
    // The oldest idle connections were closed.
    assert_eq!(read_all(&mut idle[0]).await, b"");
}

#[tokio::test]
async fn kill_is_refused_while_nodes_are_registered() {
    let mut d = Daemon::start().await;
    let c = client(&d);
    let reg = c.register(entry("alive", 1, "")).await.unwrap();
    assert_eq!(c.kill().await.unwrap(), ControlReply::No);
    assert!(c.port_please("alive").await.unwrap().is_some());
    drop(reg);
    wait_for("alive to unregister", DEADLINE, || async {
        c.port_please("alive")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(c.kill().await.unwrap(), ControlReply::Ok);
    tokio::time::timeout(DEADLINE, d.exited())
        .await
        .expect("daemon exits after KILL");
    assert!(matches!(c.names().await, Err(ClientError::Connect { .. })));
}

#[tokio::test]
async fn stop_needs_relaxed_mode_and_closes_the_registration() {
    let strict = Daemon::start().await;
    let c = client(&strict);
    let _reg = c.register(entry("victim", 1, "")).await.unwrap();
    assert!(matches!(
        c.stop("victim").await,
        Err(ClientError::Refused { .. })
    ));
    assert!(c.port_please("victim").await.unwrap().is_some());

    let relaxed = Daemon::start_with(ServerConfig {
        relaxed_command_check: true,
        ..ServerConfig::default()
    })
    .await;
    let c = client(&relaxed);
    let mut reg = c.register(entry("victim", 1, "")).await.unwrap();
    assert_eq!(c.stop("nosuch").await.unwrap(), ControlReply::NoExist);
    assert_eq!(c.stop("victim").await.unwrap(), ControlReply::Stopped);
    assert_eq!(c.port_please("victim").await.unwrap(), None);
    tokio::time::timeout(DEADLINE, reg.closed())
        .await
        .expect("the node's registration connection is closed");
    // Relaxed mode also allows KILL with live nodes.
    let _live = c.register(entry("other", 2, "")).await.unwrap();
    assert_eq!(c.kill().await.unwrap(), ControlReply::Ok);
}

#[tokio::test]
async fn dump_lists_live_and_remembered_names() {
    let d = Daemon::start().await;
    let c = client(&d);
    let _live = c.register(entry("live", 7, "")).await.unwrap();
    drop(c.register(entry("gone", 8, "")).await.unwrap());
    let dump = wait_for("gone to be remembered", DEADLINE, || async {
        let text = c.dump().await.unwrap();
        text.contains("old/unused name <gone>").then_some(text)
    })
    .await;
    assert!(dump.contains("active name     <live> at port 7"), "{dump}");
}

#[tokio::test]
async fn shutdown_unregisters_everyone() {
    let d = Daemon::start().await;
    let c = client(&d);
    let mut reg = c.register(entry("node", 1, "")).await.unwrap();
    d.stop().await;
    tokio::time::timeout(DEADLINE, reg.closed())
        .await
        .expect("registration closed when the daemon stops");
    assert!(matches!(c.names().await, Err(ClientError::Connect { .. })));
}

#[tokio::test]
async fn a_bad_alive2_name_gets_epmds_refusal_reply() {
    let d = Daemon::start().await;
    for name in [vec![b'n'; 600], vec![0xff, 0xfe], vec![]] {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        let mut req = vec![b'x', 0, 1, 77, 0, 0, 6, 0, 5];
        req.extend_from_slice(&(name.len() as u16).to_be_bytes());
        req.extend_from_slice(&name);
        req.extend_from_slice(&[0, 0]);
        let mut framed = (req.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&req);
        s.write_all(&framed).await.unwrap();
        let reply = read_all(&mut s).await;
        assert_eq!(reply, [b'y', 1], "name of {} bytes", name.len());
    }
    // The client says what happened.
    let err = client(&d)
        .register(NodeEntry::new("n".repeat(300), 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("name was refused"), "{err}");
}

#[tokio::test]
async fn a_full_port_mapper_says_so() {
    let d = Daemon::start_with(ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(
            client(&d)
                .register(entry(&format!("n{i}"), 9, ""))
                .await
                .unwrap(),
        );
    }
    let err = client(&d).register(entry("late", 9, "")).await.unwrap_err();
    assert!(err.to_string().contains("or it is full"), "{err}");
    held.pop();
    wait_for("room again", Duration::from_secs(10), || async {
        client(&d).register(entry("late", 9, "")).await.ok()
    })
    .await;
}
