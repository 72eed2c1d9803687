%% The checker of the fault-injection runs: reads a history of lock
%% operations and proves (or refutes) from it alone that no key ever had two
%% holders and that no acknowledged release or extend was lost.
%%
%% History. Every operation a client ran is one map:
%%   #{client, op, key, value, lease, inv, cmp, result, raw}
%% op is lock | extend | release | probe; lease is the lease length asked
%% for (ms; lock, extend, probe); inv and cmp are the invoke and completion
%% times in microseconds of ONE monotonic clock (all clients' times must be
%% comparable); result is
%%   ok      acknowledged: the coordinator answered {ok, ...} / ok;
%%   fail    definitely refused ({error, no_quorum}: fewer than W votes,
%%           nothing was committed);
%%   unknown no answer (the call crashed or the client gave up): it may or
%%           may not have taken effect.
%% Every lock attempt uses a value of its own, so (key, value) names one
%% would-be holder; extend, release and probe carry the value of the lock
%% they act for. Faults are maps #{type => kill | pause | partition, desc,
%% start, stop, tail} in the same clock (tail optional).
%%
%% Rules (V counts every violation below):
%%
%% 1. Mutual exclusion. A holder's window is what its client may assume:
%%    an acknowledged lock gives the segment [lock.cmp, lock.inv + lease]
%%    (the masters start the lease when the commit reaches them, never
%%    before the invoke, so nobody else can be granted the key before
%%    lock.inv + lease); each acknowledged extend adds
%%    [extend.cmp, extend.inv + lease]. A release, whatever its result, ends
%%    every segment still open at its invoke time: the client stops using
%%    the key when it asks to release it. Failed and unknown locks and
%%    extends add nothing: they are never acknowledged, so they can neither
%%    make a false violation nor hide one (a violation needs two
%%    acknowledged segments, and an unknown op never shortens a segment;
%%    only the holder's own release does). Two segments of different
%%    holders of one key that overlap (strictly: one may start exactly where
%%    the other ends) are one violation per pair of holders, reported as
%%    `mutual_exclusion` when two lock segments overlap, else as
%%    `lost_extend` (an acknowledged extension was overridden: someone got
%%    the key before extend.inv + lease).
%%
%% 2. Lost release. After an acknowledged release the client issues a
%%    probe: an extend of the value it just released. Its vote succeeds only
%%    at masters that still hold that value with no write lock pending. A
%%    release that got its quorum (W votes) holds a write lock on at least W
%%    masters until its release message deletes the value there, so at
%%    most N - W < W masters can vote for the probe. A probe that gets W
%%    votes (result ok) after the release completed is a violation
%%    `lost_release`. Probes make no windows and are left out of the
%%    availability figures.
%%
%% 3. Stale leases. After the run every fault is healed, the clients stop,
%%    and the driver waits longer than any lease (plus up to 2 s for the
%%    BEAM server's 1-second expiry buckets checked every second, and a
%%    tick time after the heal for commits held up
%%    by a partition) before reading every master's table: a lease still
%%    there outlived its length (`stale_lease`).
%%
%% Availability: acknowledged / attempted lock, extend and release
%% operations, overall and by the fault in force at the invoke time: a
%% fault counts from its start until its `tail` (or the input's) after it
%% was healed, since a restarted master's quiet period and expiring leases
%% outlast the fault; where several do, the one started last; ops outside
%% every fault count under `none`.
-module(faults_check).

-export([check/2, windows/1, format_report/1, format_violation/1, availability_line/1, pct/1]).

-type op() :: #{client := term(), op := lock | extend | release | probe, key := term(),
                value := term(), lease => non_neg_integer(), inv := integer(),
                cmp := integer(), result := ok | fail | unknown, raw => term()}.
-export_type([op/0]).

-define(FAULT_TYPES, [none, kill, pause, partition]).

%% Input: #{ops := [op()], faults => [fault], tail => µs,
%%          final => [{Node, [{Key, Value, ExpireAt}]}] | skipped}.
%% Opts: unused (reserved). Returns a report map.
check(In, _Opts) ->
    Ops = maps:get(ops, In),
    Faults = maps:get(faults, In, []),
    Windows = windows(Ops),
    Violations = mutual_exclusion(Windows) ++ lost_releases(Ops)
        ++ stale_leases(maps:get(final, In, skipped)),
    #{ops => length(Ops),
      counts => counts(Ops),
      holders => length([W || {_, _, Segs} = W <- Windows, Segs =/= []]),
      violations => Violations,
      availability => availability(Ops, Faults, maps:get(tail, In, 0)),
      faults => fault_counts(Faults),
      final_checked => maps:get(final, In, skipped) =/= skipped}.

