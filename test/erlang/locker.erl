%% The library's public API (`locker` module of wooga/locker 1.0.x) on a
%% BEAM node of the tests, delegating to the project's reference: lkr (the
%% coordinator, docs/protocol.md section 5) and lkr_server (the server,
%% sections 1-4 and the reference column of section 2a).
%%
%% A suite written for the library drives its nodes with
%% rpc:call(Node, locker, F, A); with this module on a BEAM peer's code path
%% those calls behave as on a node running the library, and lockerd answers
%% the same calls the same way (section 5), so one suite runs against
%% either kind of node.
-module(locker).

-export([start_link/1, start_link/4,
         lock/2, lock/3, lock/4,
         update/3, update/4,
         extend_lease/3, extend_lease/4,
         release/2, release/3,
         wait_for/2, wait_for_release/2,
         dirty_read/1, master_dirty_read/1,
         set_w/2, set_nodes/3,
         lag/0, summary/0, get_meta/0, get_debug_state/0]).

%% The library's defaults: leases checked every second, write locks every
%% second, the transaction log pushed every 100 ms.
start_link(W) ->
    start_link(W, 1000, 1000, 100).

%% {ok, Pid}, linked to the caller. The server starts with no masters and
%% no replicas, as the library's does, until set_nodes/3.
%%
%% Suites written for the library start it with rpc:call(Node, locker,
%% start_link, [W]). That idiom comes from the rpc of older OTP releases,
%% whose worker process exited normally; since OTP 23 rpc:call runs the
%% function in an erpc process that exits with the result as its reason,
%% which would take a linked server down with it the moment the call
%% returns. So a server started from such a process is unlinked from it:
%% the node keeps its `locker`, as those suites expect and as lockerd does
%% (docs/protocol.md section 5).
start_link(W, LeaseExpireInterval, LockExpireInterval, PushTransInterval) ->
    Started = lkr_server:start_link(W, [], [], [{lease_expire_interval, LeaseExpireInterval},
                                                {lock_expire_interval, LockExpireInterval},
                                                {push_interval, PushTransInterval}]),
    case {Started, erlang:process_info(self(), initial_call)} of
        {{ok, Pid}, {initial_call, {erpc, execute_call, _}}} -> unlink(Pid);
        _ -> ok
    end,
    Started.

lock(Key, Value) -> lkr:lock(Key, Value).
lock(Key, Value, LeaseLength) -> lkr:lock(Key, Value, LeaseLength).
lock(Key, Value, LeaseLength, Timeout) -> lkr:lock(Key, Value, LeaseLength, Timeout).

update(Key, Value, NewValue) -> lkr:update(Key, Value, NewValue).
update(Key, Value, NewValue, Timeout) -> lkr:update(Key, Value, NewValue, Timeout).

extend_lease(Key, Value, LeaseLength) -> lkr:extend_lease(Key, Value, LeaseLength).
extend_lease(Key, Value, LeaseLength, Timeout) ->
    lkr:extend_lease(Key, Value, LeaseLength, Timeout).

release(Key, Value) -> lkr:release(Key, Value).
release(Key, Value, Timeout) -> lkr:release(Key, Value, Timeout).

wait_for(Key, Timeout) -> lkr:wait_for(Key, Timeout).
wait_for_release(Key, Timeout) -> lkr:wait_for_release(Key, Timeout).

dirty_read(Key) -> lkr:dirty_read(Key).
master_dirty_read(Key) -> lkr:master_dirty_read(Key).

set_w(Cluster, W) -> lkr:set_w(Cluster, W).
set_nodes(Cluster, Masters, Replicas) -> lkr:set_nodes(Cluster, Masters, Replicas).

lag() -> lkr:lag().
summary() -> lkr:summary().
get_meta() -> lkr:get_meta().

get_debug_state() ->
    gen_server:call(locker, get_debug_state).
