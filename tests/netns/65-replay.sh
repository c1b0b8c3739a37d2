#!/usr/bin/env bash
# A malicious server operator replays a session request: an SQLite
# trigger in np-server's own database copies every box queued for the
# device into a side table while a real ssh session runs through both
# NATs; then, with np-server stopped, the captured row is put back into
# the boxes table (fresh seq, expiry in the future) and np-server is
# started again, so np-deviced receives the same request a second time.
# It must refuse it: a log line, no new authorization (spool entry), no
# connection to np-srd or sshd for it.  The same after np-deviced is
# restarted (its replay cache persists in StateDir/deviced.seen); the
# same box with a new outer message id (so the server's own de-dup and a
# cache keyed on the outer id would not catch it) is dropped; and the
# request replayed after its ts/ttl window is refused as stale.
. "$(dirname "$0")/lib.sh"
netns_require
command -v sqlite3 >/dev/null || skip "sqlite3 CLI not installed (apt-get install sqlite3)"
netns_up
LAB_DEVICED_EXTRA="KeyTTL 5" netns_lab_up
DB=$LAB/server/np.db
[ -f "$DB" ] || DB=$(ls "$LAB"/server/*.db 2>/dev/null | head -n 1)
[ -n "$DB" ] && [ -f "$DB" ] || fail "no SQLite database in $LAB/server"

sq() { sqlite3 -batch -cmd '.timeout 5000' "$DB" "$@"; }

# The operator's trigger: every box queued for the device is copied.
sq "CREATE TABLE captured AS SELECT * FROM boxes WHERE 0;
CREATE TRIGGER capture AFTER INSERT ON boxes WHEN NEW.recipient = '$LAB_IDENT'
BEGIN INSERT INTO captured SELECT * FROM boxes WHERE seq = NEW.seq; END;" ||
    fail "cannot add the capture trigger"

# 1. The real session, captured on its way.
run real lssh "$LAB_HOST" 'echo real-session'
expect_rc 0 "the real ssh session"
expect_eq real-session "$OUT" "its output"
sq "DROP TRIGGER capture;"
ncap=$(sq "SELECT count(*) FROM captured;")
expect_eq 1 "$ncap" "boxes captured for $LAB_IDENT during one ssh (the session request)"
MID=$(sq "SELECT mid FROM captured;")
SENT_MS=$(sq "SELECT created_ms FROM captured;")
SID=$(grep -Eo "session [0-9a-f]{32} from @client user [^ ]+ device [^ ]+: accepted" \
    "$LAB/logs/np-deviced.log" | tail -n 1 | awk '{print $2}')
[ -n "$SID" ] || fail "np-deviced did not log the real session as accepted"
log "captured box $MID (session $SID), queued at $SENT_MS"
# The real session's key has been swept (or will be): wait until the
# spool holds nothing for it, so any new entry is the replay's.
wait_for 30 bash -c "! ls '$LAB/spool' | grep -q '$SID'" ||
    fail "the real session's spool entry was not swept"

# counts: the marks every replay must leave unchanged.
counts() {
	printf '%s %s %s %s\n' \
	    "$(lab_log_count np-deviced ': accepted,')" \
	    "$(lab_log_count np-srd 'device side in from')" \
	    "$(lab_log_count sshd 'Connection from|Accepted publickey')" \
	    "$(find "$LAB/spool" -type f | wc -l)"
}
# device_queue_empty: no box waits at the server for the device.
device_queue_empty() {
	test "$(sq "SELECT count(*) FROM boxes WHERE recipient = '$LAB_IDENT';")" = 0
}

# replay TAG [OUTER_MID]: np-server stopped, the captured row put back
# (fresh seq, expires in 60 s, optionally with another outer mid), started.
replay() {
	local mid=${2:-$MID} now
	lab_kill np-server TERM
	SRD_MARK=$(lines "$LAB/logs/np-srd.log")
	now=$(now_ms)
	sq "INSERT INTO boxes (recipient, sender, mid, box, created_ms, expires_ms, tag)
	    SELECT recipient, sender, '$mid', box, $now, $now + 60000, tag FROM captured;" ||
	    fail "$1: cannot put the captured box back"
	expect_eq 1 "$(sq "SELECT count(*) FROM boxes WHERE recipient = '$LAB_IDENT';")" \
	    "$1: the replayed box is queued"
	lab_restart np-server
}

# refused TAG ERE BEFORE: np-deviced logs ERE (after its first BEFORE
# lines) within 30 s, acknowledges the box (it leaves the queue), and
# nothing was accepted, authorized or connected for it.
refused() {
	local tag=$1 ere=$2 before=$3 marks
	wait_for 30 lab_log_has "$LAB" np-deviced "$before" "$ere" ||
	    fail "$tag: np-deviced did not log /$ere/ within 30 s: $(tail -n +"$((before + 1))" "$LAB/logs/np-deviced.log")"
	wait_for 10 device_queue_empty ||
	    fail "$tag: the replayed box was not acknowledged"
	sleep 2 # anything it would start (rendezvous, sshd, spool) shows by now
	marks=$(counts)
	expect_eq "$MARKS" "$marks" "$tag: accepted/np-srd device sides/sshd connections/spool files"
	if tail -n +"$((before + 1))" "$LAB/logs/np-deviced.log" | grep -q "session $SID.*accepted"; then
		fail "$tag: np-deviced accepted session $SID again"
	fi
	log "$tag: $(tail -n +"$((before + 1))" "$LAB/logs/np-deviced.log" | grep -E "$ere" | head -n 1 | sed 's/^.*\(box \)/\1/')"
}

MARKS=$(counts)
log "before the replays: accepted/srd device sides/sshd lines/spool files = $MARKS"

# 2. Replayed within its window, np-deviced running: seen before.
b=$(lines "$LAB/logs/np-deviced.log")
replay replay1
refused replay1 "box $MID from @client: seen before" "$b"

# 3. The same box under a new outer message id: the server takes it as
# a new box; the device finds the inner id differs and drops it.
b=$(lines "$LAB/logs/np-deviced.log")
replay newmid "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
refused newmid "dropped box [0-9a-f]{32} from @client" "$b"

# 4. np-deviced restarted (its replay cache comes back from deviced.seen)
# and the replay waiting in the queue when it connects.
[ -s "$LAB/device/state/deviced.seen" ] ||
    fail "np-deviced keeps no replay cache file in its StateDir"
grep -q "^$MID " "$LAB/device/state/deviced.seen" ||
    fail "the replay cache file does not hold $MID"
lab_kill np-deviced TERM
b=$(lines "$LAB/logs/np-deviced.log")
replay restart
lab_restart np-deviced
refused restart "box $MID from @client: seen before" "$b"

# 5. After the request's window (ts + ttl 30 s + 30 s of clock skew):
# stale, however fresh the server says it is.
now=$(now_ms)
wait=$(((SENT_MS + 62000 - now) / 1000 + 1))
if [ "$wait" -gt 0 ]; then
	log "waiting ${wait} s for the request's window to close"
	sleep "$wait"
fi
b=$(lines "$LAB/logs/np-deviced.log")
replay stale
refused stale "box $MID from @client: .*(stale|behind|ahead)" "$b"
# The stale refusal goes back to the client as np.session.err (the
# client process is gone: it expires in its queue).
lab_log_has "$LAB" np-deviced "$b" "session $SID from @client: refused: stale request" ||
    fail "the stale replay was not refused with np.session.err"

# And a real session still works after all this (once np-srd, backing
# off after four server restarts, is connected again).
wait_for 40 lab_log_has "$LAB" np-srd "$SRD_MARK" 'connected to .* as @sr' ||
    fail "np-srd did not reconnect to np-server"
run after lssh "$LAB_HOST" 'echo still-works'
expect_rc 0 "ssh after the replays"
expect_eq still-works "$OUT" "output after the replays"
log PASS
