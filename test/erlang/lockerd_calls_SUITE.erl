%% Every call, cast and message of docs/protocol.md sections 2-3 against one
%% server, with exact replies. The target is a lockerd node (group lockerd)
%% or a BEAM node running lkr_server, the model of the library (group
%% beam). Both groups expect the same replies, except for the documented
%% differences of section 2a, whose expected values per kind come from
%% lockerd_differences (d1..d8) and nowhere else. Each case runs twice:
%% through gen_server:call (group single) and through gen_server:multi_call
%% (group multi).
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
     release_not_owner_lock,
     release_not_found_lock,
     wait_for_immediate,
     wait_for_delayed,
     wait_for_many_waiters,
     wait_for_timeout_no_reply,
     wait_for_release_on_release,
     wait_for_release_on_release_errors,
     wait_for_release_not_held,
     wait_for_release_on_expiry,
     wait_for_release_timeout,
     set_w,
     set_nodes_dedup_and_push,
     get_debug_state_shape,
     unknown_request,
     bad_input,
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
                                   #{server_opts => beam_server_opts()}),
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

beam_server_opts() ->
    [{push_interval, ?PUSH_INTERVAL}].

target(Config) ->
    ?config(target, Config).

kind(Config) ->
    ?config(kind, Config).

%% A BEAM target crashed on purpose (D7): start its server again.
restart_beam_target(Config) ->
    Node = target(Config),
    undefined = erpc:call(Node, erlang, whereis, [locker]),
    {ok, _} = erpc:call(Node, lkr_server, start, [1, [Node], [], beam_server_opts()]),
    ok.

%% The reply to a call sent by raw_call/2 within Timeout ms, or no_reply.
reply_within(Tag, Timeout) ->
    receive
        {Tag, Reply} -> Reply
    after Timeout ->
            no_reply
    end.

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

%% ExpireAt is in whole seconds: a lease whose expiry was reset by the
%% update would have moved by a second after the 1100 ms slept in between.
update_keeps_expiry(Config) ->
    K = key(Config),
    write(Config, K, v1, 60000),
    {K, v1, Exp} = lease_entry(Config, K),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, v1, T})),
    timer:sleep(1100),
    ?assertEqual(ok, call(Config, {update, T, K, v2})),
    ?assertEqual({K, v2, Exp}, lease_entry(Config, K)),
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

%% D1: the error answer keeps (beam) or drops (lockerd) the caller's lock.
release_not_owner_lock(Config) ->
    K = key(Config),
    write(Config, K, owner, 60000),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, owner, T})),
    ?assertEqual({error, not_owner}, call(Config, {release, K, intruder, T})),
    ?assertEqual({ok, owner}, lease(Config, K)),
    ?assertEqual(lockerd_differences:d1(kind(Config), [{K, T}]), locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T})),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, owner, T2})),
    ?assertEqual(ok, call(Config, {release, K, owner, T2})),
    ?assertEqual(not_found, lease(Config, K)),
    ?assertEqual([], locks_of(Config, K)).

release_not_found_lock(Config) ->
    K = key(Config),
    T = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T})),
    ?assertEqual({error, not_found}, call(Config, {release, K, anything, T})),
    ?assertEqual(lockerd_differences:d1(kind(Config), [{K, T}]), locks_of(Config, K)),
    ?assertEqual(ok, call(Config, {release_write_lock, T})),
    T2 = make_ref(),
    ?assertEqual(ok, call(Config, {get_write_lock, K, not_found, T2})),
    ?assertEqual(ok, call(Config, {release_write_lock, T2})).

%%--------------------------------------------------------------------
%% wait_for / wait_for_release

%% D2: a direct wait_for on a key that holds a lease.
wait_for_immediate(Config) ->
    K = key(Config),
    write(Config, K, here, 60000),
    Expected = lockerd_differences:d2(kind(Config), here),
    ?assertEqual(Expected, reply_within(raw_call(Config, {wait_for, K, 1000}), 1500)),
    ?assertEqual(Expected, reply_within(raw_call(Config, {wait_for, K, 0}), 500)).

%% D3: which writes of the key answer its wait_for waiters.
wait_for_delayed(Config) ->
    Node = target(Config),
    Kind = kind(Config),
    [KW, KE, KRW, KRE] = [key(Config, N) || N <- [write, extend, replayed_write, replayed_extend]],
    [TW, TE, TRW, TRE] = [raw_call(Config, {wait_for, K, 3000}) || K <- [KW, KE, KRW, KRE]],
    write(Config, KW, written, 60000),
    ?assertEqual(ok, call(Config, {extend_lease, make_ref(), KE, extended, 60000})),
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost',
                                     [{write, KRW, replayed, 60000},
                                      {extend_lease, KRE, replayed_ext, 60000}]}),
    ?assertEqual(lockerd_differences:d3(Kind, direct_write, written), reply_within(TW, 3500)),
    ?assertEqual(lockerd_differences:d3(Kind, direct_extend, extended), reply_within(TE, 500)),
    ?assertEqual(lockerd_differences:d3(Kind, replayed_write, replayed), reply_within(TRW, 500)),
    ?assertEqual(lockerd_differences:d3(Kind, replayed_extend, replayed_ext),
                 reply_within(TRE, 500)),
    [?assertEqual({ok, V}, lease(Config, K))
     || {K, V} <- [{KW, written}, {KE, extended}, {KRW, replayed}, {KRE, replayed_ext}]].

