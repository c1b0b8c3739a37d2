#!/usr/bin/env bash
# KeyMode authorized_keys on the network: no authorized key outlives its
# expiry in the user's ~/.ssh/authorized_keys, and nothing else in that
# file ever changes.  A throwaway local user (npt$$, home under $T, removed
# on exit, also on failure) gets an authorized_keys file with unrelated
# lines (comments, a blank line, CRLF, keys with and without options,
# look-alikes of our marked lines, no newline at the end).  np-deviced
# (KeyMode authorized_keys, KeyTTL 5) and the lab's sshd
# (AuthorizedKeysFile .ssh/authorized_keys, no AuthorizedKeysCommand) run
# behind the home NAT, ssh from behind the office NAT.  Several sessions
# log in as that user; while they are fresh the file holds one marked
# line each (expiry-time= about KeyTTL ahead, from=) above the original
# bytes; within KeyTTL + the 10 s sweep (bounded: 30 s) the file is byte
# for byte the original again, with the same owner and mode; a session
# that logged in before the expiry carries on past it; a fresh ssh after
# the expiry works (a new line, swept again); the line of a session that
# fails before relaying (sshd down) goes at once; a line written before
# an np-deviced restart is swept by the restarted daemon; the spool stays
# empty.
. "$(dirname "$0")/lib.sh"
netns_require
command -v useradd >/dev/null && command -v userdel >/dev/null ||
    skip "useradd/userdel not installed (apt-get install passwd)"

KTTL=5
SWEEP_LIMIT=30
NU=npt$$
UHOME=$T/home-$NU
AK=$UHOME/.ssh/authorized_keys
USER_MADE=0

# On exit: the lab and the network first (that kills every process in the
# namespaces, sshd's sessions as $NU among them), then the user, then
# netns_exit's own cleanup.
np69_exit() {
	local rc=$? i p
	if [ "$USER_MADE" = 1 ]; then
		[ "$LAB_IS_UP" != 1 ] || "$LABBIN/down" "$LAB" >/dev/null 2>&1
		netns_down
		for i in 1 2 3 4 5; do
			userdel "$NU" 2>"$T/userdel.err" && break
			for p in $(ps -o pid= -u "$NU" 2>/dev/null); do
				kill -KILL "$p" 2>/dev/null
			done
			sleep 0.2
		done
		if id -u "$NU" >/dev/null 2>&1; then
			echo "[$TEST_NAME] userdel $NU failed: $(cat "$T/userdel.err")"
			rc=1
		fi
		getent group "$NU" >/dev/null && groupdel "$NU" 2>/dev/null
	fi
	(exit "$rc")
	netns_exit
}
trap np69_exit EXIT

# ---- the throwaway user and its authorized_keys -------------------------
! id -u "$NU" >/dev/null 2>&1 || fail "user $NU exists already"
# -p '*': no password, but not locked ("!"), which sshd without PAM
# would refuse even for a key.
USER_MADE=1
useradd -M -d "$UHOME" -s /bin/sh -p '*' -U -c "noports test 69" "$NU" \
    2>"$T/useradd.err" || { USER_MADE=0; fail "useradd $NU: $(cat "$T/useradd.err")"; }
mkdir -m 0755 "$UHOME"
mkdir -m 0700 "$UHOME/.ssh"
ssh-keygen -q -t ed25519 -N '' -C "alice@laptop" -f "$T/other" ||
    fail "ssh-keygen"
ssh-keygen -q -t ed25519 -N '' -C "backup@nas" -f "$T/other2" ||
    fail "ssh-keygen"
sid=0123456789abcdef0123456789abcdef
{
	printf '# authorized_keys of %s: written by hand, keep as is\n' "$NU"
	printf '\n'
	cat "$T/other.pub"
	printf 'command="/bin/false",no-pty,no-port-forwarding %s\n' \
	    "$(cat "$T/other2.pub")"
	printf '# a comment with a CRLF ending\r\n'
	# Look-alikes of our marked lines, long expired: not byte for byte
	# what np-deviced writes (a trailing word, an upper-case session id,
	# one space more), so they are not ours to remove.
	printf 'expiry-time="20000101000000Z",from="127.0.0.1,::1" %s noports-session-%s extra\n' \
	    "$(cut -d' ' -f1,2 "$T/other.pub")" "$sid"
	printf 'expiry-time="20000101000000Z",from="127.0.0.1,::1" %s noports-session-%s\n' \
	    "$(cut -d' ' -f1,2 "$T/other.pub")" "${sid^^}"
	printf 'expiry-time="20000101000000Z",from="127.0.0.1,::1"  %s noports-session-%s\n' \
	    "$(cut -d' ' -f1,2 "$T/other.pub")" "$sid"
	printf '# the last line has no newline'
} >"$AK"
chmod 0600 "$AK"
chown -R "$NU:$NU" "$UHOME"
cp -p "$AK" "$T/ak.orig"
meta() { stat -c '%U:%G %a' "$1"; }
META=$(meta "$AK")
DMETA=$(meta "$UHOME/.ssh")
log "user $NU, home $UHOME, authorized_keys $(stat -c %s "$AK") bytes, $META"

