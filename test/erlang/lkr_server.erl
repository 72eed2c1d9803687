%% A BEAM locker server, written from PROTOCOL.md sections 1-4.
%%
%% It is the reference the test suites run against when no lockerd is
%% involved, and the local server of client/replica nodes in mixed clusters.
%%
%% State model:
%%  - leases live in the protected named ETS set `lkr_leases` as
%%    {Key, Value, ExpireAt}; a `set` compares keys with =:=, as the protocol
%%    requires, and lets `lkr:dirty_read/1` read without a call;
%%  - write locks live in `lkr_locks` as {Key, Tag, ExpireAt};
%%  - meta data (W, masters, replicas) lives in `lkr_meta` so the client API
%%    reads it without a call;
%%  - waiters (wait_for / wait_for_release) are kept in the server state, each
%%    with its own timeout timer; a waiter that times out is dropped silently.
%%
%% Safe restarts (option state_file, as lockerd's --state-file): the file
%% holds the longest lease this server ever granted, written before the
%% write that grants it is answered. A server that starts and finds the file
%% (it ran before and lost its memory) refuses get_write_lock for keys it
%% has no lease or write lock of, with {error, recovering}, for that long
%% and at least the 10 s a write lock lives (option quiet_period overrides
%% both): a lease it granted, or a vote it gave, before the restart may
%% still stand on the other masters, and its vote must not help a second
%% holder to a quorum. Keys written since the restart are voted on normally.
%%
%% ExpireAt values are erlang:monotonic_time(millisecond) based.
-module(lkr_server).
-behaviour(gen_server).

-export([start_link/1, start_link/4, start/1, start/4, stop/0,
         meta/0, lease/1, leases_table/0, locks_table/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2,
         terminate/2, code_change/3]).

-define(SERVER, locker).
-define(LEASES, lkr_leases).
-define(LOCKS, lkr_locks).
-define(META, lkr_meta).
-define(WRITE_LOCK_TTL, 10000).
-define(is_timeout(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0))).

-record(st, {
          log = [] :: [term()],                 %% newest entry first
          waiters = #{} :: #{reference() => {wait_for | wait_for_release,
                                             term(), gen_server:from(),
                                             reference() | undefined}},
          state_file :: file:filename() | undefined,
          longest = 0 :: non_neg_integer(),     %% longest lease granted (ms)
          recover_until :: integer() | undefined, %% now_ms() bound of the quiet period
          push_interval :: pos_integer(),
          lease_interval :: pos_integer(),
          lock_interval :: pos_integer(),
          push_timer :: reference() | undefined,
          lease_timer :: reference() | undefined,
          lock_timer :: reference() | undefined
         }).

%%--------------------------------------------------------------------
%% API

start_link(W) ->
    start_link(W, [node()], [], []).

%% Opts: push_interval (100), lease_expire_interval (1000),
%% lock_expire_interval (1000), all in milliseconds; state_file (a path: safe
%% restarts, see above) and quiet_period (ms, default: the longest lease in
%% the state file, at least 10 s). A state file that cannot be written
%% crashes the server: a test server must not silently lose that record.
start_link(W, Masters, Replicas, Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, {W, Masters, Replicas, Opts}, []).

start(W) ->
    start(W, [node()], [], []).

start(W, Masters, Replicas, Opts) ->
    gen_server:start({local, ?SERVER}, ?MODULE, {W, Masters, Replicas, Opts}, []).

stop() ->
    gen_server:stop(?SERVER).

%% {W, Masters, Replicas} of the local server.
meta() ->
    [{meta, W, Masters, Replicas}] = ets:lookup(?META, meta),
    {W, Masters, Replicas}.

%% Local lease table read: {ok, Value} | {error, not_found}.
lease(Key) ->
    case ets:lookup(?LEASES, Key) of
        [{_, Value, _}] -> {ok, Value};
        [] -> {error, not_found}
    end.

leases_table() -> ?LEASES.
locks_table() -> ?LOCKS.

%%--------------------------------------------------------------------
%% gen_server callbacks

