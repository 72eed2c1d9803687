# Installing and packaging (included by the Makefile).
#
#   make install PREFIX=/opt/lockerd [DESTDIR=...]   everything, unstripped
#   make deb                                         build/deb/*.deb
#
# Layout: lockerd in $(SBINDIR), lockerctl in $(BINDIR_I), the client
# library in $(LIBDIR) (static, versioned shared with its soname link and
# the development link, pkg-config file), headers in $(INCDIR), man pages,
# the systemd unit in $(UNITDIR) and its environment file in
# $(SYSCONFDIR)/default/lockerd.
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
BINDIR_I   ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCDIR     ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= $(PREFIX)/etc

# make test-ops: the operations tests (test/ops): the notify protocol
# (~5 s), a Prometheus server scraping two masters (~10 s), the packages
# in a Debian 12 chroot (~10 s with the cached chroot, 3-4 min to make it).
.PHONY: test-ops
test-ops: all
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) test/ops/notify.sh
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) test/ops/prometheus.sh
	test/ops/package.sh

.PHONY: install deb
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR_I) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(INCDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default
	install -m 0755 $(BINDIR)/lockerd $(DESTDIR)$(SBINDIR)/lockerd
	install -m 0755 $(BINDIR)/lockerctl $(DESTDIR)$(BINDIR_I)/lockerctl
	install -m 0644 $(BINDIR)/liblocker.a $(DESTDIR)$(LIBDIR)/liblocker.a
	install -m 0644 $(BINDIR)/liblocker.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblocker.so.$(VERSION)
	ln -sf liblocker.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblocker.so.$(SOMAJOR)
	ln -sf liblocker.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/liblocker.so
	install -m 0644 client/locker.h client/nlock.h $(DESTDIR)$(INCDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' packaging/liblocker.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/liblocker.pc
	install -m 0644 packaging/man/lockerd.8 $(DESTDIR)$(MANDIR)/man8/lockerd.8
	install -m 0644 packaging/man/lockerctl.1 $(DESTDIR)$(MANDIR)/man1/lockerctl.1
	sed 's|@SBINDIR@|$(SBINDIR)|; s|@SYSCONFDIR@|$(SYSCONFDIR)|' packaging/lockerd.service \
	    > $(DESTDIR)$(UNITDIR)/lockerd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lockerd.service
	install -m 0644 packaging/lockerd.default $(DESTDIR)$(SYSCONFDIR)/default/lockerd

deb: all
	VERSION=$(VERSION) SOMAJOR=$(SOMAJOR) BINDIR=$(BINDIR) packaging/mkdeb.sh
