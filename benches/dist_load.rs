//! The Rust side of `benches/dist_vs_beam.py`: one node per process, so the comparison with two
//! BEAM VMs is like for like. Run by the script; by hand:
//!
//! ```sh
//! cargo bench --bench dist_load -- receiver --name r@127.0.0.1 --epmd-port P
//! cargo bench --bench dist_load -- throughput --name s@127.0.0.1 --target r@127.0.0.1 --count 1000000 --epmd-port P
//! cargo bench --bench dist_load -- pingpong   --name s@127.0.0.1 --target r@127.0.0.1 --count 20000 --epmd-port P
//! ```
//!
//! The receiver registers `sink` (counts `{start, From, N}` then N messages and sends `done` to
//! From) and `echo` (sends every `{From, Msg}` back to From as Msg). The Erlang side in the
//! script does exactly the same with the same message shapes.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use cluster::dist::builtin::cluster_events::{ClusterEvent, Subscription};
use cluster::dist::term::{atom, int, tuple, Term};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};

const COOKIE: &str = "bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Serve `sink` and `echo`.
    Receiver,
    /// Send COUNT 64-byte messages to the target's `sink`.
    Throughput,
    /// COUNT round trips through the target's `echo`.
    Pingpong,
    /// Wait until every node listed in the TARGET file sees COUNT visible peers.
    MeshWait,
    /// The kernel's floor: echo 64-byte blocks on a loopback port (printed as `ready PORT`).
    RawEcho,
    /// Round trips of 64-byte blocks against `raw-echo` (TARGET is its port).
    RawPingpong,
}

/// Distribution load generator.
#[derive(Debug, Parser)]
struct Args {
    /// What to run.
    #[arg(value_enum)]
    mode: Mode,
    /// This node's name.
    #[arg(long, default_value = "")]
    name: String,
    /// The peer node (or a file, or a port, depending on the mode).
    #[arg(long)]
    target: Option<String>,
    /// How many messages or round trips.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// The port mapper's port.
    #[arg(long, default_value_t = 4369)]
    epmd_port: u16,
    /// Runtime worker threads; 0 is a current-thread runtime, as `cluster start` uses by
    /// default [default: env DIST_LOAD_THREADS, else 0].
    #[arg(long, env = "DIST_LOAD_THREADS", default_value_t = 0)]
    threads: usize,
    /// Microseconds to spin before sleeping while busy, as `cluster start --spin`
    /// [default: env DIST_LOAD_SPIN, else cluster's default].
    #[arg(long, env = "DIST_LOAD_SPIN", default_value_t = cluster::net::spin::DEFAULT_SPIN.as_micros() as u64)]
    spin: u64,
}

fn main() {
    // `cargo bench` passes `--bench`; it is not ours.
    let argv = std::env::args().filter(|a| a != "--bench");
    let args = Args::parse_from(argv);
    match args.mode {
        Mode::RawEcho => return raw_echo(&args),
        Mode::RawPingpong => return raw_pingpong(&args),
        _ => {}
    }
    let mut builder = if args.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    // As `cluster start` does by default.
    cluster::net::spin::install(&mut builder, Duration::from_micros(args.spin));
    let rt = builder.enable_all().build().expect("runtime");
    rt.block_on(run(args));
}

async fn start(args: &Args, listen: bool) -> Node {
    let name = NodeName::parse(&args.name).expect("node name");
    let mut cfg = NodeConfig::new(name, Cookie::new(COOKIE)).with_epmd_port(args.epmd_port);
    cfg.listen = listen;
    Node::start(cfg).await.expect("node starts")
}

async fn run(args: Args) {
    match args.mode {
        Mode::Receiver => receiver(&args).await,
        Mode::Throughput => throughput(&args).await,
        Mode::Pingpong => pingpong(&args).await,
        Mode::MeshWait => mesh_wait(&args).await,
        Mode::RawEcho | Mode::RawPingpong => unreachable!("handled before the runtime starts"),
    }
}

async fn receiver(args: &Args) {
    let node = start(args, true).await;
    let mut sink = node.register("sink").expect("sink");
    let mut echo = node.register("echo").expect("echo");
    // `{From, Binary}` is answered `{size, ByteSize}` (for large messages).
    let mut size = node.register("size").expect("size");
    tokio::spawn(async move {
        while let Some(msg) = size.recv().await {
            if let Some([Term::Pid(from), Term::Binary(b)]) = msg.as_tuple() {
                let reply = tuple(vec![atom("size"), int(b.len() as i64)]);
                let _ = size.send(&Dest::Pid(from.clone()), reply);
            }
        }
    });
    tokio::spawn(async move {
        while let Some(msg) = echo.recv().await {
            if let Some([Term::Pid(from), m]) = msg.as_tuple() {
                let _ = echo.send(&Dest::Pid(from.clone()), m.clone());
            }
        }
    });
    println!("ready");
    loop {
        let Some(msg) = sink.recv().await else { return };
        let Some([tag, Term::Pid(from), n]) = msg.as_tuple() else {
            continue;
        };
        if !tag.is_atom("start") {
            continue;
        }
        let n = n.as_int().unwrap_or(0);
        let from = from.clone();
        for _ in 0..n {
            if sink.recv().await.is_none() {
                return;
            }
        }
        let _ = sink.send(&Dest::Pid(from), atom("done"));
    }
}

