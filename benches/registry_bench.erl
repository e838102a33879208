%% Helper for benches/registry_vs_global.py: compiled at run time into the bench's temp dir and
%% loaded on the client node (the "driver") and on the three BEAM nodes (bm1..bm3).
%%
%% The driver reads one Erlang term a line on stdin, runs it and prints one line on stdout:
%% `RESULT k=v k=v ...` (v an integer, a float, an atom, or integers joined by commas) or
%% `ERROR ...`. Every wait and every load loop here has a bound.
-module(registry_bench).
-export([driver/0]).
%% Run on the BEAM nodes (spawned there, or through erpc).
-export([reg_worker/6, fill_local/1, holders/0, lookup_local/2, joins_local/3, vis_spin/2, vis_reg/2,
         holder/0, fo_spawn_local/1, fo_watch/4]).

-define(CALL_TIMEOUT, 30000).

%% ---- the driver ----

driver() ->
    io:format("ready~n"),
    loop().

loop() ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(0);
        Line ->
            Result = try
                {ok, Toks, _} = erl_scan:string(Line),
                {ok, Term} = erl_parse:parse_term(Toks),
                {ok, run(Term)}
            catch C:R:St -> {error, {C, R, St}}
            end,
            case Result of
                {ok, Map} -> io:format("RESULT ~ts~n", [kv(Map)]);
                {error, E} -> io:format("ERROR ~0P~n", [E, 40])
            end,
            loop()
    end.

kv(Map) ->
    lists:join(" ", [[atom_to_list(K), "=", val(V)] || {K, V} <- lists:sort(maps:to_list(Map))]).

val(V) when is_integer(V) -> integer_to_list(V);
val(V) when is_float(V) -> float_to_list(V, [{decimals, 6}, compact]);
val(V) when is_atom(V) -> atom_to_list(V);
val([]) -> "-";
val(L) when is_list(L) -> lists:join(",", [integer_to_list(I) || I <- L]).

now_us() -> erlang:monotonic_time(microsecond).

deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.

check(Deadline, What) ->
    erlang:monotonic_time(millisecond) < Deadline orelse error({timeout, What}).

run({connect, Nodes}) ->
    Bad = [N || N <- Nodes, net_adm:ping(N) =/= pong],
    Bad =:= [] orelse error({not_reachable, Bad}),
    #{nodes => length(Nodes)};
run(versions) ->
    application:load(kernel),
    {ok, Vsn} = application:get_key(kernel, vsn),
    #{otp => list_to_integer(erlang:system_info(otp_release)), kernel => list_to_atom(Vsn)};
run({mesh_beam, Nodes, TimeoutMs}) ->
    %% Every BEAM node sees the others, global has synced, and each pg scope sees the others'.
    [pong = erpc:call(N, net_adm, ping, [M], ?CALL_TIMEOUT) || N <- Nodes, M <- Nodes, N =/= M],
    D = deadline(TimeoutMs),
    [wait_until(D, {mesh, N}, fun() ->
         lists:sort([N | erpc:call(N, erlang, nodes, [])]) =:= lists:sort(Nodes)
     end) || N <- Nodes],
    [ok = erpc:call(N, global, sync, [], TimeoutMs) || N <- Nodes],
    %% pg: a probe joined on each node is seen on every node.
    Probes = [{N, erpc:call(N, erlang, spawn, [?MODULE, holder, []])} || N <- Nodes],
    [ok = erpc:call(N, pg, join, [{probe, N}, P]) || {N, P} <- Probes],
    [wait_until(D, {pg, N, M}, fun() ->
         lists:member(P, erpc:call(M, pg, get_members, [{probe, N}]))
     end) || {N, P} <- Probes, M <- Nodes],
    [P ! stop || {_, P} <- Probes],
    #{nodes => length(Nodes)};
run({servers, Nodes, Want, TimeoutMs}) ->
    %% Every one of our nodes' cluster_server lists Want servers (theirs and ours).
    D = deadline(TimeoutMs),
    [wait_until(D, {servers, N}, fun() ->
         length(maps:get(servers, status(N))) >= Want
     end) || N <- Nodes],
    #{nodes => length(Nodes)};
