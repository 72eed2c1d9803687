%% Transaction-log replication (docs/protocol.md sections 3-4): one master
%% (W = 1) pushes to one replica every 100 ms. Groups pair a lockerd or BEAM
%% master with a lockerd or BEAM replica (lkr_server, the library's model);
%% expectations differ by kind only for the entries of docs/protocol.md
%% section 2a (lockerd_differences).
%% Writes are coordinated by lkr from the CT node, a plain client.
%% eager_lockerd_to_beam runs a lockerd master with its default eager push
%% and a push interval of ten minutes: replicas can only see its writes
%% through the eager push that leaves before each commit reply (releases
%% wait for a push: their coordinator sends them to the replicas itself).
-module(lockerd_repl_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, lockerd_to_beam},
     {group, beam_to_lockerd},
     {group, lockerd_to_lockerd},
     {group, beam_to_beam},
     {group, eager_lockerd_to_beam}].

groups() ->
    Cases = [write_replicated,
             update_replicated,
             extend_replicated,
             release_replicated_via_log,
             release_sent_to_replica,
             write_then_release_in_one_push,
             expiry_on_replica,
             replica_wakes_waiters],
    Eager = [write_replicated, update_replicated, extend_replicated, replica_wakes_waiters,
             eager_push_toggled_at_run_time],
    [{G, [], Cases} || G <- [lockerd_to_beam, beam_to_lockerd, lockerd_to_lockerd, beam_to_beam]]
        ++ [{eager_lockerd_to_beam, [], Eager}].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

kinds(lockerd_to_beam) -> {lockerd, beam};
kinds(beam_to_lockerd) -> {beam, lockerd};
kinds(lockerd_to_lockerd) -> {lockerd, lockerd};
kinds(beam_to_beam) -> {beam, beam};
kinds(eager_lockerd_to_beam) -> {lockerd, beam}.

lockerd_opts(eager_lockerd_to_beam) ->
    #{push_interval => 600000};
lockerd_opts(lockerd_to_beam) ->
    %% the interval push alone (lockerd_to_lockerd runs the default)
    #{push_interval => 100, extra_args => ["--no-eager-push"]};
lockerd_opts(_) ->
    #{push_interval => 100}.

init_per_group(Group, Config) ->
    {MK, RK} = kinds(Group),
    Check = case MK =:= lockerd orelse RK =:= lockerd of
                true -> lockerd_ct:lockerd_check();
                false -> ok
            end,
    case Check of
        ok ->
            Tag = atom_to_list(Group),
            MName = lockerd_ct:unique_name("rm_" ++ Tag),
            RName = lockerd_ct:unique_name("rr_" ++ Tag),
            Master = lockerd_ct:node_name(MName),
            Replica = lockerd_ct:node_name(RName),
            Meta = {1, [Master], [Replica]},
            [MH, RH] = lockerd_ct:start_nodes([{MK, MName}, {RK, RName}], Meta,
                                              #{log_dir => ?config(priv_dir, Config),
                                                lockerd_opts => lockerd_opts(Group)}),
            lockerd_ct:start_local_server(1, [Master], [Replica]),
            [{group, Group}, {master, Master}, {replica, Replica}, {replica_kind, RK},
             {handles, [MH, RH]} | Config];
        {skip, _} = Skip ->
            Skip
    end.

end_per_group(_Group, Config) ->
    lockerd_ct:stop_local_server(),
    lockerd_ct:stop_all(?config(handles, Config)).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Helpers

key(Config) ->
    key(Config, 0).

key(Config, N) ->
    {repl_test, ?config(group, Config), ?config(tc, Config), N}.

%% What the replica holds for Key, seen through get_debug_state; its
%% locker:dirty_read/1 by rpc must agree.
replica_read(Config, Key) ->
    R = ?config(replica, Config),
    Lease = lockerd_ct:lease_on(R, Key),
    Dirty = rpc:call(R, locker, dirty_read, [Key]),
    case {Lease, Dirty} of
        {{ok, V}, {ok, V}} -> {ok, V};
        {not_found, {error, not_found}} -> not_found;
        Other -> {disagree, Other}
    end.

