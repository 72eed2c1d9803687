%% A member or a stranger attacking one lockerd master while an honest
%% BEAM caller (this test node) keeps calling it. Each case runs a bounded
%% attack and asserts that every honest call was answered in time, that
%% the master's resident memory stayed within its configured bounds plus a
%% stated margin, and what the log holds (no raw control characters,
%% bounded line counts).
%%
%% Group `issue`: one case per way a hostile peer used to get through:
%% output that --max-out did not bound, waiters that outlived their
%% caller, peer text reaching the log raw and unthrottled, unbounded
%% defaults, one source holding every handshake slot, cluster changes
%% logged without their sender. Group `floods`: attacks lockerd already
%% shrugged off, kept so the table of `make attack` covers them too.
%%
%% Every case appends one row (attack, honest max latency, honest errors,
%% RSS before / peak / after, log lines) to the file named by
%% LOCKERD_ATTACK_TABLE when it is set; ATTACK_SECONDS (default 2) is how
%% long the timed floods last.
-module(lockerd_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

%% The slowest honest answer tolerated while an attack runs: generous, the
%% machine is shared; a starved loop shows up as seconds or failures.
-define(PROMPT_MS, 1500).
%% Resident memory a case may add beyond the bound it computes: libc
%% arenas, kernel-side buffers counted to the process, the store's tables;
%% under AddressSanitizer (make asan sets ASAN_OPTIONS) also its
%% quarantine of freed memory (256 MB by default) and shadow memory.
-define(RSS_MARGIN, rss_margin()).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [{group, issue}, {group, floods}].

groups() ->
    [{issue, [], [output_capped, waiters_leave_with_node, rpc_waiters_leave_with_node,
                  waiters_leave_with_process,
                  log_clean, default_limits, handshakes_per_source, cluster_changes_logged]},
     {floods, [], [garbage, slow_loris, conn_flood, malformed_frames, monitor_flood,
                   spawn_flood]}].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(_, Config) ->
    case lockerd_ct:lockerd_check() of
        ok -> Config;
        {skip, _} = Skip -> Skip
    end.

end_per_group(_Group, _Config) ->
    ok.

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Helpers

rss_margin() ->
    case os:getenv("ASAN_OPTIONS") of
        false -> 48 bsl 20;
        _ -> 400 bsl 20
    end.

seconds() ->
    case os:getenv("ATTACK_SECONDS") of
        false -> 2;
        S -> list_to_integer(S)
    end.

%% Run Fun(Node, Handle) against a lockerd master of its own (w 1).
with_lockerd(Base, Extra, Config, Fun) ->
    with_lockerd(Base, [], Extra, Config, Fun).

with_lockerd(Base, Others, Extra, Config, Fun) ->
    Name = lockerd_ct:unique_name(Base),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config),
                                         masters => [Node | Others], w => 1,
                                         log_level => "info",
                                         extra_args => Extra}),
    try Fun(Node, H)
    after lockerd_ct:stop(H)
    end.

call(Node, Req) ->
    gen_server:call({locker, Node}, Req, 5000).

raw_name(Base) ->
    Base ++ "_" ++ os:getpid() ++ "@" ++ lockerd_ct:host().

