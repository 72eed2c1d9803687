%% Seed corpora for the fuzz targets, from real traffic.
%%
%% Used by test/fuzz/capture.sh. Three roles:
%%
%% - An epmd module (erl -epmd_module fz_capture): a node registers a
%%   loopback TCP proxy in front of its distribution port instead of the
%%   port itself, so every connection dialled to it passes the proxy, which
%%   writes each direction's bytes to $FZ_CAPTURE_DIR/<alive>/connN.{in,out}
%%   (in: dialler -> listener, out: the answer). A node can also be told to
%%   dial a given node through a proxy (capture_dial/2): lockerd registers
%%   its real port, so the client proxies its own connection to it.
%% - replica/0: a plain BEAM node that lockerd pushes its transaction log to
%%   (lockerd dials it: lockerd as initiator, OTP as acceptor) and that the
%%   client dials too (OTP to OTP).
%% - client/0: a hidden BEAM node that dials lockerd through a proxy and
%%   makes the calls a real cluster makes: locker calls by gen_server:call
%%   and multi_call (alias tags, multi_call tags), rpc/erpc (spawn
%%   requests), monitors on missing names, links, sbcast, trans_log casts,
%%   with keys and values of every type (maps, big integers, unicode atoms,
%%   floats, binaries, bitstrings, pids, refs, funs).
%% - seeds/2: turns the captured streams into seed files, one directory per
%%   fuzz target, plus terms encoded here in every encoding OTP reads
%%   (old float text, latin-1 atoms, old pid/ref forms built by hand and
%%   checked with binary_to_term).
-module(fz_capture).

-export([start_link/0, register_node/2, register_node/3, port_please/2, port_please/3,
         names/0, names/1, address_please/3, listen_port_please/2]).
-export([replica/0, client/0, seeds/2]).

-define(LOOPBACK, {127, 0, 0, 1}).

%%--------------------------------------------------------------------
%% epmd module: delegate to erl_epmd, with a proxy in front of our port

start_link() -> erl_epmd:start_link().

register_node(Name, Port) -> register_node(Name, Port, inet).

register_node(Name, Port, Family) ->
    {ok, ProxyPort} = proxy_start(Port, capture_dir(Name)),
    erl_epmd:register_node(Name, ProxyPort, Family).

port_please(Name, Host) -> port_please(Name, Host, infinity).

port_please(Name, Host, Timeout) ->
    case persistent_term:get({?MODULE, to_list(Name)}, undefined) of
        undefined -> erl_epmd:port_please(Name, Host, Timeout);
        Port -> {port, Port, 6}
    end.

names() -> erl_epmd:names().
names(Host) -> erl_epmd:names(Host).
address_please(Name, Host, Family) -> erl_epmd:address_please(Name, Host, Family).
listen_port_please(Name, Host) -> erl_epmd:listen_port_please(Name, Host).

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) -> L.

capture_dir(Name) ->
    filename:join(os:getenv("FZ_CAPTURE_DIR", "/tmp/fz_capture"), to_list(Name)).

%% Dial node Alive (registered with its real port) through a proxy.
capture_dial(Alive, Host) ->
    {port, Port, _} = erl_epmd:port_please(Alive, Host),
    {ok, ProxyPort} = proxy_start(Port, capture_dir(Alive)),
    persistent_term:put({?MODULE, Alive}, ProxyPort).

%%--------------------------------------------------------------------
%% The proxy: loopback only; one relay process per direction

proxy_start(Target, Dir) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        {ok, L} = gen_tcp:listen(0, [binary, {ip, ?LOOPBACK}, {active, false},
                                                     {reuseaddr, true}]),
                        {ok, P} = inet:port(L),
                        Parent ! {self(), P},
                        accept_loop(L, Target, Dir, 1)
                end),
    receive {Pid, P} -> {ok, P} after 5000 -> {error, timeout} end.