wait_replica(Config, Key, Expected) ->
    lockerd_ct:wait_value(fun() -> replica_read(Config, Key) end, Expected, 5000).

%%--------------------------------------------------------------------
%% Cases

%% lockerd:set_eager_push/1 (eager group only: the interval push is ten
%% minutes away, so a write reaches the replica only if pushed eagerly).
eager_push_toggled_at_run_time(Config) ->
    M = ?config(master, Config),
    K1 = key(Config, 1),
    K2 = key(Config, 2),
    ?assertEqual(ok, rpc:call(M, lockerd, set_eager_push, [false])),
    try
        ?assertMatch({ok, _, _, _}, lkr:lock(K1, v1, 30000)),
        timer:sleep(1500),
        ?assertEqual(not_found, replica_read(Config, K1)),
        ?assertEqual(ok, rpc:call(M, lockerd, set_eager_push, [true])),
        ?assertMatch({ok, _, _, _}, lkr:lock(K2, v2, 30000)),
        %% The eager push carries the whole log: the held-back write too.
        ?assertEqual({ok, v2}, wait_replica(Config, K2, {ok, v2})),
        ?assertEqual({ok, v1}, replica_read(Config, K1)),
        ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                     rpc:call(M, lockerd, set_eager_push, ['maybe']))
    after
        rpc:call(M, lockerd, set_eager_push, [true])
    end.

write_replicated(Config) ->
    K = key(Config),
    ?assertEqual(not_found, replica_read(Config, K)),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, {pid, self()}, 30000)),
    ?assertEqual({ok, {pid, self()}}, wait_replica(Config, K, {ok, {pid, self()}})).

update_replicated(Config) ->
    K = key(Config),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, v1, 30000)),
    ?assertEqual({ok, v1}, wait_replica(Config, K, {ok, v1})),
    ?assertEqual({ok, 1, 1, 1}, lkr:update(K, v1, v2)),
    ?assertEqual({ok, v2}, wait_replica(Config, K, {ok, v2})).

%% The extension reaches the replica: there the lease outlives its first
%% length, while a key that was not extended expires.
extend_replicated(Config) ->
    R = ?config(replica, Config),
    K = key(Config, extended),
    KN = key(Config, not_extended),
    Start = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, v, 2000)),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(KN, v, 2000)),
    ?assertEqual({ok, v}, wait_replica(Config, K, {ok, v})),
    ?assertEqual({ok, v}, wait_replica(Config, KN, {ok, v})),
    ?assertEqual(ok, lkr:extend_lease(K, v, 60000)),
    Gone = 2000 + lockerd_differences:d8(?config(replica_kind, Config)) + 700,
    timer:sleep(max(0, Start + Gone - erlang:monotonic_time(millisecond))),
    lockerd_ct:sbcast([R], expire_leases),
    ?assertEqual(not_found, wait_replica(Config, KN, not_found)),
    ?assertEqual({ok, v}, replica_read(Config, K)).

%% A release that only the master sees reaches the replica through the log.
release_replicated_via_log(Config) ->
    M = ?config(master, Config),
    K = key(Config),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, owner, 30000)),
    ?assertEqual({ok, owner}, wait_replica(Config, K, {ok, owner})),
    T = make_ref(),
    ?assertEqual(ok, gen_server:call({locker, M}, {get_write_lock, K, owner, T})),
    ?assertEqual(ok, gen_server:call({locker, M}, {release, K, owner, T})),
    ?assertEqual(not_found, wait_replica(Config, K, not_found)).

