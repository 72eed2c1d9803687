%% TLS distribution: lockerd with -proto_dist inet_tls against BEAM nodes
%% started with `erl -proto_dist inet_tls -ssl_dist_optfile F`.
%%
%% init_per_suite makes a PKI with the openssl CLI (test/make_certs.sh: a
%% CA, a good certificate naming this host, one naming another host, one
%% from an unrelated CA, one expired in 2020) and writes ssl_dist_optfiles
%% for the BEAM peers (verify_peer both ways, fail_if_no_peer_cert).
%%
%% This CT node speaks plain TCP distribution, so TLS peers are driven over
%% stdio (peer connection standard_io) and TLS lockerds are "ready" once
%% registered in epmd (lockerd_ct ready => epmd). Assertions are on what
%% the BEAM side gets (call results, pang, leases on BEAM servers), with
%% lockerd's log for the TLS version and the reason of each refusal.
-module(lockerd_tls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

suite() ->
    [{timetrap, {seconds, 150}}].

all() ->
    [beam_calls_tls13,
     beam_calls_tls12,
     lockerd_dials_beam,
     wrong_ca_refused,
     expired_refused,
     lockerd_cert_refused_by_beam,
     plain_peers_refused,
     plain_and_tls_clusters,
     client_library_over_tls,
     ticks_over_tls].

init_per_suite(Config) ->
    case lockerd_ct:lockerd_check() of
        {skip, _} = Skip ->
            Skip;
        ok ->
            lockerd_ct:ensure_epmd(),
            Dir = filename:join(?config(priv_dir, Config), "pki"),
            make_certs(Dir, lockerd_ct:host()),
            Opt = fun(Leaf, Vsns) -> optfile(Dir, Leaf, Vsns) end,
            [{pki, Dir},
             {opt13, Opt("node", ['tlsv1.3'])},
             {opt12, Opt("node", ['tlsv1.2'])},
             {opt, Opt("node", default)},
             {opt_both, Opt("node", ['tlsv1.3', 'tlsv1.2'])},
             {opt_wrong, Opt("wrong", default)},
             {opt_expired, Opt("expired", default)} | Config]
    end.

end_per_suite(_Config) ->
    ok.

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, Config) ->
    lockerd_ct:stop_local_server(),
    lockerd_ct:stop_all(lists:reverse(started())),
    erase(started),
    Config.

%%--------------------------------------------------------------------
%% PKI and nodes

make_certs(Dir, Host) ->
    Script = filename:join([lockerd_ct:repo_root(), "test", "make_certs.sh"]),
    Port = open_port({spawn_executable, Script},
                     [{args, [Dir, Host]}, exit_status, stderr_to_stdout, binary]),
    case collect(Port, <<>>) of
        {0, _} -> ct:log("PKI for ~s in ~s", [Host, Dir]);
        {Status, Out} -> ct:fail({make_certs_failed, Script, Status, Out})
    end.

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, <<Acc/binary, D/binary>>);
        {Port, {exit_status, S}} -> {S, Acc}
    after 60000 -> {timeout, Acc}
    end.

%% An ssl_dist_optfile: Leaf's certificate and key, the good CA,
%% verify_peer both ways; Vsns pins the TLS versions (default: OTP's).
optfile(Dir, Leaf, Vsns) ->
    F = fun(Name) -> filename:join(Dir, Name) end,
    Common = [{certfile, F(Leaf ++ ".pem")}, {keyfile, F(Leaf ++ ".key")},
              {cacertfile, F("ca.pem")}, {verify, verify_peer}]
        ++ [{versions, Vsns} || Vsns =/= default],
    Terms = [{server, Common ++ [{fail_if_no_peer_cert, true}]}, {client, Common}],
    File = F(lists:concat(["dist_", Leaf, "_", vsn_tag(Vsns), ".conf"])),
    ok = file:write_file(File, io_lib:format("~p.~n", [Terms])),
    File.

vsn_tag(default) -> "default";
vsn_tag(Vsns) -> string:join([atom_to_list(V) || V <- Vsns], "_").

tls_args(Config, Leaf) ->
    Dir = ?config(pki, Config),
    ["-proto_dist", "inet_tls",
     "--tls-cert", filename:join(Dir, Leaf ++ ".pem"),
     "--tls-key", filename:join(Dir, Leaf ++ ".key"),
     "--tls-ca", filename:join(Dir, "ca.pem")].

name(Base) ->
    lockerd_ct:unique_name(Base).

node_of(Name) ->
    lockerd_ct:node_name(Name).

track(H) ->
    put(started, [H | started()]),
    H.

started() ->
    case get(started) of
        undefined -> [];
        L -> L
    end.

%% A lockerd using TLS with certificate Leaf. Opts: start_lockerd/2's.
tls_lockerd(Config, Name, Leaf, Opts) ->
    track(lockerd_ct:start_lockerd(
            Name, maps:merge(#{log_dir => ?config(priv_dir, Config), ready => epmd,
                               extra_args => tls_args(Config, Leaf)}, Opts))).

