%% Load generators of `make bench`, run on BEAM peer nodes (erpc:call from
%% lockerd_bench). Every function runs for a fixed time or a fixed amount
%% of work and returns a map of figures; latencies are microseconds.
%%
%% The coordinator client is lkr (the same algorithm as the `locker`
%% library), so the node running pairs/contention/visibility must run
%% lkr_server (as a non-master) for its meta.
-module(bench_load).

-export([pairs/3, paced_pairs/4, contention/3, capacity/4, insert/5, steady/3, visibility/3,
         percentiles/1, clocks/0]).

-define(LEASE, 2000).

%%--------------------------------------------------------------------
%% Scenario 1: N processes, each locking and releasing its own key.
%% LatFile: undefined or a file to write every lock latency to.
pairs(N, Seconds, LatFile) ->
    paced_pairs(N, 0, Seconds, LatFile).

%% The same at a fixed offered load: Rate pairs/s over all N processes
%% (0: as fast as they go). Each process starts a pair every N/Rate
%% seconds on its own schedule (staggered across processes), right away
%% when it is behind, so both clusters are given the same work and the
%% client's CPU compares like with like.
paced_pairs(N, Rate, Seconds, LatFile) ->
    warmup(),
    Start = now_us(),
    Deadline = Start + round(Seconds * 1000000),
    Every = case Rate of 0 -> 0; _ -> N * 1000000 / Rate end,
    Node = node(),
    Results = run_procs(N, fun(I) ->
                                   First = Start + Every * (I - 1) / N,
                                   pair_loop({bench_pair, Node, I}, {First, Every}, Deadline,
                                             0, 0, [])
                           end),
    T = Seconds,
    Lats = lists:append([L || {_, _, L} <- Results]),
    Pairs = lists:sum([P || {P, _, _} <- Results]),
    Errors = lists:sum([E || {_, E, _} <- Results]),
    write_samples(LatFile, Lats),
    maps:merge(#{procs => N, pairs => Pairs, pairs_per_s => Pairs / T, errors => Errors},
               percentiles(Lats)).

%% Next: {when the next pair is due (us), the interval (0: no pacing)}.
pair_loop(Key, {Due, Every}, Deadline, Pairs, Errors, Lats) ->
    Wait = round(Due - now_us()) div 1000,
    Wait > 0 andalso timer:sleep(Wait),
    case now_us() >= Deadline of
        true ->
            {Pairs, Errors, Lats};
        false ->
            T0 = now_us(),
            Next1 = {Due + Every, Every},
            case lkr:lock(Key, self(), ?LEASE) of
                {ok, _, _, _} ->
                    Lat = now_us() - T0,
                    case lkr:release(Key, self()) of
                        {ok, _, _, _} ->
                            pair_loop(Key, Next1, Deadline, Pairs + 1, Errors, [Lat | Lats]);
                        _ ->
                            pair_loop(Key, Next1, Deadline, Pairs, Errors + 1, [Lat | Lats])
                    end;
                _ ->
                    pair_loop(Key, Next1, Deadline, Pairs, Errors + 1, Lats)
            end
    end.

%%--------------------------------------------------------------------
%% Scenario 2: N processes over NKeys keys; a lock that fails
%% (no_quorum) is counted and the process picks a key again.
contention(N, NKeys, Seconds) ->
    warmup(),
    Deadline = now_us() + round(Seconds * 1000000),
    Results = run_procs(N, fun(_) -> cont_loop(NKeys, Deadline, 0, 0, 0) end),
    Ok = lists:sum([O || {O, _, _} <- Results]),
    NoQ = lists:sum([Q || {_, Q, _} <- Results]),
    Other = lists:sum([E || {_, _, E} <- Results]),
    Attempts = max(1, Ok + NoQ + Other),
    #{procs => N, keys => NKeys, locks_ok => Ok, locks_ok_per_s => Ok / Seconds,
      no_quorum => NoQ, no_quorum_rate => NoQ / Attempts, other_errors => Other}.

cont_loop(NKeys, Deadline, Ok, NoQ, Other) ->
    case now_us() >= Deadline of
        true ->
            {Ok, NoQ, Other};
        false ->
            Key = {bench_cont, rand:uniform(NKeys)},
            case lkr:lock(Key, self(), ?LEASE) of
                {ok, _, _, _} ->
                    lkr:release(Key, self()),
                    cont_loop(NKeys, Deadline, Ok + 1, NoQ, Other);
                {error, no_quorum} ->
                    cont_loop(NKeys, Deadline, Ok, NoQ + 1, Other);
                _ ->
                    cont_loop(NKeys, Deadline, Ok, NoQ, Other + 1)
            end
    end.

