%% rpc against lockerd: the `locker` functions a BEAM node running the
%% locker library answers through rpc:call / erpc:call / rpc:block_call /
%% rpc:cast, run on a lockerd node with the same results, and undefined
%% functions failing like on a BEAM node.
%%
%% Three lockerd masters (W = 2). This CT node runs lkr_server as a plain
%% client (neither master nor replica), so lkr:master_dirty_read/1 from here
%% takes the rpc:call(Master, locker, dirty_read, [K]) path of the library.
-module(lockerd_rpc_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [dirty_read_by_rpc,
     master_dirty_read_from_non_master,
     writes_by_rpc_hold_quorum,
     extend_and_update_by_rpc,
     meta_summary_and_debug_state,
     cluster_calls_by_rpc,
     lag_by_rpc,
     erlang_functions,
     undefined_functions,
     bad_arguments,
     cast_runs_the_function,
     wait_for_by_rpc,
     wait_for_release_by_rpc,
     sbcast_jobs,
     set_coalesce_at_run_time].

init_per_suite(Config) ->
    case lockerd_ct:lockerd_check() of
        ok ->
            lockerd_ct:ensure_epmd(),
            Names = [lockerd_ct:unique_name(lists:concat(["rpc", I])) || I <- [1, 2, 3]],
            Masters = lists:sort([lockerd_ct:node_name(N) || N <- Names]),
            Handles = [lockerd_ct:start_lockerd(N, #{masters => Masters, w => ?W,
                                                    log_dir => ?config(priv_dir, Config)})
                       || N <- Names],
            lockerd_ct:start_local_server(?W, Masters, []),
            [{handles, Handles}, {masters, Masters} | Config];
        {skip, _} = Skip ->
            Skip
    end.

end_per_suite(Config) ->
    lockerd_ct:stop_local_server(),
    lockerd_ct:stop_all(?config(handles, Config)).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

key(Config) -> {rpc_test, ?config(tc, Config)}.
first(Config) -> hd(?config(masters, Config)).

%%--------------------------------------------------------------------

dirty_read_by_rpc(Config) ->
    K = key(Config),
    L = first(Config),
    ?assertEqual({error, not_found}, rpc:call(L, locker, dirty_read, [K])),
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, self(), 10000)),
    Me = self(),
    [?assertEqual({ok, Me}, rpc:call(M, locker, dirty_read, [K]))
     || M <- ?config(masters, Config)],
    ?assertEqual({ok, Me}, rpc:block_call(L, locker, dirty_read, [K])),
    ?assertEqual({ok, Me}, erpc:call(L, locker, dirty_read, [K])),
    %% Keys compare by term equality whatever the encoding.
    Big = 1 bsl 40,
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock({K, Big, "str", #{a => 1, b => 2}}, v, 10000)),
    ?assertEqual({ok, v}, rpc:call(L, locker, dirty_read, [{K, Big, "str", #{b => 2, a => 1}}])),
    ?assertEqual({error, not_found}, rpc:call(L, locker, dirty_read, [{K, Big, <<"str">>, #{}}])).

%% All masters are lockerd and this node is none of them: the library's
%% master_dirty_read goes through rpc:call(Master, locker, dirty_read, [K]).
master_dirty_read_from_non_master(Config) ->
    K = key(Config),
    [?assertEqual({error, not_found}, lkr:master_dirty_read(K)) || _ <- lists:seq(1, 6)],
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, <<"v">>, 10000)),
    %% Not a replica: the local table has nothing.
    ?assertEqual({error, not_found}, lkr:dirty_read(K)),
    [?assertEqual({ok, <<"v">>}, lkr:master_dirty_read(K)) || _ <- lists:seq(1, 6)],
    ?assertMatch({ok, ?W, 3, 3}, lkr:release(K, <<"v">>)),
    [?assertEqual({error, not_found}, lkr:master_dirty_read(K)) || _ <- lists:seq(1, 6)].

%% locker:lock/release run on a lockerd node coordinate a quorum vote over
%% the masters (itself included) and contend with BEAM coordinators.
writes_by_rpc_hold_quorum(Config) ->
    K = key(Config),
    L = first(Config),
    Me = self(),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, lock, [K, Me, 10000])),
    ?assertEqual({error, no_quorum}, lkr:lock(K, other, 10000)),
    ?assertEqual({error, no_quorum}, rpc:call(lists:last(?config(masters, Config)),
                                              locker, lock, [K, other])),
    [?assertEqual({ok, Me}, lockerd_ct:lease_on(M, K)) || M <- ?config(masters, Config)],
    ?assertEqual({error, no_quorum}, rpc:call(L, locker, release, [K, other])),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, release, [K, Me])),
    [?assertEqual(not_found, lockerd_ct:lease_on(M, K)) || M <- ?config(masters, Config)],
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, other, 10000)),
    %% lock/2 uses the library's default lease (2000 ms).
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, lock, [{K, 2}, Me])),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, lock, [{K, 4}, Me, 5000, 3000])).

