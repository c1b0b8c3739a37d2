#!/usr/bin/env bash
# Run by tests/packaging/80-debs.sh in a private mount and network
# namespace:  inside.sh T TOP
# /etc, /usr and /var become overlays whose upper layers live in T/root,
# so dpkg installs into a throw-away copy of this machine; every check
# prints one line; the first failure ends the script non-zero.
set -u
T=$1
TOP=$2
say() { printf 'inside: %s\n' "$*"; }
die() { printf 'inside: FAIL: %s\n' "$*"; exit 1; }
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    pkill -KILL -u noports,noports-server,noports-srd 2>/dev/null' EXIT

mount --make-rprivate / || die "cannot make / private"
umask 022
mkdir -p "$T/root"
chmod 0755 "$T/root"
for d in etc usr var; do
	# The overlay's root takes the upper directory's mode: 0755, as /$d.
	mkdir -p "$T/root/$d.up" "$T/root/$d.work"
	chmod 0755 "$T/root/$d.up"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/root/$d.up,workdir=$T/root/$d.work" "/$d" ||
	    die "cannot overlay /$d"
done
ip link set lo up || die "no loopback in the network namespace"
# A /run of our own: nothing reaches this machine's systemd or services.
mount -t tmpfs -o mode=0755 tmpfs /run || die "cannot mount a tmpfs on /run"
mkdir -p /run/sshd /run/lock
# Maintainer scripts must not touch this machine's services.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
for f in passwd group shadow gshadow; do
	cp -p "/etc/$f" "$T/root/$f.before"
done

# ---- install ----
debs=$(ls "$T"/debs/noports-{client,device,server}_*.deb)
# shellcheck disable=SC2086
dpkg -i $debs >"$T/dpkg-i.log" 2>&1 || die "dpkg -i failed: $(tail -n 20 "$T/dpkg-i.log")"
say "installed: $(dpkg-query -W -f='${Package} ${Version} ${Status}\n' 'noports-*' | tr '\n' ';')"
grep -q 'control-plane fingerprint: SHA256:' "$T/dpkg-i.log" ||
    die "noports-server did not print the fingerprint it made: $(cat "$T/dpkg-i.log")"

# mo PATH MODE OWNER GROUP
mo() {
	local got
	got=$(stat -c '%a %U %G' "$1" 2>/dev/null) || die "$1 missing"
	[ "$got" = "$2 $3 $4" ] || die "$1: mode/owner $got, want $2 $3 $4"
}
mo /usr/bin/np 755 root root
mo /usr/sbin/np-deviced 755 root root
mo /usr/sbin/np-server 755 root root
mo /usr/sbin/np-srd 755 root root
mo /usr/lib/noports 755 root root
mo /usr/lib/noports/np-keyhelper 755 root root
mo /etc/ssh/ssh_config.d/noports.conf 644 root root
mo /etc/ssh/sshd_config.d/noports.conf 644 root root
mo /etc/noports 755 root root
mo /etc/noports/deviced.conf 644 root root
mo /etc/noports/srd.conf 644 root root
mo /etc/noports/server.conf 644 root root
mo /var/lib/noports 755 root root
mo /var/lib/noports/device 700 noports noports
mo /var/lib/noports/spool 700 noports noports
mo /var/lib/noports/srd 700 noports-srd noports-srd
mo /var/lib/noports/server 700 noports-server noports-server
mo /var/lib/noports/server/tls.key 600 noports-server noports-server
mo /var/lib/noports/server/np.db 600 noports-server noports-server
for m in man1/np.1 man5/noports-client.conf.5 man7/noports.7 man8/np-deviced.8 \
    man8/np-keyhelper.8 man5/deviced.conf.5 man8/np-server.8 man8/np-srd.8 \
    man5/server.conf.5 man5/srd.conf.5; do
	[ -f "/usr/share/man/$m.gz" ] || die "no /usr/share/man/$m.gz"
done
say "files, modes and owners: ok"
# Every keyword of deviced.conf is commented out.
grep -Ev '^[[:space:]]*(#|$)' /etc/noports/deviced.conf && die "deviced.conf sets something"
for u in noports noports-server noports-srd; do
	ent=$(getent passwd "$u") || die "no user $u"
	uid=$(echo "$ent" | cut -d: -f3)
	[ "$uid" -lt 1000 ] || die "$u is not a system user (uid $uid)"
	case $ent in *:/usr/sbin/nologin) ;; *) die "$u has a login shell: $ent" ;; esac
