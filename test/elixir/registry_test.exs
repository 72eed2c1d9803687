# GenServers named through LockerTest.Registry with three locker masters:
# lockerd processes (default) or BEAM lkr_server nodes (LOCKERD_SKIP=1).
# This node and one BEAM peer are replicas, so both resolve names locally.
# Run through test/elixir/run.sh.

ExUnit.start(timeout: 120_000, seed: 0)

defmodule LockerTest.EchoServer do
  use LockerTest.Server, lease_length: 2000, lease_threshold: 800

  @impl true
  def init(parent), do: {:ok, parent}

  @impl true
  def handle_call(:ping, _from, parent), do: {:reply, {:pong, self()}, parent}

  @impl true
  def handle_info(msg, parent) do
    send(parent, {:echo, self(), msg})
    {:noreply, parent}
  end
end

defmodule LockerTest.RegistryTest do
  use ExUnit.Case, async: false

  alias LockerTest.{EchoServer, Registry}

  @w 2
  @registry_lease 2000

  setup_all do
    :ok = :lockerd_ct.ensure_epmd()
    Application.put_env(:locker_test, :registry_lease_length, @registry_lease)

    kind =
      case System.get_env("LOCKERD_SKIP") do
        "1" ->
          :beam

        _ ->
          unless :lockerd_ct.lockerd_available() do
            raise "lockerd executable not found at #{:lockerd_ct.lockerd_bin()} " <>
                    "(build it, or set LOCKERD_SKIP=1 to use BEAM masters)"
          end

          :lockerd
      end

    names = for i <- 1..3, do: :lockerd_ct.unique_name(~c"exm#{i}")
    masters = names |> Enum.map(&:lockerd_ct.node_name/1) |> Enum.sort()
    peer_name = :lockerd_ct.unique_name(~c"exclient")
    peer = :lockerd_ct.node_name(peer_name)
    replicas = Enum.sort([node(), peer])
    meta = {@w, masters, replicas}
    log_dir = to_charlist(System.get_env("LOCKERD_LOG_DIR", "/tmp"))

    handles =
      :lockerd_ct.start_nodes(
        for(n <- names, do: {kind, n}),
        meta,
        %{log_dir: log_dir, lockerd_opts: %{push_interval: 100}}
      )

    elixir_ebin = GenServer |> :code.which() |> Path.dirname() |> to_charlist()
    peer_handle = :lockerd_ct.start_beam_node(peer_name, meta, %{code_paths: [elixir_ebin]})
    :lockerd_ct.start_local_server(@w, masters, replicas)

    on_exit(fn ->
      :lockerd_ct.stop_local_server()
      :lockerd_ct.stop_all([peer_handle | handles])
    end)

    IO.puts("masters (#{kind}): #{inspect(masters)}; replicas: #{inspect(replicas)}")
    %{masters: masters, peer: peer, kind: kind}
  end

  defp via(name), do: {:via, Registry, name}

  defp remote_whereis(peer, name), do: :erpc.call(peer, Registry, :whereis_name, [name])

  defp eventually(fun, expected, timeout \\ 5000) do
    :lockerd_ct.wait_value(fun, expected, timeout)
  end

  defp on_masters(masters, name) do
    for m <- masters, do: :lockerd_ct.lease_on(m, name)
  end

  defp start_registered(name) do
    {:ok, pid} = GenServer.start(EchoServer, self(), name: via(name))
    pid
  end

  test "a name registered here is resolved and called from another node", ctx do
    name = "svc"
    pid = start_registered(name)
    assert eventually(fn -> Registry.whereis_name(name) end, pid) == pid
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, pid) == pid
    assert :erpc.call(ctx.peer, GenServer, :call, [via(name), :ping]) == {:pong, pid}
    assert GenServer.call(via(name), :ping) == {:pong, pid}
    assert on_masters(ctx.masters, name) == List.duplicate({:ok, pid}, 3)
    assert GenServer.start(EchoServer, self(), name: via(name)) == {:error, {:already_started, pid}}
    GenServer.stop(pid)
  end

  test "the lease is kept alive past its initial length", ctx do
    name = "svc-keepalive"
    pid = start_registered(name)
    Process.sleep(3 * @registry_lease + 500)
    assert Process.alive?(pid)
    assert Registry.whereis_name(name) == pid
    assert remote_whereis(ctx.peer, name) == pid
    assert on_masters(ctx.masters, name) == List.duplicate({:ok, pid}, 3)
    assert :erpc.call(ctx.peer, GenServer, :call, [via(name), :ping]) == {:pong, pid}
    GenServer.stop(pid)
  end

  test "the name is released when the server stops", ctx do
    name = "svc-stop"
    pid = start_registered(name)
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, pid) == pid
    :ok = GenServer.stop(pid)
    assert Registry.whereis_name(name) == :undefined
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, :undefined) == :undefined
    assert on_masters(ctx.masters, name) == List.duplicate(:not_found, 3)
    assert :erpc.call(ctx.peer, GenServer, :whereis, [via(name)]) == nil
    pid2 = start_registered(name)
    assert pid2 != pid
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, pid2) == pid2
    GenServer.stop(pid2)
  end

  test "a killed owner's name expires with its lease", ctx do
    name = "svc-killed"
    pid = start_registered(name)
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, pid) == pid
    Process.exit(pid, :kill)
    expire = fn ->
      :lockerd_ct.sbcast(ctx.masters ++ [ctx.peer, node()], :expire_leases)
      {Registry.whereis_name(name), remote_whereis(ctx.peer, name)}
    end

    assert eventually(expire, {:undefined, :undefined}, @registry_lease + 5000) ==
             {:undefined, :undefined}

    assert on_masters(ctx.masters, name) == List.duplicate(:not_found, 3)
  end

  test "send/2 and unregister_name/1", ctx do
    name = "svc-send"
    pid = start_registered(name)
    assert eventually(fn -> Registry.whereis_name(name) end, pid) == pid
    assert Registry.send(name, :hello) == pid
    assert_receive {:echo, ^pid, :hello}, 5000
    assert eventually(fn -> remote_whereis(ctx.peer, name) end, pid) == pid
    assert :erpc.call(ctx.peer, Registry, :send, [name, :from_peer]) == pid
    assert_receive {:echo, ^pid, :from_peer}, 5000
    assert Registry.send("svc-nobody", :lost) == {:badarg, {"svc-nobody", :lost}}
    ref = Process.monitor(pid)
    assert Registry.unregister_name(name) == :ok
    assert Registry.whereis_name(name) == :undefined
    assert on_masters(ctx.masters, name) == List.duplicate(:not_found, 3)
    # the name is gone: the next extension fails and the server stops
    assert_receive {:DOWN, ^ref, :process, ^pid, {:locker_extend_failed, ^name, {:error, :no_quorum}}},
                   3 * @registry_lease
  end
end
