%% `make bench`: lockerd and the BEAM locker server (lkr_server) side by
%% side. For each run and each cluster kind (lockerd, beam) it starts three
%% masters (W=2), a BEAM client node (lkr_server as a non-master + lkr) and
%% the C load generator (bench/lkc_bench.c), runs the scenarios, stops
%% everything, and at the end prints a table and writes
%% bench/results/latest.json (median, min, max and every run's raw figure;
%% each ratio lockerd/beam is taken within one run).
%%
%% Configuration (environment): BENCH_RUNS (3), BENCH_SECONDS (10 per
%% measured phase), BENCH_QUICK=1 (tiny sizes, 1 s phases unless
%% BENCH_SECONDS is set), BENCH_LEASES (the large lease count, 1000000;
%% the small one is a tenth of it), BENCH_CONC ("1,16,64,256"),
%% BENCH_SCENARIOS ("1,2,3,4,5,6"), BENCH_OUT (bench/results),
%% LKC_BENCH_BIN (the C generator), LOCKERD_BIN.
%%
%% Started by bench/run.sh; node handles and process control come from
%% test/erlang/lockerd_ct.erl. Only processes started here are stopped.
-module(lockerd_bench).

-export([main/0, plots/1]).

-define(CALL_SLACK, 120000).

main() ->
    try run() of
        ok -> halt(0)
    catch
        C:E:St ->
            io:format(standard_error, "bench failed: ~p:~p~n~p~n", [C, E, St]),
            halt(1)
    end.

%%--------------------------------------------------------------------
%% Configuration

config() ->
    Quick = env("BENCH_QUICK", "0") =:= "1",
    Big = list_to_integer(env("BENCH_LEASES", case Quick of true -> "20000"; false -> "1000000" end)),
    Secs = list_to_float_any(env("BENCH_SECONDS", case Quick of true -> "1"; false -> "10" end)),
    Root = lockerd_ct:repo_root(),
    Out = env("BENCH_OUT", filename:join([Root, "bench", "results"])),
    #{runs => list_to_integer(env("BENCH_RUNS", "3")),
      seconds => Secs,
      %% scenario 6 takes ~90 ms per sample: at least 10 s for a p99
      vis_seconds => case Quick of true -> 2.0; false -> max(10.0, Secs) end,
      quick => Quick,
      leases => [max(1, Big div 10), Big],
      conc => [list_to_integer(C) || C <- string:lexemes(env("BENCH_CONC", "1,16,64,256"), ",")],
      scenarios => [list_to_integer(C) || C <- string:lexemes(env("BENCH_SCENARIOS", "1,2,3,4,5,6"), ",")],
      out => Out,
      log_dir => filename:join(Out, "logs"),
      lkc_bench => env("LKC_BENCH_BIN", filename:join([Root, "build", "bench", "lkc_bench"])),
      cap_nodes => 2, cap_procs => 8, cap_batch => 32,
      %% scenario 3's C generator: keys in flight (3 calls each)
      cap_c_window => list_to_integer(env("BENCH_CAP_WINDOW", "256")),
      %% scenarios 4/5: the C client's writes in flight; the BEAM client
      %% row (a tenth of the leases): senders x window
      insert_window => list_to_integer(env("BENCH_INSERT_WINDOW", "1000")),
      insert => {4, 500},
      %% the kernel's TCP congestion control changes how the client's small
      %% writes leave (under bbr they share segments towards busy BEAM
      %% masters, under cubic each is its own): part of the result
      tcp_cc => tcp_cc()}.

tcp_cc() ->
    case file:read_file("/proc/sys/net/ipv4/tcp_congestion_control") of
        {ok, B} -> string:trim(B);
        {error, _} -> <<"unknown">>
    end.

env(Name, Default) ->
    case os:getenv(Name) of
        V when is_list(V), V =/= "" -> V;
        _ -> Default
    end.

list_to_float_any(S) ->
    case string:to_float(S) of
        {F, []} -> F;
        _ -> float(list_to_integer(S))
    end.

%%--------------------------------------------------------------------
%% Driver

run() ->
    Cfg = #{runs := Runs, out := Out} = config(),
    ok = filelib:ensure_dir(filename:join([maps:get(log_dir, Cfg), "x"])),
    lockerd_ct:ensure_epmd(),
    say("config: ~p", [maps:without([log_dir], Cfg)]),
    RunMaps = [begin
                   say("=== run ~p of ~p", [R, Runs]),
                   one_run(R, Cfg)
               end || R <- lists:seq(1, Runs)],
    Agg = aggregate(RunMaps),
    Json = #{config => cfg_json(Cfg),
             headline => headline(Agg),
             figures => Agg},
    File = filename:join(Out, "latest.json"),
    ok = file:write_file(File, [json(Json), $\n]),
    Table = table(Agg, Cfg),
    ok = file:write_file(filename:join(Out, "latest.txt"), Table),
    io:format("~n~s~nwrote ~s~n", [Table, File]),
    plots(Cfg),
    ok.

cfg_json(Cfg) ->
    maps:with([runs, seconds, vis_seconds, quick, leases, conc, scenarios, cap_nodes, cap_procs, cap_batch,
               cap_c_window, insert_window, insert, tcp_cc], Cfg).

%% Odd runs measure lockerd first, even runs the BEAM cluster first, so
%% that neither always has the machine fresh (or warm).
one_run(Run, Cfg) ->
    {L, B} = case Run rem 2 of
                 1 -> L0 = cluster_run(lockerd, Run, Cfg), {L0, cluster_run(beam, Run, Cfg)};
                 0 -> B0 = cluster_run(beam, Run, Cfg), {cluster_run(lockerd, Run, Cfg), B0}
             end,
    Figs = maps:merge(prefix("lockerd.", L), prefix("beam.", B)),
    maps:merge(Figs, ratios(L, B)).

prefix(P, M) ->
    maps:from_list([{P ++ K, V} || {K, V} <- maps:to_list(M)]).

%% Every figure present for both kinds gets a ratio lockerd/beam.
ratios(L, B) ->
    maps:from_list([{"ratio." ++ K, V / maps:get(K, B)}
                    || {K, V} <- maps:to_list(L), is_number(V),
                       is_number(maps:get(K, B, undefined)), maps:get(K, B) /= 0]
                   ++ c_ratio(L, B) ++ coalesced_ratio(L, B)).

%% lockerd with --coalesce-us over the BEAM cluster, BEAM clients both.
coalesced_ratio(L, B) ->
    [{"ratio.coalesced_over_beam.c" ++ integer_to_list(N) ++ "." ++ F,
      V / maps:get("s1.beam_clients.c" ++ integer_to_list(N) ++ "." ++ F, B)}
     || N <- [1, 16, 64, 256],
        F <- ["pairs_per_s", "p50_us", "p99_us", "p999_us", "client_us_per_pair", "masters_us_per_pair"],
        {ok, V} <- [maps:find("s1.beam_clients_coalesced.c" ++ integer_to_list(N) ++ "." ++ F, L)],
        maps:get("s1.beam_clients.c" ++ integer_to_list(N) ++ "." ++ F, B, 0) > 0]
    %% lockerd with --eager-push over the BEAM cluster's visibility
    ++ [{"ratio.s6.eager." ++ F, V / maps:get("s6." ++ F, B)}
        || F <- ["p50_ms", "p99_ms"], {ok, V} <- [maps:find("s6.eager." ++ F, L)],
           maps:get("s6." ++ F, B, 0) > 0].

