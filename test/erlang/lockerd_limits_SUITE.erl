%% Hostile or broken peers against lockerd's limits. Every case starts a
%% lockerd with the limit under test set low, runs the attack, and checks
%% that an honest BEAM caller (this test node, already connected) keeps
%% being answered promptly meanwhile: a probe calls get_debug_state every
%% 20 ms and records failures and the slowest answer.
%%
%% Attacks: silent sockets (slow loris) against --handshake-timeout and
%% --max-handshakes, --max-conns, a peer that floods calls and never reads
%% (--max-out), malformed frames (log rate limit), and the store's caps
%% (--max-leases, --max-memory, --max-waiters); plus the allowlist
%% (--allow), in both directions.
-module(lockerd_limits_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

%% The slowest honest answer tolerated while an attack runs. Generous:
%% the machine may be shared with a benchmark; a starved loop would show
%% up as seconds or as failures.
-define(PROMPT_MS, 1500).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, limits}].

groups() ->
    [{limits, [], [slow_loris, handshake_cap, max_conns, never_reads, malformed_frames,
                   malformed_requests, lease_cap, memory_cap, waiter_cap, allowlist]}].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(limits, Config) ->
    case lockerd_ct:lockerd_check() of
        ok -> Config;
        {skip, _} = Skip -> Skip
    end.

end_per_group(_Group, _Config) ->
    ok.

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    lockerd_ct:stop_local_server(),
    ok.

%%--------------------------------------------------------------------
%% Helpers

%% Run Fun(Node, Handle) against a lockerd master of its own (w 1)
%% started with extra command-line arguments; stopped whatever happens.
with_lockerd(Base, Extra, Config, Fun) ->
    Name = lockerd_ct:unique_name(Base),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config),
                                         masters => [Node], w => 1,
                                         log_level => "info",
                                         extra_args => Extra}),
    try Fun(Node, H)
    after lockerd_ct:stop(H)
    end.

%% The honest caller, given time for a few calls before the attack starts.
probe(Node) ->
    P = lockerd_ct:probe_start(Node),
    timer:sleep(100),
    P.

%% ... and after it: then no failure, every answer prompt.
assert_prompt(Probe) ->
    timer:sleep(100),
    #{calls := Calls, failures := Failures, max_ms := Max, total_ms := Total,
      elapsed_ms := Elapsed} = lockerd_ct:probe_stop(Probe),
    %% The probe calls, then waits 20 ms: answered at once it makes
    %% Elapsed / 20 calls. At least half of that: its calls took 20 ms on
    %% average at most (timer jitter included) while the attack ran.
    Ideal = Elapsed / 20,
    ct:log("honest caller: ~p calls in ~p ms (~.1f at most), ~p ms in calls, "
           "slowest ~p ms, failures ~p", [Calls, Elapsed, Ideal, Total, Max, Failures]),
    ?assertEqual([], Failures),
    ?assert(Calls >= 0.5 * Ideal),
    ?assert(Max < ?PROMPT_MS).

call(Node, Req) ->
    gen_server:call({locker, Node}, Req, 5000).

%% A full lock cycle by hand (vote, commit, release) on a fresh key.
lock_cycle(Node) ->
    Key = {probe, make_ref()},
    Tag = make_ref(),
    ok = call(Node, {get_write_lock, Key, not_found, Tag}),
    ok = call(Node, {write, Tag, Key, v, 10000}),
    ok = call(Node, {release, Key, v, make_ref()}),
    ok.

%%--------------------------------------------------------------------
%% Connection limits

