//! Large and deep messages against real OTP: fragments both ways (1, 16 and 200 MB), small
//! calls answered while a 200 MB message is in flight on the same connection (both
//! directions), terms nested 10,000 deep, and the maximum message size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster::dist::term::{atom, binary, tuple, Term};
use cluster::dist::{Call, Ctx, Dest, From, Node, NodeConfig, Process};
use md5::{Digest, Md5};

use crate::util::{erl, have_erlang, heavy, node_config, stdout, Daemon};

const DEADLINE: Duration = Duration::from_secs(180);

/// Answers `ping` with `{pong, BigArrived}`, `{depth, T}` with T's nesting depth, and
/// `{size, Bin}` with the binary's size.
struct Probe {
    big: Arc<AtomicBool>,
}

/// How deeply `t` nests, counted without recursion.
fn depth(t: &Term) -> i64 {
    let mut deepest = 0;
    let mut stack = vec![(t, 0i64)];
    while let Some((t, d)) = stack.pop() {
        deepest = deepest.max(d);
        if let Some(items) = t.as_list().or_else(|| t.as_tuple()) {
            stack.extend(items.iter().map(|c| (c, d + 1)));
        }
    }
    deepest
}

impl Process for Probe {
    fn name(&self) -> String {
        "probe".into()
    }

    fn handle_call(&mut self, _ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        if request.is_atom("ping") {
            let arrived = atom(if self.big.load(Ordering::SeqCst) {
                "true"
            } else {
                "false"
            });
            return Call::Reply(tuple(vec![atom("pong"), arrived]));
        }
        match request.as_tuple() {
            Some([k, t]) if k.is_atom("depth") => Call::Reply(Term::Int(depth(t))),
            Some([k, Term::Binary(b)]) if k.is_atom("size") => {
                Call::Reply(Term::Int(b.len() as i64))
            }
            _ => cluster::dist::process::unknown_call(request),
        }
    }

    fn state(&self) -> Term {
        atom("probe")
    }
}

fn md5_of(b: &[u8]) -> Term {
    binary(Md5::digest(b).to_vec())
}

/// Starts a node with the probe and a `sink` that checks `{From, Bin, Md5}` messages (answering
/// `{ok, Size}` or `{bad, Size}`) and flags `big` when a binary of 100 MB or more arrives.
async fn start(epmd: &Daemon, name: &str, max_message: Option<usize>) -> (Node, Arc<AtomicBool>) {
    let mut cfg: NodeConfig = node_config(name, epmd, "interop");
    if let Some(m) = max_message {
        cfg.max_message = m;
    }
    let node = Node::start(cfg).await.unwrap();
    let big = Arc::new(AtomicBool::new(false));
    node.spawn_process(&["probe"], Probe { big: big.clone() })
        .unwrap();
    let mut sink = node.register("sink").unwrap();
    let flag = big.clone();
    tokio::spawn(async move {
        while let Some(msg) = sink.recv().await {
            let Some([Term::Pid(from), Term::Binary(b), sum]) = msg.as_tuple() else {
                continue;
            };
            if b.len() >= 100_000_000 {
                flag.store(true, Ordering::SeqCst);
            }
            let verdict = if md5_of(b) == *sum { "ok" } else { "bad" };
            let reply = tuple(vec![atom(verdict), Term::Int(b.len() as i64)]);
            let _ = sink.send(&Dest::Pid(from.clone()), reply);
        }
    });
    (node, big)
}

