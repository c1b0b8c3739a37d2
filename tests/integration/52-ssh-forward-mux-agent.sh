#!/usr/bin/env bash
# ssh features through `demo.noports`: -L port forwarding (to an echo
# service on the device side), ControlMaster multiplexing (a second ssh
# rides the master: no new noports session, no new login), and agent
# forwarding (-A: ssh-add -l on the device lists the test agent's key).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
command -v socat >/dev/null || skip "socat not installed (apt-get install socat)"
lab_up

# 1. -L: a local port forwarded through the session to an echo service
# (socat + cat) that only the device can reach (127.0.0.1).
EPORT=$(free_port) || fail "no free port"
bg echo socat "TCP-LISTEN:$EPORT,bind=127.0.0.1,reuseaddr,fork" EXEC:cat
wait_for 5 bash -c "ss -Hltn 'sport = :$EPORT' | grep -q ." ||
    fail "echo service did not start"
LPORT=$(free_port) || fail "no free port"
bg fwd lssh -N -o ExitOnForwardFailure=yes -L "127.0.0.1:$LPORT:127.0.0.1:$EPORT" "$LAB_HOST"
fwdpid=$BGPID
wait_for 20 bash -c "ss -Hltn 'sport = :$LPORT' | grep -q ." ||
    fail "ssh -L did not listen on $LPORT: $(cat "$T/fwd.log")"
run e1 timeout 10 socat -t 5 - "TCP:127.0.0.1:$LPORT" < <(printf 'ping through -L\n')
expect_rc 0 "a line through -L"
expect_eq "ping through -L" "$OUT" "echo through -L"
head -c 4194304 /dev/urandom >"$T/fwdblob"
run e2 timeout 60 socat -t 10 - "TCP:127.0.0.1:$LPORT" <"$T/fwdblob"
expect_rc 0 "4 MiB through -L"
cmp -s "$T/fwdblob" "$T/e2.out" || fail "4 MiB through -L came back different ($(stat -c %s "$T/e2.out") bytes)"
# Two connections at once over the same forward.
# (bg's command gets /dev/null as stdin unless it redirects it itself.)
bg e3 bash -c 'timeout 20 socat -t 5 - "TCP:127.0.0.1:$0" < <(printf "one\n"; sleep 1)' "$LPORT"
p3=$BGPID
bg e4 bash -c 'timeout 20 socat -t 5 - "TCP:127.0.0.1:$0" < <(printf "two\n"; sleep 1)' "$LPORT"
p4=$BGPID
wait_exit "$p3" 20 && wait_exit "$p4" 20 || fail "parallel -L connections hung"
OUT=; ERR=$(cat "$T/e3.log" "$T/e4.log")
expect_eq one "$(cat "$T/e3.out")" "first parallel -L connection"
expect_eq two "$(cat "$T/e4.out")" "second parallel -L connection"
kill_tree "$fwdpid" # ssh itself, not only the shell bg made
wait_exit "$fwdpid" 10 || fail "ssh -N -L did not exit on SIGTERM"
log "-L forwarding ok"

# 2. ControlMaster: the master makes one noports session and one login;
# the second ssh goes over the master's socket.
CP=$T/cm.sock
bg master lssh -N -o ControlMaster=yes -o ControlPath="$CP" -o ControlPersist=no "$LAB_HOST"
mpid=$BGPID
wait_for 20 ssh -F "$LAB/ssh_config" -o ControlPath="$CP" -O check "$LAB_HOST" ||
    fail "ControlMaster did not come up: $(cat "$T/master.log")"
logins=$(lab_log_count sshd 'Accepted publickey')
sessions=$(lab_log_count np-deviced .)
run mux1 lssh -o ControlMaster=no -o ControlPath="$CP" "$LAB_HOST" 'echo via-master; exit 3'
expect_rc 3 "ssh over the master"
expect_eq via-master "$OUT" "output over the master"
run mux2 lssh -o ControlMaster=no -o ControlPath="$CP" "$LAB_HOST" 'wc -c' <"$T/fwdblob"
expect_rc 0 "stdin over the master"
expect_eq 4194304 "$(echo "$OUT" | tr -d ' ')" "4 MiB over the master"
expect_eq "$logins" "$(lab_log_count sshd 'Accepted publickey')" \
    "no new sshd login for multiplexed sessions"
run mexit ssh -F "$LAB/ssh_config" -o ControlPath="$CP" -O exit "$LAB_HOST"
expect_rc 0 "ssh -O exit"
wait_exit "$mpid" 10 || fail "the master did not exit after -O exit"
log "ControlMaster ok ($sessions device log lines before, $(lab_log_count np-deviced .) after)"

# 3. Agent forwarding: a test agent with one key; the device sees it.
ssh-keygen -q -t ed25519 -N '' -C agent-test-key -f "$T/agentkey" || fail "ssh-keygen"
bg agent ssh-agent -D -a "$T/agent.sock"
wait_for 5 test -S "$T/agent.sock" || fail "ssh-agent did not start"
SSH_AUTH_SOCK=$T/agent.sock ssh-add -q "$T/agentkey" 2>/dev/null ||
    fail "ssh-add failed"
fp=$(ssh-keygen -lf "$T/agentkey.pub" | awk '{print $2}')
run ag env SSH_AUTH_SOCK="$T/agent.sock" timeout 60 ssh -F "$LAB/ssh_config" \
    -o BatchMode=yes -A "$LAB_HOST" 'ssh-add -l'
expect_rc 0 "ssh -A ssh-add -l"
expect_match "$(re_quote "$fp")" "$OUT" "the forwarded agent lists the key"
# Without -A the device sees no agent.
run noag env SSH_AUTH_SOCK="$T/agent.sock" timeout 60 ssh -F "$LAB/ssh_config" \
    -o BatchMode=yes -a "$LAB_HOST" 'ssh-add -l'
[ "$RC" != 0 ] || fail "an agent was visible without -A: $OUT"
log "agent forwarding ok"
log PASS