%%--------------------------------------------------------------------
%% Rule 1: windows and overlaps

%% [{Key, Value, [{Kind, Start, End}]}] with Kind lock | extend, segments
%% already cut by releases and without empty ones.
windows(Ops) ->
    ByHolder = group(fun(#{key := K, value := V}) -> {K, V} end,
                     [O || #{op := Op} = O <- Ops, Op =/= probe]),
    [{K, V, holder_segments(HOps)} || {{K, V}, HOps} <- ByHolder].

holder_segments(HOps) ->
    Segs = [{Op, Cmp, Inv + lease_us(O)}
            || #{op := Op, result := ok, inv := Inv, cmp := Cmp} = O <- HOps,
               Op =:= lock orelse Op =:= extend],
    Releases = [Inv || #{op := release, inv := Inv} <- HOps],
    Cut = lists:foldl(fun(R, Acc) -> [cut(S, R) || S <- Acc] end, Segs, Releases),
    [S || {_, Start, End} = S <- Cut, Start < End].

cut({Kind, Start, End}, R) when Start =< R, R < End -> {Kind, Start, R};
cut(Seg, _R) -> Seg.

mutual_exclusion(Windows) ->
    ByKey = group(fun({K, _, _}) -> K end, Windows),
    lists:append([key_overlaps(K, KWs) || {K, KWs} <- ByKey]).

key_overlaps(Key, KeyWindows) ->
    Segs = lists:keysort(3, [{V, Kind, S, E} || {_, V, Segs} <- KeyWindows,
                                                {Kind, S, E} <- Segs]),
    Pairs = overlaps(Segs, #{}),
    [pair_violation(Key, Pair, lists:reverse(Found)) || {Pair, Found} <- lists:sort(maps:to_list(Pairs))].

%% Segments sorted by start: each is compared with the later-starting ones
%% that start before it ends (windows are short, so few).
overlaps([], Acc) ->
    Acc;
overlaps([{V1, K1, _S1, E1} = A | Rest], Acc) ->
    Acc1 = lists:foldl(
             fun({V2, K2, S2, _E2} = B, In) when V2 =/= V1, S2 < E1 ->
                     Pair = lists:sort([V1, V2]),
                     Kinds = {K1, K2},
                     maps:update_with(Pair, fun(L) -> [{Kinds, A, B} | L] end,
                                      [{Kinds, A, B}], In);
                (_, In) ->
                     In
             end, Acc, lists:takewhile(fun({_, _, S2, _}) -> S2 < E1 end, Rest)),
    overlaps(Rest, Acc1).

pair_violation(Key, [V1, V2], Found) ->
    Kind = case [x || {{lock, lock}, _, _} <- Found] of
               [] -> lost_extend;
               _ -> mutual_exclusion
           end,
    {_, A, B} = hd(Found),
    {Kind, #{key => Key, holders => [V1, V2], first => [A, B],
             overlapping_segments => length(Found)}}.

%%--------------------------------------------------------------------
%% Rule 2: lost releases

lost_releases(Ops) ->
    Acked = group(fun(#{key := K, value := V}) -> {K, V} end,
                  [O || #{op := release, result := ok} = O <- Ops]),
    AckedMap = maps:from_list(Acked),
    [{lost_release, #{key => K, value => V, release => {RInv, RCmp}, probe => {PInv, PCmp}}}
     || #{op := probe, result := ok, key := K, value := V, inv := PInv, cmp := PCmp} <- Ops,
        #{inv := RInv, cmp := RCmp} <- first_before(maps:get({K, V}, AckedMap, []), PInv)].

first_before(Releases, T) ->
    case lists:sort(fun(#{cmp := A}, #{cmp := B}) -> A =< B end,
                    [R || #{cmp := C} = R <- Releases, C =< T]) of
        [R | _] -> [R];
        [] -> []
    end.

%%--------------------------------------------------------------------
%% Rule 3: stale leases

stale_leases(skipped) ->
    [];
stale_leases(Final) ->
    [{stale_lease, #{node => Node, key => K, value => V}}
     || {Node, Leases} <- Final, {K, V, _ExpireAt} <- Leases].

%%--------------------------------------------------------------------
%% Counts and availability

counts(Ops) ->
    lists:foldl(fun(#{op := Op, result := R}, Acc) ->
                        maps:update_with({Op, R}, fun(N) -> N + 1 end, 1, Acc)
                end, #{}, Ops).

availability(Ops, Faults, Tail) ->
    Intervals = lists:sort([{S, E + maps:get(tail, F, Tail), T}
                            || #{type := T, start := S, stop := E} = F <- Faults]),
    Zero = maps:from_list([{C, {0, 0}} || C <- [all | ?FAULT_TYPES]]),
    lists:foldl(
      fun(#{op := Op, result := R, inv := Inv}, Acc) when Op =/= probe ->
              Class = fault_at(Inv, Intervals),
              Add = fun({A, N}) -> {A + ok(R), N + 1} end,
              maps:update_with(Op, Add, {ok(R), 1},
                               maps:update_with(Class, Add, maps:update_with(all, Add, Acc)));
         (_, Acc) ->
              Acc
      end, Zero, Ops).

ok(ok) -> 1;
ok(_) -> 0.

%% The fault started last among those whose interval holds T.
fault_at(T, Intervals) ->
    lists:foldl(fun({S, E, Type}, _) when S =< T, T < E -> Type;
                   (_, Acc) -> Acc
                end, none, Intervals).

fault_counts(Faults) ->
    lists:foldl(fun(#{type := T}, Acc) -> maps:update_with(T, fun(N) -> N + 1 end, 1, Acc) end,
                #{}, Faults).

%%--------------------------------------------------------------------
%% Output

%% Lines (iodata) describing a report.
format_report(#{ops := N, counts := C, holders := H, violations := Vs,
                availability := Av, faults := F, final_checked := Final}) ->
    Count = fun(Op, R) -> maps:get({Op, R}, C, 0) end,
    OpLine = fun(Op) ->
                     io_lib:format("  ~-8s ~6b ok ~6b failed ~4b unknown~n",
                                   [Op, Count(Op, ok), Count(Op, fail), Count(Op, unknown)])
             end,
    [io_lib:format("  ~b ops, ~b acknowledged holders; faults: ~s~n",
                   [N, H, fault_summary(F)]),
     [OpLine(Op) || Op <- [lock, extend, release, probe]],
     io_lib:format("  availability: ~s~n", [availability_line(Av)]),
     io_lib:format("  by op: ~s~n",
                   [string:join([io_lib:format("~s ~s", [Op, pct(maps:get(Op, Av, {0, 0}))])
                                 || Op <- [lock, extend, release]], ", ")]),
     case Final of
         true -> "  final state: read from every master after the settle time\n";
         false -> "  final state: not read\n"
     end,
     io_lib:format("  violations: ~b~n", [length(Vs)]),
     [["    ", format_violation(V), "\n"] || V <- lists:sublist(Vs, 20)],
     [io_lib:format("    ... and ~b more~n", [length(Vs) - 20]) || length(Vs) > 20]].

availability_line(Av) ->
    string:join([io_lib:format("~s ~s", [C, pct(maps:get(C, Av, {0, 0}))])
                 || C <- [all | ?FAULT_TYPES]], ", ").

pct({_, 0}) -> "-";
pct({A, N}) -> io_lib:format("~.1f% (~b/~b)", [100 * A / N, A, N]).

fault_summary(F) when map_size(F) =:= 0 -> "none";
fault_summary(F) ->
    string:join([io_lib:format("~b ~s", [N, T]) || {T, N} <- lists:sort(maps:to_list(F))], ", ").

format_violation({Kind, #{key := K, first := [A, B], overlapping_segments := NS}}) ->
    io_lib:format("~s: key ~0p held by ~s and by ~s (~b overlapping segment pair(s))",
                  [Kind, K, seg(A), seg(B), NS]);
format_violation({lost_release, #{key := K, value := V, release := {RI, RC}, probe := {PI, PC}}}) ->
    io_lib:format("lost_release: key ~0p value ~0p released [~s, ~s] but a probe extend "
                  "[~s, ~s] still got W votes", [K, V, ms(RI), ms(RC), ms(PI), ms(PC)]);
format_violation({stale_lease, #{node := N, key := K, value := V}}) ->
    io_lib:format("stale_lease: ~s still holds ~0p = ~0p after every lease ran out", [N, K, V]).

seg({V, Kind, S, E}) ->
    io_lib:format("~0p (~s segment [~s, ~s])", [V, Kind, ms(S), ms(E)]).

ms(Us) -> io_lib:format("~.3f s", [Us / 1.0e6]).

%%--------------------------------------------------------------------
%% Helpers

lease_us(#{lease := L}) -> L * 1000.

%% [{GroupKey, [Elem]}] keeping the elements' order.
group(KeyFun, List) ->
    M = lists:foldl(fun(E, Acc) ->
                            maps:update_with(KeyFun(E), fun(L) -> [E | L] end, [E], Acc)
                    end, #{}, List),
    [{K, lists:reverse(L)} || {K, L} <- lists:sort(maps:to_list(M))].