# ak_same: the file is byte for byte the original, owner and mode too.
ak_same() {
	cmp -s "$T/ak.orig" "$AK" && [ "$(meta "$AK")" = "$META" ]
}
# The marked line np-deviced writes (docs/np-deviced.md, lib/spool.h).
MARK_RE='^expiry-time="[0-9]{14}Z",from="127\.0\.0\.1,::1" ssh-ed25519 [A-Za-z0-9+/]{68} noports-session-[0-9a-f]{32}$'
# ak_marked: sets NMARK to the number of marked lines, after checking
# that they come first, that the rest of the file is the original byte
# for byte, and that the file and ~/.ssh kept their owner and mode.
ak_marked() {
	local osz sz head
	osz=$(stat -c %s "$T/ak.orig")
	sz=$(stat -c %s "$AK")
	[ "$sz" -ge "$osz" ] || fail "authorized_keys shrank to $sz bytes (was $osz)"
	tail -c "$osz" "$AK" | cmp -s - "$T/ak.orig" ||
	    fail "the original lines of authorized_keys changed: $(tail -c "$osz" "$AK" | diff "$T/ak.orig" - | head)"
	head=$(head -c $((sz - osz)) "$AK")
	if [ -n "$head" ] && printf '%s\n' "$head" | grep -Evq -- "$MARK_RE"; then
		fail "an unmarked line was added: $(printf '%s\n' "$head" | grep -Ev -- "$MARK_RE" | head -n 3)"
	fi
	[ "$(meta "$AK")" = "$META" ] ||
	    fail "authorized_keys is $(meta "$AK") now (was $META)"
	[ "$(meta "$UHOME/.ssh")" = "$DMETA" ] ||
	    fail "$UHOME/.ssh is $(meta "$UHOME/.ssh") now (was $DMETA)"
	NMARK=0
	[ -z "$head" ] || NMARK=$(printf '%s\n' "$head" | wc -l)
}
# ak_wait_clean WHAT: the file becomes the original within SWEEP_LIMIT
# seconds; logs how long it took.
ak_wait_clean() {
	local t0=$SECONDS
	wait_for "$SWEEP_LIMIT" ak_same ||
	    fail "$1: authorized_keys not back to the original $SWEEP_LIMIT s later (KeyTTL $KTTL, sweep 10 s): $(grep -Ec -- "$MARK_RE" "$AK") marked lines left; $(diff "$T/ak.orig" "$AK" | head -n 8)"
	log "$1: authorized_keys byte for byte the original again after $((SECONDS - t0)) s, $(meta "$AK")"
}
# ssh_as TAG CMD: one ssh session as $NU through both NATs; its output.
ssh_as() {
	run "$1" lssh -l "$NU" "$LAB_HOST" "$2"
	expect_rc 0 "ssh -l $NU $LAB_HOST ($1)"
}

# ---- the lab: KeyMode authorized_keys ----------------------------------
netns_up
LAB_KEYMODE=authorized_keys LAB_DEVICED_EXTRA="KeyTTL $KTTL" \
    netns_lab_up --user "$NU"
grep -qx 'KeyMode authorized_keys' "$LAB/device/deviced.conf" ||
    fail "deviced.conf has no KeyMode authorized_keys"
grep -qx 'AuthorizedKeysFile .ssh/authorized_keys' "$LAB/sshd/sshd_config" ||
    fail "sshd_config does not read .ssh/authorized_keys"
! grep -q AuthorizedKeysCommand "$LAB/sshd/sshd_config" ||
    fail "sshd_config still runs an AuthorizedKeysCommand"
ak_same || fail "authorized_keys changed when the lab came up"

# 1. A session that logs in now and goes on past its key's expiry: it
# waits for $T/go, which comes only after the line is swept.
GO=$T/go
bg long lab_in client timeout 120 ssh -F "$LAB/ssh_config" -o BatchMode=yes \
    -l "$NU" "$LAB_HOST" \
    "echo in; i=0; while [ ! -e $GO ] && [ \$i -lt 900 ]; do sleep 0.1; i=\$((i + 1)); done; echo carried-on; id -un"
LONG=$BGPID
wait_for 30 grep -qx in "$T/long.out" ||
    fail "the long session did not log in: $(cat "$T/long.log")"
t_login=$(date +%s)
ak_marked
[ "$NMARK" = 1 ] || fail "$NMARK marked lines during the first session (expected 1)"
exp=$(head -n 1 "$AK" | sed 's/^expiry-time="\([0-9]*\)Z".*/\1/')
exp_s=$(date -u -d "${exp:0:8} ${exp:8:2}:${exp:10:2}:${exp:12:2}" +%s)
d=$((exp_s - t_login))
[ "$d" -ge $((KTTL - 5)) ] && [ "$d" -le "$KTTL" ] ||
    fail "expiry-time=$exp is $d s after the login (KeyTTL $KTTL)"
