%% The coordinator / client side of the locker protocol (docs/protocol.md
%% section 5), written from the protocol text: what the library's `locker`
%% client functions do, with the same return values and the same failures
%% (test/erlang/locker.erl exposes them under the library's names).
%%
%% Every write is run by the calling process: a fresh Tag = make_ref(), a
%% vote by gen_server:multi_call to all masters, then a commit. W and the
%% node lists come from the local server's meta table (lkr_server), which
%% every node using this API runs, as a master, a replica or a plain client.
-module(lkr).

-export([lock/2, lock/3, lock/4,
         update/3, update/4,
         extend_lease/3, extend_lease/4, extend_lease_counts/4,
         release/2, release/3,
         dirty_read/1, master_dirty_read/1, master_dirty_read/2,
         wait_for/2, wait_for_release/1, wait_for_release/2,
         set_nodes/3, set_w/2,
         lag/0, summary/0, get_meta/0]).

-define(SERVER, locker).
-define(LEASE_LENGTH, 2000).
-define(TIMEOUT, 5000).

%%--------------------------------------------------------------------
%% Writes

lock(Key, Value) ->
    lock(Key, Value, ?LEASE_LENGTH).

lock(Key, Value, LeaseLength) ->
    lock(Key, Value, LeaseLength, ?TIMEOUT).

%% {ok, W, Votes, Commits} | {error, no_quorum}
lock(Key, Value, LeaseLength, Timeout) ->
    vote_and_commit(Key, not_found, Timeout,
                    fun(Tag) -> {write, Tag, Key, Value, LeaseLength} end).

update(Key, Value, NewValue) ->
    update(Key, Value, NewValue, ?TIMEOUT).

%% {ok, W, Votes, Commits} | {error, no_quorum}
update(Key, Value, NewValue, Timeout) ->
    vote_and_commit(Key, Value, Timeout,
                    fun(Tag) -> {update, Tag, Key, NewValue} end).

extend_lease(Key, Value, LeaseLength) ->
    extend_lease(Key, Value, LeaseLength, ?TIMEOUT).

%% ok | {error, no_quorum}
extend_lease(Key, Value, LeaseLength, Timeout) ->
    case extend_lease_counts(Key, Value, LeaseLength, Timeout) of
        {ok, _W, _Votes, _Commits} -> ok;
        Error -> Error
    end.

%% extend_lease/4 with the counts the other writes return:
%% {ok, W, Votes, Commits} | {error, no_quorum}. The fault-injection runs
%% use the vote count (a release that was lost shows as a later extend of
%% the released value that W masters still vote for).
extend_lease_counts(Key, Value, LeaseLength, Timeout) ->
    {W, Masters, _} = get_meta_w(),
    Tag = make_ref(),
    case vote(Masters, Key, Value, Tag, Timeout) of
        Votes when Votes >= W ->
            {Replies, _Bad} = multi_call(Masters, {extend_lease, Tag, Key, Value, LeaseLength},
                                         Timeout),
            Oks = [N || {N, ok} <- Replies],
            release_write_lock(Masters -- Oks, Tag, Timeout),
            {ok, W, Votes, length(Oks)};
        _ ->
            release_write_lock(Masters, Tag, Timeout),
            {error, no_quorum}
    end.

release(Key, Value) ->
    release(Key, Value, ?TIMEOUT).

%% {ok, W, Votes, Oks} | {error, no_quorum}; the release itself goes to
%% masters and replicas.
release(Key, Value, Timeout) ->
    {W, Masters, Replicas} = get_meta_w(),
    Tag = make_ref(),
    case vote(Masters, Key, Value, Tag, Timeout) of
        Votes when Votes >= W ->
            Targets = lists:usort(Masters ++ Replicas),
            {Replies, _Bad} = multi_call(Targets, {release, Key, Value, Tag}, Timeout),
            {ok, W, Votes, count_ok(Replies)};
        _ ->
            release_write_lock(Masters, Tag, Timeout),
            {error, no_quorum}
    end.

vote_and_commit(Key, Expected, Timeout, CommitReq) ->
    {W, Masters, _} = get_meta_w(),
    Tag = make_ref(),
    case vote(Masters, Key, Expected, Tag, Timeout) of
        Votes when Votes >= W ->
            {Replies, _Bad} = multi_call(Masters, CommitReq(Tag), Timeout),
            {ok, W, Votes, count_ok(Replies)};
        _ ->
            release_write_lock(Masters, Tag, Timeout),
            {error, no_quorum}
    end.

vote(Masters, Key, Expected, Tag, Timeout) ->
    {Replies, _Bad} = multi_call(Masters, {get_write_lock, Key, Expected, Tag}, Timeout),
    count_ok(Replies).

release_write_lock([], _Tag, _Timeout) ->
    ok;
release_write_lock(Nodes, Tag, Timeout) ->
    multi_call(Nodes, {release_write_lock, Tag}, Timeout),
    ok.

multi_call(Nodes, Req, Timeout) ->
    gen_server:multi_call(Nodes, ?SERVER, Req, Timeout).

count_ok(Replies) ->
    length([ok || {_, ok} <- Replies]).

%%--------------------------------------------------------------------
%% Reads

%% {ok, Value} | {error, not_found}, from the local table only.
dirty_read(Key) ->
    lkr_server:lease(Key).

master_dirty_read(Key) ->
    master_dirty_read(Key, ?SERVER).

%% Module: the module that serves dirty_read/1 on the masters (`locker`:
%% the library, lockerd, and test/erlang/locker.erl on BEAM test nodes), or
%% a fun(Node) -> Module.
master_dirty_read(Key, Module) ->
    {_, Masters, _} = get_meta_w(),
    case lists:member(node(), Masters) of
        true ->
            dirty_read(Key);
        false ->
            Master = lists:nth(rand:uniform(length(Masters)), Masters),
            Mod = case Module of
                      F when is_function(F, 1) -> F(Master);
                      M when is_atom(M) -> M
                  end,
            rpc:call(Master, Mod, dirty_read, [Key])
    end.

%% {ok, Value}, read locally first; else the local server is asked and
%% the caller exits with {timeout, {gen_server, call, [locker, {wait_for,
%% Key, Timeout}, Timeout]}} when Timeout passes first (docs/protocol.md
%% section 5: no error tuple).
wait_for(Key, Timeout) ->
    case dirty_read(Key) of
        {ok, Value} ->
            {ok, Value};
        {error, not_found} ->
            gen_server:call(?SERVER, {wait_for, Key, Timeout}, Timeout)
    end.

wait_for_release(Key) ->
    wait_for_release(Key, ?TIMEOUT).

%% {ok, released} | {error, key_not_locked} (not held locally); exits on
%% timeout like wait_for/2.
wait_for_release(Key, Timeout) ->
    case dirty_read(Key) of
        {error, not_found} ->
            {error, key_not_locked};
        {ok, _} ->
            gen_server:call(?SERVER, {wait_for_release, Key, Timeout}, Timeout)
    end.

%%--------------------------------------------------------------------
%% Administration

%% ok when every node of Cluster answered; else the caller crashes with
%% {badmatch, {Replies, BadNodes}}. No timeout, as the library.
set_nodes(Cluster, Masters, Replicas) ->
    {_Replies, []} = gen_server:multi_call(Cluster, ?SERVER, {set_nodes, Masters, Replicas}),
    ok.

%% As set_nodes/3; a non-integer W is a function_clause.
set_w(Cluster, W) when is_integer(W) ->
    {_Replies, []} = gen_server:multi_call(Cluster, ?SERVER, {set_w, W}),
    ok.

%% {Milliseconds, LockResult}: the time a lock of a probe key takes (a
%% float), then the probe is released.
lag() ->
    Key = {'__lock_lag_probe', os:timestamp()},
    {Micros, Result} = timer:tc(fun() -> lock(Key, foo, 2000) end),
    release(Key, foo),
    {Micros / 1000, Result}.

summary() ->
    [{write_locks, ets:info(lkr_server:locks_table(), size)},
     {leases, ets:info(lkr_server:leases_table(), size)}].

%% {Masters, Replicas, W}
get_meta() ->
    {W, Masters, Replicas} = lkr_server:meta(),
    {Masters, Replicas, W}.

get_meta_w() ->
    lkr_server:meta().
