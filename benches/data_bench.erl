%% Helper for benches/data_vs_mnesia.py: compiled at run time into the bench's temp dir and
%% loaded on the client node (the "driver") and on the three mnesia nodes.
%%
%% The driver reads one Erlang term a line on stdin, runs it and prints one line on stdout:
%% `RESULT k=v k=v ...` (v an integer, a float, an atom, or integers joined by commas) or
%% `ERROR ...`. Every wait here has a bound.
-module(data_bench).
-export([driver/0]).
%% Run on the mnesia nodes through erpc.
-export([m_put/2, tput_mnesia_local/4, m_start_proxy/0, m_start_sub/1]).

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

run({connect, Nodes}) ->
    Bad = [N || N <- Nodes, net_adm:ping(N) =/= pong],
    Bad =:= [] orelse error({not_reachable, Bad}),
    #{nodes => length(Nodes)};
run(versions) ->
    application:load(mnesia),
    {ok, Vsn} = application:get_key(mnesia, vsn),
    #{otp => list_to_integer(erlang:system_info(otp_release)), mnesia => list_to_atom(Vsn)};
run({status, Node}) ->
    {ok, S} = gen_server:call({data, Node}, status, ?CALL_TIMEOUT),
    maps:filter(fun(_, V) -> is_integer(V) orelse is_atom(V) end, S);
run({mnesia_setup, Nodes}) -> mnesia_setup(Nodes);
run({tput_ours, Run, DC, Procs, Ms, Size}) ->
    Val = rand:bytes(Size),
    D = {data, DC},
    tput(Procs, Ms, fun(I, N) ->
        {ok, _} = gen_server:call(D, {put, <<"tput">>, <<Run:16, I:16, N:32>>, Val}, ?CALL_TIMEOUT),
        ok
    end);
run({tput_mnesia_remote, Run, MN, Procs, Ms, Size}) ->
    Val = rand:bytes(Size),
    tput(Procs, Ms, fun(I, N) ->
        ok = erpc:call(MN, ?MODULE, m_put, [<<Run:16, I:16, N:32>>, Val], ?CALL_TIMEOUT)
    end);
run({tput_mnesia_local, Run, MN, Procs, Ms, Size}) ->
    erpc:call(MN, ?MODULE, tput_mnesia_local, [Run, Procs, Ms, Size], Ms + 120000);
run({fill, DC, Bucket, Count, Size, Procs}) -> fill(DC, Bucket, Count, Size, Procs);
run({lag_ours, DC, Replicas, N, GapMs}) -> lag_ours(DC, Replicas, N, GapMs);
run({lag_mnesia, MN, Replicas, N, GapMs}) -> lag_mnesia(MN, Replicas, N, GapMs);
run({catchup, DS, DC, TimeoutMs}) -> catchup(DS, DC, TimeoutMs).

%% ---- throughput: Procs processes, each doing Op one after the other until the deadline ----

tput(Procs, Ms, Op) ->
    Parent = self(),
    Pids = [spawn(fun() ->
                receive {go, Deadline} -> Parent ! {done, self(), tloop(Op, I, 0, 0, Deadline)} end
            end) || I <- lists:seq(1, Procs)],
    T0 = erlang:monotonic_time(microsecond),
    [P ! {go, T0 + Ms * 1000} || P <- Pids],
    Res = [receive {done, P, R} -> R after Ms + 60000 -> error(client_timeout) end || P <- Pids],
    T1 = erlang:monotonic_time(microsecond),
    #{ops => lists:sum([O || {O, _} <- Res]), errors => lists:sum([E || {_, E} <- Res]),
      us => T1 - T0}.

tloop(Op, I, N, E, Deadline) ->
    case erlang:monotonic_time(microsecond) < Deadline of
        false -> {N, E};
        true ->
            case catch Op(I, N) of
                ok -> tloop(Op, I, N + 1, E, Deadline);
                _ -> tloop(Op, I, N, E + 1, Deadline)
            end
    end.

m_put(K, V) ->
    {atomic, ok} = mnesia:sync_transaction(fun() -> mnesia:write({bench, K, V}) end),
    ok.

tput_mnesia_local(Run, Procs, Ms, Size) ->
    Val = rand:bytes(Size),
    tput(Procs, Ms, fun(I, N) -> m_put(<<Run:16, I:16, N:32>>, Val) end).

%% ---- a fixed number of puts, Procs at a time ----