%% 200 sockets that connect and send nothing or one byte: at most
%% --max-handshakes (64) are held, the rest are closed at once; the held
%% ones are closed after --handshake-timeout. Refusals are logged in a
%% bounded number of lines.
slow_loris(Config) ->
    with_lockerd("lkd_loris", ["--handshake-timeout", "1500"], Config,
      fun(Node, H) ->
        Probe = probe(Node),
        T0 = erlang:monotonic_time(millisecond),
        Silent = lockerd_ct:raw_sockets(Node, 100, none),
        OneByte = lockerd_ct:raw_sockets(Node, 100, <<0>>),
        Socks = Silent ++ OneByte,
        ok = lock_cycle(Node),
        timer:sleep(300),
        Early = lockerd_ct:raw_closed(Socks, 0),
        ct:log("closed soon after connecting: ~p of 200", [Early]),
        ?assert(Early >= 200 - 64),
        ?assert(Early < 200),
        ok = lock_cycle(Node),
        %% the held ones go within the timeout plus the periodic check (<= 1 s)
        ?assert(lockerd_ct:wait_until(fun() -> lockerd_ct:raw_closed(Socks, 0) =:= 200 end, 5000)),
        Elapsed = erlang:monotonic_time(millisecond) - T0,
        ct:log("all 200 closed after ~p ms", [Elapsed]),
        ?assert(Elapsed >= 1500),
        assert_prompt(Probe),
        lockerd_ct:raw_close_all(Socks),
        ok = lock_cycle(Node),
        Refusals = lockerd_ct:log_count(H, "refus"),
        Unnamed = lockerd_ct:log_count(H, "unnamed peer"),
        ct:log("log lines: ~p refusal, ~p unnamed-peer failure", [Refusals, Unnamed]),
        ?assert(Refusals >= 1),
        ?assert(Refusals =< 10),
        ?assert(Unnamed =< 20),
        ok
      end).

%% --max-handshakes 4: of 10 silent sockets 6 are refused at once, 4
%% wait for the (long) handshake timeout; freeing them admits new peers.
handshake_cap(Config) ->
    with_lockerd("lkd_hscap", ["--max-handshakes", "4"], Config,
      fun(Node, H) ->
        Probe = probe(Node),
        Socks = lockerd_ct:raw_sockets(Node, 10, none),
        timer:sleep(500),
        ?assertEqual(6, lockerd_ct:raw_closed(Socks, 0)),
        %% a new peer is refused too while the cap is full ...
        Raw = "raw_hs_" ++ os:getpid() ++ "@" ++ lockerd_ct:host(),
        ?assertMatch({error, _, _}, lockerd_ct:raw_handshake(Node, Raw)),
        ok = lock_cycle(Node),
        assert_prompt(Probe),
        ?assert(lockerd_ct:log_count(H, "--max-handshakes") >= 1),
        %% ... and admitted once the slots are free
        lockerd_ct:raw_close_all(Socks),
        timer:sleep(200),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        gen_tcp:close(S),
        ok
      end).

%% --max-conns 3: this node holds one; of 10 silent sockets 2 are taken in,
%% 8 refused; the established connection keeps working.
max_conns(Config) ->
    with_lockerd("lkd_conns", ["--max-conns", "3"], Config,
      fun(Node, H) ->
        Probe = probe(Node),
        Socks = lockerd_ct:raw_sockets(Node, 10, none),
        timer:sleep(500),
        ?assertEqual(8, lockerd_ct:raw_closed(Socks, 0)),
        ok = lock_cycle(Node),
        assert_prompt(Probe),
        ?assert(lockerd_ct:log_count(H, "--max-conns") >= 1),
        ?assert(lockerd_ct:log_count(H, "--max-conns") =< 5),
        lockerd_ct:raw_close_all(Socks),
        timer:sleep(200),
        Raw = "raw_conns_" ++ os:getpid() ++ "@" ++ lockerd_ct:host(),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        gen_tcp:close(S),
        ok
      end).

%% A peer that completes the handshake, floods calls with large replies
%% and never reads: lockerd stops reading from it once half of --max-out
%% is queued for it (the calls it sent wait unanswered), keeps serving
%% honest callers, and serves the rest once the peer reads again.
never_reads(Config) ->
    with_lockerd("lkd_noread", ["--max-out", "65536"], Config,
      fun(Node, H) ->
        Big = binary:copy(<<"x">>, 60000),
        ok = call(Node, {write, make_ref(), big_key, Big, 600000}),
        Raw = "raw_noread_" ++ os:getpid() ++ "@" ++ lockerd_ct:host(),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        Probe = probe(Node),
        %% 24 MB of replies: more than the kernel's socket buffers hold
        N = 400,
        Frames = [lockerd_ct:raw_call(Raw, locker, make_ref(), {dirty_read, big_key})
                  || _ <- lists:seq(1, N)],
        lockerd_ct:raw_send(S, Frames),
        ?assert(lockerd_ct:wait_until(
                  fun() -> lockerd_ct:log_count(H, "not reading from " ++ Raw) >= 1 end,
                  10000)),
        ok = lock_cycle(Node),
        assert_prompt(Probe),
        %% reading again: every call is answered, the connection stays
        ?assertEqual(ok, count_replies(S, N, 60000)),
        gen_tcp:close(S),
        ?assertMatch({ok, Big}, call(Node, {dirty_read, big_key})),
        ok
      end).

