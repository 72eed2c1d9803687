%% The nemesis of the fault-injection runs: one process that, until told
%% to stop, alternates calm periods with one fault at a time on the
%% masters, and records each fault as #{type, desc, start, stop} (µs since
%% the run's start, the history's clock).
%%
%% Faults (N masters, M = N div 2 + 1, a majority; see pick/1 for the
%% order):
%%  - kill: kill -9 one master, or M at once, or M in turn ("rolling": each
%%    restarted before the next is killed), then restart them with the
%%    same state file;
%%  - pause: SIGSTOP one master or M, then SIGCONT;
%%  - partition (netns mode only): one master cut from every other node,
%%    the client cut from one master, or the client cut from M masters.
%%
%% Restarts and safety. A master that restarts loses its leases. With a
%% quiet period (lockerd --state-file, lkr_server state_file) it refuses
%% votes on keys it does not know for the longest lease it ever granted,
%% so it may come back at once. A master without one is kept down for
%% longer than the longest lease (plus margin) instead: every lease it
%% held has run out by the time it votes again, which gives the same
%% guarantee. In unsafe mode (FAULTS_UNSAFE=1: quiet period 0) every fault
%% is a majority killed and back within 300 ms, so the checker must find
%% violations.
%%
%% A stop request ends the current pause or partition early (the paused
%% are resumed, links healed) and restarts the killed (never before their
%% downtime is over) before the nemesis answers with the current master
%% handles and the fault list. A master that exits without being killed
%% (a crash) is restarted and reported in `crashed`; a master that cannot
%% be restarted ends the nemesis with an error.
-module(faults_nemesis).

-export([start/2, stop/1]).

