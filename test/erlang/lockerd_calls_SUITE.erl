%% Every call, cast and message of docs/protocol.md sections 2-3 against one
%% server, with exact replies. The target is a lockerd node (group lockerd)
%% or a BEAM node running lkr_server (group beam, which validates the suite
%% itself). Each case runs twice: through gen_server:call (group single) and
%% through gen_server:multi_call (group multi).
-module(lockerd_calls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

%% The target pushes only when told to (push_trans_log), so the push cases
%% see exactly the entries they wrote.
-define(PUSH_INTERVAL, 600000).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, lockerd}, {group, beam}].

groups() ->
    Cases = cases(),
    [{lockerd, [], [{group, single}, {group, multi}, write_lock_expiry]},
     {beam, [], [{group, single}, {group, multi}, write_lock_expiry]},
     {single, [], Cases},
     {multi, [], Cases}].

cases() ->
    [get_write_lock_ok,
     get_write_lock_expected_value,
     release_write_lock,
     write_without_lock,
     write_drops_lock,
     update_keeps_expiry,
     update_missing_key,
     extend_lease_absent_key,
     extend_lease_present_key,
     release_ok,
     release_not_owner_drops_lock,
     release_not_found_drops_lock,
     wait_for_immediate,
     wait_for_delayed,
     wait_for_many_waiters,
     wait_for_timeout_no_reply,
     wait_for_release_on_release,
     wait_for_release_on_expiry,
     wait_for_release_timeout_no_reply,
     set_w,
     set_nodes_dedup_and_push,
     get_debug_state_shape,
     unknown_request,
     bad_input_survives,
     trans_log_replay,
     trans_log_wakes_waiters,
     sbcast_jobs,
     expire_leases_now,
     expire_locks_keeps_fresh,
     key_equality,
     distinct_keys,
     rpc_dirty_read].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(lockerd, Config) ->
    case lockerd_ct:lockerd_check() of
        ok ->
            Name = lockerd_ct:unique_name("lkd_calls"),
            Node = lockerd_ct:node_name(Name),
            H = lockerd_ct:start_lockerd(Name,
                                         #{log_dir => ?config(priv_dir, Config),
                                           masters => [Node], w => 1,
                                           push_interval => ?PUSH_INTERVAL}),
            [{target, Node}, {kind, lockerd}, {handle, H} | Config];
        {skip, _} = Skip ->
            Skip
    end;
init_per_group(beam, Config) ->
    Name = lockerd_ct:unique_name("beam_calls"),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_beam_node(Name, {1, [Node], []},
                                   #{server_opts => [{push_interval, ?PUSH_INTERVAL}]}),
    [{target, Node}, {kind, beam}, {handle, H} | Config];
init_per_group(Mode, Config) ->
    [{mode, Mode} | Config].

end_per_group(Group, Config) when Group =:= lockerd; Group =:= beam ->
    lockerd_ct:stop(?config(handle, Config));
end_per_group(_, _Config) ->
    ok.

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Helpers

target(Config) ->
    ?config(target, Config).

mode(Config) ->
    case ?config(mode, Config) of
        undefined -> single;
        M -> M
    end.

key(Config) ->
    key(Config, 0).

key(Config, N) ->
    {calls_test, ?config(tc, Config), mode(Config), N}.

call(Config, Req) ->
    call(Config, Req, 5000).

call(Config, Req, Timeout) ->
    Node = target(Config),
    case mode(Config) of
        single ->
            gen_server:call({locker, Node}, Req, Timeout);
        multi ->
            case gen_server:multi_call([Node], locker, Req, Timeout) of
                {[{Node, Reply}], []} -> Reply;
                Other -> ct:fail({multi_call_result, Req, Other})
            end
    end.

%% The call runs in another process; collect its result with await/2.
async_call(Config, Req, Timeout) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> Parent ! {Ref, catch call(Config, Req, Timeout)} end),
    Ref.