done
say "users: $(for u in noports noports-server noports-srd; do getent passwd "$u" | cut -d: -f1,3,6 | tr '\n' ' '; done)"
cf=$(dpkg-query -W -f='${Conffiles}\n' noports-device noports-server noports-client)
for f in /etc/noports/deviced.conf /etc/noports/srd.conf /etc/noports/server.conf \
    /etc/ssh/sshd_config.d/noports.conf /etc/ssh/ssh_config.d/noports.conf; do
	echo "$cf" | grep -q " $f " || die "$f is not a conffile"
done
say "conffiles: ok"

# ---- OpenSSH takes the drop-ins ----
[ -n "$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)" ] || ssh-keygen -A >/dev/null
/usr/sbin/sshd -t || die "sshd -t refuses the configuration with the drop-in"
sshd_t=$(/usr/sbin/sshd -T)
echo "$sshd_t" | grep -qi '^authorizedkeyscommand /usr/lib/noports/np-keyhelper -s /var/lib/noports/spool %u' ||
    die "sshd -T has no AuthorizedKeysCommand of ours"
echo "$sshd_t" | grep -qi '^authorizedkeyscommanduser noports' ||
    die "sshd -T has no AuthorizedKeysCommandUser noports"
pc=$(ssh -F /etc/ssh/ssh_config -G mydevice.noports | grep -i '^proxycommand ')
[ "$pc" = "proxycommand np proxy %h %p %r" ] ||
    die "ssh -G mydevice.noports: [$pc]"
ssh -F /etc/ssh/ssh_config -G example.org | grep -qi '^proxycommand ' &&
    die "the ProxyCommand applies to other hosts too"
say "sshd -t ok, sshd -T has the keyhelper, ssh -G: $pc"

