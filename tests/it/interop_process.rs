//! Process behaviours against real OTP: links and exit signals with Erlang's semantics, and
//! the `sys` protocol (`get_state`, `get_status`, `suspend`, `terminate`, `GenServer.stop`),
//! from erl and from Elixir.

use std::time::Duration;

use cluster::dist::term::{atom, map, Term};
use cluster::dist::{Call, Ctx, Flow, From, Node, Process};

use crate::util::{elixir, erl, have_elixir, have_erlang, start_node, stdout, Daemon};

const DEADLINE: Duration = Duration::from_secs(40);

/// A process for the tests: counts calls, links on request, remembers the last exit it trapped,
/// and stops on `{stop, Reason}`.
#[derive(Default)]
struct Probe {
    name: &'static str,
    calls: i64,
    trap: bool,
    last_exit: Option<Term>,
}

impl Process for Probe {
    fn name(&self) -> String {
        self.name.into()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.trap_exit(self.trap);
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        self.calls += 1;
        if request.is_atom("get") {
            return Call::Reply(Term::Int(self.calls));
        }
        if request.is_atom("last_exit") {
            return Call::Reply(self.last_exit.clone().unwrap_or_else(|| atom("none")));
        }
        match request.as_tuple() {
            Some([k, Term::Pid(p)]) if k.is_atom("link_me") => {
                ctx.link(p).unwrap();
                Call::Reply(atom("ok"))
            }
            Some([k, reason]) if k.is_atom("stop") => Call::Stop {
                reason: reason.clone(),
                reply: Some(atom("ok")),
            },
            _ => cluster::dist::process::unknown_call(request),
        }
    }

