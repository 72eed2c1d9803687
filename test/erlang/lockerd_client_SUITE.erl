%% The C client library seen from the BEAM, with three lockerd masters
%% (W = 2):
%%  - a C program (bin/lkc-hold) holding a key keeps a BEAM lkr:lock of it
%%    at {error, no_quorum} until it releases;
%%  - bin/locker-echo registers a name; BEAM code resolves it with
%%    locker:dirty_read on a master (rpc, as master_dirty_read does) and
%%    gen_server:calls the pid; the lease outlives 3x its length; after
%%    kill -9 the name goes away when the lease runs out; SIGTERM releases
%%    it at once; a second registration of a held name is refused.
%%
%% The tools are found next to LOCKERD_BIN (lockerd_ct:tool_bin/1). The
%% BEAM client peer runs lkr_server as a replica (lkr:lock reads its meta).
-module(lockerd_client_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [c_lock_blocks_beam, echo_service, echo_sigterm_releases, echo_name_taken].

init_per_suite(Config) ->
    lockerd_ct:ensure_epmd(),
    case lockerd_ct:lockerd_check() of
        ok ->
            [case filelib:is_regular(lockerd_ct:tool_bin(T)) of
                 true -> ok;
                 false -> ct:fail({missing_tool, lockerd_ct:tool_bin(T), "run make all"})
             end || T <- ["locker-echo", "lkc-hold"]],
            start_cluster(Config);
        {skip, _} = Skip ->
            Skip
    end.

start_cluster(Config) ->
    Specs = [{lockerd, lockerd_ct:unique_name(lists:concat(["cm", I]))} || I <- [1, 2, 3]],
    Masters = lists:sort([lockerd_ct:node_name(N) || {_, N} <- Specs]),
    ClientName = lockerd_ct:unique_name("cclient"),
    Client = lockerd_ct:node_name(ClientName),
    Meta = {?W, Masters, [Client]},
    Handles = lockerd_ct:start_nodes(Specs, Meta,
                                     #{log_dir => ?config(priv_dir, Config),
                                       lockerd_opts => #{push_interval => 100}}),
    ClientH = lockerd_ct:start_beam_node(ClientName, Meta, #{}),
    [{handles, Handles}, {client, Client}, {client_handle, ClientH}, {masters, Masters}
     | Config].

end_per_suite(Config) ->
    lockerd_ct:stop_all([?config(client_handle, Config) | ?config(handles, Config)]).

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

%%--------------------------------------------------------------------
%% Helpers

masters_arg(Config) ->
    string:join([atom_to_list(M) || M <- ?config(masters, Config)], ",").

%% Common tool arguments: a unique node name, the test cookie, the masters.
tool_args(Config, Base) ->
    ["-sname", lockerd_ct:unique_name(Base), "-setcookie", lockerd_ct:cookie(),
     "--masters", masters_arg(Config), "--listen", "127.0.0.1"].

start_tool(Tool, Args) ->
    lockerd_ct:start_program(lockerd_ct:tool_bin(Tool), Args).

await_line(P, Prefix) ->
    case lockerd_ct:program_line(P, Prefix, 15000) of
        {ok, Line} -> Line;
        Other -> ct:fail({no_line, Prefix, Other})
    end.

await_exit(#{port := Port}, Timeout) ->
    receive
        {Port, {exit_status, S}} -> S;
        {Port, {data, _}} -> await_exit(#{port => Port}, Timeout)
    after Timeout -> ct:fail(no_exit)
    end.

client_lock(Config, Key, Value) ->
    erpc:call(?config(client, Config), lkr, lock, [Key, Value, 2000, 2000], 15000).

client_release(Config, Key, Value) ->
    erpc:call(?config(client, Config), lkr, release, [Key, Value], 15000).

%% locker:dirty_read on a master through rpc (erpc spawn request), as
%% master_dirty_read does from a node that is not a master.
master_read(Config, Name) ->
    [M | _] = ?config(masters, Config),
    rpc:call(M, locker, dirty_read, [Name], 5000).

on_masters(Config, Key) ->
    [lockerd_ct:lease_on(M, Key) || M <- ?config(masters, Config)].

%%--------------------------------------------------------------------
%% Cases

%% (a) A key held by a C program is not available to a BEAM lkr:lock
%% (even after several lease lengths: the C side extends it) until the C
%% program releases it (its stdin closes).
c_lock_blocks_beam(Config) ->
    Key = {client_suite, held_by_c},
    P = start_tool("lkc-hold", tool_args(Config, "hold") ++ ["{client_suite, held_by_c}"]),
    await_line(P, "held"),
    Me = self(),
    ?assertEqual({error, no_quorum}, client_lock(Config, Key, Me)),
    timer:sleep(3000), %% 1.5 lease lengths: extended meanwhile
    ?assertEqual({error, no_quorum}, client_lock(Config, Key, Me)),
    [{ok, CPid} | _] = on_masters(Config, Key),
    ?assert(is_pid(CPid)),
    ?assertEqual(lists:duplicate(3, {ok, CPid}), on_masters(Config, Key)),
    port_close(maps:get(port, P)), %% EOF on stdin: lkc-hold releases
    ?assertMatch({ok, ?W, _, _},
                 lockerd_ct:wait_value(fun() ->
                                               case client_lock(Config, Key, Me) of
                                                   {ok, _, _, _} = R -> R;
                                                   Other -> Other
                                               end
                                       end, {ok, ?W, 3, 3}, 10000)),
    ?assertMatch({ok, _, _, _}, client_release(Config, Key, Me)).

%% (b) A gen_server:call to the name registered by locker-echo, the lease
%% kept alive past 3x its length, and the name gone after kill -9 once the
%% lease runs out.
echo_service(Config) ->
    Name = <<"svc">>,
    P = start_tool("locker-echo", tool_args(Config, "echo") ++ ["--lease", "2000", "<<\"svc\">>"]),
    await_line(P, "registered <<\"svc\">> as "),
    {ok, Pid} = master_read(Config, Name),
    ?assert(is_pid(Pid)),
    ?assertEqual({echo, hello}, gen_server:call(Pid, hello, 5000)),
    ?assertEqual({echo, {ping, [1, 2]}},
                 erpc:call(?config(client, Config), gen_server, call, [Pid, {ping, [1, 2]}, 5000])),
    gen_server:cast(Pid, some_cast),
    Pid ! some_info,
    timer:sleep(6500), %% > 3 leases of 2000 ms
    ?assertEqual({ok, Pid}, master_read(Config, Name)),
    ?assertEqual(lists:duplicate(3, {ok, Pid}), on_masters(Config, Name)),
    ?assertEqual({echo, still_here}, gen_server:call(Pid, still_here, 5000)),
    %% Crash: no release, the lease has to run out.
    lockerd_ct:kill_program(P, "KILL"),
    ?assertEqual(128 + 9, await_exit(P, 5000)),
    ?assertEqual({error, not_found},
                 lockerd_ct:wait_value(fun() -> master_read(Config, Name) end,
                                       {error, not_found}, 15000)),
    ?assertEqual(lists:duplicate(3, not_found), on_masters(Config, Name)),
    ?assertExit(_, gen_server:call(Pid, hello, 2000)).

%% SIGTERM: the name is released at once (not after the lease), status 0.
echo_sigterm_releases(Config) ->
    Name = svc_term,
    P = start_tool("locker-echo", tool_args(Config, "echot") ++ ["--lease", "30000", "svc_term"]),
    await_line(P, "registered svc_term as "),
    {ok, Pid} = master_read(Config, Name),
    ?assertEqual({echo, hi}, gen_server:call(Pid, hi, 5000)),
    lockerd_ct:kill_program(P, "TERM"),
    ?assertEqual(0, await_exit(P, 10000)),
    %% Well within the 30 s lease: only a release explains it.
    ?assertEqual({error, not_found},
                 lockerd_ct:wait_value(fun() -> master_read(Config, Name) end,
                                       {error, not_found}, 3000)).

%% A held name: the second locker-echo says so and exits with status 3.
echo_name_taken(Config) ->
    P1 = start_tool("locker-echo", tool_args(Config, "echo1") ++ ["\"svc_taken\""]),
    await_line(P1, "registered "),
    P2 = start_tool("locker-echo", tool_args(Config, "echo2") ++ ["\"svc_taken\""]),
    ?assertEqual(3, await_exit(P2, 15000)),
    {ok, Pid} = master_read(Config, "svc_taken"),
    ?assertEqual({echo, x}, gen_server:call(Pid, x, 5000)),
    lockerd_ct:kill_program(P1, "TERM"),
    ?assertEqual(0, await_exit(P1, 10000)).