run({counts, Ours, Beam}) ->
    maps:from_list([{count_key(N), entries(ours, N)} || N <- Ours] ++
                   [{count_key(N), entries(beam, N)} || N <- Beam]);
run({wait_count, Side, Nodes, Count, TimeoutMs}) ->
    D = deadline(TimeoutMs),
    [wait_until(D, {count, N, Count}, fun() -> entries(Side, N) =:= Count end) || N <- Nodes],
    #{count => Count};
run({reg, Side, Run, Targets, Workers, Ms, MaxNames, AllNodes}) ->
    reg(Side, Run, Targets, Workers, Ms, MaxNames, AllNodes);
run({reg_stop, Side, AllNodes, Base, TimeoutMs}) ->
    [P ! stop || P <- get_workers()],
    put(workers, []),
    run({wait_count, Side, AllNodes, Base, TimeoutMs});
run({fill_beam, Node, L}) ->
    {Holder, Us} = erpc:call(Node, ?MODULE, fill_local, [L], 3600000),
    put(holders, [Holder | get_holders()]),
    #{us => Us, names => L};
run({lookup_beam, Node, L, Count}) ->
    erpc:call(Node, ?MODULE, lookup_local, [L, Count], 600000);
run({joins_call, Side, Node, Peers, Workers, Count, MaxMs}) ->
    joins_call(Side, Node, Peers, Workers, Count, MaxMs);
run({joins_beam, Node, Peers, Count, MaxMs}) ->
    erpc:call(Node, ?MODULE, joins_local, [Peers, Count, MaxMs], 2 * MaxMs + 60000);
run({vis_beam, From, To, N, GapMs}) -> vis_beam(From, To, N, GapMs);
run({create_echo, Via, OnNode, N, Conc}) -> create_echo(Via, OnNode, N, Conc);
run({wait_placed, Nodes, N, OnNode, TimeoutMs}) ->
    D = deadline(TimeoutMs),
    [wait_until(D, {placed, Node}, fun() ->
         Recs = procs(Node),
         length(Recs) =:= N andalso lists:all(fun(R) -> element(4, R) =:= OnNode end, Recs)
     end) || Node <- Nodes],
    #{n => N};
run({wait_failover, Survivors, N, Victim, TimeoutMs}) -> wait_failover(Survivors, N, Victim, TimeoutMs);
run({failover_reports, Nodes}) ->
    maps:from_list(lists:append(
        [[{list_to_atom("ms_" ++ atom_to_list(Node)), [maps:get(ms, F) || F <- Fs]},
          {list_to_atom("procs_" ++ atom_to_list(Node)), [maps:get(processes, F) || F <- Fs]},
          {list_to_atom("failed_" ++ atom_to_list(Node)), [maps:get(failed, F) || F <- Fs]}]
         || Node <- Nodes, Fs <- [maps:get(failovers, status(Node))]]));
run({fo_beam_setup, Victim, N}) ->
    Us = erpc:call(Victim, ?MODULE, fo_spawn_local, [N], 3600000),
    #{us => Us, n => N};
run({fo_beam_arm, Watcher, Victim, Survivors, N}) ->
    Self = self(),
    W = spawn(Watcher, ?MODULE, fo_watch, [Self, Victim, Survivors, N]),
    receive {watching, W} -> ok after 10000 -> error(watch_timeout) end,
    put(fo_watcher, W),
    #{armed => 1};
run({fo_beam_wait, TimeoutMs}) ->
    W = get(fo_watcher),
    receive
        {fo_done, W, Res} -> Res
    after TimeoutMs -> error(fo_beam_timeout)
    end;
run({fo_beam_check, Node, N}) ->
    Pids = [erpc:call(Node, global, whereis_name, [{fo, I}]) || I <- lists:seq(0, N - 1)],
    Nodes = [node(P) || P <- Pids, is_pid(P)],
    #{named => length(Nodes),
      alive => length([P || P <- Pids, is_pid(P), erpc:call(node(P), erlang, is_process_alive, [P])])};
run(stop_holders) ->
    [H ! stop || H <- get_holders()],
    put(holders, []),
    #{}.

