%% The BEAM reference locker server: a model of the library's server
%% (wooga/locker 1.0.x) as docs/protocol.md sections 1-4 describe it,
%% written from the protocol text.
%%
%% It is what the test suites run against when no lockerd is involved, and
%% the local server of client/replica nodes in mixed clusters. Where lockerd
%% deliberately differs from the library (docs/protocol.md section 2a,
%% entries D1-D8), this module does what the library does, the "reference"
%% column, so that a suite can tell lockerd from the library:
%%
%%  D1 a release answered not_owner / not_found keeps the caller's write lock;
%%  D2 {wait_for, K, T} queues the waiter even when K holds a lease;
%%  D3 only a `write` entry replayed from a transaction log wakes wait_for
%%     waiters (not direct write / extend_lease calls, not replayed extends);
%%  D4 wait_for_release waiters are woken by any direct `release` call for
%%     the key whatever its result, and by expiry; not by a replayed release;
%%  D5 a wait_for_release waiter is answered even after its timeout passed;
%%  D6 {wait_for_release, K, T} for a key not held queues;
%%  D7 an unknown call or malformed arguments crash the server
%%     (function_clause, badarith; an unknown cast stops it with
%%     {badmsg, Msg}): the caller exits, the node has no `locker` until it is
%%     started again;
%%  D8 leases expire in 1-second buckets checked every second.
%%
%% State model:
%%  - leases live in the protected named ETS set `lkr_leases` as
%%    {Key, Value, ExpireAt}; a `set` compares keys with =:=, as the protocol
%%    requires, and lets `lkr:dirty_read/1` read without a call;
%%  - write locks live in `lkr_locks` as {Key, Tag, ExpireAt};
%%  - ExpireAt is in whole wall-clock seconds, as get_debug_state reports it:
%%    trunc(NowSeconds + LeaseLength / 1000) for a lease, NowSeconds + 10 for
%%    a write lock, NowSeconds the integer seconds of os:timestamp();
%%  - expiry buckets: the duplicate bag `lkr_expiry` holds {Second, Key} for
%%    each lease written, the state a gb_set of the seconds that have a
%%    bucket. The lease job takes the buckets of the seconds that have
%%    passed and deletes a key only if its lease still carries that second
%%    (a rewrite moved it to another bucket), so a tick costs the leases that
%%    expire, not the size of the table;
%%  - meta data (W, masters, replicas) lives in `lkr_meta` so the client API
%%    reads it without a call;
%%  - waiters are kept in the server state per key: wait_for waiters with a
%%    timer that drops them silently, wait_for_release waiters without one
%%    (D5);
%%  - the three periodic jobs are timer:send_interval/2 handles sending the
%%    plain messages expire_leases, expire_locks and push_trans_log, the same
%%    messages a suite sends with rpc:sbcast; get_debug_state returns the
%%    handles, and timer:cancel/1 of one stops that job.
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
%% (The quiet period is measured on the monotonic clock: it is not part of
%% the protocol's observable state.)
-module(lkr_server).
-behaviour(gen_server).

-export([start_link/1, start_link/4, start/1, start/4, stop/0,
         meta/0, lease/1, leases_table/0, locks_table/0, now_seconds/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2,
         terminate/2, code_change/3]).

-define(SERVER, locker).
-define(LEASES, lkr_leases).
-define(LOCKS, lkr_locks).
-define(EXPIRY, lkr_expiry).
-define(META, lkr_meta).
-define(WRITE_LOCK_SECONDS, 10).
-define(WRITE_LOCK_MS, 10000).

-record(st, {
          log = [] :: [term()],                       %% newest entry first
          %% Key => [{WRef, From, TimerRef}]
          wait_for = #{} :: map(),
          %% Key => [From]
          wait_release = #{} :: map(),
          buckets = gb_sets:empty() :: gb_sets:set(integer()),
          state_file :: file:filename() | undefined,
          longest = 0 :: non_neg_integer(),           %% longest lease granted (ms)
          recover_until :: integer() | undefined,     %% monotonic ms bound of the quiet period
          lease_job :: {interval, reference()} | undefined,
          lock_job :: {interval, reference()} | undefined,
          push_job :: {interval, reference()} | undefined
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

%% Whole seconds of wall-clock time, as ExpireAt values are computed.
now_seconds() ->
    {Mega, Sec, _Micro} = os:timestamp(),
    Mega * 1000000 + Sec.

%%--------------------------------------------------------------------
%% gen_server callbacks

init({W, Masters, Replicas, Opts}) ->
    ets:new(?LEASES, [set, protected, named_table, {read_concurrency, true}]),
    ets:new(?LOCKS, [set, protected, named_table]),
    ets:new(?EXPIRY, [duplicate_bag, protected, named_table]),
    ets:new(?META, [set, protected, named_table, {read_concurrency, true}]),
    store_meta(W, Masters, Replicas),
    case recovery_init(opt(state_file, Opts, undefined), opt(quiet_period, Opts, undefined),
                       #st{}) of
        {ok, St} ->
            {ok, LeaseJob} = timer:send_interval(opt(lease_expire_interval, Opts, 1000),
                                                 expire_leases),
            {ok, LockJob} = timer:send_interval(opt(lock_expire_interval, Opts, 1000),
                                                expire_locks),
            {ok, PushJob} = timer:send_interval(opt(push_interval, Opts, 100),
                                                push_trans_log),
            {ok, St#st{lease_job = LeaseJob, lock_job = LockJob, push_job = PushJob}};
        {error, Reason} ->
            {stop, Reason}
    end.

%% No catch-all clause: an unknown request, or one with malformed
%% arguments, crashes the server with function_clause or badarith (D7).
handle_call({get_write_lock, Key, Expected, Tag}, _From, St) ->
    {reply, get_write_lock(Key, Expected, Tag, recovering(St)), St};

handle_call({release_write_lock, Tag}, _From, St) ->
    drop_lock(Tag),
    {reply, ok, St};

handle_call({write, Tag, Key, Value, Len}, _From, St) ->
    St1 = store_lease(Key, Value, Len, St),
    drop_lock(Tag),
    {reply, ok, log({write, Key, Value, Len}, St1)};

handle_call({update, Tag, Key, NewValue}, _From, St) ->
    drop_lock(Tag),
    update_lease(Key, NewValue),
    {reply, ok, log({update, Key, NewValue}, St)};

handle_call({extend_lease, Tag, Key, Value, Len}, _From, St) ->
    St1 = store_lease(Key, Value, Len, St),
    drop_lock(Tag),
    {reply, ok, log({extend_lease, Key, Value, Len}, St1)};

%% D1: only the ok path drops the write lock. D4: every direct release of
%% the key answers its release waiters, whatever the result.
handle_call({release, Key, Value, Tag}, _From, St) ->
    {Reply, St1} = case ets:lookup(?LEASES, Key) of
                       [{_, Held, _}] when Held =:= Value ->
                           drop_lock(Tag),
                           ets:delete(?LEASES, Key),
                           {ok, log({release, Key}, St)};
                       [_] ->
                           {{error, not_owner}, St};
                       [] ->
                           {{error, not_found}, St}
                   end,
    {reply, Reply, wake_release(Key, St1)};

%% D2: queued even when the key holds a lease.
handle_call({wait_for, Key, Timeout}, From, St)
  when Timeout =:= infinity; is_integer(Timeout), Timeout >= 0 ->
    {noreply, add_wait_for(Key, From, Timeout, St)};

%% D5, D6: queued whether or not the key is held, never timed out.
handle_call({wait_for_release, Key, _Timeout}, From, #st{wait_release = Ws} = St) ->
    {noreply, St#st{wait_release = Ws#{Key => [From | maps:get(Key, Ws, [])]}}};

handle_call({set_w, W}, _From, St) when is_integer(W) ->
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
             St#st.lease_job, St#st.lock_job, St#st.push_job}, St}.

handle_cast({trans_log, _FromNode, Entries}, St) ->
    {noreply, lists:foldl(fun replay/2, St, Entries)};
handle_cast(Msg, St) ->
    {stop, {badmsg, Msg}, St}.

handle_info(expire_leases, St) ->
    {noreply, expire_leases(St)};
handle_info(expire_locks, St) ->
    expire_locks(),
    {noreply, St};
handle_info(push_trans_log, St) ->
    {noreply, push_trans_log(St)};
handle_info({lkr_wait_for_timeout, Key, WRef}, St) ->
    {noreply, drop_wait_for(Key, WRef, St)};
handle_info(_Msg, St) ->
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
                    ets:insert(?LOCKS, {Key, Tag, now_seconds() + ?WRITE_LOCK_SECONDS}),
                    ok;
                false ->
                    {error, not_expected_value};
                recovering ->
                    {error, recovering}
            end
    end.

drop_lock(Tag) ->
    ets:select_delete(?LOCKS, [{{'_', '$1', '_'}, [{'=:=', '$1', {const, Tag}}], [true]}]).

%% A non-number Len fails here with badarith before anything changed (D7).
store_lease(Key, Value, Len, St) ->
    ExpireAt = trunc(now_seconds() + Len / 1000),
    St1 = record_longest(Len, St),
    ets:insert(?LEASES, {Key, Value, ExpireAt}),
    ets:insert(?EXPIRY, {ExpireAt, Key}),
    St1#st{buckets = gb_sets:add(ExpireAt, St1#st.buckets)}.

update_lease(Key, NewValue) ->
    case ets:lookup(?LEASES, Key) of
        [{_, _, ExpireAt}] -> ets:insert(?LEASES, {Key, NewValue, ExpireAt});
        [] -> false
    end.

%% D3: a replayed write wakes wait_for waiters, a replayed extend does not.
%% D4: a replayed release does not wake release waiters.
replay({write, K, V, Len}, St) ->
    wake_wait_for(K, V, store_lease(K, V, Len, St));
replay({extend_lease, K, V, Len}, St) ->
    store_lease(K, V, Len, St);
replay({update, K, V}, St) ->
    update_lease(K, V),
    St;
replay({release, K}, St) ->
    ets:delete(?LEASES, K),
    St.

%% D8: every bucket of a second that has passed. A lease of ExpireAt E goes
%% with the first check in second E + 1, so it never lives less than its
%% length.
expire_leases(#st{buckets = Buckets} = St) ->
    Now = now_seconds(),
    case gb_sets:is_empty(Buckets) of
        true ->
            St;
        false ->
            case gb_sets:take_smallest(Buckets) of
                {Sec, Rest} when Sec < Now ->
                    Keys = [K || {_, K} <- ets:lookup(?EXPIRY, Sec)],
                    ets:delete(?EXPIRY, Sec),
                    St1 = lists:foldl(fun(K, S) -> expire_key(K, Sec, S) end,
                                      St#st{buckets = Rest}, Keys),
                    expire_leases(St1);
                _ ->
                    St
            end
    end.

expire_key(Key, Sec, St) ->
    case ets:lookup(?LEASES, Key) of
        [{_, _, Sec}] ->
            ets:delete(?LEASES, Key),
            wake_release(Key, St);
        _ ->
            St
    end.

expire_locks() ->
    Now = now_seconds(),
    ets:select_delete(?LOCKS, [{{'_', '_', '$1'}, [{'<', '$1', Now}], [true]}]).

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
                                 undefined -> max(Longest, ?WRITE_LOCK_MS);
                                 Q when is_integer(Q), Q >= 0 -> Q
                             end,
                    logger:notice("locker: restarted (state file ~s): votes on unknown keys "
                                  "refused for ~p ms", [File, Period]),
                    {ok, St#st{state_file = File, longest = Longest,
                               recover_until = mono_ms() + Period}};
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
    mono_ms() < Until.

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
    case file:write_file(Tmp, [integer_to_list(trunc(Longest)), "\n"]) of
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

add_wait_for(Key, From, Timeout, #st{wait_for = Ws} = St) ->
    WRef = make_ref(),
    TRef = case Timeout of
               infinity -> undefined;
               _ -> erlang:send_after(Timeout, self(), {lkr_wait_for_timeout, Key, WRef})
           end,
    St#st{wait_for = Ws#{Key => [{WRef, From, TRef} | maps:get(Key, Ws, [])]}}.

drop_wait_for(Key, WRef, #st{wait_for = Ws} = St) ->
    case [W || {R, _, _} = W <- maps:get(Key, Ws, []), R =/= WRef] of
        [] -> St#st{wait_for = maps:remove(Key, Ws)};
        Left -> St#st{wait_for = Ws#{Key := Left}}
    end.

wake_wait_for(Key, Value, #st{wait_for = Ws} = St) ->
    case maps:take(Key, Ws) of
        {Waiters, Ws1} ->
            [begin
                 cancel(TRef),
                 gen_server:reply(From, {ok, Value})
             end || {_, From, TRef} <- lists:reverse(Waiters)],
            St#st{wait_for = Ws1};
        error ->
            St
    end.

wake_release(Key, #st{wait_release = Ws} = St) ->
    case maps:take(Key, Ws) of
        {Froms, Ws1} ->
            [gen_server:reply(From, {ok, released}) || From <- lists:reverse(Froms)],
            St#st{wait_release = Ws1};
        error ->
            St
    end.

cancel(undefined) -> ok;
cancel(TRef) -> erlang:cancel_timer(TRef, [{async, true}, {info, false}]).

%%--------------------------------------------------------------------
%% Helpers

store_meta(W, Masters, Replicas) ->
    ets:insert(?META, {meta, W, lists:usort(Masters), lists:usort(Replicas)}).

opt(Name, Opts, Default) when is_map(Opts) ->
    maps:get(Name, Opts, Default);
opt(Name, Opts, Default) when is_list(Opts) ->
    proplists:get_value(Name, Opts, Default).

mono_ms() ->
    erlang:monotonic_time(millisecond).
