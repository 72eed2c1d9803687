%% Conformance: the scenarios of docs/protocol.md, written the way a user's
%% own suite for the locker library drives its cluster, run on four
%% clusters: all BEAM (lkr_server, the library's model, through the
%% `locker` facade), all lockerd, and two mixes (lockerd majority, BEAM
%% majority). A difference between the reference and lockerd fails it.
%%
%% Like a user's suite it starts the nodes (BEAM peers, or lockerd), then
%% on each node rpc:call(N, locker, start_link, [W]), set_nodes from one
%% node, get_debug_state and rpc:call(N, timer, cancel, [H]) of the three
%% job handles; from then on every scenario is driven by rpc:call of
%% `locker` functions and rpc:sbcast(Nodes, locker, push_trans_log |
%% expire_leases), and checked by exact matches on the replies and on
%% get_debug_state. The CT node itself is part of no cluster.
%%
%% Every expectation is the same for every group, except the documented
%% differences of docs/protocol.md section 2a, whose per-kind values come
%% from lockerd_differences:d1..d8 (the kind of the node that serves the
%% request) and nowhere else.
%%
%% Each cluster: masters m1..m3 (W = 2), replica r, and a spare node s that
%% joins in nodes_added_removed_promoted. Cases share the cluster and use
%% their own keys; the destructive ones run last.
-module(lockerd_conformance_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, beam},
     {group, lockerd},
     {group, mixed_lockerd_majority},
     {group, mixed_beam_majority}].

groups() ->
    Cases = [cluster_started,
             key_life,
             lease_expiry,
             racing_lockers,
             quorum_impossible,
             admin_failures,
             replicas,
             wait_for_waiters,
             wait_for_release_waiters,
             direct_calls,
             nodes_added_removed_promoted,
             %% destructive: they restart or take down masters
             bad_call,
             master_killed,
             masters_down],
    [{G, [], Cases}
     || G <- [beam, lockerd, mixed_lockerd_majority, mixed_beam_majority]].

%% Kinds of m1, m2, m3, r, s.
kinds(beam) -> [beam, beam, beam, beam, beam];
kinds(lockerd) -> [lockerd, lockerd, lockerd, lockerd, lockerd];
kinds(mixed_lockerd_majority) -> [lockerd, beam, lockerd, beam, lockerd];
kinds(mixed_beam_majority) -> [beam, lockerd, beam, lockerd, beam].

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

end_per_group(_Group, Config) ->
    lockerd_ct:stop_all(?config(handles, Config)).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Cluster set-up, as a user's suite does it

start_cluster(Group, Kinds, Config) ->
    Roles = [m1, m2, m3, r, s],
    Tag = atom_to_list(Group),
    Specs = [{Role, Kind, lockerd_ct:unique_name(lists:concat(["cf_", Role, "_", short(Tag)]))}
             || {Role, Kind} <- lists:zip(Roles, Kinds)],
    Handles = [start_node(Kind, Name, Config) || {_, Kind, Name} <- Specs],
    Nodes = [N || #{node := N} <- Handles],
    ByRole = maps:from_list(lists:zip(Roles, Nodes)),
    KindOf = maps:from_list(lists:zip(Nodes, Kinds)),
    Masters = lists:sort([maps:get(R, ByRole) || R <- [m1, m2, m3]]),
    Replica = maps:get(r, ByRole),
    Spare = maps:get(s, ByRole),
    Config1 = [{group, Group}, {handles, Handles}, {roles, ByRole}, {kinds, KindOf},
               {masters, Masters}, {replica, Replica}, {spare, Spare} | Config],
    [start_locker(N) || N <- Nodes],
    ?assertEqual(ok, rpc:call(hd(Masters), locker, set_nodes,
                              [Masters ++ [Replica, Spare], Masters, [Replica]])),
    [cancel_jobs(N) || N <- Nodes],
    Config1.

short(Tag) ->
    [C || C <- Tag, C =/= $_].

start_node(lockerd, Name, Config) ->
    lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config)});
