//! The `cluster` binary as a user runs it: exit codes, messages, the roles file, completions,
//! and the port mapper as a foreground process and as a daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{
    cluster, cluster_async, cluster_bin, free_port, stderr, stdout, wait_for, wait_line, Daemon,
    Proc,
};
use cluster::epmd::{EpmdClient, NodeEntry};

const DEADLINE: Duration = Duration::from_secs(10);

fn repo_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(name)
        .display()
        .to_string()
}

#[test]
fn roles_lists_the_repo_roles() {
    let out = cluster(&["roles", "--roles", &repo_file("roles.toml")]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    // Columns are separated by at least three spaces; descriptions have single spaces.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        ["ROLE", "RESOURCE", "REQUIREMENTS", "HOSTS", "DESCRIPTION"]
    );
    assert!(
        rows.contains(&vec![
            "gate",
            "gate",
            "gate_manager",
            "echo",
            "Client-facing gateway; registers with its gate_manager"
        ]),
        "{text}"
    );
    // The registry's types follow, the built-in echo among them.
    assert!(
        rows.iter().any(|r| r.first() == Some(&"TYPE"))
            && rows
                .iter()
                .any(|r| r.len() >= 2 && r[..2] == ["echo", "never"]),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.len() >= 3 && r[..3] == ["data_service", "data_service", "data_contact"]),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.len() >= 3 && r[..3] == ["beacon", "beacon", "-"]),
        "{text}"
    );
    // Five roles, a blank line, the types header and the one type.
    assert_eq!(rows.len(), 9, "{text}");
}

#[test]
fn roles_default_prints_the_builtin_file_which_is_the_repos() {
    let out = cluster(&["roles", "--default"]);
    assert!(out.status.success(), "{out:?}");
    let repo = std::fs::read_to_string(repo_file("roles.toml")).unwrap();
    assert_eq!(stdout(&out), repo);
}

