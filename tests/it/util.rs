//! Helpers shared by the integration tests: in-process port mappers on fresh ports, real
//! Erlang processes that are stopped by pid when a test ends, and deadline-bound waiting.

#![allow(dead_code)] // not every helper is used by every module

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cluster::epmd::{Server, ServerConfig};
use tokio_util::sync::CancellationToken;

/// A port mapper running inside the test process; stopped when dropped.
pub struct Daemon {
    pub port: u16,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Starts a port mapper on a fresh loopback port.
    pub async fn start() -> Daemon {
        Daemon::start_with(ServerConfig::default()).await
    }

    /// Starts a port mapper on a given loopback port (to restart one in place).
    pub async fn start_on(port: u16) -> Daemon {
        Daemon::spawn(ServerConfig {
            port,
            ..ServerConfig::default()
        })
        .await
    }

    /// Starts a port mapper on a fresh loopback port with the given settings.
    pub async fn start_with(mut config: ServerConfig) -> Daemon {
        config.port = 0;
        Daemon::spawn(config).await
    }

    async fn spawn(mut config: ServerConfig) -> Daemon {
        if config.addresses.is_empty() {
            config.addresses = vec!["127.0.0.1".parse().unwrap()];
        }
        let server = Server::bind(config).await.expect("bind port mapper");
        let port = server.port();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Daemon {
            port,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the daemon and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("daemon task");
        }
    }

    /// Resolves when the daemon has exited on its own (KILL_REQ).
    pub async fn exited(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("daemon task");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port that was free a moment ago, for programs that cannot be told to use port 0.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The `cluster` binary under test.
pub fn cluster_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cluster"))
}

/// The HOME every child process gets: under cargo's target directory, never the user's.
pub fn test_home() -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("home");
    std::fs::create_dir_all(&home).expect("test home");
    home
}

/// A data directory root of its own for one child: data nodes keep their stores under
/// `$XDG_DATA_HOME/cluster/nodes/<name>`, and two tests starting `data_contact1@127.0.0.1`
/// at once must not share (and lock) one store.
pub fn fresh_data_home() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = test_home()
        .join("data")
        .join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("data home");
    dir
}

/// Starts `cluster` with `args` in the background, stdout and stderr piped.
pub fn cluster_spawn(args: &[&str]) -> Proc {
    cluster_spawn_in(None, args)
}

/// `cluster` with `args`, run inside the network namespace `netns` when given (through
/// `ip netns exec`, which execs it: the child's pid is the node's).
fn cluster_command(netns: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(cluster_bin());
            c
        }
        None => Command::new(cluster_bin()),
    };
    cmd.args(args);
    cmd
}

/// Like [`cluster_spawn`], inside the network namespace `netns` when given.
pub fn cluster_spawn_in(netns: Option<&str>, args: &[&str]) -> Proc {
    let child = cluster_command(netns, args)
        .env("HOME", test_home())
        .env("XDG_DATA_HOME", fresh_data_home())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CLUSTER_ROLES")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cluster");
    Proc::new(child)
}

/// Runs `cluster` with `args` to completion.
pub fn cluster(args: &[&str]) -> Output {
    cluster_in(None, args)
}

/// Like [`cluster`], inside the network namespace `netns` when given.
pub fn cluster_in(netns: Option<&str>, args: &[&str]) -> Output {
    cluster_command(netns, args)
        .env("HOME", test_home())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("ERL_EPMD_PORT")
        .env_remove("CLUSTER_ROLES")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run cluster")
}

/// Runs `cluster` on a blocking thread, so an in-process daemon keeps serving meanwhile.
pub async fn cluster_async(args: &[&str]) -> Output {
    cluster_async_in(None, args).await
}

/// Like [`cluster_async`], inside the network namespace `netns` when given.
pub async fn cluster_async_in(netns: Option<&str>, args: &[&str]) -> Output {
    let netns = netns.map(str::to_owned);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster_in(netns.as_deref(), &refs)
    })
    .await
    .expect("join")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child process killed (by its pid) and reaped when dropped. Its piped output is read from
