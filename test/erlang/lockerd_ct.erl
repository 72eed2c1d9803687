%% Test harness shared by the lockerd Common Test suites and the Elixir tests.
%%
%% It starts epmd (loopback), lockerd OS processes and BEAM peer nodes, and
%% gives the suites small helpers to observe a server from the outside.
%%
%% A node handle is a map:
%%   #{kind := lockerd | beam, node := node(), name := string(),
%%     os_pid := string(),
%%     log => file:filename(), owner => pid(), cmd => string(),  (lockerd)
%%     peer => pid()}                                           (beam)
%%
%% lockerd runs as a child of this VM through a port owned by a small
%% process that appends the daemon's stdout+stderr to a log file and records
%% its exit status there; the OS pid is only ever used for processes started
%% here. When LOCKERD_PIDFILE is set, every lockerd OS pid is appended to it
%% so that a wrapper script can clean up after a crashed test VM.
-module(lockerd_ct).

-export([ensure_epmd/0, cookie/0, host/0, node_name/1, unique_name/1,
         repo_root/0, lockerd_bin/0, lockerd_available/0, lockerd_check/0,
         start_lockerd/2, stop_lockerd/1, kill9/1, stop/1, crash/1, stop_all/1,
         start_peer/2, start_beam_node/3, start_beam_master/3, peer_apply/4,
         start_local_server/3, stop_local_server/0,
         start_nodes/3,
         debug_state/1, leases/1, write_locks/1, lease_on/2, sbcast/2,
         wait_value/3, wait_until/2, log/2,
         code_paths/0, try_call/3, oversize_call/3, call_loop/3, idle_watch/2,
         dirty_read_module/1]).

%% Client-library tools (bin/locker-echo, bin/lkc-hold, ...).
-export([tool_bin/1, start_program/2, program_line/3, kill_program/2]).

%% Hostile-peer helpers (lockerd_limits_SUITE): raw sockets to a node's
%% distribution port, a minimal handshake, hand-made frames, a probe timing
%% an honest caller, and log line counts.
-export([dist_port/1, raw_sockets/3, raw_closed/2, raw_close_all/1,
         raw_handshake/2, raw_pid/1, raw_call/4, raw_send/2,
         probe_start/1, probe_stop/1, log_count/2]).

-define(READY_TIMEOUT, 10000).
-define(STOP_TIMEOUT, 5000).

%%--------------------------------------------------------------------
%% Environment

ensure_epmd() ->
    case catch erl_epmd:names() of
        {ok, _} ->
            ok;
        _ ->
            Epmd = os:find_executable("epmd"),
            log("starting epmd: ~s -daemon (ERL_EPMD_ADDRESS=127.0.0.1)", [Epmd]),
            Port = open_port({spawn_executable, Epmd},
                             [{args, ["-daemon"]}, {env, [{"ERL_EPMD_ADDRESS", "127.0.0.1"}]},
                              exit_status, stderr_to_stdout]),
            receive {Port, {exit_status, _}} -> ok after 5000 -> ok end,
            case wait_until(fun() -> element(1, catch erl_epmd:names()) =:= ok end, 5000) of
                true -> ok;
                false -> error(epmd_not_running)
            end
    end.

cookie() ->
    atom_to_list(erlang:get_cookie()).

host() ->
    [_, Host] = string:split(atom_to_list(node()), "@"),
    Host.

node_name(Name) ->
    list_to_atom(Name ++ "@" ++ host()).

%% A node name unique to this test VM, so that leftovers of an earlier run
%% never collide with this one.
unique_name(Base) ->
    lists:concat([Base, "_", os:getpid()]).

repo_root() ->
    case os:getenv("LOCKERD_REPO") of
        Dir when is_list(Dir), Dir =/= "" ->
            Dir;
        _ ->
            %% rebar3 compiles a copy of the sources under _build/
            Src = proplists:get_value(source, ?MODULE:module_info(compile)),
            case string:split(Src, "/_build/") of
                [Root, _] -> Root;
                [_] -> filename:dirname(filename:dirname(filename:dirname(Src)))
            end
    end.

lockerd_bin() ->
    case os:getenv("LOCKERD_BIN") of
        Bin when is_list(Bin), Bin =/= "" -> Bin;
        _ -> filename:join([repo_root(), "bin", "lockerd"])
    end.

