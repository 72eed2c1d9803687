%% The coordinator algorithm of docs/protocol.md section 5 (module lkr)
%% against three masters with W = 2: all lockerd, mixed lockerd/BEAM, and
%% all BEAM (lkr_server, the library's model). Every expectation is the same
%% for all groups.
%%
%% The CT node and one BEAM client peer run lkr_server as replicas, so that
%% local reads (dirty_read, wait_for, wait_for_release) see the masters'
%% transaction logs.
-module(lockerd_coord_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).

suite() ->
    [{timetrap, {seconds, 90}}].

all() ->
    [{group, all_lockerd},
     {group, mixed_2beam_1lockerd},
     {group, mixed_1beam_2lockerd},
     {group, all_beam}].

groups() ->
    Cases = [meta_and_admin,
             lock_update_extend_release,
             failed_votes_leave_no_lock,
             master_dirty_read,
             replicas_follow,
             extend_lease_catches_up,
             contention,
             lease_expiry,
             wait_for,
             wait_for_release,
             lag_and_summary,
             %% destructive: must stay last
             no_quorum_after_crash],
    [{G, [], Cases} || G <- [all_lockerd, mixed_2beam_1lockerd, mixed_1beam_2lockerd, all_beam]].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(Group, Config) ->
    Kinds = kinds(Group),
    Check = case lists:member(lockerd, Kinds) of
                true -> lockerd_ct:lockerd_check();
                false -> ok
            end,
    case Check of
        ok -> start_cluster(Group, Kinds, Config);
        {skip, _} = Skip -> Skip
    end.

%% Master kinds in start order; no_quorum_after_crash crashes the last two.
kinds(all_lockerd) -> [lockerd, lockerd, lockerd];
kinds(mixed_2beam_1lockerd) -> [beam, beam, lockerd];
kinds(mixed_1beam_2lockerd) -> [beam, lockerd, lockerd];
kinds(all_beam) -> [beam, beam, beam].

start_cluster(Group, Kinds, Config) ->
    Tag = short(Group),
    Specs = [{K, lockerd_ct:unique_name(lists:concat(["m", I, "_", Tag]))}
             || {I, K} <- lists:zip(lists:seq(1, length(Kinds)), Kinds)],
    Masters = lists:sort([lockerd_ct:node_name(N) || {_, N} <- Specs]),
    ClientName = lockerd_ct:unique_name("client_" ++ Tag),
    Client = lockerd_ct:node_name(ClientName),
    Replicas = lists:sort([node(), Client]),
    Meta = {?W, Masters, Replicas},
    Handles = lockerd_ct:start_nodes(Specs, Meta,
                                     #{log_dir => ?config(priv_dir, Config),
                                       lockerd_opts => #{push_interval => 100}}),
    ClientH = lockerd_ct:start_beam_node(ClientName, Meta, #{}),
    lockerd_ct:start_local_server(?W, Masters, Replicas),
    [{group, Group}, {handles, Handles}, {client, Client}, {client_handle, ClientH},
     {masters, Masters}, {replicas, Replicas} | Config].

end_per_group(_Group, Config) ->
    lockerd_ct:stop_local_server(),
    lockerd_ct:stop_all([?config(client_handle, Config) | ?config(handles, Config)]).

short(all_lockerd) -> "L";
short(all_beam) -> "B";
short(mixed_2beam_1lockerd) -> "BBL";
short(mixed_1beam_2lockerd) -> "BLL".

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Helpers

key(Config) ->
    key(Config, 0).

key(Config, N) ->
    {coord_test, ?config(group, Config), ?config(tc, Config), N}.

masters(Config) ->
    ?config(masters, Config).

%% Value of Key on every master, in master order.
on_masters(Config, Key) ->
    [lockerd_ct:lease_on(M, Key) || M <- masters(Config)].

all_masters(Config, Result) ->
    [Result || _ <- masters(Config)].

locks_on_masters(Config, Key) ->
    lists:append([[T || {K, T, _} <- lockerd_ct:write_locks(M), K =:= Key] || M <- masters(Config)]).

client_call(Config, F, A) ->
    erpc:call(?config(client, Config), locker, F, A, 15000).

spawn_await(Fun) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, catch Fun()} end),
    Ref.

await(Ref, Timeout) ->
    receive
        {Ref, Result} -> Result
    after Timeout ->
            ct:fail({no_result_within, Timeout})
    end.

%% Both replicas (this node and the client peer) read Expected.
wait_replicas(Config, Key, Expected) ->
    Client = ?config(client, Config),
    ?assertEqual(Expected, wait_local(Key, Expected)),
    ?assertEqual(Expected, lockerd_ct:wait_value(
                             fun() -> erpc:call(Client, lkr, dirty_read, [Key]) end,
                             Expected, 5000)).

wait_local(Key, Expected) ->
    lockerd_ct:wait_value(fun() -> lkr:dirty_read(Key) end, Expected, 5000).

%%--------------------------------------------------------------------
%% Cases

meta_and_admin(Config) ->
    Masters = masters(Config),
    Replicas = ?config(replicas, Config),
    ?assertEqual({Masters, Replicas, ?W}, lkr:get_meta()),
    ?assertEqual({Masters, Replicas, ?W}, client_call(Config, get_meta, [])),
    ?assertEqual(ok, lkr:set_w(Masters, ?W)),
    ?assertEqual(ok, lkr:set_nodes(Masters, lists:reverse(Masters) ++ Masters, Replicas)),
    ?assertEqual({Masters, Replicas, ?W}, lkr:get_meta()),
    [?assertEqual({Masters, Replicas, ?W}, rpc:call(M, locker, get_meta, [])) || M <- Masters],
    %% a node that does not answer: the caller crashes with
    %% {badmatch, {Replies, BadNodes}}, the others took the change
    Gone = 'coord_no_such_node@nohost',
    ?assertMatch({'EXIT', {{badmatch, {_, [Gone]}}, _}},
                 catch lkr:set_w(Masters ++ [Gone], ?W)),
    {'EXIT', {{badmatch, {WReplies, _}}, _}} = (catch lkr:set_w([Gone | Masters], ?W)),
    ?assertEqual([{M, ok} || M <- Masters], lists:sort(WReplies)),
    ?assertMatch({'EXIT', {function_clause, _}}, catch lkr:set_w(Masters, two)),
    {'EXIT', {{badmatch, {NReplies, [Gone]}}, _}} =
        (catch lkr:set_nodes([Gone | Masters], Masters, Replicas)),
    ?assertEqual([{M, ok} || M <- Masters], lists:sort(NReplies)),
    [?assertEqual({Masters, Replicas, ?W}, rpc:call(M, locker, get_meta, [])) || M <- Masters],
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, still_works, 10000)).

