defmodule LockerdExample.Counter do
  @moduledoc """
  A GenServer registered under a cluster-wide name through
  `LockerdExample.Registry`. It keeps its name alive by renewing the lease
  when asked, and gives it up when it stops.
  """
  use GenServer

  alias LockerdExample.Registry

  def start(name), do: GenServer.start(__MODULE__, name, name: via(name))
  def bump(name), do: GenServer.call(via(name), :bump)
  def via(name), do: {:via, Registry, name}

  @impl true
  def init(name), do: {:ok, %{name: name, count: 0}}

  @impl true
  def handle_call(:bump, _from, state) do
    count = state.count + 1
    {:reply, count, %{state | count: count}}
  end

  @impl true
  def handle_info({:lease_due, name}, state) do
    case Registry.renew(name) do
      :ok -> {:noreply, state}
      error -> {:stop, {:name_lost, name, error}, state}
    end
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    Registry.release(state.name, self())
  end
end
