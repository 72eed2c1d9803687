#!/usr/bin/env bash
# Run lockerd's tests with every BEAM node, erl_interface and Elixir of
# another OTP release: one Debian chroot per release, cached under
# /var/cache/lockerd/otp/<suite> (OTP_CACHE), reused when it works and
# rebuilt when it does not. Inside it, from this same checkout
# (bind-mounted at the same path), with that release's compiler, erl,
# rebar3 and elixir: lockerd and the client library are built against its
# erl_interface (BUILD=build/otp<N>, BINDIR=build/otp<N>/bin), then the C
# tests, the Common Test suites and the ExUnit tests run.
#
#   scripts/test-otp.sh [RELEASE...]    RELEASE: 27 (trixie), 29 (sid);
#                                       default: every one
#   OTP_STEPS="c erlang elixir"         which test steps to run
#   OTP_PREPARE_ONLY=1                  only create (or check) the chroots
#   OTP_MIRROR                          Debian mirror (default: the host's)
#
# Needs root (debootstrap, chroot, mount). Exits non-zero when a chroot
# cannot be made or any step fails on any release; the chroot's mounts are
# undone on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cache=${OTP_CACHE:-/var/cache/lockerd/otp}
steps=${OTP_STEPS:-c erlang elixir}

# Release -> Debian suite that ships it.
suite_of() {
    case "$1" in
        27) echo trixie ;;
        29) echo sid ;;
        *) echo "test-otp: unknown release $1 (known: 27 29)" >&2; return 1 ;;
    esac
}

# What the chroot needs: scripts/setup.sh's list minus the fuzzing and
# benchmark tools (those runs stay on the host).
CHROOT_PKGS=(gcc make libc6-dev libssl-dev openssl
             erlang-nox erlang-dev erlang-common-test erlang-eunit erlang-tools
             rebar3 elixir libcmocka-dev procps iproute2)

# The mirror the host's apt uses for Debian itself.
host_mirror() {
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ')
    echo "${m:-http://deb.debian.org/debian}"
}

# Mount points of a chroot in the order they are made; undone in reverse.
MOUNTED=()
mount_chroot() {
    local dir=$1
    mkdir -p "$dir/proc"
    mountpoint -q "$dir/proc" || { mount -t proc proc "$dir/proc"; MOUNTED+=("$dir/proc"); }
    local d
    for d in /dev/pts /dev/shm; do
        mkdir -p "$dir$d"
        mountpoint -q "$dir$d" || { mount --bind "$d" "$dir$d"; MOUNTED+=("$dir$d"); }
    done
    mkdir -p "$dir/etc"
    cp /etc/hosts "$dir/etc/hosts"
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
}

mount_repo() {
    local dir=$1
    mkdir -p "$dir$repo"
    mountpoint -q "$dir$repo" || { mount --bind "$repo" "$dir$repo"; MOUNTED+=("$dir$repo"); }
}

umount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    MOUNTED=()
}
trap umount_all EXIT
trap 'exit 130' INT TERM