fn raw_echo(args: &Args) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("ready {}", listener.local_addr().expect("addr").port());
    let spin = args.spin > 0;
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_nodelay(true);
        let _ = s.set_nonblocking(spin);
        let mut buf = [0u8; 64];
        while read_full(&mut s, &mut buf).is_ok() && s.write_all(&buf).is_ok() {}
    }
}

/// Reads exactly `buf.len()` bytes; on a non-blocking socket, by polling (the spinning floor).
fn read_full(s: &mut std::net::TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    let mut at = 0;
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn raw_pingpong(args: &Args) {
    use std::io::Write;
    let port: u16 = args
        .target
        .as_deref()
        .and_then(|p| p.parse().ok())
        .expect("--target PORT");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_nonblocking(args.spin > 0).expect("nonblocking");
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(args.count);
    for i in 0..args.count + 1000 {
        let t = Instant::now();
        s.write_all(&buf).expect("write");
        read_full(&mut s, &mut buf).expect("read");
        if i >= 1000 {
            rtts.push(t.elapsed());
        }
    }
    print_rtts("raw-pingpong", rtts);
}

fn print_rtts(what: &str, mut rtts: Vec<Duration>) {
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "{what} {} round trips: p50 {:.1} us p99 {:.1} us",
        rtts.len(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6
    );
}

async fn mesh_wait(args: &Args) {
    let started = Instant::now();
    let list =
        std::fs::read_to_string(args.target.as_deref().expect("--target FILE")).expect("node list");
    let targets: Vec<NodeName> = list
        .lines()
        .map(|l| NodeName::parse(l.trim()).expect("name"))
        .collect();
    let cfg = NodeConfig::hidden_client(
        NodeName::parse(&args.name).expect("name"),
        Cookie::new(COOKIE),
    )
    .with_epmd_port(args.epmd_port);
    let node = Node::start(cfg).await.expect("node");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, usize)>(1024);
    for (i, target) in targets.iter().enumerate() {
        let node = node.clone();
        let target = target.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let (mut sub, members) = loop {
                match Subscription::start(&node, &target, Duration::from_secs(10)).await {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let mut peers: std::collections::BTreeSet<String> = members
                .into_iter()
                .filter(|m| m.kind == "visible")
                .map(|m| m.node)
                .collect();
            loop {
                if tx.send((i, peers.len())).await.is_err() {
                    return;
                }
                match sub.next().await {
                    Some(ClusterEvent::NodeUp { node, kind }) if kind == "visible" => {
                        peers.insert(node);
                    }
                    Some(ClusterEvent::NodeDown { node, .. }) => {
                        peers.remove(&node);
                    }
                    Some(ClusterEvent::Snapshot(m)) => {
                        peers = m
                            .into_iter()
                            .filter(|m| m.kind == "visible")
                            .map(|m| m.node)
                            .collect();
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }
    drop(tx);
    let mut counts = vec![0usize; targets.len()];
    while let Some((i, n)) = rx.recv().await {
        counts[i] = n;
        if counts.iter().all(|&c| c >= args.count) {
            break;
        }
    }
    println!("mesh complete in {:.3} s", started.elapsed().as_secs_f64());
    node.shutdown().await;
}

fn payload() -> Term {
    Term::Binary(vec![0u8; 64].into())
}

async fn throughput(args: &Args) {
    let node = start(args, false).await;
    let target = NodeName::parse(args.target.as_deref().expect("--target")).expect("target");
    let mut me = node.spawn_mailbox();
    let sink = Dest::name("sink", &target);
    node.connect(&target).await.expect("connect");
    let n = args.count;
    let started = Instant::now();
    me.send(
        &sink,
        tuple(vec![atom("start"), Term::Pid(me.pid()), int(n as i64)]),
    )
    .expect("send");
    let msg = payload();
    for _ in 0..n {
        me.send_wait(&sink, msg.clone()).await.expect("send");
    }
    let done = tokio::time::timeout(Duration::from_secs(300), me.recv()).await;
    let elapsed = started.elapsed();
    assert_eq!(done.ok().flatten(), Some(atom("done")));
    println!(
        "throughput {n} msgs in {:.3} s = {:.0} msg/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    node.shutdown().await;
}

async fn pingpong(args: &Args) {
    let node = start(args, false).await;
    let target = NodeName::parse(args.target.as_deref().expect("--target")).expect("target");
    let mut me = node.spawn_mailbox();
    let echo = Dest::name("echo", &target);
    node.connect(&target).await.expect("connect");
    let msg = tuple(vec![Term::Pid(me.pid()), payload()]);
    let mut rtts = Vec::with_capacity(args.count);
    for i in 0..args.count + 1000 {
        let t = Instant::now();
        me.send(&echo, msg.clone()).expect("send");
        me.recv().await.expect("echo");
        if i >= 1000 {
            rtts.push(t.elapsed());
        }
    }
    print_rtts("pingpong", rtts);
    node.shutdown().await;
}
