%% End-to-end tests of bin/lockerctl against three lockerd masters (W = 2).
%%
%% lockerctl runs as an OS process (LOCKERCTL_BIN, else <repo>/bin/lockerctl)
%% through a port; its --json output is decoded with the small JSON parser at
%% the end of this suite and asserted on field by field. What lockerctl
%% wrote is also checked from the BEAM side: rpc:call(Master, locker,
%% dirty_read, [Key]) on the masters must see it.
-module(lockerd_ctl_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(RUN_TIMEOUT, 30000).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [help, usage_errors, bad_term_syntax, {group, cluster}, {group, quiet},
     unreachable_cluster].

groups() ->
    [{cluster, [sequence],
      [lock_then_read, lock_contention, release, extend, update, status, watch_release,
       watch_timeout, set_w, set_nodes, wrong_cookie]},
     %% three masters in a long quiet period, as after a restart
     {quiet, [sequence], [recovering]}].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    case filelib:is_regular(ctl_bin()) of
        true -> Config;
        false -> {fail, "lockerctl not found at " ++ ctl_bin() ++ " (set LOCKERCTL_BIN)"}
    end.

end_per_suite(_Config) ->
    ok.

init_per_group(cluster, Config) ->
    start_group("ctl", #{log_level => "info"}, Config);
init_per_group(quiet, Config) ->
    start_group("ctlq", #{log_level => "info", extra_args => ["--quiet-period", "60000"]},
                Config).

start_group(Prefix, LOpts, Config) ->
    case lockerd_ct:lockerd_check() of
        ok ->
            Names = [lockerd_ct:unique_name(Prefix ++ integer_to_list(I)) || I <- [1, 2, 3]],
            Masters = [lockerd_ct:node_name(N) || N <- Names],
            Hs = lockerd_ct:start_nodes([{lockerd, N} || N <- Names], {2, Masters, []},
                                        #{log_dir => ?config(priv_dir, Config),
                                          lockerd_opts => LOpts}),
            [{handles, Hs}, {masters, Masters} | Config];
        {skip, _} = Skip ->
            Skip
    end.

end_per_group(_Group, Config) ->
    lockerd_ct:stop_all(?config(handles, Config)).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Running lockerctl

ctl_bin() ->
    case os:getenv("LOCKERCTL_BIN") of
        Bin when is_list(Bin), Bin =/= "" -> Bin;
        _ -> filename:join([lockerd_ct:repo_root(), "bin", "lockerctl"])
    end.

masters_arg(Config) ->
    string:join([atom_to_list(N) || N <- ?config(masters, Config)], ",").

base_args(Masters) ->
    ["-setcookie", lockerd_ct:cookie(), "--listen", "127.0.0.1", "--masters", Masters].

%% {ExitStatus, Output}; stderr is merged into Output only when asked.
run(Args) ->
    run(Args, #{}).

run(Args, Opts) ->
    Port = start(Args, Opts),
    collect(Port, [], maps:get(timeout, Opts, ?RUN_TIMEOUT)).

start(Args, Opts) ->
    lockerd_ct:log("lockerctl ~s", [string:join([[$', A, $'] || A <- Args], " ")]),
    PortOpts = [{args, Args}, binary, exit_status, use_stdio,
                {env, [{"LOCKERD_MASTERS", false}, {"LOCKERD_REPLICAS", false}]}]
        ++ [stderr_to_stdout || maps:get(stderr, Opts, false)],
    open_port({spawn_executable, ctl_bin()}, PortOpts).

collect(Port, Acc, Timeout) ->
    receive
        {Port, {data, D}} ->
            collect(Port, [Acc, D], Timeout);
        {Port, {exit_status, S}} ->
            Out = iolist_to_binary(Acc),
            lockerd_ct:log("exit ~p:~n~s", [S, Out]),
            {S, Out}
    after Timeout ->
            catch port_close(Port),
            ct:fail({lockerctl_hung, Timeout, iolist_to_binary(Acc)})
    end.

%% lockerctl --json against the suite's cluster: {ExitStatus, Map}.
json(Config, Args) ->
    {S, Out} = run(base_args(masters_arg(Config)) ++ ["--json" | Args]),
    {S, decode_one(Out)}.

decode_one(Out) ->
    case binary:split(string:trim(Out), <<"\n">>, [global]) of
        [Line] -> json_decode(Line);
        Lines -> ct:fail({expected_one_json_line, Lines})
    end.

%% locker:dirty_read/1 on a master, through rpc as a BEAM client does it.
beam_read(Master, Key) ->
    rpc:call(Master, locker, dirty_read, [Key], 5000).

key(Config) ->
    lists:flatten(io_lib:format("{ctl, ~p}", [?config(tc, Config)])).

key_term(Config) ->
    {ctl, ?config(tc, Config)}.

%%--------------------------------------------------------------------
%% Without a cluster

help(_Config) ->
    {0, Out} = run(["--help"]),
    [?assertNotEqual(nomatch, binary:match(Out, S))
     || S <- [<<"usage: lockerctl">>, <<"exit codes:">>, <<"no_quorum">>, <<"set-nodes">>,
              <<"\"command\"">>]],
    {0, Lock} = run(["lock", "--help"]),
    ?assertNotEqual(nomatch, binary:match(Lock, <<"usage: lockerctl [global options] lock KEY VALUE">>)),
    {0, Watch} = run(["watch", "--help"]),
    ?assertNotEqual(nomatch, binary:match(Watch, <<"--timeout MS">>)).

usage_errors(_Config) ->
    %% no masters (LOCKERD_MASTERS is unset for lockerctl)
    {2, NoMasters} = run(["read", "a"], #{stderr => true}),
    ?assertNotEqual(nomatch, binary:match(NoMasters, <<"LOCKERD_MASTERS">>)),
    {2, _} = run(base_args("a@h") ++ ["frobnicate"], #{stderr => true}),
    {2, _} = run(base_args("a@h") ++ ["lock", "k"], #{stderr => true}),
    {2, _} = run(base_args("a@h") ++ ["lock", "k", "v", "--lease", "soon"], #{stderr => true}),
    {2, _} = run(base_args("a@h") ++ ["set-w", "a@h", "zero"], #{stderr => true}),
    {2, Json} = run(base_args("a@h") ++ ["--json", "lock", "k"]),
    #{<<"result">> := <<"error">>, <<"error">> := <<"usage">>, <<"command">> := <<"lock">>} =
        decode_one(Json).

bad_term_syntax(_Config) ->
    Text = "{user, 42",
    {2, Out} = run(base_args("a@h") ++ ["lock", Text, "v"], #{stderr => true}),
    %% the text, then a caret under the end of input (column 10)
    Lines = binary:split(Out, <<"\n">>, [global]),
    ?assert(lists:member(list_to_binary(Text), Lines)),
    ?assert(lists:member(<<"         ^">>, Lines)),
    {2, _} = run(base_args("a@h") ++ ["read", "<<1:16>>"], #{stderr => true}),
    {2, ValueOut} = run(base_args("a@h") ++ ["lock", "k", "{a,,b}"], #{stderr => true}),
    ?assert(lists:member(<<"   ^">>, binary:split(ValueOut, <<"\n">>, [global]))),
    {2, Json} = run(base_args("a@h") ++ ["--json", "update", "k", "v", "[1,2"]),
    #{<<"result">> := <<"error">>, <<"error">> := <<"bad_term">>, <<"message">> := Msg} =
        decode_one(Json),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"NEWVALUE">>)),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"^">>)).

unreachable_cluster(_Config) ->
    Host = lockerd_ct:host(),
    Nowhere = string:join([lockerd_ct:unique_name("nobody" ++ I) ++ "@" ++ Host
                           || I <- ["1", "2", "3"]], ","),
    {6, Out} = run(base_args(Nowhere) ++ ["lock", "k", "v"], #{stderr => true}),
    ?assertNotEqual(nomatch, binary:match(Out, <<"no master could be reached">>)),
    ?assertNotEqual(nomatch, binary:match(Out, list_to_binary(hd(string:split(Nowhere, ","))))),
    {6, Json} = run(base_args(Nowhere) ++ ["--json", "read", "k"]),
    #{<<"result">> := <<"error">>, <<"error">> := <<"unreachable">>} = decode_one(Json),
    {6, Status} = run(base_args(Nowhere) ++ ["--json", "status"]),
    #{<<"reachable">> := 0, <<"masters">> := Ms} = decode_one(Status),
    [false, false, false] = [R || #{<<"reachable">> := R} <- Ms],
    %% each says why: nobody by that name is registered with epmd
    [?assertNotEqual(nomatch, binary:match(Why, <<"epmd">>)) || #{<<"why">> := Why} <- Ms],
    3 = length([W || #{<<"why">> := W} <- Ms]).

%% A wrong cookie is named as such, for every master, not only
%% "unreachable": the masters close the connection after our challenge
%% reply, which is what a digest mismatch looks like from our side.
wrong_cookie(Config) ->
    Masters = masters_arg(Config),
    Args = ["-setcookie", "not_the_cookie", "--listen", "127.0.0.1", "--masters", Masters],
    {6, Out} = run(Args ++ ["--json", "lock", key(Config), "v"]),
    #{<<"error">> := <<"unreachable">>, <<"message">> := Msg} = decode_one(Out),
    [?assertNotEqual(nomatch, binary:match(Msg, iolist_to_binary([atom_to_list(M),
                                                                  " (unreachable: "])))
     || M <- ?config(masters, Config)],
    ?assertNotEqual(nomatch, binary:match(Msg, <<"the cookie does not match">>)),
    {6, Status} = run(Args ++ ["--json", "status"]),
    #{<<"masters">> := Ms} = decode_one(Status),
    [?assertNotEqual(nomatch, binary:match(Why, <<"cookie">>)) || #{<<"why">> := Why} <- Ms],
    3 = length([W || #{<<"why">> := W} <- Ms]).

%%--------------------------------------------------------------------
%% Masters in their quiet period

%% Masters that refuse votes because they are recovering: lockerctl says
%% so, and for how long, instead of a bare no_quorum; status shows it.
recovering(Config) ->
    Masters = ?config(masters, Config),
    Left = [rpc:call(M, lockerd, quiet_period_left, [], 5000) || M <- Masters],
    [?assert(is_integer(L) andalso L > 30000 andalso L =< 60000) || L <- Left],
    {3, Out} = json(Config, ["lock", key(Config), "v"]),
    #{<<"error">> := <<"recovering">>, <<"message">> := Msg, <<"exit">> := 3} = Out,
    [?assertNotEqual(nomatch, binary:match(Msg, atom_to_binary(M))) || M <- Masters],
    {match, [Secs]} = re:run(Msg, "for ([0-9]+\\.[0-9]) s more", [{capture, all_but_first, binary}]),
    ?assert(binary_to_float(Secs) > 30.0),
    %% nothing was granted by the refused lock
    [{error, not_found} = beam_read(M, key_term(Config)) || M <- Masters],
    {S, Status} = run(base_args(masters_arg(Config)) ++ ["--json", "status"]),
    ?assert(S =:= 0 orelse S =:= 3),
    #{<<"masters">> := Ms} = decode_one(Status),
    [<<"recovering">>] = lists:usort([St || #{<<"state">> := St} <- Ms]),
    [?assert(Q > 30000) || #{<<"quiet_ms">> := Q} <- Ms],
    {_, Human} = run(base_args(masters_arg(Config)) ++ ["lock", key(Config), "v"],
                     #{stderr => true}),
    ?assertNotEqual(nomatch, binary:match(Human, <<"recovering after a restart">>)).


%%--------------------------------------------------------------------
%% Against the cluster

lock_then_read(Config) ->
    {0, Lock} = json(Config, ["lock", "{user,42}", "<<\"job\">>", "--lease", "30000"]),
    #{<<"command">> := <<"lock">>, <<"result">> := <<"ok">>, <<"w">> := 2, <<"votes">> := 3,
      <<"commits">> := 3, <<"token">> := Token} = Lock,
    %% every master is lockerd: the lock has a fencing token
    ?assert(is_integer(Token) andalso Token > 0),
    {0, Read} = json(Config, ["read", "{user, 42}"]),
    #{<<"result">> := <<"ok">>, <<"value">> := #{<<"binary">> := <<"job">>},
      <<"text">> := <<"<<\"job\">>">>} = Read,
    %% the BEAM side sees it on every master
    [{ok, <<"job">>} = beam_read(M, {user, 42}) || M <- ?config(masters, Config)],
    %% typed values round-trip through tprint_json
    {0, _} = json(Config, ["lock", "k_map", "#{a => [1, \"str\"], {t} => 1.5}"]),
    {0, #{<<"value">> := #{<<"map">> := Pairs}}} = json(Config, ["read", "k_map"]),
    ?assertEqual(lists:sort([[#{<<"atom">> => <<"a">>}, [1, #{<<"string">> => <<"str">>}]],
                             [#{<<"tuple">> => [#{<<"atom">> => <<"t">>}]}, 1.5]]),
                 lists:sort(Pairs)),
    {ok, #{a := [1, "str"], {t} := 1.5}} = beam_read(hd(?config(masters, Config)), k_map),
    %% human output, and a missing key
    {0, <<"<<\"job\">>\n">>} = run(base_args(masters_arg(Config)) ++ ["read", "{user,42}"]),
    {4, #{<<"command">> := <<"read">>, <<"result">> := <<"not_found">>}} =
        json(Config, ["read", "{user,43}"]),
    {4, <<"not_found\n">>} = run(base_args(masters_arg(Config)) ++ ["read", "{user,43}"]).

lock_contention(Config) ->
    K = key(Config),
    {0, #{<<"result">> := <<"ok">>}} = json(Config, ["lock", K, "first", "--lease", "30000"]),
    {3, #{<<"result">> := <<"error">>, <<"error">> := <<"no_quorum">>, <<"message">> := _}} =
        json(Config, ["lock", K, "second"]),
    {3, Human} = run(base_args(masters_arg(Config)) ++ ["lock", K, "second"], #{stderr => true}),
    ?assertNotEqual(nomatch, binary:match(Human, <<"no quorum">>)),
    [{ok, first} = beam_read(M, key_term(Config)) || M <- ?config(masters, Config)].

release(Config) ->
    K = key(Config),
    {0, _} = json(Config, ["lock", K, "<<\"owner\">>", "--lease", "30000"]),
    {3, #{<<"error">> := <<"no_quorum">>}} = json(Config, ["release", K, "<<\"other\">>"]),
    {0, #{<<"result">> := <<"ok">>, <<"w">> := 2, <<"votes">> := 3, <<"commits">> := 3}} =
        json(Config, ["release", K, "<<\"owner\">>"]),
    {4, _} = json(Config, ["read", K]),
    [{error, not_found} = beam_read(M, key_term(Config)) || M <- ?config(masters, Config)],
    {3, _} = json(Config, ["release", K, "<<\"owner\">>"]),
    %% successive holders: the next token is larger
    {0, #{<<"token">> := T2}} = json(Config, ["lock", K, "<<\"next\">>", "--lease", "30000"]),
    {0, _} = json(Config, ["release", K, "<<\"next\">>"]),
    {0, #{<<"token">> := T3}} = json(Config, ["lock", K, "<<\"third\">>", "--lease", "30000"]),
    ?assert(T3 > T2),
    {0, Human} = run(base_args(masters_arg(Config)) ++ ["release", K, "<<\"third\">>"]),
    ?assertEqual(nomatch, binary:match(Human, <<"token">>)).

extend(Config) ->
    K = key(Config),
    {0, _} = json(Config, ["lock", K, "v", "--lease", "1500"]),
    {0, #{<<"command">> := <<"extend">>, <<"result">> := <<"ok">>}} =
        json(Config, ["extend", K, "v", "--lease", "30000"]),
    {3, #{<<"error">> := <<"no_quorum">>}} = json(Config, ["extend", K, "other"]),
    timer:sleep(2500),
    {0, #{<<"value">> := #{<<"atom">> := <<"v">>}}} = json(Config, ["read", K]),
    [{ok, v} = beam_read(M, key_term(Config)) || M <- ?config(masters, Config)].

update(Config) ->
    K = key(Config),
    {0, _} = json(Config, ["lock", K, "\"old\"", "--lease", "30000"]),
    {0, #{<<"result">> := <<"ok">>, <<"commits">> := 3}} =
        json(Config, ["update", K, "\"old\"", "{new, <<1,2,255>>}"]),
    {0, #{<<"value">> := #{<<"tuple">> := [#{<<"atom">> := <<"new">>},
                                            #{<<"bytes">> := [1, 2, 255]}]}}} =
        json(Config, ["read", K]),
    [{ok, {new, <<1, 2, 255>>}} = beam_read(M, key_term(Config)) || M <- ?config(masters, Config)],
    {3, _} = json(Config, ["update", K, "\"old\"", "newer"]).

status(Config) ->
    Masters = [atom_to_binary(M) || M <- ?config(masters, Config)],
    {0, S} = json(Config, ["status"]),
    #{<<"command">> := <<"status">>, <<"result">> := <<"ok">>, <<"reachable">> := 3,
      <<"meta">> := #{<<"masters">> := Masters, <<"replicas">> := [], <<"w">> := 2},
      <<"masters">> := Ms, <<"lag_result">> := <<"ok">>, <<"lag_ms">> := Lag} = S,
    ?assert(is_number(Lag)),
    Masters = [N || #{<<"node">> := N} <- Ms],
    [true, true, true] = [R || #{<<"reachable">> := R} <- Ms],
    %% earlier cases left leases behind: every master counts the same ones
    [L | Ls] = [L0 || #{<<"leases">> := L0} <- Ms],
    ?assert(L > 0),
    [L = L1 || L1 <- Ls],
    {0, Human} = run(base_args(masters_arg(Config)) ++ ["status"]),
    ?assertNotEqual(nomatch, binary:match(Human, <<"reachable: 3 of 3 masters">>)).

watch_release(Config) ->
    K = key(Config),
    {0, _} = json(Config, ["lock", K, "held", "--lease", "30000"]),
    Watcher = start(base_args(masters_arg(Config)) ++ ["--json", "watch", K, "--timeout", "20000"],
                    #{}),
    %% it blocks while the key is held...
    receive
        {Watcher, {exit_status, Early}} -> ct:fail({watch_returned_early, Early})
    after 1000 -> ok
    end,
    %% ...and returns once another lockerctl releases it
    {0, _} = json(Config, ["release", K, "held"]),
    {0, Out} = collect(Watcher, [], 10000),
    #{<<"command">> := <<"watch">>, <<"result">> := <<"released">>} = decode_one(Out),
    {0, #{<<"result">> := <<"not_locked">>}} = json(Config, ["watch", K]).

watch_timeout(Config) ->
    K = key(Config),
    {0, _} = json(Config, ["lock", K, "held", "--lease", "30000"]),
    T0 = erlang:monotonic_time(millisecond),
    {5, #{<<"result">> := <<"error">>, <<"error">> := <<"timeout">>}} =
        json(Config, ["watch", K, "--timeout", "700"]),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 700).

set_w(Config) ->
    Masters = ?config(masters, Config),
    Cluster = masters_arg(Config),
    {0, #{<<"command">> := <<"set-w">>, <<"result">> := <<"ok">>}} =
        json(Config, ["set-w", Cluster, "3"]),
    [{Masters, [], 3} = rpc:call(M, locker, get_meta, [], 5000) || M <- Masters],
    {0, _} = json(Config, ["set-w", Cluster, "2"]),
    [{Masters, [], 2} = rpc:call(M, locker, get_meta, [], 5000) || M <- Masters],
    %% a cluster with a node that does not exist: the others still change
    Nobody = lockerd_ct:unique_name("nobody") ++ "@" ++ lockerd_ct:host(),
    {6, #{<<"error">> := <<"unreachable">>}} =
        json(Config, ["set-w", Cluster ++ "," ++ Nobody, "2"]).

set_nodes(Config) ->
    Masters = ?config(masters, Config),
    Cluster = masters_arg(Config),
    Replica = list_to_atom(lockerd_ct:unique_name("replica") ++ "@" ++ lockerd_ct:host()),
    {0, #{<<"result">> := <<"ok">>}} =
        json(Config, ["set-nodes", Cluster, Cluster, atom_to_list(Replica)]),
    [{Masters, [Replica], 2} = rpc:call(M, locker, get_meta, [], 5000) || M <- Masters],
    {0, _} = json(Config, ["set-nodes", Cluster, Cluster, ""]),
    [{Masters, [], 2} = rpc:call(M, locker, get_meta, [], 5000) || M <- Masters].

%%--------------------------------------------------------------------
%% A small JSON decoder: objects -> maps with binary keys, arrays -> lists,
%% strings -> binaries (UTF-8), numbers -> integers or floats,
%% true/false/null -> atoms. Enough for lockerctl's output, strict enough
%% to fail on anything malformed.

json_decode(Bin) ->
    case json_value(json_ws(Bin)) of
        {V, Rest} ->
            case json_ws(Rest) of
                <<>> -> V;
                Extra -> error({json_trailing, Extra})
            end
    end.

json_ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> json_ws(R);
json_ws(B) -> B.

json_value(<<${, R/binary>>) -> json_object(json_ws(R), #{});
json_value(<<$[, R/binary>>) -> json_array(json_ws(R), []);
json_value(<<$", R/binary>>) -> json_string(R, []);
json_value(<<"true", R/binary>>) -> {true, R};
json_value(<<"false", R/binary>>) -> {false, R};
json_value(<<"null", R/binary>>) -> {null, R};
json_value(<<C, _/binary>> = B) when C =:= $-; C >= $0, C =< $9 -> json_number(B);
json_value(B) -> error({json_bad_value, B}).

json_object(<<$}, R/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, R};
json_object(<<$", R0/binary>>, Acc) ->
    {K, R1} = json_string(R0, []),
    <<$:, R2/binary>> = json_ws(R1),
    {V, R3} = json_value(json_ws(R2)),
    case json_ws(R3) of
        <<$,, R4/binary>> -> json_object(json_ws(R4), Acc#{K => V});
        <<$}, R4/binary>> -> {Acc#{K => V}, R4};
        B -> error({json_bad_object, B})
    end;
json_object(B, _) -> error({json_bad_object, B}).

json_array(<<$], R/binary>>, []) -> {[], R};
json_array(B, Acc) ->
    {V, R1} = json_value(B),
    case json_ws(R1) of
        <<$,, R2/binary>> -> json_array(json_ws(R2), [V | Acc]);
        <<$], R2/binary>> -> {lists:reverse([V | Acc]), R2};
        Bad -> error({json_bad_array, Bad})
    end.

json_string(<<$", R/binary>>, Acc) ->
    {unicode:characters_to_binary(lists:reverse(Acc)), R};
json_string(<<$\\, E, R/binary>>, Acc) ->
    case E of
        $u ->
            <<H:4/binary, R1/binary>> = R,
            json_string(R1, [binary_to_integer(H, 16) | Acc]);
        _ ->
            C = case E of
                    $" -> $"; $\\ -> $\\; $/ -> $/; $b -> $\b; $f -> $\f;
                    $n -> $\n; $r -> $\r; $t -> $\t
                end,
            json_string(R, [C | Acc])
    end;
json_string(<<C/utf8, R/binary>>, Acc) when C >= 16#20 ->
    json_string(R, [C | Acc]);
json_string(B, _) ->
    error({json_bad_string, B}).

json_number(B) ->
    {Text, R} = json_number_chars(B, []),
    case lists:any(fun(C) -> lists:member(C, ".eE") end, Text) of
        false -> {list_to_integer(Text), R};
        true -> {json_float(Text), R}
    end.

json_number_chars(<<C, R/binary>>, Acc)
  when C >= $0, C =< $9; C =:= $-; C =:= $+; C =:= $.; C =:= $e; C =:= $E ->
    json_number_chars(R, [C | Acc]);
json_number_chars(R, Acc) ->
    {lists:reverse(Acc), R}.

%% Erlang's list_to_float wants digits on both sides of '.' and a '.'
%% before an exponent: 1e3 -> 1.0e3.
json_float(Text) ->
    case string:split(string:lowercase(Text), "e") of
        [M] -> list_to_float(json_mantissa(M));
        [M, E] -> list_to_float(json_mantissa(M) ++ "e" ++ E)
    end.

json_mantissa(M) ->
    case lists:member($., M) of
        true -> M;
        false -> M ++ ".0"
    end.