%% Resident memory of the lockerd behind H, in bytes.
rss(#{os_pid := OsPid}) ->
    {ok, Bin} = file:read_file("/proc/" ++ OsPid ++ "/status"),
    {match, [Kb]} = re:run(Bin, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

%% An attack measured: the honest prober and an RSS sampler run while
%% Attack() does; then a pause for things to settle. Returns the row.
measure(Label, H, Node, Attack) ->
    Before = rss(H),
    LinesBefore = log_lines(H),
    Sampler = spawn_link(fun() -> sampler(H, Before) end),
    Probe = probe_start(Node),
    timer:sleep(100),
    Result = Attack(),
    timer:sleep(300),
    #{calls := Calls, failures := Failures, max_ms := Max} = probe_stop(Probe),
    Sampler ! {stop, self()},
    Peak = receive {Sampler, P} -> P after 5000 -> error(sampler_hung) end,
    After = rss(H),
    Row = #{attack => Label, calls => Calls, errors => length(Failures), max_ms => Max,
            rss_before => Before, rss_peak => Peak, rss_after => After,
            log_lines => log_lines(H) - LinesBefore, result => Result},
    report(Row),
    ct:log("~s: honest ~p calls, slowest ~p ms, failures ~p; RSS ~p -> peak ~p -> ~p MB; "
           "~p log lines", [Label, Calls, Max, Failures, Before bsr 20, Peak bsr 20,
                            After bsr 20, maps:get(log_lines, Row)]),
    Row.

%% The honest caller: a summary call every 20 ms (cheap whatever the
%% store holds, unlike get_debug_state), timed.
probe_start(Node) ->
    Parent = self(),
    spawn_link(fun() -> probe_loop(Parent, Node, 0, [], 0) end).

probe_stop(P) ->
    P ! {stop, self()},
    receive {P, Result} -> Result after 10000 -> error(probe_hung) end.

probe_loop(Parent, Node, Calls, Bad, Max) ->
    T0 = erlang:monotonic_time(millisecond),
    R = (catch gen_server:call({locker, Node}, summary, 5000)),
    Ms = erlang:monotonic_time(millisecond) - T0,
    Bad1 = case R of
               [{write_locks, _}, {leases, _}] -> Bad;
               _ -> [R | Bad]
           end,
    receive
        {stop, From} ->
            From ! {self(), #{calls => Calls + 1, failures => lists:reverse(Bad1),
                              max_ms => max(Max, Ms)}}
    after 20 ->
            probe_loop(Parent, Node, Calls + 1, Bad1, max(Max, Ms))
    end.

%% Frames sent as separate distribution frames in one write.
pipeline(S, Frames) ->
    ok = inet:setopts(S, [{packet, raw}]),
    R = gen_tcp:send(S, [[<<(iolist_size(F)):32>>, F] || F <- Frames]),
    ok = inet:setopts(S, [{packet, 4}]),
    R.

sampler(H, Peak) ->
    receive
        {stop, From} -> From ! {self(), max(Peak, catch_rss(H, Peak))}
    after 50 ->
        sampler(H, max(Peak, catch_rss(H, Peak)))
    end.

catch_rss(H, Default) ->
    try rss(H) catch _:_ -> Default end.

%% Every honest call answered, and promptly.
assert_honest(#{calls := Calls, errors := Errors, max_ms := Max}) ->
    ?assertEqual(0, Errors),
    ?assert(Calls >= 5),
    ?assert(Max < ?PROMPT_MS).

assert_rss(#{rss_before := Before, rss_peak := Peak}, Bound) ->
    ct:log("RSS peak ~p MB, allowed ~p MB (before ~p MB + bound ~p MB + margin ~p MB)",
           [Peak bsr 20, (Before + Bound + ?RSS_MARGIN) bsr 20, Before bsr 20, Bound bsr 20,
            ?RSS_MARGIN bsr 20]),
    ?assert(Peak =< Before + Bound + ?RSS_MARGIN).

report(#{attack := A, calls := C, errors := E, max_ms := M, rss_before := B,
         rss_peak := P, rss_after := Af, log_lines := L}) ->
    case os:getenv("LOCKERD_ATTACK_TABLE") of
        false -> ok;
        File ->
            Line = io_lib:format("~s\t~p\t~p\t~p\t~p\t~p\t~p\t~p~n",
                                 [A, M, E, C, B bsr 20, P bsr 20, Af bsr 20, L]),
            ok = file:write_file(File, Line, [append])
    end.

log_bin(#{log := Log}) ->
    {ok, Bin} = file:read_file(Log),
    Bin.

log_lines(H) ->
    length(binary:matches(log_bin(H), <<"\n">>)).

%% No raw control character other than the newlines ending lines.
assert_log_clean(H) ->
    Bin = log_bin(H),
    Bad = [C || <<C>> <= Bin, C < 32, C =/= $\n],
    ?assertEqual([], lists:usort(Bad)).

%% A handshake as node Name with Cookie from source address Ip: the
%% result of the status message, or of the ack when the status was ok.
handshake(Node, Name, Cookie, Ip) ->
    Port = lockerd_ct:dist_port(Node),
    Flags = 16#D07074FBC,
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, 2},
                                                {ip, Ip}], 5000) of
        {ok, S} ->
            gen_tcp:send(S, <<$N, Flags:64, 1:32, (byte_size(Name)):16, Name/binary>>),
            R = case gen_tcp:recv(S, 0, 5000) of
                    {ok, <<$s, "ok">>} ->
                        case gen_tcp:recv(S, 0, 5000) of
                            {ok, <<$N, _:64, Ch:32, _/binary>>} ->
                                D = erlang:md5([Cookie, integer_to_list(Ch)]),
                                gen_tcp:send(S, <<$r, 1:32, D/binary>>),
                                case gen_tcp:recv(S, 0, 5000) of
                                    {ok, <<$a, _/binary>>} -> ok;
                                    Other -> {ack, Other}
                                end;
                            Other -> {challenge, Other}
                        end;
                    Other -> {status, Other}
                end,
            gen_tcp:close(S),
            R;
        Error ->
            Error
    end.