start_node(beam, Name, _Config) ->
    lockerd_ct:start_peer(Name, #{}).

%% {ok, Pid} of the node's server; Pid is what whereis(locker) gives.
start_locker(Node) ->
    {ok, Pid} = rpc:call(Node, locker, start_link, [?W]),
    ?assertEqual(Pid, rpc:call(Node, erlang, whereis, [locker])),
    ?assertEqual(true, rpc:call(Node, erlang, is_process_alive, [Pid])),
    Pid.

%% The three periodic jobs stop: the suite runs expiry and pushes itself.
cancel_jobs(Node) ->
    {ok, _, _, R1, R2, R3} = rpc:call(Node, locker, get_debug_state, []),
    [?assertMatch({interval, Ref} when is_reference(Ref), H) || H <- [R1, R2, R3]],
    [?assertEqual({ok, cancel}, rpc:call(Node, timer, cancel, [H])) || H <- [R1, R2, R3]],
    ok.

%%--------------------------------------------------------------------
%% Helpers

masters(Config) -> ?config(masters, Config).
replica(Config) -> ?config(replica, Config).
spare(Config) -> ?config(spare, Config).
role(Config, Role) -> maps:get(Role, ?config(roles, Config)).
kind(Config, Node) -> maps:get(Node, ?config(kinds, Config)).
cluster(Config) -> masters(Config) ++ [replica(Config), spare(Config)].

key(Config) ->
    key(Config, 0).

key(Config, N) ->
    {conformance, ?config(group, Config), ?config(tc, Config), N}.

%% Run locker:F(A...) on Node, as a user's suite does.
on(Node, F, A) ->
    rpc:call(Node, locker, F, A).

debug_state(Node) ->
    {ok, Locks, Leases, _, _, _} = on(Node, get_debug_state, []),
    {Locks, Leases}.

%% {Key, Value, ExpireAt} entries of Node for Key (at most one).
leases_of(Node, Key) ->
    {_, Leases} = debug_state(Node),
    [E || {K, _, _} = E <- Leases, K =:= Key].

values_of(Node, Key) ->
    [V || {_, V, _} <- leases_of(Node, Key)].

locks_of(Node, Key) ->
    {Locks, _} = debug_state(Node),
    [{K, T} || {K, T, _} <- Locks, K =:= Key].

%% No write lock on any master: every write of the scenarios is finished.
%% (A coordinator's release_write_lock reaches a master on another path
%% than this process's next call: polled, for at most 2 s.)
no_write_locks(Config) ->
    Expected = [[] || _ <- masters(Config)],
    ?assertEqual(Expected, lockerd_ct:wait_value(
                             fun() -> [element(1, debug_state(M)) || M <- masters(Config)] end,
                             Expected, 2000)).

push(Config) ->
    Nodes = masters(Config),
    ?assertEqual({Nodes, []}, rpc:sbcast(Nodes, locker, push_trans_log)).

expire(Nodes) ->
    ?assertEqual({Nodes, []}, rpc:sbcast(Nodes, locker, expire_leases)).

%% A push travels from the masters to the replica, not from this process:
%% the replica is polled until it reads Expected, for at most 5 s.
replica_reads(Config, Key, Expected) ->
    R = replica(Config),
    lockerd_ct:wait_value(fun() -> on(R, dirty_read, [Key]) end, Expected, 5000).

now_s() ->
    lkr_server:now_seconds().

%% ExpireAt Node shows for a lease of Len ms written between seconds S0
%% and S1: trunc(NowSeconds + Len / 1000), NowSeconds whole seconds, for
%% whole-second lengths; D8 for the others.
expire_at_ok(Config, Node, ExpireAt, Len, S0, S1) ->
    Candidates = lockerd_differences:d8(kind(Config, Node), Len, S0, S1),
    lists:member(ExpireAt, Candidates)
        orelse ct:fail({expire_at, {len, Len}, {expected_one_of, Candidates}, {got, ExpireAt}}).

%% The rpc result of locker:wait_for/2 or wait_for_release/2 (Fun) when the
%% server's answer is Outcome ({ok, _} or no_reply: the call times out).
rpc_outcome(_Fun, _Key, _Timeout, {ok, _} = Reply) ->
    Reply;
rpc_outcome(Fun, Key, Timeout, no_reply) ->
    timeout_exit(Fun, Key, Timeout).

timeout_exit(Fun, Key, Timeout) ->
    {badrpc, {'EXIT', {timeout, {gen_server, call, [locker, {Fun, Key, Timeout}, Timeout]}}}}.

%% rpc:call(Node, locker, F, A) in another process; await/2 collects it.
async(Node, F, A) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, rpc:call(Node, locker, F, A)} end),
    Ref.

await(Ref, Timeout) ->
    receive
        {Ref, Result} -> Result
    after Timeout ->
            ct:fail({no_result_within, Timeout})
    end.

%% Wait until Node's server has a waiter queued: there is no way to see
%% it from outside, so give the rpc time to arrive.
settle() ->
    timer:sleep(300).

