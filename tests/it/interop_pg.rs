//! OTP's `pg` against real erl nodes: members joined on either kind of node are seen by the
//! other, in the default scope and in named ones; leaving, exiting and a node going down
//! remove them everywhere; and members joined before the nodes meet (or before a scope
//! starts on the other side) arrive by the scopes' discover/sync. The erl side is driven by
//! `rpc` from the `cluster` node itself.

use std::time::Duration;

use cluster::dist::builtin::{pg, rex};
use cluster::dist::term::{atom, list, Term};
use cluster::dist::{Node, NodeName, Pid};

use crate::util::{erl_with, have_erlang, start_node, wait_for, wait_line, Daemon};

const DEADLINE: Duration = Duration::from_secs(20);

fn n(s: &str) -> NodeName {
    NodeName::parse(s).unwrap()
}

async fn rpc(node: &Node, target: &str, m: &str, f: &str, args: Vec<Term>) -> Term {
    rex::call(node, &n(target), m, f, args, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("rpc {target} {m}:{f}: {e}"))
}

/// Waits until `target` answers rpc (the connection is then up) and, if `scope` is given,
/// runs that scope (kernel starts `pg` after `rex`).
async fn wait_erl(node: &Node, target: &str, scope: Option<&str>) {
    let what = format!("{target} to start with scope {scope:?}");
    wait_for(&what, DEADLINE, || async {
        let (f, args) = match scope {
            Some(s) => ("whereis", vec![atom(s)]),
            None => ("node", vec![]),
        };
        let r = rex::call(node, &n(target), "erlang", f, args, Duration::from_secs(2))
            .await
            .ok()?;
        (scope.is_none() || r.as_pid().is_some()).then_some(())
    })
    .await;
}

/// A process on `target` that sleeps for ever.
async fn erl_holder(node: &Node, target: &str) -> Term {
    let p = rpc(
        node,
        target,
        "erlang",
        "spawn",
        vec![atom("timer"), atom("sleep"), list(vec![atom("infinity")])],
    )
    .await;
    assert!(p.as_pid().is_some(), "{p}");
    p
}

/// `pg:get_members(Scope, Group)` on `target`, sorted.
async fn erl_members(node: &Node, target: &str, scope: &str, group: Term) -> Vec<Term> {
    let r = rpc(node, target, "pg", "get_members", vec![atom(scope), group]).await;
    let mut v = r
        .as_list()
        .unwrap_or_else(|| panic!("get_members: {r}"))
        .to_vec();
    v.sort();
    v
}

/// `pg:join(Scope, Group, Pid)` (or `leave`) on `target`, which must answer `ok`.
async fn erl_pg(node: &Node, target: &str, f: &str, scope: &str, group: Term, pid: &Term) {
    let r = rpc(node, target, "pg", f, vec![atom(scope), group, pid.clone()]).await;
    assert!(r.is_atom("ok"), "pg:{f} on {target}: {r}");
}

fn pids(v: &[Pid]) -> Vec<Term> {
    let mut v: Vec<Term> = v.iter().cloned().map(Term::Pid).collect();
    v.sort();
    v
}

/// Waits until `scope` on our side has exactly `want` in `group`.
async fn wait_ours(scope: &pg::Scope, group: &str, want: Vec<Term>) {
    let what = format!("{group} = {want:?} on our side");
    wait_for(&what, DEADLINE, || {
        let got = pids(&scope.get_members(&atom(group)));
        let ok = got == want;
        async move { ok.then_some(()) }
    })
    .await;
}

/// Waits until `scope` on `target` has exactly `want` in `group`.
async fn wait_theirs(node: &Node, target: &str, scope: &str, group: &str, want: Vec<Term>) {
    let what = format!("{group} = {want:?} in scope {scope} on {target}");
    wait_for(&what, DEADLINE, || async {
        (erl_members(node, target, scope, atom(group)).await == want).then_some(())
    })
    .await;
}