count_key(N) -> list_to_atom("n_" ++ atom_to_list(N)).

get_workers() -> case get(workers) of undefined -> []; W -> W end.
get_holders() -> case get(holders) of undefined -> []; H -> H end.

wait_until(Deadline, What, F) ->
    case catch F() of
        true -> ok;
        _ ->
            check(Deadline, What),
            timer:sleep(5),
            wait_until(Deadline, What, F)
    end.

status(N) -> gen_server:call({cluster_server, N}, status, ?CALL_TIMEOUT).

procs(N) -> gen_server:call({cluster_server, N}, {procs, echo, all}, ?CALL_TIMEOUT).

%% The entries a node's table holds: ours its cluster_server's `entries`, BEAM global's names.
entries(ours, N) -> maps:get(entries, status(N));
entries(beam, N) -> length(erpc:call(N, global, registered_names, [], ?CALL_TIMEOUT)).

holder() ->
    receive stop -> ok after 3600000 -> ok end.

%% ---- registrations: Workers processes per target, for Ms, unique names ----
%% Each registration is of a new process (global refuses a second name for a pid): the worker
%% spawns (and links) a holder, then registers it. Side ours: the workers live here and call
%% `{set_process, reg, {Run, W, I}, Holder}` on their target's cluster_server. beam_erpc:
%% they live here and `erpc:call(Target, global, register_name, [{reg, Run, W, I}, Holder])`.
%% beam_local: they live on their target and call `global:register_name({reg, Run, W, I},
%% Holder)` there. Each worker stops after Ms or its share of MaxNames, and keeps its names
%% (its holders live) until reg_stop, when it exits and takes its holders with it.

reg(Side, Run, Targets, Workers, Ms, MaxNames, AllNodes) ->
    Base = [{N, entries(side_of(Side), N)} || N <- AllNodes],
    Self = self(),
    Cap = (MaxNames + Workers * length(Targets) - 1) div (Workers * length(Targets)),
    Ws = lists:append(
        [[case Side of
              beam_local -> spawn(T, ?MODULE, reg_worker, [Self, Side, T, Run, {Ti, Wi}, Cap]);
              _ -> spawn(?MODULE, reg_worker, [Self, Side, T, Run, {Ti, Wi}, Cap])
          end || Wi <- lists:seq(1, Workers)]
         || {Ti, T} <- lists:zip(lists:seq(1, length(Targets)), Targets)]),
    put(workers, Ws ++ get_workers()),
    T0 = now_us(),
    %% Each worker sets its deadline on its own node's clock; the start and end are this
    %% node's.
    [W ! {go, Ms} || W <- Ws],
    Res = [receive {done, W, R} -> R after Ms + 120000 -> error(worker_timeout) end || W <- Ws],
    T1 = now_us(),
    Ops = lists:sum([O || {O, _} <- Res]),
    Errs = lists:sum([E || {_, E} <- Res]),
    %% Until every node's table holds every name (global: already so when register_name
    %% returns; ours: the owners tell the others after answering).
    D = deadline(120000),
    [wait_until(D, {visible, N}, fun() -> entries(side_of(Side), N) >= B + Ops end)
     || {N, B} <- Base],
    T2 = now_us(),
    #{ops => Ops, errors => Errs, us => T1 - T0, visible_us => T2 - T0,
      base => lists:max([B || {_, B} <- Base])}.

side_of(ours) -> ours;
side_of(_) -> beam.

reg_worker(Parent, Side, Target, Run, W, Cap) ->
    Op = case Side of
        ours ->
            S = {cluster_server, Target},
            fun(I, H) -> ok = gen_server:call(S, {set_process, reg, {Run, W, I}, H}, ?CALL_TIMEOUT) end;
        beam_erpc ->
            fun(I, H) -> yes = erpc:call(Target, global, register_name, [{reg, Run, W, I}, H], ?CALL_TIMEOUT) end;
        beam_local ->
            fun(I, H) -> yes = global:register_name({reg, Run, W, I}, H) end
    end,
    receive
        {go, Ms} ->
            Parent ! {done, self(), reg_loop(Op, 0, 0, Cap, now_us() + Ms * 1000)},
            receive stop -> exit(shutdown) after 3600000 -> exit(shutdown) end
    after 600000 -> ok
    end.