%% A '$gen_call' sent to Node's locker by hand; the reply tag.
raw_call(Node, Req) ->
    Tag = [alias | alias()],
    erlang:send({locker, Node}, {'$gen_call', {self(), Tag}, Req}),
    Tag.

reply_within(Tag, Timeout) ->
    receive
        {Tag, Reply} -> Reply
    after Timeout ->
            no_reply
    end.

%% Restart a master's server the way a user's suite does after it killed
%% it: start_link, set_nodes for it, jobs cancelled. Returns the new pid.
restart_master(Config, Node, OldPid) ->
    Pid = start_locker(Node),
    ?assert(Pid =/= OldPid),
    ?assertEqual(ok, on(Node, set_nodes, [[Node], masters(Config), [replica(Config)]])),
    cancel_jobs(Node),
    ?assertEqual({masters(Config), [replica(Config)], ?W}, on(Node, get_meta, [])),
    Pid.

%%--------------------------------------------------------------------
%% Cases

cluster_started(Config) ->
    Masters = masters(Config),
    R = replica(Config),
    [?assertEqual({Masters, [R], ?W}, on(N, get_meta, [])) || N <- cluster(Config)],
    [?assertEqual({[], []}, debug_state(N)) || N <- cluster(Config)],
    [?assertEqual([{write_locks, 0}, {leases, 0}], on(N, summary, [])) || N <- cluster(Config)],
    %% lag: a probe locked and released through the masters
    [begin
         {Ms, Res} = on(N, lag, []),
         ?assert(is_float(Ms)),
         ?assertEqual({ok, ?W, 3, 3}, Res)
     end || N <- Masters ++ [R]],
    [?assertEqual({[], []}, debug_state(M)) || M <- Masters].

%% lock, extend, update, release; every master holds exactly the value
%% with the expiry it was given, the replica only after a push.
key_life(Config) ->
    [M1, M2, M3] = Masters = masters(Config),
    R = replica(Config),
    K = key(Config),
    Me = self(),
    S0 = now_s(),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, Me, 20000])),
    S1 = now_s(),
    [begin
         [{K, Me, Exp}] = leases_of(M, K),
         expire_at_ok(Config, M, Exp, 20000, S0, S1)
     end || M <- Masters],
    ?assertEqual({ok, Me}, on(M2, dirty_read, [K])),
    ?assertEqual({ok, Me}, on(R, master_dirty_read, [K])),
    ?assertEqual({error, not_found}, on(R, dirty_read, [K])),
    ?assertEqual({error, no_quorum}, on(M2, lock, [K, intruder, 20000])),
    ?assertEqual({error, no_quorum}, on(R, lock, [K, intruder])),
    no_write_locks(Config),
    %% extend: a new expiry on every master
    T0 = now_s(),
    ?assertEqual(ok, on(M3, extend_lease, [K, Me, 60000])),
    T1 = now_s(),
    [begin
         [{K, Me, Exp}] = leases_of(M, K),
         expire_at_ok(Config, M, Exp, 60000, T0, T1)
     end || M <- Masters],
    ?assertEqual({error, no_quorum}, on(M3, extend_lease, [K, intruder, 60000])),
    %% update: new value, same expiry
    Before = [leases_of(M, K) || M <- Masters],
    ?assertEqual({ok, ?W, 3, 3}, on(M2, update, [K, Me, {updated, Me}])),
    ?assertEqual([[{K, {updated, Me}, Exp}] || [{_, _, Exp}] <- Before],
                 [leases_of(M, K) || M <- Masters]),
    ?assertEqual({error, no_quorum}, on(M2, update, [K, Me, again])),
    push(Config),
    ?assertEqual({ok, {updated, Me}}, replica_reads(Config, K, {ok, {updated, Me}})),
    %% release: masters and the replica answer
    ?assertEqual({error, no_quorum}, on(M1, release, [K, Me])),
    ?assertEqual({ok, ?W, 3, 4}, on(M1, release, [K, {updated, Me}])),
    [?assertEqual([], leases_of(N, K)) || N <- Masters ++ [R]],
    ?assertEqual({error, not_found}, on(R, dirty_read, [K])),
    ?assertEqual({error, no_quorum}, on(M1, release, [K, {updated, Me}])),
    %% the released key is free again; lock/2 takes the library's default
    %% lease of 2000 ms
    S2 = now_s(),
    ?assertEqual({ok, ?W, 3, 3}, on(M3, lock, [K, next])),
    S3 = now_s(),
    [begin
         [{K, next, Exp}] = leases_of(M, K),
         expire_at_ok(Config, M, Exp, 2000, S2, S3)
     end || M <- Masters],
    ?assertEqual({ok, ?W, 3, 3}, on(M3, release, [K, next, 3000])),
    push(Config),
    ?assertEqual({error, not_found}, replica_reads(Config, K, {error, not_found})),
    no_write_locks(Config).