extend_and_update_by_rpc(Config) ->
    K = key(Config),
    L = first(Config),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, lock, [K, a, 1500])),
    ?assertEqual(ok, rpc:call(L, locker, extend_lease, [K, a, 8000])),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, update, [K, a, b])),
    ?assertEqual({error, no_quorum}, rpc:call(L, locker, extend_lease, [K, a, 8000])),
    timer:sleep(2500),
    %% Still held (extended), with the updated value.
    [?assertEqual({ok, b}, lockerd_ct:lease_on(M, K)) || M <- ?config(masters, Config)],
    ?assertEqual(ok, rpc:call(L, locker, extend_lease, [K, b, 8000, 2000])),
    ?assertEqual({ok, ?W, 3, 3}, rpc:call(L, locker, update, [K, b, c, 2000])).

meta_summary_and_debug_state(Config) ->
    Masters = ?config(masters, Config),
    L = first(Config),
    ?assertEqual({Masters, [], ?W}, rpc:call(L, locker, get_meta, [])),
    K = key(Config),
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, v, 10000)),
    {ok, Locks, Leases, R1, R2, R3} = rpc:call(L, locker, get_debug_state, []),
    ?assertEqual([{write_locks, length(Locks)}, {leases, length(Leases)}],
                 rpc:call(L, locker, summary, [])),
    ?assertMatch([{K, v, _}], [E || {Key, _, _} = E <- Leases, Key =:= K]),
    [?assertMatch({interval, Ref} when is_reference(Ref), R) || R <- [R1, R2, R3]],
    ?assertEqual({ok, Locks, Leases, R1, R2, R3}, lockerd_ct:debug_state(L)).

%% set_w / set_nodes across a cluster, like the library: ok when every node
%% answered, else the caller crashes with {badmatch, {Replies, BadNodes}};
%% a non-integer W is a function_clause.
cluster_calls_by_rpc(Config) ->
    Masters = ?config(masters, Config),
    L = first(Config),
    Ghost = lockerd_ct:node_name(lockerd_ct:unique_name("nosuchnode")),
    {badrpc, {'EXIT', {{badmatch, {Replies, Bad}}, _}}} =
        rpc:call(L, locker, set_w, [Masters ++ [Ghost], ?W]),
    ?assertEqual(lists:sort([{M, ok} || M <- Masters]), lists:sort(Replies)),
    ?assertEqual([Ghost], Bad),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(L, locker, set_w, [Masters, "2"])),
    ?assertEqual(ok, rpc:call(L, locker, set_w, [Masters, ?W])),
    ?assertEqual(ok, rpc:call(L, locker, set_nodes, [Masters, Masters, []])),
    {badrpc, {'EXIT', {{badmatch, {Replies2, Bad2}}, _}}} =
        rpc:call(L, locker, set_nodes, [[Ghost | Masters], Masters, []]),
    ?assertEqual(lists:sort([{M, ok} || M <- Masters]), lists:sort(Replies2)),
    ?assertEqual([Ghost], Bad2),
    ?assertEqual({Masters, [], ?W}, rpc:call(lists:last(Masters), locker, get_meta, [])).

