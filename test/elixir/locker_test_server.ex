defmodule LockerTest.Server do
  @moduledoc """
  `use LockerTest.Server, lease_length: l, lease_threshold: t` makes a
  GenServer registered through `LockerTest.Registry` keep its name alive,
  like `Locker.Server`:

    * on `{:"$locker_extend_lease", key, value}` it calls
      `:locker.extend_lease(key, value, l)`, expects `:ok` and schedules the
      next extension `l - t` ms later (t defaults to 500 ms); a failed
      extension stops the server, since the name is no longer its own;
    * `terminate/2` releases the name it registered.

  The module's own `handle_info/2` and `terminate/2`, if any, still run:
  they are wrapped, not replaced.
  """

  defmacro __using__(opts) do
    quote location: :keep do
      use GenServer
      @locker_lease_length Keyword.get(unquote(opts), :lease_length, 30_000)
      @locker_lease_threshold Keyword.get(unquote(opts), :lease_threshold, 500)
      @before_compile LockerTest.Server
    end
  end

  defmacro __before_compile__(env) do
    # GenServer's default terminate/2 must not be reached through super
    # (deprecated); a terminate/2 of the module itself is wrapped.
    own_terminate? =
      case Module.get_definition(env.module, {:terminate, 2}) do
        {:v1, _kind, meta, _clauses} -> meta[:context] != GenServer
        nil -> false
      end

    terminate =
      if own_terminate? do
        quote do
          def terminate(reason, state) do
            LockerTest.Server.release_own_name()
            super(reason, state)
          end
        end
      else
        quote do
          def terminate(_reason, _state) do
            LockerTest.Server.release_own_name()
            :ok
          end
        end
      end

    quote location: :keep do
      defoverridable handle_info: 2, terminate: 2

      def handle_info({:"$locker_extend_lease", key, value}, state) do
        case LockerTest.Server.extend(key, value, @locker_lease_length, @locker_lease_threshold) do
          :ok -> {:noreply, state}
          error -> {:stop, {:locker_extend_failed, key, error}, state}
        end
      end

      def handle_info(msg, state), do: super(msg, state)

      unquote(terminate)
    end
  end

  @doc false
  def extend(key, value, lease_length, threshold) do
    case :locker.extend_lease(key, value, lease_length) do
      :ok ->
        Process.send_after(self(), {:"$locker_extend_lease", key, value}, max(lease_length - threshold, 0))
        :ok

      error ->
        error
    end
  end

  @doc false
  def release_own_name do
    case Process.delete(:"$locker_test_name") do
      nil -> :ok
      name -> :locker.release(name, self())
    end
  end
end