%% D8: a lease is gone once Len + d8 ms passed and expire_leases ran, on
%% masters and replica; before its end it holds everywhere.
lease_expiry(Config) ->
    [M1, _, _] = Masters = masters(Config),
    R = replica(Config),
    K = key(Config),
    KL = key(Config, long),
    Len = 1500,
    Start = erlang:monotonic_time(millisecond),
    S0 = now_s(),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, brief, Len])),
    S1 = now_s(),
    [begin
         [{K, brief, Exp}] = leases_of(M, K),
         expire_at_ok(Config, M, Exp, Len, S0, S1)
     end || M <- Masters],
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [KL, long, 30000])),
    push(Config),
    ?assertEqual({ok, brief}, replica_reads(Config, K, {ok, brief})),
    expire(Masters ++ [R]),
    [?assertEqual([brief], values_of(N, K)) || N <- Masters ++ [R]],
    ?assertEqual({error, no_quorum}, on(R, lock, [K, too_early])),
    Slowest = lists:max([lockerd_differences:d8(kind(Config, N)) || N <- Masters ++ [R]]),
    timer:sleep(max(0, Start + Len + Slowest + 700 - erlang:monotonic_time(millisecond))),
    expire(Masters ++ [R]),
    [?assertEqual([], values_of(N, K)) || N <- Masters ++ [R]],
    [?assertEqual([long], values_of(N, KL)) || N <- Masters ++ [R]],
    ?assertEqual({error, not_found}, on(R, dirty_read, [K])),
    ?assertEqual({ok, ?W, 3, 3}, on(R, lock, [K, after_expiry, 30000])),
    ?assertEqual({ok, ?W, 3, 3}, on(R, release, [K, after_expiry])),
    ?assertEqual({ok, ?W, 3, 4}, on(R, release, [KL, long])),
    no_write_locks(Config).

%% Lockers on every node race for the same keys: at most one wins each
%% key, the masters agree on the winner, no write lock is left behind.
racing_lockers(Config) ->
    Masters = masters(Config),
    Coordinators = Masters ++ [replica(Config)],
    Outcomes =
        [begin
             K = key(Config, Round),
             Go = make_ref(),
             Parent = self(),
             Pids = [spawn(fun() ->
                                   receive Go -> ok end,
                                   Parent ! {Go, {N, I},
                                             rpc:call(N, locker, lock, [K, {N, I}, 20000, 5000])}
                           end) || N <- Coordinators, I <- [1, 2, 3]],
             [P ! Go || P <- Pids],
             Results = [receive {Go, V, Res} -> {V, Res} after 15000 -> ct:fail(hung) end
                        || _ <- Pids],
             [?assert(Res =:= {error, no_quorum} orelse
                      (element(1, Res) =:= ok andalso element(2, Res) =:= ?W))
              || {_, Res} <- Results],
             Winners = [V || {V, {ok, _, _, _}} <- Results],
             ?assert(length(Winners) =< 1),
             Held = lists:append([values_of(M, K) || M <- Masters]),
             case Winners of
                 [Winner] ->
                     ?assert(length([x || V <- Held, V =:= Winner]) >= ?W),
                     ?assertEqual([], [V || V <- Held, V =/= Winner]);
                 [] ->
                     ?assertEqual([], Held),
                     ?assertEqual({ok, ?W, 3, 3}, on(hd(Masters), lock, [K, after_race, 20000]))
             end,
             no_write_locks(Config),
             length(Winners)
         end || Round <- lists:seq(1, 6)],
    ct:log("keys won in a race: ~p of 6", [lists:sum(Outcomes)]).