init({W, Masters, Replicas, Opts}) ->
    ets:new(?LEASES, [set, protected, named_table, {read_concurrency, true}]),
    ets:new(?LOCKS, [set, protected, named_table]),
    ets:new(?META, [set, protected, named_table, {read_concurrency, true}]),
    store_meta(W, Masters, Replicas),
    St0 = #st{push_interval = opt(push_interval, Opts, 100),
              lease_interval = opt(lease_expire_interval, Opts, 1000),
              lock_interval = opt(lock_expire_interval, Opts, 1000)},
    case recovery_init(opt(state_file, Opts, undefined), opt(quiet_period, Opts, undefined),
                       St0) of
        {ok, St} ->
            {ok, schedule(push, schedule(leases, schedule(locks, St)))};
        {error, Reason} ->
            {stop, Reason}
    end.

handle_call({get_write_lock, Key, Expected, Tag}, _From, St) ->
    {reply, get_write_lock(Key, Expected, Tag, recovering(St)), St};

handle_call({release_write_lock, Tag}, _From, St) ->
    drop_lock(Tag),
    {reply, ok, St};

handle_call({write, Tag, Key, Value, Len}, _From, St) when is_integer(Len) ->
    drop_lock(Tag),
    St1 = store_lease(Key, Value, Len, St),
    {reply, ok, log({write, Key, Value, Len}, St1)};

handle_call({update, Tag, Key, NewValue}, _From, St) ->
    drop_lock(Tag),
    update_lease(Key, NewValue),
    {reply, ok, log({update, Key, NewValue}, St)};

handle_call({extend_lease, Tag, Key, Value, Len}, _From, St) when is_integer(Len) ->
    drop_lock(Tag),
    St1 = store_lease(Key, Value, Len, St),
    {reply, ok, log({extend_lease, Key, Value, Len}, St1)};

handle_call({release, Key, Value, Tag}, _From, St) ->
    drop_lock(Tag),
    case ets:lookup(?LEASES, Key) of
        [{_, Held, _}] when Held =:= Value ->
            St1 = delete_lease(Key, St),
            {reply, ok, log({release, Key}, St1)};
        [_] ->
            {reply, {error, not_owner}, St};
        [] ->
            {reply, {error, not_found}, St}
    end;

handle_call({wait_for, Key, Timeout}, From, St) when ?is_timeout(Timeout) ->
    case ets:lookup(?LEASES, Key) of
        [{_, Value, _}] -> {reply, {ok, Value}, St};
        [] -> {noreply, add_waiter(wait_for, Key, From, Timeout, St)}
    end;

handle_call({wait_for_release, Key, Timeout}, From, St) when ?is_timeout(Timeout) ->
    case ets:member(?LEASES, Key) of
        true -> {noreply, add_waiter(wait_for_release, Key, From, Timeout, St)};
        false -> {reply, {ok, released}, St}
    end;

handle_call({set_w, W}, _From, St) when is_integer(W), W > 0 ->
    {_, Masters, Replicas} = meta(),
    store_meta(W, Masters, Replicas),
    {reply, ok, St};

handle_call({set_nodes, Masters, Replicas}, _From, St)
  when is_list(Masters), is_list(Replicas) ->
    {W, _, _} = meta(),
    store_meta(W, Masters, Replicas),
    {reply, ok, St};