lock_update_extend_release(Config) ->
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, v1, 10000)),
    ?assertEqual(all_masters(Config, {ok, v1}), on_masters(Config, K)),
    ?assertEqual({error, no_quorum}, lkr:lock(K, intruder, 10000)),
    ?assertEqual({ok, ?W, 3, 3}, lkr:update(K, v1, v2)),
    ?assertEqual(all_masters(Config, {ok, v2}), on_masters(Config, K)),
    ?assertEqual({error, no_quorum}, lkr:update(K, v1, v3)),
    ?assertEqual(ok, lkr:extend_lease(K, v2, 20000)),
    ?assertEqual({error, no_quorum}, lkr:extend_lease(K, v1, 20000)),
    ?assertEqual({error, no_quorum}, lkr:release(K, v1)),
    ?assertEqual(all_masters(Config, {ok, v2}), on_masters(Config, K)),
    %% once the replicas hold the key, masters + 2 replicas answer the release
    wait_replicas(Config, K, {ok, v2}),
    %% 5, or 4 when a master's interval push (every 100 ms, BEAM or
    %% lockerd) delivers {release, K} to a replica ahead of the direct
    %% release: that replica then answers not_found, as with the library
    {ok, ?W, 3, Oks} = lkr:release(K, v2),
    ?assert(Oks =:= 5 orelse Oks =:= 4),
    ?assertEqual(all_masters(Config, not_found), on_masters(Config, K)),
    %% the replica dropped the key on the release itself; entries pushed
    %% before it (the extend_lease) may bring it back until the release's
    %% own push arrives
    ?assertEqual({error, key_not_locked},
                 lockerd_ct:wait_value(fun() -> lkr:wait_for_release(K, 100) end,
                                       {error, key_not_locked}, 5000)),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, v4, 10000)),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K, v4)).