%% The lag is a float of milliseconds, and no longer than the rpc took.
lag_by_rpc(Config) ->
    T0 = erlang:monotonic_time(microsecond),
    {Ms, Result} = rpc:call(first(Config), locker, lag, []),
    Elapsed = (erlang:monotonic_time(microsecond) - T0) / 1000,
    ?assert(is_float(Ms)),
    ?assert(Ms >= 0.0 andalso Ms =< Elapsed),
    ?assertEqual({ok, ?W, 3, 3}, Result).

erlang_functions(Config) ->
    L = first(Config),
    ?assertEqual(L, rpc:call(L, erlang, node, [])),
    ?assertEqual(L, erpc:call(L, erlang, node, [])),
    Pid = rpc:call(L, erlang, whereis, [locker]),
    ?assert(is_pid(Pid) andalso node(Pid) =:= L),
    ?assertEqual(true, rpc:call(L, erlang, is_process_alive, [Pid])),
    %% lockerd's server runs from boot: start_link stands for starting it
    ?assertEqual({ok, Pid}, rpc:call(L, locker, start_link, [?W])),
    ?assertEqual(undefined, rpc:call(L, erlang, whereis, [no_such_process])),
    %% The pid answers like the registered name.
    ?assertMatch({ok, _, _, _, _, _}, gen_server:call(Pid, get_debug_state, 5000)).

undefined_functions(Config) ->
    L = first(Config),
    ?assertMatch({badrpc, {'EXIT', {undef, [{no_such_mod, f, [1, 2], _} | _]}}},
                 rpc:call(L, no_such_mod, f, [1, 2])),
    ?assertMatch({badrpc, {'EXIT', {undef, [{locker, no_such_fun, [], _} | _]}}},
                 rpc:call(L, locker, no_such_fun, [])),
    %% Right name, wrong arity is undefined too.
    ?assertMatch({badrpc, {'EXIT', {undef, [{locker, dirty_read, [a, b], _} | _]}}},
                 rpc:call(L, locker, dirty_read, [a, b])),
    ?assertMatch({badrpc, {'EXIT', {undef, _}}}, rpc:block_call(L, lists, reverse, [[1]])),
    ?assertError({exception, undef, [{no_such_mod, f, [], _} | _]},
                 erpc:call(L, no_such_mod, f, [])).

bad_arguments(Config) ->
    L = first(Config),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(L, locker, lock, [key(Config), v, not_a_length])),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(L, locker, set_w, [not_a_list, 2])),
    %% lockerd's own switches take a boolean and nothing else.
    [?assertMatch({badrpc, {'EXIT', {function_clause, _}}}, rpc:call(L, lockerd, F, [A]))
     || F <- [set_eager_push, set_release_on_exit], A <- [yes, 1, [true]]],
    %% The node is unharmed.
    ?assertEqual({error, not_found}, rpc:call(L, locker, dirty_read, [key(Config)])).

