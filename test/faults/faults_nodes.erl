%% Node control for the fault-injection runs: starting, killing, pausing
%% and restarting locker masters (lockerd or the BEAM test server), C
%% client processes, and cutting network links between nodes.
%%
%% Model. Every process is started by this VM through a port owned by a
%% small process that appends the program's output to a log file and dies
%% when the program exits; a live owner therefore means the OS pid is still
%% ours, and signals are only ever sent to such pids. In `netns` mode each
%% node runs in a network namespace of its own (created by
%% scripts/faults.sh, with its own epmd and address on a bridge) and is
%% started through `ip netns exec`, which execs the program under the same
%% pid; in `loopback` mode every node runs here on 127.0.0.1 with the
%% host's epmd. A link between two nodes is cut by a blackhole route to the
%% other's address in each of the two namespaces (the kernel then drops
%% the packets both ways; new connections fail at once), and healed by
%% flushing the blackhole routes, which only this run ever adds there.
%%
%% Master spec (map): id, kind (lockerd | beam), name, ip, ns (namespace or
%% undefined), node, state_file (undefined: none), quiet (ms or undefined).
%% A handle is the spec plus owner (pid), os_pid (string) and log.
-module(faults_nodes).

-export([start_master/3, stop/1, kill9/1, signal/2, alive/1,
         start_program/4, close_program/1,
         cut/3, heal/2, beam_master/4, first_line/2]).

-define(READY_TIMEOUT, 30000).
-define(STOP_TIMEOUT, 5000).

