#!/usr/bin/env bash
# Restarts on the real network (NAT on both sides), beyond the loopback
# tests/integration/57-ssh-kill-restart.sh:
# 1. np-server stops: a session open across the outage carries on; an ssh
#    started while it is down fails at once with a clear error; after the
#    restart (same port) an ssh started at once works, its request queued
#    at the server until np-deviced is back if np-deviced is not back yet;
#    np-deviced and np-srd reconnect by themselves.
# 2. np-srd is SIGKILLed mid-session: ssh ends with an error; an ssh while
#    it is down fails within SessionTimeout saying the rendezvous did not
#    answer; restarted, it reconnects and a new ssh works.
# 3. np-deviced gets SIGTERM while a session runs: the session may go on
#    for GraceTime (10 s) and is then stopped (ssh ends with an error);
#    a session that ends within the grace time ends normally; np-deviced
#    started again serves a new ssh.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
netns_lab_up

FAIL_BOUND=20	# s: an ssh that cannot work fails within this
END_BOUND=10	# s: a session whose relay died ends within this
BACK_BOUND=30	# s: after a restart, a working ssh within this
GRACE=10	# np-deviced's GraceTime (its default)

# ssh_fails TAG WHAT ERE: an ssh fails within FAIL_BOUND with ERE on its
# stderr.
ssh_fails() {
	local t0
	t0=$(now_ms)
	SSH_LIMIT=$((FAIL_BOUND + 5)) run "$1" lssh "$LAB_HOST" 'echo in'
	[ "$RC" != 0 ] || fail "$2: ssh worked"
	[ $(($(now_ms) - t0)) -le $((FAIL_BOUND * 1000)) ] ||
	    fail "$2: ssh took $(($(now_ms) - t0)) ms to fail"
	expect_match "$3" "$ERR" "$2: ssh's message"
	log "$2: ssh failed after $(($(now_ms) - t0)) ms: $(grep '^np:' "$T/$1.err" | head -n 1)"
}

# ssh_back TAG WHAT: a new ssh works within BACK_BOUND s (retrying).
ssh_back() {
	local t0 ok=0
	t0=$(now_ms)
	while [ $(($(now_ms) - t0)) -lt $((BACK_BOUND * 1000)) ]; do
		SSH_LIMIT=20 run "$1" lssh "$LAB_HOST" 'echo back'
		if [ "$RC" = 0 ] && [ "$OUT" = back ]; then
			ok=1
			break
		fi
		sleep 0.5
	done
	[ "$ok" = 1 ] || fail "$2: no working ssh within $BACK_BOUND s (last: $(what))"
	log "$2: a new ssh worked after $(($(now_ms) - t0)) ms"
}

# ---- 1. np-server ----
open_session s1 25
dev0=$(lab_lines "$LAB/logs/np-deviced.log")
srd0=$(lab_lines "$LAB/logs/np-srd.log")
lab_kill np-server TERM
ssh_fails down1 "np-server down" 'np: .*cannot connect to 203\.0\.113\.10 port'
sleep 2
t_up=$(now_ms)
lab_restart np-server
t_r=$(now_ms)
# q1 with SessionTimeout 40: its request waits at the server until
# np-deviced and np-srd are back, and after 4-6 s down their backoff can
# reach 8-16 s, more than the default 15 s of set-up.
grep -v '^SessionTimeout' "$LAB/client.conf" >"$T/q1.conf"
echo 'SessionTimeout 40' >>"$T/q1.conf"
chmod 0600 "$T/q1.conf"
sed "s|-F $LAB/client.conf proxy|-F $T/q1.conf proxy|" "$LAB/ssh_config" >"$T/q1.ssh_config"
grep -q -- "-F $T/q1.conf proxy" "$T/q1.ssh_config" || fail "q1's ssh config not rewritten"
run q1 lab_in client timeout 50 ssh -F "$T/q1.ssh_config" -o BatchMode=yes \
    "$LAB_HOST" 'echo queued'
