defmodule LockerdExample.MixProject do
  use Mix.Project

  # No dependencies: `mix compile` works offline, without Hex. The `:locker`
  # module the registry calls is loaded from the code path at run time
  # (run.sh puts the project's Erlang locker modules there).
  def project do
    [
      app: :lockerd_example,
      version: "0.1.0",
      elixir: "~> 1.10",
      deps: [],
      xref: [exclude: [:locker]]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
