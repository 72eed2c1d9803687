defmodule LockerdExample.Registry do
  @moduledoc """
  A `:via` process registry on top of the Erlang `locker` API, the way
  `Locker.Registry` of elixir_locker works, in a few lines.

  A name is a locker key whose value is the owner's pid, held with a lease
  of `lease_length/0` ms. The owner must renew it: registration sends the
  owner `{:lease_due, name}` shortly before the lease ends, and the owner
  calls `renew/1` (see `LockerdExample.Counter`).

  `whereis_name/1` reads this node's own copy of the lease table
  (`:locker.dirty_read/1`), so this node sees names once it holds their
  leases: as a master, or as a replica that has replayed the masters'
  transaction log. lockerd masters send each write's log entry to the
  replicas before they answer the write, so on a replica a name is visible
  as soon as `register_name/2` has returned.
  """

  @lease 5_000
  @renew_before 1_000

  def lease_length, do: @lease

  def whereis_name(name) do
    case :locker.dirty_read(name) do
      {:ok, pid} when is_pid(pid) -> pid
      _ -> :undefined
    end
  end

  def register_name(name, pid) when is_pid(pid) do
    case :locker.lock(name, pid, @lease) do
      {:ok, _w, _votes, _commits} ->
        schedule_renewal(pid, name)
        :yes

      {:error, :no_quorum} ->
        :no
    end
  end

  def unregister_name(name) do
    case whereis_name(name) do
      :undefined -> :ok
      pid -> release(name, pid)
    end
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

  @doc "Run by the owner on `{:lease_due, name}`: extend the lease, plan the next."
  def renew(name) do
    case :locker.extend_lease(name, self(), @lease) do
      :ok ->
        schedule_renewal(self(), name)
        :ok

      error ->
        error
    end
  end

  @doc "Give a name up (the owner does this when it stops)."
  def release(name, pid) do
    case :locker.release(name, pid) do
      {:ok, _w, _votes, _oks} -> :ok
      error -> error
    end
  end

  defp schedule_renewal(pid, name) do
    Process.send_after(pid, {:lease_due, name}, @lease - @renew_before)
  end
end