%% C-library clients on lockerd over BEAM clients on BEAM masters.
c_ratio(L, B) ->
    [{"ratio.c_lockerd_over_beamclients_beam.c" ++ integer_to_list(N) ++ ".pairs_per_s",
      V / maps:get("s1.beam_clients.c" ++ integer_to_list(N) ++ ".pairs_per_s", B)}
     || N <- [1, 16, 64, 256],
        {ok, V} <- [maps:find("s1.c_client.c" ++ integer_to_list(N) ++ ".pairs_per_s", L)],
        maps:get("s1.beam_clients.c" ++ integer_to_list(N) ++ ".pairs_per_s", B, 0) > 0].

cluster_run(Kind, Run, Cfg) ->
    Tag = lists:concat([Kind, Run, "_", os:getpid()]),
    MNames = [lists:concat(["bm", I, "_", Tag]) || I <- [1, 2, 3]],
    Masters = [lockerd_ct:node_name(N) || N <- MNames],
    LogDir = maps:get(log_dir, Cfg),
    say("--- ~s cluster (run ~p): ~p", [Kind, Run, Masters]),
    MH = [start_node(Kind, N, {2, Masters, []}, LogDir) || N <- MNames],
    Client = lockerd_ct:start_beam_node("bcl_" ++ Tag, {2, Masters, []}, client_opts()),
    Handles = [Client | MH],
    Ctx = #{kind => Kind, run => Run, tag => Tag, masters => Masters, mh => MH,
            client => Client, cfg => Cfg, log_dir => LogDir},
    try
        lists:foldl(fun(S, Acc) ->
                            case lists:member(S, maps:get(scenarios, Cfg)) of
                                true ->
                                    T0 = erlang:monotonic_time(millisecond),
                                    R = scenario(S, Ctx#{acc => Acc}),
                                    say("  scenario ~p on ~s: ~.1f s", [S, Kind,
                                         (erlang:monotonic_time(millisecond) - T0) / 1000]),
                                    maps:merge(Acc, R);
                                false ->
                                    Acc
                            end
                    end, #{}, [1, 2, 3, 4, 5, 6])
    after
        lockerd_ct:stop_all(Handles)
    end.

start_node(lockerd, Name, {W, Masters, Replicas}, LogDir) ->
    %% BENCH_LOCKERD_ARGS: extra lockerd options, e.g. "--no-eager-push".
    Extra = string:lexemes(env("BENCH_LOCKERD_ARGS", ""), " "),
    lockerd_ct:start_lockerd(Name, #{masters => Masters, replicas => Replicas, w => W,
                                     log_dir => LogDir, log_level => "warn",
                                     extra_args => Extra});
start_node(beam, Name, Meta, _LogDir) ->
    lockerd_ct:start_beam_node(Name, Meta, peer_opts()).

%% Peers are stopped and started all the time: keep global from
%% disconnecting the others when one goes.
%% BENCH_CLIENT_ARGS: extra erl flags for the client node only (the same
%% for both clusters), e.g. "+sbwt none" to keep its schedulers from
%% spinning, so that its CPU figure is work, not busy-waiting.
client_opts() ->
    #{args := A} = O = peer_opts(),
    O#{args => A ++ string:lexemes(env("BENCH_CLIENT_ARGS", ""), " ")}.

peer_opts() ->
    #{args => ["-kernel", "prevent_overlapping_partitions", "false"]}.

%%--------------------------------------------------------------------
%% Scenarios; each returns a flat map "sN.what" => number.

%% BEAM client processes locking and releasing their own keys, at each
%% concurrency, with the CPU of the client node and of the masters over
%% each run (in cores: where the bound lies).
beam_pairs(Ctx, What, Concs) ->
    beam_pairs(Ctx, What, Concs, 0).

%% Rate: the offered load in pairs/s over all processes (0: closed loop).
beam_pairs(#{client := #{node := CN} = CH, mh := MH, cfg := Cfg} = Ctx, What, Concs, Rate) ->
    Secs = maps:get(seconds, Cfg),
    lists:foldl(
      fun(N, Acc) ->
              LatFile = sample_file(Ctx, What, N),
              %% ss runs outside the window the CPU figures are taken over
              Tcp0 = tcp_counts(CH),
              {C0, M0, T0} = {cpu_ticks(CH), lists:map(fun cpu_ticks/1, MH), now_ms()},
              {V0, I0} = switches(CH),
              Perf = perf_start(Ctx, CH, What, N),
              R0 = erpc:call(CN, bench_load, paced_pairs, [N, Rate, Secs, LatFile],
                             call_to(Secs)),
              perf_wait(Perf),
              Wall = (now_ms() - T0) / 1000 * clk_tck(),
              ClientCpu = (cpu_ticks(CH) - C0) / Wall,
              MastersCpu = lists:sum([cpu_ticks(H) - M || {H, M} <- lists:zip(MH, M0)]) / Wall,
              {V1, I1} = switches(CH),
              Tcp = maps:merge_with(fun(_, A, B) -> A - B end, tcp_counts(CH), Tcp0),
              Pairs = maps:get(pairs, R0),
              %% CPU time per lock+release pair, us: cores / (pairs/s)
              PerPair = fun(Cores) -> per_pair(Cores, maps:get(pairs_per_s, R0)) end,
              R1 = R0#{client_cpu => ClientCpu, masters_cpu => MastersCpu,
                      client_us_per_pair => PerPair(ClientCpu),
                      masters_us_per_pair => PerPair(MastersCpu),
                      %% the client's threads going to sleep (voluntary
                      %% context switches) and being preempted, per pair
                      client_sleeps_per_pair => ratio_or_null(V1 - V0, Pairs),
                      client_preempted_per_pair => ratio_or_null(I1 - I0, Pairs)},
              %% the client's TCP connections (to the masters): the
              %% segments and bytes each way, per pair
              R = maps:merge(R1, maps:from_list([{Fig, ratio_or_null(maps:get(Ss, Tcp), Pairs)}
                                                 || {Ss, Fig, _} <- tcp_fields()])),
              say("  s1 ~s ~s c~p: ~.1f pairs/s p50 ~p us p99 ~p us; "
                  "CPU client ~.2f masters ~.2f cores, per pair ~p / ~p us; "
                  "client sleeps ~p preempted ~p, TCP segments out ~p in ~p, bytes out ~p in ~p "
                  "per pair",
                  [maps:get(kind, Ctx), What, N, maps:get(pairs_per_s, R),
                   maps:get(p50_us, R), maps:get(p99_us, R), ClientCpu, MastersCpu,
                   maps:get(client_us_per_pair, R), maps:get(masters_us_per_pair, R),
                   maps:get(client_sleeps_per_pair, R), maps:get(client_preempted_per_pair, R)]
                  ++ [maps:get(Fig, R) || {_, Fig, _} <- tcp_fields()]),
              maps:merge(Acc, pick("s1." ++ What ++ ".c" ++ integer_to_list(N),
                                   R, [pairs_per_s, p50_us, p99_us, p999_us, max_us,
                                       errors, client_cpu, masters_cpu,
                                       client_us_per_pair, masters_us_per_pair,
                                       client_sleeps_per_pair, client_preempted_per_pair]
                                   ++ [Fig || {_, Fig, _} <- tcp_fields()]))
      end, #{}, Concs).

ratio_or_null(_, 0) -> null;
ratio_or_null(A, B) -> round(A / B * 10) / 10.

per_pair(_Cores, Pairs) when Pairs =< 0 -> null;
per_pair(Cores, Pairs) -> round(Cores * 1.0e6 / Pairs).

%% Sets --coalesce-us on every master (one value for all, or one per
%% master); returns what they had, in the same per-master form.
set_coalesce(#{masters := Masters} = Ctx, Us) when is_integer(Us) ->
    set_coalesce(Ctx, [Us || _ <- Masters]);
set_coalesce(#{masters := Masters}, PerMaster) ->
    [begin
         Old = erpc:call(M, lockerd, coalesce, [], 5000),
         ok = erpc:call(M, lockerd, set_coalesce, [Us], 5000),
         Old
     end || {M, Us} <- lists:zip(Masters, PerMaster)].

%% BENCH_PERF_DIR: a perf profile (call graphs, software clock) of the
%% client node over each BEAM-client phase, Dir/<kind>_<what>_c<N>.data,
%% for `perf report -i`. Unset: none.
perf_start(#{kind := Kind, cfg := Cfg}, #{os_pid := Pid}, What, N) ->
    case env("BENCH_PERF_DIR", "") of
        "" ->
            none;
        Dir ->
            ok = filelib:ensure_dir(filename:join(Dir, "x")),
            File = filename:join(Dir, lists:concat([Kind, "_", What, "_c", N, ".data"])),
            Secs = max(1, trunc(maps:get(seconds, Cfg)) - 1),
            %% BENCH_PERF_EVENTS: count these events instead (perf stat)
            Cmd = case env("BENCH_PERF_EVENTS", "") of
                      "" ->
                          lists:flatten(io_lib:format("perf record -q -F 499 -g -p ~s -o '~s' "
                                                      "-- sleep ~p >/dev/null 2>&1",
                                                      [Pid, File, Secs]));
                      Evs ->
                          lists:flatten(io_lib:format("perf stat -e '~s' -p ~s -o '~s.txt' "
                                                      "-- sleep ~p >/dev/null 2>&1",
                                                      [Evs, Pid, File, Secs]))
                  end,
            Self = self(),
            {spawn_link(fun() -> os:cmd(Cmd), Self ! {self(), perf_done} end), Secs}
    end.

perf_wait(none) -> ok;
perf_wait({P, Secs}) ->
    receive {P, perf_done} -> ok
    after (Secs + 30) * 1000 -> error(perf_timeout)
    end.

%% The split variant: the client node's threads on the first CPU, every
%% master's on the others, so neither side's figures carry the other's
%% scheduling; afterwards all of them may use every CPU again.
split_cpus(#{client := CH, mh := MH}) ->
    case online_cpus() of
        [First | Rest] when Rest =/= [] ->
            pin(CH, [First]),
            [pin(H, Rest) || H <- MH],
            {ok, [First | Rest]};
        _ ->
            skip
    end.

unsplit_cpus(#{client := CH, mh := MH}, All) ->
    [pin(H, All) || H <- [CH | MH]],
    ok.

online_cpus() ->
    {ok, Set} = file:read_file("/sys/devices/system/cpu/online"),
    lists:append([case string:lexemes(R, "-") of
                      [A] -> [binary_to_integer(A)];
                      [A, B] -> lists:seq(binary_to_integer(A), binary_to_integer(B))
                  end || R <- string:lexemes(string:trim(Set), ",")]).

pin(#{os_pid := Pid}, Cpus) ->
    List = lists:join(",", [integer_to_list(C) || C <- Cpus]),
    Out = os:cmd(lists:flatten(["taskset -a -cp ", List, " ", Pid, " >/dev/null 2>&1; echo $?"])),
    case string:trim(Out) of
        "0" -> ok;
        _ -> error({taskset_failed, Pid, Cpus})
    end.

%% 1. lock+release pairs, distinct keys: BEAM client processes, then the C
%% client library with N pairs in flight.
scenario(1, #{cfg := Cfg} = Ctx) ->
    Beam = beam_pairs(Ctx, "beam_clients", maps:get(conc, Cfg)),
    %% The same with the client node and the masters on separate CPUs
    %% (BENCH_SPLIT=0 skips it).
    Split = case env("BENCH_SPLIT", "1") =:= "1" andalso split_cpus(Ctx) of
                {ok, All} ->
                    try beam_pairs(Ctx, "beam_clients_split", maps:get(conc, Cfg))
                    after unsplit_cpus(Ctx, All)
                    end;
                _ ->
                    #{}
            end,
    %% The same offered load on both clusters (BENCH_PACED_RATE pairs/s,
    %% 0 skips), below what either carries: what the client node spends
    %% for the same work (one process cannot be paced above its own
    %% closed-loop rate, so not at 1).
    Paced = case list_to_integer(env("BENCH_PACED_RATE", "2000")) of
                0 -> #{};
                Rate -> beam_pairs(Ctx, "beam_clients_paced",
                                   [N || N <- maps:get(conc, Cfg), N > 1], Rate)
            end,
    %% lockerd with another --coalesce-us (BENCH_COALESCE_US; unset skips,
    %% 0 is coalescing off), set at run time on the same masters: BEAM
    %% clients again, then the masters' own setting back.
    Coal = case {maps:get(kind, Ctx), env("BENCH_COALESCE_US", "")} of
               {lockerd, Us} when Us =/= "" ->
                   Old = set_coalesce(Ctx, list_to_integer(Us)),
                   try beam_pairs(Ctx, "beam_clients_coalesced", maps:get(conc, Cfg))
                   after set_coalesce(Ctx, Old)
                   end;
               _ ->
                   #{}
           end,
    C = lists:foldl(
          fun(N, Acc) ->
                  R = lkc_bench(Ctx, ["--inflight", integer_to_list(N)]
                                ++ case sample_file(Ctx, "c_client", N) of
                                       undefined -> [];
                                       F -> ["--latencies", F]
                                   end),
                  say("  s1 ~s C client inflight ~p: ~.1f pairs/s p50 ~p us p99 ~p us (~s)",
                      [maps:get(kind, Ctx), N, maps:get("pairs_per_s", R, 0.0),
                       maps:get("lock_p50_us", R, 0), maps:get("lock_p99_us", R, 0),
                       maps:get("first_error", R, "")]),
                  maps:merge(Acc, pick("s1.c_client.c" ++ integer_to_list(N), R,
                                       ["pairs_per_s", "lock_p50_us", "lock_p99_us",
                                        "lock_p999_us", "lock_max_us", "errors"]))
          end, #{}, maps:get(conc, Cfg)),
    lists:foldl(fun maps:merge/2, Beam, [Split, Paced, Coal, C]);

%% 2. contention: 16 clients over 10 keys.
scenario(2, #{client := #{node := CN}, cfg := Cfg} = Ctx) ->
    Secs = maps:get(seconds, Cfg),
    B = erpc:call(CN, bench_load, contention, [16, 10, Secs], call_to(Secs)),
    C = lkc_bench(Ctx, ["--inflight", "16", "--keys", "10"]),
    say("  s2 ~s: beam clients ~.1f locks/s no_quorum ~.3f; C ~.1f locks/s no_quorum ~.3f",
        [maps:get(kind, Ctx), maps:get(locks_ok_per_s, B), maps:get(no_quorum_rate, B),
         maps:get("locks_ok_per_s", C, 0.0), maps:get("no_quorum_rate", C, 0.0)]),
    maps:merge(pick("s2.beam_clients", B, [locks_ok_per_s, no_quorum_rate, other_errors]),
               pick("s2.c_client", C, ["locks_ok_per_s", "no_quorum_rate", "errors"]));

%% 3. one master flooded by cap_nodes BEAM nodes x cap_procs processes,
%% then by the C generator (one client node, cap_c_window keys in flight,
%% the same three calls per key): calls/s and the master's CPU per call.
scenario(3, #{masters := [M | _], mh := [MH | _], tag := Tag, cfg := Cfg} = Ctx) ->
    Secs = maps:get(seconds, Cfg),
    Loaders = [lockerd_ct:start_peer(lists:concat(["bld", I, "_", Tag]), peer_opts())
               || I <- lists:seq(1, maps:get(cap_nodes, Cfg))],
    R = try
            [{ok, _, _, _, _, _} = erpc:call(N, gen_server, call, [{locker, M}, get_debug_state])
             || #{node := N} <- Loaders],
            Cpu0 = cpu_ticks(MH),
            T0 = erlang:monotonic_time(microsecond),
            Refs = [erpc:send_request(N, bench_load, capacity, [M, maps:get(cap_procs, Cfg), Secs,
                                                                     maps:get(cap_batch, Cfg)])
                    || #{node := N} <- Loaders],
            Rs = [erpc:receive_response(Ref, call_to(Secs)) || Ref <- Refs],
            Wall = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
            Cpu1 = cpu_ticks(MH),
            Calls = lists:sum([maps:get(calls, X) || X <- Rs]),
            Errors = lists:sum([maps:get(errors, X) || X <- Rs]),
            CpuS = (Cpu1 - Cpu0) / clk_tck(),
            say("  s3 ~s: ~.1f calls/s, ~.2f us CPU per call, master CPU ~.1f%",
                [maps:get(kind, Ctx), Calls / Secs, CpuS * 1.0e6 / max(1, Calls), 100 * CpuS / Wall]),
            #{"s3.calls_per_s" => Calls / Secs,
              "s3.cpu_us_per_call" => CpuS * 1.0e6 / max(1, Calls),
              "s3.cpu_utilisation" => CpuS / Wall,
              "s3.errors" => Errors}
        after
            lockerd_ct:stop_all(Loaders)
        end,
    maps:merge(R, capacity_c(Ctx));

%% 4. memory: leases {user, N} -> pid written to the first master by
%% pipelined write calls from the C client (insert_window in flight); RSS
%% growth at the small and the large count. Then, as an extra row, the
%% BEAM client node writes a tenth of the count the same way (fresh keys,
%% 1 s leases, gone before scenario 5).
scenario(4, #{masters := [M | _], mh := [MH | _], client := #{node := CN}, cfg := Cfg} = Ctx) ->
    [Small, Big] = maps:get(leases, Cfg),
    settle(),
    Rss0 = rss_kb(MH),
    Ets0 = ets_bytes(Ctx),
    R1 = insert_c(Ctx, 1, Small, ["--lease", "3600000"]),
    settle(),
    Rss1 = rss_kb(MH),
    Ets1 = ets_bytes(Ctx),
    R2 = insert_c(Ctx, Small + 1, Big - Small, ["--lease", "3600000"]),
    settle(),
    Rss2 = rss_kb(MH),
    Ets2 = ets_bytes(Ctx),
    InsS = maps:get("seconds", R1) + maps:get("seconds", R2),
    ClientCpu = maps:get("client_cpu_s", R1) + maps:get("client_cpu_s", R2),
    B = erpc:call(CN, bench_load, insert, [M, Big + 1, Big + Small, {len, 1000},
                                           maps:get(insert, Cfg)], infinity),
    timer:sleep(2000),
    Res = #{"s4.rss0_kb" => Rss0,
            "s4.rss_small_kb" => Rss1, "s4.rss_big_kb" => Rss2,
            "s4.bytes_per_lease_small" => (Rss1 - Rss0) * 1024 / Small,
            "s4.bytes_per_lease_big" => (Rss2 - Rss0) * 1024 / Big,
            "s4.insert_big_s" => InsS,
            "s4.insert_per_s" => Big / InsS,
            "s4.insert_client_cpu_s" => ClientCpu,
            "s4.insert_errors" => maps:get("errors", R1) + maps:get("errors", R2),
            "s4.beam_client_insert_small_s" => maps:get(seconds, B),
            "s4.beam_client_insert_per_s" => Small / maps:get(seconds, B),
            "s4.beam_client_insert_errors" => maps:get(errors, B)},
    Ets = case Ets0 of
              undefined -> #{};
              _ -> #{"s4.ets_bytes_per_lease_small" => (Ets1 - Ets0) / Small,
                     "s4.ets_bytes_per_lease_big" => (Ets2 - Ets0) / Big}
          end,
    say("  s4 ~s: RSS ~p -> ~p -> ~p kB; ~.1f / ~.1f bytes per lease; C client: ~p writes in "
        "~.2f s (client CPU ~.2f s, errors ~p: ~s); BEAM client: ~p writes in ~.2f s",
        [maps:get(kind, Ctx), Rss0, Rss1, Rss2, (Rss1 - Rss0) * 1024 / Small,
         (Rss2 - Rss0) * 1024 / Big, Big, InsS, ClientCpu,
         maps:get("errors", R1) + maps:get("errors", R2), first_error([R1, R2]),
         Small, maps:get(seconds, B)]),
    maps:merge(Res, Ets);

%% 5. mass expiry: rewrite the Big leases (C client) so that they all end
%% at one instant, run a steady stream of calls across it, report the
%% largest delay (and the largest before the expiry, as a baseline).
scenario(5, #{masters := [M | _], mh := [MH | _], client := #{node := CN}, cfg := Cfg,
              acc := Acc} = Ctx) ->
    [_, Big] = maps:get(leases, Cfg),
    Est = round(1000 * maps:get("s4.insert_big_s", Acc, Big / 20000)),
    %% The client node's monotonic clock (the steady caller's) and the wall
    %% clock the C client counts the common expiry instant in.
    {Now, Wall} = erpc:call(CN, bench_load, clocks, []),
    Expire = Now + round(1.5 * Est) + 3000,
    W = insert_c(Ctx, 1, Big, ["--expire-at-wall", integer_to_list(Wall + Expire - Now)]),
    Start = erpc:call(CN, erlang, monotonic_time, [millisecond]),
    Until = Expire + 6000,
    S = erpc:call(CN, bench_load, steady, [M, 1, Until], Until - Start + ?CALL_SLACK),
    Samples = maps:get(samples, S),
    Before = [L || {T, L} <- Samples, T < Expire - 200],
    After = [L || {T, L} <- Samples, T >= Expire - 200],
    Left = lease_count(Ctx),
    settle(),
    Rss = rss_kb(MH),
    MaxB = lists:max([0 | Before]) / 1000,
    MaxA = lists:max([0 | After]) / 1000,
    say("  s5 ~s: rewrite ~.2f s (~p s of baseline before expiry); max call delay ~.1f ms "
        "before, ~.1f ms across the expiry (at +~p ms); leases left ~p; RSS ~p kB",
        [maps:get(kind, Ctx), maps:get("seconds", W), (Expire - Start) div 1000, MaxB, MaxA,
         maps:get(max_at_ms, S) - Expire, Left, Rss]),
    #{"s5.max_delay_ms" => MaxA, "s5.baseline_max_delay_ms" => MaxB,
      "s5.rewrite_s" => maps:get("seconds", W),
      "s5.p99_across_ms" => maps:get(p99_us, bench_load:percentiles(After)) / 1000,
      "s5.max_at_ms_after_expiry" => maps:get(max_at_ms, S) - Expire,
      "s5.baseline_s" => (Expire - Start) / 1000,
      "s5.leases_left" => Left, "s5.rss_after_kb" => Rss};

%% 6. replica visibility: add a replica, lock from the client node, poll
%% dirty_read on the replica.
scenario(6, #{kind := Kind, masters := Masters, client := #{node := CN}, tag := Tag,
              cfg := Cfg, log_dir := LogDir}) ->
    RName = "brep_" ++ Tag,
    RNode = lockerd_ct:node_name(RName),
    RH = start_node(Kind, RName, {2, Masters, [RNode]}, LogDir),
    try
        {_, []} = gen_server:multi_call(Masters ++ [CN], locker, {set_nodes, Masters, [RNode]}),
        Mod = case Kind of lockerd -> locker; beam -> lkr end,
        VSecs = maps:get(vis_seconds, Cfg),
        Run = fun(What, Prefix) ->
                      R = erpc:call(CN, bench_load, visibility, [RNode, Mod, VSecs], call_to(VSecs)),
                      say("  s6 ~s~s: replica visibility p50 ~.1f ms p99 ~.1f ms (~p samples)",
                          [Kind, What, maps:get(p50_us, R) / 1000, maps:get(p99_us, R) / 1000,
                           maps:get(n, R)]),
                      #{Prefix ++ ".p50_ms" => maps:get(p50_us, R) / 1000,
                        Prefix ++ ".p99_ms" => maps:get(p99_us, R) / 1000,
                        Prefix ++ ".max_ms" => maps:get(max_us, R) / 1000,
                        Prefix ++ ".samples" => maps:get(n, R)}
              end,
        %% The interval push first: eager push is lockerd's default, so it
        %% is switched off for this pass (the BEAM server has only this).
        [ok = erpc:call(M, lockerd, set_eager_push, [false]) || Kind =:= lockerd, M <- Masters],
        Plain = Run("", "s6"),
        %% lockerd again with eager push, switched back on at run time.
        Eager = case Kind of
                    lockerd ->
                        [ok = erpc:call(M, lockerd, set_eager_push, [true]) || M <- Masters],
                        Run(" eager push", "s6.eager");
                    beam ->
                        #{}
                end,
        maps:merge(Plain, Eager)
    after
        lockerd_ct:stop(RH)
    end.

call_to(Secs) ->
    round(Secs * 1000) + ?CALL_SLACK.

pick(Prefix, R, Keys) ->
    maps:from_list([{Prefix ++ "." ++ to_list(K), maps:get(K, R)} || K <- Keys, maps:is_key(K, R)]).

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(S) -> S.

%% Latency samples of the last run at 64 in flight (for the plots).
sample_file(#{run := Run, cfg := Cfg, kind := Kind}, What, 64) ->
    case Run =:= maps:get(runs, Cfg) of
        true -> filename:join(maps:get(out, Cfg), lists:concat(["lat_", What, "_", Kind, ".txt"]));
        false -> undefined
    end;
sample_file(_, _, _) ->
    undefined.

%%--------------------------------------------------------------------
%% The C load generator: one OS process, one JSON line.

lkc_bench(#{cfg := Cfg} = Ctx, Args2) ->
    lkc_bench(Ctx, Args2, call_to(maps:get(seconds, Cfg))).

lkc_bench(#{masters := Masters, cfg := Cfg, tag := Tag}, Args2, Timeout) ->
    Secs = maps:get(seconds, Cfg),
    Name = lists:concat(["lkcb_", erlang:unique_integer([positive]), "_", Tag]),
    Args = ["--masters", string:join([atom_to_list(M) || M <- Masters], ","),
            "-setcookie", lockerd_ct:cookie(), "-sname", Name,
            "--seconds", io_lib:format("~.3f", [Secs])] ++ Args2,
    Bin = maps:get(lkc_bench, Cfg),
    P = lockerd_ct:start_program(Bin, [lists:flatten(A) || A <- Args]),
    case lockerd_ct:program_line(P, "{", Timeout) of
        {ok, Line} ->
            wait_exit(P),
            parse_json_line(Line);
        Other ->
            lockerd_ct:kill_program(P, "KILL"),
            say("  lkc_bench failed: ~p", [Other]),
            #{"error" => 1}
    end.

%% Scenario 4/5 writes by the C client: {user, I} for I in From..From+N-1
%% into the first master, insert_window in flight; its JSON figures.
insert_c(#{masters := [M | _], cfg := Cfg} = Ctx, From, N, LeaseArgs) ->
    R = lkc_bench(Ctx, ["--insert", integer_to_list(N), "--from", integer_to_list(From),
                        "--window", integer_to_list(maps:get(insert_window, Cfg)),
                        "--master", atom_to_list(M)] ++ LeaseArgs,
                  %% at 2000 writes/s at the very least
                  N div 2 + ?CALL_SLACK),
    case maps:is_key("seconds", R) of
        true -> R;
        false -> error({c_insert_failed, R})
    end.

first_error(Rs) ->
    case [E || R <- Rs, E <- [maps:get("first_error", R, "") ++ maps:get("first_bad_reply", R, "")],
               E =/= ""] of
        [E | _] -> E;
        [] -> "none"
    end.

%% Scenario 3 with the C generator.
capacity_c(#{masters := [M | _], mh := [MH | _], cfg := Cfg} = Ctx) ->
    Cpu0 = cpu_ticks(MH),
    T0 = erlang:monotonic_time(microsecond),
    R = lkc_bench(Ctx, ["--capacity", "--window", integer_to_list(maps:get(cap_c_window, Cfg)),
                        "--master", atom_to_list(M)]),
    Wall = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    CpuS = (cpu_ticks(MH) - Cpu0) / clk_tck(),
    Calls = maps:get("calls", R, 0),
    %% the generator's start-up and warm-up are inside Wall; its own
    %% measured seconds are what the calls took
    G = maps:get("seconds", R, Wall),
    say("  s3 ~s C generator: ~.1f calls/s, ~.2f us CPU per call, master CPU ~.1f% "
        "(generator CPU ~.1f%, errors ~p: ~s)",
        [maps:get(kind, Ctx), Calls / G, CpuS * 1.0e6 / max(1, Calls), 100 * CpuS / G,
         100 * maps:get("client_cpu_s", R, 0.0) / G, maps:get("errors", R, -1), first_error([R])]),
    #{"s3.c_gen.calls_per_s" => Calls / G,
      "s3.c_gen.cpu_us_per_call" => CpuS * 1.0e6 / max(1, Calls),
      "s3.c_gen.cpu_utilisation" => CpuS / G,
      "s3.c_gen.client_cpu_utilisation" => maps:get("client_cpu_s", R, 0.0) / G,
      "s3.c_gen.errors" => maps:get("errors", R, -1)}.

wait_exit(#{port := Port}) ->
    receive {Port, {exit_status, _}} -> ok after 10000 -> ok end.

%% The generator prints a flat object of numbers and strings.
parse_json_line(Line) ->
    {match, Pairs} = re:run(Line, "\"([a-z0-9_]+)\": (\"[^\"]*\"|[-+0-9.eE]+)",
                            [global, {capture, all_but_first, list}]),
    maps:from_list([{K, json_value(V)} || [K, V] <- Pairs]).

json_value([$" | _] = S) -> string:trim(S, both, "\"");
json_value(S) ->
    case string:to_float(S) of
        {F, []} -> F;
        _ -> list_to_integer(S)
    end.

%%--------------------------------------------------------------------
%% Observation of a master process

rss_kb(#{os_pid := Pid}) ->
    {ok, B} = file:read_file("/proc/" ++ Pid ++ "/status"),
    {match, [Kb]} = re:run(B, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb).

cpu_ticks(#{os_pid := Pid}) ->
    {ok, B} = file:read_file("/proc/" ++ Pid ++ "/stat"),
    %% the command name may hold spaces: split after its closing paren
    [_, Rest] = string:split(B, ")", trailing),
    F = string:lexemes(Rest, " "),
    %% fields 14 and 15 of stat are the 12th and 13th after the name
    binary_to_integer(lists:nth(12, F)) + binary_to_integer(lists:nth(13, F)).

%% {voluntary, involuntary} context switches of every thread of a node.
switches(#{os_pid := Pid}) ->
    Dir = "/proc/" ++ Pid ++ "/task",
    {ok, Tids} = file:list_dir(Dir),
    lists:foldl(fun(Tid, {V, I}) ->
                        case file:read_file(filename:join([Dir, Tid, "status"])) of
                            {ok, B} -> {V + status_field(B, <<"voluntary_ctxt_switches">>),
                                        I + status_field(B, <<"nonvoluntary_ctxt_switches">>)};
                            {error, _} -> {V, I}  % the thread is gone
                        end
                end, {0, 0}, Tids).

%% Counters of the node's established TCP connections, summed (ss -ti):
%% segs_out, segs_in, bytes_sent, bytes_received. A connection opened or
%% closed during a phase shows as a jump; the client's to the masters
%% stay up for the whole run.
tcp_counts(#{os_pid := Pid}) ->
    Out = os:cmd("ss -tinpH state established 2>/dev/null"),
    Mine = "pid=" ++ Pid ++ ",",
    Keys = [atom_to_binary(Ss) || {Ss, _, _} <- tcp_fields()],
    Zero = maps:from_list([{binary_to_atom(K), 0} || K <- Keys]),
    tcp_sum(string:split(Out, "\n", all), Mine, Keys, Zero).

%% {ss counter, per-pair figure, table label} of each TCP figure.
tcp_fields() ->
    [{segs_out, client_segs_out_per_pair, "segs out"},
     {segs_in, client_segs_in_per_pair, "segs in"},
     {bytes_sent, client_bytes_out_per_pair, "bytes out"},
     {bytes_received, client_bytes_in_per_pair, "bytes in"}].

%% ss prints a socket's line, then its counters on a line of their own.
tcp_sum([Sock, Info | Rest], Mine, Keys, Acc) ->
    case string:find(Sock, Mine) of
        nomatch ->
            tcp_sum([Info | Rest], Mine, Keys, Acc);
        _ ->
            Acc1 = lists:foldl(
                     fun(K, A) ->
                             case re:run(Info, <<"\\b", K/binary, ":([0-9]+)">>,
                                         [{capture, all_but_first, list}]) of
                                 {match, [V]} ->
                                     maps:update_with(binary_to_atom(K),
                                                      fun(X) -> X + list_to_integer(V) end, A);
                                 nomatch ->
                                     A
                             end
                     end, Acc, Keys),
            tcp_sum(Rest, Mine, Keys, Acc1)
    end;
tcp_sum(_, _, _, Acc) ->
    Acc.

status_field(B, Name) ->
    case re:run(B, <<"(?m)^", Name/binary, ":\\s*([0-9]+)">>, [{capture, all_but_first, binary}]) of
        {match, [N]} -> binary_to_integer(N);
        nomatch -> 0
    end.

clk_tck() ->
    case string:trim(os:cmd("getconf CLK_TCK")) of
        "" -> 100;
        S -> list_to_integer(S)
    end.

ets_bytes(#{kind := lockerd}) ->
    undefined;
ets_bytes(#{kind := beam, masters := [M | _]}) ->
    erpc:call(M, ets, info, [lkr_leases, memory]) * erpc:call(M, erlang, system_info, [wordsize]).

lease_count(#{kind := lockerd, masters := [M | _]}) ->
    case rpc:call(M, locker, summary, [], 30000) of
        L when is_list(L) -> proplists:get_value(leases, L, -1);
        _ -> -1
    end;
lease_count(#{kind := beam, masters := [M | _]}) ->
    erpc:call(M, ets, info, [lkr_leases, size]).

%% Let a BEAM node's allocators / a process's pending replies settle.
settle() ->
    timer:sleep(1000).

%%--------------------------------------------------------------------
%% Aggregation: every figure -> median, min, max over the runs.

aggregate(RunMaps) ->
    Keys = lists:usort(lists:append([maps:keys(M) || M <- RunMaps])),
    maps:from_list([{K, stats([maps:get(K, M) || M <- RunMaps, is_number(maps:get(K, M, x))])}
                    || K <- Keys]).

stats([]) ->
    #{median => null, min => null, max => null, runs => []};
stats(Vs) ->
    S = lists:sort(Vs),
    N = length(S),
    Med = case N rem 2 of
              1 -> lists:nth(N div 2 + 1, S);
              0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
          end,
    #{median => Med, min => hd(S), max => lists:last(S), runs => Vs}.

%% The figures the issue names, each with the raw figures beside it.
headline(Agg) ->
    H = [{pairs_per_s_ratio_64, "ratio.s1.beam_clients.c64.pairs_per_s",
          ["lockerd.s1.beam_clients.c64.pairs_per_s", "beam.s1.beam_clients.c64.pairs_per_s"]},
         {lock_p99_ratio_64, "ratio.s1.beam_clients.c64.p99_us",
          ["lockerd.s1.beam_clients.c64.p99_us", "beam.s1.beam_clients.c64.p99_us"]},
         {pairs_per_s_ratio_64_coalesced, "ratio.coalesced_over_beam.c64.pairs_per_s",
          ["lockerd.s1.beam_clients_coalesced.c64.pairs_per_s", "beam.s1.beam_clients.c64.pairs_per_s"]},
         {lock_p99_ratio_64_coalesced, "ratio.coalesced_over_beam.c64.p99_us",
          ["lockerd.s1.beam_clients_coalesced.c64.p99_us", "beam.s1.beam_clients.c64.p99_us"]},
         {pairs_per_s_ratio_1, "ratio.s1.beam_clients.c1.pairs_per_s",
          ["lockerd.s1.beam_clients.c1.pairs_per_s", "beam.s1.beam_clients.c1.pairs_per_s"]},
         {lock_p99_ratio_1, "ratio.s1.beam_clients.c1.p99_us",
          ["lockerd.s1.beam_clients.c1.p99_us", "beam.s1.beam_clients.c1.p99_us"]}]
        ++ [{list_to_atom("client_cpu_per_pair_ratio_" ++ i2l(N)),
             "ratio.s1.beam_clients.c" ++ i2l(N) ++ ".client_us_per_pair",
             ["lockerd.s1.beam_clients.c" ++ i2l(N) ++ ".client_us_per_pair",
              "beam.s1.beam_clients.c" ++ i2l(N) ++ ".client_us_per_pair"]}
            || N <- [1, 16, 64, 256]]
        %% the same offered load on both: the client's CPU for the same
        %% work, and how often its threads slept / were preempted
        ++ [{client_cpu_per_pair_ratio_64_paced, "ratio.s1.beam_clients_paced.c64.client_us_per_pair",
             ["lockerd.s1.beam_clients_paced.c64.client_us_per_pair",
              "beam.s1.beam_clients_paced.c64.client_us_per_pair",
              "lockerd.s1.beam_clients_paced.c64.client_sleeps_per_pair",
              "beam.s1.beam_clients_paced.c64.client_sleeps_per_pair",
              "lockerd.s1.beam_clients_paced.c64.client_preempted_per_pair",
              "beam.s1.beam_clients_paced.c64.client_preempted_per_pair"]},
            {pairs_per_s_ratio_64_split, "ratio.s1.beam_clients_split.c64.pairs_per_s",
             ["lockerd.s1.beam_clients_split.c64.pairs_per_s",
              "beam.s1.beam_clients_split.c64.pairs_per_s",
              "ratio.s1.beam_clients_split.c64.p99_us",
              "ratio.s1.beam_clients_split.c64.client_us_per_pair"]},
         %% C clients on both kinds of master: the same client on each side
         {c_client_pairs_per_s_ratio, "ratio.s1.c_client.c64.pairs_per_s",
          ["lockerd.s1.c_client.c64.pairs_per_s", "beam.s1.c_client.c64.pairs_per_s",
           "beam.s1.beam_clients.c64.pairs_per_s",
           "ratio.c_lockerd_over_beamclients_beam.c64.pairs_per_s"]},
         {master_calls_per_s, "lockerd.s3.calls_per_s",
          ["beam.s3.calls_per_s", "ratio.s3.calls_per_s", "lockerd.s3.cpu_us_per_call",
           "beam.s3.cpu_us_per_call", "lockerd.s3.c_gen.calls_per_s",
           "lockerd.s3.c_gen.cpu_us_per_call", "beam.s3.c_gen.calls_per_s"]},
         {bytes_per_lease_1m, "lockerd.s4.bytes_per_lease_big",
          ["beam.s4.bytes_per_lease_big", "beam.s4.ets_bytes_per_lease_big",
           "ratio.s4.bytes_per_lease_big"]},
         {insert_1m_s, "lockerd.s4.insert_big_s",
          ["beam.s4.insert_big_s", "ratio.s4.insert_big_s", "lockerd.s4.beam_client_insert_per_s",
           "beam.s4.beam_client_insert_per_s"]},
         {mass_expiry_max_delay_ms, "lockerd.s5.max_delay_ms",
          ["beam.s5.max_delay_ms", "lockerd.s5.baseline_max_delay_ms",
           "beam.s5.baseline_max_delay_ms"]},
         %% replica visibility, both pairs: the periodic push on both sides,
         %% and lockerd's default eager push against BEAM's periodic push
         {replica_visibility_p99_ratio_periodic, "ratio.s6.p99_ms",
          ["lockerd.s6.p99_ms", "lockerd.s6.p50_ms", "beam.s6.p99_ms", "beam.s6.p50_ms"]},
         {replica_visibility_p99_ratio_eager, "ratio.s6.eager.p99_ms",
          ["lockerd.s6.eager.p99_ms", "lockerd.s6.eager.p50_ms", "beam.s6.p99_ms",
           "beam.s6.p50_ms"]}],
    maps:from_list([{Name, #{figure => list_to_binary(Main),
                             value => maps:get(Main, Agg, null),
                             raw => maps:from_list([{list_to_binary(R), maps:get(R, Agg, null)}
                                                    || R <- Raw])}}
                    || {Name, Main, Raw} <- H]).

%%--------------------------------------------------------------------
%% Table

%% The columns shown for each pass of scenario 1 beside the main one.
pass_fields() ->
    [{"pairs/s", "pairs_per_s"}, {"lock p50 us", "p50_us"}, {"lock p99 us", "p99_us"},
     {"CPU client us/pair", "client_us_per_pair"}, {"CPU masters us/pair", "masters_us_per_pair"}].

variant_rows(Label, What, Concs) ->
    [{"s1 " ++ Label ++ " c" ++ i2l(N) ++ " " ++ T, "s1." ++ What ++ ".c" ++ i2l(N) ++ "." ++ F}
     || N <- Concs,
        {T, F} <- pass_fields() ++ [{"client sleeps/pair", "client_sleeps_per_pair"}]].

table(Agg, Cfg) ->
    Rows =
        [{"s1 BEAM clients c" ++ i2l(N) ++ " pairs/s", "s1.beam_clients.c" ++ i2l(N) ++ ".pairs_per_s"}
         || N <- maps:get(conc, Cfg)] ++
        [{"s1 BEAM clients c" ++ i2l(N) ++ " lock " ++ P ++ " us", "s1.beam_clients.c" ++ i2l(N) ++ "." ++ P ++ "_us"}
         || N <- maps:get(conc, Cfg), P <- ["p50", "p99", "p999"]] ++
        [{"s1 BEAM clients c" ++ i2l(N) ++ " CPU " ++ W ++ " (cores)", "s1.beam_clients.c" ++ i2l(N) ++ "." ++ W ++ "_cpu"}
         || N <- maps:get(conc, Cfg), W <- ["client", "masters"]] ++
        [{"s1 BEAM clients c" ++ i2l(N) ++ " CPU " ++ W ++ " us/pair", "s1.beam_clients.c" ++ i2l(N) ++ "." ++ W ++ "_us_per_pair"}
         || N <- maps:get(conc, Cfg), W <- ["client", "masters"]] ++
        [{"s1 BEAM clients c" ++ i2l(N) ++ " client " ++ W ++ "/pair", "s1.beam_clients.c" ++ i2l(N) ++ ".client_" ++ W ++ "_per_pair"}
         || N <- maps:get(conc, Cfg), W <- ["sleeps", "preempted"]] ++
        [{"s1 BEAM clients c" ++ i2l(N) ++ " TCP " ++ T ++ "/pair",
          "s1.beam_clients.c" ++ i2l(N) ++ "." ++ atom_to_list(F)}
         || N <- maps:get(conc, Cfg), {_, F, T} <- tcp_fields()] ++
        %% client node and masters on separate CPUs
        variant_rows("split", "beam_clients_split", maps:get(conc, Cfg)) ++
        %% the same offered load on both (BENCH_PACED_RATE)
        variant_rows("paced", "beam_clients_paced", [N || N <- maps:get(conc, Cfg), N > 1]) ++
        %% lockerd with BENCH_COALESCE_US vs the same BEAM figures as above
        [{"s1 coalesce-us alt c" ++ i2l(N) ++ " " ++ T, "s1.beam_clients_coalesced.c" ++ i2l(N) ++ "." ++ F,
          "s1.beam_clients.c" ++ i2l(N) ++ "." ++ F, "coalesced_over_beam.c" ++ i2l(N) ++ "." ++ F}
         || N <- maps:get(conc, Cfg), {T, F} <- pass_fields()] ++
        [{"s1 C client inflight " ++ i2l(N) ++ " pairs/s", "s1.c_client.c" ++ i2l(N) ++ ".pairs_per_s"}
         || N <- maps:get(conc, Cfg)] ++
        [{"s1 C client inflight " ++ i2l(N) ++ " lock " ++ P ++ " us", "s1.c_client.c" ++ i2l(N) ++ ".lock_" ++ P ++ "_us"}
         || N <- maps:get(conc, Cfg), P <- ["p50", "p99", "p999"]] ++
        [{"s2 BEAM clients locks/s (16 on 10 keys)", "s2.beam_clients.locks_ok_per_s"},
         {"s2 BEAM clients no_quorum rate", "s2.beam_clients.no_quorum_rate"},
         {"s2 C client locks/s (16 on 10 keys)", "s2.c_client.locks_ok_per_s"},
         {"s2 C client no_quorum rate", "s2.c_client.no_quorum_rate"},
         {"s3 master calls/s", "s3.calls_per_s"},
         {"s3 master CPU us/call", "s3.cpu_us_per_call"},
         {"s3 master CPU utilisation", "s3.cpu_utilisation"},
         {"s3 C generator: master calls/s", "s3.c_gen.calls_per_s"},
         {"s3 C generator: master CPU us/call", "s3.c_gen.cpu_us_per_call"},
         {"s3 C generator: master CPU utilisation", "s3.c_gen.cpu_utilisation"},
         {"s3 C generator: its own CPU utilisation", "s3.c_gen.client_cpu_utilisation"},
         {"s4 bytes/lease (small)", "s4.bytes_per_lease_small"},
         {"s4 bytes/lease (big)", "s4.bytes_per_lease_big"},
         {"s4 ets bytes/lease (big)", "s4.ets_bytes_per_lease_big"},
         {"s4 insert time big, C client (s)", "s4.insert_big_s"},
         {"s4 insert writes/s, C client", "s4.insert_per_s"},
         {"s4 insert writes/s, BEAM client (small)", "s4.beam_client_insert_per_s"},
         {"s5 rewrite time big, C client (s)", "s5.rewrite_s"},
         {"s5 mass expiry max delay ms", "s5.max_delay_ms"},
         {"s5 baseline max delay ms", "s5.baseline_max_delay_ms"},
         {"s5 leases left after", "s5.leases_left"},
         {"s6 replica visibility p50 ms", "s6.p50_ms"},
         {"s6 replica visibility p99 ms", "s6.p99_ms"},
         {"s6 eager push visibility p50 ms", "s6.eager.p50_ms", "s6.p50_ms", "s6.eager.p50_ms"},
         {"s6 eager push visibility p99 ms", "s6.eager.p99_ms", "s6.p99_ms", "s6.eager.p99_ms"}],
    Head = io_lib:format("~-44s ~-26s ~-26s ~-22s~n",
                         ["figure (median [min-max] of " ++ i2l(maps:get(runs, Cfg)) ++ " runs)",
                          "lockerd", "beam", "lockerd/beam"]) ++
        io_lib:format("(TCP congestion control: ~s)~n", [maps:get(tcp_cc, Cfg)]),
    Full = [case R of {Label, K} -> {Label, K, K, K}; _ -> R end || R <- Rows],
    Lines = [io_lib:format("~-44s ~-26s ~-26s ~-22s~n",
                           [Label, cell(Agg, "lockerd." ++ LK), cell(Agg, "beam." ++ BK),
                            cell(Agg, "ratio." ++ RK)])
             || {Label, LK, BK, RK} <- Full, maps:is_key("lockerd." ++ LK, Agg)
                                              orelse maps:is_key("beam." ++ LK, Agg)],
    Extra = case maps:find("ratio.c_lockerd_over_beamclients_beam.c64.pairs_per_s", Agg) of
                {ok, _} -> io_lib:format("~-44s ~s~n", ["C on lockerd / BEAM clients on BEAM, c64",
                                                        cell(Agg, "ratio.c_lockerd_over_beamclients_beam.c64.pairs_per_s")]);
                error -> ""
            end,
    [Head, Lines, Extra].

cell(Agg, K) ->
    case maps:find(K, Agg) of
        {ok, #{median := null}} -> "-";
        {ok, #{median := Med, min := Mn, max := Mx}} ->
            lists:flatten(io_lib:format("~s [~s-~s]", [num(Med), num(Mn), num(Mx)]));
        error -> "-"
    end.

num(X) when is_integer(X) -> integer_to_list(X);
num(X) when abs(X) >= 100 -> integer_to_list(round(X));
num(X) when abs(X) >= 1 -> float_to_list(X, [{decimals, 2}]);
num(X) -> float_to_list(X, [{decimals, 3}]).

i2l(I) -> integer_to_list(I).

%%--------------------------------------------------------------------
%% Plots: lock latency CDFs at 64 in flight (gnuplot, if installed).

plots(Cfg) ->
    Out = maps:get(out, Cfg),
    Files = [{T, F} || {T, F} <- [{"BEAM clients -> lockerd", "lat_beam_clients_lockerd.txt"},
                                  {"BEAM clients -> BEAM", "lat_beam_clients_beam.txt"},
                                  {"C client -> lockerd", "lat_c_client_lockerd.txt"},
                                  {"C client -> BEAM", "lat_c_client_beam.txt"}],
                       filelib:is_regular(filename:join(Out, F))],
    case {os:find_executable("gnuplot"), Files} of
        {false, _} -> say("gnuplot not installed: no plots (scripts/setup.sh installs gnuplot-nox)", []);
        {_, []} -> ok;
        {Gp, _} ->
            %% sorted samples -> (latency, fraction) pairs
            Data = [begin
                        {ok, B} = file:read_file(filename:join(Out, F)),
                        Ls = lists:sort([binary_to_integer(X) || X <- string:lexemes(B, "\n")]),
                        N = length(Ls),
                        DF = filename:join(Out, "cdf_" ++ F),
                        %% at most ~2000 points per curve, the tail kept whole
                        Step = max(1, N div 1000),
                        ok = file:write_file(DF, [io_lib:format("~p ~.6f~n", [L / 1000, I / N])
                                                  || {I, L} <- lists:zip(lists:seq(1, N), Ls),
                                                     I rem Step =:= 0 orelse I > N - 1000]),
                        {T, DF}
                    end || {T, F} <- Files],
            Svg = filename:join(Out, "lock_latency_c64.svg"),
            Script = ["set terminal svg size 900,500\nset output '", Svg, "'\n",
                      "set title 'lock latency CDF, 64 in flight, distinct keys (last run)'\n",
                      "set xlabel 'lock latency (ms, log)'\nset ylabel 'fraction of locks'\n",
                      "set logscale x\nset key bottom right\nset grid\n",
                      "plot ", lists:join(", ", [["'", D, "' using 1:2 with lines title '", T, "'"]
                                                  || {T, D} <- Data]), "\n"],
            SF = filename:join(Out, "plot.gp"),
            ok = file:write_file(SF, Script),
            os:cmd(Gp ++ " " ++ SF),
            say("wrote ~s", [Svg])
    end.

%%--------------------------------------------------------------------
%% JSON (no json module before OTP 27)

json(M) when is_map(M) ->
    ["{", lists:join(", ", [[json_key(K), ": ", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
%% Lists are arrays, always: a list of integers (a run's figures) must not
%% turn into a string because it happens to be printable. Text is binary.
json(L) when is_list(L) ->
    ["[", lists:join(", ", [json(V) || V <- L]), "]"];
json(B) when is_binary(B) -> [$", escape(B), $"];
json(null) -> "null";
json(true) -> "true";
json(false) -> "false";
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [short]);
json(T) when is_tuple(T) -> json(tuple_to_list(T)).

json_key(K) when is_atom(K) -> json(atom_to_binary(K));
json_key(K) when is_list(K) -> json(list_to_binary(K));
json_key(K) when is_binary(K) -> json(K).

escape(B) ->
    binary:replace(binary:replace(B, <<"\\">>, <<"\\\\">>, [global]), <<"\"">>, <<"\\\"">>, [global]).

say(Fmt, Args) ->
    io:format("[bench] " ++ Fmt ++ "~n", Args).

now_ms() ->
    erlang:monotonic_time(millisecond).