%%--------------------------------------------------------------------
%% Scenario 3: N processes flooding one master with the calls of a lock:
%% get_write_lock, write, release_write_lock. Each process owns Batch keys
%% and sends the three calls of every key back to back (one connection
%% keeps them in order), then collects the 3 x Batch replies: the master,
%% not the callers' gen_server:call overhead, is what is measured. After
%% the first round each key expects its own previous value.
capacity(Master, N, Seconds, Batch) ->
    Dest = {locker, Master},
    {ok, _, _, _, _, _} = gen_server:call(Dest, get_debug_state, 10000),
    Deadline = now_us() + round(Seconds * 1000000),
    Node = node(),
    Results = run_procs(N, fun(I) ->
                                   Keys = [{bench_cap, Node, I, J} || J <- lists:seq(1, Batch)],
                                   cap_loop(Dest, Keys, not_found, Deadline, 0, 0)
                           end),
    Calls = lists:sum([C || {C, _} <- Results]),
    #{procs => N, batch => Batch, calls => Calls, calls_per_s => Calls / Seconds,
      errors => lists:sum([E || {_, E} <- Results])}.

cap_loop(Dest, Keys, Expected, Deadline, Calls, Errors) ->
    case now_us() >= Deadline of
        true ->
            {Calls, Errors};
        false ->
            RTag = make_ref(),
            From = {self(), RTag},
            [begin
                 Tag = make_ref(),
                 Dest ! {'$gen_call', From, {get_write_lock, K, Expected, Tag}},
                 Dest ! {'$gen_call', From, {write, Tag, K, self(), 10000}},
                 Dest ! {'$gen_call', From, {release_write_lock, Tag}}
             end || K <- Keys],
            Bad = cap_collect(RTag, 3 * length(Keys), 0),
            cap_loop(Dest, Keys, self(), Deadline, Calls + 3 * length(Keys), Errors + Bad)
    end.

cap_collect(_RTag, 0, Bad) ->
    Bad;
cap_collect(RTag, Left, Bad) ->
    receive
        {RTag, ok} -> cap_collect(RTag, Left - 1, Bad);
        {RTag, _} -> cap_collect(RTag, Left - 1, Bad + 1)
    after 30000 -> Bad + Left
    end.

%%--------------------------------------------------------------------
%% Scenarios 4 and 5: pipelined writes of {user, I} -> pid for I in
%% From..To on one master, Senders processes with Window calls in flight
%% each. Lease: {len, Ms} or {expire_at, MonotonicMs} (this node's
%% monotonic clock; every lease then ends at the same instant). Returns
%% #{seconds, writes, errors}.
insert(Master, From, To, Lease, {Senders, Window}) ->
    T0 = now_us(),
    Ranges = split(From, To, Senders),
    Res = run_procs(length(Ranges),
                    fun(I) ->
                            {A, B} = lists:nth(I, Ranges),
                            ins_start({locker, Master}, A, B, Lease, Window)
                    end),
    #{seconds => (now_us() - T0) / 1.0e6, writes => To - From + 1,
      errors => lists:sum(Res)}.

split(From, To, N) ->
    Size = (To - From + 1 + N - 1) div N,
    [{A, min(To, A + Size - 1)} || A <- lists:seq(From, To, Size)].

ins_start(Dest, A, B, Lease, Window) ->
    Tag = make_ref(),
    First = min(B, A + Window - 1),
    [ins_send(Dest, Tag, I, Lease) || I <- lists:seq(A, First)],
    ins_loop(Dest, Tag, First + 1, B, Lease, First - A + 1, 0).

ins_loop(_Dest, _Tag, _Next, _B, _Lease, 0, Errors) ->
    Errors;
ins_loop(Dest, Tag, Next, B, Lease, Out, Errors) ->
    receive
        {Tag, Reply} ->
            E = case Reply of ok -> Errors; _ -> Errors + 1 end,
            case Next =< B of
                true ->
                    ins_send(Dest, Tag, Next, Lease),
                    ins_loop(Dest, Tag, Next + 1, B, Lease, Out, E);
                false ->
                    ins_loop(Dest, Tag, Next, B, Lease, Out - 1, E)
            end
    after 60000 ->
            Errors + Out
    end.

ins_send(Dest, Tag, I, Lease) ->
    Len = case Lease of
              {len, L} -> L;
              {expire_at, At} -> max(1, At - erlang:monotonic_time(millisecond))
          end,
    Dest ! {'$gen_call', {self(), Tag}, {write, Tag, {user, I}, self(), Len}}.