%% W above the number of masters: no write reaches a quorum, none leaves
%% a lock; back to W = 2 everything works again.
quorum_impossible(Config) ->
    [M1, M2, _] = masters(Config),
    K = key(Config),
    KH = key(Config, held),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [KH, v, 30000])),
    ?assertEqual(ok, on(M2, set_w, [cluster(Config), 4])),
    [?assertEqual({masters(Config), [replica(Config)], 4}, on(N, get_meta, []))
     || N <- cluster(Config)],
    ?assertEqual({error, no_quorum}, on(M1, lock, [K, v, 30000])),
    ?assertEqual({error, no_quorum}, on(M1, update, [KH, v, v2])),
    ?assertEqual({error, no_quorum}, on(M1, extend_lease, [KH, v, 30000])),
    ?assertEqual({error, no_quorum}, on(M1, release, [KH, v])),
    {Ms, LagRes} = on(M1, lag, []),
    ?assert(is_float(Ms)),
    ?assertEqual({error, no_quorum}, LagRes),
    no_write_locks(Config),
    [?assertEqual([v], values_of(M, KH)) || M <- masters(Config)],
    ?assertEqual(ok, on(M2, set_w, [cluster(Config), ?W])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, v, 30000])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, release, [K, v])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, release, [KH, v])),
    no_write_locks(Config).

%% set_w / set_nodes with a node that does not answer crash the caller
%% with {badmatch, {Replies, BadNodes}} (the others took the change); a
%% non-integer W is a function_clause.
admin_failures(Config) ->
    [M1 | _] = Masters = masters(Config),
    R = replica(Config),
    Ghost = lockerd_ct:node_name(lockerd_ct:unique_name("cf_ghost")),
    Cluster = cluster(Config),
    Expected = lists:sort([{N, ok} || N <- Cluster]),
    {badrpc, {'EXIT', {{badmatch, {Replies, [Ghost]}}, _}}} =
        on(M1, set_w, [Cluster ++ [Ghost], ?W]),
    ?assertEqual(Expected, lists:sort(Replies)),
    {badrpc, {'EXIT', {{badmatch, {Replies2, [Ghost]}}, _}}} =
        on(R, set_nodes, [[Ghost | Cluster], Masters, [R]]),
    ?assertEqual(Expected, lists:sort(Replies2)),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}}, on(M1, set_w, [Cluster, two])),
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}}, on(R, set_w, [Cluster, 2.0])),
    %% duplicates and order do not matter: stored sorted, deduplicated
    ?assertEqual(ok, on(M1, set_nodes, [Cluster, lists:reverse(Masters) ++ Masters, [R, R]])),
    [?assertEqual({Masters, [R], ?W}, on(N, get_meta, [])) || N <- Cluster],
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [key(Config), v, 5000])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, release, [key(Config), v])).

%% The replica sees writes only through pushes (the push job is
%% cancelled); it takes part in releases; it coordinates like any node.
replicas(Config) ->
    [M1, M2, M3] = Masters = masters(Config),
    R = replica(Config),
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, v1, 30000])),
    timer:sleep(300),
    ?assertEqual({error, not_found}, on(R, dirty_read, [K])),
    ?assertEqual([], leases_of(R, K)),
    ?assertEqual({ok, v1}, on(R, master_dirty_read, [K])),
    push(Config),
    ?assertEqual({ok, v1}, replica_reads(Config, K, {ok, v1})),
    ?assertEqual([v1], values_of(M2, K)),
    ?assertEqual([v1], values_of(R, K)),
    ?assertEqual({ok, ?W, 3, 3}, on(R, update, [K, v1, v2])),
    ?assertEqual({ok, v1}, on(R, dirty_read, [K])),
    push(Config),
    ?assertEqual({ok, v2}, replica_reads(Config, K, {ok, v2})),
    %% a release the replica holds the key for: four answers
    ?assertEqual({ok, ?W, 3, 4}, on(M3, release, [K, v2])),
    ?assertEqual({error, not_found}, on(R, dirty_read, [K])),
    %% a key the replica has not seen yet: its release answer is not_found
    K2 = key(Config, 2),
    ?assertEqual({ok, ?W, 3, 3}, on(R, lock, [K2, v, 30000])),
    ?assertEqual({ok, ?W, 3, 3}, on(R, release, [K2, v])),
    push(Config),
    ?assertEqual({error, not_found}, replica_reads(Config, K2, {error, not_found})),
    [?assertEqual([], leases_of(N, K2)) || N <- Masters ++ [R]],
    no_write_locks(Config).