%% A failed write releases its write locks at once.
failed_votes_leave_no_lock(Config) ->
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, held, 10000)),
    ?assertEqual({error, no_quorum}, lkr:lock(K, other, 10000)),
    ?assertEqual({error, no_quorum}, lkr:update(K, wrong, x)),
    ?assertEqual({error, no_quorum}, lkr:extend_lease(K, wrong, 10000)),
    ?assertEqual({error, no_quorum}, lkr:release(K, wrong)),
    ?assertEqual([], locks_on_masters(Config, K)),
    ?assertEqual(ok, lkr:extend_lease(K, held, 10000)),
    ?assertEqual([], locks_on_masters(Config, K)).

master_dirty_read(Config) ->
    K = key(Config),
    ModFun = lockerd_ct:dirty_read_module(?config(handles, Config)),
    [?assertEqual({error, not_found}, lkr:master_dirty_read(K, ModFun)) || _ <- lists:seq(1, 6)],
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, <<"read me">>, 10000)),
    [?assertEqual({ok, <<"read me">>}, lkr:master_dirty_read(K, ModFun)) || _ <- lists:seq(1, 10)],
    [?assertEqual({ok, <<"read me">>}, rpc:call(M, ModFun(M), dirty_read, [K]))
     || M <- masters(Config)].

replicas_follow(Config) ->
    K = key(Config),
    Client = ?config(client, Config),
    ClientRead = fun() -> erpc:call(Client, lkr, dirty_read, [K]) end,
    ?assertEqual({ok, ?W, 3, 3}, client_call(Config, lock, [K, {from, client}, 10000])),
    ?assertEqual({ok, {from, client}}, wait_local(K, {ok, {from, client}})),
    ?assertEqual({ok, {from, client}}, lockerd_ct:wait_value(ClientRead, {ok, {from, client}}, 5000)),
    ?assertEqual({ok, ?W, 3, 3}, lkr:update(K, {from, client}, {updated, here})),
    ?assertEqual({ok, {updated, here}}, wait_local(K, {ok, {updated, here}})),
    ?assertEqual({ok, {updated, here}},
                 lockerd_ct:wait_value(ClientRead, {ok, {updated, here}}, 5000)),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K, {updated, here})),
    ?assertEqual({error, not_found}, wait_local(K, {error, not_found})),
    ?assertEqual({error, not_found}, lockerd_ct:wait_value(ClientRead, {error, not_found}, 5000)).

%% A master that missed a write gets the key back through extend_lease.
extend_lease_catches_up(Config) ->
    K = key(Config),
    [M1, M2, _M3] = masters(Config),
    [?assertEqual(ok, gen_server:call({locker, M}, {write, make_ref(), K, lagging, 10000}))
     || M <- [M1, M2]],
    ?assertEqual([{ok, lagging}, {ok, lagging}, not_found], on_masters(Config, K)),
    ?assertEqual(ok, lkr:extend_lease(K, lagging, 10000)),
    ?assertEqual(all_masters(Config, {ok, lagging}), on_masters(Config, K)),
    ?assertEqual([], locks_on_masters(Config, K)),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K, lagging)).