lockerd_available() ->
    Bin = lockerd_bin(),
    case file:read_file_info(Bin) of
        {ok, Info} -> element(3, Info) =:= regular andalso (element(8, Info) band 8#111) =/= 0;
        _ -> false
    end.

%% ok | {skip, Reason}, for init_per_group of groups that need lockerd.
lockerd_check() ->
    case os:getenv("LOCKERD_SKIP") of
        "1" ->
            {skip, "LOCKERD_SKIP=1: lockerd groups skipped"};
        _ ->
            case lockerd_available() of
                true -> ok;
                false -> {skip, "lockerd executable not found at " ++ lockerd_bin() ++
                              " (set LOCKERD_BIN or build it with make)"}
            end
    end.

code_paths() ->
    lists:usort([filename:absname(filename:dirname(code:which(M))) || M <- [?MODULE, lkr, lkr_server, locker]]).

%%--------------------------------------------------------------------
%% lockerd processes

%% Opts (map): log_dir (required), masters, replicas ([node()]), w,
%% push_interval, max_frame, net_ticktime, log_level (default "debug"),
%% cookie (default: this node's), extra_args ([string()]), ready (call:
%% ready once this node's get_debug_state call is answered, the default;
%% epmd: once registered and the log says ready, for a lockerd this node
%% cannot talk to, e.g. one using TLS distribution).
start_lockerd(Name, Opts) ->
    ensure_epmd(),
    Bin = lockerd_bin(),
    Node = node_name(Name),
    Args = lockerd_args(Name, Opts),
    LogDir = maps:get(log_dir, Opts),
    ok = filelib:ensure_dir(filename:join(LogDir, "x")),
    Log = filename:join(LogDir, "lockerd_" ++ Name ++ ".log"),
    Cmd = string:join([Bin | Args], " "),
    log("starting lockerd ~s~n  command: ~s~n  log: ~s", [Node, Cmd, Log]),
    Self = self(),
    Owner = spawn(fun() -> port_owner(Self, Bin, Args, Log) end),
    OsPid = receive
                {Owner, os_pid, P} -> P;
                {Owner, start_failed, Why} -> error({lockerd_start_failed, Node, Why, Cmd})
            after 5000 -> error({lockerd_start_failed, Node, no_port, Cmd})
            end,
    record_pid(OsPid, Bin),
    H = #{kind => lockerd, node => Node, name => Name, os_pid => OsPid, log => Log,
          owner => Owner, cmd => Cmd, ready => maps:get(ready, Opts, call)},
    case wait_ready(H, erlang:monotonic_time(millisecond) + ?READY_TIMEOUT) of
        ok ->
            log("lockerd ~s ready (os pid ~s)", [Node, OsPid]),
            H;
        {error, Reason} ->
            Tail = log_tail(H, 40),
            log("lockerd ~s not ready: ~p~n  command: ~s~n  log tail (~s):~n~s",
                [Node, Reason, Cmd, Log, Tail]),
            stop_lockerd(H),
            error({lockerd_not_ready, Node, Reason, Log})
    end.

lockerd_args(Name, Opts) ->
    Cookie = maps:get(cookie, Opts, cookie()),
    NodeList = fun(Ns) -> string:join([atom_to_list(N) || N <- Ns], ",") end,
    Opt = fun(Key, Flag, Fmt) ->
                  case maps:find(Key, Opts) of
                      {ok, []} -> [];
                      {ok, V} -> [Flag, Fmt(V)];
                      error -> []
                  end
          end,
    ["-sname", Name, "-setcookie", Cookie]
        ++ Opt(masters, "--masters", NodeList)
        ++ Opt(replicas, "--replicas", NodeList)
        ++ Opt(w, "-w", fun integer_to_list/1)
        ++ Opt(push_interval, "--push-interval", fun integer_to_list/1)
        ++ Opt(max_frame, "--max-frame", fun integer_to_list/1)
        ++ Opt(net_ticktime, "--net-ticktime", fun integer_to_list/1)
        ++ ["--log-level", maps:get(log_level, Opts, "debug")]
        %% Each node's state file (safe restarts) beside its log: a node
        %% restarted under the same name in the same directory is quiet.
        ++ ["--state-file", filename:join(maps:get(log_dir, Opts), Name ++ ".state")]
        ++ maps:get(extra_args, Opts, []).

