%% EUnit tests of lkr_server's safe restarts (options state_file and
%% quiet_period), the BEAM masters' counterpart of lockerd --state-file in
%% the fault-injection runs. The server runs in the test VM itself and is
%% called directly; a "restart" is a stop and a start on the same file.
-module(lkr_server_recovery_tests).

-include_lib("eunit/include/eunit.hrl").

-define(S, locker).

file() ->
    F = filename:join(os:getenv("TMPDIR", "/tmp"),
                      lists:concat(["lkr_recovery_", os:getpid(), "_", erlang:unique_integer([positive])])),
    file:delete(F),
    F.

start(Opts) ->
    {ok, _} = lkr_server:start(2, [node()], [], Opts).

stop() ->
    catch lkr_server:stop().

vote(Key, Expected) ->
    gen_server:call(?S, {get_write_lock, Key, Expected, make_ref()}).

write(Key, Value, Len) ->
    ok = gen_server:call(?S, {write, make_ref(), Key, Value, Len}).

with_file(Fun) ->
    F = file(),
    try Fun(F) after stop(), file:delete(F) end.

first_start_has_no_quiet_period_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      ?assertEqual({ok, <<"0\n">>}, file:read_file(F)),
                      ?assertEqual(ok, vote(k, not_found))
              end).

longest_lease_is_recorded_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      write(a, 1, 700),
                      write(b, 1, 300),
                      gen_server:call(?S, {extend_lease, make_ref(), a, 1, 900}),
                      ?assertEqual({ok, <<"900\n">>}, file:read_file(F))
              end).

restart_refuses_unknown_keys_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      write(a, 1, 60000),
                      stop(),
                      start([{state_file, F}]),
                      ?assertEqual({error, recovering}, vote(a, not_found)),
                      ?assertEqual({error, recovering}, vote(a, 1)),
                      %% a key written since the restart is known again
                      write(b, 2, 1000),
                      ?assertEqual({error, not_expected_value}, vote(b, 3)),
                      ?assertEqual(ok, vote(b, 2))
              end).

%% A short longest lease still gives the 10 s a write lock lives.
quiet_period_covers_write_locks_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      write(a, 1, 200),
                      stop(),
                      start([{state_file, F}]),
                      timer:sleep(300),
                      ?assertEqual({error, recovering}, vote(k, not_found))
              end).

quiet_period_ends_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      write(a, 1, 60000),
                      stop(),
                      start([{state_file, F}, {quiet_period, 200}]),
                      ?assertEqual({error, recovering}, vote(k, not_found)),
                      timer:sleep(300),
                      ?assertEqual(ok, vote(k, not_found))
              end).

quiet_period_option_overrides_test() ->
    with_file(fun(F) ->
                      start([{state_file, F}]),
                      write(a, 1, 60000),
                      stop(),
                      start([{state_file, F}, {quiet_period, 0}]),
                      ?assertEqual(ok, vote(a, not_found))
              end).

no_state_file_no_recovery_test() ->
    start([]),
    try ?assertEqual(ok, vote(k, not_found)) after stop() end.

bad_state_file_fails_start_test() ->
    with_file(fun(F) ->
                      ok = file:write_file(F, <<"not a number\n">>),
                      ?assertMatch({error, {bad_state_file, _, _}},
                                   lkr_server:start(2, [node()], [], [{state_file, F}]))
              end).