await(Ref, Timeout) ->
    receive
        {Ref, Result} -> Result
    after Timeout ->
            ct:fail({no_result_within, Timeout})
    end.

%% A '$gen_call' sent by hand, with the From shape of the group's mode;
%% returns the reply tag.
raw_call(Config, Req) ->
    Node = target(Config),
    Tag = case mode(Config) of
              single -> [alias | alias()];
              multi -> {make_ref(), node()}
          end,
    erlang:send({locker, Node}, {'$gen_call', {self(), Tag}, Req}),
    Tag.

expect_no_reply(Tag, Timeout) ->
    receive
        {Tag, Reply} -> ct:fail({unexpected_reply, Reply})
    after Timeout ->
            ok
    end.

write(Config, Key, Value, Len) ->
    ?assertEqual(ok, call(Config, {write, make_ref(), Key, Value, Len})).

lease(Config, Key) ->
    lockerd_ct:lease_on(target(Config), Key).

lease_entry(Config, Key) ->
    [E] = [E || {K, _, _} = E <- lockerd_ct:leases(target(Config)), K =:= Key],
    E.

locks_of(Config, Key) ->
    [{K, T} || {K, T, _} <- lockerd_ct:write_locks(target(Config)), K =:= Key].

sbcast(Config, Msg) ->
    Node = target(Config),
    ?assertEqual({[Node], []}, lockerd_ct:sbcast([Node], Msg)).

%%--------------------------------------------------------------------
%% get_write_lock / release_write_lock

get_write_lock_ok(Config) ->
    K = key(Config),
    T1 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T1})),
    ?assertEqual([{K, T1}], locks_of(Config, K)),
    ?assertEqual({error, already_locked}, call(Config, {get_write_lock, K, not_found, make_ref()})),
    %% already_locked wins over a wrong expected value
    ?assertEqual({error, already_locked}, call(Config, {get_write_lock, K, other, make_ref()})),
    %% the same tag again is still a second lock attempt
    ?assertEqual({error, already_locked}, call(Config, {get_write_lock, K, not_found, T1})),
    ?assertEqual(ok, call(Config, {release_write_lock, T1})),
    ?assertEqual([], locks_of(Config, K)).

get_write_lock_expected_value(Config) ->
    K = key(Config),
    Absent = key(Config, absent),
    ?assertEqual({error, not_expected_value}, call(Config, {get_write_lock, Absent, some_value, make_ref()})),
    write(Config, K, {value, 1}, 60000),
    ?assertEqual({error, not_expected_value}, call(Config, {get_write_lock, K, not_found, make_ref()})),
    ?assertEqual({error, not_expected_value}, call(Config, {get_write_lock, K, {value, 2}, make_ref()})),
    ?assertEqual({error, not_expected_value}, call(Config, {get_write_lock, K, {value, 1.0}, make_ref()})),
    ?assertEqual([], locks_of(Config, K)),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, {value, 1}, T})),
    ?assertEqual([{K, T}], locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T})).

release_write_lock(Config) ->
    K = key(Config),
    T1 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T1})),
    ?assertEqual(ok, call(Config, {release_write_lock, make_ref()})),
    ?assertEqual([{K, T1}], locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T1})),
    ?assertEqual([], locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T1})),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T2})),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})).

%%--------------------------------------------------------------------
%% write / update / extend_lease

write_without_lock(Config) ->
    K = key(Config),
    ?assertEqual(ok, call(Config, {write, make_ref(), K, <<"v1">>, 60000})),
    ?assertEqual({ok, <<"v1">>}, lease(Config, K)),
    ?assertEqual(ok, call(Config, {write, make_ref(), K, <<"v2">>, 60000})),
    ?assertEqual({ok, <<"v2">>}, lease(Config, K)).

