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
%% 4. Fencing tokens. An acknowledged op may carry `token` (a fenced lock
%%    of an all-lockerd run). Such a token was committed by W masters
%%    before the op was acknowledged, and every later acquisition of the
%%    key needs W votes, one of them from a master that already holds a
%%    counter at least that large. So for two acknowledged ops X and Y of
%%    a key, both with tokens, X completed before Y was invoked
%%    (X.cmp < Y.inv) implies Y.token > X.token: otherwise `stale_token`.
%%    This covers successive holders (a later holder's token is larger)
%%    and any acknowledged op carrying a token below one acknowledged
%%    before it.
%%
%% 5. Holder exit (--release-on-exit). A holder process that dies while
%%    holding is recorded as `exit` (its value is its pid): like a release
%%    it ends the holder's window at its time, so rule 1 also proves that
%%    no lease was released while its holder was alive. 300 ms after the
%%    kill the client reads the key on every lockerd master it can reach
%%    (`exit_probe`, result ok when none still holds the dead pid, fail
%%    otherwise). A fail with no fault in force from the kill to the read
%%    is `holder_not_released`: a master kept a dead holder's lease. A
%%    holder that lives on reads its key on every lockerd master right
%%    after the lock and again before it releases (`alive_probe`, result
%%    fail when a master that held it at the first read no longer did at
%%    the second). With no kill in between (a restarted master forgets),
%%    that is `released_while_alive`: pauses and partitions (noconnection)
%%    must not release a live holder's lease.
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
        ++ stale_leases(maps:get(final, In, skipped)) ++ stale_tokens(Ops)
        ++ unreleased_holders(Ops, Faults, maps:get(tail, In, 0))
        ++ released_alive(Ops, Faults),
    #{ops => length(Ops),
      counts => counts(Ops),
      holders => length([W || {_, _, Segs} = W <- Windows, Segs =/= []]),
      tokens => length([O || #{result := ok, token := _} = O <- Ops]),
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
                     [O || #{op := Op} = O <- Ops, Op =/= probe, Op =/= exit_probe,
                           Op =/= alive_probe]),
    [{K, V, holder_segments(HOps)} || {{K, V}, HOps} <- ByHolder].

holder_segments(HOps) ->
    Segs = [{Op, Cmp, Inv + lease_us(O)}
            || #{op := Op, result := ok, inv := Inv, cmp := Cmp} = O <- HOps,
               Op =:= lock orelse Op =:= extend],
    Releases = [Inv || #{op := Op, inv := Inv} <- HOps, Op =:= release orelse Op =:= exit],
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
%% Rule 4: fencing tokens

%% Per key: the ops in invoke order, each checked against the largest
%% token of the ops completed before its invoke (a sweep over both orders).
stale_tokens(Ops) ->
    Fenced = group(fun(#{key := K}) -> K end, [O || #{result := ok, token := _} = O <- Ops]),
    lists:append([key_tokens(K, KOps) || {K, KOps} <- Fenced]).

key_tokens(Key, KOps) ->
    ByInv = lists:sort(fun(#{inv := A}, #{inv := B}) -> A =< B end, KOps),
    ByCmp = lists:sort(fun(#{cmp := A}, #{cmp := B}) -> A =< B end, KOps),
    sweep(Key, ByInv, ByCmp, none, []).

%% Max: the op with the largest token among those completed so far.
sweep(_Key, [], _Done, _Max, Acc) ->
    lists:reverse(Acc);
sweep(Key, [#{inv := Inv} = Y | Rest], [#{cmp := C} = X | Done], Max, Acc) when C < Inv ->
    sweep(Key, [Y | Rest], Done, larger(X, Max), Acc);
sweep(Key, [Y | Rest], Done, Max, Acc) ->
    Acc1 = case Max of
               #{token := TX} = X when map_get(token, Y) =< TX ->
                   [{stale_token, #{key => Key, earlier => X, later => Y}} | Acc];
               _ ->
                   Acc
           end,
    sweep(Key, Rest, Done, Max, Acc1).

larger(X, none) -> X;
larger(#{token := TX} = X, #{token := TM}) when TX > TM -> X;
larger(_, Max) -> Max.

%%--------------------------------------------------------------------
%% Rule 5: dead holders released

unreleased_holders(Ops, Faults, Tail) ->
    Intervals = lists:sort([{S, E + maps:get(tail, F, Tail), T}
                            || #{type := T, start := S, stop := E} = F <- Faults]),
    [{holder_not_released, #{key => K, value => V, exit => Inv, read => Cmp, raw => Raw}}
     || #{op := exit_probe, result := fail, key := K, value := V, inv := Inv, cmp := Cmp,
          raw := Raw} <- Ops,
        fault_at(Inv, Intervals) =:= none, fault_at(Cmp, Intervals) =:= none,
        no_fault_between(Inv, Cmp, Intervals)].

released_alive(Ops, Faults) ->
    Kills = [{S, E} || #{type := kill, start := S, stop := E} <- Faults],
    [{released_while_alive, #{key => K, value => V, first => Inv, second => Cmp, lost => Raw}}
     || #{op := alive_probe, result := fail, key := K, value := V, inv := Inv, cmp := Cmp,
          raw := Raw} <- Ops,
        not lists:any(fun({S, E}) -> S =< Cmp andalso Inv =< E end, Kills)].

no_fault_between(A, B, Intervals) ->
    not lists:any(fun({S, _E, _T}) -> A =< S andalso S =< B end, Intervals).

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
      fun(#{op := Op, result := R, inv := Inv}, Acc)
            when Op =:= lock; Op =:= extend; Op =:= release ->
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
                availability := Av, faults := F, final_checked := Final} = Report) ->
    Count = fun(Op, R) -> maps:get({Op, R}, C, 0) end,
    OpLine = fun(Op) ->
                     io_lib:format("  ~-11s ~6b ok ~6b failed ~4b unknown~n",
                                   [Op, Count(Op, ok), Count(Op, fail), Count(Op, unknown)])
             end,
    [io_lib:format("  ~b ops, ~b acknowledged holders, ~b fencing tokens; faults: ~s~n",
                   [N, H, maps:get(tokens, Report, 0), fault_summary(F)]),
     [OpLine(Op) || Op <- [lock, extend, release, probe]],
     [OpLine(Op) || Op <- [exit, exit_probe, alive_probe], maps:is_key({Op, ok}, C) orelse
                                               maps:is_key({Op, fail}, C)],
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
format_violation({stale_token, #{key := K, earlier := X, later := Y}}) ->
    io_lib:format("stale_token: key ~0p: ~s ~0p acknowledged at ~s with token ~b, then ~s ~0p "
                  "invoked at ~s got token ~b", [K, maps:get(op, X), maps:get(value, X),
                                                 ms(maps:get(cmp, X)), maps:get(token, X),
                                                 maps:get(op, Y), maps:get(value, Y),
                                                 ms(maps:get(inv, Y)), maps:get(token, Y)]);
format_violation({holder_not_released, #{key := K, value := V, exit := E, read := R,
                                          raw := Raw}}) ->
    io_lib:format("holder_not_released: key ~0p: holder ~0p killed at ~s, still held at ~s "
                  "(~0p)", [K, V, ms(E), ms(R), Raw]);
format_violation({released_while_alive, #{key := K, value := V, first := F, second := S,
                                           lost := L}}) ->
    io_lib:format("released_while_alive: key ~0p: holder ~0p alive, held at ~s, gone at ~s "
                  "on ~0p", [K, V, ms(F), ms(S), L]);
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