%% Every waiter of the key is answered, by a replayed write for both kinds.
wait_for_many_waiters(Config) ->
    Node = target(Config),
    K = key(Config),
    Tags = [raw_call(Config, {wait_for, K, 10000}) || _ <- lists:seq(1, 20)],
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost',
                                     [{write, K, {for, all}, 60000}]}),
    [?assertEqual({ok, {for, all}}, reply_within(T, 5000)) || T <- Tags].

wait_for_timeout_no_reply(Config) ->
    Node = target(Config),
    K = key(Config),
    Tag = raw_call(Config, {wait_for, K, 300}),
    expect_no_reply(Tag, 1500),
    %% the waiter is gone: a later write of the key does not answer it
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost', [{write, K, late, 60000}]}),
    expect_no_reply(Tag, 1000),
    ?assertEqual({ok, late}, lease(Config, K)).

wait_for_release_on_release(Config) ->
    K = key(Config),
    write(Config, K, held, 60000),
    Tag = raw_call(Config, {wait_for_release, K, 10000}),
    ?assertEqual(ok, call(Config, {release, K, held, make_ref()})),
    ?assertEqual({ok, released}, reply_within(Tag, 5000)).

%% D4: release calls answered not_owner / not_found, and replayed releases.
wait_for_release_on_release_errors(Config) ->
    Node = target(Config),
    Kind = kind(Config),
    KO = key(Config, not_owner),
    KR = key(Config, replayed),
    write(Config, KO, held, 60000),
    write(Config, KR, held, 60000),
    TO = raw_call(Config, {wait_for_release, KO, 2000}),
    TR = raw_call(Config, {wait_for_release, KR, 2000}),
    ?assertEqual({error, not_owner}, call(Config, {release, KO, intruder, make_ref()})),
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost', [{release, KR}]}),
    ?assertEqual(lockerd_differences:d4(Kind, release_not_owner), reply_within(TO, 1000)),
    ?assertEqual(lockerd_differences:d4(Kind, replayed_release), reply_within(TR, 1000)),
    ?assertEqual({ok, held}, lease(Config, KO)),
    ?assertEqual(not_found, lease(Config, KR)),
    ?assertEqual(ok, call(Config, {release, KO, held, make_ref()})),
    %% a waiter left queued is answered by the next release of the key
    flush_tag(TO),
    flush_tag(TR).

flush_tag(Tag) ->
    receive {Tag, _} -> ok after 0 -> ok end.

%% D6, then D4 (a release answered not_found) for the waiter left queued.
wait_for_release_not_held(Config) ->
    Kind = kind(Config),
    K = key(Config),
    Tag = raw_call(Config, {wait_for_release, K, 2000}),
    ?assertEqual(lockerd_differences:d6(Kind), reply_within(Tag, 1000)),
    ?assertEqual({error, not_found}, call(Config, {release, K, anything, make_ref()})),
    Left = case lockerd_differences:d6(Kind) of
               no_reply -> lockerd_differences:d4(Kind, release_not_found);
               _ -> no_reply
           end,
    ?assertEqual(Left, reply_within(Tag, 1000)).

%% D8: gone once Len + d8 ms have passed and an expiry check ran.
wait_for_release_on_expiry(Config) ->
    K = key(Config),
    write(Config, K, short, 1000),
    Tag = raw_call(Config, {wait_for_release, K, 10000}),
    timer:sleep(1000 + lockerd_differences:d8(kind(Config)) + 200),
    sbcast(Config, expire_leases),
    ?assertEqual({ok, released}, reply_within(Tag, 5000)),
    ?assertEqual(not_found, lease(Config, K)).

%% D5: a waiter whose timeout passed, then the key is released.
wait_for_release_timeout(Config) ->
    K = key(Config),
    write(Config, K, held, 60000),
    Tag = raw_call(Config, {wait_for_release, K, 300}),
    expect_no_reply(Tag, 1000),
    ?assertEqual(ok, call(Config, {release, K, held, make_ref()})),
    ?assertEqual(lockerd_differences:d5(kind(Config)), reply_within(Tag, 1000)).

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
        beam -> Check(erpc:call(target(Config), locker, get_meta, []));
        lockerd -> ok
    end.