write_drops_lock(Config) ->
    K = key(Config),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    ?assertEqual(ok, call(Config, {write, T, K, self(), 60000})),
    ?assertEqual([], locks_of(Config, K)),
    ?assertEqual({ok, self()}, lease(Config, K)),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, self(), T2})),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})).

%% ExpireAt may be reported through a clock conversion (a millisecond of
%% jitter); a lease whose expiry was reset by the update would have moved
%% by the 400 ms slept in between.
update_keeps_expiry(Config) ->
    K = key(Config),
    write(Config, K, v1, 60000),
    {K, v1, Exp} = lease_entry(Config, K),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, v1, T})),
    timer:sleep(400),
    ?assertEqual(ok, call(Config, {update, T, K, v2})),
    {K, v2, Exp2} = lease_entry(Config, K),
    ?assert(abs(Exp2 - Exp) =< 100),
    ?assertEqual([], locks_of(Config, K)).

update_missing_key(Config) ->
    K = key(Config),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    ?assertEqual(ok, call(Config, {update, T, K, v2})),
    ?assertEqual(not_found, lease(Config, K)),
    ?assertEqual([], locks_of(Config, K)).

extend_lease_absent_key(Config) ->
    K = key(Config),
    ?assertEqual(not_found, lease(Config, K)),
    ?assertEqual(ok, call(Config, {extend_lease, make_ref(), K, {caught, up}, 60000})),
    ?assertEqual({ok, {caught, up}}, lease(Config, K)).

extend_lease_present_key(Config) ->
    K = key(Config),
    write(Config, K, v1, 30000),
    {K, v1, Exp1} = lease_entry(Config, K),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, v1, T})),
    ?assertEqual(ok, call(Config, {extend_lease, T, K, v1, 120000})),
    {K, v1, Exp2} = lease_entry(Config, K),
    ?assert(Exp2 > Exp1),
    ?assertEqual([], locks_of(Config, K)).

%%--------------------------------------------------------------------
%% release

release_ok(Config) ->
    K = key(Config),
    write(Config, K, owner, 60000),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, owner, T})),
    ?assertEqual(ok, call(Config, {release, K, owner, T})),
    ?assertEqual(not_found, lease(Config, K)),
    ?assertEqual([], locks_of(Config, K)),
    ?assertEqual({error, not_found}, call(Config, {release, K, owner, make_ref()})).

release_not_owner_drops_lock(Config) ->
    K = key(Config),
    write(Config, K, owner, 60000),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, owner, T})),
    ?assertEqual({error, not_owner}, call(Config, {release, K, intruder, T})),
    ?assertEqual({ok, owner}, lease(Config, K)),
    %% lockerd semantics: the error path drops the write lock at once
    ?assertEqual([], locks_of(Config, K)),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, owner, T2})),
    ?assertEqual(ok, call(Config, {release, K, owner, T2})),
    ?assertEqual(not_found, lease(Config, K)).

release_not_found_drops_lock(Config) ->
    K = key(Config),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    ?assertEqual({error, not_found}, call(Config, {release, K, anything, T})),
    ?assertEqual([], locks_of(Config, K)),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T2})),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})).

%%--------------------------------------------------------------------
%% wait_for / wait_for_release

wait_for_immediate(Config) ->
    K = key(Config),
    write(Config, K, here, 60000),
    ?assertEqual({ok, here}, call(Config, {wait_for, K, 1000})),
    ?assertEqual({ok, here}, call(Config, {wait_for, K, 0})).

wait_for_delayed(Config) ->
    KW = key(Config, write),
    KE = key(Config, extend),
    RW = async_call(Config, {wait_for, KW, 10000}, 12000),
    RE = async_call(Config, {wait_for, KE, 10000}, 12000),
    timer:sleep(300),
    write(Config, KW, written, 60000),
    ?assertEqual({ok, written}, await(RW, 5000)),
    ?assertEqual(ok, call(Config, {extend_lease, make_ref(), KE, extended, 60000})),
    ?assertEqual({ok, extended}, await(RE, 5000)).