#[test]
fn roles_json_is_the_resolved_file() {
    let out = cluster(&["roles", "--json", "--roles", &repo_file("roles.toml")]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster"]["beacon"], "beacon1@127.0.0.1");
    assert_eq!(v["cluster"]["mesh"], "full");
    assert_eq!(v["roles"].as_array().unwrap().len(), 5);
}

#[test]
fn invalid_roles_file_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[roles.gate]\nrequirements = [\"nope\"]\n").unwrap();
    let out = cluster(&["roles", "--roles", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:2:17: unknown requirement \"nope\"",
            path.display()
        )),
        "{err}"
    );

    std::fs::write(&path, "[roles.a]\ncolour = 1\n").unwrap();
    let out = cluster(&["roles", "--roles", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains(":2:1: unknown field `colour`"),
        "{}",
        stderr(&out)
    );

    let out = cluster(&["roles", "--roles", "/nonexistent/roles.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("cannot read /nonexistent/roles.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn roles_path_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.toml");
    std::fs::write(&path, "[roles.solo]\nresource = \"lonely\"\n").unwrap();
    let out = Command::new(cluster_bin())
        .env("HOME", crate::util::test_home())
        .arg("roles")
        .env("CLUSTER_ROLES", &path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("solo"), "{}", stdout(&out));
}

#[test]
fn names_without_a_port_mapper_says_so_and_exits_1() {
    let port = free_port();
    let out = cluster(&["names", "--epmd-port", &port.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out).trim(),
        format!("cluster: no port mapper at 127.0.0.1:{port}: connection refused")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn epmd_port_comes_from_erl_epmd_port() {
    let port = free_port();
    let out = Command::new(cluster_bin())
        .env("HOME", crate::util::test_home())
        .arg("names")
        .env("ERL_EPMD_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_shows_type_and_role_from_extra() {
    let d = Daemon::start().await;
    let client = EpmdClient::new("127.0.0.1", d.port);
    let mut gate = NodeEntry::new("gate1", 4100);
    gate.extra = b"gate".to_vec();
    let _gate = client.register(gate).await.unwrap();
    let mut cli = NodeEntry::new("cluster-cli-1", 4101);
    cli.node_type = cluster::epmd::NodeType::Hidden;
    let _cli = client.register(cli).await.unwrap();

    let out = cluster_async(&["names", "--epmd-port", &d.port.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "PORT", "TYPE", "ROLE"],
            vec!["cluster-cli-1", "4101", "hidden", "-"],
            vec!["gate1", "4100", "normal", "gate"],
        ]
    );

    let out = cluster_async(&["names", "--epmd-port", &d.port.to_string(), "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["role"], "gate");
    assert_eq!(v[0]["type"], "hidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_an_empty_port_mapper() {
    let d = Daemon::start().await;
    let out = cluster_async(&["names", "--epmd-port", &d.port.to_string()]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("no nodes registered"),
        "{}",
        stderr(&out)
    );
    let out = cluster_async(&["names", "--epmd-port", &d.port.to_string(), "--json"]).await;
    assert_eq!(stdout(&out).trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_with_a_duration_still_fails_on_an_unreachable_node() {
    let d = Daemon::start().await;
    let port = d.port.to_string();
    let out = cluster_async(&[
        "monitor",
        "nobody@127.0.0.1",
        "--duration",
        "2",
        "--cookie",
        "c",
        "--epmd-port",
        &port,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("cannot reach nobody@127.0.0.1"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirements_wait_is_bounded_when_the_beacon_is_stopped() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let d = Daemon::start().await;
    let port = d.port.to_string();
    let home = crate::util::temp_home();
    let roles = repo_file("roles.toml");
    let mut beacon = crate::util::cluster_spawn(&[
        "start",
        "--name",
        "beacon1@127.0.0.1",
        "--role",
        "beacon",
        "--cookie",
        "c",
        "--epmd-port",
        &port,
        "--no-epmd-start",
        "--roles",
        &roles,
    ]);
    let mut lines = beacon.stdout_lines();
    crate::util::wait_line(&mut lines, "beacon ready", Duration::from_secs(30)).await;
    kill(Pid::from_raw(beacon.pid() as i32), Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    let out = cluster_async(&[
        "requirements",
        "gate1@127.0.0.1",
        "--wait",
        "2",
        "--beacon",
        "beacon1@127.0.0.1",
        "--cookie",
        "c",
        "--epmd-port",
        &port,
        "--roles",
        &roles,
    ])
    .await;
    let took = started.elapsed();
    kill(Pid::from_raw(beacon.pid() as i32), Signal::SIGCONT).unwrap();
    beacon.kill();
    drop(home);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        took < Duration::from_millis(3500),
        "--wait 2 took {took:?}: {out:?}"
    );
}

#[test]
fn completions_match_the_cli() {
    for (shell, file) in [
        ("bash", "completions/cluster.bash"),
        ("zsh", "completions/_cluster"),
        ("fish", "completions/cluster.fish"),
    ] {
        let out = cluster(&["completions", shell]);
        assert!(out.status.success());
        let committed = std::fs::read_to_string(repo_file(file)).unwrap_or_default();
        assert!(
            stdout(&out) == committed,
            "{file} is out of date: run `cargo run -- completions {shell} > {file}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_port_mapper_serves_and_stops_on_sigterm() {
    let child = Command::new(cluster_bin())
        .env("HOME", crate::util::test_home())
        .args(["epmd", "--port", "0", "--address", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = Proc::new(child);
    // The status line is on stderr (stdout stays empty, as epmd's).
    let line = wait_line(
        &mut proc.stderr_lines(),
        "listening on 127.0.0.1:",
        DEADLINE,
    )
    .await;
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));

    let out = cluster_async(&["names", "--epmd-port", &port.to_string(), "--json"]).await;
    assert!(out.status.success(), "{out:?}");

    proc.signal("TERM");
    let out = proc.wait_output(DEADLINE).await;
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_detaches_is_idempotent_and_can_be_killed() {
    let port = free_port().to_string();
    let out = cluster_async(&["epmd", "--daemon", "--port", &port]).await;
    assert!(out.status.success(), "{out:?}");
    // The status line goes to stderr, as every status line of the port mapper.
    let started = stderr(&out);
    let pid: u32 = started
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}"));
    // Make sure the daemon dies with the test, even if an assertion fails below.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let _guard = KillOnDrop(pid);

    let client = EpmdClient::new("127.0.0.1", port.parse().unwrap());
    assert!(client.names().await.is_ok());

    // A second --daemon finds it and exits 0 without starting another.
    let again = cluster_async(&["epmd", "--daemon", "--port", &port]).await;
    assert!(again.status.success(), "{again:?}");
    assert!(stdout(&again).is_empty(), "{}", stdout(&again));

    let kill = cluster_async(&["epmd", "--kill", "--port", &port]).await;
    assert!(kill.status.success(), "{kill:?}");
    wait_for("the daemon to exit", DEADLINE, || async {
        client.names().await.is_err().then_some(())
    })
    .await;
}