%% Two client nodes, several processes each, racing for the same keys: at
%% most one wins each key, and the masters agree on the winner.
contention(Config) ->
    Client = ?config(client, Config),
    Rounds = 8,
    PerNode = 5,
    Outcomes =
        [begin
             K = key(Config, Round),
             Parent = self(),
             Go = make_ref(),
             Contenders =
                 [{Where, I} || Where <- [local, remote], I <- lists:seq(1, PerNode)],
             Pids = [spawn(fun() ->
                                   Value = {contender, Where, I},
                                   receive Go -> ok end,
                                   Res = case Where of
                                             local -> catch lkr:lock(K, Value, 20000, 5000);
                                             remote -> catch erpc:call(Client, lkr, lock,
                                                                       [K, Value, 20000, 5000])
                                         end,
                                   Parent ! {Go, Value, Res}
                           end) || {Where, I} <- Contenders],
             [P ! Go || P <- Pids],
             Results = [receive {Go, V, R} -> {V, R} after 15000 -> ct:fail(contender_hung) end
                        || _ <- Pids],
             [?assert(R =:= {error, no_quorum} orelse element(1, R) =:= ok)
              || {_, R} <- Results],
             Winners = [V || {V, {ok, _, _, _}} <- Results],
             ct:log("round ~p: winners ~p", [Round, Winners]),
             ?assert(length(Winners) =< 1),
             Held = [L || {ok, _} = L <- on_masters(Config, K)],
             case Winners of
                 [Winner] ->
                     ?assert(length([x || {ok, V} <- Held, V =:= Winner]) >= ?W),
                     ?assertEqual([], [V || {ok, V} <- Held, V =/= Winner]);
                 [] ->
                     ?assertEqual([], Held),
                     ?assertEqual([], locks_on_masters(Config, K)),
                     ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, after_race, 20000))
             end,
             ?assertEqual([], locks_on_masters(Config, K)),
             length(Winners)
         end || Round <- lists:seq(1, Rounds)],
    ct:log("keys won in a race: ~p of ~p", [lists:sum(Outcomes), Rounds]).

lease_expiry(Config) ->
    K = key(Config),
    Masters = masters(Config),
    Len = 3000,
    Start = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, short_lived, Len)),
    ?assertEqual({ok, short_lived}, wait_local(K, {ok, short_lived})),
    sleep_until(Start + Len div 2),
    ?assertEqual(all_masters(Config, {ok, short_lived}), on_masters(Config, K)),
    ?assertEqual({error, no_quorum}, lkr:lock(K, too_early, 10000)),
    sleep_until(Start + Len + 1500),
    lockerd_ct:sbcast(Masters, expire_leases),
    locker ! expire_leases,
    ?assertEqual(all_masters(Config, not_found),
                 lockerd_ct:wait_value(fun() -> on_masters(Config, K) end,
                                       all_masters(Config, not_found), 3000)),
    ?assertEqual({error, not_found}, wait_local(K, {error, not_found})),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, next_owner, 10000)),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K, next_owner)).

sleep_until(T) ->
    timer:sleep(max(0, T - erlang:monotonic_time(millisecond))).

%% The waiters wait on this node (a BEAM replica): a timeout exits the
%% caller; the masters' pushed write wakes the waiter.
wait_for(Config) ->
    K = key(Config),
    Never = key(Config, never),
    ?assertEqual({'EXIT', {timeout, {gen_server, call, [locker, {wait_for, Never, 300}, 300]}}},
                 catch lkr:wait_for(Never, 300)),
    R = spawn_await(fun() -> lkr:wait_for(K, 10000) end),
    timer:sleep(300),
    ?assertEqual({ok, ?W, 3, 3}, client_call(Config, lock, [K, {waited, for}, 10000])),
    ?assertEqual({ok, {waited, for}}, await(R, 5000)),
    ?assertEqual({ok, {waited, for}}, lkr:wait_for(K, 1000)).