%% Ctx: #{handles := #{Id => Handle}, meta, env, t0 (µs), lease_max (ms),
%% unsafe (bool), client := {Ns, Ip}, seed}.
start(Ctx, Seed) ->
    spawn(fun() ->
                  rand:seed(exsss, Seed),
                  loop(Ctx#{faults => [], crashed => []})
          end).

%% {ok, Handles, Faults, Crashed} once the nemesis has healed everything,
%% or {error, Reason, Handles} (the handles it knew of last).
stop({Pid, Known}) ->
    Ref = monitor(process, Pid),
    Pid ! {stop, self()},
    receive
        {nemesis_done, Pid, Handles, Faults, Crashed} ->
            demonitor(Ref, [flush]),
            {ok, Handles, Faults, Crashed};
        {'DOWN', Ref, process, Pid, Reason} ->
            {error, Reason, Known}
    after 180000 ->
            exit(Pid, kill),
            {error, nemesis_did_not_stop, Known}
    end.

loop(Ctx) ->
    case hold(rand_between(1000, 2500)) of
        stop ->
            finish(Ctx);
        ok ->
            Ctx1 = inject(pick(Ctx), restart_crashed(Ctx)),
            case get(stop_from) of
                undefined -> loop(Ctx1);
                _ -> finish(Ctx1)
            end
    end.

finish(Ctx) ->
    From = case get(stop_from) of
               undefined -> receive {stop, F} -> F end;
               F -> F
           end,
    #{handles := Hs, faults := Fs, crashed := Cr} = heal_all(restart_crashed(Ctx)),
    From ! {nemesis_done, self(), Hs, lists:reverse(Fs), lists:reverse(Cr)}.

%% Masters that exited although nobody killed them: a crash to report.
restart_crashed(#{handles := Hs, crashed := Cr} = Ctx) ->
    case [Id || {Id, H} <- maps:to_list(Hs), not faults_nodes:alive(H)] of
        [] ->
            Ctx;
        Dead ->
            Found = [{maps:get(name, maps:get(Id, Hs)), maps:get(log, maps:get(Id, Hs)),
                      now_us(Ctx)} || Id <- Dead],
            restart(Dead, Ctx#{crashed := lists:reverse(Found) ++ Cr})
    end.

%% Sleep Ms; a stop request is remembered but does not shorten it (a
%% master without a quiet period must stay down that long).
wait_full(Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    receive
        {stop, From} ->
            put(stop_from, From),
            wait_full(max(0, Deadline - erlang:monotonic_time(millisecond)))
    after Ms ->
            ok
    end.

%% Sleep Ms unless a stop request comes first (remembered for the loop).
hold(Ms) ->
    case get(stop_from) of
        undefined ->
            receive
                {stop, From} -> put(stop_from, From), stop
            after Ms -> ok
            end;
        _ ->
            stop
    end.

%%--------------------------------------------------------------------
%% Choosing a fault

%% Fault types take turns — kill, pause, partition, pause, partition
%% (partitions only in netns mode): a kill costs the restarted masters a
%% 10 s quiet period, so kills come every fifth fault and the cluster is
%% not always recovering. The variants of each type take turns too, a
%% majority kill first, so that even a short run sees one; the targets are
%% random.
pick(#{handles := Hs, unsafe := true}) ->
    %% checking the checker: only the fault the quiet period is for
    Ids = lists:sort(maps:keys(Hs)),
    {kill, majority, pick_n(length(Ids) div 2 + 1, Ids)};
pick(#{handles := Hs, env := #{mode := Mode}}) ->
    Ids = lists:sort(maps:keys(Hs)),
    M = length(Ids) div 2 + 1,
    Types = case Mode of
                netns -> [kill, pause, partition, pause, partition];
                loopback -> [kill, pause, pause]
            end,
    Type = lists:nth(next_turn(fault) rem length(Types) + 1, Types),
    Variants = case Type of
                   kill -> [{majority, M}, {one, 1}, {rolling, M}];
                   pause -> [{one, 1}, {majority, M}];
                   partition -> [{isolate_one, 1}, {client_majority, M}, {client_one, 1}]
               end,
    {How, N} = lists:nth(next_turn(Type) rem length(Variants) + 1, Variants),
    {Type, How, pick_n(N, Ids)}.

next_turn(Counter) ->
    N = case get({turn, Counter}) of undefined -> 0; T -> T end,
    put({turn, Counter}, N + 1),
    N.

pick_n(N, Ids) ->
    lists:sort(lists:sublist([I || {_, I} <- lists:sort([{rand:uniform(), I} || I <- Ids])], N)).

%%--------------------------------------------------------------------
%% Injecting

inject({kill, rolling, Ids} = F, Ctx) ->
    Start = now_us(Ctx),
    Ctx1 = lists:foldl(fun(Id, C) ->
                               C1 = kill_restart([Id], C),
                               hold(rand_between(100, 400)),
                               C1
                       end, Ctx, Ids),
    record(F, Start, Ctx1);
inject({kill, _, Ids} = F, Ctx) ->
    Start = now_us(Ctx),
    record(F, Start, kill_restart(Ids, Ctx));
inject({pause, _, Ids} = F, #{handles := Hs} = Ctx) ->
    Start = now_us(Ctx),
    [faults_nodes:signal(maps:get(Id, Hs), "STOP") || Id <- Ids],
    hold(rand_between(300, 2500)),
    [faults_nodes:signal(maps:get(Id, Hs), "CONT") || Id <- Ids],
    record(F, Start, Ctx);
inject({partition, How, Ids} = F, #{handles := Hs, client := Client, env := Env} = Ctx) ->
    Addr = fun(Id) -> #{ns := Ns, ip := Ip} = maps:get(Id, Hs), {Ns, Ip} end,
    {As, Bs} = case How of
                   isolate_one ->
                       [Id] = Ids,
                       {[Addr(Id)], [Client | [Addr(O) || O <- maps:keys(Hs), O =/= Id]]};
                   _ ->
                       {[Addr(Id) || Id <- Ids], [Client]}
               end,
    Start = now_us(Ctx),
    faults_nodes:cut(As, Bs, Env),
    hold(rand_between(1000, 4000)),
    heal_links(Ctx),
    record(F, Start, Ctx).

%% kill -9 the masters, keep them down, restart them (same spec, so the
%% same state file); returns Ctx with the new handles.
kill_restart(Ids, #{handles := Hs} = Ctx) ->
    [faults_nodes:kill9(maps:get(Id, Hs)) || Id <- Ids],
    wait_full(lists:max([downtime(maps:get(Id, Hs), Ctx) || Id <- Ids])),
    restart(Ids, Ctx).

restart(Ids, #{handles := Hs, meta := Meta, env := Env} = Ctx) ->
    Hs1 = lists:foldl(fun(Id, Acc) ->
                              Spec = spec(maps:get(Id, Acc)),
                              lose_state(Spec, Ctx),
                              Acc#{Id := faults_nodes:start_master(Spec, Meta, Env)}
                      end, Hs, Ids),
    Ctx#{handles := Hs1}.

%% Unsafe mode also restarts lockerd masters as if their disk had been
%% replaced: the state file is gone, so are the fencing epochs, and the
%% checker must see tokens go back (faults_check rule 4).
lose_state(#{kind := lockerd, state_file := File}, #{unsafe := true}) when is_list(File) ->
    file:delete(File);
lose_state(_Spec, _Ctx) ->
    ok.

downtime(_H, #{unsafe := true}) ->
    rand_between(50, 300);
downtime(H, #{lease_max := LMax}) ->
    case protected(H) of
        true -> rand_between(100, 1000);
        false -> LMax + 500 + rand_between(0, 500)
    end.

%% A master with a quiet period after restarts (see the module doc).
protected(#{quiet := 0}) -> false;
protected(#{state_file := F}) -> F =/= undefined;
protected(_) -> false.

spec(H) ->
    maps:without([owner, os_pid, log], H).

%% Bring everything back: resume the paused (SIGCONT on a running process
%% does nothing) and heal every link.
heal_all(#{handles := Hs} = Ctx) ->
    [faults_nodes:signal(H, "CONT") || H <- maps:values(Hs)],
    heal_links(Ctx),
    Ctx.

heal_links(#{env := #{mode := loopback}}) ->
    ok;
heal_links(#{handles := Hs, client := {ClientNs, _}, env := Env}) ->
    faults_nodes:heal([ClientNs | [Ns || #{ns := Ns} <- maps:values(Hs)]], Env).

record({Type, How, Ids}, Start, #{faults := Fs, handles := Hs, lease_max := LMax} = Ctx) ->
    Names = [maps:get(name, maps:get(Id, Hs)) || Id <- Ids],
    Desc = lists:flatten(io_lib:format("~s ~s ~s", [Type, How, string:join(Names, ",")])),
    Tail = LMax + case Type of
                      kill -> lists:max([quiet_ms(maps:get(Id, Hs), Ctx) || Id <- Ids]);
                      _ -> 0
                  end,
    Ctx#{faults := [#{type => Type, desc => Desc, start => Start, stop => now_us(Ctx),
                      tail => Tail * 1000} | Fs]}.

%% How long a restarted master refuses unknown keys (availability is
%% charged to the kill meanwhile): lockerd's rule, the longest lease
%% rounded up to 1000 * 2^k ms and at least the 10 s a write lock lives,
%% which lkr_server follows too (without the rounding).
quiet_ms(H, #{lease_max := LMax, unsafe := Unsafe}) ->
    case Unsafe orelse not protected(H) of
        true -> 0;
        false -> max(10000, round_up(LMax, 1000))
    end.

round_up(L, P) when P >= L -> P;
round_up(L, P) -> round_up(L, 2 * P).

now_us(#{t0 := T0}) ->
    erlang:monotonic_time(microsecond) - T0.

rand_between(Lo, Hi) ->
    Lo + rand:uniform(Hi - Lo + 1) - 1.