wait_for_many_waiters(Config) ->
    K = key(Config),
    Refs = [async_call(Config, {wait_for, K, 10000}, 12000) || _ <- lists:seq(1, 20)],
    timer:sleep(300),
    write(Config, K, {for, all}, 60000),
    [?assertEqual({ok, {for, all}}, await(R, 5000)) || R <- Refs].

wait_for_timeout_no_reply(Config) ->
    K = key(Config),
    Tag = raw_call(Config, {wait_for, K, 300}),
    expect_no_reply(Tag, 1500),
    %% the waiter is gone: a later write does not answer it
    write(Config, K, late, 60000),
    expect_no_reply(Tag, 1000),
    ?assertEqual({ok, late}, call(Config, {wait_for, K, 1000})).

wait_for_release_on_release(Config) ->
    K = key(Config),
    write(Config, K, held, 60000),
    R = async_call(Config, {wait_for_release, K, 10000}, 12000),
    timer:sleep(300),
    ?assertEqual(ok, call(Config, {release, K, held, make_ref()})),
    ?assertEqual({ok, released}, await(R, 5000)).

wait_for_release_on_expiry(Config) ->
    K = key(Config),
    write(Config, K, short, 1000),
    R = async_call(Config, {wait_for_release, K, 10000}, 12000),
    timer:sleep(1500),
    sbcast(Config, expire_leases),
    ?assertEqual({ok, released}, await(R, 5000)),
    ?assertEqual(not_found, lease(Config, K)).

wait_for_release_timeout_no_reply(Config) ->
    K = key(Config),
    write(Config, K, held, 60000),
    Tag = raw_call(Config, {wait_for_release, K, 300}),
    expect_no_reply(Tag, 1500),
    ?assertEqual(ok, call(Config, {release, K, held, make_ref()})),
    expect_no_reply(Tag, 1000).

%%--------------------------------------------------------------------
%% meta

set_w(Config) ->
    ?assertEqual(ok, call(Config, {set_w, 3})),
    ?assertEqual(ok, call(Config, {set_w, 2})),
    beam_meta_check(Config, fun({_, _, W}) -> ?assertEqual(2, W) end),
    ?assertEqual(ok, call(Config, {set_w, 1})),
    beam_meta_check(Config, fun({_, _, W}) -> ?assertEqual(1, W) end),
    ?assertMatch({ok, _, _, _, _, _}, call(Config, get_debug_state)).

%% The target pushes its log to each replica once (the list is
%% deduplicated), oldest entry first, as a '$gen_cast' trans_log. This
%% process stands in for the replica's locker server.
set_nodes_dedup_and_push(Config) ->
    Node = target(Config),
    Me = node(),
    true = register(locker, self()),
    try
        Masters = [Node, 'zz_fake_master@nohost', Node, 'aa_fake_master@nohost'],
        ?assertEqual(ok, call(Config, {set_nodes, Masters, [Me, Me]})),
        beam_meta_check(Config, fun({M, R, _}) ->
                                        ?assertEqual(lists:usort(Masters), M),
                                        ?assertEqual([Me], R)
                                end),
        sbcast(Config, push_trans_log),
        flush_trans_logs(Node, 500),
        %% As a user's suite does: stop the periodic push (on lockerd, every
        %% push) so that the log leaves only on push_trans_log.
        {ok, _, _, _, _, PushJob} = call(Config, get_debug_state),
        ?assertEqual({ok, cancel}, rpc:call(Node, timer, cancel, [PushJob])),
        K = key(Config, 1),
        K2 = key(Config, 2),
        T = make_ref(),
        ?assertEqual(ok, call(Config, {write, make_ref(), K, v1, 60000})),
        ?assertEqual(ok, call(Config, {update, make_ref(), K, v2})),
        ?assertEqual(ok, call(Config, {extend_lease, make_ref(), K, v2, 30000})),
        ?assertEqual(ok, call(Config, {get_write_lock, K, v2, T})),
        ?assertEqual(ok, call(Config, {release, K, v2, T})),
        ?assertEqual(ok, call(Config, {write, make_ref(), K2, x, 1000})),
        sbcast(Config, push_trans_log),
        Expected = [{write, K, v1, 60000}, {update, K, v2}, {extend_lease, K, v2, 30000},
                    {release, K}, {write, K2, x, 1000}],
        receive
            {'$gen_cast', {trans_log, Node, Entries}} ->
                ?assertEqual(Expected, Entries)
        after 5000 ->
                ct:fail(no_trans_log_pushed)
        end,
        receive
            {'$gen_cast', {trans_log, Node, Again}} -> ct:fail({second_push, Again})
        after 700 ->
                ok
        end,
        %% an empty log is not pushed
        sbcast(Config, push_trans_log),
        receive
            {'$gen_cast', {trans_log, Node, Empty}} -> ?assertEqual([], Empty)
        after 700 ->
                ok
        end
    after
        call(Config, {set_nodes, [Node], []}),
        unregister(locker)
    end.