# ---- the units ----
for u in np-deviced np-server np-srd; do
	f=/lib/systemd/system/$u.service
	[ -f "$f" ] || die "no $f"
	[ -L "/etc/systemd/system/multi-user.target.wants/$u.service" ] ||
	    die "$u.service is not enabled"
	if command -v systemd-analyze >/dev/null; then
		systemd-analyze verify "$f" >"$T/verify.$u" 2>&1 ||
		    die "systemd-analyze verify $u: $(cat "$T/verify.$u")"
		score=$(systemd-analyze security --offline=true "$f" 2>/dev/null |
		    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		[ -n "$score" ] || die "no systemd-analyze security score for $u"
		echo "$score" >"$T/score.$u"
		awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' ||
		    die "$u: systemd-analyze security exposure $score (want <= 2.5)"
		say "$u.service: verify ok, security exposure $score"
	fi
done
# Unconfigured, the device and rendezvous units skip themselves.
cond() {
	local cmd
	cmd=$(sed -n 's/^ExecCondition=//p' "/lib/systemd/system/$1.service")
	eval "$cmd"
}
cond np-deviced && die "np-deviced's ExecCondition passes on the fresh deviced.conf"
cond np-srd && die "np-srd's ExecCondition passes on the fresh srd.conf"

# ---- a walkthrough with what the packages installed ----
# as USER COMMAND...: run as a system user, HOME its home.
as() {
	local u=$1 h
	shift
	h=$(getent passwd "$u" | cut -d: -f6)
	setpriv --reuid="$u" --regid="$u" --init-groups env HOME="$h" "$@"
}
# unit_start NAME: its ExecStart as its User, in the background.
unit_start() {
	local f=/lib/systemd/system/$1.service cmd user
	cmd=$(sed -n 's/^ExecStart=//p' "$f")
	user=$(sed -n 's/^User=//p' "$f")
	# exec: the pid is the daemon's own, so that kill reaches it.
	# shellcheck disable=SC2086
	(exec setpriv --reuid="$user" --regid="$user" --init-groups \
	    env HOME="$(getent passwd "$user" | cut -d: -f6)" $cmd) \
	    >"$T/$1.log" 2>&1 &
	PIDS+=($!)
}
waitport() {
	local i
	for i in $(seq 1 100); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}
unit_start np-server
waitport 6464 || die "np-server did not listen on 6464: $(cat "$T/np-server.log")"
fp=$(np-server fingerprint -d /var/lib/noports/server) || die "np-server fingerprint"
tok() { as noports-server np-server token -d /var/lib/noports/server "$1" | tail -n 1; }
say "np-server from the package's data directory listens; fingerprint $fp"

# The rendezvous and the device, enrolled as their users.
as noports-srd np keygen @sr -f /var/lib/noports/srd/identity.key >/dev/null ||
    die "np keygen @sr as noports-srd"
as noports-srd np enroll @sr --key /var/lib/noports/srd/identity.key \
    --token "$(tok @sr)" --server 127.0.0.1:6464 --fingerprint "$fp" >/dev/null ||
    die "np enroll @sr --key"
cat >>/etc/noports/srd.conf <<CONF
Identity @sr
IdentityFile /var/lib/noports/srd/identity.key
Server 127.0.0.1:6464
ServerFingerprint $fp
PublicHost 127.0.0.1
SinglePort 6465
Allow *
CONF
cond np-srd || die "np-srd's ExecCondition fails once configured"
unit_start np-srd
waitport 6465 || die "np-srd did not listen: $(cat "$T/np-srd.log")"

as noports np keygen @dev -f /var/lib/noports/device/identity.key >/dev/null ||
    die "np keygen @dev as noports"
mo /var/lib/noports/device/identity.key 600 noports noports
as noports np enroll @dev --key /var/lib/noports/device/identity.key \
    --token "$(tok @dev)" --server 127.0.0.1:6464 --fingerprint "$fp" >/dev/null ||
    die "np enroll @dev --key"
useradd -m -d "$T/home/nptest" -s /bin/sh nptest || die "useradd nptest"
chmod 0755 "$T/home"
cat >>/etc/noports/deviced.conf <<CONF
Identity @dev
IdentityFile /var/lib/noports/device/identity.key
Server 127.0.0.1:6464
ServerFingerprint $fp
Allow @client users=nptest
RendezvousHost 127.0.0.1
CONF
cond np-deviced || die "np-deviced's ExecCondition fails once configured"
/usr/sbin/sshd -D -e >"$T/sshd.log" 2>&1 &
PIDS+=($!)
waitport 22 || die "sshd did not listen: $(cat "$T/sshd.log")"
unit_start np-deviced

# The client: the test user, with np's config in its home.
as nptest np keygen @client >/dev/null || die "np keygen @client"
as nptest np enroll @client --token "$(tok @client)" --server 127.0.0.1:6464 \
    --fingerprint "$fp" >/dev/null || die "np enroll @client"
echo "Rendezvous @sr" >>"$T/home/nptest/.config/noports/config"
ok=0
for i in $(seq 1 50); do
	as nptest np ping --no-relay dev.noports >/dev/null 2>&1 && { ok=1; break; }
	sleep 0.2
done
[ "$ok" = 1 ] || die "the device does not answer: $(tail -n 20 "$T/np-deviced.log")"
out=$(as nptest ssh -o BatchMode=yes dev.noports 'echo pkg-ssh-ok; id -un' 2>"$T/ssh.err") ||
    die "ssh dev.noports: $(cat "$T/ssh.err"); np-deviced: $(tail -n 5 "$T/np-deviced.log")"
[ "$out" = "$(printf 'pkg-ssh-ok\nnptest')" ] || die "ssh dev.noports said [$out]"
say "walkthrough: np-server, np-srd, np-deviced from their units, ssh dev.noports: ok"
ss -Hltnp | grep -q '"np-deviced"' && die "np-deviced listens: $(ss -Hltnp | grep np-deviced)"
# Stop the daemons (as systemctl stop would: SIGTERM to the users'
# processes), bounded.
stop_all() {
	local i
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
	pkill -TERM -u noports,noports-server,noports-srd 2>/dev/null
	for i in $(seq 1 100); do
		pgrep -u noports,noports-server,noports-srd >/dev/null || break
		sleep 0.1
	done
	pkill -KILL -u noports,noports-server,noports-srd 2>/dev/null
	PIDS=()
}
stop_all
userdel -r nptest >/dev/null 2>&1

# ---- remove: the users, their data and the conffiles are kept ----
# The file list first: dpkg -L of a removed package lists its conffiles,
# not what went with it.
files=$(dpkg -L noports-client noports-device noports-server)
pgrep -u noports,noports-server,noports-srd -l &&
    die "processes of the packages' users still run: $(ps -o pid,ppid,user,stat,cmd -u noports,noports-server,noports-srd)"
dpkg --remove noports-server noports-device noports-client >"$T/dpkg-remove.log" 2>&1 ||
    die "dpkg --remove failed: $(tail -n 20 "$T/dpkg-remove.log")"
for p in noports-client noports-device noports-server; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	[ "$st" = "deinstall ok config-files" ] || die "$p after remove: status [$st]"
done
for f in /usr/bin/np /usr/sbin/np-deviced /usr/sbin/np-server /usr/sbin/np-srd \
    /usr/lib/noports/np-keyhelper; do
	[ -e "$f" ] && die "left after remove: $f"
done
for u in noports noports-server noports-srd; do
	getent passwd "$u" >/dev/null || die "user $u gone after remove: $(cat "$T/dpkg-remove.log")"
	getent group "$u" >/dev/null || die "group $u gone after remove"
done
mo /var/lib/noports/device 700 noports noports
mo /var/lib/noports/spool 700 noports noports
mo /var/lib/noports/srd 700 noports-srd noports-srd
mo /var/lib/noports/server 700 noports-server noports-server
mo /var/lib/noports/server/tls.key 600 noports-server noports-server
mo /var/lib/noports/server/np.db 600 noports-server noports-server
for f in /etc/noports/deviced.conf /etc/noports/srd.conf /etc/noports/server.conf; do
	[ -f "$f" ] || die "conffile $f gone after remove"
done
say "remove: programs gone; users, /var/lib/noports/{device,spool,server,srd} and /etc/noports/*.conf kept"

# ---- purge ----
dpkg --purge noports-server noports-device noports-client >"$T/dpkg-purge.log" 2>&1 ||
    die "dpkg --purge failed: $(tail -n 20 "$T/dpkg-purge.log")"
for f in $files; do
	case $f in
	/ | /. | /etc | /etc/ssh | /etc/ssh/*_config.d | /usr | /usr/bin | /usr/sbin | \
	    /usr/lib | /usr/share | /usr/share/doc | /usr/share/man | /usr/share/man/man? | \
	    /lib | /lib/systemd | /lib/systemd/system) continue ;;
	esac
	[ -e "$f" ] && die "left after purge: $f"
done
for u in noports noports-server noports-srd; do
	getent passwd "$u" >/dev/null && die "user $u left after purge: $(cat "$T/dpkg-purge.log")"
	getent group "$u" >/dev/null && die "group $u left after purge"
done
for f in passwd group shadow gshadow; do
	cmp -s "/etc/$f" "$T/root/$f.before" || die "/etc/$f differs after purge: $(diff "$T/root/$f.before" "/etc/$f")"
done
# Whatever else the upper layers hold is dpkg's own bookkeeping, logs and
# caches, the backups adduser leaves, and our policy-rc.d.
left=$(cd "$T/root" && find etc.up usr.up var.up -mindepth 1 \( -type f -o -type l \) |
    grep -Ev '^var\.up/(lib/dpkg|log|cache|lib/systemd/deb-systemd-helper-masked)/|^etc\.up/(passwd|group|shadow|gshadow|subuid|subgid)-?$|^etc\.up/\.pwd\.lock$|^usr\.up/sbin/policy-rc\.d$|^etc\.up/ld\.so\.cache$')
[ -z "$left" ] || die "left after purge: $left"
# Directories copied up because a file went into them stay in the upper
# layer (overlayfs): what counts is what the merged tree shows.
for d in /etc/noports /var/lib/noports /usr/lib/noports /usr/share/doc/noports-client; do
	[ -e "$d" ] && die "left after purge: $d"
done
left=$(find /etc/systemd /lib/systemd /var/lib/systemd -name 'np-*' 2>/dev/null)
[ -z "$left" ] || die "unit files or links left after purge: $left"
say "purge: nothing left"
say PASS