    fn handle_info(&mut self, _ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if matches!(msg.as_tuple(), Some([k, _, _]) if k.is_atom("EXIT")) {
            self.last_exit = Some(msg);
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        map(vec![("calls", Term::Int(self.calls))])
    }
}

fn spawn(node: &Node, name: &'static str, trap: bool) {
    node.spawn_process(
        &[name],
        Probe {
            name,
            trap,
            ..Probe::default()
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_exit_signals_with_erlang_semantics() {
    if !have_erlang("links_and_exit_signals_with_erlang_semantics") {
        return;
    }
    let epmd = Daemon::start().await;
    let node = start_node("rs_l@127.0.0.1", &epmd, "interop").await;
    for name in ["victim", "killme", "mortal", "crasher"] {
        spawn(&node, name, false);
    }
    spawn(&node, "trapper", true);
    let script = r#"
        N = 'rs_l@127.0.0.1',
        true = net_kernel:connect_node(N),
        P = fun(Tag) -> receive M -> io:format("~s ~p~n", [Tag, M]) after 5000 -> io:format("~s timeout~n", [Tag]) end end,
        Pid = fun(Name) -> {status, X, _, _} = sys:get_status({Name, N}), X end,
        process_flag(trap_exit, true),
        V = Pid(victim), ok = gen_server:stop({victim, N}),
        link(V), P("noproc"),
        K = Pid(killme), link(K), exit(K, kill), P("kill"),
        M = Pid(mortal), link(M), ok = gen_server:call({mortal, N}, {stop, normal}), P("normal"),
        C = Pid(crasher), link(C), ok = gen_server:call({crasher, N}, {stop, boom}), P("abnormal"),
        E = spawn(fun() -> ok = gen_server:call({trapper, N}, {link_me, self()}), exit(bye) end),
        timer:sleep(300),
        io:format("trapped ~p~n", [gen_server:call({trapper, N}, last_exit) =:= {'EXIT', E, bye}]),
        io:format("unknown ~p~n", [gen_server:call({trapper, N}, what_is_this, 2000)]),
        halt()."#;
    let out = erl("erl_l@127.0.0.1", epmd.port, script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    let err = crate::util::stderr(&out);
    for expected in [
        "noproc {'EXIT',",
        "kill {'EXIT',",
        "normal {'EXIT',",
        "abnormal {'EXIT',",
        "trapped true",
        "unknown {error,{unknown_call,what_is_this}}",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in\n{text}\n{err}"
        );
    }
    let line = |tag: &str| {
        text.lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or("")
            .to_owned()
    };
    assert!(line("noproc").ends_with(",noproc}"), "{text}");
    assert!(line("kill").ends_with(",killed}"), "{text}");
    assert!(line("normal").ends_with(",normal}"), "{text}");
    assert!(line("abnormal").ends_with(",boom}"), "{text}");
    assert!(!node.is_registered("killme") && !node.is_registered("mortal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_from_elixir_on_the_beacon_and_a_stoppable_process() {
    if !have_elixir("sys_from_elixir_on_the_beacon_and_a_stoppable_process") {
        return;
    }
    let epmd = Daemon::start().await;
    let node = start_node("rs_s@127.0.0.1", &epmd, "interop").await;
    assert!(cluster::beacon::server::start(&node));
    spawn(&node, "counter", false);
    let script = r#"
        n = :"rs_s@127.0.0.1"
        true = Node.connect(n)
        caught = fn f -> try do f.() catch :exit, r -> {:EXIT, r} end end
        IO.puts("state #{inspect(:sys.get_state({:beacon, n}))}")
        {:status, pid, {:module, :gen_server}, [_, :running, _, _, [header: h, data: _, data: [{'State', _}]]]} = :sys.get_status({:beacon, n})
        IO.puts("status #{is_pid(pid)} #{h}")
        t = System.monotonic_time(:millisecond)
        r = GenServer.call({:beacon, n}, :no_such_request)
        IO.puts("unknown #{inspect(r)} in #{System.monotonic_time(:millisecond) - t} ms")
        :ok = :sys.suspend({:counter, n})
        IO.puts("suspended #{inspect(caught.(fn -> GenServer.call({:counter, n}, :get, 300) end) |> elem(0))}")
        :ok = :sys.resume({:counter, n})
        IO.puts("resumed #{inspect(GenServer.call({:counter, n}, :get))}")
        Process.flag(:trap_exit, true)
        {:status, cpid, _, _} = :sys.get_status({:counter, n})
        Process.link(cpid)
        ref = Process.monitor({:counter, n})
        :ok = GenServer.stop({:counter, n})
        receive do m -> IO.puts("exit #{inspect(m)}") after 3000 -> IO.puts("exit timeout") end
        receive do m -> IO.puts("down #{inspect(elem(m, 0))} #{inspect(elem(m, 4))} #{elem(m, 1) == ref}") after 3000 -> IO.puts("down timeout") end
        IO.puts("again #{inspect(caught.(fn -> GenServer.stop({:counter, n}) end) |> elem(0))}")
        IO.puts("refused #{inspect(:sys.terminate({:net_kernel, n}, :normal))}")
        IO.puts("net_kernel still #{inspect(GenServer.call({:net_kernel, n}, {:is_auth, node()}))}")
    "#;
    let out = elixir("ex_s@127.0.0.1", epmd.port, "interop", script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    let err = crate::util::stderr(&out);
    let line = |tag: &str| {
        text.lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag:?} line in\n{text}\n{err}"))
            .to_owned()
    };
    assert!(
        line("state").contains("nodes:") && line("state").contains("rs_s@127.0.0.1"),
        "{text}"
    );
    assert_eq!(
        line("status"),
        "status true Status for generic server beacon"
    );
    let unknown = line("unknown");
    assert!(
        unknown.starts_with("unknown {:error, {:unknown_call, :no_such_request}} in "),
        "{unknown}"
    );
    let ms: u64 = unknown.rsplit(' ').nth(1).unwrap().parse().unwrap();
    assert!(ms < 1000, "{unknown}");
    assert_eq!(line("suspended"), "suspended :EXIT");
    assert_eq!(line("resumed"), "resumed 2");
    assert!(
        line("exit").starts_with("exit {:EXIT, #PID<") && line("exit").ends_with(":normal}"),
        "{text}"
    );
    assert_eq!(line("down"), "down :DOWN :normal true");
    assert_eq!(line("again"), "again :EXIT");
    assert_eq!(line("refused"), "refused {:error, :not_allowed}");
    assert_eq!(line("net_kernel still"), "net_kernel still :yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_port_mapper_restart_erl_reaches_pids_of_the_new_creation() {
    if !have_erlang("after_a_port_mapper_restart_erl_reaches_pids_of_the_new_creation") {
        return;
    }
    let epmd = Daemon::start().await;
    let port = epmd.port;
    let node = start_node("rs_c@127.0.0.1", &epmd, "interop").await;
    spawn(&node, "counter", false);
    let first = node.creation();
    let script = r#"
        register(driver, self()),
        N = 'rs_c@127.0.0.1',
        true = net_kernel:connect_node(N),
        Creation = fun(P) -> B = term_to_binary(P), S = byte_size(B) - 4, <<_:S/binary, C:32>> = B, C end,
        {status, P1, _, _} = sys:get_status({counter, N}),
        io:format("before ~p~n", [Creation(P1)]),
        receive go -> ok after 20000 -> io:format("no go~n") end,
        {status, P2, _, _} = sys:get_status({counter, N}),
        io:format("after ~p~n", [Creation(P2)]),
        io:format("call ~p~n", [catch gen_server:call(P2, get, 5000)]),
        halt()."#;
    let mut erl_node = erl("erl_c@127.0.0.1", port, script);
    let mut lines = erl_node.stdout_lines();
    let before = crate::util::wait_line(&mut lines, "before", DEADLINE).await;
    assert_eq!(before, format!("before {first}"));
    // Restart the port mapper a second later, so the new creation differs.
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let t = unix();
    crate::util::wait_for("the next second", DEADLINE, || async {
        (unix() > t).then_some(())
    })
    .await;
    epmd.stop().await;
    let _again = Daemon::start_on(port).await;
    let creation = crate::util::wait_for("the new creation", DEADLINE, || async {
        (node.creation() != first).then(|| node.creation())
    })
    .await;
    let erl_name = cluster::dist::NodeName::parse("erl_c@127.0.0.1").unwrap();
    node.send(&cluster::dist::Dest::name("driver", &erl_name), atom("go"))
        .unwrap();
    let after = crate::util::wait_line(&mut lines, "after", DEADLINE).await;
    assert_eq!(after, format!("after {creation}"));
    let call = crate::util::wait_line(&mut lines, "call", DEADLINE).await;
    assert_eq!(call, "call 1");
    drop(erl_node);
}