%% wait_for: a local read first, then a waiter on that node's server.
%% A waiter on the replica is answered by the pushed write (a replayed
%% write, for both kinds); on a master by the coordinator's direct write
%% only where d3 says so; a timeout exits the rpc.
wait_for_waiters(Config) ->
    [M1, M2, _] = masters(Config),
    R = replica(Config),
    KN = key(Config, never),
    ?assertEqual(timeout_exit(wait_for, KN, 300), on(M1, wait_for, [KN, 300])),
    ?assertEqual(timeout_exit(wait_for, KN, 300), on(R, wait_for, [KN, 300])),
    %% on the replica
    KR = key(Config, replica),
    WR = async(R, wait_for, [KR, 5000]),
    settle(),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [KR, {here, 1}, 30000])),
    push(Config),
    ?assertEqual({ok, {here, 1}}, await(WR, 6000)),
    ?assertEqual({ok, {here, 1}}, on(R, wait_for, [KR, 0])),
    %% on a master, written directly by the coordinator
    KM = key(Config, master),
    WM = async(M2, wait_for, [KM, 2000]),
    settle(),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [KM, {here, 2}, 30000])),
    Expected = rpc_outcome(wait_for, KM, 2000,
                           lockerd_differences:d3(kind(Config, M2), direct_write, {here, 2})),
    ?assertEqual(Expected, await(WM, 4000)),
    %% held locally: answered from the local table
    ?assertEqual({ok, {here, 2}}, on(M2, wait_for, [KM, 100])),
    ?assertEqual({ok, ?W, 3, 4}, on(M1, release, [KR, {here, 1}])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, release, [KM, {here, 2}])),
    no_write_locks(Config).

%% wait_for_release: key_not_locked when the node does not hold the key;
%% a timeout exits the rpc; answered {ok, released} by the release (on a
%% master and on the replica) and by expiry.
wait_for_release_waiters(Config) ->
    [M1, M2, M3] = Masters = masters(Config),
    R = replica(Config),
    K = key(Config),
    ?assertEqual({error, key_not_locked}, on(M1, wait_for_release, [K, 1000])),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, held, 30000])),
    ?assertEqual({error, key_not_locked}, on(R, wait_for_release, [K, 1000])),
    ?assertEqual(timeout_exit(wait_for_release, K, 300), on(M2, wait_for_release, [K, 300])),
    push(Config),
    ?assertEqual({ok, held}, replica_reads(Config, K, {ok, held})),
    WM = async(M2, wait_for_release, [K, 5000]),
    WR = async(R, wait_for_release, [K, 5000]),
    settle(),
    ?assertEqual({ok, ?W, 3, 4}, on(M3, release, [K, held])),
    ?assertEqual({ok, released}, await(WM, 6000)),
    ?assertEqual({ok, released}, await(WR, 6000)),
    %% expiry
    KE = key(Config, expiry),
    Len = 1000,
    Start = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [KE, brief, Len])),
    WE = async(M3, wait_for_release, [KE, 8000]),
    settle(),
    Slowest = lists:max([lockerd_differences:d8(kind(Config, N)) || N <- Masters]),
    timer:sleep(max(0, Start + Len + Slowest + 700 - erlang:monotonic_time(millisecond))),
    expire(Masters),
    ?assertEqual({ok, released}, await(WE, 6000)),
    [?assertEqual([], leases_of(M, KE)) || M <- Masters],
    no_write_locks(Config).

%% The documented differences seen by a caller of the servers themselves
%% (gen_server calls to {locker, Master}), on every master per its kind:
%% D1, D2, D4, D5, D6.
direct_calls(Config) ->
    [direct_calls_on(Config, M, I) || {I, M} <- lists:zip([1, 2, 3], masters(Config))],
    no_write_locks(Config).

direct_calls_on(Config, M, I) ->
    Kind = kind(Config, M),
    Call = fun(Req) -> gen_server:call({locker, M}, Req, 5000) end,
    K = key(Config, {I, held}),
    KA = key(Config, {I, absent}),
    ?assertEqual(ok, Call({write, make_ref(), K, v, 30000})),
    %% D2: wait_for on a key that holds a lease
    ?assertEqual(lockerd_differences:d2(Kind, v),
                 reply_within(raw_call(M, {wait_for, K, 500}), 1000)),
    %% D6: wait_for_release on a key not held
    T6 = raw_call(M, {wait_for_release, KA, 500}),
    ?assertEqual(lockerd_differences:d6(Kind), reply_within(T6, 1000)),
    %% D1 and D4: a release answered not_owner
    TW = raw_call(M, {wait_for_release, K, 5000}),
    Tag = make_ref(),
    ?assertEqual(ok, Call({get_write_lock, K, v, Tag})),
    ?assertEqual({error, not_owner}, Call({release, K, other, Tag})),
    ?assertEqual(lockerd_differences:d1(Kind, [{K, Tag}]), locks_of(M, K)),
    ?assertEqual(lockerd_differences:d4(Kind, release_not_owner), reply_within(TW, 500)),
    ?assertEqual(ok, Call({release_write_lock, Tag})),
    %% D4 (not_found) for the wait_for_release waiter of the absent key
    ?assertEqual({error, not_found}, Call({release, KA, v, make_ref()})),
    case lockerd_differences:d6(Kind) of
        no_reply ->
            ?assertEqual(lockerd_differences:d4(Kind, release_not_found), reply_within(T6, 500));
        _ ->
            ok
    end,
    %% D5: a release waiter whose timeout passed, then the key is released
    T5 = raw_call(M, {wait_for_release, K, 200}),
    timer:sleep(400),
    ?assertEqual(ok, Call({release, K, v, make_ref()})),
    Late = lockerd_differences:d5(Kind),
    ?assertEqual(Late, reply_within(T5, 500)),
    %% the waiter left queued by D4 (lockerd) is answered by the release
    receive {TW, _} -> ok after 0 -> ok end,
    ?assertEqual([], leases_of(M, K)).

