defmodule LockerdExample do
  @moduledoc """
  Runs the example against lockerd masters: `main/1` takes the masters'
  node names, joins this node to their locker cluster as a replica, and
  registers, calls and stops a `LockerdExample.Counter` under a
  cluster-wide name. Every step is checked; a failed check raises, so the
  run exits non-zero.
  """

  alias LockerdExample.{Counter, Registry}

  def main(master_names) do
    masters = master_names |> Enum.map(&String.to_atom/1) |> Enum.sort()
    w = div(length(masters), 2) + 1
    Enum.each(masters, &connect/1)

    # This node's own locker server, then the cluster's meta: lockerd
    # masters, this node as a replica, W = majority.
    {:ok, _} = :locker.start_link(w)
    cluster = [node() | masters]
    :ok = :locker.set_nodes(cluster, masters, [node()])
    :ok = :locker.set_w(cluster, w)
    say("#{node()} is a replica of #{inspect(masters)}, W = #{w}")

    name = "counter"
    {:ok, pid} = Counter.start(name)
    say("started #{inspect(pid)} as #{inspect(Counter.via(name))}")

    # A replica sees its own registration as soon as start returns.
    check(Registry.whereis_name(name) == pid, "whereis_name right after start is the pid")
    check(Counter.bump(name) == 1 and Counter.bump(name) == 2, "calls through the name")

    for m <- masters do
      check(:rpc.call(m, :locker, :dirty_read, [name]) == {:ok, pid}, "#{m} holds the name")
    end

    check(Counter.start(name) == {:error, {:already_started, pid}}, "the name is taken")

    :ok = GenServer.stop(pid)
    check(Registry.whereis_name(name) == :undefined, "stopping released the name here")

    for m <- masters do
      check(
        :rpc.call(m, :locker, :dirty_read, [name]) == {:error, :not_found},
        "#{m} released it too"
      )
    end

    {:ok, pid2} = Counter.start(name)
    check(Registry.whereis_name(name) == pid2, "the name can be registered again")
    :ok = GenServer.stop(pid2)
    say("ok")
  end

  defp connect(node, tries \\ 50) do
    case Node.connect(node) do
      true ->
        :ok

      _ when tries > 0 ->
        Process.sleep(100)
        connect(node, tries - 1)

      _ ->
        raise "cannot connect to #{node}"
    end
  end

  defp check(true, what), do: say("  ok: " <> what)
  defp check(_, what), do: raise("check failed: " <> what)

  defp say(line), do: IO.puts(line)
end
