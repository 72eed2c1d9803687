# Read your own registration: this node is a replica of three masters, and
# a GenServer started here with name: {:via, LockerTest.Registry, name}
# must be found by the registry's local lookup (whereis_name reads this
# node's lease table, nothing else) as soon as GenServer.start returns.
#
# lockerd masters get there by pushing each write's transaction-log entry
# to every replica before the commit reply leaves them, on the same
# connection when the caller's node is that replica (the default; see
# docs/protocol.md section 4). The loop must therefore hit 1000 times out
# of 1000, with lockerd's default options.
#
# Control: the same loop against three BEAM masters (lkr_server) that push
# their log every 100 ms must miss at least once, which shows the loop
# would notice a lagging replica. With LOCKERD_SKIP=1 only the control
# runs. Run through test/elixir/run.sh.

ExUnit.start(timeout: 300_000, seed: 0)

defmodule LockerTest.ImmediateHolder do
  use LockerTest.Server, lease_length: 30_000

  @impl true
  def init(:ok), do: {:ok, nil}

  @impl true
  def handle_info(_msg, state), do: {:noreply, state}
end

defmodule LockerTest.ImmediateLookupTest do
  use ExUnit.Case, async: false

  alias LockerTest.{ImmediateHolder, Registry}

  @w 2
  @rounds 1000
  @push_ms 100

  setup do
    :ok = :lockerd_ct.ensure_epmd()
    Application.put_env(:locker_test, :registry_lease_length, 30_000)
    :ok
  end

  # Three masters of `kind` with this node as their only replica; returns
  # the masters' node names. Everything is stopped when the test ends.
  defp start_cluster(kind, tag) do
    names = for i <- 1..3, do: :lockerd_ct.unique_name(~c"#{tag}#{i}")
    masters = names |> Enum.map(&:lockerd_ct.node_name/1) |> Enum.sort()
    meta = {@w, masters, [node()]}
    log_dir = to_charlist(System.get_env("LOCKERD_LOG_DIR", "/tmp"))

    handles =
      :lockerd_ct.start_nodes(
        for(n <- names, do: {kind, n}),
        meta,
        %{
          log_dir: log_dir,
          # lockerd: its defaults (eager push on); the interval is the
          # default too, given so that both clusters read alike
          lockerd_opts: %{push_interval: @push_ms},
          server_opts: [push_interval: @push_ms]
        }
      )

    :lockerd_ct.start_local_server(@w, masters, [node()])

    on_exit(fn ->
      :lockerd_ct.stop_local_server()
      :lockerd_ct.stop_all(handles)
    end)

    masters
  end

  # Start, look up at once, stop: the number of rounds whose lookup
  # returned the pid GenServer.start had just returned.
  defp hits(prefix) do
    Enum.count(1..@rounds, fn i ->
      name = "#{prefix}-#{i}"
      {:ok, pid} = GenServer.start(ImmediateHolder, :ok, name: {:via, Registry, name})
      found = Registry.whereis_name(name)
      :ok = GenServer.stop(pid)
      found == pid
    end)
  end

  @tag :lockerd
  test "lockerd masters: a replica resolves its own registration at once" do
    if System.get_env("LOCKERD_SKIP") == "1" do
      IO.puts("lockerd masters: skipped (LOCKERD_SKIP=1)")
    else
      unless :lockerd_ct.lockerd_available() do
        raise "lockerd executable not found at #{:lockerd_ct.lockerd_bin()} (build it with make)"
      end

      masters = start_cluster(:lockerd, "imml")
      n = hits("lockerd")
      IO.puts("lockerd masters #{inspect(masters)}: #{n} of #{@rounds} immediate lookups found the pid")
      assert n == @rounds
    end
  end

  @tag :control
  test "control: BEAM masters pushing every 100 ms leave the replica behind" do
    masters = start_cluster(:beam, "immb")
    n = hits("beam")
    misses = @rounds - n

    IO.puts(
      "BEAM masters #{inspect(masters)} (#{@push_ms} ms push): #{misses} of #{@rounds} " <>
        "immediate lookups missed"
    )

    assert misses > 0
  end
end