%% A spare node joins as a master (W = 3), leaves, and the replica is
%% promoted to master and back.
nodes_added_removed_promoted(Config) ->
    [M1, M2, M3] = Masters = masters(Config),
    R = replica(Config),
    S = spare(Config),
    Cluster = cluster(Config),
    K = key(Config),
    %% added
    Masters4 = lists:sort([S | Masters]),
    ?assertEqual(ok, on(M1, set_nodes, [Cluster, Masters4, [R]])),
    ?assertEqual(ok, on(M1, set_w, [Cluster, 3])),
    [?assertEqual({Masters4, [R], 3}, on(N, get_meta, [])) || N <- Cluster],
    ?assertEqual({ok, 3, 4, 4}, on(M2, lock, [K, v, 30000])),
    [?assertEqual([v], values_of(N, K)) || N <- Masters4],
    ?assertEqual({ok, 3, 4, 4}, on(S, update, [K, v, v2])),
    ?assertEqual({ok, 3, 4, 4}, on(R, release, [K, v2])),
    %% removed: the spare no longer takes part
    ?assertEqual(ok, on(S, set_nodes, [Cluster, Masters, [R]])),
    ?assertEqual(ok, on(S, set_w, [Cluster, ?W])),
    K2 = key(Config, 2),
    ?assertEqual({ok, ?W, 3, 3}, on(S, lock, [K2, v, 30000])),
    ?assertEqual([], values_of(S, K2)),
    ?assertEqual({ok, ?W, 3, 3}, on(M3, release, [K2, v])),
    %% promoted: the replica becomes a master; the promoted node has not
    %% seen the key held meanwhile, so it votes against its owner
    K3 = key(Config, 3),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K3, v, 30000])),
    Promoted = lists:sort([R | Masters]),
    ?assertEqual(ok, on(M2, set_nodes, [Cluster, Promoted, []])),
    [?assertEqual({Promoted, [], ?W}, on(N, get_meta, [])) || N <- Cluster],
    ?assertEqual(ok, on(M1, extend_lease, [K3, v, 30000])),
    [?assertEqual([v], values_of(N, K3)) || N <- Promoted],
    ?assertEqual({ok, ?W, 4, 4}, on(M1, update, [K3, v, v3])),
    [?assertEqual([v3], values_of(N, K3)) || N <- Promoted],
    K4 = key(Config, 4),
    ?assertEqual({ok, ?W, 4, 4}, on(R, lock, [K4, v, 30000])),
    ?assertEqual({ok, ?W, 4, 4}, on(M2, release, [K4, v])),
    ?assertEqual({ok, ?W, 4, 4}, on(M2, release, [K3, v3])),
    %% and back
    ?assertEqual(ok, on(R, set_nodes, [Cluster, Masters, [R]])),
    [?assertEqual({Masters, [R], ?W}, on(N, get_meta, [])) || N <- Cluster],
    ?assertEqual({ok, ?W, 3, 3}, on(R, lock, [K4, v, 30000])),
    ?assertEqual({ok, ?W, 3, 3}, on(R, release, [K4, v])),
    no_write_locks(Config).