t_q=$(now_ms)
expect_rc 0 "an ssh right after np-server restarted"
expect_eq queued "$OUT" "its output"
log "np-server restarted in $((t_r - t_up)) ms; an ssh started at once worked in $((t_q - t_r)) ms (its boxes wait at the server until np-srd and np-deviced, reconnecting with backoff, monitor again)"
wait_for "$BACK_BOUND" lab_log_has "$LAB" np-deviced "$dev0" 'connected to ' ||
    fail "np-deviced did not reconnect to np-server"
wait_for "$BACK_BOUND" lab_log_has "$LAB" np-srd "$srd0" 'connected to .* as @' ||
    fail "np-srd did not reconnect to np-server"
log "np-deviced and np-srd reconnected"
ssh_back a1 "after the np-server restart"
wait_exit "$SPID" 40 || fail "the session open across the np-server restart did not end"
expect_rc 0 "the session open across the np-server restart"
expect_eq "$(printf 'in\n'; seq 0 24)" "$(cat "$T/s1.out")" "its output"
log "the session open across the np-server outage carried on to its end"

# ---- 2. np-srd SIGKILL ----
open_session s2 60
t0=$(now_ms)
lab_kill np-srd KILL
wait_exit "$SPID" "$END_BOUND" || fail "np-srd killed: ssh still running $END_BOUND s later"
[ "$RC" != 0 ] || fail "np-srd killed: ssh exited 0"
log "np-srd killed: ssh exited $RC after $(($(now_ms) - t0)) ms ($(tail -n 1 "$T/s2.log"))"
ssh_fails down2 "np-srd down" 'np: demo\.noports: no answer from rendezvous @sr'
t0=$(now_ms)
lab_restart np-srd
log "np-srd restarted and connected to np-server in $(($(now_ms) - t0)) ms"
ssh_back a2 "after the np-srd restart"

# ---- 3. np-deviced SIGTERM while sessions run ----
open_session s3 60	# longer than the grace time
open_session s4 4	# ends within it
pid=$(lab_pidof np-deviced)
t0=$(now_ms)
kill -TERM "$pid" || fail "kill -TERM np-deviced"
wait_exit "$SPID" $((GRACE + 10)) || fail "np-deviced stopping: a 4 s session did not end"
expect_rc 0 "a session ending within np-deviced's grace time"
expect_eq "$(printf 'in\n'; seq 0 3)" "$(cat "$T/s4.out")" "its output"
log "np-deviced stopping: the short session ended normally after $(($(now_ms) - t0)) ms"
s3pid=${PIDS[${#PIDS[@]} - 2]}
wait_exit "$s3pid" $((GRACE + END_BOUND)) ||
    fail "np-deviced stopping: the long session still runs $((GRACE + END_BOUND)) s after SIGTERM"
[ "$RC" != 0 ] || fail "np-deviced stopping: the long session exited 0"
log "np-deviced stopping: the long session was stopped, ssh exited $RC after $(($(now_ms) - t0)) ms, $(($(wc -l <"$T/s3.out") - 1)) of 60 lines ($(tail -n 1 "$T/s3.log"))"
wait_for 15 bash -c '! kill -0 "$0" 2>/dev/null' "$pid" ||
    fail "np-deviced still running 15 s after SIGTERM"
log "np-deviced exited $(($(now_ms) - t0)) ms after SIGTERM: $(grep -E 'grace|shutting down' "$LAB/logs/np-deviced.log" | tail -n 2 | sed 's/^.*np-deviced: //' | tr '\n' ';')"
rm -f "$LAB/pids/np-deviced.pid"
ssh_fails down3 "np-deviced down" 'np: demo\.noports: no answer from @demo'
lab_restart np-deviced
ssh_back a3 "after the np-deviced restart"
for n in np-server np-srd np-deviced sshd; do
	pid=$(lab_pidof "$n")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "$n is not running at the end"
done
log PASS