%% lkr:release sends the release to the replica as well.
release_sent_to_replica(Config) ->
    K = key(Config),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, owner, 30000)),
    ?assertEqual({ok, owner}, wait_replica(Config, K, {ok, owner})),
    ?assertEqual({ok, 1, 1, 2}, lkr:release(K, owner)),
    ?assertEqual(not_found, replica_read(Config, K)),
    %% the master's log still carries the release; replaying it is harmless
    timer:sleep(500),
    ?assertEqual(not_found, replica_read(Config, K)).

%% Entries pushed together are replayed in order.
write_then_release_in_one_push(Config) ->
    M = ?config(master, Config),
    K = key(Config),
    KU = key(Config, updated),
    Call = fun(Req) -> gen_server:call({locker, M}, Req) end,
    ?assertEqual(ok, Call({write, make_ref(), K, first, 30000})),
    ?assertEqual(ok, Call({release, K, first, make_ref()})),
    ?assertEqual(ok, Call({write, make_ref(), KU, first, 30000})),
    ?assertEqual(ok, Call({update, make_ref(), KU, second})),
    ?assertEqual({ok, second}, wait_replica(Config, KU, {ok, second})),
    ?assertEqual(not_found, replica_read(Config, K)).

expiry_on_replica(Config) ->
    R = ?config(replica, Config),
    K = key(Config),
    Start = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, brief, 1500)),
    ?assertEqual({ok, brief}, wait_replica(Config, K, {ok, brief})),
    Gone = 1500 + lockerd_differences:d8(?config(replica_kind, Config)) + 700,
    timer:sleep(max(0, Start + Gone - erlang:monotonic_time(millisecond))),
    lockerd_ct:sbcast([R], expire_leases),
    ?assertEqual(not_found, wait_replica(Config, K, not_found)).

%% A waiter on the replica is answered when the key arrives by the log (a
%% replayed write); a release waiter when the release arrives by the log
%% for lockerd, not for the reference (D4: replayed releases wake nobody).
replica_wakes_waiters(Config) ->
    R = ?config(replica, Config),
    M = ?config(master, Config),
    K = key(Config),
    Tag1 = raw_call(R, {wait_for, K, 10000}),
    %% The waiter must be queued before the write reaches the replica by
    %% another path (the master's push): the library queues a wait_for even
    %% for a key already held (D2) and only a later replayed write wakes it.
    %% A call on the same connection is answered after the wait_for is.
    queued_on(R),
    ?assertEqual({ok, 1, 1, 1}, lkr:lock(K, arrived, 30000)),
    ?assertEqual({ok, arrived}, reply_within(Tag1, 5000)),
    ?assertEqual({ok, arrived}, wait_replica(Config, K, {ok, arrived})),
    Tag2 = raw_call(R, {wait_for_release, K, 10000}),
    queued_on(R),
    T = make_ref(),
    ?assertEqual(ok, gen_server:call({locker, M}, {get_write_lock, K, arrived, T})),
    ?assertEqual(ok, gen_server:call({locker, M}, {release, K, arrived, T})),
    %% A release is not pushed ahead of the interval (its coordinator sends
    %% it to the replicas itself; this one went to the master only).
    lockerd_ct:sbcast([M], push_trans_log),
    ?assertEqual(not_found, wait_replica(Config, K, not_found)),
    ?assertEqual(lockerd_differences:d4(?config(replica_kind, Config), replayed_release),
                 reply_within(Tag2, 1000)).

raw_call(Node, Req) ->
    Tag = [alias | alias()],
    erlang:send({locker, Node}, {'$gen_call', {self(), Tag}, Req}),
    Tag.

%% Messages from one process to one node arrive in order, and the server
%% handles them in order: once this call is answered, what this process sent
%% it before has been handled.
queued_on(Node) ->
    {ok, _, _, _, _, _} = lockerd_ct:debug_state(Node),
    ok.

reply_within(Tag, Timeout) ->
    receive {Tag, Reply} -> Reply after Timeout -> no_reply end.
