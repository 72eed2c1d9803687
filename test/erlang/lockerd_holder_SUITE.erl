%% Release on holder exit (--release-on-exit): three lockerd masters (W = 2)
%% and two BEAM app nodes that are their replicas, as in an Elixir cluster
%% using a Locker.Registry-style :via registry. App node A registers a name
%% the way register_name/2 does (lock(Name, Pid, 30000)); app node B looks
%% it up in its local table, as whereis_name/1 does.
%%
%% Group on: the masters run --release-on-exit. Group off: the control,
%% default options (the name outlives its process for the whole lease).
-module(lockerd_holder_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).
-define(LEASE, 30000).

suite() ->
    [{timetrap, {seconds, 90}}].

all() ->
    [{group, on}, {group, off}].

groups() ->
    [{on, [], [killed_holder_released,
               holder_exit_wakes_release_waiters,
               disconnected_holder_keeps_lease,
               extend_by_same_holder_keeps_watch,
               switched_off_at_run_time]},
     {off, [], [killed_holder_kept]}].

init_per_suite(Config) ->
    case lockerd_ct:lockerd_check() of
        ok -> lockerd_ct:ensure_epmd(), Config;
        {skip, _} = Skip -> Skip
    end.

end_per_suite(_Config) ->
    ok.

init_per_group(Group, Config) ->
    Tag = atom_to_list(Group),
    MNames = [lockerd_ct:unique_name("hold" ++ Tag ++ integer_to_list(I)) || I <- [1, 2, 3]],
    [AName, BName] = [lockerd_ct:unique_name("app" ++ Tag ++ X) || X <- ["a", "b"]],
    Masters = lists:sort([lockerd_ct:node_name(N) || N <- MNames]),
    Apps = [lockerd_ct:node_name(N) || N <- [AName, BName]],
    Extra = case Group of on -> ["--release-on-exit"]; off -> [] end,
    Ls = [lockerd_ct:start_lockerd(N, #{masters => Masters, replicas => Apps, w => ?W,
                                        log_dir => ?config(priv_dir, Config),
                                        extra_args => Extra})
          || N <- MNames],
    [A, B] = [lockerd_ct:start_beam_node(N, {?W, Masters, Apps}, #{}) || N <- [AName, BName]],
    [{masters, Masters}, {handles, Ls ++ [A, B]}, {a, maps:get(node, A)},
     {b, maps:get(node, B)} | Config].

end_per_group(_Group, Config) ->
    lockerd_ct:stop_all(?config(handles, Config)).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% helpers

name(Config) ->
    {?config(tc, Config), erlang:unique_integer([positive])}.

%% A process on app node A that takes Name as register_name/2 does and
%% then just lives; returns its pid once registered.
register_on_a(Config, Name) ->
    A = ?config(a, Config),
    Parent = self(),
    Pid = erpc:call(A, erlang, spawn,
                    [fun() ->
                             Res = lkr:lock(Name, self(), ?LEASE),
                             Parent ! {registered, self(), Res},
                             receive stop -> ok end
                     end]),
    receive
        {registered, Pid, Res} -> ?assertMatch({ok, ?W, 3, 3}, Res)
    after 10000 -> ct:fail(register_timeout)
    end,
    Pid.

lookup(Node, Name) ->
    case erpc:call(Node, lkr, dirty_read, [Name]) of
        {ok, Pid} when is_pid(Pid) -> Pid;
        {error, not_found} -> undefined
    end.

master_reads(Config, Name) ->
    [rpc:call(M, locker, dirty_read, [Name]) || M <- ?config(masters, Config)].

%% Poll B's local lookup until it says undefined; ms taken, or timeout.
until_undefined(Node, Name, T0, Limit) ->
    case lookup(Node, Name) of
        undefined -> erlang:monotonic_time(millisecond) - T0;
        _ ->
            case erlang:monotonic_time(millisecond) - T0 > Limit of
                true -> timeout;
                false -> timer:sleep(5), until_undefined(Node, Name, T0, Limit)
            end
    end.

wait_visible(Node, Name, Pid) ->
    wait_visible(Node, Name, Pid, 100).
wait_visible(_Node, Name, _Pid, 0) ->
    ct:fail({not_replicated, Name});
wait_visible(Node, Name, Pid, N) ->
    case lookup(Node, Name) of
        Pid -> ok;
        _ -> timer:sleep(20), wait_visible(Node, Name, Pid, N - 1)
    end.

%%--------------------------------------------------------------------
%% cases

%% The registered process is killed: the name is gone on every master and
%% in B's local table within 200 ms.
killed_holder_released(Config) ->
    Name = name(Config),
    B = ?config(b, Config),
    Pid = register_on_a(Config, Name),
    wait_visible(B, Name, Pid),
    T0 = erlang:monotonic_time(millisecond),
    exit(Pid, kill),
    Ms = until_undefined(B, Name, T0, 5000),
    ct:log("B's lookup undefined ~p ms after the kill", [Ms]),
    ?assert(is_integer(Ms) andalso Ms =< 200),
    ?assertEqual([{error, not_found} || _ <- [1, 2, 3]], master_reads(Config, Name)),
    %% and the name is free for the next holder
    Pid2 = register_on_a(Config, Name),
    wait_visible(B, Name, Pid2),
    exit(Pid2, kill).

%% A release waiter on a master learns of the holder's exit like of a
%% release.
holder_exit_wakes_release_waiters(Config) ->
    Name = name(Config),
    [M | _] = ?config(masters, Config),
    Pid = register_on_a(Config, Name),
    Self = self(),
    spawn(fun() ->
                  Self ! {waited, catch gen_server:call({locker, M},
                                                        {wait_for_release, Name, 10000}, 12000)}
          end),
    timer:sleep(200),
    exit(Pid, kill),
    receive {waited, R} -> ?assertEqual({ok, released}, R)
    after 5000 -> ct:fail(release_waiter_not_woken)
    end.

%% A holder that is alive but cut off from one master (its connection to
%% that master dropped: noconnection) keeps its lease on every master.
disconnected_holder_keeps_lease(Config) ->
    Name = name(Config),
    A = ?config(a, Config),
    [M1 | _] = ?config(masters, Config),
    Pid = register_on_a(Config, Name),
    ?assertEqual(true, erpc:call(A, erlang, disconnect_node, [M1])),
    timer:sleep(1000),
    ?assertEqual([{ok, Pid} || _ <- [1, 2, 3]], master_reads(Config, Name)),
    ?assert(erpc:call(A, erlang, is_process_alive, [Pid])),
    %% it really exited now: once the link is back, that master learns it
    %% too (its monitor is set again and answered noproc)
    exit(Pid, kill),
    timer:sleep(200),
    pong = erpc:call(A, net_adm, ping, [M1]),
    Wait = fun W(0) -> master_reads(Config, Name);
               W(N) -> case master_reads(Config, Name) of
                           [{error, not_found}, {error, not_found}, {error, not_found}] = R -> R;
                           _ -> timer:sleep(50), W(N - 1)
                       end
           end,
    ?assertEqual([{error, not_found} || _ <- [1, 2, 3]], Wait(100)).

%% Extending by the same holder keeps the watch: its exit still releases.
extend_by_same_holder_keeps_watch(Config) ->
    Name = name(Config),
    B = ?config(b, Config),
    Pid = register_on_a(Config, Name),
    ?assertEqual(ok, erpc:call(?config(a, Config), lkr, extend_lease, [Name, Pid, ?LEASE])),
    wait_visible(B, Name, Pid),
    exit(Pid, kill),
    ?assert(is_integer(until_undefined(B, Name, erlang:monotonic_time(millisecond), 2000))).

%% lockerd:set_release_on_exit(false) by rpc on every master: the name
%% then outlives its process.
switched_off_at_run_time(Config) ->
    Ms = ?config(masters, Config),
    [?assertEqual(ok, rpc:call(M, lockerd, set_release_on_exit, [false])) || M <- Ms],
    try
        Name = name(Config),
        Pid = register_on_a(Config, Name),
        exit(Pid, kill),
        timer:sleep(1000),
        ?assertEqual([{ok, Pid} || _ <- Ms], master_reads(Config, Name)),
        %% switched on again, the pids already holding are watched too
        [?assertEqual(ok, rpc:call(M, lockerd, set_release_on_exit, [true])) || M <- Ms],
        timer:sleep(300),
        ?assertEqual([{error, not_found} || _ <- Ms], master_reads(Config, Name))
    after
        [rpc:call(M, lockerd, set_release_on_exit, [true]) || M <- Ms]
    end.

%% Control (option off): the name still points at the dead pid after 5 s.
killed_holder_kept(Config) ->
    Name = name(Config),
    B = ?config(b, Config),
    Pid = register_on_a(Config, Name),
    wait_visible(B, Name, Pid),
    exit(Pid, kill),
    timer:sleep(5000),
    ?assertEqual(Pid, lookup(B, Name)),
    ?assertEqual([{ok, Pid} || _ <- [1, 2, 3]], master_reads(Config, Name)).
