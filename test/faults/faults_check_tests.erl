%% EUnit tests of the fault-run checker on hand-made histories: each rule
%% once with a history that must pass and once with one that must fail,
%% plus the corners of the window definition (touching windows, releases
%% of every outcome, unknown and failed operations, late acknowledgements).
%% Times are in microseconds, leases in milliseconds, as in real histories.
-module(faults_check_tests).

-include_lib("eunit/include/eunit.hrl").

%% An op: Client, Op, Key, Value, Lease (ms), Inv, Cmp (µs), Result.
op(C, Op, K, V, L, Inv, Cmp, R) ->
    #{client => C, op => Op, key => K, value => V, lease => L, inv => Inv, cmp => Cmp,
      result => R, raw => R}.

lock(C, V, Inv, Cmp, R) -> op(C, lock, k, V, 100, Inv, Cmp, R).
extend(C, V, Inv, Cmp, R) -> op(C, extend, k, V, 100, Inv, Cmp, R).
release(C, V, Inv, Cmp, R) -> op(C, release, k, V, 0, Inv, Cmp, R).
probe(C, V, Inv, Cmp, R) -> op(C, probe, k, V, 100, Inv, Cmp, R).

check(Ops) -> faults_check:check(#{ops => Ops}, #{}).
check(Ops, Extra) -> faults_check:check(Extra#{ops => Ops}, #{}).

kinds(Report) -> [K || {K, _} <- maps:get(violations, Report)].

%% A lease of 100 ms is 100000 µs: A invoked at 0 holds until 100000.

sequential_holders_test() ->
    ?assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                  lock(b, b1, 100000, 101000, ok)]))).

overlapping_locks_test() ->
    R = check([lock(a, a1, 0, 1000, ok), lock(b, b1, 50000, 51000, ok)]),
    ?assertEqual([mutual_exclusion], kinds(R)),
    [{_, #{key := k, holders := [a1, b1]}}] = maps:get(violations, R).

%% B acknowledged exactly when A's window ends: no overlap.
touching_windows_test() ->
    ?assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                  lock(b, b1, 90000, 100000, ok)]))),
    ?assertEqual([mutual_exclusion], kinds(check([lock(a, a1, 0, 1000, ok),
                                                  lock(b, b1, 90000, 99999, ok)]))).

%% The window starts at the acknowledgement, not at the invoke.
window_starts_at_ack_test() ->
    ?assertEqual([], kinds(check([lock(b, b1, 0, 2000, ok),      % [2000, 100000]
                                  release(b, b1, 3000, 4000, ok),
                                  lock(a, a1, 1000, 5000, ok)]))).  % [5000, ...]

%% A release ends the window at its invoke time, whatever its outcome.
release_ends_window_test_() ->
    [?_assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                    release(a, a1, 40000, 45000, R),
                                    lock(b, b1, 42000, 60000, ok)])))
     || R <- [ok, fail, unknown]].

%% ... but only from its invoke: B acknowledged before it is a violation.
release_after_overlap_test() ->
    ?assertEqual([mutual_exclusion],
                 kinds(check([lock(a, a1, 0, 1000, ok),
                              lock(b, b1, 20000, 30000, ok),
                              release(a, a1, 40000, 45000, ok)]))).

lost_extend_test() ->
    Ops = [lock(a, a1, 0, 10000, ok),           % [10000, 100000]
           extend(a, a1, 80000, 90000, ok),     % [90000, 180000]
           lock(b, b1, 140000, 150000, ok)],    % [150000, 240000]
    ?assertEqual([lost_extend], kinds(check(Ops))).

failed_or_unknown_extend_adds_nothing_test_() ->
    [?_assertEqual([], kinds(check([lock(a, a1, 0, 10000, ok),
                                    extend(a, a1, 80000, 90000, R),
                                    lock(b, b1, 140000, 150000, ok)])))
     || R <- [fail, unknown]].

%% An extend acknowledged after the holder's window ran out still makes a
%% window: W masters voted for a value B's quorum should have replaced.
late_extend_is_a_window_test() ->
    Ops = [lock(a, a1, 0, 10000, ok),           % [10000, 100000]
           lock(b, b1, 110000, 120000, ok),     % [120000, 210000]
           extend(a, a1, 150000, 160000, ok)],  % [160000, 250000]
    ?assertEqual([lost_extend], kinds(check(Ops))).

%% Both a lock/lock and an extend overlap: reported once, as the stronger.
one_violation_per_pair_test() ->
    Ops = [lock(a, a1, 0, 10000, ok),
           extend(a, a1, 50000, 60000, ok),
           lock(b, b1, 55000, 70000, ok)],
    ?assertEqual([mutual_exclusion], kinds(check(Ops))).

unknown_lock_is_no_holder_test_() ->
    [?_assertEqual([], kinds(check([lock(a, a1, 0, 1000, R),
                                    lock(b, b1, 50000, 51000, ok)])))
     || R <- [fail, unknown]].