# Undo whatever a killed run left mounted under DIR (deepest first).
umount_stale() {
    local dir=$1 m
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

# Delete a chroot, but never while anything is still mounted inside it
# (a bind mount of the checkout is on the same file system, so
# --one-file-system alone would not stop rm from walking into it).
remove_tree() {
    local dir=$1
    umount_stale "$dir"
    if awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "test-otp: still mounted under $dir; not deleting it" >&2
        return 1
    fi
    rm -rf --one-file-system "$dir"
}

chroot_ok() {
    local dir=$1
    [ -f "$dir/.lockerd-chroot" ] || return 1
    [ "$(cat "$dir/.lockerd-chroot")" = "${CHROOT_PKGS[*]}" ] || return 1
    chroot "$dir" erl -noshell -eval 'halt()' >/dev/null 2>&1 || return 1
    chroot "$dir" sh -c 'command -v rebar3 && command -v elixir && command -v cc && command -v make' \
        >/dev/null 2>&1 || return 1
}

# Create (or reuse) the chroot of SUITE; sets CHROOT_DIR.
CHROOT_DIR=
ensure_chroot() {
    local suite=$1 dir="$cache/$1"
    umount_stale "$dir"
    if [ -d "$dir" ]; then
        mount_chroot "$dir"
        if chroot_ok "$dir"; then
            umount_all
            CHROOT_DIR=$dir
            return 0
        fi
        umount_all
        echo "test-otp: $dir is broken or outdated: rebuilding it" >&2
        remove_tree "$dir" || return 1
    fi
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    }
    local tmp="$dir.new" mirror=${OTP_MIRROR:-$(host_mirror)} t0=$SECONDS
    remove_tree "$tmp" || return 1
    mkdir -p "$cache"
    echo "test-otp: debootstrap $suite from $mirror into $tmp" >&2
    debootstrap --variant=minbase "$suite" "$tmp" "$mirror" > "$cache/$suite.debootstrap.log" 2>&1 || {
        echo "test-otp: debootstrap $suite failed; log: $cache/$suite.debootstrap.log" >&2
        tail -n 20 "$cache/$suite.debootstrap.log" >&2
        return 1
    }
    mount_chroot "$tmp"
    # A mirror that is a dated snapshot serves a Release file past its
    # Valid-Until (sid's is short); debootstrap checked its signature.
    echo 'Acquire::Check-Valid-Until "false";' > "$tmp/etc/apt/apt.conf.d/99lockerd"
    echo "test-otp: installing ${CHROOT_PKGS[*]} in $suite" >&2
    chroot "$tmp" 9>&- env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${CHROOT_PKGS[*]} && apt-get clean" \
        > "$cache/$suite.install.log" 2>&1 || {
        echo "test-otp: installing packages in $suite failed; log: $cache/$suite.install.log" >&2
        tail -n 20 "$cache/$suite.install.log" >&2
        umount_all
        return 1
    }
    echo "${CHROOT_PKGS[*]}" > "$tmp/.lockerd-chroot"
    if ! chroot_ok "$tmp"; then
        echo "test-otp: the new $suite chroot does not run erl, rebar3 and elixir" >&2
        umount_all
        return 1
    fi
    umount_all
    mv "$tmp" "$dir"
    echo "test-otp: $suite chroot ready in $((SECONDS - t0)) s" >&2
    CHROOT_DIR=$dir
}

# Run the test steps of one release inside its chroot.
run_release() {
    local rel=$1 dir=$2 t0=$SECONDS
    mount_chroot "$dir"
    mount_repo "$dir"
    local otp elixir
    otp=$(chroot "$dir" erl -noshell -eval \
        'io:format("~s", [erlang:system_info(otp_release)]), halt().')
    elixir=$(chroot "$dir" elixir --short-version 2>/dev/null || echo '?')
    echo "==== OTP $rel ($(basename "$dir")): erlang OTP $otp, Elixir $elixir, steps: $steps"
    if [ "$otp" != "$rel" ]; then
        echo "test-otp: $dir runs OTP $otp, not $rel" >&2
        umount_all
        return 1
    fi
    local rc=0
    chroot "$dir" 9>&- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        TERM=dumb OTP_REL="$rel" STEPS="$steps" REPO="$repo" \
        bash -c '
            set -euo pipefail
            cd "$REPO"
            b=build/otp$OTP_REL
            export REBAR_BASE_DIR="$REPO/_build/otp$OTP_REL"
            make -j2 BUILD=$b BINDIR=$b/bin all
            for s in $STEPS; do
                echo "== OTP $OTP_REL: make test-$s"
                make BUILD=$b BINDIR=$b/bin test-$s
            done
        ' || rc=$?
    umount_all
    echo "==== OTP $rel: $([ $rc -eq 0 ] && echo passed || echo "FAILED ($rc)") in $((SECONDS - t0)) s"
    return $rc
}

main() {
    # One epmd for the host and every chroot (they share the loopback), and
    # not one started from inside a chroot.
    . scripts/lib.sh
    ensure_epmd loopback
    # One run at a time per cache: a second run would undo this one's
    # mounts (stale-mount cleanup) or rebuild a chroot under it.
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    if ! flock -n 9; then
        echo "test-otp: waiting for another run using $cache" >&2
        flock 9
    fi
    releases=("$@")
    [ ${#releases[@]} -gt 0 ] || releases=(27 29)
    failed=()
    for rel in "${releases[@]}"; do
        suite=$(suite_of "$rel")
        ensure_chroot "$suite" || { umount_all; failed+=("$rel(chroot)"); continue; }
        dir=$CHROOT_DIR
        if [ "${OTP_PREPARE_ONLY:-0}" = 1 ]; then
            echo "test-otp: OTP $rel chroot ready: $dir"
            continue
        fi
        run_release "$rel" "$dir" || failed+=("$rel")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "test-otp: FAILED on OTP ${failed[*]}"
        exit 1
    fi
    [ "${OTP_PREPARE_ONLY:-0}" = 1 ] || echo "test-otp: OTP ${releases[*]} passed"
}

# Parsed whole before it runs: editing the file cannot change a running test.
main "$@"; exit