%% Bytes of N replies of Size bytes each arrive (read raw: {packet, 4}
%% reads of large frames are slow).
count_replies(S, N, Size) ->
    ok = inet:setopts(S, [{packet, raw}]),
    recv_bytes(S, N * Size).

recv_bytes(S, Want) when Want > 0 ->
    case gen_tcp:recv(S, 0, 10000) of
        {ok, B} -> recv_bytes(S, Want - byte_size(B));
        {error, _} = E -> E
    end;
recv_bytes(_S, _) ->
    ok.

%% 1000 malformed frames on an authenticated connection: the connection
%% stays (malformed input is ignored), the log gets the first 10 warnings
%% and a count, and honest callers are served throughout.
malformed_frames(Config) ->
    with_lockerd("lkd_malformed", [], Config,
      fun(Node, H) ->
        Raw = "raw_bad_" ++ os:getpid() ++ "@" ++ lockerd_ct:host(),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        Probe = probe(Node),
        %% in waves, so that the honest caller's calls interleave
        [begin
             lockerd_ct:raw_send(S, [<<112, 131, 255, I:16>> || I <- lists:seq(1, 100)]),
             timer:sleep(20)
         end || _ <- lists:seq(1, 10)],
        %% still connected and answered: a call over the same raw connection
        Tag = make_ref(),
        lockerd_ct:raw_send(S, [lockerd_ct:raw_call(Raw, locker, Tag, summary)]),
        ?assertMatch({ok, _}, gen_tcp:recv(S, 0, 5000)),
        ok = lock_cycle(Node),
        assert_prompt(Probe),
        gen_tcp:close(S),
        ?assert(lockerd_ct:wait_until(
                  fun() -> lockerd_ct:log_count(H, "suppressed \\(rate limit\\)") >= 1 end, 5000)),
        Lines = lockerd_ct:log_count(H, "malformed frame"),
        ct:log("malformed-frame warnings logged: ~p", [Lines]),
        ?assert(Lines >= 10),
        ?assert(Lines =< 13),
        ok
      end).

%% Calls in well-formed envelopes whose request is not a well-formed
%% term: dropped with a warning, never answered (an unknown_request reply
%% would echo the bad bytes, and a BEAM peer drops a connection that sends
%% it a malformed term). Valid requests after them on the same connection
%% are answered in order, an unknown one with unknown_request.
malformed_requests(Config) ->
    with_lockerd("lkd_badreq", [], Config,
      fun(Node, H) ->
        Raw = "raw_badreq_" ++ os:getpid() ++ "@" ++ lockerd_ct:host(),
        {ok, S} = lockerd_ct:raw_handshake(Node, Raw),
        Bad = [<<104, 2, 119, 5, "write", 255>>,              % no such term tag
               <<104, 5, 119, 5, "write", 97, 1>>,            % arity beyond the bytes
               <<119, 3, "get", 0>>,                          % a byte after the term
               <<104, 2, 119, 1, "x", 119, 2, 16#C0, 16#80>>,  % overlong UTF-8 in an atom
               <<104, 2, 119, 1, "x", 109, 0, 0, 0, 9, 1>>],   % binary shorter than said
        lockerd_ct:raw_send(S, [bad_call(Raw, B) || B <- Bad]),
        T1 = make_ref(),
        T2 = make_ref(),
        lockerd_ct:raw_send(S, [lockerd_ct:raw_call(Raw, locker, T1, {no_such_request, 1}),
                                lockerd_ct:raw_call(Raw, locker, T2, summary)]),
        ?assertEqual({T1, {error, {unknown_request, {no_such_request, 1}}}}, recv_reply(S)),
        ?assertMatch({T2, [{write_locks, 0}, {leases, 0}]}, recv_reply(S)),
        gen_tcp:close(S),
        ?assert(lockerd_ct:wait_until(
                  fun() -> lockerd_ct:log_count(H, "malformed request") >= length(Bad) end, 5000)),
        ok
      end).

