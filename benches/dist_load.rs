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

use cluster::dist::term::{self, atom, tuple};
use cluster::dist::{Cookie, Dest, Node, NodeConfig, NodeName};
use eetf::Term;

const COOKIE: &str = "bench";

struct Args {
    mode: String,
    name: String,
    target: Option<String>,
    count: usize,
    epmd_port: u16,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| usage());
    let mut out = Args {
        mode,
        name: String::new(),
        target: None,
        count: 100_000,
        epmd_port: 4369,
    };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--name" => out.name = value,
            "--target" => out.target = Some(value),
            "--count" => out.count = value.parse().unwrap_or_else(|_| usage()),
            "--epmd-port" => out.epmd_port = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if out.name.is_empty() && !out.mode.starts_with("raw-") {
        usage();
    }
    out
}

fn usage() -> ! {
    eprintln!(
        "usage: dist_load receiver|throughput|pingpong|raw-echo|raw-pingpong --name N [--target T] [--count C] [--epmd-port P]"
    );
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    // The kernel's floor: plain blocking sockets, no protocol, no runtime.
    match args.mode.as_str() {
        "raw-echo" => return raw_echo(),
        "raw-pingpong" => return raw_pingpong(&args),
        _ => {}
    }
    // DIST_LOAD_THREADS=1 runs a current-thread runtime; otherwise two workers, the same as
    // the two schedulers BEAM starts on this 2-core machine.
    let threads: usize = std::env::var("DIST_LOAD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(run(args));
}

async fn start(args: &Args, listen: bool) -> Node {
    let name = NodeName::parse(&args.name).expect("node name");
    let mut cfg = NodeConfig::new(name, Cookie::new(COOKIE));
    cfg.epmd_port = args.epmd_port;
    cfg.listen = listen;
    Node::start(cfg).await.expect("node starts")
}

async fn run(args: Args) {
    match args.mode.as_str() {
        "receiver" => receiver(&args).await,
        "throughput" => throughput(&args).await,
        "pingpong" => pingpong(&args).await,
        "mesh-wait" => mesh_wait(&args).await,
        _ => usage(),
    }
}

async fn receiver(args: &Args) {
    let node = start(args, true).await;
    let mut sink = node.register("sink").expect("sink");
    let mut echo = node.register("echo").expect("echo");
    tokio::spawn(async move {
        while let Some(msg) = echo.recv().await {
            if let Some([Term::Pid(from), m]) = term::as_tuple(&msg) {
                let _ = echo.send(&Dest::Pid(from.clone()), m.clone()).await;
            }
        }
    });
    println!("ready");
    loop {
        let Some(msg) = sink.recv().await else { return };
        let Some([tag, Term::Pid(from), n]) = term::as_tuple(&msg) else {
            continue;
        };
        if term::as_atom(tag) != Some("start") {
            continue;
        }
        let n = term::as_int(n).unwrap_or(0);
        let from = from.clone();
        for _ in 0..n {
            if sink.recv().await.is_none() {
                return;
            }
        }
        let _ = sink.send(&Dest::Pid(from), atom("done")).await;
    }
}

/// Echoes 64-byte blocks on a loopback port printed as `ready PORT`.
fn raw_echo() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("ready {}", listener.local_addr().expect("addr").port());
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() && s.write_all(&buf).is_ok() {}
    }
}

/// Round trips of 64-byte blocks against `raw-echo` (`--target` is its port).
fn raw_pingpong(args: &Args) {
    use std::io::{Read, Write};
    let port: u16 = args
        .target
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| usage());
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(args.count);
    for i in 0..args.count + 1000 {
        let t = Instant::now();
        s.write_all(&buf).expect("write");
        s.read_exact(&mut buf).expect("read");
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

/// Waits until every node in `--target FILE` (one name per line) sees `--count` visible peers,
/// following each node's `cluster_events`; prints how long that took from this mode's start.
async fn mesh_wait(args: &Args) {
    let started = Instant::now();
    let list =
        std::fs::read_to_string(args.target.as_deref().expect("--target FILE")).expect("node list");
    let targets: Vec<NodeName> = list
        .lines()
        .map(|l| NodeName::parse(l.trim()).expect("name"))
        .collect();
    let mut cfg = NodeConfig::hidden_client(
        NodeName::parse(&args.name).expect("name"),
        Cookie::new(COOKIE),
    );
    cfg.epmd_port = args.epmd_port;
    let node = Node::start(cfg).await.expect("node");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, usize)>(1024);
    for (i, target) in targets.iter().enumerate() {
        let node = node.clone();
        let target = target.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut me = node.spawn_mailbox();
            let dest = Dest::name("cluster_events", &target);
            while me
                .send(&dest, tuple(vec![atom("subscribe"), term::pid(me.pid())]))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut peers = std::collections::BTreeSet::new();
            while let Some(msg) = me.recv().await {
                let visible = |info: &Term| term::map_get(info, "type") == Some(&atom("visible"));
                match term::as_tuple(&msg) {
                    Some([tag, Term::List(members)]) if term::as_atom(tag) == Some("snapshot") => {
                        for m in members.elements.iter().filter(|m| visible(m)) {
                            if let Some(n) = term::map_get(m, "node").and_then(term::as_atom) {
                                peers.insert(n.to_owned());
                            }
                        }
                    }
                    Some([tag, n, info]) => match (term::as_atom(tag), term::as_atom(n)) {
                        (Some("nodeup"), Some(n)) if visible(info) => {
                            peers.insert(n.to_owned());
                        }
                        (Some("nodedown"), Some(n)) => {
                            peers.remove(n);
                        }
                        _ => {}
                    },
                    _ => {}
                }
                if tx.send((i, peers.len())).await.is_err() {
                    return;
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
    Term::from(eetf::Binary::from(vec![0u8; 64]))
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
        tuple(vec![
            atom("start"),
            term::pid(me.pid()),
            term::int(n as i32),
        ]),
    )
    .await
    .expect("send");
    let msg = payload();
    for _ in 0..n {
        me.send(&sink, msg.clone()).await.expect("send");
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
    let msg = tuple(vec![term::pid(me.pid()), payload()]);
    let mut rtts = Vec::with_capacity(args.count);
    for i in 0..args.count + 1000 {
        let t = Instant::now();
        me.send(&echo, msg.clone()).await.expect("send");
        me.recv().await.expect("echo");
        if i >= 1000 {
            rtts.push(t.elapsed());
        }
    }
    print_rtts("pingpong", rtts);
    node.shutdown().await;
}