fn sorted(mut v: Vec<Term>) -> Vec<Term> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_members_are_shared_with_erl_and_leave_everywhere() {
    if !have_erlang("pg_members_are_shared_with_erl_and_leave_everywhere") {
        return;
    }
    let epmd = Daemon::start().await;
    let c = start_node("pgc1@127.0.0.1", &epmd, "interop").await;
    let e = "pge1@127.0.0.1";
    let mut erl = erl_with(
        e,
        epmd.port,
        "interop",
        &["-kernel", "start_pg", "true"],
        "timer:sleep(infinity).",
    );
    wait_erl(&c, e, Some("pg")).await;
    let scope = pg::default_scope(&c).unwrap();

    // erl → cluster.
    let holder = erl_holder(&c, e).await;
    erl_pg(&c, e, "join", "pg", atom("from_erl"), &holder).await;
    wait_ours(&scope, "from_erl", vec![holder.clone()]).await;
    assert!(scope.get_local_members(&atom("from_erl")).is_empty());

    // cluster → erl.
    let mb = c.spawn_mailbox();
    let me = Term::Pid(mb.pid());
    scope.join(atom("from_rust"), vec![mb.pid()]).await.unwrap();
    wait_theirs(&c, e, "pg", "from_rust", vec![me.clone()]).await;

    // Both in one group, seen the same on both sides.
    scope.join(atom("both"), vec![mb.pid()]).await.unwrap();
    erl_pg(&c, e, "join", "pg", atom("both"), &holder).await;
    let both = sorted(vec![me.clone(), holder.clone()]);
    wait_ours(&scope, "both", both.clone()).await;
    wait_theirs(&c, e, "pg", "both", both).await;

    // A leave on either side removes the member on both.
    assert!(scope.leave(atom("both"), vec![mb.pid()]).await.unwrap());
    assert!(!scope.leave(atom("both"), vec![mb.pid()]).await.unwrap());
    wait_theirs(&c, e, "pg", "both", vec![holder.clone()]).await;
    wait_ours(&scope, "both", vec![holder.clone()]).await;
    erl_pg(&c, e, "leave", "pg", atom("both"), &holder).await;
    wait_ours(&scope, "both", vec![]).await;
    assert!(!scope.which_groups().contains(&atom("both")));
    let erl_groups = rpc(&c, e, "pg", "which_groups", vec![]).await;
    assert!(
        !erl_groups.as_list().unwrap().contains(&atom("both")),
        "{erl_groups}"
    );

    // A member that exits leaves, on both sides.
    drop(mb);
    wait_theirs(&c, e, "pg", "from_rust", vec![]).await;
    assert!(scope.get_members(&atom("from_rust")).is_empty());
    let r = rpc(&c, e, "erlang", "exit", vec![holder.clone(), atom("kill")]).await;
    assert!(r.is_atom("true"), "{r}");
    wait_ours(&scope, "from_erl", vec![]).await;

    // The erl node going down takes its members with it.
    let holder2 = erl_holder(&c, e).await;
    erl_pg(&c, e, "join", "pg", atom("down_with_erl"), &holder2).await;
    wait_ours(&scope, "down_with_erl", vec![holder2]).await;
    erl.kill();
    wait_ours(&scope, "down_with_erl", vec![]).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_named_scopes_are_shared_with_erl_and_kept_apart() {
    if !have_erlang("pg_named_scopes_are_shared_with_erl_and_kept_apart") {
        return;
    }
    let epmd = Daemon::start().await;
    let c = start_node("pgc2@127.0.0.1", &epmd, "interop").await;
    let e = "pge2@127.0.0.1";
    // No default scope on this erl: only the named one.
    let _erl = erl_with(e, epmd.port, "interop", &[], "timer:sleep(infinity).");
    wait_erl(&c, e, None).await;
    let games = pg::start_scope(&c, "games").unwrap();
    let r = rpc(&c, e, "pg", "start", vec![atom("games")]).await;
    assert!(
        matches!(r.as_tuple(), Some([ok, Term::Pid(_)]) if ok.is_atom("ok")),
        "{r}"
    );

    let holder = erl_holder(&c, e).await;
    erl_pg(&c, e, "join", "games", atom("lobby"), &holder).await;
    let mb = c.spawn_mailbox();
    games.join(atom("lobby"), vec![mb.pid()]).await.unwrap();
    let lobby = sorted(vec![holder.clone(), Term::Pid(mb.pid())]);
    wait_ours(&games, "lobby", lobby.clone()).await;
    wait_theirs(&c, e, "games", "lobby", lobby.clone()).await;
    // The default scope knows nothing of it.
    assert!(pg::default_scope(&c).unwrap().which_groups().is_empty());

    // A second cluster node joins in; when it goes down, erl (which monitors its scope) and
    // the first cluster node drop its member.
    let c2 = start_node("pgc2b@127.0.0.1", &epmd, "interop").await;
    let games2 = pg::start_scope(&c2, "games").unwrap();
    c2.connect(&n(e)).await.unwrap();
    let mb2 = c2.spawn_mailbox();
    games2.join(atom("lobby"), vec![mb2.pid()]).await.unwrap();
    let lobby3 = sorted(vec![
        holder.clone(),
        Term::Pid(mb.pid()),
        Term::Pid(mb2.pid()),
    ]);
    wait_theirs(&c, e, "games", "lobby", lobby3.clone()).await;
    wait_ours(&games, "lobby", lobby3.clone()).await;
    wait_ours(&games2, "lobby", lobby3).await;
    c2.shutdown().await;
    wait_theirs(&c, e, "games", "lobby", lobby.clone()).await;
    wait_ours(&games, "lobby", lobby).await;

    // Leaves cross in the named scope too.
    erl_pg(&c, e, "leave", "games", atom("lobby"), &holder).await;
    wait_ours(&games, "lobby", vec![Term::Pid(mb.pid())]).await;
    assert!(games.leave(atom("lobby"), vec![mb.pid()]).await.unwrap());
    wait_theirs(&c, e, "games", "lobby", vec![]).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_members_joined_before_the_nodes_or_scopes_meet_are_synced_both_ways() {
    if !have_erlang("pg_members_joined_before_the_nodes_or_scopes_meet_are_synced_both_ways") {
        return;
    }
    let epmd = Daemon::start().await;
    let e = "pge3@127.0.0.1";
    // erl's member joins before any cluster node exists.
    let script = r#"
        P = spawn(fun() -> receive stop -> ok end end),
        ok = pg:join(early_erl, P),
        io:format("joined~n"),
        timer:sleep(infinity)."#;
    let mut erl = erl_with(
        e,
        epmd.port,
        "interop",
        &["-kernel", "start_pg", "true"],
        script,
    );
    let mut out = erl.stdout_lines();
    wait_line(&mut out, "joined", DEADLINE).await;
    // Our member joins before the nodes are connected.
    let c = start_node("pgc3@127.0.0.1", &epmd, "interop").await;
    let scope = pg::default_scope(&c).unwrap();
    let mb = c.spawn_mailbox();
    scope
        .join(atom("early_rust"), vec![mb.pid()])
        .await
        .unwrap();
    assert!(c.nodes().is_empty());

    // They meet: each side's scope discovers the other on nodeup and syncs.
    c.connect(&n(e)).await.unwrap();
    let theirs = wait_for("erl's early member on our side", DEADLINE, || {
        let m = scope.get_members(&atom("early_erl"));
        async move { (m.len() == 1).then(|| m[0].clone()) }
    })
    .await;
    assert_eq!(theirs.node.as_str(), e);
    wait_theirs(&c, e, "pg", "early_rust", vec![Term::Pid(mb.pid())]).await;

    // A scope that starts on erl after ours has members: its start-up discover reaches us.
    let late = pg::start_scope(&c, "late_erl").unwrap();
    late.join(atom("g"), vec![mb.pid()]).await.unwrap();
    let r = rpc(&c, e, "pg", "start", vec![atom("late_erl")]).await;
    assert!(r.as_tuple().is_some_and(|t| t[0].is_atom("ok")), "{r}");
    wait_theirs(&c, e, "late_erl", "g", vec![Term::Pid(mb.pid())]).await;

    // A scope that starts on our side after erl's has members: ours discovers it.
    let r = rpc(&c, e, "pg", "start", vec![atom("late_rust")]).await;
    assert!(r.as_tuple().is_some_and(|t| t[0].is_atom("ok")), "{r}");
    let holder = erl_holder(&c, e).await;
    erl_pg(&c, e, "join", "late_rust", atom("g"), &holder).await;
    let late = pg::start_scope(&c, "late_rust").unwrap();
    wait_ours(&late, "g", vec![holder]).await;
    c.shutdown().await;
}
