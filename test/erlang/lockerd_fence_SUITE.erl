%% Fencing tokens: lockerd:lock/3, extend_lease/3, release/2 by rpc to a
%% lockerd master return {ok, Token}; tokens of successive holders of a key
%% strictly increase, also across kill -9 of every master (the epoch in the
%% state file), and a cluster with a BEAM master says tokens_unavailable
%% without disturbing it.
-module(lockerd_fence_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(W, 2).

suite() ->
    [{timetrap, {seconds, 120}}].

all() ->
    [successive_holders_increase,
     extend_and_release_tokens,
     tokens_survive_restart_of_every_master,
     fence_process_bad_input,
     beam_master_tokens_unavailable].

init_per_suite(Config) ->
    case lockerd_ct:lockerd_check() of
        ok -> lockerd_ct:ensure_epmd(), Config;
        {skip, _} = Skip -> Skip
    end.

end_per_suite(_Config) ->
    ok.

init_per_testcase(TC, Config) ->
    [{tc, TC} | Config].

%% The nodes a case started (kept by keep/1: a case's own Config does not
%% reach end_per_testcase).
end_per_testcase(_TC, _Config) ->
    Hs = persistent_term:get({?MODULE, handles}, []),
    persistent_term:erase({?MODULE, handles}),
    lockerd_ct:stop_all(Hs).

keep(Hs) ->
    persistent_term:put({?MODULE, handles}, Hs ++ persistent_term:get({?MODULE, handles}, [])).

lockerd_cluster(Config, Tag) ->
    Names = [lockerd_ct:unique_name("fence" ++ Tag ++ integer_to_list(I)) || I <- [1, 2, 3]],
    Masters = lists:sort([lockerd_ct:node_name(N) || N <- Names]),
    Opts = #{masters => Masters, w => ?W, log_dir => ?config(priv_dir, Config),
             extra_args => ["--quiet-period", "0"]},
    Hs = [lockerd_ct:start_lockerd(N, Opts) || N <- Names],
    keep(Hs),
    {Names, Masters, Opts, Hs}.

key(Config) ->
    {?config(tc, Config), erlang:unique_integer([positive])}.

%% Twenty holders in turn, each through another master: every token is
%% larger than the one before.
successive_holders_increase(Config) ->
    {_, Masters, _, _} = lockerd_cluster(Config, "succ"),
    K = key(Config),
    Tokens = [begin
                  M = lists:nth(1 + I rem 3, Masters),
                  {ok, T} = rpc:call(M, lockerd, lock, [K, {holder, I}, 5000]),
                  ?assertEqual({ok, {holder, I}}, rpc:call(M, locker, dirty_read, [K])),
                  {ok, _} = rpc:call(M, lockerd, release, [K, {holder, I}]),
                  T
              end || I <- lists:seq(1, 20)],
    ct:log("tokens: ~p", [Tokens]),
    ?assertEqual(Tokens, lists:usort(Tokens)),
    ?assertEqual(20, length(lists:usort(Tokens))),
    %% a held key: the next holder gets no token
    [M1 | _] = Masters,
    {ok, _} = rpc:call(M1, lockerd, lock, [K, held, 5000]),
    ?assertEqual({error, no_quorum}, rpc:call(M1, lockerd, lock, [K, other, 5000])),
    ok.

extend_and_release_tokens(Config) ->
    {_, [M | _], _, _} = lockerd_cluster(Config, "ext"),
    K = key(Config),
    {ok, T1} = rpc:call(M, lockerd, lock, [K, v, 5000]),
    {ok, T2} = rpc:call(M, lockerd, extend_lease, [K, v, 5000]),
    {ok, T3} = rpc:call(M, lockerd, update, [K, v, w]),
    {ok, T4} = rpc:call(M, lockerd, release, [K, w]),
    ?assert(T1 < T2 andalso T2 < T3 andalso T3 =< T4),
    %% the extended vote checks the expected value like the plain one
    ?assertEqual({error, no_quorum}, rpc:call(M, lockerd, extend_lease, [K, v, 5000])),
    ?assertEqual({error, no_quorum}, rpc:call(M, lockerd, release, [K, w])),
    %% wrong arguments are a function_clause, as for locker:lock/3
    ?assertMatch({badrpc, {'EXIT', {function_clause, _}}},
                 rpc:call(M, lockerd, lock, [K, v, not_a_length])),
    ok.