plain_lockerd(Config, Name, Opts) ->
    track(lockerd_ct:start_lockerd(Name, maps:merge(#{log_dir => ?config(priv_dir, Config)},
                                                    Opts))).

%% A BEAM peer with TLS distribution configured by optfile Opt.
tls_peer(Config, Name, Opt) ->
    track(lockerd_ct:start_peer(Name, tls_peer_opts(Config, Opt))).

%% The same running lkr_server with meta {W, Masters, Replicas}.
tls_beam_node(Config, Name, Opt, Meta) ->
    track(lockerd_ct:start_beam_node(Name, Meta, tls_peer_opts(Config, Opt))).

tls_peer_opts(Config, Opt) ->
    #{connection => standard_io,
      args => ["-proto_dist", "inet_tls", "-ssl_dist_optfile", ?config(Opt, Config)]}.

on(H, M, F, A) ->
    lockerd_ct:peer_apply(H, M, F, A).

%% Wait for a line matching Re in a lockerd's log; fail with its tail.
wait_log(#{log := Log} = H, Re) ->
    case lockerd_ct:wait_until(fun() -> lockerd_ct:log_count(H, Re) > 0 end, 15000) of
        true ->
            ok;
        false ->
            {ok, Bin} = file:read_file(Log),
            ct:fail({no_log_line, Re, Log, Bin})
    end.

refused(Res) ->
    case Res of
        {'EXIT', {{nodedown, _}, _}} -> true;
        {'EXIT', {noconnection, _}} -> true;
        _ -> false
    end.

ok_state(Res) ->
    ?assertMatch({ok, _, _, _, _, _}, Res).

%%--------------------------------------------------------------------
%% Cases

%% BEAM -> lockerd over TLS 1.3: gen_server:call, multi_call, and the lkr
%% coordinator (votes by multi_call, commits) against two TLS lockerds;
%% a 4 MiB value goes in and comes back (many TLS records each way).
beam_calls_tls13(Config) ->
    beam_calls(Config, opt13, "TLSv1.3", "c13").

beam_calls_tls12(Config) ->
    beam_calls(Config, opt12, "TLSv1.2", "c12").

beam_calls(Config, Opt, Vsn, Tag) ->
    [N1, N2, NC] = [name(B ++ Tag) || B <- ["tls_a_", "tls_b_", "tls_client_"]],
    Masters = [node_of(N1), node_of(N2)],
    [H1, H2] = [tls_lockerd(Config, N, "node", #{masters => Masters, w => 2}) || N <- [N1, N2]],
    C = tls_beam_node(Config, NC, Opt, {2, Masters, []}),
    [L1, L2] = Masters,
    ok_state(on(C, gen_server, call, [{locker, L1}, get_debug_state, 5000])),
    {Replies, Bad} = on(C, gen_server, multi_call, [Masters, locker, get_debug_state, 5000]),
    ?assertEqual([], Bad),
    ?assertEqual(Masters, lists:sort([N || {N, {ok, _, _, _, _, _}} <- Replies])),
    Key = {tls_key, Tag},
    ?assertEqual({ok, 2, 2, 2}, on(C, lkr, lock, [Key, Vsn, 10000])),
    [?assertEqual({ok, Vsn}, on(C, lockerd_ct, lease_on, [L, Key])) || L <- [L1, L2]],
    ?assertEqual({ok, 2, 2, 2}, on(C, lkr, release, [Key, Vsn])),
    ?assertEqual(not_found, on(C, lockerd_ct, lease_on, [L2, Key])),
    Big = list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, 4 bsl 20)]),
    ?assertEqual(ok, on(C, gen_server, call, [{locker, L1}, {write, make_ref(), big, Big, 30000},
                                              30000])),
    ?assertEqual({ok, Big}, on(C, lockerd_ct, lease_on, [L1, big])),
    %% what was negotiated, as each lockerd saw it
    Peer = atom_to_list(maps:get(node, C)),
    [wait_log(H, "connected from " ++ Peer ++ " \\(" ++ Vsn ++ " ") || H <- [H1, H2]].

