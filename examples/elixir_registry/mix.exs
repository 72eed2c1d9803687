defmodule LockerdExample.MixProject do
  use Mix.Project

  # No dependencies: `mix compile` works offline, without Hex. The `:locker`
  # module the registry calls is compiled with the app from
  # _build/locker_src, where run.sh copies the project's Erlang locker
  # modules.
  def project do
    [
      app: :lockerd_example,
      version: "0.1.0",
      elixir: "~> 1.10",
      deps: [],
      erlc_paths: ["_build/locker_src"]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