fill(DC, Bucket, Count, Size, Procs) ->
    Val = rand:bytes(Size),
    D = {data, DC},
    Parent = self(),
    Next = atomics:new(1, []),
    Pids = [spawn(fun() -> Parent ! {done, self(), fill_loop(D, Bucket, Val, Next, Count, 0)} end)
            || _ <- lists:seq(1, Procs)],
    T0 = erlang:monotonic_time(microsecond),
    Errs = lists:sum([receive {done, P, E} -> E after 1800000 -> error(fill_timeout) end || P <- Pids]),
    T1 = erlang:monotonic_time(microsecond),
    Errs =:= 0 orelse error({put_errors, Errs}),
    {ok, #{version := Head}} = gen_server:call(D, status, ?CALL_TIMEOUT),
    #{us => T1 - T0, puts => Count, bytes => Count * Size, head => Head}.

fill_loop(D, Bucket, Val, Next, Count, Errs) ->
    case atomics:add_get(Next, 1, 1) of
        N when N > Count -> Errs;
        N ->
            case catch gen_server:call(D, {put, Bucket, <<N:32>>, Val}, 60000) of
                {ok, _} -> fill_loop(D, Bucket, Val, Next, Count, Errs);
                _ -> fill_loop(D, Bucket, Val, Next, Count, Errs + 1)
            end
    end.

%% ---- replica lag, ours ----
%% Per sample: for each replica, an observer process on this node sends
%% `{get, <<"lag">>, K, V}` (V = the version the next put will get) as a raw gen_server call and
%% then a `status` call; the status reply proves the get is queued on the replica before the
%% put exists. Then the put; T0 = when its ack arrives here, T1 = when the replica's answer to
%% the get arrives here (it answers once it has applied V). Both stamped on this node.

lag_ours(DC, Replicas, N, GapMs) ->
    Val = rand:bytes(100),
    {ok, #{version := V0}} = gen_server:call({data, DC}, status, ?CALL_TIMEOUT),
    lag_ours(DC, Replicas, Val, 1, N, GapMs, V0, #{ack => []}, 0).

lag_ours(_DC, _Rs, _Val, I, N, _Gap, _V, Acc, Skipped) when I > N ->
    maps:from_list([{skipped, Skipped} |
                    [{case R of ack -> ack; _ -> list_to_atom("lag_" ++ atom_to_list(R)) end,
                      lists:reverse(L)} || {R, L} <- maps:to_list(Acc)]]);
lag_ours(DC, Rs, Val, I, N, Gap, V, Acc, Skipped) ->
    Want = V + 1,
    K = <<"lag", I:32>>,
    Self = self(),
    Obs = [{R, spawn(fun() -> observe(Self, R, K, Want) end)} || R <- Rs],
    [receive {armed, P} -> ok after 10000 -> error({arm_timeout, R}) end || {R, P} <- Obs],
    TS = os:system_time(microsecond),
    {ok, Got} = gen_server:call({data, DC}, {put, <<"lag">>, K, Val}, ?CALL_TIMEOUT),
    T0 = os:system_time(microsecond),
    Seen = [{R, receive {seen, P, T1, Reply} -> {T1, Reply} after 10000 -> {none, timeout} end}
            || {R, P} <- Obs],
    timer:sleep(Gap),
    case Got =:= Want andalso lists:all(fun({_, {_, Rp}}) -> Rp =:= {ok, Val, Want} end, Seen) of
        true ->
            Acc1 = lists:foldl(fun({R, {T1, _}}, A) ->
                                   maps:update_with(R, fun(L) -> [T1 - T0 | L] end, [T1 - T0], A)
                               end, Acc#{ack := [T0 - TS | maps:get(ack, Acc)]}, Seen),
            lag_ours(DC, Rs, Val, I + 1, N, Gap, Got, Acc1, Skipped);
        false ->
            %% Someone else wrote in between, or a reply was not the value: not a sample.
            io:format(standard_error, "lag sample ~p skipped: put ~p, want ~p, seen ~0p~n",
                      [I, Got, Want, Seen]),
            lag_ours(DC, Rs, Val, I + 1, N, Gap, max(Got, V), Acc, Skipped + 1)
    end.

observe(Parent, R, K, Want) ->
    Ref = make_ref(),
    {data, R} ! {'$gen_call', {self(), Ref}, {get, <<"lag">>, K, Want}},
    {ok, _} = gen_server:call({data, R}, status, ?CALL_TIMEOUT),
    Parent ! {armed, self()},
    receive
        {Ref, Reply} -> Parent ! {seen, self(), os:system_time(microsecond), Reply}
    after 8000 -> Parent ! {seen, self(), none, timeout}
    end.

%% ---- replica lag, mnesia ----
%% A proxy on the writer does `mnesia:dirty_write` and stamps T0 on the writer when it returns;
%% a subscriber on each replica (mnesia:subscribe({table, lag, simple})) stamps T1 there when
%% the write event arrives (mnesia reports it after the record is in the replica's table).
%% Both also travel to this node, where they are stamped again on arrival: the same path as
%% ours (the ack to the client node, the replica's word to the client node).

m_start_proxy() ->
    Pid = spawn(fun Proxy() ->
        receive
            {write, From, K, V} ->
                ok = mnesia:dirty_write({lag, K, V}),
                From ! {written, K, os:system_time(microsecond)},
                Proxy();
            stop -> ok
        end
    end),
    register(lag_proxy, Pid),
    ok.

m_start_sub(Collector) ->
    Parent = self(),
    Pid = spawn(fun() ->
        {ok, _} = mnesia:subscribe({table, lag, simple}),
        Parent ! {subscribed, self()},
        sub_loop(Collector)
    end),
    receive {subscribed, Pid} -> ok after 10000 -> error(subscribe_timeout) end.

sub_loop(Collector) ->
    receive
        {mnesia_table_event, {write, {lag, K, _}, _}} ->
            Collector ! {seen, node(), K, os:system_time(microsecond)},
            sub_loop(Collector);
        stop -> mnesia:unsubscribe({table, lag, simple});
        _ -> sub_loop(Collector)
    end.

lag_mnesia(MN, Replicas, N, GapMs) ->
    Self = self(),
    Collectors = [{R, spawn(fun() -> collect(Self) end)} || R <- Replicas],
    ok = erpc:call(MN, ?MODULE, m_start_proxy, [], ?CALL_TIMEOUT),
    [ok = erpc:call(R, ?MODULE, m_start_sub, [C], ?CALL_TIMEOUT) || {R, C} <- Collectors],
    Val = rand:bytes(100),
    Samples = [lag_mnesia_one(MN, Replicas, Val, I, GapMs) || I <- lists:seq(1, N)],
    {lag_proxy, MN} ! stop,
    [exit(C, kill) || {_, C} <- Collectors],
    maps:from_list(lists:append(
        [[{ack, [A || S <- Samples, {ack, A, _} <- S]}] |
         [[{list_to_atom("local_" ++ atom_to_list(R)), [L || S <- Samples, {R1, L, _} <- S, R1 =:= R]},
          {list_to_atom("here_" ++ atom_to_list(R)), [H || S <- Samples, {R1, _, H} <- S, R1 =:= R]}]
          || R <- Replicas]])).

collect(Main) ->
    receive
        {seen, Node, K, T1} -> Main ! {seen, Node, K, T1, os:system_time(microsecond)}, collect(Main)
    end.

lag_mnesia_one(MN, Replicas, Val, I, GapMs) ->
    K = <<"lag", I:32>>,
    TS = os:system_time(microsecond),
    {lag_proxy, MN} ! {write, self(), K, Val},
    {T0L, T0H} = receive {written, K, T} -> {T, os:system_time(microsecond)}
                 after 10000 -> error(write_timeout) end,
    S = [receive {seen, R, K, T1L, T1H} -> {R, T1L - T0L, T1H - T0H}
         after 10000 -> error({event_timeout, R}) end || R <- Replicas],
    timer:sleep(GapMs),
    [{ack, T0H - TS, 0} | S].

mnesia_setup(Nodes) ->
    [pong = net_adm:ping(N) || N <- Nodes],
    ok = erpc:call(hd(Nodes), mnesia, create_schema, [Nodes], 60000),
    [ok = erpc:call(N, mnesia, start, [], 60000) || N <- Nodes],
    Opts = [{disc_copies, Nodes}, {attributes, [k, v]}],
    {atomic, ok} = erpc:call(hd(Nodes), mnesia, create_table, [bench, Opts], 60000),
    {atomic, ok} = erpc:call(hd(Nodes), mnesia, create_table, [lag, Opts], 60000),
    [ok = erpc:call(N, mnesia, wait_for_tables, [[bench, lag], 30000], 60000) || N <- Nodes],
    #{nodes => length(Nodes)}.

%% ---- a replica catching up ----
%% Polls DS's status every 5 ms (a node not up yet counts as no answer) until it follows with
%% version == DC's head. Times are os:system_time(microsecond), for the script to subtract its
%% own start time from.

catchup(DS, DC, TimeoutMs) ->
    {ok, #{version := Head}} = gen_server:call({data, DC}, status, ?CALL_TIMEOUT),
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    poll(DS, Head, Deadline, #{head => Head, first_answer_us => 0, first_snapshot_us => 0}).

poll(DS, Head, Deadline, Acc) ->
    erlang:monotonic_time(millisecond) < Deadline orelse error({catchup_timeout, Acc}),
    case catch gen_server:call({data, DS}, status, 2000) of
        {ok, #{phase := following, version := Head, lag_versions := 0} = S} ->
            Now = os:system_time(microsecond),
            Acc1 = first(first_answer_us, Now, Acc),
            maps:merge(Acc1, #{end_us => Now, snapshots => maps:get(snapshots, S),
                               resumes => maps:get(resumes, S), resyncs => maps:get(resyncs, S),
                               version => Head});
        {ok, #{phase := Phase}} ->
            Now = os:system_time(microsecond),
            Acc1 = first(first_answer_us, Now, Acc),
            Acc2 = case Phase of snapshot -> first(first_snapshot_us, Now, Acc1); _ -> Acc1 end,
            timer:sleep(5),
            poll(DS, Head, Deadline, Acc2);
        _ ->
            timer:sleep(5),
            poll(DS, Head, Deadline, Acc)
    end.

first(K, Now, Acc) ->
    case maps:get(K, Acc) of 0 -> Acc#{K := Now}; _ -> Acc end.