%% kill -9 of all three masters loses every counter; the epochs recorded
%% in their state files still make the next token larger.
tokens_survive_restart_of_every_master(Config) ->
    {Names, Masters, Opts, Hs} = lockerd_cluster(Config, "rst"),
    K = key(Config),
    [M | _] = Masters,
    Before = [begin
                  {ok, T} = rpc:call(M, lockerd, lock, [K, I, 5000]),
                  {ok, _} = rpc:call(M, lockerd, release, [K, I]),
                  T
              end || I <- lists:seq(1, 5)],
    [lockerd_ct:crash(H) || H <- Hs],
    persistent_term:erase({?MODULE, handles}),
    Hs2 = [lockerd_ct:start_lockerd(N, Opts) || N <- Names],
    keep(Hs2),
    {ok, After} = rpc:call(M, lockerd, lock, [K, again, 5000]),
    ct:log("before ~p, after restart ~p", [Before, After]),
    ?assert(After > lists:max(Before)),
    State = filename:join(?config(priv_dir, Config), hd(Names) ++ ".state"),
    {ok, Text} = file:read_file(State),
    ?assertMatch({match, _}, re:run(Text, "fence_epoch 2\n")),
    ok.

%% Two lockerd masters and a BEAM one: no tokens (the BEAM master has no
%% lockerd_fence; it is sent nothing it would not understand), the votes
%% taken on the lockerd masters released, and locker:lock still works.
beam_master_tokens_unavailable(Config) ->
    LNames = [lockerd_ct:unique_name("fencemix" ++ integer_to_list(I)) || I <- [1, 2]],
    BName = lockerd_ct:unique_name("fencebeam"),
    Masters = lists:sort([lockerd_ct:node_name(N) || N <- [BName | LNames]]),
    Ls = [lockerd_ct:start_lockerd(N, #{masters => Masters, w => ?W,
                                        log_dir => ?config(priv_dir, Config)})
          || N <- LNames],
    keep(Ls),
    B = lockerd_ct:start_beam_node(BName, {?W, Masters, []}, #{}),
    keep([B]),
    L = lockerd_ct:node_name(hd(LNames)),
    K = key(Config),
    ?assertEqual({error, tokens_unavailable}, rpc:call(L, lockerd, lock, [K, v, 5000])),
    %% nothing stays locked: the plain lock gets every vote
    ?assertMatch({ok, ?W, 3, 3}, rpc:call(L, locker, lock, [K, v, 5000])),
    ?assertEqual({ok, v}, rpc:call(maps:get(node, B), lkr, dirty_read, [K])),
    ok.

%% The lockerd_fence process with hostile input: wrong shapes and tokens
%% are errors, an epoch far ahead is refused (a peer cannot make the node
%% record it), casts and stray messages are ignored, and the node serves on.
fence_process_bad_input(Config) ->
    {_, [M | _], _, _} = lockerd_cluster(Config, "bad"),
    F = {lockerd_fence, M},
    K = key(Config),
    T = make_ref(),
    {ok, C0} = gen_server:call(F, {get_write_lock, K, not_found, T}),
    ?assert(is_integer(C0) andalso C0 > 0),
    ?assertEqual(ok, gen_server:call(F, {release_write_lock, T})),
    [?assertMatch({error, {unknown_request, _}}, gen_server:call(F, Req))
     || Req <- [garbage, {write, T, K, v, 1000, not_an_int}, {write, T, K, v, 1000, -5},
                {write, T, K, v, 1000}, {update, T, K}, {get_write_lock, K},
                {extend_lease, T, K, v, bad_len, 7}]],
    ?assertEqual({error, bad_token}, gen_server:call(F, {write, T, K, v, 1000, 1 bsl 62})),
    ?assertEqual({error, not_found}, rpc:call(M, locker, dirty_read, [K])),
    gen_server:cast(F, {whatever, 1}),
    F ! stray,
    %% a token a little ahead is taken and raises the counter
    Ahead = C0 + 1000,
    ?assertEqual(ok, gen_server:call(F, {write, make_ref(), K, v, 1000, Ahead})),
    {ok, C1} = gen_server:call(F, {get_write_lock, {K, 2}, not_found, make_ref()}),
    ?assert(C1 >= Ahead),
    ?assertMatch({ok, _}, rpc:call(M, lockerd, lock, [{K, 3}, v, 1000])).
