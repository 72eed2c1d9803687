%% Safe restarts: a lockerd master restarted with empty memory refuses
%% votes on keys it has no record of ({error, recovering}) until every
%% lease it could have granted before has ended, so a majority of masters
%% crashing and coming back cannot hand a held key to a second client.
%%
%% Three lockerd masters, W = 2, the coordinator algorithm (lkr) run from
%% this node. The control case restarts the same way with
%% --quiet-period 0 and shows the second client does get the key: the
%% hazard the quiet period exists for, and proof that the main case would
%% notice its absence.
-module(lockerd_restart_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).
%% Lease of the first holder: long enough to outlive two restarts, below
%% the 10 s write-lock floor so the quiet period is exactly that floor.
-define(LEASE, 8000).
-define(FLOOR_MS, 10000).

suite() ->
    [{timetrap, {seconds, 90}}].

all() ->
    [first_start_votes_at_once,
     majority_restart_keeps_exclusion,
     without_quiet_period_exclusion_breaks,
     explicit_quiet_period,
     bad_state_file_stops_start].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    case lockerd_ct:lockerd_check() of
        ok -> Config;
        {skip, _} = Skip -> Skip
    end.

end_per_suite(_Config) ->
    lockerd_ct:stop_local_server(),
    ok.

init_per_testcase(Case, Config) ->
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case)),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    [{dir, Dir} | Config].

end_per_testcase(_Case, Config) ->
    lockerd_ct:stop_all(proplists:get_value(handles, Config, []) ++ get_started()),
    lockerd_ct:stop_local_server(),
    ok.

%%--------------------------------------------------------------------

first_start_votes_at_once(Config) ->
    [H | _] = cluster(Config, "first"),
    #{node := N, log := Log} = H,
    ?assertEqual(ok, vote(N, key(fresh))),
    State = filename:join(?config(dir, Config), maps:get(name, H) ++ ".state"),
    %% A first start records epoch 1 of the fencing counter.
    ?assertMatch({ok, <<"lockerd-state 1\nlongest_lease_ms 0\nfence_epoch 1\n">>},
                 file:read_file(State)),
    ?assertMatch({ok, _, _, _}, lkr:lock(key(a), v, 2500)),
    %% The 2500 ms lease was recorded, rounded up to the next step.
    ?assertMatch({ok, <<"lockerd-state 1\nlongest_lease_ms 4000\nfence_epoch 1\n">>},
                 file:read_file(State)),
    ?assertNotEqual(nomatch, string:find(read(Log), "first start")).

majority_restart_keeps_exclusion(Config) ->
    [_, H2, H3] = Hs = cluster(Config, "safe"),
    K = key(held),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, first, ?LEASE)),
    T0 = erlang:monotonic_time(millisecond),
    [R2, R3] = [restart(H, Config, []) || H <- [H2, H3]],
    set_started([R2, R3]),
    %% Within the first holder's lease: the restarted majority refuses.
    ?assertEqual({error, no_quorum}, lkr:lock(K, second, 5000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < ?LEASE),
    [?assertEqual({error, recovering}, vote(N, K)) || #{node := N} <- [R2, R3]],
    [?assertEqual({error, recovering}, vote(N, key(other))) || #{node := N} <- [R2, R3]],
    ?assertEqual({error, no_quorum}, lkr:lock(key(other2), v, 5000)),
    [?assertNotEqual(nomatch, string:find(read(L), "restart detected")) || #{log := L} <- [R2, R3]],
    %% The period ends (the floor here) and the cluster serves again.
    ?assert(lockerd_ct:wait_until(fun() -> vote(maps:get(node, R2), key(probe)) =:= ok end,
                                  ?FLOOR_MS + 10000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= ?FLOOR_MS - 1000),
    ?assert(lockerd_ct:wait_until(fun() -> vote(maps:get(node, R3), key(probe)) =:= ok end, 5000)),
    ?assertMatch({ok, ?W, _, _}, lkr:lock(K, second, 2000)),
    [?assertNotEqual(nomatch, string:find(read(L), "quiet period over")) || #{log := L} <- [R2, R3]],
    lockerd_ct:stop_all(Hs).

without_quiet_period_exclusion_breaks(Config) ->
    [_, H2, H3] = cluster(Config, "unsafe"),
    K = key(held),
    ?assertEqual({ok, ?W, 3, 3}, lkr:lock(K, first, ?LEASE)),
    T0 = erlang:monotonic_time(millisecond),
    Rs = [restart(H, Config, ["--quiet-period", "0"]) || H <- [H2, H3]],
    set_started(Rs),
    %% Both restarted masters forgot the key and vote for it: a second
    %% client holds it while the first one's lease still runs.
    ?assertMatch({ok, ?W, _, _}, lkr:lock(K, second, 5000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < ?LEASE).

explicit_quiet_period(Config) ->
    [H | _] = cluster(Config, "explicit", ["--quiet-period", "1500"]),
    #{node := N} = H,
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, recovering}, vote(N, key(a))),
    ?assert(lockerd_ct:wait_until(fun() -> vote(N, key(b)) =:= ok end, 10000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 1000).

bad_state_file_stops_start(Config) ->
    Dir = ?config(dir, Config),
    State = filename:join(Dir, "bad.state"),
    ok = file:write_file(State, <<"not a state file\n">>),
    Name = lockerd_ct:unique_name("bad"),
    Cmd = lists:flatten(io_lib:format("~s -sname ~s -setcookie ~s --state-file ~s 2>&1; echo \"rc=$?\"",
                                      [lockerd_ct:lockerd_bin(), Name, lockerd_ct:cookie(), State])),
    Out = os:cmd(Cmd),
    ct:log("~s~n~s", [Cmd, Out]),
    ?assertNotEqual(nomatch, string:find(Out, "not a lockerd state file")),
    ?assertNotEqual(nomatch, string:find(Out, "--quiet-period")),
    ?assertEqual(nomatch, string:find(Out, "rc=0")).

%%--------------------------------------------------------------------

cluster(Config, Tag) ->
    cluster(Config, Tag, []).

cluster(Config, Tag, Extra) ->
    Names = [lockerd_ct:unique_name(lists:concat(["r", I, "_", Tag])) || I <- [1, 2, 3]],
    Masters = lists:sort([lockerd_ct:node_name(N) || N <- Names]),
    Hs = [lockerd_ct:start_lockerd(N, opts(Config, Masters, Extra)) || N <- Names],
    lockerd_ct:start_local_server(?W, Masters, [node()]),
    set_started(Hs),
    Hs.

opts(Config, Masters, Extra) ->
    #{log_dir => ?config(dir, Config), masters => Masters, replicas => [node()], w => ?W,
      extra_args => Extra}.

%% kill -9, then start again under the same name and state file.
restart(#{name := Name} = H, Config, Extra) ->
    lockerd_ct:kill9(H),
    {Masters, _Replicas, _W} = lkr:get_meta(),
    lockerd_ct:start_lockerd(Name, opts(Config, Masters, Extra)).

vote(Node, Key) ->
    Tag = make_ref(),
    R = gen_server:call({locker, Node}, {get_write_lock, Key, not_found, Tag}, 5000),
    gen_server:call({locker, Node}, {release_write_lock, Tag}, 5000),
    R.

key(Name) ->
    {restart_suite, Name, erlang:unique_integer([positive])}.

read(Log) ->
    {ok, Bin} = file:read_file(Log),
    Bin.

%% Handles to stop at the end of the case, wherever it failed.
set_started(Hs) ->
    put(started, get_started() ++ Hs).

get_started() ->
    case get(started) of
        undefined -> [];
        L -> L
    end.