flush_trans_logs(Node, Timeout) ->
    receive
        {'$gen_cast', {trans_log, Node, _}} -> flush_trans_logs(Node, Timeout)
    after Timeout ->
            ok
    end.

beam_meta_check(Config, Check) ->
    case ?config(kind, Config) of
        beam -> Check(erpc:call(target(Config), lkr, get_meta, []));
        lockerd -> ok
    end.

get_debug_state_shape(Config) ->
    K = key(Config, lease),
    KL = key(Config, lock),
    T = make_ref(),
    write(Config, K, {v, 1}, 60000),
    ?assertEqual(ok, call(Config, {get_write_lock, KL, not_found, T})),
    {ok, Locks, Leases, _R1, _R2, _R3} = call(Config, get_debug_state),
    ?assert(is_list(Locks)),
    ?assert(is_list(Leases)),
    ?assert(lists:all(fun(E) -> is_tuple(E) andalso tuple_size(E) =:= 3 end, Locks ++ Leases)),
    ?assertMatch([{KL, T, _}], [E || {Kx, _, _} = E <- Locks, Kx =:= KL]),
    ?assertMatch([{K, {v, 1}, _}], [E || {Kx, _, _} = E <- Leases, Kx =:= K]),
    ?assertEqual(ok, call(Config, {release_write_lock, T})).

%%--------------------------------------------------------------------
%% bad input

unknown_request(Config) ->
    Reqs = [{foo, bar}, some_atom, {get_write_lock, only_one},
            {set_w}, #{request => map}, <<"binary request">>, [a, list],
            {release, k, v, t, extra}, 42],
    [?assertEqual({error, {unknown_request, R}}, call(Config, R)) || R <- Reqs],
    ?assertMatch({ok, _, _, _, _, _}, call(Config, get_debug_state)).

bad_input_survives(Config) ->
    Node = target(Config),
    K = key(Config),
    ?assertMatch({error, _}, call(Config, {write, make_ref(), K, v, not_an_integer})),
    ?assertMatch({error, _}, call(Config, {extend_lease, make_ref(), K, v, "ten"})),
    gen_server:cast({locker, Node}, {trans_log, node(), not_a_list}),
    gen_server:cast({locker, Node}, {trans_log, node(), [garbage, {write, K}, {release}]}),
    gen_server:cast({locker, Node}, {no_such_cast, 1}),
    erlang:send({locker, Node}, {plain, garbage, message}),
    erlang:send({locker, Node}, <<"not even a tuple">>),
    ?assertMatch({ok, _, _, _, _, _}, call(Config, get_debug_state)),
    ?assertEqual(not_found, lease(Config, K)).

%%--------------------------------------------------------------------
%% casts and plain messages