log "session 1 logged in as $NU; its line: expiry-time=\"${exp}Z\" ($d s after the login), from=\"127.0.0.1,::1\""

# 2. More sessions, one after another and three at once: one marked line
# each while fresh (the client sends the same key for each; every line
# has its own session id).
for i in 2 3 4; do
	ssh_as "s$i" "echo s$i; id -un"
	expect_eq "s$i
$NU" "$OUT" "session $i runs as $NU"
done
pids=()
for i in 5 6 7; do
	lssh -l "$NU" "$LAB_HOST" "echo s$i; id -un" >"$T/s$i.out" 2>"$T/s$i.err" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a parallel session failed: $(cat "$T"/s[567].err)"
done
for i in 5 6 7; do
	expect_eq "s$i
$NU" "$(cat "$T/s$i.out")" "parallel session $i runs as $NU"
done
ak_marked
n=$NMARK
sids=$(head -n "$n" "$AK" | grep -o 'noports-session-[0-9a-f]*' | sort -u | wc -l)
keys=$(head -n "$n" "$AK" | awk '{print $3}' | sort -u | wc -l)
log "7 sessions as $NU through both NATs: $n marked lines ($sids session ids, $keys distinct keys) above the original bytes"
[ "$n" -ge 1 ] && [ "$n" -le 7 ] || fail "$n marked lines after 7 sessions"
[ "$sids" = "$n" ] || fail "$n marked lines but $sids session ids"
acc=$(lab_log_count sshd "Accepted publickey for $NU ")
[ "$acc" = 7 ] || fail "sshd accepted $acc logins as $NU (expected 7)"
! grep -Eq 'bad ownership or modes|Authentication refused' "$LAB/logs/sshd.log" ||
    fail "sshd refused the file: $(grep -E 'bad ownership|refused' "$LAB/logs/sshd.log" | head -n 3)"

# 3. KeyTTL plus a sweep later the file is the original again; the long
# session carries on past its key's expiry.
ak_wait_clean "after 7 sessions"
kill -0 "$LONG" 2>/dev/null || fail "the long session ended before its key expired: $(cat "$T/long.out" "$T/long.log")"
: >"$GO"
wait_exit "$LONG" 20 || fail "the long session did not finish after $GO"
expect_rc 0 "the long session's exit status"
expect_eq "in
carried-on
$NU" "$(cat "$T/long.out")" "the long session's output"
log "session 1 carried on $(($(date +%s) - exp_s)) s past its key's expiry and ended cleanly"

# 4. A fresh ssh after the expiry: a new authorization, swept again.
ssh_as fresh "echo fresh; id -un"
expect_eq "fresh
$NU" "$OUT" "a fresh session after the expiry"
ak_marked
log "a fresh ssh after the expiry works ($NMARK marked line while fresh)"
ak_wait_clean "after the fresh session"

# 5. A session that fails before relaying (sshd down) has its line taken
# out at once, not at its expiry.
lab_kill sshd TERM
before=$(lab_lines "$LAB/logs/np-deviced.log")
t0=$(date +%s)
bg nosshd lab_in client timeout 60 ssh -F "$LAB/ssh_config" \
    -o BatchMode=yes -l "$NU" "$LAB_HOST" true
NOSSHD=$BGPID
wait_for 15 lab_log_has "$LAB" np-deviced "$before" 'failed: sshd unreachable' ||
    fail "np-deviced logged no failed session with sshd down"
wait_for 2 ak_same ||
    fail "the line of a session that failed is still there: $(grep -Ec -- "$MARK_RE" "$AK") marked lines"
dt=$(($(date +%s) - t0))
[ "$dt" -lt "$KTTL" ] ||
    fail "the failed session's line went only $dt s after the ssh (KeyTTL $KTTL): not before its expiry"
log "a session that failed (sshd down): its line gone within $dt s of the ssh, before its expiry"
wait_exit "$NOSSHD" 60 || fail "ssh with sshd down did not end"
[ "$RC" != 0 ] || fail "ssh worked with sshd down"
log "ssh with sshd down failed after $(($(date +%s) - t0)) s: $(head -n 1 "$T/nosshd.log")"
lab_restart sshd

# 6. A line written before an np-deviced restart is swept by the new
# daemon (it has had no session for that user yet).
ssh_as before-restart true
ak_marked
[ "$NMARK" -ge 1 ] || fail "no marked line after a session"
lab_kill np-deviced TERM
lab_restart np-deviced
ak_wait_clean "after an np-deviced restart"

# 7. The spool was never used; sshd logged every login as $NU.
[ -z "$(ls -A "$LAB/spool")" ] || fail "the spool is not empty: $(ls -A "$LAB/spool" | head)"
acc=$(lab_log_count sshd "Accepted publickey for $NU ")
[ "$acc" = 9 ] || fail "sshd accepted $acc logins as $NU (expected 9)"
ak_same || fail "authorized_keys differs at the end"
log "spool empty; $acc logins as $NU; authorized_keys as it was ($(stat -c %s "$AK") bytes, $(meta "$AK"))"
log PASS
