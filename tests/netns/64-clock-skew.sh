#!/usr/bin/env bash
# The device's clock is off (np-deviced alone runs under libfaketime):
# 300 s ahead and 300 s behind (outside the 30 s window for box
# timestamps), and 45 s ahead (the device still takes the request, the
# client cannot take its answer).  In each case ssh fails within 10 s
# (not after the 15 s set-up timeout) with a message on the client's
# stderr that names @demo's clock and by how much it is off, and
# np-deviced logs the offset; nothing from an out-of-window box is used.
# With the clock right again ssh works.
. "$(dirname "$0")/lib.sh"
netns_require
command -v faketime >/dev/null ||
    skip "faketime not installed (scripts/install-deps)"
FTLIB=
for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
	[ -f "$f" ] && FTLIB=$f && break
done
[ -n "$FTLIB" ] || skip "libfaketime.so.1 not found (apt-get install faketime)"
BOUND_MS=10000
netns_up
netns_lab_up --no-device
lab_restart sshd

# skewed_deviced OFFSET: np-deviced with its wall clock OFFSET (e.g.
# +300s; the monotonic clock is left alone), connected to np-server.
# (tests/lab/start would check it with np ping, which a skewed device
# cannot answer.)
skewed_deviced() {
	local before
	before=$(lab_lines "$LAB/logs/np-deviced.log")
	lab_spawn "$LAB" np-deviced env LD_PRELOAD="$FTLIB" FAKETIME="$1" \
	    FAKETIME_DONT_FAKE_MONOTONIC=1 "$BUILD/np-deviced" \
	    -F "$LAB/device/deviced.conf" -D
	lab_ready "$LAB" np-deviced 20 lab_log_has "$LAB" np-deviced \
	    "$before" 'connected to ' || fail "np-deviced ($1) did not connect"
	DLOG0=$before
}

# skew_case OFFSET CLIENT_ERE DEVICE_ERE: ssh fails within the bound with
# CLIENT_ERE on its stderr; the device's log matches DEVICE_ERE.
skew_case() {
	local off=$1 t0 t1 tag=ssh${1//[^0-9a-z]/_}
	skewed_deviced "$off"
	t0=$(now_ms)
	run "$tag" lssh "$LAB_HOST" 'echo in'
	t1=$(now_ms)
	[ "$RC" = 255 ] || fail "device clock $off: ssh: expected exit 255, got $(what)"
	[ $((t1 - t0)) -le $BOUND_MS ] ||
	    fail "device clock $off: ssh took $((t1 - t0)) ms (bound $BOUND_MS ms)"
	expect_match "$2" "$ERR" "device clock $off: the client's message"
	log "device clock $off: ssh exit $RC after $((t1 - t0)) ms: $(head -n 1 "$T/$tag.err")"
	wait_for 5 lab_log_has "$LAB" np-deviced "$DLOG0" "$3" ||
	    fail "device clock $off: np-deviced did not log /$3/"
	log "  np-deviced: $(tail -n +"$((DLOG0 + 1))" "$LAB/logs/np-deviced.log" |
	    grep -E "$3" | head -n 1 | sed 's/^.*np-deviced: //')"
	lab_kill np-deviced TERM
}

# np rounds to whole seconds; the box's transit time is a few ms.
skew_case +300s "np: demo\.noports: @demo's clock is (299|300|301) s ahead of ours: its np\.session\.err is outside the window.*check NTP" \
    'its timestamp is (299|300|301) s behind this device.s clock'
skew_case -300s "np: demo\.noports: @demo's clock is (299|300|301) s behind ours: its np\.session\.err is outside the window.*check NTP" \
    'its timestamp is (299|300|301) s ahead of this device.s clock'
# 45 s ahead: the request is inside the device's window (a 30 s box may
# be up to 60 s old), its np.session.ok is not inside ours (at most 30 s
# ahead): the client refuses it and says why; the device warns.
skew_case +45s "np: demo\.noports: @demo's clock is (44|45|46) s ahead of ours: its np\.session\.ok is outside the window.*check NTP" \
    'its timestamp is (44|45|46) s behind this device.s clock \(inside the window'

# np ping says the same about a pong from a device 45 s ahead.
skewed_deviced +45s
run ping lab_in client timeout 20 "$BUILD/np" -F "$LAB/client.conf" ping "$LAB_HOST"
[ "$RC" != 0 ] || fail "np ping of a device 45 s ahead succeeded: $(what)"
expect_match "@demo's clock is (44|45|46) s ahead of ours: its np\.pong" "$ERR" "np ping's message"
log "np ping, device clock +45s: $ERR"
lab_kill np-deviced TERM

# The clock right again: ssh works.
lab_restart np-deviced
run ok lssh "$LAB_HOST" 'echo in'
expect_rc 0 "ssh with the device's clock right"
expect_eq in "$OUT" "ssh output with the device's clock right"
log PASS