trans_log_replay(Config) ->
    Node = target(Config),
    [K1, K2, K3, K4, K5] = [key(Config, N) || N <- lists:seq(1, 5)],
    write(Config, K5, present, 60000),
    Entries = [{write, K1, v1, 60000},
               {update, K1, v2},
               {extend_lease, K2, x, 60000},
               {write, K3, y, 60000},
               {release, K3},
               {update, K4, never},
               {release, K5},
               {write, K2, x2, 60000}],
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost', Entries}),
    Check = fun() -> [lease(Config, K) || K <- [K1, K2, K3, K4, K5]] end,
    Expected = [{ok, v2}, {ok, x2}, not_found, not_found, not_found],
    ?assertEqual(Expected, lockerd_ct:wait_value(Check, Expected, 5000)).

trans_log_wakes_waiters(Config) ->
    Node = target(Config),
    K = key(Config, 1),
    KR = key(Config, 2),
    write(Config, KR, held, 60000),
    R1 = async_call(Config, {wait_for, K, 10000}, 12000),
    R2 = async_call(Config, {wait_for_release, KR, 10000}, 12000),
    timer:sleep(300),
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost',
                                     [{write, K, from_log, 60000}, {release, KR}]}),
    ?assertEqual({ok, from_log}, await(R1, 5000)),
    ?assertEqual({ok, released}, await(R2, 5000)).

sbcast_jobs(Config) ->
    Node = target(Config),
    [sbcast(Config, M) || M <- [expire_leases, expire_locks, push_trans_log]],
    ?assertEqual({[], [Node]}, rpc:sbcast([Node], no_such_registered_name, hello)),
    ?assertMatch({ok, _, _, _, _, _}, call(Config, get_debug_state)).

expire_leases_now(Config) ->
    KS = key(Config, short),
    KL = key(Config, long),
    write(Config, KS, short, 200),
    write(Config, KL, long, 60000),
    timer:sleep(600),
    sbcast(Config, expire_leases),
    ?assertEqual(not_found, lockerd_ct:wait_value(fun() -> lease(Config, KS) end, not_found, 2000)),
    ?assertEqual({ok, long}, lease(Config, KL)).

expire_locks_keeps_fresh(Config) ->
    K = key(Config),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    sbcast(Config, expire_locks),
    ?assertEqual([{K, T}], locks_of(Config, K)),
    ?assertEqual({error, already_locked}, call(Config, {get_write_lock, K, not_found, make_ref()})),
    ?assertEqual(ok, call(Config, {release_write_lock, T})).

%% A write lock lives 10 s at most.
write_lock_expiry(Config) ->
    K = key(Config),
    T = make_ref(),
    Start = erlang:monotonic_time(millisecond),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    timer:sleep(3000),
    sbcast(Config, expire_locks),
    ?assertEqual({error, already_locked}, call(Config, {get_write_lock, K, not_found, make_ref()})),
    timer:sleep(max(0, 10500 - (erlang:monotonic_time(millisecond) - Start))),
    T2 = make_ref(),
    Try = fun() ->
                  sbcast(Config, expire_locks),
                  call(Config, {get_write_lock, K, not_found, T2})
          end,
    ?assertEqual(ok, lockerd_ct:wait_value(Try, ok, 3000)),
    ?assertEqual([{K, T2}], locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})).

%%--------------------------------------------------------------------
%% keys and values: exact term equality whatever the encoding

