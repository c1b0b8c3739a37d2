#!/usr/bin/env bash
# np-deviced opens no listening socket at all: none of its descriptors is
# a TCP socket in LISTEN state (IPv4 or IPv6), a bound UDP socket, or a
# listening unix socket; checked while idle and during a session.  The
# same check finds sshd's and np-server's listeners (so it works).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up

# inodes PID: socket inodes among PID's open descriptors.
inodes() {
	local f
	for f in /proc/"$1"/fd/*; do
		readlink "$f" 2>/dev/null
	done | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -u
}

# listening_inodes: inodes of TCP LISTEN sockets (st 0A), UDP sockets that
# are not connected (st 07), and listening unix sockets (flag
# __SO_ACCEPTCON 00010000).
listening_inodes() {
	awk 'FNR > 1 && $4 == "0A" { print $10 }' /proc/net/tcp /proc/net/tcp6
	awk 'FNR > 1 && $4 == "07" { print $10 }' /proc/net/udp /proc/net/udp6
	awk 'NR > 1 && $4 == "00010000" { print $7 }' /proc/net/unix
}

# listeners PID: PID's listening sockets (inodes), one a line.
listeners() {
	comm -12 <(inodes "$1") <(listening_inodes | sort -u)
}

# check_none WHEN: np-deviced has no listener.
check_none() {
	local pid l
	pid=$(lab_pidof np-deviced)
	[ -n "$pid" ] && kill -0 "$pid" || fail "np-deviced is not running"
	[ -n "$(inodes "$pid")" ] || fail "np-deviced ($pid) has no sockets at all ($1)? cannot check"
	l=$(listeners "$pid")
	[ -z "$l" ] || fail "np-deviced ($pid) has listening sockets ($1): inodes $l"
	if command -v ss >/dev/null; then
		if ss -Hltunp 2>/dev/null | grep -q "pid=$pid,"; then
			fail "ss -ltunp shows a listener of np-deviced ($1): $(ss -Hltunp | grep "pid=$pid,")"
		fi
	fi
	log "np-deviced ($pid): $(inodes "$pid" | wc -l) sockets, none listening ($1)"
}

# The check finds real listeners.
[ -n "$(listeners "$(lab_pidof sshd)")" ] || fail "the check does not see sshd's listener"
[ -n "$(listeners "$(lab_pidof np-server)")" ] ||
    fail "the check does not see np-server's listener"

check_none idle
bg sess lssh "$LAB_HOST" 'echo in; sleep 3'
spid=$BGPID
wait_for 15 grep -q '^in$' "$T/sess.out" || fail "session did not start: $(cat "$T/sess.log")"
check_none "during a session"
wait_exit "$spid" 20 || fail "session did not end"
expect_rc 0 "the session"
check_none "after a session"
log PASS