%% Reads and discards what arrives on S until it closes or Stop arrives.
drain(S) ->
    spawn_link(fun() -> drain_loop(S) end).

drain_loop(S) ->
    case gen_tcp:recv(S, 0, 200) of
        {ok, _} -> drain_loop(S);
        {error, timeout} -> receive stop -> ok after 0 -> drain_loop(S) end;
        {error, _} -> ok
    end.

%% A process sending frames to S until killed (a throttled peer's sends
%% block once the kernel's buffers are full).
blind_sender(S, Frames) ->
    spawn(fun() -> lockerd_ct:raw_send(S, Frames) end).

%%--------------------------------------------------------------------
%% Group issue

%% --max-out 16 MiB: one peer stores a 4 MB value, pipelines 400
%% dirty_reads of it in one write and reads nothing. lockerd stops reading
%% from it at half of --max-out, so what it holds for that peer is at most
%% 8 MiB plus one reply, not 1.6 GB; honest callers are served throughout.
output_capped(Config) ->
    Cap = 16 bsl 20,
    with_lockerd("hst_out", ["--max-out", integer_to_list(Cap)], Config,
      fun(Node, H) ->
        Big = binary:copy(<<"v">>, 4000000),
        ok = call(Node, {write, make_ref(), big, Big, 600000}),
        Raw = raw_name("raw_out"),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        Frames = [lockerd_ct:raw_call(Raw, locker, make_ref(), {dirty_read, big})
                  || _ <- lists:seq(1, 400)],
        Row = measure("output flood (400 x 4 MB dirty_read, no reading)", H, Node,
                      fun() ->
                              ok = pipeline(S, Frames),
                              timer:sleep(seconds() * 1000),
                              ok = call(Node, {write, make_ref(), other, v, 10000})
                      end),
        gen_tcp:close(S),
        assert_honest(Row),
        %% at most the cap for this peer, plus the 4 MB value it reads
        assert_rss(Row, Cap + 4000000),
        ?assert(lockerd_ct:log_count(H, "not reading from " ++ Raw) >= 1),
        assert_log_clean(H)
      end).

%% --max-waiters 100: a node leaves 100 wait_for waiters (timeout
%% infinity), which fill the cap, then disconnects: its waiters go with it,
%% and an honest wait_for is admitted and answered.
waiters_leave_with_node(Config) ->
    with_lockerd("hst_wnode", ["--max-waiters", "100"], Config,
      fun(Node, H) ->
        PName = lockerd_ct:unique_name("hst_waiter"),
        P = lockerd_ct:start_peer(PName, #{}),
        PN = maps:get(node, P),
        Row = measure("100 infinity waiters, then their node leaves", H, Node,
                      fun() ->
                              [erpc:call(PN, erlang, spawn,
                                         [gen_server, call, [{locker, Node},
                                                             {wait_for, {gone, I}, infinity},
                                                             infinity]])
                               || I <- lists:seq(1, 100)],
                              timer:sleep(1000),
                              ?assert(lockerd_ct:wait_until(
                                        fun() -> waiters_full(Node) end, 5000)),
                              lockerd_ct:stop(P)
                      end),
        ok = honest_wait(Node, after_node),
        assert_honest(Row),
        ?assert(lockerd_ct:log_count(H, "100 waiters of " ++ atom_to_list(PN) ++
                                         " dropped") >= 1),
        assert_rss(Row, 0),
        assert_log_clean(H)
      end).

%% The same with rpc:call(Node, locker, wait_for, [K, infinity]): the rpc
%% waits end with the node that made them.
rpc_waiters_leave_with_node(Config) ->
    with_lockerd("hst_wrpc", ["--max-waiters", "100"], Config,
      fun(Node, H) ->
        P = lockerd_ct:start_peer(lockerd_ct:unique_name("hst_rpcwaiter"), #{}),
        PN = maps:get(node, P),
        Row = measure("100 infinity rpc waits, then their node leaves", H, Node,
                      fun() ->
                              [erpc:call(PN, erlang, spawn,
                                         [rpc, call, [Node, locker, wait_for,
                                                      [{rgone, I}, infinity], infinity]])
                               || I <- lists:seq(1, 100)],
                              timer:sleep(1000),
                              ?assert(lockerd_ct:wait_until(
                                        fun() -> waiters_full(Node) end, 5000)),
                              lockerd_ct:stop(P)
                      end),
        ok = honest_wait(Node, after_rpc_node),
        assert_honest(Row),
        ?assert(lockerd_ct:log_count(H, "100 rpc waits of " ++ atom_to_list(PN) ++
                                         " dropped") >= 1),
        assert_rss(Row, 0),
        assert_log_clean(H)
      end).

%% --max-waiters 100: 100 processes of this (connected) node wait and are
%% killed; their calls' monitors end, so their waiters go and the slots are
%% free again for an honest wait_for.
waiters_leave_with_process(Config) ->
    with_lockerd("hst_wproc", ["--max-waiters", "100"], Config,
      fun(Node, H) ->
        Row = measure("100 infinity waiters whose processes die", H, Node,
                      fun() ->
                              Ps = [spawn(gen_server, call, [{locker, Node},
                                                             {wait_for, {dead, I}, infinity},
                                                             infinity])
                                    || I <- lists:seq(1, 100)],
                              timer:sleep(1000),
                              ?assert(lockerd_ct:wait_until(
                                        fun() -> waiters_full(Node) end, 5000)),
                              [exit(Pid, kill) || Pid <- Ps]
                      end),
        ?assert(lockerd_ct:wait_until(fun() -> not waiters_full(Node) end, 5000)),
        ok = honest_wait(Node, after_process),
        assert_honest(Row),
        assert_log_clean(H)
      end).

%% true when the waiter cap refuses a new wait (an admitted one is never
%% answered: its 1 ms timeout passes).
waiters_full(Node) ->
    (catch gen_server:call({locker, Node}, {wait_for, {probe, make_ref()}, 1}, 300))
        =:= {error, {limit, waiters}}.

%% An honest wait_for, woken by a write.
honest_wait(Node, Key) ->
    Self = self(),
    W = spawn_link(fun() -> Self ! {self(), catch gen_server:call({locker, Node},
                                                                 {wait_for, Key, 10000}, 15000)}
                   end),
    timer:sleep(200),
    ok = call(Node, {write, make_ref(), Key, hello, 10000}),
    receive {W, R} -> ?assertEqual({ok, hello}, R), ok after 12000 -> error(not_woken) end.

%% Peer-chosen text in the log: a handshake name with a newline and a
%% forged line, one with an ESC sequence, one in UTF-8; then wrong-cookie
%% attempts as fast as one client makes them. The log holds no raw control
%% character and no forged line, and the failures take a bounded number
%% of lines with a count of those not logged.
log_clean(Config) ->
    with_lockerd("hst_log", [], Config,
      fun(Node, H) ->
        Host = list_to_binary(lockerd_ct:host()),
        Secs = seconds(),
        Row = measure("log injection + wrong-cookie flood", H, Node,
                      fun() ->
                              Forged = <<"evil\n12:00:00.000 [error] forged line\e[2J@", Host/binary>>,
                              handshake(Node, Forged, lockerd_ct:cookie(), {127, 0, 0, 1}),
                              handshake(Node, <<"esc\e[31mred@", Host/binary>>,
                                        lockerd_ct:cookie(), {127, 0, 0, 1}),
                              handshake(Node, <<"ünï@", Host/binary>>, "wrong", {127, 0, 0, 1}),
                              Bad = list_to_binary(raw_name("badcookie")),
                              Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
                              wrong_cookie_loop(Node, Bad, Deadline, 0)
                      end),
        Attempts = maps:get(result, Row),
        ct:log("wrong-cookie attempts: ~p", [Attempts]),
        ?assert(Attempts >= 50),
        assert_honest(Row),
        assert_log_clean(H),
        Bin = log_bin(H),
        ?assertEqual(nomatch, binary:match(Bin, <<"\n12:00:00.000 [error] forged">>)),
        %% a burst of 10, then at most about one line per second
        Failed = lockerd_ct:log_count(H, "failed"),
        ct:log("handshake failure lines: ~p for ~p attempts", [Failed, Attempts]),
        ?assert(Failed =< 10 + 2 * (Secs + 2)),
        ?assert(lockerd_ct:wait_until(
                  fun() -> lockerd_ct:log_count(H, "not logged") >= 1 end, 3000)),
        assert_rss(Row, 0)
      end).

wrong_cookie_loop(Node, Name, Deadline, N) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            handshake(Node, Name, "not_the_cookie", {127, 0, 0, 1}),
            wrong_cookie_loop(Node, Name, Deadline, N + 1);
        false ->
            N
    end.

%% No limit given, defaults sized for 256 MiB (--memory): the store is
%% capped at a quarter, output at an eighth, so 200,000 leases of 1 KB
%% (200 MB without a cap) and pipelined get_meta calls that are never read
%% leave the master within those bounds.
default_limits(Config) ->
    Mem = 256 bsl 20,
    with_lockerd("hst_defaults", ["--memory", integer_to_list(Mem)], Config,
      fun(Node, H) ->
        ?assert(lockerd_ct:log_count(H, "limits: --max-memory 67108864, --max-leases 262144, "
                                        "--max-waiters 32768, --max-out 16777216, "
                                        "--max-out-total 33554432") >= 1),
        Raw = raw_name("raw_leases"),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        D = drain(S),
        Val = binary:copy(<<"l">>, 1024),
        Row = measure("200k leases of 1 KB, defaults for 256 MiB", H, Node,
                      fun() ->
                              [lockerd_ct:raw_send(S, [lockerd_ct:raw_call(
                                                         Raw, locker, I,
                                                         {write, I, {lease, B, I}, Val, 600000})
                                                       || I <- lists:seq(1, 1000)])
                               || B <- lists:seq(1, 200)],
                              timer:sleep(1000)
                      end),
        D ! stop,
        gen_tcp:close(S),
        assert_honest(Row),
        assert_rss(Row, Mem div 4),
        ?assert(lockerd_ct:log_count(H, "--max-memory reached") >= 1),
        %% get_meta flood, never read: throttled at half of --max-out
        Raw2 = raw_name("raw_meta"),
        {ok, S2} = lockerd_ct:raw_handshake(Node, Raw2),
        Meta = lockerd_ct:raw_call(Raw2, locker, make_ref(), get_meta),
        Row2 = measure("pipelined get_meta, no reading, defaults for 256 MiB", H, Node,
                       fun() ->
                               Sender = blind_sender(S2, lists:duplicate(500000, Meta)),
                               timer:sleep(seconds() * 1000),
                               exit(Sender, kill)
                       end),
        gen_tcp:close(S2),
        assert_honest(Row2),
        assert_rss(Row2, Mem div 4 + Mem div 8),
        assert_log_clean(H)
      end).

%% One address (127.0.0.2) keeps 64 silent sockets open, refilling them:
%% it holds at most --max-handshakes-per-source (8) handshake slots, so a
%% peer from another address still gets in.
handshakes_per_source(Config) ->
    with_lockerd("hst_src", [], Config,
      fun(Node, H) ->
        Port = lockerd_ct:dist_port(Node),
        Raw = raw_name("raw_src"),
        Row = measure("64 silent sockets from one address", H, Node,
                      fun() ->
                              Socks = [begin
                                           {ok, S} = gen_tcp:connect(
                                                       {127, 0, 0, 1}, Port,
                                                       [binary, {active, false},
                                                        {ip, {127, 0, 0, 2}}], 5000),
                                           S
                                       end || _ <- lists:seq(1, 64)],
                              timer:sleep(500),
                              Closed = lockerd_ct:raw_closed(Socks, 0),
                              Honest = [lockerd_ct:raw_handshake(Node, Raw)
                                        || _ <- lists:seq(1, 3)],
                              lockerd_ct:raw_close_all(Socks),
                              {Closed, Honest}
                      end),
        {Closed, Honest} = maps:get(result, Row),
        ct:log("closed at once: ~p of 64; honest handshakes: ~p", [Closed, Honest]),
        ?assertEqual(64 - 8, Closed),
        [begin ?assertMatch({ok, _}, R), gen_tcp:close(element(2, R)) end || R <- Honest],
        assert_honest(Row),
        ?assert(lockerd_ct:log_count(H, "--max-handshakes-per-source") >= 1),
        ?assert(lockerd_ct:log_count(H, "--max-handshakes-per-source") =< 5),
        assert_rss(Row, 0),
        assert_log_clean(H)
      end).

%% {set_w, 100} with 3 masters and {set_nodes, [], []} from a member: both
%% are logged with the sending node, the old and new values and a warning
%% that no quorum is possible any more.
cluster_changes_logged(Config) ->
    Fake = [lockerd_ct:node_name(lockerd_ct:unique_name(N)) || N <- ["hst_m2", "hst_m3"]],
    with_lockerd("hst_meta", Fake, [], Config,
      fun(Node, H) ->
        Me = atom_to_list(node()),
        Row = measure("set_w 100, set_nodes [] []", H, Node,
                      fun() ->
                              ok = call(Node, {set_w, 100}),
                              ok = call(Node, {set_nodes, [], []}),
                              ok = call(Node, {set_nodes, [Node | Fake], []}),
                              ok = call(Node, {set_w, 2})
                      end),
        assert_honest(Row),
        ?assert(lockerd_ct:log_count(H, "write quorum set by " ++ Me ++ ": 1 -> 100 "
                                        "\\(3 masters\\)") >= 1),
        ?assert(lockerd_ct:log_count(H, "\\[warn\\] write quorum 100 exceeds the 3 masters "
                                        "\\(set by " ++ Me ++ "\\)") >= 1),
        ?assert(lockerd_ct:log_count(H, "nodes set by " ++ Me ++ ": masters \\[.*\\] -> "
                                        "\\[none\\]") >= 1),
        ?assert(lockerd_ct:log_count(H, "\\[warn\\] write quorum 100 exceeds the 0 masters") >= 1),
        ?assert(lockerd_ct:log_count(H, "write quorum set by " ++ Me ++ ": 100 -> 2") >= 1),
        assert_log_clean(H)
      end).

%%--------------------------------------------------------------------
%% Group floods: attacks already withstood, measured for the table

%% Random bytes on fresh connections, one after another.
garbage(Config) ->
    with_lockerd("hst_garbage", [], Config,
      fun(Node, H) ->
        Port = lockerd_ct:dist_port(Node),
        Row = measure("garbage bytes on new sockets", H, Node,
                      fun() -> timed(fun() ->
                                        case gen_tcp:connect({127, 0, 0, 1}, Port,
                                                             [binary, {active, false}], 2000) of
                                            {ok, S} ->
                                                gen_tcp:send(S, crypto:strong_rand_bytes(512)),
                                                gen_tcp:close(S);
                                            _ -> ok
                                        end
                                     end)
                      end),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H),
        ?assert(maps:get(log_lines, Row) =< 10 + 2 * (seconds() + 2))
      end).

%% 200 silent sockets at once, held until the handshake timeout.
slow_loris(Config) ->
    with_lockerd("hst_loris", ["--handshake-timeout", "1000"], Config,
      fun(Node, H) ->
        Row = measure("slow loris (200 silent sockets)", H, Node,
                      fun() ->
                              Socks = lockerd_ct:raw_sockets(Node, 200, none),
                              timer:sleep(1500),
                              lockerd_ct:raw_close_all(Socks)
                      end),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H),
        ?assert(maps:get(log_lines, Row) =< 40)
      end).

%% Connections opened and closed as fast as one client can.
conn_flood(Config) ->
    with_lockerd("hst_conns", [], Config,
      fun(Node, H) ->
        Port = lockerd_ct:dist_port(Node),
        Row = measure("connection flood (open/close)", H, Node,
                      fun() -> timed(fun() ->
                                        case gen_tcp:connect({127, 0, 0, 1}, Port,
                                                             [binary, {active, false}], 2000) of
                                            {ok, S} -> gen_tcp:close(S);
                                            _ -> ok
                                        end
                                     end)
                      end),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H),
        ?assert(maps:get(log_lines, Row) =< 10 + 2 * (seconds() + 2))
      end).

