defmodule LockerTest.Registry do
  @moduledoc """
  A `:via` registry with the behaviour of `Locker.Registry` (docs/protocol.md
  section 6), built on the `:locker` client API as the real wrapper is
  (test/erlang/locker.erl on BEAM test nodes).

  Names are locker keys whose value is the owner pid. Lookups read the local
  lease table only, so a node sees a name once it holds the lease locally:
  it is a master, or a replica that received the masters' transaction log.

  The lease taken at registration lasts `lease_length/0` ms (30 s unless the
  application env `:locker_test, :registry_lease_length` says otherwise); the
  owner is sent `{:"$locker_extend_lease", name, pid}` one second before it
  ends, which `LockerTest.Server` turns into periodic extensions.
  """

  @extend_ahead 1000

  def lease_length do
    Application.get_env(:locker_test, :registry_lease_length, 30_000)
  end

  def whereis_name(name) do
    case :locker.dirty_read(name) do
      {:ok, pid} when is_pid(pid) -> pid
      _ -> :undefined
    end
  end

  def register_name(name, pid) when is_pid(pid) do
    lease = lease_length()

    case :locker.lock(name, pid, lease) do
      {:ok, _w, _votes, _commits} ->
        if pid == self(), do: Process.put(:"$locker_test_name", name)
        Process.send_after(pid, {:"$locker_extend_lease", name, pid}, max(lease - @extend_ahead, 0))
        :yes

      {:error, :no_quorum} ->
        :no
    end
  end

  def unregister_name(name) do
    _ = :locker.release(name, whereis_name(name))
    if Process.get(:"$locker_test_name") == name, do: Process.delete(:"$locker_test_name")
    :ok
  end

  def send(name, msg) do
    case whereis_name(name) do
      :undefined ->
        {:badarg, {name, msg}}

      pid ->
        Kernel.send(pid, msg)
        pid
    end
  end
end
