#!/usr/bin/env bash
# The Debian packages on a fresh Debian 12: `make deb`'s three packages
# installed into a Debian 12 minbase chroot with dpkg -i and apt-get -f
# install (which fetches their dependencies from the host's mirror), then
# lockerd started there, lockerctl status against it, and the README's C
# example built with `pkg-config --cflags --libs liblocker` (shared) and
# --static, both run against it; lintian must report no errors.
#
# The chroot (debootstrap --variant=minbase bookworm, plus gcc, libc6-dev
# and pkg-config) is cached in /var/cache/lockerd/pkg/bookworm (PKG_CACHE)
# and reused when present; each run works in a throwaway overlay on top
# of it, so the cache stays pristine. The host's epmd (on loopback) serves
# the chroot too. Needs root. About 40 s with the cache, 3-4 min without.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
cache=${PKG_CACHE:-/var/cache/lockerd/pkg}
base=$cache/bookworm
pkgs="gcc libc6-dev pkg-config"
[ "$(id -u)" = 0 ] || { echo "package: needs root (debootstrap, chroot, mount)" >&2; exit 1; }

mounts=()
tmp=$(mktemp -d /tmp/lockerd-pkg-XXXXXX)
cleanup() {
    local i
    [ -n "${lpid:-}" ] && kill "$lpid" 2>/dev/null || true
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null || true
    done
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
fail() {
    echo "package: FAIL: $*" >&2
    local f; for f in dpkg.log apt.log lockerd.log; do [ -f "$tmp/$f" ] && { echo "--- $f"; tail -n 15 "$tmp/$f"; } >&2; done
    exit 1
}

mirror() {
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ')
    echo "${m:-http://deb.debian.org/debian}"
}

chroot_mounts() {
    local dir=$1
    mount -t proc proc "$dir/proc"; mounts+=("$dir/proc")
    mount --bind /dev "$dir/dev"; mounts+=("$dir/dev")
    cp /etc/hosts "$dir/etc/hosts"
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
}

# The cached base: made once (debootstrap + the build tools), marked done.
ensure_base() {
    [ -f "$base/.lockerd-pkg" ] && [ "$(cat "$base/.lockerd-pkg")" = "$pkgs" ] && return 0
    command -v debootstrap >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    local new=$base.new t0=$SECONDS
    rm -rf --one-file-system "$new" "$base"
    mkdir -p "$cache"
    echo "package: debootstrap bookworm into $new" >&2
    debootstrap --variant=minbase bookworm "$new" "$(mirror)" > "$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; fail "debootstrap"; }
    local n=${#mounts[@]}
    chroot_mounts "$new"
    chroot "$new" env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs && apt-get clean" \
        > "$cache/install.log" 2>&1 || { tail -n 20 "$cache/install.log" >&2; fail "apt-get in the chroot"; }
    umount "$new/dev" "$new/proc"
    mounts=("${mounts[@]:0:$n}")
    echo "$pkgs" > "$new/.lockerd-pkg"
    mv "$new" "$base"
    echo "package: base chroot ready in $((SECONDS - t0)) s" >&2
}

t0=$SECONDS
make -s -j2 all >/dev/null
make -s deb > "$tmp/debs"
lintian --tag-display-limit 0 $(cat "$tmp/debs") > "$tmp/lintian" 2>&1 || true
if grep -q '^E:' "$tmp/lintian"; then cat "$tmp/lintian" >&2; fail "lintian errors"; fi
echo "package: lintian: $(grep -c '^[WI]:' "$tmp/lintian" || true) warnings/infos, no errors"

ensure_base
. scripts/lib.sh
ensure_epmd loopback
root=$tmp/root
mkdir -p "$tmp/upper" "$tmp/work" "$root"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$tmp/upper,workdir=$tmp/work" "$root"
mounts+=("$root")
chroot_mounts "$root"
mkdir -p "$root/tmp/debs"
cp $(cat "$tmp/debs") "$root/tmp/debs/"
awk '/^```c$/ {on = 1; next} /^```$/ {on = 0} on' README.md > "$root/tmp/app.c"
[ -s "$root/tmp/app.c" ] || fail "no C example in the README"

in_chroot() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
# dpkg -i alone fails on the missing dependencies; apt-get -f install
# fetches them and finishes the configuration.
in_chroot sh -c 'dpkg -i /tmp/debs/*.deb' > "$tmp/dpkg.log" 2>&1 || true
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq \
    > "$tmp/apt.log" 2>&1 || fail "apt-get update: $(tail -n 3 "$tmp/apt.log")"
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq --no-install-recommends \
    >> "$tmp/apt.log" 2>&1 || fail "apt-get -f install: $(tail -n 5 "$tmp/apt.log")"
for p in lockerd liblocker0 liblocker-dev; do
    in_chroot dpkg-query -W -f='${Status}\n' $p | grep -q "install ok installed" || fail "$p not installed"
done
[ -s "$root/etc/lockerd/cookie" ] || fail "postinst made no /etc/lockerd/cookie"
[ -f "$root/lib/systemd/system/lockerd.service" ] || fail "no unit"
in_chroot man -w lockerd >/dev/null 2>&1 || [ -f "$root/usr/share/man/man8/lockerd.8.gz" ] || fail "no lockerd(8)"

host=$(hostname -s)
node=pkg$$
mkdir -p "$root/var/lib/lockerd"
# chroot itself, not the in_chroot function: $! must be lockerd's pid
# (chroot and env exec it), not a subshell's.
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    /usr/sbin/lockerd -sname $node --cookie-file /etc/lockerd/cookie \
    --masters $node@$host --state-file /var/lib/lockerd/lockerd.state \
    --metrics-listen 127.0.0.1:0 > "$tmp/lockerd.log" 2>&1 & lpid=$!
for _ in $(seq 50); do grep -q ' ready: ' "$tmp/lockerd.log" && break; sleep 0.1; done
grep -q ' ready: ' "$tmp/lockerd.log" || fail "lockerd did not start in the chroot"
ck=$(cat "$root/etc/lockerd/cookie")
in_chroot lockerctl -setcookie "$ck" --masters $node@$host status > "$tmp/status" 2>&1 ||
    { cat "$tmp/status" >&2; fail "lockerctl status"; }
grep -q "reachable: 1 of 1 masters" "$tmp/status" || fail "status: $(cat "$tmp/status")"
# The example takes the cookie as a program does: ~/.erlang.cookie.
install -m 0400 "$root/etc/lockerd/cookie" "$root/root/.erlang.cookie"
echo "package: lockerctl status in the chroot: $(grep reachable: "$tmp/status")"
in_chroot sh -c 'cd /tmp && cc app.c $(pkg-config --cflags --libs liblocker) -o app &&
    cc app.c $(pkg-config --static --cflags --libs liblocker) -static-libgcc -o app-static' \
    > "$tmp/cc.log" 2>&1 || { cat "$tmp/cc.log" >&2; fail "building the README example"; }
in_chroot env LD_TRACE_LOADED_OBJECTS=1 /tmp/app | grep -q 'liblocker.so.0 => /' || fail "app does not use liblocker.so.0"
for app in app app-static; do
    in_chroot env LOCKERD_MASTERS=$node@$host /tmp/$app \
        > "$tmp/$app.out" 2>&1 || { cat "$tmp/$app.out" >&2; fail "$app failed"; }
    grep -q "locked and released" "$tmp/$app.out" || fail "$app: $(cat "$tmp/$app.out")"
done
echo "package: the README's C example, shared and static, ran in the chroot"
kill "$lpid"; wait "$lpid" || true; lpid=
echo "package: installed, started, queried and linked against in $((SECONDS - t0)) s"
echo "1 passed, 0 failed"