/// the start, always: a child whose logs nobody reads would otherwise block on a full pipe.
pub struct Proc {
    child: Option<Child>,
    out: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    err: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl Proc {
    pub fn new(mut child: Child) -> Proc {
        let out = child.stdout.take().map(lines_of);
        let err = child.stderr.take().map(lines_of);
        Proc {
            child: Some(child),
            out,
            err,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the stdout lines (for waiting on a line under a deadline).
    pub fn stdout_lines(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        self.out.take().expect("stdout piped and not taken yet")
    }

    /// Takes the stderr lines.
    pub fn stderr_lines(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        self.err.take().expect("stderr piped and not taken yet")
    }

    /// Sends a signal (`"STOP"`, `"CONT"`, `"TERM"`, `"KILL"`, `"INT"`) to the process by pid.
    pub fn signal(&self, sig: &str) {
        use nix::sys::signal::Signal;
        let sig = match sig {
            "STOP" => Signal::SIGSTOP,
            "CONT" => Signal::SIGCONT,
            "TERM" => Signal::SIGTERM,
            "KILL" => Signal::SIGKILL,
            "INT" => Signal::SIGINT,
            other => panic!("unknown signal {other}"),
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig)
            .unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.pid()));
    }

    /// Waits (on a blocking thread) for the process to exit by itself, up to `limit`, and
    /// returns its output (the lines not taken before); kills it and fails the test if it
    /// does not exit.
    pub async fn wait_output(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("process already reaped");
        let pid = child.id();
        let waiter = tokio::task::spawn_blocking(move || child.wait());
        let status = match tokio::time::timeout(limit, waiter).await {
            Ok(joined) => joined.expect("join").expect("wait for process"),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("process {pid} did not exit within {limit:?}");
            }
        };
        async fn rest(rx: Option<tokio::sync::mpsc::UnboundedReceiver<String>>) -> Vec<u8> {
            let mut text = String::new();
            if let Some(mut rx) = rx {
                // The reader thread ends at the pipe's end, which follows the exit closely.
                while let Ok(Some(line)) =
                    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
                {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            text.into_bytes()
        }
        Output {
            status,
            stdout: rest(self.out.take()).await,
            stderr: rest(self.err.take()).await,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether real Erlang is installed. On a developer machine without it, interop tests print
/// a visible skip line; under CI (`CI` set) a missing `erl` fails the test instead, because
/// `.ci/run` installs it.
pub fn have_erlang(test: &str) -> bool {
    have_tool("erl", &["-noshell", "-eval", "halt()."], test)
}

/// Whether Elixir is installed (same rules as [`have_erlang`]).
pub fn have_elixir(test: &str) -> bool {
    have_tool("elixir", &["-e", "nil"], test)
}

fn have_tool(cmd: &str, probe: &[&str], test: &str) -> bool {
    let found = Command::new(cmd)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {cmd} not found, but CI must run the interop tests"
        );
        println!("skipped: {cmd} not found ({test})");
    }
    found
}

/// Runs an Elixir script as node `name` against the port mapper on `epmd_port`.
pub fn elixir(name: &str, epmd_port: u16, cookie: &str, script: &str) -> Proc {
    let child = Command::new("elixir")
        .args([
            "--name",
            name,
            "--cookie",
            cookie,
            "--erl",
            "-start_epmd false",
            "-e",
            script,
        ])
        .current_dir(std::env::temp_dir())
        .env("HOME", test_home())
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start elixir");
    Proc::new(child)
}

/// Starts `erl -name NAME` against the port mapper on `epmd_port`, evaluating `eval`.
/// `-start_epmd false` keeps erl from spawning a real epmd of its own behind the test's back.
pub fn erl(name: &str, epmd_port: u16, eval: &str) -> Proc {
    erl_with(name, epmd_port, "interop", &[], eval)
}

/// Like [`erl`], with a cookie and extra `erl` arguments.
pub fn erl_with(name: &str, epmd_port: u16, cookie: &str, extra: &[&str], eval: &str) -> Proc {
    let child = Command::new("erl")
        .args([
            "-noshell",
            "-name",
            name,
            "-setcookie",
            cookie,
            "-start_epmd",
            "false",
        ])
        .args(extra)
        .args(["-eval", eval])
        .current_dir(std::env::temp_dir())
        .env("HOME", test_home())
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start erl");
    Proc::new(child)
}

/// Waits, up to `limit`, for the first node event that `pick` maps to `Some`.
pub async fn next_event<R>(
    what: &str,
    rx: &mut cluster::dist::NodeEvents,
    limit: Duration,
    mut pick: impl FnMut(cluster::dist::NodeEvent) -> Option<R>,
) -> R {
    let work = async {
        loop {
            match rx.recv().await {
                Some(ev) => {
                    if let Some(r) = pick(ev) {
                        return r;
                    }
                }
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// A node config for tests: the name, cookie and the in-process port mapper.
pub fn node_config(name: &str, epmd: &Daemon, cookie: &str) -> cluster::dist::NodeConfig {
    cluster::dist::NodeConfig::new(
        cluster::dist::NodeName::parse(name).expect("node name"),
        cluster::dist::Cookie::new(cookie),
    )
    .with_epmd_port(epmd.port)
}

/// Logs of in-process nodes, shown with `RUST_LOG=level` or `target=level,…` (captured per
/// test otherwise).
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(filter)
        .try_init();
}

/// A started node with default settings.
pub async fn start_node(name: &str, epmd: &Daemon, cookie: &str) -> cluster::dist::Node {
    init_logging();
    cluster::dist::Node::start(node_config(name, epmd, cookie))
        .await
        .expect("node starts")
}

/// A temporary HOME for child processes, so tests never touch the user's files.
pub fn temp_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp home")
}

fn lines_of(
    r: impl std::io::Read + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use std::io::BufRead;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more, so the child never blocks.
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits, up to `limit`, for a line containing `needle`; returns it. Lines before it are
/// returned too (for diagnostics) in the panic message when it never comes.
pub async fn wait_line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
    limit: Duration,
) -> String {
    let mut seen = Vec::new();
    let work = async {
        while let Some(line) = rx.recv().await {
            if line.contains(needle) {
                return Some(line);
            }
            seen.push(line);
        }
        None
    };
    match tokio::time::timeout(limit, work).await {
        Ok(Some(line)) => line,
        _ => panic!(
            "no line containing {needle:?} within {limit:?}; saw:\n{}",
            seen.join("\n")
        ),
    }
}

/// Tests that load the whole machine (dozens of processes, floods) or measure latencies take
/// this lock, so they do not run at the same time as each other.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A roles file like the repository's, with the given `net_ticktime` and mesh, in a temporary
/// directory (kept alive by the returned guard).
pub fn roles_file_with(ticktime: u64, mesh: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/roles.toml"))
        .expect("roles.toml");
    let text = repo
        .replace("net_ticktime = 60", &format!("net_ticktime = {ticktime}"))
        .replace("mesh = \"full\"", &format!("mesh = \"{mesh}\""));
    let path = dir.path().join("roles.toml");
    std::fs::write(&path, text).expect("write roles file");
    (dir, path.to_string_lossy().into_owned())
}

/// A process's resident memory and its peak, in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A peer that completes the real handshake with a node and then misbehaves on purpose:
/// writes what it likes, reads nothing, never ticks.
pub struct RawPeer {
    pub stream: tokio::net::TcpStream,
    pub name: cluster::dist::NodeName,
    pub flags: u64,
    /// Bytes read but not yet taken as frames.
    pending: Vec<u8>,
}

impl RawPeer {
    /// Looks `target` up with the port mapper and runs the handshake as `name`.
    pub async fn connect(name: &str, target: &str, epmd_port: u16, cookie: &str) -> RawPeer {
        use cluster::dist::proto::{flags, handshake};
        let target = cluster::dist::NodeName::parse(target).expect("target");
        let entry = cluster::epmd::EpmdClient::new("127.0.0.1", epmd_port)
            .port_please(target.alive())
            .await
            .expect("port mapper")
            .expect("target registered");
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", entry.port))
            .await
            .expect("connect");
        stream.set_nodelay(true).ok();
        let name = cluster::dist::NodeName::parse(name).expect("name");
        let local = handshake::LocalInfo {
            name: name.clone(),
            flags: flags::advertised(true),
            creation: 7,
        };
        let hs =
            handshake::Initiator::new(local, target, cluster::dist::Cookie::new(cookie), 12345);
        let peer =
            cluster::dist::setup::initiate(&mut stream, hs, Duration::from_secs(10), 2, || true)
                .await
                .expect("handshake");
        RawPeer {
            stream,
            name,
            flags: peer.flags,
            pending: Vec::new(),
        }
    }

    /// A pid of this peer's node.
    pub fn pid(&self, id: u32) -> cluster::dist::Pid {
        cluster::dist::Pid::new(self.name.as_str(), id, 0, 7)
    }

    /// Writes one message frame (no reading, ever).
    pub async fn send(
        &mut self,
        control: &cluster::dist::proto::Control,
        msg: Option<&cluster::dist::Term>,
    ) {
        use tokio::io::AsyncWriteExt;
        let frame = cluster::dist::proto::frame::data_frame(control, msg, self.flags);
        self.stream.write_all(&frame).await.expect("write");
    }

    /// Reads until a whole message arrives (ticks skipped), or `limit` passes.
    pub async fn recv(&mut self, limit: Duration) -> Option<cluster::dist::proto::Message> {
        use cluster::dist::proto::frame::{decode_frame, frame_len, Framing, Inbound};
        use tokio::io::AsyncReadExt;
        let framing = Framing::for_peer(self.flags);
        let read = async {
            let buf = &mut self.pending;
            loop {
                while let Some(len) = frame_len(buf) {
                    if buf.len() < 4 + len {
                        break;
                    }
                    let frame = bytes::Bytes::copy_from_slice(&buf[4..4 + len]);
                    buf.drain(..4 + len);
                    if len == 0 {
                        continue;
                    }
                    if let Ok(Inbound::Whole(m)) = decode_frame(&frame, framing) {
                        return Some(m);
                    }
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(limit, read).await.ok().flatten()
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("write");
    }
}

/// A `cluster` command whose HOME (and so its cookie, cache and config) is `home`, run in
/// `cwd`, with the port mapper's port in the environment as a user's shell would have it:
/// the commands then read exactly as the README writes them.
pub fn cluster_at(
    home: &std::path::Path,
    cwd: &std::path::Path,
    epmd_port: u16,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(cluster_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("CLUSTER_ROLES")
        .env_remove("CLUSTER_COOKIE")
        .env_remove("CLUSTER_BEACON")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs [`cluster_at`] to completion on a blocking thread.
pub async fn run_at(
    home: &std::path::Path,
    cwd: &std::path::Path,
    epmd_port: u16,
    args: &[&str],
) -> Output {
    let mut cmd = cluster_at(home, cwd, epmd_port, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run cluster"))
        .await
        .expect("join")
}

/// The pids of `parent`'s children whose command line contains `needle`.
pub fn children_matching(parent: u32, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

/// Stops the port mapper a `cluster up` left behind on `port` (it outlives `up`, as epmd
/// outlives erl), by asking it to stop; it is ours, started by the test's `up`.
///
/// The port mapper refuses to stop while nodes are registered, and a node killed a moment ago
/// may still be: wait (bounded) for the names to go, ask, and wait until it no longer answers.
pub async fn stop_port_mapper(port: u16) {
    let client =
        cluster::epmd::EpmdClient::new("127.0.0.1", port).with_timeout(Duration::from_secs(2));
    wait_for(
        "the port mapper stopped",
        Duration::from_secs(10),
        || async {
            match client.names().await {
                // Gone: stopped.
                Err(_) => Some(()),
                // Nodes still registered: it would refuse; ask again once they have gone.
                Ok(n) if !n.names.is_empty() => None,
                Ok(_) => {
                    let _ = client.kill().await;
                    None
                }
            }
        },
    )
    .await;
}

/// A network namespace with a veth link to the host, removed when dropped.
pub struct NetNs {
    pub name: String,
    pub host_ip: String,
    pub ns_ip: String,
    /// The host's end of the veth pair.
    pub host_if: String,
}

impl NetNs {
    /// Creates one, or says why it cannot (not root, no `ip`).
    pub fn create(slot: u32) -> Result<NetNs, String> {
        // Tests in one run use different slots; runs at once differ by pid.
        let id = 20 + (std::process::id() % 100) * 2 + slot % 2;
        let name = format!("clt{id}");
        let (host_if, ns_if) = (format!("vh{id}"), format!("vn{id}"));
        let host_ip = format!("10.213.{id}.1");
        let ns_ip = format!("10.213.{id}.2");
        let run = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        // A namespace left by an earlier run of this test is replaced.
        let _ = run(&["netns", "del", &name]);
        let _ = run(&["link", "del", &host_if]);
        run(&["netns", "add", &name])?;
        let ns = NetNs {
            name: name.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
            host_if: host_if.clone(),
        };
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        run(&["link", "set", &ns_if, "netns", &name])?;
        run(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if])?;
        run(&["link", "set", &host_if, "up"])?;
        run(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/24"),
            "dev",
            &ns_if,
        ])?;
        run(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"])?;
        run(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl NetNs {
    /// Takes the host's end of the link down (a partition: nothing passes, both ends stay
    /// configured) or up again.
    pub fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let out = std::process::Command::new("ip")
            .args(["link", "set", &self.host_if, state])
            .output()
            .expect("ip link set");
        assert!(
            out.status.success(),
            "ip link set {} {state}: {}",
            self.host_if,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// A tokio runtime on a thread of its own that has entered the namespace: every socket a
    /// task spawned on it opens is the namespace's, so an in-process node started there talks
    /// to the namespace's side of a partition.
    pub fn runtime(&self) -> Result<NsRuntime, String> {
        use std::os::fd::AsFd;
        let path = format!("/var/run/netns/{}", self.name);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let entered = std::fs::File::open(&path)
                .map_err(|e| format!("{path}: {e}"))
                .and_then(|f| {
                    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("setns {path}: {e}"))
                });
            let rt = entered.and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))
            });
            let rt = match rt {
                Ok(rt) => rt,
                Err(why) => {
                    let _ = tx.send(Err(why));
                    return;
                }
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let _ = tx.send(Ok((rt.handle().clone(), stop_tx)));
            rt.block_on(async {
                let _ = stop_rx.await;
            });
        });
        let (handle, stop) = rx.recv().map_err(|e| e.to_string())??;
        Ok(NsRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// See [`NetNs::runtime`]. Stopped (its tasks dropped) when dropped.
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// Runs `work` inside the namespace and returns its output.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        self.handle
            .spawn(work)
            .await
            .expect("task in the namespace")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
