%% Driver of the fault-injection runs (started by scripts/faults.sh, which
%% builds everything, sets up the network namespaces and passes the set-up
%% in FAULTS_* variables).
%%
%% One run: N masters (all lockerd, or lockerd and the BEAM test server
%% lkr_server alternating), clients on a few hot keys — Erlang processes in
%% this VM using the project's coordinator (test/erlang/lkr.erl) and
%% optionally threads of a C client node (test/faults/faults_cclient.c on
%% the C library) — and the nemesis (faults_nemesis) killing, pausing and
%% partitioning masters. Each client cycle: lock a random hot key with a
%% value of its own, extend it 0-3 times, release it, and probe an
%% acknowledged release (faults_check explains why). Every operation is
%% recorded with its invoke and completion times, all on this VM's
%% monotonic clock: the VM runs without time correction (+c false), so it
%% is the kernel's CLOCK_MONOTONIC plus a constant, and the C client's
%% CLOCK_MONOTONIC readings are converted with that constant.
%%
%% After the run: the nemesis heals everything, the clients finish their
%% cycle, the driver waits out every lease and reads every master's table,
%% writes the history (FAULTS_OUT/runN.history, one Erlang term per line)
%% and runs the checker. The last line printed is
%%   faults: N ops, V violations, A% available
%% and the VM exits 1 when V > 0, 2 when a run broke (a node did not start, a
%% master crashed, nothing was acknowledged, no fault was injected).
-module(faults_run).

-export([main/0]).

-define(SETTLE_MARGIN_MS, 3000).   %% lkr_server: 1 s buckets checked every second (up to 2 s late), and then some

main() ->
    Env = env(),
    Runs = runs(getenv("FAULTS_RUNS", "3:lockerd,3:mixed")),
    io:format("faults: mode ~s~s~n", [maps:get(mode, Env), mode_note(Env)]),
    io:format("faults: ~b s per run, leases ~b-~b ms, timeout ~b ms per phase, ~b keys, "
              "seed ~b~n",
              [maps:get(seconds, Env), maps:get(lease_min, Env), maps:get(lease_max, Env),
               maps:get(timeout, Env), maps:get(keys, Env), maps:get(seed, Env)]),
    io:format("faults: lockerd ~s; ~s~n", [maps:get(lockerd_bin, Env), restart_note(Env)]),
    Results = [run(I, length(Runs), R, Env) || {I, R} <- lists:zip(lists:seq(1, length(Runs)), Runs)],
    halt_with(summary(Results, Env)).