%% ExpireAt in whole wall-clock seconds: NowSeconds + 10 for a write lock;
%% for a lease trunc(NowSeconds + Len / 1000) (whole-second lengths), or
%% what D8 allows (other lengths); three {interval, Ref} job handles.
get_debug_state_shape(Config) ->
    K = key(Config, lease),
    KH = key(Config, half),
    KL = key(Config, lock),
    T = make_ref(),
    S0 = lkr_server:now_seconds(),
    write(Config, K, {v, 1}, 60000),
    write(Config, KH, {v, 2}, 2500),
    ?assertEqual(ok, call(Config, {get_write_lock, KL, not_found, T})),
    {ok, Locks, Leases, R1, R2, R3} = call(Config, get_debug_state),
    S1 = lkr_server:now_seconds(),
    ?assert(is_list(Locks)),
    ?assert(is_list(Leases)),
    ?assert(lists:all(fun(E) -> is_tuple(E) andalso tuple_size(E) =:= 3 end, Locks ++ Leases)),
    [{KL, T, LockExp}] = [E || {Kx, _, _} = E <- Locks, Kx =:= KL],
    [{K, {v, 1}, Exp}] = [E || {Kx, _, _} = E <- Leases, Kx =:= K],
    [{KH, {v, 2}, ExpH}] = [E || {Kx, _, _} = E <- Leases, Kx =:= KH],
    one_of({lock, LockExp}, [{lock, S + 10} || S <- lists:seq(S0, S1)]),
    one_of({lease_60000, Exp}, [{lease_60000, S + 60} || S <- lists:seq(S0, S1)]),
    one_of({lease_2500, ExpH},
           [{lease_2500, E} || E <- lockerd_differences:d8(kind(Config), 2500, S0, S1)]),
    [?assertMatch({interval, Ref} when is_reference(Ref), R) || R <- [R1, R2, R3]],
    ?assertEqual(3, length(lists:usort([R1, R2, R3]))),
    ?assertEqual(ok, call(Config, {release_write_lock, T})).

one_of(X, Candidates) ->
    case lists:member(X, Candidates) of
        true -> ok;
        false -> ct:fail({expected_one_of, Candidates, got, X})
    end.

%%--------------------------------------------------------------------
%% bad input

%% D7: a lockerd target answers {error, {unknown_request, Req}} and
%% survives; a beam target crashes (the caller exits, the node has no
%% locker until it is started again).
unknown_request(Config) ->
    K = key(Config),
    Reqs = [{foo, bar}, some_atom, {get_write_lock, only_one},
            {set_w}, {set_w, not_an_integer}, #{request => map}, <<"binary request">>,
            [a, list], {release, k, v, t, extra}, 42,
            {write, make_ref(), K, v, not_an_integer}, {extend_lease, make_ref(), K, v, "ten"}],
    [bad_call(Config, R) || R <- Reqs],
    ?assertEqual(not_found, lease(Config, K)).

bad_call(Config, Req) ->
    Node = target(Config),
    case lockerd_differences:d7(kind(Config), Req) of
        crash ->
            case mode(Config) of
                single ->
                    ?assertMatch({'EXIT', {_, {gen_server, call, _}}},
                                 catch gen_server:call({locker, Node}, Req, 5000));
                multi ->
                    ?assertEqual({[], [Node]}, gen_server:multi_call([Node], locker, Req, 5000))
            end,
            ?assertEqual(undefined, erpc:call(Node, erlang, whereis, [locker])),
            restart_beam_target(Config);
        Reply ->
            ?assertEqual(Reply, call(Config, Req))
    end,
    ?assertMatch({ok, _, _, _, _, _}, call(Config, get_debug_state)).

bad_input(Config) ->
    Node = target(Config),
    K = key(Config),
    Casts = [{trans_log, node(), not_a_list},
             {trans_log, node(), [garbage, {write, K}, {release}]},
             {no_such_cast, 1}],
    [begin
         gen_server:cast({locker, Node}, C),
         case lockerd_differences:d7(kind(Config), cast) of
             crash ->
                 ?assert(lockerd_ct:wait_until(
                           fun() -> erpc:call(Node, erlang, whereis, [locker]) =:= undefined end,
                           5000)),
                 restart_beam_target(Config);
             survive ->
                 ok
         end
     end || C <- Casts],
    %% plain messages nobody asked for are ignored by both kinds
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
    T1 = raw_call(Config, {wait_for, K, 10000}),
    T2 = raw_call(Config, {wait_for_release, KR, 10000}),
    gen_server:cast({locker, Node}, {trans_log, 'other_master@nohost',
                                     [{write, K, from_log, 60000}, {release, KR}]}),
    ?assertEqual({ok, from_log}, reply_within(T1, 5000)),
    %% D4: a replayed release
    ?assertEqual(lockerd_differences:d4(kind(Config), replayed_release), reply_within(T2, 1000)).

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
    timer:sleep(200 + lockerd_differences:d8(kind(Config)) + 100),
    sbcast(Config, expire_leases),
    ?assertEqual(not_found, lease(Config, KS)),
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
    K = key(Config),
    ?assertEqual({error, not_found}, rpc:call(Node, locker, dirty_read, [K])),
    write(Config, K, {read, me}, 60000),
    ?assertEqual({ok, {read, me}}, rpc:call(Node, locker, dirty_read, [K])).
