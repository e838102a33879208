//! The operator's experience, end to end with the real binary: the README's walkthrough as
//! written (no cookie flag), a node started outside any project directory, a rejected cookie,
//! two `up` runs on one port mapper, `up` supervising a killed child, clean stops versus
//! crashes in the beacon's table, `forget`, READY, the `monitor` filter and `doctor`.
//!
//! Every process gets a HOME of its own (a temporary directory) and a fresh port-mapper port,
//! so nothing here touches the user's `~/.erlang.cookie` or `~/.cache/cluster`.

use std::path::Path;
use std::time::Duration;

use crate::util::{
    children_matching, cluster_at, free_port, run_at, stop_port_mapper, temp_home, wait_line, Proc,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `cluster ARGS` in `home`/`cwd` on `port`; returns it with its stdout lines.
fn spawn(home: &Path, cwd: &Path, port: u16, args: &[&str]) -> (Proc, ProcLines) {
    let mut p = Proc::new(
        cluster_at(home, cwd, port, args)
            .spawn()
            .expect("start cluster"),
    );
    let lines = p.stdout_lines();
    (p, lines)
}

/// `cluster up` in `home`/`cwd` on `port`, waiting for the all-up banner.
async fn up(home: &Path, cwd: &Path, port: u16, extra: &[&str]) -> (Proc, ProcLines) {
    let mut args = vec!["up"];
    args.extend_from_slice(extra);
    let mut p = Proc::new(
        cluster_at(home, cwd, port, &args)
            .spawn()
            .expect("start up"),
    );
    let mut lines = p.stdout_lines();
    wait_line(&mut lines, "nodes up", DEADLINE).await;
    (p, lines)
}

type ProcLines = tokio::sync::mpsc::UnboundedReceiver<String>;

/// Every file in the run directories of `up` under `home`, with its bytes.
fn up_logs(home: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let base = home.join(".cache/cluster/up");
    for run in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(run.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            files.push((f.path(), std::fs::read(f.path()).unwrap_or_default()));
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_as_written_without_a_cookie_flag() {
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    // `cluster up`, then the README's operator commands, none with a cookie: all use
    // ~/.erlang.cookie, created by the first.
    let (up, _lines) = up(home.path(), cwd.path(), port, &[]).await;

    let names = run_at(home.path(), cwd.path(), port, &["names", "--cluster"]).await;
    assert!(names.status.success(), "{names:?}");
    let table = stdout(&names);
    assert!(table.contains("READY"), "{table}");
    for role in [
        "beacon",
        "gate_manager",
        "gate",
        "data_contact",
        "data_service",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{role}1@127.0.0.1")))
            .unwrap_or_else(|| panic!("no {role} row in:\n{table}"));
        assert!(row.contains("online") && row.contains(" yes "), "{row}");
    }

    let ping = run_at(home.path(), cwd.path(), port, &["ping", "gate1@127.0.0.1"]).await;
    assert!(ping.status.success(), "{ping:?}");
    assert!(
        stdout(&ping).starts_with("pong gate1@127.0.0.1"),
        "{ping:?}"
    );

    let reqs = run_at(
        home.path(),
        cwd.path(),
        port,
        &["requirements", "gate1@127.0.0.1"],
    )
    .await;
    assert!(reqs.status.success(), "{reqs:?}");
    assert!(
        stdout(&reqs).contains("gate_manager1@127.0.0.1"),
        "{reqs:?}"
    );

    let monitor = run_at(
        home.path(),
        cwd.path(),
        port,
        &["monitor", "--duration", "2"],
    )
    .await;
    assert!(monitor.status.success(), "{monitor:?}");
    let watched = stdout(&monitor);
    assert!(watched.contains("member   gate1@127.0.0.1"), "{watched}");
    // `up`'s own CLI node is hidden, and hidden nodes are not shown without --all.
    assert!(!watched.contains("cluster-cli"), "{watched}");

    // The logs went to this HOME's cache, in a directory of this run.
    let logs = up_logs(home.path());
    assert!(
        logs.iter().any(|(p, _)| p.ends_with("gate1@127.0.0.1.log")),
        "{logs:?}"
    );
    up.signal("INT");
    assert!(up.wait_output(DEADLINE).await.status.success());
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_cards_start_works_from_an_empty_directory_with_the_builtin_roles() {
    let home = temp_home();
    let empty = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut beacon, mut out) = spawn(
        home.path(),
        empty.path(),
        port,
        &[
            "start",
            "--role",
            "beacon",
            "--name",
            "beacon1@127.0.0.1",
            "--cookie",
            "mmo",
        ],
    );
    let mut err = beacon.stderr_lines();
    wait_line(&mut out, "beacon ready", DEADLINE).await;
    wait_line(&mut err, "using the built-in roles", DEADLINE).await;
    beacon.signal("TERM");
    assert!(beacon.wait_output(DEADLINE).await.status.success());
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_cookie_the_beacon_rejects_exits_with_a_clear_error_in_time() {
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let (beacon, mut bout) = spawn(
        home.path(),
        cwd.path(),
        port,
        &[
            "start",
            "--role",
            "beacon",
            "--name",
            "beacon1@127.0.0.1",
            "--cookie",
            "right",
        ],
    );
    wait_line(&mut bout, "beacon ready", DEADLINE).await;
    let started = std::time::Instant::now();
    let gate = Proc::new(
        cluster_at(
            home.path(),
            cwd.path(),
            port,
            &[
                "start",
                "--role",
                "gate",
                "--name",
                "gate1@127.0.0.1",
                "--cookie",
                "wrong",
                "--cookie-reject-timeout",
                "3",
            ],
        )
        .spawn()
        .unwrap(),
    );
    let out = gate.wait_output(Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let err = stderr(&out);
    assert!(err.contains("rejected our cookie for 3s"), "{err}");
    assert!(err.contains("our cookie came from --cookie"), "{err}");
    // While it retried (twice a second for 3 s), the beacon logged one line for it.
    beacon.signal("TERM");
    let bout = beacon.wait_output(DEADLINE).await;
    let lines = stderr(&bout)
        .lines()
        .filter(|l| l.contains("cookie mismatch") && l.contains("gate1@127.0.0.1"))
        .count();
    assert_eq!(lines, 1, "{}", stderr(&bout));
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_fails_fast_and_leaves_the_first_runs_logs_intact() {
    let _serial = crate::util::heavy().await;
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let (first, _lines) = up(home.path(), cwd.path(), port, &[]).await;
    let before = up_logs(home.path());
    assert!(!before.is_empty());

    let started = std::time::Instant::now();
    let second = run_at(home.path(), cwd.path(), port, &["up"]).await;
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stderr(&second).contains("already running") && stderr(&second).contains("beacon1@"),
        "{second:?}"
    );
    // No new run directory, and every file of the first run still holds what it held.
    let after = up_logs(home.path());
    assert_eq!(
        after.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        before.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert!(
            new.starts_with(old),
            "{} was rewritten ({} bytes before, {} after)",
            path.display(),
            old.len(),
            new.len()
        );
        assert!(!new.contains(&0), "{} has NUL bytes", path.display());
    }
    first.signal("INT");
    assert!(first.wait_output(DEADLINE).await.status.success());
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reports_and_restarts_a_killed_child_and_the_banner_follows() {
    let _serial = crate::util::heavy().await;
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let (up, mut lines) = up(home.path(), cwd.path(), port, &[]).await;
    let gm = children_matching(up.pid(), "gate_manager1@127.0.0.1");
    assert_eq!(
        gm.len(),
        1,
        "gate_manager1's pid among up's children: {gm:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gm[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_line(
        &mut lines,
        "gate_manager1@127.0.0.1 exited (killed by signal 9); restarting",
        DEADLINE,
    )
    .await;
    wait_line(&mut lines, "4 of 5 nodes up", DEADLINE).await;
    wait_line(&mut lines, "gate_manager1@127.0.0.1 is back", DEADLINE).await;
    wait_line(&mut lines, "cluster: 5 nodes up", DEADLINE).await;
    // It is a new process, and the beacon has it online again.
    let again = children_matching(up.pid(), "gate_manager1@127.0.0.1");
    assert!(again.len() == 1 && again[0] != gm[0], "{again:?}");
    let names = run_at(
        home.path(),
        cwd.path(),
        port,
        &["names", "--cluster", "--json"],
    )
    .await;
    let nodes: serde_json::Value = serde_json::from_slice(&names.stdout).unwrap();
    let gm_row = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "gate_manager1@127.0.0.1")
        .cloned()
        .unwrap();
    assert_eq!(gm_row["status"], "online", "{nodes}");
    up.signal("INT");
    assert!(up.wait_output(DEADLINE).await.status.success());
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_stops_and_crashes_differ_forget_removes_offline_nodes_and_ready_names_what_is_missing(
) {
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let start = |name: &str, role: &str| {
        spawn(
            home.path(),
            cwd.path(),
            port,
            &["start", "--role", role, "--name", name],
        )
    };
    let (beacon, mut b) = start("beacon1@127.0.0.1", "beacon");
    wait_line(&mut b, "beacon ready", DEADLINE).await;
    let (gate, mut g) = start("gate1@127.0.0.1", "gate");
    wait_line(&mut g, "waiting gate_manager", DEADLINE).await;
    let (crasher, mut c) = start("data_contact1@127.0.0.1", "data_contact");
    wait_line(&mut c, "ready", DEADLINE).await;

    let json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let row = |nodes: &serde_json::Value, name: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .cloned()
    };
    // READY names what the gate waits for.
    let table = run_at(home.path(), cwd.path(), port, &["names", "--cluster"]).await;
    let gate_row = stdout(&table)
        .lines()
        .find(|l| l.starts_with("gate1@"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        gate_row.contains("no (waiting for gate_manager)"),
        "{}",
        stdout(&table)
    );
    // An online node cannot be forgotten.
    let refused = run_at(
        home.path(),
        cwd.path(),
        port,
        &["forget", "gate1@127.0.0.1"],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(stderr(&refused).contains("is online"), "{refused:?}");

    // A clean stop says `stopped`; a crash says what the connection did.
    gate.signal("TERM");
    assert!(gate.wait_output(DEADLINE).await.status.success());
    crasher.signal("KILL");
    let nodes = crate::util::wait_for("both offline", DEADLINE, || async {
        let out = run_at(
            home.path(),
            cwd.path(),
            port,
            &["names", "--cluster", "--json"],
        )
        .await;
        let nodes = json(&out);
        let off = |n: &str| row(&nodes, n).is_some_and(|r| r["status"] == "offline");
        (off("gate1@127.0.0.1") && off("data_contact1@127.0.0.1")).then_some(nodes)
    })
    .await;
    assert_eq!(row(&nodes, "gate1@127.0.0.1").unwrap()["reason"], "stopped");
    let crash = row(&nodes, "data_contact1@127.0.0.1").unwrap();
    assert_ne!(crash["reason"], "stopped", "{crash}");

    // Now it can be forgotten, and is gone from the table.
    let forgot = run_at(
        home.path(),
        cwd.path(),
        port,
        &["forget", "gate1@127.0.0.1"],
    )
    .await;
    assert!(forgot.status.success(), "{forgot:?}");
    let out = run_at(
        home.path(),
        cwd.path(),
        port,
        &["names", "--cluster", "--json"],
    )
    .await;
    assert!(row(&json(&out), "gate1@127.0.0.1").is_none());
    drop(beacon);
    stop_port_mapper(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_gives_the_right_verdicts_for_a_wrong_cookie_a_stopped_port_mapper_and_a_bad_roles_file(
) {
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let (beacon, mut b) = spawn(
        home.path(),
        cwd.path(),
        port,
        &["start", "--role", "beacon", "--name", "beacon1@127.0.0.1"],
    );
    wait_line(&mut b, "beacon ready", DEADLINE).await;

    let healthy = run_at(home.path(), cwd.path(), port, &["doctor"]).await;
    assert!(healthy.status.success(), "{}", stdout(&healthy));
    assert!(
        stdout(&healthy).contains("ok    net_ticktime"),
        "{}",
        stdout(&healthy)
    );

    let wrong = run_at(home.path(), cwd.path(), port, &["doctor", "--cookie", "x"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    let text = stdout(&wrong);
    assert!(
        text.contains("FAIL  cookie          beacon1@127.0.0.1 rejects our cookie"),
        "{text}"
    );
    assert!(text.contains("ok    port mapper"), "{text}");

    let bad_roles = cwd.path().join("roles.toml");
    std::fs::write(&bad_roles, "[cluster]\nbogus = 1\n").unwrap();
    let broken = run_at(home.path(), cwd.path(), port, &["doctor"]).await;
    assert_eq!(broken.status.code(), Some(1));
    let text = stdout(&broken);
    assert!(
        text.contains("FAIL  roles file      roles.toml:2:1"),
        "{text}"
    );
    // The rest is still checked.
    assert!(text.contains("ok    beacon"), "{text}");
    std::fs::remove_file(&bad_roles).unwrap();

    beacon.signal("TERM");
    assert!(beacon.wait_output(DEADLINE).await.status.success());
    stop_port_mapper(port).await;
    let stopped = run_at(home.path(), cwd.path(), port, &["doctor"]).await;
    assert_eq!(stopped.status.code(), Some(1));
    let text = stdout(&stopped);
    assert!(text.contains("FAIL  port mapper"), "{text}");
    assert!(text.contains("fix: start one"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_configuration_errors_exit_2_runtime_failures_exit_1_and_no_clause_repeats() {
    let home = temp_home();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let open_cookie = cwd.path().join("cookie");
    std::fs::write(&open_cookie, "abc").unwrap();
    std::fs::set_permissions(
        &open_cookie,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let broken_roles = cwd.path().join("broken.toml");
    std::fs::write(&broken_roles, "[roles.x]\nrequirements = [\"nope\"]\n").unwrap();
    let open_cookie = open_cookie.to_string_lossy().into_owned();
    let broken_roles = broken_roles.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["ping", "gate1"], 2, "invalid node name"),
        (vec!["up", "--only", "nosuch"], 2, "unknown role"),
        (
            vec!["start", "--role", "nosuch", "--name", "a@127.0.0.1"],
            2,
            "unknown role",
        ),
        (
            vec!["--cookie-file", &open_cookie, "ping", "a@127.0.0.1"],
            2,
            "owner only",
        ),
        (
            vec!["roles", "--roles", "/nonexistent/roles.toml"],
            2,
            "cannot read",
        ),
        (
            vec!["names", "--cluster", "--roles", &broken_roles],
            2,
            "broken.toml:",
        ),
        (
            vec!["ping", "--timeout", "0", "a@127.0.0.1"],
            2,
            "positive number",
        ),
        (vec!["names"], 1, "no port mapper at 127.0.0.1"),
        (
            vec!["names", "--host", "nosuchhost.invalid"],
            1,
            "cannot resolve",
        ),
        (
            vec!["names", "--cluster", "--cookie", "c"],
            1,
            "beacon1@127.0.0.1",
        ),
    ];
    for (args, code, needle) in cases {
        let out = run_at(home.path(), cwd.path(), port, &args).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        for line in err.lines() {
            let clauses: Vec<&str> = line
                .split(": ")
                .map(str::trim)
                .filter(|c| c.len() > 3)
                .collect();
            for (i, c) in clauses.iter().enumerate() {
                assert!(
                    !clauses[i + 1..].contains(c),
                    "{args:?}: repeated clause {c:?} in {line:?}"
                );
            }
        }
    }
}
