#!/usr/bin/env bash
# Silent drops: a router starts dropping every packet it forwards
# (iptables -I FORWARD -j DROP) while an ssh session prints a line a
# second, so a peer vanishes without FIN or RST.
#
# KeepAlive 3 s everywhere (np-srd: keepalive idle 3 s and
# TCP_USER_TIMEOUT 9 s on relayed sockets; np-deviced: control-plane ping
# every 3 s, keepalive on its session sockets; np: keepalive on its
# rendezvous socket) instead of the default 30 s, so the test is short;
# ssh itself has no ServerAliveInterval (the lab's ssh_config sets none).
#
# 1. At the home router: np-srd releases the session (its device side
#    times out), the client's ssh ends with an error, np-deviced notices
#    that its control-plane connection is dead, and once the DROP is
#    removed it reconnects and a new ssh works.
# 2. At the office router: np-srd releases the session (its client side
#    times out), and np proxy's keepalive ends its relay, so ssh exits
#    with an error (before np proxy had keepalive it waited for ever);
#    once the DROP is removed a new ssh works.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
export LAB_SRD_EXTRA='KeepAlive 3'
export LAB_DEVICED_EXTRA='KeepAlive 3'
export LAB_CLIENT_EXTRA='KeepAlive 3'
netns_lab_up

RELEASE_BOUND=30	# s: np-srd releases a session after the drop
END_BOUND=30		# s: ssh ends after the drop
NOTICE_BOUND=20		# s: np-deviced notices its dead control plane
RECONNECT_BOUND=45	# s: np-deviced back after the drop is removed
NEWSSH_BOUND=60		# s: a new ssh works after the drop is removed

# wait_log NAME SKIP ERE SECONDS: waits until a line of NAME's log after
# its first SKIP lines matches ERE; fails after SECONDS.  Sets WAITED (ms
# since the call).
wait_log() {
	local t0
	t0=$(now_ms)
	wait_for "$4" lab_log_has "$LAB" "$1" "$2" "$3" ||
	    fail "no /$3/ in $1's log within $4 s"
	WAITED=$(($(now_ms) - t0))
}

# watch_log NAME SKIP ERE FILE: in the background, writes now_ms to FILE
# when a line of NAME's log after its first SKIP lines matches ERE (for
# when it happened, while the test waits for something else).
watch_log() {
	(
		while ! lab_log_has "$LAB" "$1" "$2" "$3"; do
			sleep 0.1
		done
		now_ms >"$4"
	) &
	PIDS+=("$!")
}

# ssh_again BOUND: a new ssh works within BOUND s; sets WAITED (ms).
ssh_again() {
	local t0 ok=0
	t0=$(now_ms)
	while [ $(($(now_ms) - t0)) -lt $(($1 * 1000)) ]; do
		SSH_LIMIT=20 run again lssh "$LAB_HOST" 'echo back'
		if [ "$RC" = 0 ] && [ "$OUT" = back ]; then
			ok=1
			break
		fi
		sleep 1
	done
	[ "$ok" = 1 ] || fail "no working ssh within $1 s (last: $(what))"
	WAITED=$(($(now_ms) - t0))
}

# ---- 1. the home router drops everything ----
open_session s1 120 3
srd0=$(lab_lines "$LAB/logs/np-srd.log")
dev0=$(lab_lines "$LAB/logs/np-deviced.log")
watch_log np-deviced "$dev0" 'control plane down' "$T/noticed"
t_drop=$(now_ms)
nsx "$NS_HOMER" iptables -I FORWARD -j DROP || fail "iptables at home"
wait_log np-srd "$srd0" ' end error device ' "$RELEASE_BOUND"
log "home drop: np-srd released the session after $WAITED ms:" \
    "$(tail -n +"$((srd0 + 1))" "$LAB/logs/np-srd.log" | grep -o 'end error device.*' | head -n 1)"
wait_exit "$SPID" "$END_BOUND" ||
    fail "home drop: ssh still running $END_BOUND s after the drop"
[ "$RC" != 0 ] || fail "home drop: ssh exited 0"
log "home drop: ssh exited $RC $(($(now_ms) - t_drop)) ms after the drop ($(tail -n 1 "$T/s1.log"))"
grep -q '^119$' "$T/s1.out" && fail "home drop: the session ran to its end"
wait_log np-deviced "$dev0" 'control plane down' "$NOTICE_BOUND"
wait_for 2 test -s "$T/noticed"
[ $(($(cat "$T/noticed") - t_drop)) -le $((NOTICE_BOUND * 1000)) ] ||
    fail "home drop: np-deviced noticed only after $(($(cat "$T/noticed") - t_drop)) ms"
log "home drop: np-deviced noticed its dead control plane" \
    "$(($(cat "$T/noticed") - t_drop)) ms after the drop:" \
    "$(tail -n +"$((dev0 + 1))" "$LAB/logs/np-deviced.log" | grep 'control plane down' | head -n 1 | sed 's/^.*control plane/control plane/')"
sleep 2
dev1=$(lab_lines "$LAB/logs/np-deviced.log")
nsx "$NS_HOMER" iptables -D FORWARD -j DROP || fail "iptables -D at home"
wait_log np-deviced "$dev1" 'connected to ' "$RECONNECT_BOUND"
log "home drop removed: np-deviced reconnected after $WAITED ms"
ssh_again "$NEWSSH_BOUND"
log "home drop removed: a new ssh worked after $WAITED ms more"

# ---- 2. the office router drops everything ----
open_session s2 120 3
srd0=$(lab_lines "$LAB/logs/np-srd.log")
t_drop=$(now_ms)
nsx "$NS_OFFICER" iptables -I FORWARD -j DROP || fail "iptables at the office"
wait_log np-srd "$srd0" ' end error client ' "$RELEASE_BOUND"
log "office drop: np-srd released the session after $WAITED ms:" \
    "$(tail -n +"$((srd0 + 1))" "$LAB/logs/np-srd.log" | grep -o 'end error client.*' | head -n 1)"
wait_exit "$SPID" "$END_BOUND" ||
    fail "office drop: ssh still running $END_BOUND s after the drop (np proxy's keepalive did not end it)"
[ "$RC" != 0 ] || fail "office drop: ssh exited 0"
log "office drop: ssh exited $RC $(($(now_ms) - t_drop)) ms after the drop: $(grep '^np: ' "$T/s2.log" | tail -n 1)"
grep -q '^np: .*lost' "$T/s2.log" ||
    fail "office drop: np proxy did not say the connection was lost: $(cat "$T/s2.log")"
nsx "$NS_OFFICER" iptables -D FORWARD -j DROP || fail "iptables -D at the office"
ssh_again "$NEWSSH_BOUND"
log "office drop removed: a new ssh worked after $WAITED ms"
for n in np-server np-srd np-deviced sshd; do
	pid=$(lab_pidof "$n")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "$n is not running at the end"
done
log PASS