keys() ->
    Big = maps:from_list([{integer_to_list(I), I} || I <- lists:seq(1, 40)]),
    [1 bsl 40, -(1 bsl 40), 1 bsl 64, -(1 bsl 64), 255, 256, 1 bsl 27, -(1 bsl 27) - 1,
     (1 bsl 31), -(1 bsl 31) - 1, (1 bsl 32) + 1, 1.5, -0.25, 1.0e300,
     "abc", <<"abc">>, abc, 'ätöm', "ünïcödé", <<"ü"/utf8>>, <<1:3>>, [],
     [1, 2, 3 | tail], {1 bsl 40, "x"}, {}, {nested, {[<<>>], #{}}},
     lists:seq(1, 300), lists:duplicate(70000, $a),
     #{a => 1, "b" => [2], <<"c">> => {3}}, Big,
     self(), make_ref()].

key_equality(Config) ->
    Mode = mode(Config),
    Raw = keys(),
    Keys = [{key_equality, Mode, K} || K <- Raw],
    Indexed = lists:zip(lists:seq(1, length(Keys)), Keys),
    [write(Config, K, {value, I, K}, 60000) || {I, K} <- Indexed],
    Leases = lockerd_ct:leases(target(Config)),
    [begin
         ?assertEqual([{value, I, K}], [V || {Kx, V, _} <- Leases, Kx =:= K]),
         T = make_ref(),
         ?assertEqual(ok, call(Config, {get_write_lock, rebuild(K), {value, I, rebuild(K)}, T})),
         ?assertEqual(ok, call(Config, {release_write_lock, T}))
     end || {I, K} <- Indexed],
    %% a map built in another order, and a big integer computed differently
    Big1 = maps:from_list([{integer_to_list(I), I} || I <- lists:seq(1, 40)]),
    Big2 = lists:foldl(fun(I, M) -> M#{integer_to_list(I) => I} end, #{},
                       lists:reverse(lists:seq(1, 40))),
    BigIndex = index_of(Big1, Raw),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, {key_equality, Mode, Big2},
                                   {value, BigIndex, {key_equality, Mode, Big1}}, T2})),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})),
    N40 = (1 bsl 20) * (1 bsl 20),
    ?assertEqual({ok, {value, 1, {key_equality, Mode, 1 bsl 40}}},
                 lease(Config, {key_equality, Mode, N40})).

rebuild(Term) ->
    binary_to_term(term_to_binary(Term)).

index_of(X, L) ->
    length(lists:takewhile(fun(Y) -> Y =/= X end, L)) + 1.

%% Terms that are == but not =:= are different keys; so are strings and
%% binaries, atoms and strings.
distinct_keys(Config) ->
    Pairs = [{1, 1.0}, {1 bsl 40, float(1 bsl 40)}, {"abc", <<"abc">>}, {abc, "abc"},
             {[1], [1.0]}, {#{a => 1}, #{a => 1.0}}, {{1, 2}, {1.0, 2}}, {<<1:3>>, <<1:4>>},
             {[], <<>>}, {[], {}}],
    [begin
         KA = {distinct, mode(Config), I, A},
         KB = {distinct, mode(Config), I, B},
         write(Config, KA, a, 60000),
         ?assertEqual(not_found, lease(Config, KB)),
         T = make_ref(),
         ?assertEqual(ok, call(Config, {get_write_lock, KB, not_found, T})),
         ?assertEqual(ok, call(Config, {release_write_lock, T})),
         ?assertEqual({error, not_expected_value},
                      call(Config, {get_write_lock, KA, b, make_ref()})),
         %% values compare with =:= too
         write(Config, KB, A, 60000),
         ?assertEqual({error, not_expected_value},
                      call(Config, {get_write_lock, KB, B, make_ref()}))
     end || {I, {A, B}} <- lists:zip(lists:seq(1, length(Pairs)), Pairs)],
    ok.

%% dirty_read through rpc:call, as lkr:master_dirty_read/1 does it.
rpc_dirty_read(Config) ->
    Node = target(Config),
    Mod = case ?config(kind, Config) of
              lockerd -> locker;
              beam -> lkr
          end,
    K = key(Config),
    ?assertEqual({error, not_found}, rpc:call(Node, Mod, dirty_read, [K])),
    write(Config, K, {read, me}, 60000),
    ?assertEqual({ok, {read, me}}, rpc:call(Node, Mod, dirty_read, [K])).
