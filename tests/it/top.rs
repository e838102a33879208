//! `cluster top` as operators run it: full-screen under a real pseudo-terminal against a live
//! `cluster up`, and `--once` (one frame as text) with a stopped node, against plain Erlang
//! nodes, and without a terminal.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{
    cluster_async, cluster_bin, cluster_spawn, free_port, have_erlang, stderr, stdout, test_home,
    wait_line, Daemon, Proc,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn roles_file() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/roles.toml").to_owned()
}

/// `cluster top ARGS` on the slave side of a fresh pseudo-terminal (its controlling terminal,
/// 160×40). Everything it writes is read from the master side into a terminal emulator, so
/// the tests read the screen as a person sees it (ratatui redraws only the cells that change).
struct PtyTop {
    proc: Proc,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl PtyTop {
    fn spawn(args: &[&str]) -> PtyTop {
        use std::os::unix::process::CommandExt;
        let size = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 160,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup slave"));
        let mut cmd = Command::new(cluster_bin());
        cmd.arg("top")
            .args(args)
            .env("HOME", test_home())
            .env("TERM", "xterm-256color")
            .env_remove("CLUSTER_ROLES")
            .env_remove("RUST_LOG")
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start cluster top");
        // Only the child holds the slave now, so reads end when it exits.
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(40, 160, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let (term, log) = (screen.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            // EIO once the child has exited and the slave is closed.
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                term.lock().unwrap().process(&chunk[..n]);
                log.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        PtyTop {
            proc: Proc::new(child),
            master,
            screen,
            raw,
        }
    }

    /// What the screen shows now.
    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits, up to `limit`, until everything in `needles` has been drawn.
    async fn wait_for_all(&self, needles: &[String], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.text();
            let missing: Vec<&String> = needles.iter().filter(|n| !text.contains(*n)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not on screen within {limit:?}: {missing:?}; the screen:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn press(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("type");
        self.master.flush().expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_on_a_terminal_shows_every_node_of_cluster_up_and_quits_on_q() {
    let port = free_port().to_string();
    let roles = roles_file();
    let mut up = Up(Some(Proc::new(
        Command::new(cluster_bin())
            .args(["up", "--epmd-port", &port, "--roles", &roles])
            .env("CLUSTER_COOKIE", "top")
            .env("HOME", test_home())
            .env_remove("XDG_CACHE_HOME")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cluster up"),
    )));
    let mut lines = up.proc().stdout_lines();
    wait_line(&mut lines, "nodes up", DEADLINE).await;

    let mut top = PtyTop::spawn(&["--cookie", "top", "--epmd-port", &port, "--roles", &roles]);
    let nodes: Vec<String> = [
        "beacon",
        "gate_manager",
        "gate",
        "data_contact",
        "data_service",
    ]
    .iter()
    .map(|r| format!("{r}1@127.0.0.1"))
    .collect();
    top.wait_for_all(&nodes, Duration::from_secs(30)).await;
    // Every requirement has its provider: the header counts all five ready.
    top.wait_for_all(&["5 online, 5 ready".to_owned()], Duration::from_secs(10))
        .await;

    // The details of a picked node name its requirement's provider.
    // Sorted by role: beacon, data_contact, data_service, gate, gate_manager.
    top.press("jjj\r");
    top.wait_for_all(
        &["gate_manager → gate_manager1@127.0.0.1".to_owned()],
        Duration::from_secs(10),
    )
    .await;
    top.press("\x1b");
    top.wait_for_all(&["MSG/S IN".to_owned()], Duration::from_secs(10))
        .await;
    top.press("q");
    let raw = top.raw.clone();
    let status = top.proc.wait_output(Duration::from_secs(10)).await.status;
    assert!(status.success(), "top exits 0 on q: {status:?}");
    // The terminal was given back: the alternate screen left, the cursor shown again (the
    // reader may still be draining the last bytes).
    crate::util::wait_for("the terminal restored", Duration::from_secs(10), || {
        let text = String::from_utf8_lossy(&raw.lock().unwrap()).into_owned();
        async move {
            let left = text.rfind("\x1b[?1049l")?;
            text[left..].contains("\x1b[?25h").then_some(())
        }
    })
    .await;

    let up = up.0.take().expect("cluster up");
    up.signal("INT");
    let status = up.wait_output(DEADLINE).await.status;
    assert!(status.success(), "cluster up exits 0 on SIGINT: {status:?}");
    let _ = cluster_async(&["epmd", "--kill", "--port", &port]).await;
}

/// `cluster up`, stopped with SIGINT (so that it stops its nodes) even when the test fails
/// before it is stopped on purpose: a SIGKILL would leave the nodes running.
struct Up(Option<Proc>);

impl Up {
    fn proc(&mut self) -> &mut Proc {
        self.0.as_mut().expect("cluster up")
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let Some(up) = self.0.take() else {
            return;
        };
        let pid = up.pid();
        up.signal("INT");
        // Until it has exited (a zombie, or gone), at most 15 s; then `Proc` kills and reaps.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) if !stat.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break,
            }
        }
    }
}

fn start_role(role: &str, epmd: &Daemon) -> Proc {
    cluster_spawn(&[
        "start",
        "--name",
        &format!("{role}1@127.0.0.1"),
        "--role",
        role,
        "--cookie",
        "top",
        "--epmd-port",
        &epmd.port.to_string(),
        "--roles",
        &roles_file(),
        "--no-epmd-start",
    ])
}

/// The table row of `node`, without the selection mark before it.
fn row<'a>(frame: &'a str, node: &str) -> &'a str {
    frame
        .lines()
        .filter_map(|l| l.get(1..))
        .find(|r| r.starts_with(node))
        .unwrap_or_else(|| panic!("no row for {node} in\n{frame}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_shows_as_no_answer_without_holding_up_the_frame() {
    let epmd = Daemon::start().await;
    let mut nodes = Vec::new();
    for role in ["beacon", "gate_manager", "data_contact"] {
        let mut p = start_role(role, &epmd);
        let mut lines = p.stdout_lines();
        let ready = if role == "beacon" {
            "beacon ready".to_owned()
        } else {
            format!("{role}1@127.0.0.1 ready")
        };
        wait_line(&mut lines, &ready, DEADLINE).await;
        nodes.push(p);
    }
    let stopped = &nodes[2];
    stopped.signal("STOP");
    let started = Instant::now();
    let out = cluster_async(&[
        "top",
        "--once",
        "--cookie",
        "top",
        "--epmd-port",
        &epmd.port.to_string(),
        "--roles",
        &roles_file(),
    ])
    .await;
    let took = started.elapsed();
    stopped.signal("CONT");
    assert!(out.status.success(), "{out:?}");
    let frame = stdout(&out);
    // One call timeout for the stopped node, not the beacon's view of it (online, for a
    // whole tick time) nor a hang.
    assert!(took < Duration::from_secs(6), "took {took:?}:\n{frame}");
    assert!(
        row(&frame, "data_contact1@127.0.0.1").contains("no answer"),
        "{frame}"
    );
    for answering in ["beacon1@127.0.0.1", "gate_manager1@127.0.0.1"] {
        let r = row(&frame, answering);
        assert!(r.contains("online") && !r.contains("no answer"), "{frame}");
    }
    assert!(
        frame.contains("3 online, 3 ready, 1 not answering"),
        "{frame}"
    );
    assert!(
        frame
            .lines()
            .any(|l| l.contains("no answer") && l.contains("data_contact1@127.0.0.1 stopped")),
        "the event pane says so:\n{frame}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_erlang_nodes_show_their_connections() {
    if !have_erlang("plain_erlang_nodes_show_their_connections") {
        return;
    }
    let epmd = Daemon::start().await;
    let mut b = crate::util::erl("topb@127.0.0.1", epmd.port, "timer:sleep(infinity).");
    let mut a = crate::util::erl(
        "topa@127.0.0.1",
        epmd.port,
        "F = fun L() -> case net_kernel:connect_node('topb@127.0.0.1') of \
         true -> ok; _ -> timer:sleep(100), L() end end, F(), \
         io:format(\"connected~n\"), timer:sleep(infinity).",
    );
    let mut lines = a.stdout_lines();
    wait_line(&mut lines, "connected", DEADLINE).await;
    let out = cluster_async(&[
        "top",
        "topa@127.0.0.1",
        "--once",
        "--cookie",
        "interop",
        "--epmd-port",
        &epmd.port.to_string(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let frame = stdout(&out);
    assert!(
        frame.contains("topa@127.0.0.1 (not a beacon: its connections) · 2 nodes, 2 answering"),
        "{frame}"
    );
    for (node, peers) in [("topa@127.0.0.1", "1"), ("topb@127.0.0.1", "1")] {
        let cols: Vec<&str> = row(&frame, node).split_whitespace().collect();
        // NODE ROLE STATUS SINCE PEERS …: no role or since from a beacon, one connection each.
        assert_eq!(&cols[..5], [node, "-", "connected", "-", peers], "{frame}");
    }
    a.kill();
    b.kill();
}

#[test]
fn without_a_terminal_top_refuses_and_names_the_alternatives() {
    let out = Command::new(cluster_bin())
        .args(["top", "nobody@127.0.0.1", "--cookie", "c"])
        .env("HOME", test_home())
        .stdin(Stdio::null())
        .output()
        .expect("run cluster top");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("--once") && err.contains("cluster names --cluster"),
        "{err}"
    );
}
