#!/usr/bin/env bash
# Plain `ssh demo.noports` through the lab (np proxy as ProxyCommand,
# np-srd, np-deviced, a private sshd with np-keyhelper): a command runs,
# its output and exit status come back, stdin goes through (a line and a
# 1 MiB stream); the proxy wrote the session key and the device's host
# key where ssh_config points, with safe modes; sshd logged in with the
# session key; np-srd relayed and logged the session.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
lab_up

# 1. true, then a command with output.
run t1 lssh "$LAB_HOST" true
expect_rc 0 "ssh $LAB_HOST true"
expect_eq "" "$OUT" "no output from true"
run t2 lssh "$LAB_HOST" 'echo hello-from-device; id -un; hostname'
expect_rc 0 "ssh with a command"
expect_eq "$(printf 'hello-from-device\n%s\n%s' "$LAB_USER" "$(hostname)")" \
    "$OUT" "command output"
expect_nomatch '^np:' "$ERR" "nothing from np on stderr by default"

# 2. The exit status passes through.
run t3 lssh "$LAB_HOST" 'exit 7'
expect_rc 7 "exit status 7"
run t4 lssh "$LAB_HOST" 'echo to-stderr >&2; exit 0'
expect_rc 0 "stderr command"
expect_match 'to-stderr' "$ERR" "remote stderr comes back on stderr"

# 3. stdin passes through.
run t5 lssh "$LAB_HOST" cat < <(printf 'data line\n')
expect_rc 0 "echo | ssh cat"
expect_eq "data line" "$OUT" "stdin through cat"
head -c 1048576 /dev/urandom >"$T/mib"
run t6 lssh "$LAB_HOST" 'wc -c' <"$T/mib"
expect_rc 0 "1 MiB through wc -c"
expect_eq 1048576 "$(echo "$OUT" | tr -d ' ')" "wc -c of 1 MiB"
run t7 lssh "$LAB_HOST" sha256sum <"$T/mib"
expect_rc 0 "1 MiB through sha256sum"
expect_eq "$(sha256sum <"$T/mib" | cut -d' ' -f1)" "$(echo "$OUT" | cut -d' ' -f1)" \
    "the remote saw the same 1 MiB"
run t8 lssh "$LAB_HOST" cat <"$T/mib"
expect_rc 0 "1 MiB echoed back"
cmp -s "$T/mib" "$T/t8.out" || fail "1 MiB echoed back differs"

# 4. What the proxy wrote: the session key where IdentityFile points
# (0600 in a 0700 directory) and the device's host key in known_hosts.
key=$LAB/keys/$LAB_USER@$LAB_HOST
[ -f "$key" ] || fail "no session key at $key: $(ls -la "$LAB/keys")"
expect_eq 600 "$(stat -c %a "$key")" "session key mode"
expect_eq 700 "$(stat -c %a "$LAB/keys")" "key directory mode"
grep -q 'BEGIN OPENSSH PRIVATE KEY' "$key" || fail "session key is not an OpenSSH private key"
hk=$(cut -d' ' -f2 "$LAB/sshd/ssh_host_ed25519_key.pub")
grep -Eq "(^|,)$(re_quote "$LAB_HOST")([, ]).*$(re_quote "$hk")" "$LAB/known_hosts" ||
    fail "known_hosts has no line for $LAB_HOST with the sshd host key: $(cat "$LAB/known_hosts")"
# Several sessions ran: known_hosts did not grow a line per session.
[ "$(grep -c . "$LAB/known_hosts")" -le 2 ] ||
    fail "known_hosts grows per session: $(cat "$LAB/known_hosts")"
ls -A "$LAB/keys" | grep -Ev "^($(re_quote "$LAB_USER@$LAB_HOST")(\\.pub)?|\\..*\\.lock)\$" |
    grep -q . && fail "temporary files left in $LAB/keys: $(ls -A "$LAB/keys")"

# 5. sshd accepted the session keys (and nothing else), from loopback;
# np-srd relayed each session to its end.
n=$(lab_log_count sshd "Accepted publickey for $LAB_USER from 127\\.0\\.0\\.1 .*ED25519")
[ "$n" -ge 8 ] || fail "sshd accepted $n session-key logins, expected 8"
wait_for 10 bash -c "[ \$(grep -c 'end done' '$LAB/logs/np-srd.log') -ge 8 ]" ||
    fail "np-srd did not log 8 finished sessions"
log "$(grep 'end done' "$LAB/logs/np-srd.log" | tail -n 1)"

# 6. The session keys the device authorized are bounded: the keyhelper's
# lines carry an expiry and from="127.0.0.1,::1".
run kh "$BUILD/np-keyhelper" -s "$LAB/spool" "$LAB_USER"
expect_rc 0 "np-keyhelper on the lab spool"
if [ -n "$OUT" ]; then
	expect_match '^expiry-time="[0-9]{14}Z",from="127\.0\.0\.1,::1" ssh-ed25519 ' \
	    "$(echo "$OUT" | head -n 1)" "spool line"
fi
log PASS
