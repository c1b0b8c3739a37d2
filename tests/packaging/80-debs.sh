#!/usr/bin/env bash
# The Debian packages: built by scripts/make-deb (dpkg-buildpackage),
# lintian-clean, then installed with dpkg into a throw-away root: this
# machine's /etc, /usr and /var under overlays in a private mount
# namespace (and a private network namespace), so nothing here changes.
# tests/packaging/inside.sh, run there, checks what a sysadmin would:
# files, modes, owners, users, conffiles, sshd -t with the drop-in, ssh -G
# with the ProxyCommand, the units (and their systemd-analyze security
# exposure), a real walkthrough (np-server from the package's data
# directory, a device enrolled and answering, an ssh session through it),
# then purge, after which nothing of it is left.
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (dpkg, mount and network namespaces)"
command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage missing (scripts/install-deps installs dpkg-dev and debhelper)"
command -v unshare >/dev/null || skip "unshare missing (util-linux)"
case $BUILD in *-san) skip "the packages are built and checked by make check, not per sanitizer build" ;; esac
unshare -m -n -p -f --mount-proc true 2>/dev/null ||
    skip "cannot make mount, network and PID namespaces here"

log "building the packages"
"$TOP/scripts/make-deb" "$T/debs" >"$T/make-deb.out" 2>&1 ||
    fail "scripts/make-deb failed: $(tail -n 30 "$T/make-deb.out")"
for p in noports-client noports-device noports-server; do
	ls "$T/debs/${p}_"*.deb >/dev/null 2>&1 || fail "no $p package: $(ls "$T/debs")"
done
if command -v lintian >/dev/null; then
	grep -E '^[EW]: ' "$T/make-deb.out" &&
	    fail "lintian reported errors or warnings (above)"
	log "lintian: no errors, no warnings"
fi
# What each package holds, for the record.
for d in "$T"/debs/noports-{client,device,server}_*.deb; do
	dpkg-deb -c "$d" >"$T/$(basename "$d" .deb).contents"
done

mkdir -p "$T/root"
# A PID namespace too, so that stopping the packages' daemons by user
# can never reach this machine's own processes.
unshare -m -n -p -f --mount-proc --propagation private \
    bash "$TOP/tests/packaging/inside.sh" "$T" "$TOP" >"$T/inside.log" 2>&1
rc=$?
sed 's/^/  /' "$T/inside.log" | tail -n 60
[ "$rc" = 0 ] || fail "the installed packages failed a check (above)"
grep -q '^inside: PASS' "$T/inside.log" || fail "inside.sh did not finish"
log PASS