/// Erlang that makes an `N`-byte binary quickly and without a repeating period that fragments
/// could line up with: a prime-sized random block, repeated and cut.
const MAKE_BIN: &str = r#"
    Make = fun(Size) ->
        Block = rand:bytes(999983),
        Copies = Size div 999983 + 1,
        binary:part(binary:copy(Block, Copies), 0, Size)
    end,
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erl_sends_1_16_and_200_mb_and_calls_go_between_the_fragments() {
    if !have_erlang("erl_sends_1_16_and_200_mb_and_calls_go_between_the_fragments") {
        return;
    }
    let _heavy = heavy().await;
    let epmd = Daemon::start().await;
    let (_node, big) = start(&epmd, "rs_big@127.0.0.1", None).await;
    let script = format!(
        r#"
        N = 'rs_big@127.0.0.1',
        true = net_kernel:connect_node(N),
        {MAKE_BIN}
        Send = fun(Size) ->
            B = Make(Size),
            T = erlang:monotonic_time(millisecond),
            {{sink, N}} ! {{self(), B, erlang:md5(B)}},
            receive {{V, Size}} -> io:format("~p ~b ~b ms~n", [V, Size, erlang:monotonic_time(millisecond) - T])
            after 120000 -> io:format("timeout ~b~n", [Size]) end
        end,
        Send(1000000),
        Send(16000000),
        Big = Make(200000000),
        Me = self(),
        spawn(fun() -> {{sink, N}} ! {{Me, Big, erlang:md5(Big)}} end),
        Calls = fun Loop(K, Worst) ->
            T0 = erlang:monotonic_time(microsecond),
            R = gen_server:call({{probe, N}}, ping, 60000),
            Us = erlang:monotonic_time(microsecond) - T0,
            case R of
                {{pong, false}} -> Loop(K + 1, max(Worst, Us));
                {{pong, true}} -> {{K, Worst}}
            end
        end,
        {{Between, WorstUs}} = Calls(0, 0),
        receive {{V, 200000000}} -> io:format("~p 200000000~n", [V]) after 120000 -> io:format("timeout 200000000~n") end,
        io:format("calls between ~b worst ~b us~n", [Between, WorstUs]),
        3 = gen_server:call({{probe, N}}, {{size, <<1,2,3>>}}),
        io:format("nodes ~p~n", [nodes()]),
        halt()."#
    );
    let out = erl("erl_big@127.0.0.1", epmd.port, &script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    let err = crate::util::stderr(&out);
    println!("{text}");
    for expected in [
        "ok 1000000 ",
        "ok 16000000 ",
        "ok 200000000",
        "nodes ['rs_big@127.0.0.1']",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in\n{text}\n{err}"
        );
    }
    assert!(big.load(Ordering::SeqCst));
    // Calls made while the 200 MB message was in flight were answered before it arrived: it
    // did not hold the connection.
    let line = text
        .lines()
        .find(|l| l.starts_with("calls between"))
        .unwrap_or_else(|| panic!("no calls line in\n{text}\n{err}"));
    let between: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        between >= 10,
        "only {between} calls answered while 200 MB was in flight: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_send_200_mb_to_erl_and_our_replies_go_between_the_fragments() {
    if !have_erlang("we_send_200_mb_to_erl_and_our_replies_go_between_the_fragments") {
        return;
    }
    let _heavy = heavy().await;
    let epmd = Daemon::start().await;
    let (node, _) = start(&epmd, "rs_out@127.0.0.1", None).await;
    let mut me = node.register("driver").unwrap();
    // erl: a receiver that answers {Size, Md5} and registers `got_big`, and a caller that
    // counts our probe's answers until the big binary is in.
    let script = r#"
        N = 'rs_out@127.0.0.1',
        true = net_kernel:connect_node(N),
        Me = self(),
        R = spawn(fun() -> receive {From, B} -> register(got_big, self()), From ! {byte_size(B), erlang:md5(B)}, Me ! done end end),
        {driver, N} ! {ready, R},
        Calls = fun Loop(K) ->
            {pong, _} = gen_server:call({probe, N}, ping, 60000),
            case whereis(got_big) of undefined -> Loop(K + 1); _ -> K end
        end,
        K = Calls(0),
        receive done -> ok after 120000 -> ok end,
        io:format("calls between ~b~n", [K]),
        halt()."#;
    let erl_proc = erl("erl_out@127.0.0.1", epmd.port, script);
    let ready = tokio::time::timeout(DEADLINE, me.recv())
        .await
        .expect("erl ready")
        .unwrap();
    let Some([_, Term::Pid(receiver)]) = ready.as_tuple() else {
        panic!("{ready:?}")
    };
    let payload: Vec<u8> = (0..200_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sum = md5_of(&payload);
    me.send_wait(
        &Dest::Pid(receiver.clone()),
        tuple(vec![Term::Pid(me.pid()), binary(payload)]),
    )
    .await
    .unwrap();
    let answer = tokio::time::timeout(DEADLINE, me.recv())
        .await
        .expect("erl answers")
        .unwrap();
    assert_eq!(answer, tuple(vec![Term::Int(200_000_000), sum]));
    let out = erl_proc.wait_output(DEADLINE).await;
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("calls between"))
        .unwrap_or_else(|| panic!("no calls line in\n{text}\n{}", crate::util::stderr(&out)));
    let between: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        between >= 10,
        "only {between} of our replies got out while 200 MB was in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_10000_deep_from_erl_arrive_and_calls_carrying_them_are_answered() {
    if !have_erlang("terms_10000_deep_from_erl_arrive_and_calls_carrying_them_are_answered") {
        return;
    }
    let epmd = Daemon::start().await;
    let (node, _) = start(&epmd, "rs_deep@127.0.0.1", None).await;
    let mut deep_box = node.register("deep").unwrap();
    let script = r#"
        N = 'rs_deep@127.0.0.1',
        true = net_kernel:connect_node(N),
        Deep = lists:foldl(fun(I, A) -> case I rem 2 of 0 -> [A]; 1 -> {A} end end, [], lists:seq(1, 10000)),
        {deep, N} ! Deep,
        io:format("depth ~p~n", [gen_server:call({probe, N}, {depth, Deep})]),
        halt()."#;
    let out = erl("erl_deep@127.0.0.1", epmd.port, script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    let got = tokio::time::timeout(Duration::from_secs(10), deep_box.recv())
        .await
        .expect("deep term delivered")
        .unwrap();
    // 10,000 containers around the innermost [].
    assert_eq!(depth(&got), 10_000);
    assert!(
        text.contains("depth 10000"),
        "the call is answered with the depth seen: {text}\n{}",
        crate::util::stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_maximum_is_refused_and_the_connection_stays() {
    if !have_erlang("a_message_over_the_maximum_is_refused_and_the_connection_stays") {
        return;
    }
    let epmd = Daemon::start().await;
    let (_node, _) = start(&epmd, "rs_max@127.0.0.1", Some(1_000_000)).await;
    let script = r#"
        N = 'rs_max@127.0.0.1',
        true = net_kernel:connect_node(N),
        ok = net_kernel:monitor_nodes(true),
        Big = binary:copy(<<7>>, 2000000),
        io:format("big ~p~n", [gen_server:call({probe, N}, {size, Big}, 10000)]),
        io:format("plain ~p~n", [gen_server:call({probe, N}, {size, <<1,2,3>>}, 10000)]),
        {sink, N} ! {self(), Big, erlang:md5(Big)},
        {sink, N} ! {self(), <<1>>, erlang:md5(<<1>>)},
        receive {V, S} -> io:format("next ~p ~p~n", [V, S]) after 10000 -> io:format("next none~n") end,
        receive {nodedown, X} -> io:format("nodedown ~p~n", [X]) after 0 -> io:format("no nodedown~n") end,
        io:format("nodes ~p~n", [nodes()]),
        halt()."#;
    let out = erl("erl_max@127.0.0.1", epmd.port, script)
        .wait_output(DEADLINE)
        .await;
    let text = stdout(&out);
    for expected in [
        "big {error,{message_too_large,",
        ",1000000}}",
        "plain 3",
        "next ok 1",
        "no nodedown",
        "nodes ['rs_max@127.0.0.1']",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in\n{text}\n{}",
            crate::util::stderr(&out)
        );
    }
}
