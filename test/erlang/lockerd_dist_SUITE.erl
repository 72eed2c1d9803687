%% Distribution behaviour of a server node seen from real BEAM peers:
%% cookie check, monitors on names that do not exist, frame size limit,
%% ticks. Group lockerd runs everything against a lockerd started with
%% --max-frame 65536; group beam runs the cases that apply to any node
%% against a BEAM node running lkr_server, to validate them.
-module(lockerd_dist_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(MAX_FRAME, 65536).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, lockerd}, {group, beam}].

groups() ->
    Common = [ping_pong, wrong_cookie_refused, noproc_at_once],
    [{lockerd, [], Common ++ [lockerd_is_hidden, oversize_frame, ticks_keep_connection]},
     {beam, [], Common}].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(lockerd, Config) ->
    case lockerd_ct:lockerd_check() of
        ok ->
            Name = lockerd_ct:unique_name("lkd_dist"),
            Node = lockerd_ct:node_name(Name),
            H = lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config),
                                                 masters => [Node], w => 1,
                                                 max_frame => ?MAX_FRAME}),
            [{target, Node}, {handle, H} | Config];
        {skip, _} = Skip ->
            Skip
    end;
init_per_group(beam, Config) ->
    Name = lockerd_ct:unique_name("beam_dist"),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_beam_node(Name, {1, [Node], []}, #{}),
    [{target, Node}, {handle, H} | Config].

end_per_group(_Group, Config) ->
    lockerd_ct:stop(?config(handle, Config)).

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    ok.

target(Config) ->
    ?config(target, Config).

assert_serving(Node) ->
    ?assertMatch({ok, _, _, _, _, _}, gen_server:call({locker, Node}, get_debug_state, 5000)).

%%--------------------------------------------------------------------
%% Cases

%% net_adm:ping is a call to net_kernel {is_auth, Node} answered yes.
ping_pong(Config) ->
    ?assertEqual(pong, net_adm:ping(target(Config))),
    assert_serving(target(Config)).

%% A node with another cookie cannot talk to the server at all.
wrong_cookie_refused(Config) ->
    Node = target(Config),
    P = lockerd_ct:start_peer(lockerd_ct:unique_name("badcookie"),
                              #{cookie => "definitely_not_the_cookie",
                                connection => standard_io}),
    #{peer := Peer} = P,
    try
        Res = peer:call(Peer, lockerd_ct, try_call, [{locker, Node}, get_debug_state, 5000], 15000),
        ct:log("call with a wrong cookie: ~p", [Res]),
        ?assert(case Res of
                    {'EXIT', {{nodedown, Node}, _}} -> true;
                    {'EXIT', {noconnection, _}} -> true;
                    _ -> false
                end),
        ?assertEqual(pang, peer:call(Peer, net_adm, ping, [Node], 15000)),
        ?assertNot(lists:member(Node, peer:call(Peer, erlang, nodes, [connected], 15000)))
    after
        lockerd_ct:stop(P)
    end,
    assert_serving(Node).

%% A monitor on a name the node does not have fires at once with noproc.
noproc_at_once(Config) ->
    Node = target(Config),
    assert_serving(Node),
    T0 = erlang:monotonic_time(millisecond),
    Res = (catch gen_server:call({nosuch, Node}, x)),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:log("call to an unregistered name: ~p after ~p ms", [Res, Elapsed]),
    ?assertMatch({'EXIT', {noproc, _}}, Res),
    ?assert(Elapsed < 1000),
    T1 = erlang:monotonic_time(millisecond),
    ?assertEqual({[], [Node]}, gen_server:multi_call([Node], nosuch, x, 4000)),
    ?assert(erlang:monotonic_time(millisecond) - T1 < 1000),
    assert_serving(Node).

lockerd_is_hidden(Config) ->
    Node = target(Config),
    assert_serving(Node),
    ?assert(lists:member(Node, nodes(hidden))),
    ?assertNot(lists:member(Node, nodes())).

%% A frame above --max-frame closes that peer's connection only; the
%% other peer keeps being served, and the daemon says why in its log.
oversize_frame(Config) ->
    Node = target(Config),
    P1 = lockerd_ct:start_peer(lockerd_ct:unique_name("big_sender"), #{}),
    P2 = lockerd_ct:start_peer(lockerd_ct:unique_name("bystander"), #{}),
    #{node := N1} = P1,
    #{node := N2} = P2,
    try
        ?assertEqual([], erpc:call(N2, lockerd_ct, call_loop, [Node, 5, 10])),
        Parent = self(),
        Ref = make_ref(),
        spawn(fun() ->
                      Parent ! {Ref, catch erpc:call(N2, lockerd_ct, call_loop, [Node, 100, 20], 30000)}
              end),
        timer:sleep(200),
        {Res, Down} = erpc:call(N1, lockerd_ct, oversize_call, [Node, 1 bsl 20, 5000], 30000),
        ct:log("oversize call: ~p, ~p", [Res, Down]),
        ?assertMatch({'EXIT', {{nodedown, Node}, _}}, Res),
        ?assertEqual(nodedown, Down),
        receive
            {Ref, Bad} -> ?assertEqual([], Bad)
        after 30000 ->
                ct:fail(bystander_hung)
        end,
        %% the sender may come back with a normal connection
        ?assertEqual(ok, lockerd_ct:wait_value(
                           fun() ->
                                   {ok, _, _, _, _, _} =
                                       erpc:call(N1, gen_server, call,
                                                 [{locker, Node}, get_debug_state, 2000]),
                                   ok
                           end, ok, 10000)),
        assert_serving(Node),
        {ok, Log} = file:read_file(maps:get(log, ?config(handle, Config))),
        ?assertMatch({match, _}, re:run(Log, "frame", [caseless]))
    after
        lockerd_ct:stop(P1),
        lockerd_ct:stop(P2)
    end.

%% With --net-ticktime 4 on both sides, an idle connection survives three
%% tick times: the daemon answers the peer's ticks and sends its own.
ticks_keep_connection(Config) ->
    Name = lockerd_ct:unique_name("lkd_tick"),
    Node = lockerd_ct:node_name(Name),
    H = lockerd_ct:start_lockerd(Name, #{log_dir => ?config(priv_dir, Config),
                                         masters => [Node], w => 1, net_ticktime => 4}),
    %% controlled over stdio: a distribution link to this node (tick time
    %% 60 s) would not survive the peer's 4 s tick time
    P = lockerd_ct:start_peer(lockerd_ct:unique_name("ticker"),
                              #{net_ticktime => 4, connection => standard_io}),
    #{peer := Peer} = P,
    try
        Res = peer:call(Peer, lockerd_ct, idle_watch, [Node, 12000], 30000),
        ct:log("idle watch: ~p", [Res]),
        ?assertEqual({quiet, ok, true}, Res)
    after
        lockerd_ct:stop(P),
        lockerd_ct:stop(H)
    end.
