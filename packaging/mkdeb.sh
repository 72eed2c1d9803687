#!/usr/bin/env bash
# Build the Debian packages from an installed tree (make install into a
# staging root): lockerd (daemon, lockerctl, unit, environment file, man
# pages), liblocker0 (the shared library, by its soname) and liblocker-dev
# (headers, static library, development link, pkg-config file) into
# build/deb/. Dependencies come from dpkg-shlibdeps. Run by `make deb`.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?}" "${SOMAJOR:?}"
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
out=build/deb
stage=$out/stage
rm -rf "$stage" "$out"/*.deb
mkdir -p "$stage"
root=$stage/installed
make -s install DESTDIR="$PWD/$root" PREFIX=/usr LIBDIR=/usr/lib/$multiarch \
    UNITDIR=/lib/systemd/system SYSCONFDIR=/etc >/dev/null
# Maintainer: $DEBFULLNAME <$DEBEMAIL> when set (a site's own builds).
maint="${DEBFULLNAME:-lockerd maintainers} <${DEBEMAIL:-lockerd@example.org}>"
libdir=usr/lib/$multiarch

# Move paths (relative to the installed root) into package PKG's tree.
take() {
    local pkg=$1; shift
    local p
    for p in "$@"; do
        mkdir -p "$stage/$pkg/$(dirname "$p")"
        mv "$root/$p" "$stage/$pkg/$p"
    done
}
take lockerd usr/sbin/lockerd usr/bin/lockerctl lib/systemd/system/lockerd.service \
    etc/default/lockerd usr/share/man/man8/lockerd.8 usr/share/man/man1/lockerctl.1
take liblocker$SOMAJOR $libdir/liblocker.so.$VERSION $libdir/liblocker.so.$SOMAJOR
take liblocker-dev usr/include/locker.h usr/include/nlock.h $libdir/liblocker.a \
    $libdir/liblocker.so $libdir/pkgconfig/liblocker.pc

strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$stage/lockerd/usr/sbin/lockerd" "$stage/lockerd/usr/bin/lockerctl" \
    "$stage/liblocker$SOMAJOR/$libdir/liblocker.so.$VERSION"
strip --strip-debug --remove-section=.comment "$stage/liblocker-dev/$libdir/liblocker.a"
gzip -9n "$stage/lockerd/usr/share/man/man8/lockerd.8" "$stage/lockerd/usr/share/man/man1/lockerctl.1"

# dpkg-shlibdeps wants a debian/control beside it: a throwaway one.
shlibdeps() {
    local dir=$stage/shlibdeps
    mkdir -p "$dir/debian"
    printf 'Source: lockerd\n\nPackage: lockerd\nArchitecture: any\n' > "$dir/debian/control"
    local files=()
    for f in "$@"; do files+=("$PWD/$f"); done
    (cd "$dir" && dpkg-shlibdeps -O -l"$OLDPWD/$stage/liblocker$SOMAJOR/$libdir" "${files[@]}" 2>/dev/null) |
        sed -n 's/^shlibs:Depends=//p'
}

docs() {
    local pkg=$1 d="$stage/$1/usr/share/doc/$1"
    mkdir -p "$d"
    cat > "$d/copyright" <<TXT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lockerd
Source: the lockerd repository

Files: *
Copyright: 2026 the lockerd authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
TXT
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from the lockerd tree.\n\n -- %s  %s\n' \
        "$pkg" "$VERSION" "$maint" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
        gzip -9n > "$d/changelog.gz" # a native package: changelog, not changelog.Debian
}

# control PKG SECTION DEPENDS SUMMARY DESCRIPTION...
control() {
    local pkg=$1 section=$2 depends=$3 summary=$4; shift 4
    local dir=$stage/$pkg
    mkdir -p "$dir/DEBIAN"
    local size
    size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
    {
        echo "Package: $pkg"
        echo "Version: $VERSION"
        echo "Architecture: $arch"
        [ "$pkg" = lockerd ] || echo "Multi-Arch: same"
        echo "Maintainer: $maint"
        echo "Installed-Size: $size"
        [ -n "$depends" ] && echo "Depends: $depends"
        [ "$pkg" = lockerd ] && echo "Recommends: erlang-base"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Description: $summary"
        local line
        for line in "$@"; do echo " $line"; done
    } > "$dir/DEBIAN/control"
    (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
        xargs -0 md5sum) > "$dir/DEBIAN/md5sums"
}

for p in lockerd liblocker$SOMAJOR liblocker-dev; do docs "$p"; done
d_lockerd=$(shlibdeps "$stage/lockerd/usr/sbin/lockerd" "$stage/lockerd/usr/bin/lockerctl")
d_lib=$(shlibdeps "$stage/liblocker$SOMAJOR/$libdir/liblocker.so.$VERSION")
control lockerd net "$d_lockerd" "locker server for Erlang and Elixir clusters, in C" \
    "lockerd joins an Erlang cluster as a hidden node and answers the locker" \
    "protocol as a BEAM locker server does: leases, write locks, quorum votes," \
    "replication and waiters. It exposes Prometheus metrics and health probes" \
    "and runs under systemd. lockerctl operates a cluster from the shell." \
    "An epmd must run on the host (erlang-base ships one)."
control liblocker$SOMAJOR libs "$d_lib" "C client library of lockerd and locker clusters" \
    "liblocker lets a C program join an Erlang cluster as a hidden node and take" \
    "quorum locks and names next to BEAM code, with lockerd or BEAM masters."
control liblocker-dev libdevel "liblocker$SOMAJOR (= $VERSION), libssl-dev, libc6-dev" \
    "C client library of lockerd and locker clusters (development files)" \
    "Header, static library, development link and pkg-config file of" \
    "liblocker, the C client of lockerd and BEAM locker clusters."

# The library's shlibs and ldconfig trigger.
echo "liblocker $SOMAJOR liblocker$SOMAJOR (>= $VERSION)" > "$stage/liblocker$SOMAJOR/DEBIAN/shlibs"
echo "activate-noawait ldconfig" > "$stage/liblocker$SOMAJOR/DEBIAN/triggers"

# lockerd: a cookie for the unit on first install (never replaced).
cat > "$stage/lockerd/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ ! -e /etc/lockerd/cookie ]; then
    mkdir -p /etc/lockerd
    chmod 0755 /etc/lockerd
    (umask 077; tr -dc A-Z < /dev/urandom | head -c 20 > /etc/lockerd/cookie)
fi
SH
cat > "$stage/lockerd/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/lockerd/cookie
    rmdir /etc/lockerd 2>/dev/null || true
fi
SH
chmod 0755 "$stage/lockerd/DEBIAN/postinst" "$stage/lockerd/DEBIAN/postrm"
echo /etc/default/lockerd > "$stage/lockerd/DEBIAN/conffiles"

for p in lockerd liblocker$SOMAJOR liblocker-dev; do
    find "$stage/$p" -type d -exec chmod 0755 {} +
    dpkg-deb --root-owner-group -Zxz --build "$stage/$p" "$out/${p}_${VERSION}_$arch.deb" >/dev/null
    echo "$out/${p}_${VERSION}_$arch.deb"
done
