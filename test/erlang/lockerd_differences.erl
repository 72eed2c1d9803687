%% The documented differences between lockerd and the reference library
%% (docs/protocol.md section 2a, entries D1-D8), as expected values per
%% node kind. This is the only place where a suite may expect something of
%% a `lockerd` node that it does not expect of a `beam` node (one running
%% lkr_server, the library's model) or the other way round: every other
%% expectation of the suites is the same for both kinds, so any divergence
%% not listed here fails a test.
%%
%% Kind is the kind of the node whose server handles the request (for a
%% waiter: the node it waits on): lockerd | beam.
-module(lockerd_differences).

-export([d1/2, d2/2, d3/3, d4/2, d5/1, d6/1, d7/2, d8/1, d8/4, all/0]).

all() ->
    [d1, d2, d3, d4, d5, d6, d7, d8].

%% D1: the write locks a server holds for the key after it answered
%% {release, K, V, Tag} with not_owner / not_found, given the ones it held
%% before (the caller's Tag among them).
d1(beam, LocksBefore) -> LocksBefore;
d1(lockerd, _LocksBefore) -> [].

%% D2: the reply to {wait_for, K, T} when K already holds Value, within T
%% (no_reply: the waiter is queued and T passes first).
d2(beam, _Value) -> no_reply;
d2(lockerd, Value) -> {ok, Value}.

%% D3: what a wait_for waiter gets when the key is written by How:
%% direct_write | direct_extend (calls on the server) | replayed_write |
%% replayed_extend (entries of a transaction log).
d3(beam, replayed_write, Value) -> {ok, Value};
d3(beam, _How, _Value) -> no_reply;
d3(lockerd, _How, Value) -> {ok, Value}.

%% D4: what a wait_for_release waiter of K gets from Event:
%% release_ok | release_not_owner | release_not_found (direct release calls
%% with that answer) | replayed_release | expiry.
d4(beam, replayed_release) -> no_reply;
d4(beam, _Event) -> {ok, released};
d4(lockerd, release_ok) -> {ok, released};
d4(lockerd, replayed_release) -> {ok, released};
d4(lockerd, expiry) -> {ok, released};
d4(lockerd, _Event) -> no_reply.

%% D5: what a wait_for_release waiter whose timeout has passed gets when the
%% key is then released.
d5(beam) -> {ok, released};
d5(lockerd) -> no_reply.

%% D6: the reply to {wait_for_release, K, T} for a key not held, within T.
d6(beam) -> no_reply;
d6(lockerd) -> {ok, released}.

%% D7: the outcome of an unknown or malformed call Req: crash (the caller
%% exits because the server died; the node has no `locker` until it is
%% started again) or the reply. Malformed casts: crash | survive, as
%% d7(Kind, cast).
d7(beam, cast) -> crash;
d7(lockerd, cast) -> survive;
d7(beam, _Req) -> crash;
d7(lockerd, Req) -> {error, {unknown_request, Req}}.

%% D8: the granularity of lease expiry in ms: a lease of length Len is gone
%% once Len + d8(Kind) ms have passed and an expiry check ran (beam: the
%% 1-second bucket of its ExpireAt must have passed, up to a second after
%% the lease's end; lockerd expires each lease at its own millisecond).
d8(beam) -> 1000;
d8(lockerd) -> 1.

%% D8, as get_debug_state reports it: the ExpireAt values (whole seconds)
%% a lease of Len ms written between wall-clock seconds S0 and S1 may
%% show. The reference computes trunc(S + Len / 1000) from the whole second
%% S of the write; lockerd reports the second in which it expires the
%% lease, which is that or the next one when the fractions of the write
%% time and of Len / 1000 add up past a second.
d8(beam, Len, S0, S1) ->
    lists:usort([trunc(S + Len / 1000) || S <- lists:seq(S0, S1)]);
d8(lockerd, Len, S0, S1) ->
    lists:usort(lists:append([[trunc(S + Len / 1000), trunc(S + Len / 1000) + 1]
                              || S <- lists:seq(S0, S1), Len rem 1000 =/= 0])
                ++ [trunc(S + Len / 1000) || S <- lists:seq(S0, S1)]).