%% An unknown op between two acknowledged holders hides nothing.
unknown_lock_hides_nothing_test() ->
    Ops = [lock(a, a1, 0, 1000, ok),
           lock(c, c1, 10000, 60000, unknown),
           release(c, c1, 60000, 61000, unknown),
           lock(b, b1, 50000, 51000, ok)],
    ?assertEqual([mutual_exclusion], kinds(check(Ops))).

%% Acknowledged after its own lease ran out: an empty window.
late_ack_is_empty_window_test() ->
    ?assertEqual([], kinds(check([lock(a, a1, 0, 150000, ok),
                                  lock(b, b1, 120000, 121000, ok)]))).

keys_are_independent_test() ->
    ?assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                  op(b, lock, other, b1, 100, 50000, 51000, ok)]))).

three_holders_test() ->
    Ops = [lock(a, a1, 0, 1000, ok), lock(b, b1, 20000, 21000, ok),
           lock(c, c1, 40000, 41000, ok)],
    ?assertEqual(3, length(kinds(check(Ops)))).

%% The values name holders: the same client twice is still two holders.
same_client_two_values_test() ->
    ?assertEqual([mutual_exclusion], kinds(check([lock(a, a1, 0, 1000, ok),
                                                  lock(a, a2, 20000, 21000, ok)]))).

lost_release_test() ->
    Base = [lock(a, a1, 0, 1000, ok), release(a, a1, 10000, 20000, ok)],
    ?assertEqual([lost_release], kinds(check(Base ++ [probe(a, a1, 21000, 25000, ok)]))),
    ?assertEqual([], kinds(check(Base ++ [probe(a, a1, 21000, 25000, fail)]))),
    ?assertEqual([], kinds(check(Base ++ [probe(a, a1, 21000, 25000, unknown)]))).

%% A probe succeeding after a release that was not acknowledged proves
%% nothing; nor does one invoked before the release completed.
probe_needs_acked_release_test_() ->
    [?_assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                    release(a, a1, 10000, 20000, R),
                                    probe(a, a1, 21000, 25000, ok)])))
     || R <- [fail, unknown]] ++
    [?_assertEqual([], kinds(check([lock(a, a1, 0, 1000, ok),
                                    release(a, a1, 10000, 20000, ok),
                                    probe(a, a1, 15000, 25000, ok)])))].

%% Probes never make windows.
probe_is_no_window_test() ->
    ?assertEqual([], kinds(check([probe(a, a1, 0, 1000, ok),
                                  lock(b, b1, 20000, 21000, ok)]))).

