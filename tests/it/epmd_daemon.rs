//! The port-mapper daemon over real sockets: registration lifetime, duplicates, lookups, the
//! control requests, hostile clients, and the places where it must behave exactly as OTP's
//! epmd (IPv6 loopback, slow clients, refused names, a silent stdout, the DUMP format). Each
//! test runs its own daemon on a fresh port.

use std::time::{Duration, Instant};

use crate::util::{cluster_async, cluster_spawn, free_port, wait_for, wait_line, Daemon};
use cluster::epmd::proto::{ControlReply, NodeEntry, Request, MAX_REQUEST_LEN};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_prints_what_epmd_dump_prints() {
    let d = Daemon::start().await;
    let c = client(&d);
    let port = d.port.to_string();

    // No nodes: epmd's header line alone.
    let out = cluster_async(&["epmd", "--dump", "--port", &port]).await;
    assert!(out.status.success(), "{out:?}");
    let header = format!("epmd: up and running on port {} with data:\n", d.port);
    assert_eq!(String::from_utf8_lossy(&out.stdout), header);

    let _live = c.register(entry("live", 7, "")).await.unwrap();
    drop(c.register(entry("gone", 8, "")).await.unwrap());
    let lines = wait_for("gone to be remembered", DEADLINE, || async {
        let lines = c.dump().await.unwrap().lines().unwrap();
        lines.iter().any(|l| !l.active).then_some(lines)
    })
    .await;
    // Live names first, then old ones; the fd column is our connection number.
    let (live, gone) = (&lines[0], &lines[1]);
    assert_eq!(
        (live.active, live.name.as_str(), live.port),
        (true, "live", 7)
    );
    assert_eq!(
        (gone.active, gone.name.as_str(), gone.port),
        (false, "gone", 8)
    );

    let out = cluster_async(&["epmd", "--dump", "--port", &port]).await;
    assert!(out.status.success(), "{out:?}");
    // epmd 25's layout byte for byte: NUL after every line, a space before an old line's
    // newline.
    let expected = format!(
        "{header}active name     <live> at port 7, fd = {}\n\0\
         old/unused name <gone>, port = 8, fd = {} \n\0",
        live.fd, gone.fd
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    let out = cluster_async(&["epmd", "--dump", "--json", "--port", &port]).await;
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["name"], "live");
    assert_eq!(rows[1]["active"], false);
    assert_eq!(rows[1]["port"], 8);
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

/// An ALIVE2 request with Highest `highest`, any name bytes and no Extra.
fn raw_alive2(highest: u16, name: &[u8]) -> Vec<u8> {
    let mut req = vec![b'x', 0x03, 0xe8, 77, 0];
    req.extend_from_slice(&highest.to_be_bytes());
    req.extend_from_slice(&5u16.to_be_bytes());
    req.extend_from_slice(&(name.len() as u16).to_be_bytes());
    req.extend_from_slice(name);
    req.extend_from_slice(&[0, 0]);
    let mut framed = (req.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    framed
}

/// True when the peer has not closed the connection within a short while.
async fn still_open(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte))
        .await
        .is_err()
}

#[tokio::test]
async fn a_bad_alive2_name_gets_epmds_refusal_reply() {
    let d = Daemon::start().await;
    // As epmd 25 answers here: result 1 and creation 99 in the layout the request asked for
    // (`y` with 16 bits for Highest 5, `v` with 32 for Highest 6), and the connection stays
    // open until the client closes it or sends a byte.
    for (highest, reply) in [
        (5, &b"y\x01\x00\x63"[..]),
        (6, &b"v\x01\x00\x00\x00\x63"[..]),
    ] {
        for name in [vec![b'n'; 600], vec![0xff, 0xfe]] {
            let mut s = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
            s.write_all(&raw_alive2(highest, &name)).await.unwrap();
            let mut got = vec![0u8; reply.len()];
            tokio::time::timeout(DEADLINE, s.read_exact(&mut got))
                .await
                .expect("answered")
                .expect("read reply");
            assert_eq!(
                got,
                reply,
                "Highest {highest}, name of {} bytes",
                name.len()
            );
            assert!(still_open(&mut s).await, "kept open, as epmd keeps it");
            s.write_all(b"?").await.unwrap();
            assert_eq!(read_all(&mut s).await, b"", "a byte ends it");
        }
    }
    // What epmd cannot parse (an empty name, a NUL in it) is closed unanswered.
    for name in [&b""[..], b"foo\0"] {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
        s.write_all(&raw_alive2(6, name)).await.unwrap();
        assert_eq!(read_all(&mut s).await, b"", "name {name:?}");
    }
    // Nothing was registered, and our client says what is wrong before asking.
    assert!(names(&client(&d)).await.is_empty());
    let err = client(&d)
        .register(NodeEntry::new("n".repeat(300), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BadEntry { .. }), "{err}");
    assert!(err.to_string().contains("longer than 255"), "{err}");
}

#[tokio::test]
async fn a_duplicate_name_is_answered_and_its_connection_held_as_epmd_does() {
    let d = Daemon::start().await;
    let _first = client(&d).register(entry("twice", 1, "")).await.unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    s.write_all(&raw_alive2(6, b"twice")).await.unwrap();
    let mut got = [0u8; 6];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut got))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(got, *b"v\x01\x00\x00\x00\x63");
    assert!(still_open(&mut s).await);
    drop(s);
    assert_eq!(names(&client(&d)).await, [("twice".into(), 1)]);
}