%% Malformed frames of many kinds on an authenticated connection.
malformed_frames(Config) ->
    with_lockerd("hst_malformed", [], Config,
      fun(Node, H) ->
        Raw = raw_name("raw_malformed"),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        D = drain(S),
        Frames = [<<112, 131, K, I:16>> || K <- lists:seq(0, 255), I <- [1, 2]] ++
                 [<<112, 131, 104, 4, 97, K, 119, 1, "x">> || K <- lists:seq(0, 30)],
        Row = measure("malformed frames", H, Node,
                      fun() -> timed(fun() -> lockerd_ct:raw_send(S, Frames) end) end),
        D ! stop,
        gen_tcp:close(S),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H),
        ?assert(maps:get(log_lines, Row) =< 20 + 2 * (seconds() + 2))
      end).

%% Monitors on the locker process, by name and by pid, never removed.
monitor_flood(Config) ->
    with_lockerd("hst_mon", [], Config,
      fun(Node, H) ->
        Raw = raw_name("raw_mon"),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        D = drain(S),
        From = lockerd_ct:raw_pid(Raw),
        Row = measure("monitor flood", H, Node,
                      fun() ->
                              timed(fun() ->
                                       lockerd_ct:raw_send(
                                         S, [[112, term_to_binary({19, From, locker, make_ref()})]
                                             || _ <- lists:seq(1, 1000)])
                                    end)
                      end),
        D ! stop,
        gen_tcp:close(S),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H)
      end).

