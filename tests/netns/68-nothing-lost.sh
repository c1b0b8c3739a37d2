#!/usr/bin/env bash
# Nothing lost, nothing left behind, on the network: a box sent to an
# offline identity survives an np-server restart and is delivered after
# it; after NSESS ssh sessions (KeyTTL 5) no key outlives its expiry in
# the spool; and no daemon (np-server, np-srd, np-deviced, sshd's
# listener) holds more descriptors after those sessions than before.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
LAB_DEVICED_EXTRA="KeyTTL 5" netns_lab_up
NSESS=${NSESS:-200}
PAR=${PAR:-4}

# 1. A box for the device while it is offline, through a server restart.
lab_kill np-deviced TERM
run send lab_in client "$LAB_BUILD/np" -F "$LAB/client.conf" send "$LAB_IDENT" "kept across a restart"
expect_rc 0 "np send to the offline device"
lab_kill np-server TERM
lab_restart np-server
run recv lab_in device env HOME="$LAB/home" timeout 20 "$LAB_BUILD/np" \
    -F "$LAB/device/np.conf" recv --count 1 --timeout 15
expect_rc 0 "np recv as the device after the restart"
expect_match 'kept across a restart' "$OUT" "the box queued before the restart"
log "queued box delivered after the np-server restart: $OUT"
lab_restart np-deviced
# np-srd reconnects with backoff after the restart.
wait_for 40 lab_ping "$LAB" || fail "the device does not answer after the restart"
run warm lssh "$LAB_HOST" true
expect_rc 0 "a first session after the restart"

# 2. Descriptors before and after NSESS sessions.
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
snap() {
	printf '%s %s %s %s\n' "$(nfds "$(lab_pidof np-server)")" \
	    "$(nfds "$(lab_pidof np-srd)")" "$(nfds "$(lab_pidof np-deviced)")" \
	    "$(nfds "$(lab_pidof sshd)")"
}
sleep 2
before=$(snap)
log "fds before (np-server np-srd np-deviced sshd): $before"
t0=$SECONDS
done_n=0
failed=0
while [ $done_n -lt "$NSESS" ]; do
	pids=()
	for j in $(seq 1 "$PAR"); do
		[ $((done_n + j)) -le "$NSESS" ] || break
		lssh "$LAB_HOST" "echo s$((done_n + j))" >"$T/s.out" 2>"$T/s-$j.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || failed=$((failed + 1))
	done
	done_n=$((done_n + ${#pids[@]}))
	# a bound, not a speed check (sanitizer builds on a loaded machine)
	[ $((SECONDS - t0)) -lt 900 ] || fail "only $done_n sessions in 900 s"
done
dur=$((SECONDS - t0))
log "$NSESS ssh sessions ($PAR at a time) in $dur s, $failed failed"
[ "$failed" = 0 ] || fail "$failed of $NSESS sessions failed: $(cat "$T"/s-*.err | sort | uniq -c | head)"
sleep 3
after=$(snap)
log "fds after: $after"
read -r -a B <<<"$before"
read -r -a A <<<"$after"
names=(np-server np-srd np-deviced sshd)
for i in 0 1 2 3; do
	[ "${A[$i]}" -le $((B[i] + 4)) ] ||
	    fail "${names[$i]} holds ${A[$i]} fds after $NSESS sessions (before: ${B[$i]})"
done

# 3. No key outlives its expiry: KeyTTL 5, swept every 10 s.
wait_for 20 bash -c "[ -z \"\$(ls '$LAB/spool')\" ]" ||
    fail "spool entries left 20 s after the last session: $(ls "$LAB/spool" | head)"
log "spool empty after the sweep"
log PASS