%% REG_SEND to locker with {'$gen_call', {From, Tag}, Req} around the raw
%% request bytes ReqBytes.
bad_call(Raw, ReqBytes) ->
    From = lockerd_ct:raw_pid(Raw),
    <<131, PidBytes/binary>> = term_to_binary(From),
    <<131, TagBytes/binary>> = term_to_binary(make_ref()),
    [112, term_to_binary({6, From, '', locker}),
     <<131, 104, 3, 119, 9, "$gen_call", 104, 2, PidBytes/binary, TagBytes/binary,
       ReqBytes/binary>>].

%% The next message frame on a raw connection (ticks skipped): its payload.
recv_reply(S) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, <<>>} ->
            recv_reply(S);
        {ok, <<112, Rest/binary>>} ->
            {_Ctrl, Used} = binary_to_term(Rest, [used]),
            binary_to_term(binary:part(Rest, Used, byte_size(Rest) - Used))
    end.

%%--------------------------------------------------------------------
%% Store limits

%% --max-leases 3: the fourth lock fails cleanly (the vote is
%% {error, {limit, leases}}, the coordinator answers no_quorum, nothing is
%% written); a bare commit without our vote is refused alike; existing
%% leases stay extendable and releasable, which makes room again.
lease_cap(Config) ->
    with_lockerd("lkd_leasecap", ["--max-leases", "3"], Config,
      fun(Node, H) ->
        lockerd_ct:start_local_server(1, [Node], []),
        Probe = probe(Node),
        [?assertMatch({ok, 1, 1, 1}, lkr:lock({k, I}, v, 60000)) || I <- [1, 2, 3]],
        ?assertEqual({error, no_quorum}, lkr:lock({k, 4}, v, 60000)),
        ?assertEqual({error, {limit, leases}},
                     call(Node, {get_write_lock, {k, 4}, not_found, make_ref()})),
        ?assertEqual({error, {limit, leases}}, call(Node, {write, make_ref(), {k, 5}, v, 1000})),
        ?assertEqual([], lockerd_ct:write_locks(Node)),
        ?assertEqual([{k, 1}, {k, 2}, {k, 3}], lists:sort([K || {K, _, _} <- lockerd_ct:leases(Node)])),
        %% existing keys: extend, update, release
        ?assertEqual(ok, lkr:extend_lease({k, 1}, v, 60000)),
        ?assertMatch({ok, 1, 1, 1}, lkr:update({k, 2}, v, v2)),
        ?assertMatch({ok, 1, 1, 1}, lkr:release({k, 3}, v)),
        ?assertMatch({ok, 1, 1, 1}, lkr:lock({k, 4}, v, 60000)),
        assert_prompt(Probe),
        ?assert(lockerd_ct:log_count(H, "--max-leases reached") >= 1),
        ?assert(lockerd_ct:log_count(H, "--max-leases reached") =< 4),
        ok
      end).

%% --max-memory 1 MiB: a 2 MB value is admitted (the store was below the
%% cap), then new keys are refused with {error, {limit, memory}} until it
%% is released.
memory_cap(Config) ->
    with_lockerd("lkd_memcap", ["--max-memory", "1048576"], Config,
      fun(Node, H) ->
        lockerd_ct:start_local_server(1, [Node], []),
        Probe = probe(Node),
        Big = binary:copy(<<"m">>, 2000000),
        ?assertMatch({ok, 1, 1, 1}, lkr:lock(big, Big, 60000)),
        ?assertEqual({error, no_quorum}, lkr:lock(small, v, 60000)),
        ?assertEqual({error, {limit, memory}},
                     call(Node, {get_write_lock, small, not_found, make_ref()})),
        ?assertEqual(ok, lkr:extend_lease(big, Big, 60000)),
        ?assertMatch({ok, 1, 1, 1}, lkr:release(big, Big)),
        ?assertMatch({ok, 1, 1, 1}, lkr:lock(small, v, 60000)),
        assert_prompt(Probe),
        ?assert(lockerd_ct:log_count(H, "--max-memory reached") >= 1),
        ok
      end).