%% lockerd:set_coalesce/1 tunes --coalesce-us of a running node (500 by
%% default; lockerd:coalesce/0 reads it); the node keeps answering with it
%% on, and refuses values out of range.
set_coalesce_at_run_time(Config) ->
    L = first(Config),
    ?assertEqual(500, rpc:call(L, lockerd, coalesce, [])),
    ?assertEqual(ok, rpc:call(L, lockerd, set_coalesce, [200])),
    ?assertEqual(200, rpc:call(L, lockerd, coalesce, [])),
    K = key(Config),
    ?assertMatch({ok, _, _, _}, lkr:lock(K, v, 5000)),
    [?assertEqual({ok, v}, rpc:call(L, locker, dirty_read, [K])) || _ <- lists:seq(1, 20)],
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(L, lockerd, set_coalesce, [-1])),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(L, lockerd, set_coalesce, [fast])),
    ?assertEqual(200, rpc:call(L, lockerd, coalesce, [])),
    ?assertEqual(ok, rpc:call(L, lockerd, set_coalesce, [0])),
    ?assertEqual(0, rpc:call(L, lockerd, coalesce, [])),
    ?assertEqual(ok, rpc:call(L, lockerd, set_coalesce, [500])),
    [#{log := Log}] = [H || #{node := N} = H <- ?config(handles, Config), N =:= L],
    InLog = fun(Text) ->
                    fun() -> {ok, B} = file:read_file(Log), binary:match(B, Text) =/= nomatch end
            end,
    ?assert(lockerd_ct:wait_until(InLog(<<"coalescing enabled (200 us)">>), 5000)),
    ?assert(lockerd_ct:wait_until(InLog(<<"coalescing disabled">>), 5000)).

cast_runs_the_function(Config) ->
    K = key(Config),
    L = first(Config),
    Me = self(),
    ?assertEqual(true, rpc:cast(L, locker, lock, [K, Me, 10000])),
    ?assertEqual({ok, Me}, lockerd_ct:wait_value(
                             fun() -> rpc:call(L, locker, dirty_read, [K]) end, {ok, Me}, 5000)).

sbcast_jobs(Config) ->
    Masters = ?config(masters, Config),
    [?assertEqual({Masters, []}, rpc:sbcast(Masters, locker, Job))
     || Job <- [expire_leases, expire_locks, push_trans_log]],
    Ghost = lockerd_ct:node_name(lockerd_ct:unique_name("nosuchnode")),
    ?assertEqual({[], [first(Config)]}, rpc:sbcast([first(Config)], no_such_name, x)),
    ?assertEqual({[first(Config)], [Ghost]}, rpc:sbcast([first(Config), Ghost], locker, x)).

%% locker:wait_for/2 on lockerd: at once when held, else when written; on
%% timeout the rpc exits as the library's gen_server:call does.
wait_for_by_rpc(Config) ->
    K = key(Config),
    L = first(Config),
    ?assertEqual({badrpc, {'EXIT', {timeout, {gen_server, call,
                                              [locker, {wait_for, K, 300}, 300]}}}},
                 rpc:call(L, locker, wait_for, [K, 300])),
    %% erpc:call raises exit {exception, Reason} for an exit in the callee
    ?assertException(exit, {exception,
                            {timeout, {gen_server, call, [locker, {wait_for, K, 300}, 300]}}},
                     erpc:call(L, locker, wait_for, [K, 300])),
    Waiter = spawn_call(fun() -> rpc:call(L, locker, wait_for, [K, 10000]) end),
    timer:sleep(200),
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, <<"here">>, 10000)),
    ?assertEqual({ok, <<"here">>}, await(Waiter, 5000)),
    ?assertEqual({ok, <<"here">>}, rpc:call(L, locker, wait_for, [K, 0])).

%% locker:wait_for_release/2 on lockerd: key_not_locked when not held,
%% {ok, released} on release or expiry, the call's timeout exit otherwise.
wait_for_release_by_rpc(Config) ->
    K = key(Config),
    L = first(Config),
    ?assertEqual({error, key_not_locked}, rpc:call(L, locker, wait_for_release, [K, 1000])),
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K, v, 10000)),
    ?assertEqual({badrpc, {'EXIT', {timeout, {gen_server, call,
                                              [locker, {wait_for_release, K, 300}, 300]}}}},
                 rpc:call(L, locker, wait_for_release, [K, 300])),
    Waiter = spawn_call(fun() -> rpc:call(L, locker, wait_for_release, [K, 10000]) end),
    timer:sleep(200),
    ?assertMatch({ok, ?W, 3, 3}, lkr:release(K, v)),
    ?assertEqual({ok, released}, await(Waiter, 5000)),
    %% Expiry releases too.
    K2 = {K, 2},
    ?assertMatch({ok, ?W, 3, 3}, lkr:lock(K2, v, 1000)),
    ?assertEqual({ok, released}, rpc:call(L, locker, wait_for_release, [K2, 10000])).

spawn_call(Fun) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, catch Fun()} end),
    Ref.

await(Ref, Timeout) ->
    receive {Ref, Result} -> Result
    after Timeout -> ct:fail({no_result_within, Timeout})
    end.