wait_for_release(Config) ->
    K = key(Config),
    ?assertEqual({error, key_not_locked}, lkr:wait_for_release(K)),
    ?assertEqual({ok, ?W, 3, 3}, client_call(Config, lock, [K, held, 10000])),
    wait_replicas(Config, K, {ok, held}),
    ?assertEqual({'EXIT', {timeout, {gen_server, call,
                                     [locker, {wait_for_release, K, 300}, 300]}}},
                 catch lkr:wait_for_release(K, 300)),
    R = spawn_await(fun() -> lkr:wait_for_release(K, 10000) end),
    timer:sleep(300),
    ?assertEqual({ok, ?W, 3, 5}, client_call(Config, release, [K, held])),
    ?assertEqual({ok, released}, await(R, 5000)).

%% lag/0 from this node and by rpc on each master; summary/0 of each
%% master by rpc, against that master's own get_debug_state.
lag_and_summary(Config) ->
    Masters = masters(Config),
    {Ms, Res} = lkr:lag(),
    ct:log("lag: ~p ms", [Ms]),
    ?assert(is_float(Ms)),
    ?assertEqual({ok, ?W, 3, 3}, Res),
    [begin
         {MMs, MRes} = rpc:call(M, locker, lag, []),
         ?assert(is_float(MMs)),
         ?assertEqual({ok, ?W, 3, 3}, MRes)
     end || M <- Masters],
    ?assertEqual([], [K || {{'__lock_lag_probe', _} = K, _, _}
                               <- lists:append([lockerd_ct:leases(M) || M <- Masters])]),
    K1 = key(Config, 1),
    K2 = key(Config, 2),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K1, v, 30000)),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K2, v, 30000)),
    [M1 | _] = Masters,
    T = make_ref(),
    ?assertEqual(ok, gen_server:call({locker, M1}, {get_write_lock, key(Config, 3), not_found, T})),
    %% (leases of earlier cases may expire between the two reads: retried)
    [begin
         Same = fun() ->
                        {ok, Locks, Leases, _, _, _} = lockerd_ct:debug_state(M),
                        2 = length([x || {K, _, _} <- Leases, K =:= K1 orelse K =:= K2]),
                        [{write_locks, length(Locks)}, {leases, length(Leases)}]
                            =:= rpc:call(M, locker, summary, [])
                end,
         ?assertEqual(true, lockerd_ct:wait_value(Same, true, 3000))
     end || M <- Masters],
    [{write_locks, 1}, {leases, _}] = rpc:call(M1, locker, summary, []),
    ?assertEqual(ok, gen_server:call({locker, M1}, {release_write_lock, T})),
    [{write_locks, 0}, {leases, _}] = rpc:call(M1, locker, summary, []),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K1, v)),
    ?assertMatch({ok, ?W, 3, _}, lkr:release(K2, v)).

%% Two of three masters crash (kill -9): no write can reach W any more and
%% the survivor keeps its state.
no_quorum_after_crash(Config) ->
    K0 = key(Config, held),
    K = key(Config, new),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K0, v, 60000)),
    [H1, H2, H3] = ?config(handles, Config),
    lockerd_ct:crash(H2),
    lockerd_ct:crash(H3),
    #{node := Survivor} = H1,
    ?assertEqual({error, no_quorum}, lkr:lock(K, v, 10000, 3000)),
    ?assertEqual({error, no_quorum}, lkr:update(K0, v, v2, 3000)),
    ?assertEqual({error, no_quorum}, lkr:extend_lease(K0, v, 10000, 3000)),
    ?assertEqual({error, no_quorum}, lkr:release(K0, v, 3000)),
    ?assertEqual({ok, v}, lockerd_ct:lease_on(Survivor, K0)),
    ?assertEqual(not_found, lockerd_ct:lease_on(Survivor, K)),
    ?assertEqual([], [T || {Kx, T, _} <- lockerd_ct:write_locks(Survivor),
                           Kx =:= K orelse Kx =:= K0]).