%%--------------------------------------------------------------------
%% Scenario 5: a steady stream of calls (get_write_lock + release_write_lock
%% on a key of its own, every IntervalMs) until this node's monotonic time
%% UntilMs. Returns every call's {StartMs, LatencyUs} summary: the largest
%% latency, when it happened, percentiles.
steady(Master, IntervalMs, UntilMs) ->
    Dest = {locker, Master},
    steady_loop(Dest, IntervalMs, UntilMs, 0, []).

steady_loop(Dest, IntervalMs, UntilMs, I, Acc) ->
    Now = erlang:monotonic_time(millisecond),
    case Now >= UntilMs of
        true ->
            Lats = [L || {_, L} <- Acc],
            {MaxAt, Max} = lists:foldl(fun({T, L}, {_, M}) when L > M -> {T, L};
                                          (_, Best) -> Best
                                       end, {0, 0}, Acc),
            maps:merge(#{calls => length(Acc), max_us => Max, max_at_ms => MaxAt,
                         samples => lists:reverse(Acc)},
                       percentiles(Lats));
        false ->
            Tag = make_ref(),
            Key = {bench_steady, I},
            T0 = now_us(),
            ok = gen_server:call(Dest, {get_write_lock, Key, not_found, Tag}, 60000),
            T1 = now_us(),
            ok = gen_server:call(Dest, {release_write_lock, Tag}, 60000),
            T2 = now_us(),
            timer:sleep(IntervalMs),
            steady_loop(Dest, IntervalMs, UntilMs, I + 1,
                        [{T1 div 1000, T2 - T1}, {T0 div 1000, T1 - T0} | Acc])
    end.

%%--------------------------------------------------------------------
%% Scenario 6: lock a key (lkr, quorum), then poll dirty_read on the
%% replica (Mod:dirty_read/1 by rpc) until it sees the key; the time from
%% the lock's return to the first successful read. Then release.
visibility(Replica, Mod, Seconds) ->
    warmup(),
    Deadline = now_us() + round(Seconds * 1000000),
    Lats = vis_loop(Replica, Mod, Deadline, 0, []),
    maps:merge(#{samples => length(Lats)}, percentiles(Lats)).

vis_loop(Replica, Mod, Deadline, I, Acc) ->
    case now_us() >= Deadline of
        true ->
            Acc;
        false ->
            Key = {bench_vis, node(), I},
            {ok, _, _, _} = lkr:lock(Key, self(), 10000),
            T0 = now_us(),
            Acc1 = case poll_read(Replica, Mod, Key, T0 + 5000000) of
                       {ok, T1} -> [T1 - T0 | Acc];
                       timeout -> [5000000 | Acc]
                   end,
            lkr:release(Key, self()),
            %% a random pause longer than the 100 ms push interval, so the
            %% next lock does not start in step with the masters' pushes
            timer:sleep(rand:uniform(150)),
            vis_loop(Replica, Mod, Deadline, I + 1, Acc1)
    end.

poll_read(Replica, Mod, Key, Deadline) ->
    case rpc:call(Replica, Mod, dirty_read, [Key], 5000) of
        {ok, _} ->
            {ok, now_us()};
        _ ->
            case now_us() > Deadline of
                true -> timeout;
                false -> poll_read(Replica, Mod, Key, Deadline)
            end
    end.

%%--------------------------------------------------------------------
%% Helpers

%% This node's monotonic and wall clocks (ms) at one instant: scenario 5
%% names its expiry instant in the first, the C client counts in the second.
clocks() ->
    {erlang:monotonic_time(millisecond), os:system_time(millisecond)}.

warmup() ->
    Key = {bench_warmup, node(), self()},
    {ok, _, _, _} = lkr:lock(Key, self(), 1000),
    lkr:release(Key, self()),
    ok.

%% Run F(I) for I in 1..N in N processes; the results in order.
run_procs(N, F) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {self(), F(I)} end) || I <- lists:seq(1, N)],
    [receive {P, R} -> R end || P <- Pids].

percentiles([]) ->
    #{p50_us => 0, p99_us => 0, p999_us => 0, max_us => 0, n => 0};
percentiles(Lats) ->
    S = list_to_tuple(lists:sort(Lats)),
    N = tuple_size(S),
    P = fun(Q) -> element(min(N, 1 + trunc(Q * N)), S) end,
    #{p50_us => P(0.5), p99_us => P(0.99), p999_us => P(0.999), max_us => element(N, S),
      n => N}.

write_samples(undefined, _) ->
    ok;
write_samples(File, Lats) ->
    file:write_file(File, [[integer_to_list(L), $\n] || L <- Lats]).

now_us() ->
    erlang:monotonic_time(microsecond).
