#!/usr/bin/env bash
# Install the Debian packages lockerd needs to build and test, if missing.
# Idempotent and quiet when everything is there already. Needs root (or
# sudo) only when something has to be installed.
set -euo pipefail

PKGS=(
  gcc make libc6-dev             # C toolchain
  libssl-dev openssl             # MD5 for the handshake digest, TLS; test certificates
  erlang-nox erlang-dev          # erl_interface (ei.h, libei) and the BEAM
  erlang-common-test erlang-eunit erlang-tools
  rebar3 elixir                  # Common Test runner, ExUnit
  libcmocka-dev                  # C unit tests
  clang libclang-rt-14-dev       # libFuzzer (make fuzz, make fuzz-smoke)
  procps iproute2                # pgrep/kill, ip (test helpers)
  gnuplot-nox                    # make bench: latency plots
  prometheus curl python3        # make test-ops: scrape test, notify listener
  debootstrap dpkg-dev lintian   # make test-ops (make deb, package install test), make test-otp
  binutils fakeroot
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install packages" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