handle_call(get_debug_state, _From, St) ->
    {reply, {ok, ets:tab2list(?LOCKS), ets:tab2list(?LEASES),
             St#st.push_timer, St#st.lease_timer, St#st.lock_timer}, St};

handle_call(Request, From, St) ->
    logger:warning("locker: unknown request ~0p from ~0p", [Request, From]),
    {reply, {error, {unknown_request, Request}}, St}.

handle_cast({trans_log, _FromNode, Entries}, St) when is_list(Entries) ->
    {noreply, lists:foldl(fun replay/2, St, Entries)};
handle_cast(Msg, St) ->
    logger:warning("locker: unknown cast ~0p", [Msg]),
    {noreply, St}.

handle_info(expire_leases, St) ->
    {noreply, expire_leases(St)};
handle_info(expire_locks, St) ->
    expire_locks(),
    {noreply, St};
handle_info(push_trans_log, St) ->
    {noreply, push_trans_log(St)};
handle_info({lkr_tick, leases}, St) ->
    {noreply, schedule(leases, expire_leases(St))};
handle_info({lkr_tick, locks}, St) ->
    expire_locks(),
    {noreply, schedule(locks, St)};
handle_info({lkr_tick, push}, St) ->
    {noreply, schedule(push, push_trans_log(St))};
handle_info({lkr_waiter_timeout, WRef}, #st{waiters = Ws} = St) ->
    {noreply, St#st{waiters = maps:remove(WRef, Ws)}};
handle_info(Msg, St) ->
    logger:warning("locker: unknown message ~0p", [Msg]),
    {noreply, St}.

terminate(_Reason, _St) ->
    ok.

code_change(_Old, St, _Extra) ->
    {ok, St}.

%%--------------------------------------------------------------------
%% Leases and write locks

get_write_lock(Key, Expected, Tag, Recovering) ->
    case ets:member(?LOCKS, Key) of
        true ->
            {error, already_locked};
        false ->
            Matches = case ets:lookup(?LEASES, Key) of
                          [{_, Value, _}] -> Value =:= Expected;
                          [] when Recovering -> recovering;
                          [] -> Expected =:= not_found
                      end,
            case Matches of
                true ->
                    ets:insert(?LOCKS, {Key, Tag, now_ms() + ?WRITE_LOCK_TTL}),
                    ok;
                false ->
                    {error, not_expected_value};
                recovering ->
                    {error, recovering}
            end
    end.

drop_lock(Tag) ->
    ets:select_delete(?LOCKS, [{{'_', '$1', '_'}, [{'=:=', '$1', {const, Tag}}], [true]}]).

store_lease(Key, Value, Len, St) ->
    St1 = record_longest(Len, St),
    ets:insert(?LEASES, {Key, Value, now_ms() + Len}),
    wake(wait_for, Key, {ok, Value}, St1).

update_lease(Key, NewValue) ->
    case ets:lookup(?LEASES, Key) of
        [{_, _, ExpireAt}] -> ets:insert(?LEASES, {Key, NewValue, ExpireAt});
        [] -> false
    end.

delete_lease(Key, St) ->
    ets:delete(?LEASES, Key),
    wake(wait_for_release, Key, {ok, released}, St).

replay({write, K, V, Len}, St) when is_integer(Len) ->
    store_lease(K, V, Len, St);
replay({extend_lease, K, V, Len}, St) when is_integer(Len) ->
    store_lease(K, V, Len, St);
replay({update, K, V}, St) ->
    update_lease(K, V),
    St;
replay({release, K}, St) ->
    case ets:member(?LEASES, K) of
        true -> delete_lease(K, St);
        false -> St
    end;
replay(Entry, St) ->
    logger:warning("locker: bad trans_log entry ~0p", [Entry]),
    St.

expire_leases(St) ->
    Now = now_ms(),
    Expired = ets:select(?LEASES, [{{'$1', '_', '$2'}, [{'=<', '$2', Now}], ['$1']}]),
    lists:foldl(fun delete_lease/2, St, Expired).

expire_locks() ->
    Now = now_ms(),
    ets:select_delete(?LOCKS, [{{'_', '_', '$1'}, [{'=<', '$1', Now}], [true]}]).

%%--------------------------------------------------------------------
%% Safe restarts

recovery_init(undefined, _Quiet, St) ->
    {ok, St};
recovery_init(File, Quiet, St) ->
    case file:read_file(File) of
        {ok, Bin} ->
            case string:to_integer(string:trim(Bin)) of
                {Longest, <<>>} when is_integer(Longest), Longest >= 0 ->
                    Period = case Quiet of
                                 undefined -> max(Longest, ?WRITE_LOCK_TTL);
                                 Q when is_integer(Q), Q >= 0 -> Q
                             end,
                    logger:notice("locker: restarted (state file ~s): votes on unknown keys "
                                  "refused for ~p ms", [File, Period]),
                    {ok, St#st{state_file = File, longest = Longest,
                               recover_until = now_ms() + Period}};
                _ ->
                    {error, {bad_state_file, File, Bin}}
            end;
        {error, enoent} ->
            St1 = St#st{state_file = File},
            case write_state(St1) of
                ok -> {ok, St1};
                Error -> Error
            end;
        {error, Reason} ->
            {error, {state_file, File, Reason}}
    end.

recovering(#st{recover_until = undefined}) ->
    false;
recovering(#st{recover_until = Until}) ->
    now_ms() < Until.

%% The longest lease reaches the file before the write granting it is
%% answered (a rename, so a kill never leaves half a file).
record_longest(Len, #st{state_file = File, longest = Longest} = St)
  when File =/= undefined, Len > Longest ->
    St1 = St#st{longest = Len},
    case write_state(St1) of
        ok -> St1;
        {error, Reason} -> error({state_file, File, Reason})
    end;
record_longest(_Len, St) ->
    St.

write_state(#st{state_file = File, longest = Longest}) ->
    Tmp = File ++ ".tmp",
    case file:write_file(Tmp, [integer_to_list(Longest), "\n"]) of
        ok -> file:rename(Tmp, File);
        Error -> Error
    end.

%%--------------------------------------------------------------------
%% Transaction log

log(Entry, #st{log = Log} = St) ->
    St#st{log = [Entry | Log]}.

push_trans_log(#st{log = []} = St) ->
    St;
push_trans_log(#st{log = Log} = St) ->
    {_, Masters, Replicas} = meta(),
    case lists:member(node(), Masters) of
        true ->
            Entries = lists:reverse(Log),
            [gen_server:cast({?SERVER, R}, {trans_log, node(), Entries})
             || R <- Replicas, R =/= node()];
        false ->
            ok
    end,
    St#st{log = []}.

%%--------------------------------------------------------------------
%% Waiters

add_waiter(Kind, Key, From, Timeout, #st{waiters = Ws} = St) ->
    WRef = make_ref(),
    TRef = case Timeout of
               infinity -> undefined;
               _ -> erlang:send_after(Timeout, self(), {lkr_waiter_timeout, WRef})
           end,
    St#st{waiters = Ws#{WRef => {Kind, Key, From, TRef}}}.

wake(Kind, Key, Reply, #st{waiters = Ws} = St) ->
    Woken = maps:filter(fun(_, {K, Ky, _, _}) -> K =:= Kind andalso Ky =:= Key end, Ws),
    maps:foreach(fun(_, {_, _, From, TRef}) ->
                         cancel(TRef),
                         gen_server:reply(From, Reply)
                 end, Woken),
    St#st{waiters = maps:without(maps:keys(Woken), Ws)}.

cancel(undefined) -> ok;
cancel(TRef) -> erlang:cancel_timer(TRef, [{async, true}, {info, false}]).

%%--------------------------------------------------------------------
%% Helpers

store_meta(W, Masters, Replicas) ->
    ets:insert(?META, {meta, W, lists:usort(Masters), lists:usort(Replicas)}).

schedule(push, #st{push_interval = I} = St) ->
    St#st{push_timer = erlang:send_after(I, self(), {lkr_tick, push})};
schedule(leases, #st{lease_interval = I} = St) ->
    St#st{lease_timer = erlang:send_after(I, self(), {lkr_tick, leases})};
schedule(locks, #st{lock_interval = I} = St) ->
    St#st{lock_timer = erlang:send_after(I, self(), {lkr_tick, locks})}.

opt(Name, Opts, Default) when is_map(Opts) ->
    maps:get(Name, Opts, Default);
opt(Name, Opts, Default) when is_list(Opts) ->
    proplists:get_value(Name, Opts, Default).

now_ms() ->
    erlang:monotonic_time(millisecond).
