#!/usr/bin/env bash
# Killing one side of a session (kill -9 of its peer process) closes the
# other side promptly, whether bytes were flowing both ways or the
# session was idle, and np-srd logs the end of the session and gives
# its descriptors back.
. "$(dirname "$0")/../lib.sh"
srd_require

BIG=$((4 * 1024 * 1048576))
server_init s
server_start s
enroll sr s
enroll alice s
srd_conf sr s <<CONF
Allow @alice
MaxSessionsPerIdentity 10
CONF
srd_start sr
nfds() { ls "/proc/$PID_sr/fd" 2>/dev/null | wc -l; }
fds0=$(nfds)

# kill_case TAG VICTIM SEND: both sides send SEND bytes (no shutdown);
# once relaying for 1 s, VICTIM (c or d) is killed; the other side must
# exit within 3 s.
kill_case() {
	local tag=$1 victim=$2 send=$3 other pc pd vp op t0 t1 sid
	other=d
	[ "$victim" = d ] && other=c
	sr_open alice sr "$T/$tag.json" --timeout 20
	expect_rc 0 "$tag: open"
	sid=$(json_field "$T/$tag.json" sid)
	sr_side "$tag-c" "$T/$tag.json" c --send "$send" --seed 1 --timeout 60
	pc=$BGPID
	sr_side "$tag-d" "$T/$tag.json" d --send "$send" --seed 2 --timeout 60
	pd=$BGPID
	wait_for 10 grep -q "session $sid: relaying" "$T/sr.log" ||
	    fail "$tag: not relaying"
	sleep 1
	vp=$pc op=$pd
	[ "$victim" = d ] && { vp=$pd; op=$pc; }
	kill -0 "$op" 2>/dev/null || fail "$tag: the $other side ended early"
	t0=$(now_ms)
	kill -KILL "$vp"
	wait "$vp" 2>/dev/null
	wait_exit "$op" 3 ||
	    fail "$tag: the $other side still open 3 s after its peer was killed"
	t1=$(now_ms)
	log "$tag: $other side closed $((t1 - t0)) ms after kill -9 of $victim (exit $RC: $(tr '\n' ' ' <"$T/$tag-$other.log")$(cat "$T/$tag-$other.out"))"
	wait_for 5 grep -q "session $sid .*end" "$T/sr.log" ||
	    fail "$tag: np-srd logged no end of session $sid"
	log "$tag: $(grep "session $sid .*end" "$T/sr.log" | tail -n 1)"
}

kill_case flow-kill-c c $BIG
kill_case flow-kill-d d $BIG
kill_case idle-kill-c c 0
kill_case idle-kill-d d 0
wait_for 10 eval '[ "$(nfds)" -le "$fds0" ]' ||
    fail "np-srd holds $(nfds) fds after the sessions (before: $fds0)"
kill -0 "$PID_sr" 2>/dev/null || fail "np-srd died"
srd_stop sr || fail "np-srd exited $RC on SIGTERM"

log PASS