%% --max-waiters 3: the fourth wait is answered {error, {limit, waiters}}
%% at once; a woken waiter makes room.
waiter_cap(Config) ->
    with_lockerd("lkd_waitcap", ["--max-waiters", "3"], Config,
      fun(Node, H) ->
        Probe = probe(Node),
        Self = self(),
        [spawn_link(fun() -> Self ! {waited, I, catch call_long(Node, {wait_for, {w, I}, 20000})} end)
         || I <- [1, 2, 3]],
        timer:sleep(500),
        T0 = erlang:monotonic_time(millisecond),
        ?assertEqual({error, {limit, waiters}}, call(Node, {wait_for, {w, 4}, 20000})),
        ok = call(Node, {write, make_ref(), held, v, 60000}),
        ?assertEqual({error, {limit, waiters}}, call(Node, {wait_for_release, held, 20000})),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
        ok = call(Node, {write, make_ref(), {w, 1}, hello, 60000}),
        receive {waited, 1, R} -> ?assertEqual({ok, hello}, R) after 5000 -> ct:fail(not_woken) end,
        %% room for one again: this wait is admitted and answered by a write
        spawn_link(fun() -> Self ! {waited, 4, catch call_long(Node, {wait_for, {w, 4}, 20000})} end),
        timer:sleep(300),
        ok = call(Node, {write, make_ref(), {w, 4}, again, 60000}),
        receive {waited, 4, R4} -> ?assertEqual({ok, again}, R4) after 5000 -> ct:fail(not_admitted) end,
        assert_prompt(Probe),
        ?assert(lockerd_ct:log_count(H, "--max-waiters reached") >= 1),
        ok
      end).

call_long(Node, Req) ->
    gen_server:call({locker, Node}, Req, 25000).

%%--------------------------------------------------------------------
%% Allowlist

%% --allow: this node and one peer. Another peer cannot connect (pang) and
%% the log names it; the allowed one can. lockerd does not dial a node off
%% the list either (a replica here), and says so.
allowlist(Config) ->
    AllowedName = lockerd_ct:unique_name("allowed"),
    DeniedName = lockerd_ct:unique_name("denied"),
    Allowed = lockerd_ct:node_name(AllowedName),
    Denied = lockerd_ct:node_name(DeniedName),
    Name = lockerd_ct:unique_name("lkd_allow"),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config),
                                         masters => [Node], replicas => [Denied], w => 1,
                                         log_level => "info",
                                         extra_args => ["--allow", atom_to_list(node()),
                                                        "--allow", atom_to_list(Allowed)]}),
    PA = lockerd_ct:start_peer(AllowedName, #{}),
    PD = lockerd_ct:start_peer(DeniedName, #{}),
    try
        Probe = probe(Node),
        ?assertEqual(pang, erpc:call(Denied, net_adm, ping, [Node], 15000)),
        ?assertEqual(pong, erpc:call(Allowed, net_adm, ping, [Node], 15000)),
        ?assertMatch({ok, _, _, _, _, _},
                     erpc:call(Allowed, gen_server, call, [{locker, Node}, get_debug_state, 5000])),
        ?assert(lockerd_ct:log_count(H, "refusing connection from " ++ atom_to_list(Denied)) >= 1),
        %% outgoing: a write makes lockerd push to its replica, which it
        %% must not dial
        ok = lock_cycle(Node),
        ?assert(lockerd_ct:wait_until(
                  fun() ->
                          lockerd_ct:log_count(H, "not connecting to " ++ atom_to_list(Denied)) >= 1
                  end, 5000)),
        ?assertNot(lists:member(Node, erpc:call(Denied, erlang, nodes, [hidden]))),
        ?assert(lockerd_ct:log_count(H, atom_to_list(Denied) ++
                                         " is a master or replica but not on the --allow list") >= 1),
        assert_prompt(Probe)
    after
        lockerd_ct:stop(PA),
        lockerd_ct:stop(PD),
        lockerd_ct:stop(H)
    end.