reg_loop(_Op, N, E, Cap, _Deadline) when N + E >= Cap -> {N, E};
reg_loop(Op, N, E, Cap, Deadline) ->
    case now_us() < Deadline of
        false -> {N, E};
        true ->
            H = spawn_link(?MODULE, holder, []),
            case catch Op(N + E, H) of
                ok -> reg_loop(Op, N + 1, E, Cap, Deadline);
                yes -> reg_loop(Op, N + 1, E, Cap, Deadline);
                _ -> reg_loop(Op, N, E + 1, Cap, Deadline)
            end
    end.

%% ---- local lookups on a BEAM node ----

fill_local(L) ->
    H = spawn(?MODULE, holders, []),
    T0 = now_us(),
    [yes = global:register_name({look, I}, new_holder(H)) || I <- lists:seq(0, L - 1)],
    {H, now_us() - T0}.

%% A process whose exit takes the holders linked to it along.
holders() ->
    receive
        {new, From} -> From ! {holder, self(), spawn_link(?MODULE, holder, [])}, holders();
        stop -> exit(shutdown)
    after 3600000 -> exit(shutdown)
    end.

new_holder(H) ->
    H ! {new, self()},
    receive {holder, H, P} -> P after 10000 -> error(holder_timeout) end.

lookup_local(L, Count) ->
    Names = list_to_tuple([{look, I} || I <- lists:seq(0, L - 1)]),
    T0 = now_us(),
    Misses = lookups(Names, L, Count, 0, 0),
    #{us => now_us() - T0, done => Count, misses => Misses, entries => L}.

lookups(_, _, 0, _, M) -> M;
lookups(T, L, C, I, M) ->
    M1 = case global:whereis_name(element(I + 1, T)) of
        P when is_pid(P) -> M;
        _ -> M + 1
    end,
    I1 = case I + 1 of L -> 0; J -> J end,
    lookups(T, L, C - 1, I1, M1).

%% ---- pg joins on a BEAM node: new groups {g, I}, one process, one after the other ----

joins_local(Peers, Count, MaxMs) ->
    Self = self(),
    Deadline = now_us() + MaxMs * 1000,
    T0 = now_us(),
    Done = joins(Self, 0, Count, Deadline),
    T1 = now_us(),
    Last = {g, Done - 1},
    D = deadline(2 * MaxMs),
    [wait_until1(D, {seen, P}, fun() -> lists:member(Self, erpc:call(P, pg, get_members, [Last])) end)
     || P <- Peers],
    T2 = now_us(),
    #{joins => Done, errors => 0, us => T1 - T0, seen_us => T2 - T0, peers => length(Peers),
      local_members => length(pg:get_members(Last))}.

joins(_, I, I, _) -> I;
joins(Self, I, Count, Deadline) ->
    case now_us() < Deadline of
        true -> ok = pg:join({g, I}, Self), joins(Self, I + 1, Count, Deadline);
        false -> I
    end.

%% As wait_until, polling every millisecond.
wait_until1(Deadline, What, F) ->
    case catch F() of
        true -> ok;
        _ ->
            check(Deadline, What),
            timer:sleep(1),
            wait_until1(Deadline, What, F)
    end.

%% ---- pg joins from the driver, the same calls on both sides ----
%% Workers processes here each call `gen_server:call({pg, Node}, {join_local, {gd, W, I}, Pid})`
%% (what pg:join/2 does on Node) one after the other, Count in all, for a process Pid of Node:
%% ours an echo process created there, BEAM a process spawned there. Seen: every peer's scope
%% answers `{monitor, Last}` with Pid among the members, for each worker's last group. The
%% process is killed afterwards, which takes its memberships along.