accept_loop(L, Target, Dir, N) ->
    {ok, A} = gen_tcp:accept(L),
    {ok, B} = gen_tcp:connect(?LOOPBACK, Target, [binary, {active, false}, {nodelay, true}]),
    ok = inet:setopts(A, [{nodelay, true}]),
    Base = filename:join(Dir, "conn" ++ integer_to_list(N)),
    ok = filelib:ensure_dir(Base),
    relay(A, B, Base ++ ".in"),
    relay(B, A, Base ++ ".out"),
    accept_loop(L, Target, Dir, N + 1).

relay(From, To, File) ->
    spawn(fun() ->
                  {ok, F} = file:open(File, [write, raw, binary]),
                  relay_loop(From, To, F)
          end).

relay_loop(From, To, F) ->
    case gen_tcp:recv(From, 0) of
        {ok, Bin} ->
            ok = file:write(F, Bin),
            _ = gen_tcp:send(To, Bin),
            relay_loop(From, To, F);
        {error, _} ->
            file:close(F),
            gen_tcp:close(To)
    end.

%%--------------------------------------------------------------------
%% replica: a registered `locker` that answers calls with ok and takes
%% casts (lockerd's trans_log pushes) silently

replica() ->
    register(locker, spawn(fun replica_loop/0)).

replica_loop() ->
    receive
        {'$gen_call', From, _} -> gen:reply(From, ok);
        _ -> ok
    end,
    replica_loop().

%%--------------------------------------------------------------------
%% client

client() ->
    try
        [_, Host] = string:split(atom_to_list(node()), "@"),
        LK = list_to_atom("fzcap_lk@" ++ Host),
        Rep = list_to_atom("fzcap_rep@" ++ Host),
        capture_dial("fzcap_lk", Host),
        true = net_kernel:connect_node(LK),
        lockerd_traffic(LK, Rep),
        timer:sleep(500),  % lockerd pushes its log to Rep meanwhile
        true = net_kernel:connect_node(Rep),
        otp_traffic(Rep),
        erlang:disconnect_node(LK),
        erlang:disconnect_node(Rep),
        timer:sleep(200),
        io:format("capture: done~n")
    catch C:R:S ->
            io:format("capture failed: ~p:~p~n~p~n", [C, R, S]),
            halt(1)
    end.

keys() ->
    Pid = self(),
    [key1, 'ключ', 'ä', <<"bin key">>, {user, 42}, "a string", [1000, 2000, 3],
     #{a => 1, "b" => [1, 2], <<"c">> => {x}}, maps:from_list([{I, I * I} || I <- lists:seq(1, 40)]),
     1 bsl 100, -(1 bsl 70), 1 bsl 2100, -5, 300, 70000, 3.14, -0.0, 1.0e300,
     <<1:3>>, <<>>, [a | b], {}, [], Pid, make_ref(), fun lists:reverse/1,
     fun(X) -> {X, Pid} end, list_to_atom(lists:duplicate(255, $é)),
     {deep, [{nested, #{k => [1, {2, <<"3">>}]}}]}].

lockerd_traffic(LK, Rep) ->
    Call = fun(Req) -> catch gen_server:call({locker, LK}, Req, 2000) end,
    Multi = fun(Req) -> gen_server:multi_call([LK], locker, Req, 2000) end,
    _ = [Call(R) || R <- [get_meta, get_debug_state, summary]],
    _ = Multi({set_nodes, [LK], [Rep]}),
    _ = Multi({set_w, 1}),
    lists:foreach(
      fun({I, Key}) ->
              Value = {value, I, Key},
              Tag = make_ref(),
              _ = Multi({get_write_lock, Key, not_found, Tag}),
              _ = Multi({write, Tag, Key, Value, 2000}),
              _ = Call({dirty_read, Key}),
              case I rem 3 of
                  0 ->
                      T2 = make_ref(),
                      _ = Multi({get_write_lock, Key, Value, T2}),
                      _ = Multi({update, T2, Key, {new, Value}});
                  1 ->
                      T2 = make_ref(),
                      _ = Multi({get_write_lock, Key, Value, T2}),
                      _ = Multi({extend_lease, T2, Key, Value, 5000});
                  2 ->
                      T2 = make_ref(),
                      _ = Multi({get_write_lock, Key, Value, T2}),
                      _ = Multi({release, Key, Value, T2})
              end
      end, lists:zip(lists:seq(1, length(keys())), keys())),
    _ = Call({wait_for, key1, 10}),
    _ = Call({wait_for_release, nosuch_key, 10}),
    _ = Multi({release_write_lock, make_ref()}),
    _ = Call({no_such_request, 1}),
    _ = Call({write}),
    gen_server:cast({locker, LK}, {trans_log, node(),
                                   [{write, rk1, <<"v">>, 2000},
                                    {extend_lease, rk1, <<"v">>, 3000},
                                    {update, rk1, #{v => 2}},
                                    {release, rk1},
                                    {write, {rk, 2}, [1, 2, 3], 100}]}),
    {locker, LK} ! push_trans_log,
    _ = rpc:call(LK, locker, get_meta, []),
    _ = rpc:call(LK, locker, dirty_read, [key1]),
    _ = rpc:call(LK, locker, lock, [rpc_key, rpc_val, 2000]),
    _ = rpc:call(LK, erlang, node, []),
    _ = rpc:call(LK, no_such_mod, f, [1, 2]),
    _ = (catch erpc:call(LK, locker, summary, [], 2000)),
    _ = rpc:block_call(LK, locker, get_meta, []),
    rpc:cast(LK, locker, get_meta, []),
    _ = rpc:sbcast([LK], locker, push_trans_log),
    _ = rpc:sbcast([LK], nosuch, hello),
    pong = net_adm:ping(LK),
    _ = (catch gen_server:call({nosuch, LK}, hello, 1000)),
    M = erlang:monitor(process, {locker, LK}),
    erlang:demonitor(M, [flush]),
    case rpc:call(LK, erlang, whereis, [locker]) of
        P when is_pid(P) ->
            link(P),
            unlink(P),
            P ! {hello, self()},
            exit(P, normal),
            M2 = erlang:monitor(process, P),
            erlang:demonitor(M2, [flush]);
        _ ->
            ok
    end,
    timer:sleep(100).

otp_traffic(Rep) ->
    _ = gen_server:call({locker, Rep}, get_meta, 2000),
    _ = gen_server:multi_call([Rep], locker, {set_w, 1}, 2000),
    _ = rpc:call(Rep, erlang, node, []),
    _ = rpc:call(Rep, lists, reverse, [keys()]),
    _ = (catch gen_server:call({nosuch, Rep}, hello, 1000)),
    timer:sleep(100).

%%--------------------------------------------------------------------
%% seeds: captured streams -> corpus/<target>/<sha1>

seeds(CapDir, CorpusDir) ->
    Conns = [filename:rootname(F) || F <- filelib:wildcard(filename:join([CapDir, "*", "conn*.in"]))],
    [seeds_conn(C, CorpusDir) || C <- Conns],
    [write_seed(CorpusDir, "term", T) || T <- synthetic_terms()],
    [write_seed(CorpusDir, "request", T) || T <- synthetic_requests()],
    ok.

seeds_conn(Base, Out) ->
    {ok, In} = file:read_file(Base ++ ".in"),
    {ok, Back} = file:read_file(Base ++ ".out"),
    {InMsgs, InFrames} = handshake(In, $r),
    {BackMsgs, BackFrames} = handshake(Back, $a),
    Challenge = [C || <<$N, _:64, C:32, _:32, _/binary>> <- BackMsgs],
    MyChallenge = [C || <<$r, C:32, _/binary>> <- InMsgs],
    PeerName = [Name || <<$N, _:64, _:32, _:32, L:16, Name:L/binary, _/binary>> <- BackMsgs],
    InHs = iolist_to_binary([[<<(byte_size(M)):16>>, M] || M <- InMsgs]),
    BackHs = iolist_to_binary([[<<(byte_size(M)):16>>, M] || M <- BackMsgs]),
    %% Acceptor: Challenge | Cfg | the initiator's messages (and a frame
    %% after them, which must stay unconsumed).
    [write_seed(Out, "hs_acceptor", <<C:32, Cfg, InHs/binary, (first(InFrames, 2))/binary>>)
     || C <- Challenge, Cfg <- [16#00, 16#40, 16#80, 16#C0, 16#02, 16#04, 16#06, 16#10]],
    [write_seed(Out, "hs_initiator", <<C:32, Cfg, Name/binary, 0, BackHs/binary,
                                       (first(BackFrames, 2))/binary>>)
     || C <- MyChallenge, Name <- PeerName, Cfg <- [16#00, 16#40, 16#80, 16#C0, 16#10]],
    [seeds_frames(Out, F) || F <- [InFrames, BackFrames]],
    ok.

first(Frames, N) -> iolist_to_binary(lists:sublist(split_frames(Frames), N)).

%% The handshake messages (2-byte lengths) up to and including the one
%% tagged Last, and the bytes after them.
handshake(Bin, Last) -> handshake(Bin, Last, []).
handshake(<<L:16, M:L/binary, Rest/binary>>, Last, Acc) ->
    case M of
        <<Last, _/binary>> -> {lists:reverse([M | Acc]), Rest};
        _ -> handshake(Rest, Last, [M | Acc])
    end;
handshake(Rest, _, Acc) -> {lists:reverse(Acc), Rest}.

split_frames(<<L:32, B:L/binary, Rest/binary>>) -> [<<L:32, B/binary>> | split_frames(Rest)];
split_frames(_) -> [].

seeds_frames(Out, Stream) ->
    Frames = split_frames(Stream),
    %% BEAM to BEAM frames use the atom cache header (131 68); only
    %% pass-through frames (112, what lockerd negotiates) feed ctrl/term.
    %% framing: runs of frames with Max large enough for them, and one with
    %% a Max that the biggest frame exceeds
    [write_seed(Out, "frame", <<Max, (iolist_to_binary(Run))/binary>>)
     || Run <- runs(Frames, 6), Max <- [run_max(Run), run_max(Run) div 2]],
    lists:foreach(fun(<<_:32, 112, _/binary>> = F) ->
                          <<_:32, Body/binary>> = F,
                          write_seed(Out, "ctrl", Body),
                          seeds_terms(Out, Body);
                     (_) -> ok
                  end, Frames).

runs([], _) -> [];
runs(L, N) when length(L) =< N -> [L];
runs(L, N) -> {A, B} = lists:split(N, L), [A | runs(B, N)].

run_max(Run) -> min(255, lists:max([L || <<L:32, _/binary>> <- Run])).

%% 112 | 131 Control | [131 Payload]: each term on its own (no 131); the
%% payload also for the request target.
seeds_terms(Out, <<112, 131, _/binary>> = Body) ->
    <<_, Rest/binary>> = Body,
    {_, Used} = binary_to_term(Rest, [used]),
    <<131, Ctrl:(Used - 1)/binary, After/binary>> = Rest,
    write_seed(Out, "term", Ctrl),
    case After of
        <<131, Payload/binary>> ->
            write_seed(Out, "term", Payload),
            write_seed(Out, "request", Payload),
            case binary_to_term(After) of
                {'$gen_call', _, Req} -> write_seed(Out, "request", ext(Req));
                _ -> ok
            end;
        _ -> ok
    end;
seeds_terms(_, _) -> ok.

ext(T) -> <<131, B/binary>> = term_to_binary(T), B.
ext(T, Opts) -> <<131, B/binary>> = term_to_binary(T, Opts), B.

synthetic_terms() ->
    Ts = keys() ++ [deep(600), deep(100), lists:seq(1, 300), list_to_tuple(lists:seq(1, 300)),
                    [$a | $b], ["nested", ["io", <<"list">>]], 1 bsl 64, -(1 bsl 64), 255, 256,
                    -2147483648, 2147483647, 2147483648, hd(erlang:ports()),
                    #{{k, 1} => v, 1 => 2, a => b, "s" => <<>>}],
    [ext(T) || T <- Ts]
        ++ [ext(T, [{minor_version, 0}]) || T <- [1.5, -2.25e-10, 0.0, {1.0, [3.0]}]]
        ++ [ext(T, [{minor_version, 1}]) || T <- [abc, 'ä', {abc, [def]}]]
        ++ [ext(T, [compressed]) || T <- [lists:duplicate(100, x)]]
        ++ [checked(B) || B <- old_encodings()].

deep(0) -> [];
deep(N) -> [deep(N - 1)].

%% Old encodings BEAM still reads; each checked to decode.
old_encodings() ->
    Node = <<100, 0, 9, "fz@fuzzer">>,
    [<<103, Node/binary, 1:32, 0:32, 1>>,                       % PID_EXT
     <<101, Node/binary, 7:32, 2>>,                              % REFERENCE_EXT
     <<114, 3:16, Node/binary, 1, 1:32, 2:32, 3:32>>,            % NEW_REFERENCE_EXT
     <<114, 3:16, Node/binary, 1, 1:32, 0:32, 0:32>>,            % with zero high words
     <<102, Node/binary, 5:32, 1>>,                              % PORT_EXT
     <<89, Node/binary, 5:32, 1234:32>>,                         % NEW_PORT_EXT
     <<115, 3, "abc">>,                                          % SMALL_ATOM_EXT
     <<100, 0, 1, 16#E9>>,                                       % ATOM_EXT latin-1
     <<110, 0, 0>>,                                              % big zero
     <<110, 2, 1, 5, 0>>,                                        % negative big, high zero
     <<111, 1:32, 0, 7>>,                                        % LARGE_BIG small value
     <<77, 2:32, 3, 16#FF, 16#FF>>,                              % bitstring, junk low bits
     <<77, 1:32, 8, 42>>,                                        % BIT_BINARY of 8 bits
     <<108, 1:32, 97, 1, 107, 2:16, 2, 3>>,                      % [1|"\2\3"] flattened
     <<108, 0:32, 106>>,                                         % [ | []]
     <<113, 115, 5, "lists", 115, 7, "reverse", 98, 1:32>>].     % EXPORT_EXT, INTEGER arity

checked(B) -> _ = binary_to_term(<<131, B/binary>>), B.

%% Requests as the rpc path passes them, bare.
synthetic_requests() ->
    Tag = make_ref(),
    [ext(R) || R <- [get_meta, summary, {get_write_lock, k, not_found, Tag},
                     {write, Tag, k, v, 1000}, {update, Tag, k, v2}, {release, k, v, Tag},
                     {extend_lease, Tag, k, v, 100}, {wait_for, k, infinity},
                     {wait_for_release, k, 10}, {set_w, 2}, {set_nodes, [a@h], [b@h]},
                     {dirty_read, k}, {release_write_lock, Tag}, {write},
                     {'$gen_cast', {trans_log, a@h, [{write, k, v, 10}, {release, k}]}},
                     {'$gen_call', {self(), [alias | Tag]}, get_meta},
                     {'$gen_call', {self(), [[alias | Tag] | make_ref()]}, {dirty_read, k}},
                     {'$gen_call', {self(), {Tag, a@h}}, summary}]].

write_seed(Dir, Target, Bin) ->
    Name = binary:encode_hex(crypto:hash(sha, Bin)),
    File = filename:join([Dir, Target, string:lowercase(binary_to_list(Name))]),
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, Bin).