%% lockerd -> BEAM over TLS: lockerd's coordinator (rpc locker:lock on
%% lockerd) dials two TLS BEAM masters, one accepting TLS 1.3 only and one
%% TLS 1.2 only, and lockerd pushes its transaction log to a TLS BEAM
%% replica that only lockerd feeds. A TLS BEAM client also locks through
%% all three masters with lkr.
lockerd_dials_beam(Config) ->
    [NL, NB1, NB2, NR, NC] = [name(B) || B <- ["tls_lkd", "tls_bm1", "tls_bm2", "tls_repl",
                                                "tls_cli"]],
    Masters = lists:sort([node_of(N) || N <- [NL, NB1, NB2]]),
    R = node_of(NR),
    B1 = tls_beam_node(Config, NB1, opt13, {2, Masters, []}),
    B2 = tls_beam_node(Config, NB2, opt12, {2, Masters, []}),
    Rep = tls_beam_node(Config, NR, opt, {2, Masters, [R]}),
    L = tls_lockerd(Config, NL, "node", #{masters => Masters, replicas => [R], w => 2,
                                            push_interval => 100}),
    C = tls_beam_node(Config, NC, opt_both, {2, Masters, []}),
    LNode = node_of(NL),
    %% lockerd coordinates: it must dial both BEAM masters itself
    ?assertEqual({ok, 2, 3, 3}, on(C, rpc, call, [LNode, locker, lock, [k1, v1, 30000]])),
    [?assertEqual({ok, v1}, on(B, lkr_server, lease, [k1])) || B <- [B1, B2]],
    [wait_log(L, "connected to " ++ atom_to_list(maps:get(node, B)) ++ " \\(" ++ Vsn ++ " ")
     || {B, Vsn} <- [{B1, "TLSv1.3"}, {B2, "TLSv1.2"}]],
    %% the replica hears of it from lockerd only
    ?assertEqual({ok, v1}, lockerd_ct:wait_value(fun() -> on(Rep, lkr_server, lease, [k1]) end,
                                                 {ok, v1}, 10000)),
    wait_log(L, "connected to " ++ atom_to_list(R) ++ " \\(TLSv1"),
    %% a BEAM client's quorum over lockerd and BEAM masters alike
    ?assertEqual({ok, 2, 3, 3}, on(C, lkr, lock, [k2, v2, 10000])),
    ?assertEqual({ok, v2}, on(C, lockerd_ct, lease_on, [LNode, k2])).

%% A certificate from an unrelated CA is refused both ways: the BEAM
%% node cannot reach lockerd (pang), and lockerd's pushes to it (it is a
%% replica) fail; honest TLS peers are served meanwhile.
wrong_ca_refused(Config) ->
    refused_both_ways(Config, opt_wrong, "wrong",
                      "peer certificate refused: unable to get local issuer certificate").

%% The same for a certificate that expired in 2020.
expired_refused(Config) ->
    refused_both_ways(Config, opt_expired, "expd",
                      "peer certificate refused: certificate has expired").

refused_both_ways(Config, BadOpt, Tag, Reason) ->
    [NL, NBad, NGood] = [name(B ++ Tag) || B <- ["tls_lkd_", "tls_bad_", "tls_good_"]],
    LNode = node_of(NL),
    BadNode = node_of(NBad),
    L = tls_lockerd(Config, NL, "node", #{masters => [LNode], replicas => [BadNode], w => 1,
                                            push_interval => 100}),
    Bad = tls_beam_node(Config, NBad, BadOpt, {1, [LNode], [BadNode]}),
    Good = tls_peer(Config, NGood, opt),
    %% in: the bad node calls lockerd
    Res = on(Bad, lockerd_ct, try_call, [{locker, LNode}, get_debug_state, 5000]),
    ct:log("call from a node with a bad certificate: ~p", [Res]),
    ?assert(refused(Res)),
    ?assertEqual(pang, on(Bad, net_adm, ping, [LNode])),
    wait_log(L, "connection from \\(unnamed peer\\) \\[127\\.0\\.0\\.1\\] failed: TLS handshake failed: " ++ Reason),
    %% out: a write on lockerd is pushed to the bad replica, which is refused
    ?assertEqual(ok, on(Good, gen_server, call,
                        [{locker, LNode}, {write, make_ref(), k, v, 30000}, 5000])),
    wait_log(L, "connection to " ++ atom_to_list(BadNode) ++
                 " failed: TLS handshake failed: " ++ Reason),
    ?assertEqual({error, not_found}, on(Bad, lkr_server, lease, [k])),
    ?assertNot(lists:member(LNode, on(Bad, erlang, nodes, [connected]))),
    %% the good peer is still served
    ?assertEqual({ok, v}, on(Good, lockerd_ct, lease_on, [LNode, k])).