joins_call(Side, Node, Peers, Workers, Count, MaxMs) ->
    Pid = case Side of
        ours ->
            {ok, Rec} = gen_server:call({cluster_server, Node},
                                        {create_process, echo, pg_joiner, {node, Node}}, ?CALL_TIMEOUT),
            element(5, Rec);
        beam -> erpc:call(Node, erlang, spawn, [?MODULE, holder, []])
    end,
    S = {pg, Node},
    Self = self(),
    Each = Count div Workers,
    T0 = now_us(),
    Ws = [spawn(fun() ->
              Self ! {jdone, self(), W, jcall(S, Pid, W, 0, Each, now_us() + MaxMs * 1000)}
          end) || W <- lists:seq(1, Workers)],
    Res = [receive {jdone, P, W, N} -> {W, N} after MaxMs + 60000 -> error(join_timeout) end
           || P <- Ws],
    T1 = now_us(),
    D = deadline(2 * MaxMs),
    [wait_until1(D, {seen, P}, fun() -> member_on(P, {gd, W, N - 1}, Pid) end)
     || P <- Peers, {W, N} <- Res, N > 0],
    T2 = now_us(),
    exit(Pid, kill),
    case Side of
        ours -> ok = gen_server:call({cluster_server, Node}, {del_process, echo, pg_joiner}, ?CALL_TIMEOUT);
        beam -> ok
    end,
    #{joins => lists:sum([N || {_, N} <- Res]), errors => 0, us => T1 - T0, seen_us => T2 - T0,
      peers => length(Peers)}.

jcall(_, _, _, I, I, _) -> I;
jcall(S, Pid, W, I, Count, Deadline) ->
    case now_us() < Deadline of
        true -> ok = gen_server:call(S, {join_local, {gd, W, I}, Pid}, ?CALL_TIMEOUT),
                jcall(S, Pid, W, I + 1, Count, Deadline);
        false -> I
    end.

member_on(Peer, Group, Pid) ->
    {Ref, Pids} = gen_server:call({pg, Peer}, {monitor, Group}, ?CALL_TIMEOUT),
    gen_server:call({pg, Peer}, {demonitor, Ref}, ?CALL_TIMEOUT),
    lists:member(Pid, Pids).

%% ---- visibility: register on From, a spinner on To polls global:whereis_name ----
%% T0 is stamped on From just before global:register_name, T1 on To when the name resolves;
%% both os:system_time(microsecond) on one host.

vis_beam(From, To, N, GapMs) ->
    Holder = erpc:call(From, erlang, spawn, [?MODULE, holders, []]),
    Self = self(),
    Samples = [begin
        Name = {vis, I},
        Sp = spawn(To, ?MODULE, vis_spin, [Self, Name]),
        receive {armed, Sp} -> ok after 10000 -> error(arm_timeout) end,
        {T0, Ack} = erpc:call(From, ?MODULE, vis_reg, [Name, Holder], ?CALL_TIMEOUT),
        T1 = receive {seen, Sp, T} -> T after 10000 -> none end,
        timer:sleep(GapMs),
        {T1, T0, Ack}
    end || I <- lists:seq(0, N - 1)],
    Holder ! stop,
    #{vis => [T1 - T0 || {T1, T0, _} <- Samples, is_integer(T1)],
      ack => [A - T0 || {_, T0, A} <- Samples],
      lost => length([x || {none, _, _} <- Samples])}.

vis_spin(Parent, Name) ->
    Parent ! {armed, self()},
    Deadline = now_us() + 10000000,
    spin(Parent, Name, Deadline).

spin(Parent, Name, Deadline) ->
    case global:whereis_name(Name) of
        P when is_pid(P) -> Parent ! {seen, self(), os:system_time(microsecond)};
        _ ->
            %% Gives way between polls, as ours does (std::thread::yield_now).
            erlang:yield(),
            case now_us() < Deadline of
                true -> spin(Parent, Name, Deadline);
                false -> Parent ! {seen, self(), none}
            end
    end.

vis_reg(Name, Holders) ->
    Holder = new_holder(Holders),
    T0 = os:system_time(microsecond),
    yes = global:register_name(Name, Holder),
    {T0, os:system_time(microsecond)}.

%% ---- failover, ours: N echo processes created on OnNode, Conc at a time ----