port_owner(Parent, Bin, Args, Log) ->
    {ok, Fd} = file:open(Log, [append, raw, binary]),
    try open_port({spawn_executable, Bin},
                  [{args, Args}, binary, exit_status, stderr_to_stdout, use_stdio]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            Parent ! {self(), os_pid, integer_to_list(OsPid)},
            port_loop(Port, Fd)
    catch
        error:Why ->
            Parent ! {self(), start_failed, Why}
    end.

port_loop(Port, Fd) ->
    receive
        {Port, {data, Data}} ->
            ok = file:write(Fd, Data),
            port_loop(Port, Fd);
        {Port, {exit_status, Status}} ->
            file:write(Fd, io_lib:format("~n[lockerd_ct] lockerd exited with status ~p~n",
                                         [Status])),
            file:close(Fd),
            exit({exit_status, Status})
    end.

wait_ready(#{node := Node, name := Name, owner := Owner} = H, Deadline) ->
    case is_process_alive(Owner) of
        false ->
            {error, {exited, exit_status(H)}};
        true ->
            Ready = case erl_epmd:port_please(Name, host()) of
                        {port, _, _} when map_get(ready, H) =:= epmd ->
                            log_count(H, " ready: node ") > 0 orelse {false, no_ready_line};
                        {port, _, _} ->
                            case catch gen_server:call({locker, Node}, get_debug_state, 1000) of
                                {ok, _, _, _, _, _} -> true;
                                Other -> {false, Other}
                            end;
                        Other ->
                            {false, {epmd, Other}}
                    end,
            case Ready of
                true ->
                    ok;
                {false, Why} ->
                    case erlang:monotonic_time(millisecond) > Deadline of
                        true -> {error, {timeout, Why}};
                        false -> timer:sleep(100), wait_ready(H, Deadline)
                    end
            end
    end.

exit_status(#{owner := Owner}) ->
    Ref = monitor(process, Owner),
    receive
        {'DOWN', Ref, process, _, {exit_status, S}} -> S;
        {'DOWN', Ref, process, _, Other} -> Other
    after 2000 ->
            demonitor(Ref, [flush]),
            unknown
    end.

%% SIGTERM, then SIGKILL if it is still there after a while. A daemon that
%% already exited (crash test, or a crash nobody expected) is only logged.
stop_lockerd(#{kind := lockerd, owner := Owner, node := Node} = H) ->
    Ref = monitor(process, Owner),
    signal(H, "TERM"),
    receive
        {'DOWN', Ref, process, _, Reason} ->
            log("lockerd ~s stopped: ~p (log ~s)", [Node, Reason, maps:get(log, H)])
    after ?STOP_TIMEOUT ->
            log("lockerd ~s ignored SIGTERM for ~p ms; sending SIGKILL", [Node, ?STOP_TIMEOUT]),
            signal(H, "KILL"),
            receive {'DOWN', Ref, process, _, _} -> ok after ?STOP_TIMEOUT -> ok end
    end,
    wait_disconnected(Node).

%% Crash: SIGKILL, no chance to clean up.
kill9(#{kind := lockerd, owner := Owner, node := Node, os_pid := OsPid} = H) ->
    Ref = monitor(process, Owner),
    log("kill -9 lockerd ~s (os pid ~s)", [Node, OsPid]),
    signal(H, "KILL"),
    receive {'DOWN', Ref, process, _, _} -> ok after ?STOP_TIMEOUT -> ok end,
    wait_disconnected(Node).

%% The port owner lives exactly as long as the daemon has not been reaped,
%% so a live owner means the pid is still ours.
signal(#{owner := Owner, os_pid := OsPid}, Signal) ->
    case is_process_alive(Owner) of
        true -> os_kill(Signal, OsPid);
        false -> ok
    end.

os_kill(Signal, OsPid) ->
    os:cmd("kill -" ++ Signal ++ " " ++ OsPid ++ " 2>/dev/null").

record_pid(OsPid, Bin) ->
    case os:getenv("LOCKERD_PIDFILE") of
        File when is_list(File), File =/= "" ->
            file:write_file(File, [OsPid, " ", Bin, "\n"], [append]);
        _ ->
            ok
    end.

wait_disconnected(Node) ->
    wait_until(fun() -> not lists:member(Node, nodes(connected)) end, 5000),
    ok.

log_tail(#{log := Log}, Lines) ->
    case file:read_file(Log) of
        {ok, Bin} ->
            All = string:split(Bin, "\n", all),
            lists:join("\n", lists:nthtail(max(0, length(All) - Lines), All));
        {error, E} ->
            io_lib:format("(no log: ~p)", [E])
    end;
log_tail(_, _) ->
    "".

%%--------------------------------------------------------------------
%% BEAM peers

%% Opts (map): cookie, code_paths (added to the test modules' own),
%% args (extra erl arguments), net_ticktime, connection (standard_io for a
%% peer that must not or cannot use distribution to talk to this node, e.g.
%% one with another cookie; it is then driven with peer:call).
start_peer(Name, Opts) ->
    ensure_epmd(),
    Cookie = maps:get(cookie, Opts, cookie()),
    Paths = lists:usort(code_paths() ++ maps:get(code_paths, Opts, [])),
    Tick = case maps:find(net_ticktime, Opts) of
               {ok, T} -> ["-kernel", "net_ticktime", integer_to_list(T)];
               error -> []
           end,
    Args = ["-setcookie", Cookie,
            "-kernel", "inet_dist_use_interface", "{127,0,0,1}",
            "-kernel", "logger_level", "warning"
           | Tick] ++ lists:append([["-pa", P] || P <- Paths]) ++ maps:get(args, Opts, []),
    PeerOpts0 = #{name => Name, host => host(), args => Args,
                  exec => os:find_executable("erl"),
                  wait_boot => 30000},
    PeerOpts = case maps:find(connection, Opts) of
                   {ok, C} -> PeerOpts0#{connection => C};
                   error -> PeerOpts0
               end,
    log("starting BEAM peer ~s: erl -sname ~s ~s", [Name, Name, string:join(Args, " ")]),
    case peer:start(PeerOpts) of
        {ok, Peer, Node} ->
            OsPid = case maps:is_key(connection, Opts) of
                        true -> peer:call(Peer, os, getpid, []);
                        false -> erpc:call(Node, os, getpid, [], 10000)
                    end,
            #{kind => beam, node => Node, name => Name, peer => Peer, os_pid => OsPid,
              stdio => maps:is_key(connection, Opts)};
        {error, Reason} ->
            error({peer_start_failed, Name, Reason})
    end.

%% A BEAM peer running lkr_server with meta {W, Masters, Replicas}; it is a
%% master when it is in Masters, a replica when in Replicas, else a client.
%% Opts: those of start_peer/2, plus server_opts for lkr_server:start/4.
start_beam_node(Name, {W, Masters, Replicas}, Opts) ->
    H = start_peer(Name, Opts),
    ServerOpts = maps:get(server_opts, Opts, []),
    {ok, _} = peer_apply(H, lkr_server, start, [W, Masters, Replicas, ServerOpts]),
    H.

%% Run M:F(A) on a BEAM peer: over stdio for a peer started with
%% connection => standard_io (it may not share this node's distribution),
%% else by erpc.
peer_apply(#{peer := Peer, stdio := true}, M, F, A) ->
    peer:call(Peer, M, F, A, 30000);
peer_apply(#{node := Node}, M, F, A) ->
    erpc:call(Node, M, F, A, 30000).

start_beam_master(Name, Meta, Opts) ->
    start_beam_node(Name, Meta, Opts).

start_local_server(W, Masters, Replicas) ->
    catch lkr_server:stop(),
    {ok, Pid} = lkr_server:start(W, Masters, Replicas, []),
    Pid.

stop_local_server() ->
    catch lkr_server:stop(),
    ok.

%% Start one node per {Kind, Name} with the shared meta; returns handles in
%% the same order. Opts: log_dir, lockerd_opts (added to start_lockerd/2's),
%% and start_beam_node/3's options.
start_nodes(Specs, {W, Masters, Replicas} = Meta, Opts) ->
    [case Kind of
         lockerd ->
             LOpts = maps:merge(#{masters => Masters, replicas => Replicas, w => W,
                                  log_dir => maps:get(log_dir, Opts)},
                                maps:get(lockerd_opts, Opts, #{})),
             start_lockerd(Name, LOpts);
         beam ->
             start_beam_node(Name, Meta, Opts)
     end || {Kind, Name} <- Specs].

stop(#{kind := lockerd} = H) ->
    stop_lockerd(H);
stop(#{kind := beam, peer := Peer, node := Node}) ->
    catch peer:stop(Peer),
    wait_disconnected(Node).

%% Take a node down without letting it clean up.
crash(#{kind := lockerd} = H) ->
    kill9(H);
crash(#{kind := beam, os_pid := OsPid, peer := Peer, node := Node}) ->
    log("kill -9 BEAM peer ~s (os pid ~s)", [Node, OsPid]),
    os_kill("KILL", OsPid),
    wait_disconnected(Node),
    catch peer:stop(Peer),
    ok.

stop_all(Handles) ->
    [catch stop(H) || H <- Handles],
    ok.

%% Module answering dirty_read/1 on a node: `locker` on every kind (lockerd
%% answers it, a BEAM node of these tests has test/erlang/locker.erl).
dirty_read_module(_Handles) ->
    fun(_Node) -> locker end.

%%--------------------------------------------------------------------
%% Observation helpers

debug_state(Node) ->
    gen_server:call({locker, Node}, get_debug_state, 5000).

leases(Node) ->
    {ok, _, Leases, _, _, _} = debug_state(Node),
    Leases.

write_locks(Node) ->
    {ok, Locks, _, _, _, _} = debug_state(Node),
    Locks.

%% {ok, Value} | not_found, by exact (=:=) key comparison.
lease_on(Node, Key) ->
    case [V || {K, V, _} <- leases(Node), K =:= Key] of
        [V] -> {ok, V};
        [] -> not_found
    end.

sbcast(Nodes, Msg) ->
    rpc:sbcast(Nodes, locker, Msg).

%% Poll Fun() every 50 ms until it returns Expected; returns Expected or
%% fails with the last value seen.
wait_value(Fun, Expected, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_value(Fun, Expected, Deadline, undefined).

wait_value(Fun, Expected, Deadline, _Last) ->
    case catch Fun() of
        Expected ->
            Expected;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error({wait_value_timeout, {expected, Expected}, {last, Other}});
                false -> timer:sleep(50), wait_value(Fun, Expected, Deadline, Other)
            end
    end.

%% true if Fun() returned true within Timeout ms, else false.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_until_loop(Fun, Deadline).

wait_until_loop(Fun, Deadline) ->
    case catch Fun() of
        true ->
            true;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(50), wait_until_loop(Fun, Deadline)
            end
    end.

%% For peers: a gen_server call whose failure is returned, not raised.
try_call(Dest, Req, Timeout) ->
    catch gen_server:call(Dest, Req, Timeout).

%% Run on a peer: connect to Node, then send a request carrying a binary of
%% Bytes bytes. Returns {CallResult, nodedown | no_nodedown}.
oversize_call(Node, Bytes, Timeout) ->
    {ok, _, _, _, _, _} = gen_server:call({locker, Node}, get_debug_state, 5000),
    erlang:monitor_node(Node, true),
    Big = binary:copy(<<"x">>, Bytes),
    Res = (catch gen_server:call({locker, Node},
                                 {write, make_ref(), oversize_key, Big, 1000}, Timeout)),
    Down = receive {nodedown, Node} -> nodedown after Timeout -> no_nodedown end,
    erlang:monitor_node(Node, false),
    {Res, Down}.

%% Run on a peer: N get_debug_state calls, IntervalMs apart; returns the
%% results that were not {ok, ...}.
call_loop(Node, N, IntervalMs) ->
    lists:filtermap(
      fun(_) ->
              R = (catch gen_server:call({locker, Node}, get_debug_state, 5000)),
              timer:sleep(IntervalMs),
              case R of
                  {ok, _, _, _, _, _} -> false;
                  Bad -> {true, Bad}
              end
      end, lists:seq(1, N)).

%% Run on a peer: connect to Node, stay idle for IdleMs watching for a
%% nodedown, then call again. Returns {Watch, SecondCall, StillConnected}.
idle_watch(Node, IdleMs) ->
    {ok, _, _, _, _, _} = gen_server:call({locker, Node}, get_debug_state, 5000),
    erlang:monitor_node(Node, true),
    T0 = erlang:monotonic_time(millisecond),
    Watch = receive
                {nodedown, Node} -> {nodedown_after_ms, erlang:monotonic_time(millisecond) - T0}
            after IdleMs -> quiet
            end,
    Connected = lists:member(Node, nodes(connected)),
    Second = (catch gen_server:call({locker, Node}, get_debug_state, 5000)),
    erlang:monitor_node(Node, false),
    {Watch, element(1, Second), Connected}.

%%--------------------------------------------------------------------
%% Logging: ct:log inside a Common Test run, stdout elsewhere.

log(Fmt, Args) ->
    case whereis(ct_util_server) of
        undefined -> io:format(user, "[lockerd_ct] " ++ Fmt ++ "~n", Args);
        _ -> ct:log(Fmt, Args)
    end.

%%--------------------------------------------------------------------
%% Client-library tools

%% A tool built next to lockerd (same BINDIR, so asan builds use theirs).
tool_bin(Name) ->
    filename:join(filename:dirname(lockerd_bin()), Name).

%% Run Bin with Args (no shell) as a port in line mode, stdout+stderr
%% merged; the caller's process owns the port (closing it closes the
%% program's stdin). The OS pid goes to LOCKERD_PIDFILE for cleanup.
%% Returns #{port, os_pid, bin}.
start_program(Bin, Args) ->
    log("starting ~s ~s", [Bin, string:join(Args, " ")]),
    Port = open_port({spawn_executable, Bin},
                     [{args, Args}, {line, 1024}, exit_status, stderr_to_stdout, use_stdio,
                      binary]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    record_pid(integer_to_list(OsPid), Bin),
    #{port => Port, os_pid => integer_to_list(OsPid), bin => Bin}.

%% Wait for an output line starting with Prefix: {ok, Line} |
%% {exit, Status, LinesSoFar} | {timeout, LinesSoFar}.
program_line(#{port := Port}, Prefix, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    program_line(Port, Prefix, Deadline, []).

program_line(Port, Prefix, Deadline, Seen) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, {eol, Line}}} ->
            log("program: ~s", [Line]),
            case string:prefix(Line, Prefix) of
                nomatch -> program_line(Port, Prefix, Deadline, [Line | Seen]);
                _ -> {ok, Line}
            end;
        {Port, {data, {noeol, Part}}} ->
            program_line(Port, Prefix, Deadline, [Part | Seen]);
        {Port, {exit_status, Status}} ->
            {exit, Status, lists:reverse(Seen)}
    after Left ->
            {timeout, lists:reverse(Seen)}
    end.

%% Signal a program started by start_program/2 ("TERM", "KILL", ...) if
%% its port is still open (so the pid is still ours).
kill_program(#{port := Port, os_pid := OsPid}, Signal) ->
    case erlang:port_info(Port) of
        undefined -> ok;
        _ -> os_kill(Signal, OsPid), ok
    end.

%%--------------------------------------------------------------------
%% Hostile peers: raw distribution sockets

%% The distribution port epmd gives for Node.
dist_port(Node) ->
    [Name, Host] = string:split(atom_to_list(Node), "@"),
    {port, Port, _} = erl_epmd:port_please(Name, Host),
    Port.

%% N TCP connections to Node's distribution port that never handshake.
%% Payload: none (silent) or a binary sent once (e.g. one byte of a length).
raw_sockets(Node, N, Payload) ->
    Port = dist_port(Node),
    [begin
         {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000),
         case Payload of
             none -> ok;
             Bin -> gen_tcp:send(S, Bin)
         end,
         S
     end || _ <- lists:seq(1, N)].

%% How many of Socks the other side has closed (within Timeout ms each;
%% 0 looks only at what already happened). Data received is discarded.
raw_closed(Socks, Timeout) ->
    length([S || S <- Socks, raw_is_closed(S, Timeout)]).

raw_is_closed(S, Timeout) ->
    case gen_tcp:recv(S, 0, Timeout) of
        {error, timeout} -> false;
        {error, _} -> true;
        {ok, _} -> raw_is_closed(S, Timeout)
    end.

raw_close_all(Socks) ->
    [gen_tcp:close(S) || S <- Socks],
    ok.

%% A minimal initiator handshake (docs/distribution.md section 2) as node MyName
%% ("alive@host") with this VM's cookie: send_name, status, challenge,
%% reply with the digest, ack. Returns {ok, Socket} in {packet, 4} mode
%% (frames after the handshake), or {error, Step, Reason}.
raw_handshake(Node, MyName) ->
    Port = dist_port(Node),
    Flags = 16#D07074FBC,
    Name = list_to_binary(MyName),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, 2}], 5000),
    ok = gen_tcp:send(S, <<$N, Flags:64, 1:32, (byte_size(Name)):16, Name/binary>>),
    case gen_tcp:recv(S, 0, 5000) of
        {ok, <<$s, "ok">>} ->
            case gen_tcp:recv(S, 0, 5000) of
                {ok, <<$N, _PFlags:64, Challenge:32, _Cr:32, _NL:16, _/binary>>} ->
                    Digest = erlang:md5([cookie(), integer_to_list(Challenge)]),
                    ok = gen_tcp:send(S, <<$r, 12345:32, Digest/binary>>),
                    case gen_tcp:recv(S, 0, 5000) of
                        {ok, <<$a, _:16/binary>>} ->
                            ok = inet:setopts(S, [{packet, 4}]),
                            {ok, S};
                        Other ->
                            gen_tcp:close(S),
                            {error, ack, Other}
                    end;
                Other ->
                    gen_tcp:close(S),
                    {error, challenge, Other}
            end;
        Other ->
            gen_tcp:close(S),
            {error, status, Other}
    end.

%% A pid of the raw node MyName (NEW_PID_EXT, creation 1).
raw_pid(MyName) ->
    N = list_to_binary(MyName),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, 1:32, 0:32, 1:32>>).

%% A gen_server call frame body from the raw node to {Name, Node}:
%% REG_SEND {6, From, '', Name} + {'$gen_call', {From, Tag}, Req}.
raw_call(MyName, Name, Tag, Req) ->
    From = raw_pid(MyName),
    [112, term_to_binary({6, From, '', Name}),
     term_to_binary({'$gen_call', {From, Tag}, Req})].

%% Send frame bodies ({packet, 4} adds the length); errors ignored (the
%% other side may have closed the connection).
raw_send(S, Frames) ->
    [gen_tcp:send(S, F) || F <- Frames],
    ok.

%%--------------------------------------------------------------------
%% An honest caller, timed: get_debug_state every 20 ms until stopped.

probe_start(Node) ->
    Parent = self(),
    Start = erlang:monotonic_time(millisecond),
    spawn_link(fun() -> probe_loop(Parent, Node, Start, 0, [], 0, 0) end).

%% #{calls, failures, max_ms, total_ms (time spent in calls), elapsed_ms}.
probe_stop(P) ->
    P ! {stop, self()},
    receive {P, Result} -> Result after 10000 -> error(probe_hung) end.

probe_loop(Parent, Node, Start, Calls, Bad, Max, Total) ->
    T0 = erlang:monotonic_time(millisecond),
    R = (catch gen_server:call({locker, Node}, get_debug_state, 5000)),
    Ms = erlang:monotonic_time(millisecond) - T0,
    Bad1 = case R of
               {ok, _, _, _, _, _} -> Bad;
               _ -> [R | Bad]
           end,
    receive
        {stop, From} ->
            From ! {self(), #{calls => Calls + 1, failures => lists:reverse(Bad1),
                              max_ms => max(Max, Ms), total_ms => Total + Ms,
                              elapsed_ms => erlang:monotonic_time(millisecond) - Start}}
    after 20 ->
            probe_loop(Parent, Node, Start, Calls + 1, Bad1, max(Max, Ms), Total + Ms)
    end.

%% Lines of a lockerd's log matching the regular expression Re.
log_count(#{log := Log}, Re) ->
    {ok, Bin} = file:read_file(Log),
    length([L || L <- binary:split(Bin, <<"\n">>, [global]),
                 re:run(L, Re, [{capture, none}]) =:= match]).