%% spawn_request floods (erpc calls nobody waits for) from another node
%% (sharing this node's connection would queue the honest calls behind
%% the flood in this node's own output).
spawn_flood(Config) ->
    with_lockerd("hst_spawn", [], Config,
      fun(Node, H) ->
        P = lockerd_ct:start_peer(lockerd_ct:unique_name("hst_spawner"), #{}),
        Secs = seconds(),
        Row = measure("spawn_request flood (erpc casts)", H, Node,
                      fun() ->
                              erpc:call(maps:get(node, P), ?MODULE, spawn_casts,
                                        [Node, Secs], (Secs + 30) * 1000)
                      end),
        lockerd_ct:stop(P),
        assert_honest(Row),
        assert_rss(Row, 0),
        assert_log_clean(H)
      end).

%% On the flooding peer: erpc casts for Secs.
spawn_casts(Node, Secs) ->
    Deadline = erlang:monotonic_time(millisecond) + Secs * 1000,
    spawn_casts(Node, Deadline, 0).

spawn_casts(Node, Deadline, N) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            [erpc:cast(Node, locker, dirty_read, [k]) || _ <- lists:seq(1, 200)],
            spawn_casts(Node, Deadline, N + 200);
        false ->
            N
    end.

%% Run F again and again for seconds(); returns how many times.
timed(F) ->
    Deadline = erlang:monotonic_time(millisecond) + seconds() * 1000,
    timed(F, Deadline, 0).

timed(F, Deadline, N) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true -> F(), timed(F, Deadline, N + 1);
        false -> N
    end.
