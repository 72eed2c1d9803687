# GenServer.call through LockerTest.Registry to a service written in C:
# bin/locker-echo registers <<"svc">> (Elixir's "svc") with three lockerd
# masters and answers every call with {:echo, request}.
#
# LockerTest.Registry.whereis_name reads the local lease table only
# (docs/protocol.md section 6: a BEAM node sees a name once it holds the lease
# locally). So this ExUnit node is made a replica: it runs lkr_server and
# is listed in the masters' --replicas, and receives their transaction log
# the way a replica BEAM node in production would; no rpc shortcut.
# Run through test/elixir/run.sh (LOCKERD_BIN; locker-echo is found next
# to it).

ExUnit.start(timeout: 120_000, seed: 0)

defmodule LockerTest.EchoTest do
  use ExUnit.Case, async: false

  alias LockerTest.Registry

  @w 2

  setup_all do
    :ok = :lockerd_ct.ensure_epmd()

    unless :lockerd_ct.lockerd_available() do
      raise "lockerd executable not found at #{:lockerd_ct.lockerd_bin()} (build it with make)"
    end

    echo = :lockerd_ct.tool_bin(~c"locker-echo")

    unless File.exists?(echo) do
      raise "#{echo} not found (build it with make all)"
    end

    names = for i <- 1..3, do: :lockerd_ct.unique_name(~c"exe#{i}")
    masters = names |> Enum.map(&:lockerd_ct.node_name/1) |> Enum.sort()
    meta = {@w, masters, [node()]}
    log_dir = to_charlist(System.get_env("LOCKERD_LOG_DIR", "/tmp"))

    handles =
      :lockerd_ct.start_nodes(
        for(n <- names, do: {:lockerd, n}),
        meta,
        %{log_dir: log_dir, lockerd_opts: %{push_interval: 100}}
      )

    :lockerd_ct.start_local_server(@w, masters, [node()])

    on_exit(fn ->
      :lockerd_ct.stop_local_server()
      :lockerd_ct.stop_all(handles)
    end)

    %{masters: masters, echo: echo}
  end

  defp start_echo(ctx, name_text, lease) do
    args =
      [~c"-sname", :lockerd_ct.unique_name(~c"execho"), ~c"-setcookie", :lockerd_ct.cookie(),
       ~c"--masters", Enum.map_join(ctx.masters, ",", &Atom.to_string/1) |> to_charlist(),
       ~c"--listen", ~c"127.0.0.1", ~c"--lease", to_charlist(lease), to_charlist(name_text)]

    # start_program links the port to the calling process: keep it in the
    # test process, which outlives every assertion below.
    p = :lockerd_ct.start_program(ctx.echo, args)
    assert {:ok, _line} = :lockerd_ct.program_line(p, ~c"registered ", 15_000)
    p
  end

  defp stop_echo(p) do
    :lockerd_ct.kill_program(p, ~c"TERM")
    port = p.port

    receive do
      {^port, {:exit_status, status}} -> status
    after
      10_000 -> flunk("locker-echo did not exit")
    end
  end

  defp eventually(fun, expected, timeout \\ 5000) do
    :lockerd_ct.wait_value(fun, expected, timeout)
  end

  test "GenServer.call via LockerTest.Registry reaches the C service", ctx do
    p = start_echo(ctx, ~s(<<"svc">>), 2000)
    # The replica learns the name from the masters' transaction log.
    pid = :lockerd_ct.wait_until(fn -> is_pid(Registry.whereis_name("svc")) end, 5000)
    assert pid
    pid = Registry.whereis_name("svc")
    assert node(pid) != node()
    assert GenServer.call({:via, Registry, "svc"}, :hello) == {:echo, :hello}
    assert GenServer.call({:via, Registry, "svc"}, {:sum, [1, 2]}) == {:echo, {:sum, [1, 2]}}
    GenServer.cast({:via, Registry, "svc"}, :a_cast)

    # Registering the same name from Elixir fails while the C service holds it.
    assert Registry.register_name("svc", self()) == :no

    # Kept alive past three lease lengths.
    Process.sleep(6500)
    assert Registry.whereis_name("svc") == pid
    assert GenServer.call({:via, Registry, "svc"}, :still_there) == {:echo, :still_there}

    assert stop_echo(p) == 0
    assert eventually(fn -> Registry.whereis_name("svc") end, :undefined) == :undefined

    assert catch_exit(GenServer.call({:via, Registry, "svc"}, :hello)) |> elem(0) == :noproc
  end
end