%% BEAM clients check lockerd's certificate too: an expired one, and one
%% that does not name this host, get pang; lockerd logs the alert.
lockerd_cert_refused_by_beam(Config) ->
    [NE, NO, NC] = [name(B) || B <- ["tls_lkd_expired", "tls_lkd_other", "tls_beam_chk"]],
    E = tls_lockerd(Config, NE, "expired", #{masters => [node_of(NE)], w => 1}),
    O = tls_lockerd(Config, NO, "other", #{masters => [node_of(NO)], w => 1}),
    C = tls_peer(Config, NC, opt),
    ?assertEqual(pang, on(C, net_adm, ping, [node_of(NE)])),
    ?assertEqual(pang, on(C, net_adm, ping, [node_of(NO)])),
    wait_log(E, "alert from the peer: .*certificate expired .*refused our certificate"),
    wait_log(O, "TLS handshake failed: alert from the peer"),
    ?assert(refused(on(C, lockerd_ct, try_call, [{locker, node_of(NO)}, get_debug_state, 5000]))).

%% Plain TCP peers and TLS do not mix, and a refusal does not disturb
%% anyone else: this (plain) node cannot reach a TLS lockerd, which keeps
%% serving TLS peers and, dialling a plain node, gives up; a TLS peer
%% cannot reach a plain lockerd.
plain_peers_refused(Config) ->
    [NT, NP, NC] = [name(B) || B <- ["tls_lkd_mix", "plain_lkd_mix", "tls_cli_mix"]],
    T = tls_lockerd(Config, NT, "node", #{masters => [node_of(NT)], replicas => [node()],
                                            w => 1, push_interval => 100}),
    P = plain_lockerd(Config, NP, #{masters => [node_of(NP)], w => 1}),
    C = tls_peer(Config, NC, opt),
    TNode = node_of(NT),
    ?assertEqual(pang, net_adm:ping(TNode)),
    ?assert(refused(catch gen_server:call({locker, TNode}, get_debug_state, 5000))),
    wait_log(T, "failed: TLS handshake failed: .*does not speak TLS"),
    ok_state(on(C, gen_server, call, [{locker, TNode}, get_debug_state, 5000])),
    %% TLS lockerd -> this plain node (its replica): the hello goes nowhere
    ?assertEqual(ok, on(C, gen_server, call,
                        [{locker, TNode}, {write, make_ref(), k, v, 30000}, 5000])),
    wait_log(T, "connection to " ++ atom_to_list(node()) ++ " failed: TLS handshake failed"),
    ?assertNot(lists:member(TNode, nodes(connected))),
    %% TLS peer -> plain lockerd
    ?assertEqual(pang, on(C, net_adm, ping, [node_of(NP)])),
    wait_log(P, "opened with a TLS hello"),
    ok_state(lockerd_ct:debug_state(node_of(NP))),
    ok_state(on(C, gen_server, call, [{locker, TNode}, get_debug_state, 5000])).

%% A plain cluster (this node as lkr client, two plain lockerds, a plain
%% BEAM master) and a TLS cluster (TLS client peer, two TLS lockerds, a
%% TLS BEAM master) side by side: the same key locked in each with its own
%% value, W = 2 of 3 in both, and neither can reach the other.
plain_and_tls_clusters(Config) ->
    PNames = [name(B) || B <- ["plain_m1", "plain_m2", "plain_bm"]],
    TNames = [name(B) || B <- ["tls_m1", "tls_m2", "tls_bm"]],
    PMasters = lists:sort([node_of(N) || N <- PNames]),
    TMasters = lists:sort([node_of(N) || N <- TNames]),
    [PN1, PN2, PNB] = PNames,
    [TN1, TN2, TNB] = TNames,
    [plain_lockerd(Config, N, #{masters => PMasters, w => 2}) || N <- [PN1, PN2]],
    track(lockerd_ct:start_beam_node(PNB, {2, PMasters, []}, #{})),
    [tls_lockerd(Config, N, "node", #{masters => TMasters, w => 2}) || N <- [TN1, TN2]],
    tls_beam_node(Config, TNB, opt, {2, TMasters, []}),
    C = tls_beam_node(Config, name("tls_cli_cl"), opt, {2, TMasters, []}),
    lockerd_ct:start_local_server(2, PMasters, []),
    ?assertEqual({ok, 2, 3, 3}, lkr:lock(shared_key, plain_value, 10000)),
    ?assertEqual({ok, 2, 3, 3}, on(C, lkr, lock, [shared_key, tls_value, 10000])),
    [?assertEqual({ok, plain_value}, lockerd_ct:lease_on(N, shared_key)) || N <- PMasters],
    [?assertEqual({ok, tls_value}, on(C, lockerd_ct, lease_on, [N, shared_key]))
     || N <- TMasters],
    [?assertEqual(pang, net_adm:ping(N)) || N <- TMasters],
    [?assertEqual(pang, on(C, net_adm, ping, [N])) || N <- PMasters],
    ?assertEqual({ok, 2, 3, 3}, lkr:release(shared_key, plain_value)),
    ?assertEqual({ok, 2, 3, 3}, on(C, lkr, release, [shared_key, tls_value])).

%% The C client library over TLS, through lockerctl: a lock on two TLS
%% lockerds that a TLS BEAM peer then reads; with a certificate from the
%% wrong CA, or without TLS, the masters are unreachable (exit 6).
client_library_over_tls(Config) ->
    [N1, N2, NC] = [name(B) || B <- ["tls_lib1", "tls_lib2", "tls_lib_peer"]],
    Masters = [node_of(N1), node_of(N2)],
    [tls_lockerd(Config, N, "node", #{masters => Masters, w => 2}) || N <- [N1, N2]],
    C = tls_peer(Config, NC, opt),
    Ctl = fun(Leaf, Tls, Args) ->
                  TlsArgs = case Tls of
                                true -> tls_args(Config, Leaf);
                                false -> []
                            end,
                  run_ctl(["-setcookie", lockerd_ct:cookie(), "--listen", "127.0.0.1",
                           "--masters", string:join([atom_to_list(M) || M <- Masters], ",")]
                          ++ TlsArgs ++ Args)
          end,
    {0, Out} = Ctl("node", true, ["lock", "{c_key}", "<<\"from C\">>", "--lease", "30000"]),
    ?assertMatch({match, _}, re:run(Out, "^ok w=2 votes=2 commits=2")),
    [?assertEqual({ok, <<"from C">>}, on(C, lockerd_ct, lease_on, [M, {c_key}]))
     || M <- Masters],
    ?assertEqual({0, <<"<<\"from C\">>\n">>}, Ctl("node", true, ["read", "{c_key}"])),
    ?assertMatch({6, _}, Ctl("wrong", true, ["--timeout", "3000", "read", "{c_key}"])),
    ?assertMatch({6, _}, Ctl("node", false, ["--timeout", "3000", "read", "{c_key}"])).

ctl_bin() ->
    case os:getenv("LOCKERCTL_BIN") of
        Bin when is_list(Bin), Bin =/= "" -> Bin;
        _ -> lockerd_ct:tool_bin("lockerctl")
    end.

%% {ExitStatus, Stdout} of one lockerctl run.
run_ctl(Args) ->
    lockerd_ct:log("lockerctl ~s", [string:join(Args, " ")]),
    Port = open_port({spawn_executable, ctl_bin()},
                     [{args, Args}, binary, exit_status, use_stdio,
                      {env, [{"LOCKERD_MASTERS", false}, {"LOCKERD_REPLICAS", false}]}]),
    run_ctl_collect(Port, []).

run_ctl_collect(Port, Acc) ->
    receive
        {Port, {data, D}} ->
            run_ctl_collect(Port, [Acc, D]);
        {Port, {exit_status, S}} ->
            Out = iolist_to_binary(Acc),
            lockerd_ct:log("exit ~p:~n~s", [S, Out]),
            {S, Out}
    after 60000 ->
            catch port_close(Port),
            ct:fail({lockerctl_hung, iolist_to_binary(Acc)})
    end.

%% With --net-ticktime 4 on both sides, an idle TLS connection survives
%% three tick times: ticks go both ways inside TLS.
ticks_over_tls(Config) ->
    [NL, NP] = [name(B) || B <- ["tls_lkd_tick", "tls_ticker"]],
    LNode = node_of(NL),
    tls_lockerd(Config, NL, "node", #{masters => [LNode], w => 1, net_ticktime => 4}),
    P = track(lockerd_ct:start_peer(NP, (tls_peer_opts(Config, opt))#{net_ticktime => 4})),
    Res = on(P, lockerd_ct, idle_watch, [LNode, 12000]),
    ct:log("idle watch: ~p", [Res]),
    ?assertEqual({quiet, ok, true}, Res).