#[tokio::test]
async fn registers_and_answers_on_the_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback");
        return;
    }
    // Started like every test daemon, with 127.0.0.1 asked for: ::1 comes with it, as epmd's.
    let d = Daemon::start().await;
    let v6 = EpmdClient::new("::1", d.port).with_timeout(Duration::from_secs(5));
    // ::1 is local: ALIVE2 (local peers only) is accepted from it.
    let reg = v6.register(entry("foobar6", 4711, "six")).await.unwrap();
    assert!(reg.creation > 0);
    let found = v6
        .port_please("foobar6")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(found, entry("foobar6", 4711, "six"));
    // One registry for both families.
    let v4 = client(&d);
    assert_eq!(names(&v4).await, [("foobar6".into(), 4711)]);
    assert_eq!(names(&v6).await, [("foobar6".into(), 4711)]);
    drop(reg);
    wait_for("foobar6 to unregister", DEADLINE, || async {
        v4.port_please("foobar6")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_written_a_byte_a_second_is_answered() {
    // The real binary, as OTP's epmd suite runs epmd: `--packet-timeout 1` is epmd's
    // `-packet_timeout 1`, and a pause of a whole second between bytes is inactivity
    // epmd tolerates.
    let port = free_port();
    let mut daemon = cluster_spawn(&[
        "epmd",
        "--port",
        &port.to_string(),
        "--address",
        "127.0.0.1",
        "--packet-timeout",
        "1",
    ]);
    wait_line(&mut daemon.stderr_lines(), "listening on", DEADLINE).await;
    let c = EpmdClient::new("127.0.0.1", port).with_timeout(Duration::from_secs(5));
    let _reg = c.register(entry("foo", 1042, "")).await.unwrap();

    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = Request::PortPlease2 { name: "foo".into() }.to_bytes();
    for (i, byte) in request.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        s.write_all(&[*byte]).await.expect("still open");
    }
    let reply = read_all(&mut s).await;
    let found = cluster::epmd::proto::decode_port2_reply(&reply)
        .unwrap_or_else(|e| panic!("{e}: {reply:?}"))
        .expect("foo is registered");
    assert_eq!(found.port, 1042);
}

#[tokio::test]
async fn a_connection_trickling_past_the_request_deadline_is_closed() {
    let d = Daemon::start_with(ServerConfig {
        packet_timeout: Duration::from_secs(1),
        request_deadline: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await;
    let c = client(&d);
    let _keep = c.register(entry("steady", 1, "")).await.unwrap();
    // A lookup declaring 40 bytes, written a byte every 300 ms: never silent for the packet
    // timeout, but 12 s for the whole, far past the deadline.
    let s = TcpStream::connect(("127.0.0.1", d.port)).await.unwrap();
    let (mut rx, mut tx) = s.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let mut bytes = vec![0, 40, b'z'];
        bytes.resize(42, b'a');
        for byte in bytes {
            if tx.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut sink = Vec::new();
    tokio::time::timeout(DEADLINE, rx.read_to_end(&mut sink))
        .await
        .expect("closed by the daemon")
        .ok();
    let took = started.elapsed();
    trickle.abort();
    assert!(sink.is_empty(), "no answer to an incomplete request");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}, the deadline is 2 s"
    );
    assert!(c.port_please("steady").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_foreground_daemon_keeps_stdout_empty() {
    // As epmd: scripts that run it in the foreground (OTP's suite reads `epmd -names` output
    // from a port that also sees the daemon's stdout) must see nothing from it there.
    let port = free_port();
    let mut daemon = cluster_spawn(&["epmd", "--port", &port.to_string()]);
    let line = wait_line(&mut daemon.stderr_lines(), "listening on", DEADLINE).await;
    assert!(
        line.contains(&format!("cluster epmd: listening on 0.0.0.0:{port}")),
        "{line}"
    );
    let c = EpmdClient::new("127.0.0.1", port).with_timeout(Duration::from_secs(5));
    let _reg = c.register(entry("foobar", 1000, "")).await.unwrap();
    assert_eq!(names(&c).await, [("foobar".into(), 1000)]);
    daemon.signal("TERM");
    let out = daemon.wait_output(DEADLINE).await;
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
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

/// Nodes started at the same instant on a host with no port mapper each start one; all but
/// one of those daemons find the port taken and exit. Every node must still come up, using
/// the port mapper that won (as a second `epmd -daemon` defers to the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_without_a_port_mapper_all_come_up() {
    let port = free_port().to_string();
    let mut procs: Vec<_> = (0..4)
        .map(|i| {
            cluster_spawn(&[
                "start",
                "--name",
                &format!("at_once{i}@127.0.0.1"),
                "--cookie",
                "c",
                "--epmd-port",
                &port,
            ])
        })
        .collect();
    for p in &mut procs {
        let mut out = p.stdout_lines();
        wait_line(&mut out, "up on port", Duration::from_secs(30)).await;
    }
    let names = EpmdClient::new("127.0.0.1", port.parse().unwrap())
        .names()
        .await
        .unwrap();
    assert_eq!(names.names.len(), 4, "{names:?}");
    drop(procs);
    crate::util::stop_port_mapper(port.parse().unwrap()).await;
}