mode_note(#{mode := loopback}) ->
    " (no network namespaces here: every node on 127.0.0.1; partitions skipped)";
mode_note(_) ->
    " (a network namespace, address and epmd per node)".

restart_note(#{unsafe := true}) ->
    "UNSAFE: restarted masters have no quiet period and come back at once "
        "(violations are expected: this checks the checker)";
restart_note(#{lockerd_caps := #{state_file := true}}) ->
    "restarted masters refuse unknown keys for a quiet period (state files)";
restart_note(_) ->
    "this lockerd has no --state-file: a killed lockerd stays down longer than "
        "any lease instead (BEAM masters use the quiet period)".

%%--------------------------------------------------------------------
%% Configuration

env() ->
    Mode = list_to_atom(getenv("FAULTS_MODE", "loopback")),
    Out = getenv("FAULTS_OUT", "build/faults"),
    Bin = getenv("LOCKERD_BIN", "bin/lockerd"),
    Help = os:cmd(Bin ++ " --help 2>&1"),
    Caps = #{state_file => string:find(Help, "--state-file") =/= nomatch,
             quiet_period => string:find(Help, "--quiet-period") =/= nomatch},
    #{mode => Mode,
      prefix => getenv("FAULTS_NS_PREFIX", ""),
      client_ip => getenv("FAULTS_CLIENT_IP", "127.0.0.1"),
      master_ips => string:tokens(getenv("FAULTS_MASTER_IPS", ""), ","),
      out => Out,
      cookie => atom_to_list(erlang:get_cookie()),
      ebin => filename:dirname(code:which(?MODULE)),
      lockerd_bin => Bin,
      lockerd_caps => Caps,
      cclient => getenv("FAULTS_CCLIENT", ""),
      unsafe => getenv("FAULTS_UNSAFE", "0") =:= "1",
      seconds => int_env("FAULTS_SECONDS", 30),
      clients => int_env("FAULTS_CLIENTS", 6),
      c_threads => int_env("FAULTS_C_THREADS", 3),
      mortals => int_env("FAULTS_MORTALS", 2),
      release_on_exit => getenv("FAULTS_RELEASE_ON_EXIT", "1") =:= "1",
      keys => int_env("FAULTS_KEYS", 4),
      lease_min => int_env("FAULTS_LEASE_MIN", 600),
      lease_max => int_env("FAULTS_LEASE_MAX", 1500),
      timeout => int_env("FAULTS_TIMEOUT", 400),
      ticktime => int_env("FAULTS_TICKTIME", 6),
      seed => int_env("FAULTS_SEED", erlang:phash2(os:timestamp()))}.

%% "3:lockerd,5:mixed" -> [{3, lockerd}, {5, mixed}]
runs(Text) ->
    [case string:split(R, ":") of
         [N, Kind] when Kind =:= "lockerd"; Kind =:= "mixed" -> {list_to_integer(N), list_to_atom(Kind)};
         _ -> error({bad_run_spec, R})
     end || R <- string:tokens(Text, ", ")].

getenv(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        V -> V
    end.

int_env(Name, Default) ->
    list_to_integer(getenv(Name, integer_to_list(Default))).

%% The masters of run RunNo: lockerd everywhere, or lockerd at odd and
%% lkr_server at even positions.
master_specs(RunNo, N, Kind, #{mode := Mode, out := Out} = Env) ->
    [begin
         K = case Kind =:= mixed andalso I rem 2 =:= 0 of
                 true -> beam;
                 false -> lockerd
             end,
         {Name, Ip, Ns} =
             case Mode of
                 netns -> {"m" ++ integer_to_list(I), lists:nth(I, maps:get(master_ips, Env)),
                           maps:get(prefix, Env) ++ "-m" ++ integer_to_list(I)};
                 loopback -> {lists:concat(["f", RunNo, "m", I, "_", os:getpid()]), "127.0.0.1",
                              undefined}
             end,
         StateFile = filename:absname(filename:join([Out, "state", lists:concat(["run", RunNo, "-", Name])])),
         file:delete(StateFile),
         maps:merge(#{id => I, kind => K, name => Name, ip => Ip, ns => Ns,
                      node => list_to_atom(Name ++ "@" ++ Ip)},
                    restart_opts(K, StateFile, Env))
     end || I <- lists:seq(1, N)].

%% Safe restarts where the master supports them; unsafe mode: quiet
%% period 0 where it can be given, no state file otherwise.
restart_opts(beam, File, #{unsafe := false}) -> #{state_file => File};
restart_opts(beam, File, #{unsafe := true}) -> #{state_file => File, quiet => 0};
restart_opts(lockerd, File, #{lockerd_caps := Caps, unsafe := Unsafe}) ->
    case {maps:get(state_file, Caps), maps:get(quiet_period, Caps), Unsafe} of
        {true, _, false} -> #{state_file => File};
        {true, true, true} -> #{state_file => File, quiet => 0};
        _ -> #{}
    end.

%%--------------------------------------------------------------------
%% One run

run(RunNo, Total, {N, Kind}, Env) ->
    W = N div 2 + 1,
    Specs = master_specs(RunNo, N, Kind, Env),
    Masters = [Node || #{node := Node} <- Specs],
    LogDir = filename:join(maps:get(out, Env), lists:concat(["logs/run", RunNo])),
    Env1 = Env#{log_dir => LogDir},
    io:format("~n== run ~b/~b: ~b masters (~s), W=~b, ~b s~n",
              [RunNo, Total, N, Kind, W, maps:get(seconds, Env)]),
    [io:format("   ~s ~s~s~n", [Node, K, restart_desc(S)]) || #{node := Node, kind := K} = S <- Specs],
    Label = lists:flatten(io_lib:format("~b masters, ~s", [N, Kind])),
    %% What an unsafe (control) run must show the checker finding: two
    %% holders at once always; stale tokens where the C clients lock with
    %% tokens (every master lockerd) and restarts lose the state file.
    %% Without --release-on-exit: dead holders' leases kept (rule 5).
    Unsafe = maps:get(unsafe, Env),
    Expect = [mutual_exclusion || Unsafe]
        ++ [stale_token || Unsafe, Kind =:= lockerd, maps:get(cclient, Env) =/= "",
                           maps:get(c_threads, Env) > 0]
        ++ [holder_not_released || not maps:get(release_on_exit, Env),
                                   maps:get(mortals, Env) > 0],
    try run_masters(RunNo, Specs, {W, Masters}, Env1) of
        Result -> Result#{label => Label, expect => Expect}
    catch
        throw:Reason ->
            io:format("   RUN BROKE: ~p~n", [Reason]),
            #{label => Label, broke => [Reason]};
        Class:Reason:Stack ->
            io:format("   RUN BROKE: ~p:~p~n   ~p~n", [Class, Reason, Stack]),
            #{label => Label, broke => [{Class, Reason}]}
    end.

restart_desc(#{quiet := 0}) -> ", restarts without quiet period";
restart_desc(#{state_file := F}) -> ", state file " ++ F;
restart_desc(_) -> ", no state file (kept down past every lease when killed)".

run_masters(RunNo, Specs, Meta, Env0) ->
    %% Every master lockerd: the C clients' locks carry fencing tokens.
    Env = Env0#{fenced => lists:all(fun(#{kind := K}) -> K =:= lockerd end, Specs)},
    Handles = start_masters(Specs, Meta, Env),
    try
        run_load(RunNo, Handles, Meta, Env)
    after
        [catch faults_nodes:stop(H) || H <- maps:values(get_handles(Handles))]
    end.

start_masters(Specs, Meta, Env) ->
    Hs = lists:foldl(fun(#{id := Id} = S, Acc) ->
                             try faults_nodes:start_master(S, Meta, Env) of
                                 H -> Acc#{Id => H}
                             catch
                                 throw:Why ->
                                     [catch faults_nodes:stop(H) || H <- maps:values(Acc)],
                                     throw(Why)
                             end
                     end, #{}, Specs),
    put(handles, Hs),
    Hs.

%% The handles as last known (the nemesis replaces them on restarts).
get_handles(Default) ->
    case get(handles) of
        undefined -> Default;
        Hs -> Hs
    end.

run_load(RunNo, Handles, {W, Masters} = Meta, Env) ->
    catch lkr_server:stop(),
    {ok, _} = lkr_server:start(W, Masters, [], []),
    T0 = erlang:monotonic_time(microsecond),
    Tab = ets:new(faults_history, [public, duplicate_bag]),
    Stop = atomics:new(1, []),
    Seed = maps:get(seed, Env) + RunNo,
    Clients = [spawn_monitor(fun() -> client(Id, Tab, Stop, T0, Env, Seed) end)
               || Id <- lists:seq(1, maps:get(clients, Env))]
        ++ [spawn_monitor(fun() -> mortal(Id, Tab, Stop, T0, Env, Seed, lockerd_nodes(Handles)) end)
            || Id <- lists:seq(101, 100 + maps:get(mortals, Env))],
    CClient = start_cclient(RunNo, Tab, T0, Meta, Env, Seed),
    Client = {client_ns(Env), maps:get(client_ip, Env)},
    Nemesis = faults_nemesis:start(#{handles => Handles, meta => Meta, env => Env, t0 => T0,
                                     lease_max => maps:get(lease_max, Env),
                                     unsafe => maps:get(unsafe, Env), client => Client},
                                   {Seed, 7, 11}),
    timer:sleep(maps:get(seconds, Env) * 1000),
    NemesisResult = faults_nemesis:stop({Nemesis, Handles}),
    {Handles1, Faults, Crashed, Broke0} =
        case NemesisResult of
            {ok, Hs, Fs, Cr} -> {Hs, Fs, Cr, []};
            {error, Why, Hs} -> {Hs, [], [], [{nemesis, Why}]}
        end,
    Healed = erlang:monotonic_time(millisecond),
    put(handles, Handles1),
    atomics:put(Stop, 1, 1),
    Broke1 = Broke0 ++ wait_clients(Clients) ++ stop_cclient(CClient),
    LastOp = erlang:monotonic_time(microsecond) - T0,
    %% Every lease runs out by then: the last one began at the last
    %% operation, or at the latest when a commit held up by a partition
    %% reached its master after the heal (TCP retransmits; a connection
    %% silent for a tick time is closed instead).
    Settle = max(erlang:monotonic_time(millisecond),
                 Healed + maps:get(ticktime, Env) * 1000) + maps:get(lease_max, Env)
        + ?SETTLE_MARGIN_MS,
    timer:sleep(max(0, Settle - erlang:monotonic_time(millisecond))),
    {Final, Broke2} = final_state(Handles1),
    lkr_server:stop(),
    Ops = [Op || {_, Op} <- ets:tab2list(Tab)],
    ets:delete(Tab),
    Tail = maps:get(lease_max, Env) * 1000,
    write_history(RunNo, Ops, Faults, Final, Env),
    Report = faults_check:check(#{ops => Ops, faults => Faults, tail => Tail, final => Final}, #{}),
    Broke = Broke1 ++ Broke2 ++ [{crashed, Name, Log} || {Name, Log, _} <- Crashed]
        ++ sanity(Report),
    io:format("~s", [faults_check:format_report(Report)]),
    io:format("   last operation at ~.1f s; history ~s~n",
              [LastOp / 1.0e6, history_file(RunNo, Env)]),
    [io:format("   RUN BROKE: ~p~n", [B]) || B <- Broke],
    #{report => Report, broke => Broke}.

client_ns(#{mode := netns, prefix := P}) -> P ++ "-c";
client_ns(_) -> undefined.

%% A run that acknowledged no lock or injected no fault proved nothing.
sanity(#{counts := C, faults := F}) ->
    [no_lock_acknowledged || maps:get({lock, ok}, C, 0) =:= 0]
        ++ [no_fault_injected || map_size(F) =:= 0].

wait_clients(Clients) ->
    lists:append([receive
                      {'DOWN', Ref, process, Pid, normal} -> [];
                      {'DOWN', Ref, process, Pid, Reason} -> [{client_crashed, Reason}]
                  after 60000 ->
                          exit(Pid, kill),
                          [{client_stuck, Pid}]
                  end || {Pid, Ref} <- Clients]).

%% Every master's leases, read once everything is healed and every lease
%% has run out (faults_check rule 3).
final_state(Handles) ->
    lists:foldl(fun(#{node := Node}, {Acc, Broke}) ->
                        case catch gen_server:call({locker, Node}, get_debug_state, 5000) of
                            {ok, _Locks, Leases, _, _, _} -> {Acc ++ [{Node, Leases}], Broke};
                            Other -> {Acc, Broke ++ [{final_read_failed, Node, Other}]}
                        end
                end, {[], []}, lists:sort(maps:values(Handles))).

%%--------------------------------------------------------------------
%% Erlang clients (the cycle of faults_cclient.c)

client(Id, Tab, Stop, T0, Env, Seed) ->
    rand:seed(exsss, {Seed, Id, 3}),
    client_loop(#{id => Id, tab => Tab, stop => Stop, t0 => T0, env => Env}, 1).

client_loop(#{stop := Stop} = C, Seq) ->
    case atomics:get(Stop, 1) of
        1 -> ok;
        0 -> cycle(C, Seq), client_loop(C, Seq + 1)
    end.

cycle(#{id := Id, env := Env} = C, Seq) ->
    Key = {hot, rand:uniform(maps:get(keys, Env))},
    Value = {e, Id, Seq},
    Lease = between(maps:get(lease_min, Env), maps:get(lease_max, Env)),
    case op(C, lock, Key, Value, Lease) of
        ok ->
            Held = extend_n(C, Key, Value, Lease, rand:uniform(4) - 1),
            [timer:sleep(between(0, Lease div 3)) || Held],
            release_and_probe(C, Key, Value, Lease);
        fail ->
            timer:sleep(between(100, 400));
        unknown ->
            release_and_probe(C, Key, Value, Lease)
    end.

extend_n(_C, _Key, _Value, _Lease, 0) ->
    true;
extend_n(C, Key, Value, Lease, N) ->
    timer:sleep(between(Lease div 5, Lease * 3 div 4)),
    case op(C, extend, Key, Value, Lease) of
        ok -> extend_n(C, Key, Value, Lease, N - 1);
        _ -> false
    end.

release_and_probe(C, Key, Value, Lease) ->
    case op(C, release, Key, Value, 0) of
        ok -> op(C, probe, Key, Value, Lease);
        _ -> ok
    end.

%%--------------------------------------------------------------------
%% Mortal holders (faults_check rule 5): a process locks a key with
%% its own pid as the value; half of the holders that get it are killed
%% while holding (recorded as `exit`), and 300 ms later every lockerd
%% master reachable is asked whether it still holds the dead pid
%% (`exit_probe`); the others release as usual.

lockerd_nodes(Handles) ->
    [Node || #{kind := lockerd, node := Node} <- maps:values(Handles)].

mortal(Id, Tab, Stop, T0, Env, Seed, Lockerds) ->
    rand:seed(exsss, {Seed, Id, 5}),
    C = #{id => Id, tab => Tab, stop => Stop, t0 => T0, env => Env},
    mortal_loop(C, Lockerds).

mortal_loop(#{stop := Stop} = C, Lockerds) ->
    case atomics:get(Stop, 1) of
        1 -> ok;
        0 -> mortal_cycle(C, Lockerds), mortal_loop(C, Lockerds)
    end.

mortal_cycle(#{env := Env, tab := Tab, id := Id, t0 := T0} = C, Lockerds) ->
    %% keys of their own (the hot keys' contention would leave few holders
    %% to kill), shared by the mortal clients
    Key = {mortal, rand:uniform(maps:get(keys, Env))},
    Lease = between(maps:get(lease_min, Env), maps:get(lease_max, Env)),
    Parent = self(),
    Spawned = erlang:monotonic_time(microsecond) - T0,
    {P, Ref} = spawn_monitor(fun() ->
                                     R = op(C, lock, Key, self(), Lease),
                                     Parent ! {locked, self(), R},
                                     case R of
                                         ok -> receive release -> ok end,
                                               release_and_probe(C, Key, self(), Lease);
                                         unknown -> release_and_probe(C, Key, self(), Lease);
                                         fail -> ok
                                     end
                             end),
    receive
        {locked, P, ok} ->
            Before = holding(Lockerds, Key, P, T0),
            T1 = erlang:monotonic_time(microsecond) - T0,
            timer:sleep(between(0, Lease div 3)),
            case rand:uniform(2) of
                1 ->
                    Now = erlang:monotonic_time(microsecond) - T0,
                    exit(P, kill),
                    receive {'DOWN', Ref, process, P, _} -> ok end,
                    record(Tab, Id, #{op => exit, key => Key, value => P, lease => 0,
                                      inv => Now, cmp => Now, result => ok, raw => killed}),
                    timer:sleep(300),
                    Held = [{N, catch gen_server:call({locker, N}, {dirty_read, Key}, 500)}
                            || N <- Lockerds],
                    Read = erlang:monotonic_time(microsecond) - T0,
                    Kept = [N || {N, {ok, V}} <- Held, V =:= P],
                    record(Tab, Id, #{op => exit_probe, key => Key, value => P, lease => 0,
                                      inv => Now, cmp => Read,
                                      result => case Kept of [] -> ok; _ -> fail end,
                                      raw => Kept});
                2 ->
                    %% alive all along: every master that held it still does
                    After = holding(Lockerds, Key, P, T0),
                    T2 = erlang:monotonic_time(microsecond) - T0,
                    %% a read after the earliest end of the lease proves
                    %% nothing (the lock was invoked after Spawned)
                    Ends = Spawned + (Lease - 50) * 1000,
                    Lost = [N || {N, true, _} <- Before, {N2, false, At} <- After,
                                 N2 =:= N, At < Ends],
                    record(Tab, Id, #{op => alive_probe, key => Key, value => P, lease => 0,
                                      inv => T1, cmp => T2,
                                      result => case Lost of [] -> ok; _ -> fail end,
                                      raw => Lost}),
                    P ! release,
                    receive {'DOWN', Ref, process, P, _} -> ok end
            end;
        {locked, P, _} ->
            receive {'DOWN', Ref, process, P, _} -> ok end,
            timer:sleep(between(100, 400))
    end.

%% [{Node, Holds, ReadAt}] for the masters that answered: does it hold pid?
holding(Lockerds, Key, Pid, T0) ->
    [{N, V =:= {ok, Pid}, erlang:monotonic_time(microsecond) - T0}
     || N <- Lockerds,
        V <- [catch gen_server:call({locker, N}, {dirty_read, Key}, 500)],
        V =:= {error, not_found} orelse (is_tuple(V) andalso element(1, V) =:= ok)].

record(Tab, Id, Op) ->
    ets:insert(Tab, {Id, Op#{client => {e, Id}}}).

%% Run one operation through lkr and record it; returns its result.
op(#{id := Id, tab := Tab, t0 := T0, env := #{timeout := T}}, Op, Key, Value, Lease) ->
    Inv = erlang:monotonic_time(microsecond) - T0,
    Raw = try call(Op, Key, Value, Lease, T)
          catch Class:Reason -> {crashed, Class, Reason}
          end,
    Cmp = erlang:monotonic_time(microsecond) - T0,
    Result = case Raw of
                 {ok, _, _, _} -> ok;
                 {error, no_quorum} -> fail;
                 _ -> unknown
             end,
    ets:insert(Tab, {Id, #{client => {e, Id}, op => Op, key => Key, value => Value,
                           lease => Lease, inv => Inv, cmp => Cmp, result => Result,
                           raw => Raw}}),
    Result.

call(lock, Key, Value, Lease, T) -> lkr:lock(Key, Value, Lease, T);
call(release, Key, Value, _Lease, T) -> lkr:release(Key, Value, T);
call(_Extend, Key, Value, Lease, T) -> lkr:extend_lease_counts(Key, Value, Lease, T).

between(Lo, Hi) when Hi =< Lo -> Lo;
between(Lo, Hi) -> Lo + rand:uniform(Hi - Lo + 1) - 1.

%%--------------------------------------------------------------------
%% The C client node

start_cclient(_RunNo, _Tab, _T0, _Meta, #{cclient := ""}, _Seed) ->
    undefined;
start_cclient(RunNo, Tab, T0, {W, Masters}, Env, Seed) ->
    %% the clocks must agree (module doc)
    erlang:system_info(time_correction) =:= false orelse
        throw({client_vm_needs_plus_c_false, "start the driver VM with +c false"}),
    Offset = os_monotonic_ns() - erlang:monotonic_time(nanosecond),
    {Name, Ip} = case maps:get(mode, Env) of
                     netns -> {"cc", maps:get(client_ip, Env)};
                     loopback -> {lists:concat(["fcc", RunNo, "_", os:getpid()]), "127.0.0.1"}
                 end,
    Args = ["--masters", string:join([atom_to_list(M) || M <- Masters], ","),
            "--name", Name ++ "@" ++ Ip, "--cookie", maps:get(cookie, Env),
            "--listen", Ip, "-w", integer_to_list(W),
            "--ticktime", integer_to_list(maps:get(ticktime, Env)),
            "--threads", integer_to_list(maps:get(c_threads, Env)),
            "--keys", integer_to_list(maps:get(keys, Env)),
            "--lease-min", integer_to_list(maps:get(lease_min, Env)),
            "--lease-max", integer_to_list(maps:get(lease_max, Env)),
            "--timeout", integer_to_list(maps:get(timeout, Env)),
            "--seed", integer_to_list(Seed),
            "--fenced", case maps:get(fenced, Env, false) of true -> "1"; false -> "0" end],
    Log = filename:join(maps:get(log_dir, Env), "cclient.log"),
    Exe = maps:get(cclient, Env),
    Parent = self(),
    Collector = spawn_link(fun() ->
                                   Spec = #{name => "cclient", lines_to => self(),
                                            exe => Exe},
                                   H = faults_nodes:start_program(Spec, Exe, Args, Log),
                                   Parent ! {cclient_started, self()},
                                   collect(H, Tab, Offset, T0)
                           end),
    receive {cclient_started, Collector} -> Collector end.

os_monotonic_ns() ->
    Ns = proplists:get_value(time, erlang:system_info(os_monotonic_time_source)),
    erlang:convert_time_unit(Ns, native, nanosecond).

collect(H, Tab, Offset, T0) ->
    receive
        {program_line, _, Line} ->
            store_cline(Line, Tab, Offset, T0),
            collect(H, Tab, Offset, T0);
        {stop, From} ->
            Status = faults_nodes:close_program(H),
            drain(Tab, Offset, T0),
            From ! {cclient_stopped, self(), Status, faults_nodes:alive(H)}
    end.

drain(Tab, Offset, T0) ->
    receive
        {program_line, _, Line} -> store_cline(Line, Tab, Offset, T0), drain(Tab, Offset, T0)
    after 0 -> ok
    end.

%% "op c<T> <op> <K> <Seq> <Lease> <InvNs> <CmpNs> <Rc> <Votes> <Commits> <Token>"
store_cline(Line, Tab, Offset, T0) ->
    ["op", "c" ++ T, Op, K, Seq, Lease, Inv, Cmp, Rc, Votes, Commits, Token] =
        string:split(binary_to_list(Line), " ", all),
    [Ti, Ki, Si, Li, Ii, Ci, Ri, Vi, Mi, Tok] =
        [list_to_integer(X) || X <- [T, K, Seq, Lease, Inv, Cmp, Rc, Votes, Commits, Token]],
    Us = fun(Ns) -> (Ns - Offset) div 1000 - T0 end,
    Result = case Ri of
                 0 -> ok;
                 -1001 -> fail;       % LKC_ENOQUORUM
                 -1011 -> fail;       % LKC_ENOTOKEN: votes released, nothing written
                 _ -> unknown         % timeouts, connection errors
             end,
    Fence = case Tok of 0 -> #{}; _ -> #{token => Tok} end,
    ets:insert(Tab, {{c, Ti}, Fence#{client => {c, Ti}, op => list_to_atom(Op), key => {hot, Ki},
                                     value => {c, Ti, Si}, lease => Li, inv => Us(Ii),
                                     cmp => Us(Ci), result => Result, raw => {Ri, Vi, Mi}}}).

stop_cclient(undefined) ->
    [];
stop_cclient(Collector) ->
    Collector ! {stop, self()},
    receive
        {cclient_stopped, Collector, ok, _} -> [];
        {cclient_stopped, Collector, Status, _} -> [{cclient_did_not_stop, Status}]
    after 60000 ->
            [cclient_collector_stuck]
    end.

%%--------------------------------------------------------------------
%% History file and summary

history_file(RunNo, #{out := Out}) ->
    filename:join(Out, lists:concat(["run", RunNo, ".history"])).

write_history(RunNo, Ops, Faults, Final, Env) ->
    Sorted = lists:sort(fun(#{inv := A}, #{inv := B}) -> A =< B end, Ops),
    Lines = [[io_lib:format("~0p.~n", [{fault, F}]) || F <- Faults],
             [io_lib:format("~0p.~n", [{op, O}]) || O <- Sorted],
             [io_lib:format("~0p.~n", [{final, Final}])]],
    ok = file:write_file(history_file(RunNo, Env), Lines).

summary(Results, Env) ->
    Reports = [R || #{report := R} <- Results],
    N = lists:sum([maps:get(ops, R) || R <- Reports]),
    V = lists:sum([length(maps:get(violations, R)) || R <- Reports]),
    Sum = fun(Class) ->
                  lists:foldl(fun(R, {A, T}) ->
                                      {A1, T1} = maps:get(Class, maps:get(availability, R)),
                                      {A + A1, T + T1}
                              end, {0, 0}, Reports)
          end,
    Av = maps:from_list([{C, Sum(C)} || C <- [all, none, kill, pause, partition,
                                              lock, extend, release]]),
    Broke = [{L, B} || #{label := L, broke := B} <- Results, B =/= []],
    io:format("~n== summary~n"),
    [io:format("   ~-18s ~6b ops ~3b violations  ~s available~n",
               [L, maps:get(ops, R), length(maps:get(violations, R)),
                faults_check:pct(maps:get(all, maps:get(availability, R)))])
     || #{label := L, report := R} <- Results],
    io:format("   availability: ~s~n", [faults_check:availability_line(Av)]),
    [io:format("   broken run: ~s: ~p~n", [L, B]) || {L, B} <- Broke],
    {A, T} = maps:get(all, Av),
    Pct = case T of 0 -> 0.0; _ -> 100 * A / T end,
    io:format("faults: ~b ops, ~b violations, ~.1f% available~n", [N, V, Pct]),
    case {V, Broke, Reports} of
        {_, [_ | _], _} -> 2;
        {_, _, []} -> 2;
        _ when map_get(unsafe, Env); not map_get(release_on_exit, Env) ->
            control_status(Results);
        {0, _, _} -> 0;
        _ -> 1
    end.

%% Unsafe runs check the checker: every run must show each kind of
%% violation its setup makes possible (1: all found), else 3.
control_status(Results) ->
    Missing = [{L, K} || #{label := L, report := R, expect := Expect} <- Results,
                         K <- Expect,
                         not lists:keymember(K, 1, maps:get(violations, R))],
    [io:format("faults: control: ~s showed no ~s violation~n", [L, K]) || {L, K} <- Missing],
    case Missing of
        [] -> 1;
        _ -> 3
    end.

halt_with(Status) ->
    erlang:halt(Status).