%% A master's server is killed (erlang:exit(Pid, kill) by rpc): the node
%% serves no locker until start_link; the others keep a quorum; the
%% restarted, empty server catches up through extend_lease.
master_killed(Config) ->
    [M1, M2, _] = Masters = masters(Config),
    M3 = role(Config, m3),
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, on(M1, lock, [K, owner, 30000])),
    Pid = rpc:call(M3, erlang, whereis, [locker]),
    ?assert(is_pid(Pid)),
    ?assertEqual(true, rpc:call(M3, erlang, exit, [Pid, kill])),
    ?assertEqual(true, lockerd_ct:wait_until(
                         fun() -> rpc:call(M3, erlang, whereis, [locker]) =:= undefined end,
                         5000)),
    ?assertEqual(false, rpc:call(M3, erlang, is_process_alive, [Pid])),
    ?assertEqual({badrpc, {'EXIT', {noproc, {gen_server, call, [locker, get_debug_state]}}}},
                 on(M3, get_debug_state, [])),
    ?assertEqual({ok, ?W, 2, 2}, on(M1, update, [K, owner, owner2])),
    K2 = key(Config, 2),
    ?assertEqual({ok, ?W, 2, 2}, on(M2, lock, [K2, v, 30000])),
    %% back, empty
    restart_master(Config, M3, Pid),
    ?assertEqual({[], []}, debug_state(M3)),
    ?assertEqual({error, no_quorum}, on(M3, lock, [K, intruder, 30000])),
    ?assertEqual(ok, on(M1, extend_lease, [K, owner2, 30000])),
    [?assertEqual([owner2], values_of(M, K)) || M <- Masters],
    ?assertEqual({ok, ?W, 3, 3}, on(M3, release, [K, owner2])),
    ?assertEqual({ok, ?W, 2, 2}, on(M2, release, [K2, v])),
    no_write_locks(Config).

%% D7 on every master: an unknown request crashes the reference's server
%% (the node is then restarted as after a kill) and is answered by
%% lockerd, which survives.
bad_call(Config) ->
    Req = {no_such_request, key(Config)},
    [begin
         Pid = rpc:call(M, erlang, whereis, [locker]),
         case lockerd_differences:d7(kind(Config, M), Req) of
             crash ->
                 ?assertMatch({'EXIT', {_, {gen_server, call, _}}},
                              catch gen_server:call({locker, M}, Req, 5000)),
                 ?assertEqual(true, lockerd_ct:wait_until(
                                      fun() -> rpc:call(M, erlang, whereis, [locker]) =:= undefined
                                      end, 5000)),
                 restart_master(Config, M, Pid);
             Reply ->
                 ?assertEqual(Reply, gen_server:call({locker, M}, Req, 5000)),
                 ?assertEqual(Pid, rpc:call(M, erlang, whereis, [locker]))
         end
     end || M <- masters(Config)],
    K = key(Config),
    ?assertEqual({ok, ?W, 3, 3}, on(replica(Config), lock, [K, v, 30000])),
    ?assertEqual({ok, ?W, 3, 3}, on(replica(Config), release, [K, v])).

%% Masters go down (their nodes crash): with one down the quorum holds,
%% with two it is lost; the survivor keeps its state and no lock. m3 goes
%% first: it is the master master_killed restarted.
masters_down(Config) ->
    Handles = ?config(handles, Config),
    [M1, M2, M3] = [role(Config, Ro) || Ro <- [m1, m2, m3]],
    HandleOf = fun(N) -> hd([H || #{node := Nx} = H <- Handles, Nx =:= N]) end,
    R = replica(Config),
    K = key(Config),
    lockerd_ct:crash(HandleOf(M3)),
    ?assertEqual({ok, ?W, 2, 2}, on(R, lock, [K, v, 60000, 3000])),
    ?assertEqual({ok, ?W, 2, 2}, on(M1, update, [K, v, v2, 3000])),
    K2 = key(Config, 2),
    ?assertEqual({ok, ?W, 2, 2}, on(M2, lock, [K2, v, 60000, 3000])),
    lockerd_ct:crash(HandleOf(M2)),
    K3 = key(Config, 3),
    ?assertEqual({error, no_quorum}, on(R, lock, [K3, v, 60000, 3000])),
    ?assertEqual({error, no_quorum}, on(M1, lock, [K3, v, 60000, 3000])),
    ?assertEqual({error, no_quorum}, on(M1, update, [K, v2, v3, 3000])),
    ?assertEqual({error, no_quorum}, on(M1, extend_lease, [K, v2, 60000, 3000])),
    ?assertEqual({error, no_quorum}, on(R, release, [K, v2, 3000])),
    ?assertEqual([v2], values_of(M1, K)),
    ?assertEqual([v], values_of(M1, K2)),
    ?assertEqual([], values_of(M1, K3)),
    %% (the failed coordinators' release_write_lock: polled, see no_write_locks/1)
    ?assertEqual([], lockerd_ct:wait_value(fun() -> element(1, debug_state(M1)) end, [], 2000)).