stale_lease_test() ->
    ?assertEqual([stale_lease],
                 kinds(check([], #{final => [{m1, [{k, a1, 123}]}, {m2, []}]}))),
    ?assertEqual([], kinds(check([], #{final => [{m1, []}, {m2, []}]}))).

availability_test() ->
    Ops = [lock(a, a1, 0, 1000, ok),               % none
           extend(a, a1, 50000, 51000, fail),      % kill
           release(a, a1, 60000, 61000, ok),       % kill (in the tail)
           lock(b, b1, 200000, 201000, unknown),   % pause
           probe(a, a1, 62000, 63000, ok)],        % not counted
    Faults = [#{type => kill, desc => "kill m1", start => 40000, stop => 55000},
              #{type => pause, desc => "pause m2", start => 150000, stop => 250000}],
    #{availability := Av, faults := F} = check(Ops, #{faults => Faults, tail => 10000}),
    ?assertEqual({2, 4}, maps:get(all, Av)),
    ?assertEqual({1, 1}, maps:get(none, Av)),
    ?assertEqual({1, 2}, maps:get(kill, Av)),
    ?assertEqual({0, 1}, maps:get(pause, Av)),
    ?assertEqual({0, 0}, maps:get(partition, Av)),
    ?assertEqual({1, 2}, maps:get(lock, Av)),
    ?assertEqual(#{kill => 1, pause => 1}, F).

%% Every violation kind formats to a line naming the kind.
format_test() ->
    Ops = [lock(a, a1, 0, 1000, ok), lock(b, b1, 20000, 21000, ok),
           release(b, b1, 30000, 31000, ok), probe(b, b1, 32000, 33000, ok)],
    R = check(Ops, #{final => [{m1, [{k, b1, 1}]}]}),
    Text = lists:flatten(io_lib:format("~s", [faults_check:format_report(R)])),
    [?assertNotEqual(nomatch, string:find(Text, atom_to_list(K)))
     || K <- [mutual_exclusion, lost_release, stale_lease]],
    ?assertNotEqual(nomatch, string:find(Text, "violations: 3")).

%% A fault's own tail (a restart's quiet period) overrides the default.
fault_tail_test() ->
    Ops = [lock(a, a1, 100000, 101000, fail)],
    Kill = #{type => kill, desc => "kill m1", start => 0, stop => 50000},
    #{availability := Av1} = check(Ops, #{faults => [Kill], tail => 10000}),
    ?assertEqual({0, 1}, maps:get(none, Av1)),
    #{availability := Av2} = check(Ops, #{faults => [Kill#{tail => 60000}], tail => 10000}),
    ?assertEqual({0, 1}, maps:get(kill, Av2)).

%% Rule 4: fencing tokens.

flock(C, V, Inv, Cmp, T) -> (lock(C, V, Inv, Cmp, ok))#{token => T}.

tokens_increase_test() ->
    ?assertEqual([], kinds(check([flock(a, a1, 0, 1000, 10),
                                  release(a, a1, 5000, 6000, ok),
                                  flock(b, b1, 7000, 8000, 11),
                                  flock(c, c1, 200000, 201000, 30)]))).

%% Concurrent attempts (one not completed before the other began) may
%% carry any tokens; failed and unknown ops carry none.
concurrent_tokens_test() ->
    ?assertEqual([], kinds(check([flock(a, a1, 0, 5000, 10),
                                  flock(b, b1, 4000, 300000, 9),
                                  (lock(c, c1, 400000, 401000, unknown))#{token => 1}]))).

stale_token_test() ->
    R = check([flock(a, a1, 0, 1000, 10), release(a, a1, 5000, 6000, ok),
               flock(b, b1, 200000, 201000, 10)]),
    ?assertEqual([stale_token], kinds(R)),
    [{stale_token, #{earlier := #{value := a1}, later := #{value := b1}}}] =
        maps:get(violations, R),
    %% a token below the largest acknowledged so far, not only the last one
    ?assertEqual([stale_token], kinds(check([flock(a, a1, 0, 1000, 50),
                                             flock(b, b1, 200000, 201000, 60),
                                             flock(c, c1, 400000, 401000, 55)]))).

stale_token_report_test() ->
    R = check([flock(a, a1, 0, 1000, 10), flock(b, b1, 200000, 201000, 3)]),
    Text = lists:flatten(faults_check:format_report(R)),
    ?assertNotEqual(nomatch, string:find(Text, "stale_token: key k")),
    ?assertNotEqual(nomatch, string:find(Text, "2 fencing tokens")).

%% Rule 5: holders that die are released.

hexit(C, V, T) -> op(C, exit, k, V, 0, T, T, ok).
hprobe(C, V, Inv, Cmp, R) -> (op(C, exit_probe, k, V, 0, Inv, Cmp, R))#{raw => []}.

dead_holder_released_test() ->
    ?assertEqual([], kinds(check([lock(a, pa, 0, 1000, ok), hexit(a, pa, 20000),
                                  hprobe(a, pa, 20000, 320000, ok),
                                  lock(b, pb, 30000, 31000, ok)]))).

%% The exit ends the window: the next holder right after it is no overlap,
%% but one before it is (released while alive).
exit_ends_window_test() ->
    ?assertEqual([mutual_exclusion], kinds(check([lock(a, pa, 0, 1000, ok),
                                                  lock(b, pb, 10000, 11000, ok),
                                                  hexit(a, pa, 20000)]))).

dead_holder_kept_test() ->
    Ops = [lock(a, pa, 0, 1000, ok), hexit(a, pa, 20000), hprobe(a, pa, 20000, 320000, fail)],
    ?assertEqual([holder_not_released], kinds(check(Ops))),
    %% under a fault (a partition: noconnection) keeping it is right
    F = #{type => partition, desc => "x", start => 10000, stop => 400000},
    ?assertEqual([], kinds(check(Ops, #{faults => [F], tail => 0}))),
    F2 = F#{start => 100000},
    ?assertEqual([], kinds(check(Ops, #{faults => [F2], tail => 0}))).

aprobe(C, V, Inv, Cmp, R) -> (op(C, alive_probe, k, V, 0, Inv, Cmp, R))#{raw => [m1]}.

alive_holder_kept_test() ->
    ?assertEqual([], kinds(check([lock(a, pa, 0, 1000, ok), aprobe(a, pa, 2000, 50000, ok),
                                  release(a, pa, 51000, 52000, ok)]))).

%% A master dropped a live holder's lease: a violation, under a partition
%% too; not when a master was killed in between (it forgot everything).
released_while_alive_test() ->
    Ops = [lock(a, pa, 0, 1000, ok), aprobe(a, pa, 2000, 50000, fail)],
    ?assertEqual([released_while_alive], kinds(check(Ops))),
    P = #{type => partition, desc => "x", start => 10000, stop => 20000},
    ?assertEqual([released_while_alive], kinds(check(Ops, #{faults => [P], tail => 0}))),
    K = #{type => kill, desc => "x", start => 10000, stop => 20000},
    ?assertEqual([], kinds(check(Ops, #{faults => [K], tail => 0}))).
