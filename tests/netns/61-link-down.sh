#!/usr/bin/env bash
# The home link goes down for 30 s in the middle of an ssh session that
# prints a line a second, then comes back (default timeouts everywhere:
# KeepAlive 30 s).  The session either carries on and finishes normally
# (every line, in order) or ends with an error, and nothing hangs: ssh
# exits within 75 s of the link's return; np-deviced is reachable again
# (np ping) and a new ssh works within 60 s of it.
#
# What the network does: taking the router's outside link down drops its
# masquerade conntrack entries, and the router answers the device with
# ICMP net unreachable (a soft error: TCP retransmits).  Once the link is
# back, whichever side sends first decides: a retransmission from the
# device makes a new NAT entry (same address, usually the same port) and
# the connection goes on; a packet from the cloud first meets no entry
# and the router answers it with RST.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
netns_lab_up

LINES=60		# the remote loop: one line a second
DOWN_S=30		# how long the link stays down
END_BOUND=75		# s after the link returns: ssh has exited
BACK_BOUND=60		# s after the link returns: np ping, a new ssh

# until_ok BOUND TAG COMMAND...: retries COMMAND (each bounded by itself)
# until it exits 0 with output; fails after BOUND s; sets WAITED (ms).
until_ok() {
	local bound=$1 tag=$2 t0
	shift 2
	t0=$(now_ms)
	while :; do
		run "$tag" "$@"
		[ "$RC" = 0 ] && [ -n "$OUT" ] && break
		[ $(($(now_ms) - t0)) -lt $((bound * 1000)) ] ||
		    fail "$tag: no success within $bound s (last: $(what))"
		sleep 1
	done
	WAITED=$(($(now_ms) - t0))
}

SSH_LIMIT=$((LINES + DOWN_S + END_BOUND + 30)) bg s1 lssh "$LAB_HOST" \
    "i=0; while [ \$i -lt $LINES ]; do echo \"line \$i\"; sleep 1; i=\$((i + 1)); done"
SPID=$BGPID
wait_for 20 grep -q '^line 4$' "$T/s1.out" ||
    fail "the session did not start: $(cat "$T/s1.log")"
dev0=$(lab_lines "$LAB/logs/np-deviced.log")
srd0=$(lab_lines "$LAB/logs/np-srd.log")
link_down "$NS_HOMER" wan
log "home link down (session at $(tail -n 1 "$T/s1.out"))"
sleep "$DOWN_S"
kill -0 "$SPID" 2>/dev/null || log "ssh ended while the link was down (exit: $(wait "$SPID"; echo $?))"
before=$(wc -l <"$T/s1.out")
link_up "$NS_HOMER" wan
t_up=$(now_ms)
# When ssh exits (measured in the background while the test goes on).
( while kill -0 "$SPID" 2>/dev/null; do sleep 0.1; done; now_ms >"$T/s1.end" ) &
PIDS+=("$!")
log "home link up after $DOWN_S s (the client had $before lines)"

# Reachable again: np ping, then a new ssh.
until_ok "$BACK_BOUND" ping lab_in client timeout 10 "$BUILD/np" \
    -F "$LAB/client.conf" ping "$LAB_HOST"
log "np ping answered $(($(now_ms) - t_up)) ms after the link returned: $OUT"
SSH_LIMIT=20 until_ok "$BACK_BOUND" again lssh "$LAB_HOST" 'echo back'
expect_eq back "$OUT" "a new ssh after the link returned"
log "a new ssh worked $(($(now_ms) - t_up)) ms after the link returned"

# The session that was open: finished normally, or ended with an error;
# in any case not still running END_BOUND s after the link returned.
left=$((END_BOUND - ($(now_ms) - t_up) / 1000))
[ "$left" -gt 0 ] || left=1
wait_exit "$SPID" "$left" ||
    fail "ssh still running $END_BOUND s after the link returned ($(wc -l <"$T/s1.out") lines)"
wait_for 2 test -s "$T/s1.end"
t_end=$(cat "$T/s1.end")
if [ "$RC" = 0 ]; then
	want=$(seq 0 $((LINES - 1)) | sed 's/^/line /')
	expect_eq "$want" "$(cat "$T/s1.out")" "the session that carried on: its output"
	log "the session carried on and finished normally, $((t_end - t_up)) ms after the link returned (all $LINES lines, in order)"
else
	log "the session ended with exit $RC, $((t_end - t_up)) ms after the link returned, after $(wc -l <"$T/s1.out") of $LINES lines: $(tail -n 1 "$T/s1.log")"
fi
# np-deviced lets its side of that session go too: at once when an RST
# reaches it, else when TCP_USER_TIMEOUT (3 x KeepAlive = 90 s) runs out
# on the bytes it could not deliver.
sid=$(grep -o 'session [0-9a-f]* from @client user [^ ]* device [^ ]*: accepted' \
    "$LAB/logs/np-deviced.log" | head -n 1 | awk '{print $2}')
[ -n "$sid" ] || fail "no session id in np-deviced's log"
wait_for $((100 - ($(now_ms) - t_up) / 1000)) grep -Eq \
    "session $sid from .*: (done|failed|error)" "$LAB/logs/np-deviced.log" ||
    fail "np-deviced still holds session $sid 100 s after the link returned"
log "np-deviced released its side $(($(now_ms) - t_up)) ms (upper bound) after the link returned: $(grep -E "session $sid from .*: (done|failed|error)" "$LAB/logs/np-deviced.log" | sed 's/^.*device default: //')"
log "np-srd: $(tail -n +"$((srd0 + 1))" "$LAB/logs/np-srd.log" | grep -o ' end .*' | head -n 1)"
log "np-deviced: $(tail -n +"$((dev0 + 1))" "$LAB/logs/np-deviced.log" |
    grep -E 'control plane|connected to|session .*(done|failed)' | sed 's/^.*np-deviced: //' | tr '\n' ';')"
for n in np-server np-srd np-deviced sshd; do
	pid=$(lab_pidof "$n")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "$n is not running at the end"
done
log PASS