%% Env (map): mode, cookie, ebin, lockerd_bin, log_dir, ticktime.
%% Meta: {W, MasterNodes}. Returns a handle or throws {start_failed, ...}.
start_master(#{kind := Kind, node := Node, name := Name} = Spec, Meta, Env) ->
    {Prog, Args} = command(Kind, Spec, Meta, Env),
    Log = filename:join(maps:get(log_dir, Env), Name ++ ".log"),
    H = start_program(Spec, Prog, Args, Log),
    case wait_ready(H, erlang:monotonic_time(millisecond) + ?READY_TIMEOUT) of
        ok ->
            %% by now `ip netns exec` and `erl` have exec'd the final program
            record_pid(maps:get(os_pid, H), cmdline_exe(maps:get(os_pid, H))),
            H;
        {error, Why} ->
            catch stop(H),
            throw({start_failed, Node, Why, Log})
    end.

command(lockerd, #{node := Node, ip := Ip} = Spec, {W, Masters}, Env) ->
    Opt = fun(Key, Flag) ->
                  case maps:get(Key, Spec, undefined) of
                      undefined -> [];
                      V when is_integer(V) -> [Flag, integer_to_list(V)];
                      V -> [Flag, V]
                  end
          end,
    wrap(Spec, maps:get(lockerd_bin, Env),
         ["-name", atom_to_list(Node), "-setcookie", maps:get(cookie, Env),
          "--masters", node_list(Masters), "-w", integer_to_list(W),
          "--net-ticktime", integer_to_list(maps:get(ticktime, Env)),
          "--listen", Ip, "--log-level", "info"]
         ++ ["--release-on-exit" || maps:get(release_on_exit, Env, true)]
         ++ Opt(state_file, "--state-file") ++ Opt(quiet, "--quiet-period"));
command(beam, #{node := Node} = Spec, {W, Masters}, Env) ->
    Eval = io_lib:format("faults_nodes:beam_master(~b, ~0p, ~0p, ~0p)",
                         [W, Masters, maps:get(state_file, Spec, undefined),
                          maps:get(quiet, Spec, undefined)]),
    %% +c false: leases measured on the kernel's monotonic clock, like
    %% lockerd's and the history's (time correction may slew a BEAM's clock
    %% by up to 1%, which would shorten a 1.5 s lease by 15 ms)
    wrap(Spec, os:find_executable("erl"),
         ["+c", "false", "-noshell", "-noinput", "-name", atom_to_list(Node),
          "-setcookie", maps:get(cookie, Env)]
         ++ beam_dist_args(Env)
         ++ ["-pa", maps:get(ebin, Env), "-eval", lists:flatten(Eval)]).

%% Distribution settings shared by every BEAM node of a run: short ticks
%% (a partition drops connections within seconds), no full mesh and no
%% disconnect cascades between the BEAM masters (they never talk to each
%% other; only clients talk to masters).
beam_dist_args(#{mode := Mode, ticktime := T}) ->
    ["-kernel", "net_ticktime", integer_to_list(T),
     "-kernel", "prevent_overlapping_partitions", "false",
     "-kernel", "logger_level", "notice",
     "-connect_all", "false"]
        ++ case Mode of
               loopback -> ["-kernel", "inet_dist_use_interface", "{127,0,0,1}"];
               netns -> []
           end.

wrap(#{ns := undefined}, Prog, Args) -> {Prog, Args};
wrap(#{ns := Ns}, Prog, Args) -> {os:find_executable("ip"), ["netns", "exec", Ns, Prog | Args]}.

node_list(Nodes) ->
    string:join([atom_to_list(N) || N <- Nodes], ",").

%% Started with -eval on a BEAM master: the lkr_server locker master, with
%% safe restarts when StateFile is set; the node halts if it cannot start.
beam_master(W, Masters, StateFile, Quiet) ->
    Opts = [{state_file, StateFile} || StateFile =/= undefined]
        ++ [{quiet_period, Quiet} || Quiet =/= undefined],
    case lkr_server:start(W, Masters, [], Opts) of
        {ok, _} ->
            ok;
        Error ->
            io:format("lkr_server did not start: ~p~n", [Error]),
            erlang:halt(3)
    end.

wait_ready(#{node := Node, owner := Owner} = H, Deadline) ->
    case is_process_alive(Owner) of
        false ->
            {error, {exited, first_line(H, 20)}};
        true ->
            case catch gen_server:call({locker, Node}, get_debug_state, 1000) of
                {ok, _, _, _, _, _} ->
                    ok;
                Other ->
                    case erlang:monotonic_time(millisecond) > Deadline of
                        true -> {error, {not_ready, Other}};
                        false -> timer:sleep(100), wait_ready(H, Deadline)
                    end
            end
    end.

%%--------------------------------------------------------------------
%% Processes

%% Start Prog Args with output appended to Log; returns Spec with owner,
%% os_pid and log. The owner forwards lines to `lines_to` when the spec
%% has one (C clients report their operations that way). The pid is
%% recorded for cleanup with the spec's `exe` (the program's argv[0] once
%% it runs), if given.
start_program(Spec, Prog, Args, Log) ->
    ok = filelib:ensure_dir(Log),
    Self = self(),
    LinesTo = maps:get(lines_to, Spec, undefined),
    Owner = spawn(fun() -> port_owner(Self, Prog, Args, Log, LinesTo) end),
    receive
        {Owner, os_pid, OsPid} ->
            [record_pid(OsPid, Exe) || #{exe := Exe} <- [Spec]],
            Spec#{owner => Owner, os_pid => OsPid, log => Log};
        {Owner, start_failed, Why} ->
            throw({start_failed, Prog, Why})
    after 10000 ->
            throw({start_failed, Prog, no_port})
    end.

port_owner(Parent, Prog, Args, Log, LinesTo) ->
    {ok, Fd} = file:open(Log, [append, raw, binary]),
    file:write(Fd, io_lib:format("~n[faults] ~s ~s~n", [Prog, string:join(Args, " ")])),
    try open_port({spawn_executable, Prog},
                  [{args, Args}, binary, exit_status, stderr_to_stdout, use_stdio,
                   {line, 65536}]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            Parent ! {self(), os_pid, integer_to_list(OsPid)},
            port_loop(Port, Fd, LinesTo)
    catch
        error:Why ->
            Parent ! {self(), start_failed, Why}
    end.

port_loop(Port, Fd, LinesTo) ->
    receive
        {Port, {data, {eol, <<"op ", _/binary>> = Line}}} when LinesTo =/= undefined ->
            LinesTo ! {program_line, self(), Line},
            port_loop(Port, Fd, LinesTo);
        {Port, {data, {_, Data}}} ->
            ok = file:write(Fd, [Data, "\n"]),
            port_loop(Port, Fd, LinesTo);
        {Port, {exit_status, Status}} ->
            file:write(Fd, io_lib:format("[faults] exited with status ~p~n", [Status])),
            file:close(Fd),
            exit({exit_status, Status});
        stop_program ->
            %% a line on stdin: the C client finishes its cycles and exits
            port_command(Port, <<"stop\n">>),
            port_loop(Port, Fd, LinesTo)
    end.

%% The first Lines lines of a handle's log (start-up failures).
first_line(#{log := Log}, Lines) ->
    case file:read_file(Log) of
        {ok, Bin} -> lists:join("\n", lists:sublist(string:split(Bin, "\n", all), Lines));
        _ -> ""
    end.

alive(#{owner := Owner}) ->
    is_process_alive(Owner).

%% SIGTERM, SIGKILL after a while.
stop(#{owner := Owner} = H) ->
    Ref = monitor(process, Owner),
    signal(H, "TERM"),
    receive
        {'DOWN', Ref, process, _, _} -> ok
    after ?STOP_TIMEOUT ->
            signal(H, "KILL"),
            receive {'DOWN', Ref, process, _, _} -> ok after ?STOP_TIMEOUT -> ok end
    end,
    ok.

%% kill -9, returns when the program has exited.
kill9(#{owner := Owner} = H) ->
    Ref = monitor(process, Owner),
    signal(H, "KILL"),
    receive
        {'DOWN', Ref, process, _, _} -> ok
    after ?STOP_TIMEOUT ->
            throw({kill_failed, maps:get(name, H)})
    end.

%% A live owner means the pid has not been reaped: it is still ours.
signal(#{owner := Owner, os_pid := OsPid}, Sig) ->
    case is_process_alive(Owner) of
        true -> os:cmd("kill -" ++ Sig ++ " " ++ OsPid ++ " 2>/dev/null"), ok;
        false -> ok
    end.

%% Ask a C client to stop (a line on its stdin) and wait for it to exit;
%% ok, or timeout (it is then killed).
close_program(#{owner := Owner} = H) ->
    Ref = monitor(process, Owner),
    Owner ! stop_program,
    receive
        {'DOWN', Ref, process, _, _} -> ok
    after 20000 ->
            demonitor(Ref, [flush]),
            catch kill9(H),
            timeout
    end.

%% "PID EXE" for scripts/lib.sh kill_tracked, which kills PID after a
%% crashed driver only while its command line still starts with EXE (never
%% a reused pid).
record_pid(OsPid, Exe) ->
    case os:getenv("LOCKERD_PIDFILE") of
        File when is_list(File), File =/= "", Exe =/= "" ->
            file:write_file(File, [OsPid, " ", Exe, "\n"], [append]);
        _ ->
            ok
    end.

cmdline_exe(OsPid) ->
    case file:read_file("/proc/" ++ OsPid ++ "/cmdline") of
        {ok, Cmd} -> hd(binary:split(Cmd, <<0>>));
        _ -> ""
    end.

%%--------------------------------------------------------------------
%% Links (netns mode only)

%% Cut every link between a node of As and a node of Bs; nodes are
%% {Namespace, Ip}. Routes in both namespaces make the cut symmetric.
cut(As, Bs, Env) ->
    Cmds = lists:append([[route_cmd(NsA, IpB), route_cmd(NsB, IpA)]
                         || {NsA, IpA} <- As, {NsB, IpB} <- Bs]),
    run_ip(Cmds, Env).

%% Remove every blackhole route from the namespaces.
heal(Namespaces, Env) ->
    run_ip(["ip -n " ++ Ns ++ " route flush type blackhole" || Ns <- Namespaces], Env).

route_cmd(Ns, Ip) ->
    "ip -n " ++ Ns ++ " route add blackhole " ++ Ip ++ "/32".

run_ip([], _Env) ->
    ok;
run_ip(Cmds, _Env) ->
    Out = os:cmd(string:join(Cmds, " && ") ++ " 2>&1; echo \"rc=$?\""),
    case lists:last(string:split(string:trim(Out), "\n", all)) of
        "rc=0" -> ok;
        _ -> throw({ip_failed, Cmds, Out})
    end.