create_echo(Via, OnNode, N, Conc) ->
    Self = self(),
    Next = atomics:new(1, []),
    S = {cluster_server, Via},
    T0 = now_us(),
    Ws = [spawn(fun() -> Self ! {done, self(), create_loop(S, OnNode, Next, N, 0)} end)
          || _ <- lists:seq(1, Conc)],
    Errs = lists:sum([receive {done, W, E} -> E after 600000 -> error(create_timeout) end || W <- Ws]),
    Errs =:= 0 orelse error({create_errors, Errs}),
    #{us => now_us() - T0, n => N}.

create_loop(S, OnNode, Next, N, Errs) ->
    case atomics:add_get(Next, 1, 1) - 1 of
        I when I >= N -> Errs;
        I ->
            case catch gen_server:call(S, {create_process, echo, I, {node, OnNode}}, ?CALL_TIMEOUT) of
                {ok, {cluster_process, echo, I, OnNode, _, _}} -> create_loop(S, OnNode, Next, N, Errs);
                _ -> create_loop(S, OnNode, Next, N, Errs + 1)
            end
    end.

%% Polls every survivor's `{procs, echo, all}` every 5 ms until each holds N records, none on
%% Victim; the time (os:system_time) each was first complete, the last of them as end_us.
wait_failover(Survivors, N, Victim, TimeoutMs) ->
    D = deadline(TimeoutMs),
    Done = fo_poll(Survivors, N, Victim, D, #{}),
    Recs = procs(hd(Survivors)),
    Per = lists:foldl(fun(R, A) -> maps:update_with(element(4, R), fun(C) -> C + 1 end, 1, A) end,
                      #{}, Recs),
    maps:merge(
        #{end_us => lists:max(maps:values(Done))},
        maps:from_list([{list_to_atom("on_" ++ atom_to_list(K)), V} || {K, V} <- maps:to_list(Per)])).

fo_poll(Survivors, N, Victim, D, Done) ->
    Now = os:system_time(microsecond),
    Done1 = lists:foldl(fun(S, A) ->
        case maps:is_key(S, A) of
            true -> A;
            false ->
                case catch procs(S) of
                    Recs when is_list(Recs), length(Recs) =:= N ->
                        case lists:any(fun(R) -> element(4, R) =:= Victim end, Recs) of
                            false -> A#{S => Now};
                            true -> A
                        end;
                    _ -> A
                end
        end
    end, Done, Survivors),
    case map_size(Done1) =:= length(Survivors) of
        true -> Done1;
        false ->
            check(D, {failover, Done1}),
            timer:sleep(5),
            fo_poll(Survivors, N, Victim, D, Done1)
    end.

%% ---- failover, BEAM (emulated: OTP has no such feature) ----
%% N holders on the victim, each global-registered {fo, I}. A watcher on a survivor monitors
%% the victim's node; on nodedown it spawns N new holders, alternating over the survivors,
%% and registers each name again (retrying while global still holds the dead pid's name).

fo_spawn_local(N) ->
    T0 = now_us(),
    [yes = global:register_name({fo, I}, spawn(?MODULE, holder, [])) || I <- lists:seq(0, N - 1)],
    now_us() - T0.

fo_watch(Parent, Victim, Survivors, N) ->
    true = erlang:monitor_node(Victim, true),
    Parent ! {watching, self()},
    receive
        {nodedown, Victim} ->
            Down = os:system_time(microsecond),
            Surv = list_to_tuple(Survivors),
            Deadline = now_us() + 600000000,
            Retries = lists:sum([fo_register(I, element(I rem size(Surv) + 1, Surv), Deadline, 0)
                                 || I <- lists:seq(0, N - 1)]),
            Parent ! {fo_done, self(), #{down_us => Down, end_us => os:system_time(microsecond),
                                         retries => Retries}}
    after 3600000 -> ok
    end.

fo_register(I, Node, Deadline, Retries) ->
    P = spawn(Node, ?MODULE, holder, []),
    case global:register_name({fo, I}, P) of
        yes -> Retries;
        no ->
            P ! stop,
            now_us() < Deadline orelse error(fo_register_timeout),
            fo_register(I, Node, Deadline, Retries + 1)
    end.
