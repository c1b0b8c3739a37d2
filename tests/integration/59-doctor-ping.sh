#!/usr/bin/env bash
# np doctor and np ping's relay line through the lab (np-server, np-srd,
# np-deviced, sshd). doctor on a good set-up: every check OK, the DEVICE
# ones included, exit 0, nothing on stderr. Then one broken set-up at a
# time, each with its own FAIL line (and SKIP for what depends on it),
# exit 1: the identity key 0644, a config that does not parse or that
# others can write, a wrong ServerFingerprint, ssh configs without the
# snippet or with a wrong IdentityFile / UserKnownHostsFile / np config,
# np-deviced stopped, np-srd stopped, np-server stopped. np ping prints
# the device line and the relay line (rendezvous identity, endpoint,
# two timings); the session it was granted, never joined, just expires
# at np-srd; with np-srd stopped the relay line says FAIL (exit 0: the
# device answered); with np-deviced stopped it exits 1. np -v ping adds
# its timed steps on stderr.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
# Sessions nobody joins (np ping's, np doctor's) expire at np-srd after
# its SessionTimeout: 5 s here, so the test can watch one go.
export LAB_SRD_EXTRA="SessionTimeout 5"
lab_up

# The client's config with a short SessionTimeout (the checks of a
# stopped daemon wait that long), and the lab's ssh config running np
# with it.
CONF=$T/np.conf
{ cat "$LAB/client.conf"; echo "SessionTimeout 4"; } >"$CONF"
chmod 0600 "$CONF"
SSHCONF=$T/ssh_config
sed "s|-F $LAB/client.conf proxy|-F $CONF proxy|" "$LAB/ssh_config" >"$SSHCONF"
grep -q -- "-F $CONF proxy %h %p %r" "$SSHCONF" ||
    fail "could not point the ssh config at $CONF: $(cat "$SSHCONF")"
KEY=$LAB/client/identity.key

doctor() { lab_in client timeout 60 "$BUILD/np" -F "$CONF" doctor "$@"; }
nping() { lab_in client timeout 60 "$BUILD/np" -F "$CONF" ping "$@"; }

# only_checks: every stdout line of the last run is a check line.
only_checks() {
	if printf '%s\n' "$OUT" | grep -Ev '^(OK   |FAIL |SKIP )[^ ]' | grep -q .; then
		fail "doctor printed something other than check lines: $(what)"
	fi
}
# nfail N: the last run printed N FAIL lines.
nfail() {
	expect_eq "$1" "$(printf '%s\n' "$OUT" | grep -c '^FAIL ')" "FAIL lines"
}

# 1. --help.
run help "$BUILD/np" doctor --help
expect_rc 0 "np doctor --help"
expect_match '^usage: np .*doctor \[--ssh-config FILE\] \[DEVICE\]$' "$OUT" "doctor usage"

# 2. A good set-up: every check OK, in order.
run good doctor --ssh-config "$SSHCONF" "$LAB_HOST"
expect_rc 0 "doctor on a good set-up"
only_checks
nfail 0
expect_nomatch '^SKIP' "$OUT" "nothing skipped"
expect_eq "" "$ERR" "nothing on stderr"
i=0
for w in "config " "identity key " "KeyDir " "KnownHosts " "server $LAB_CLOUD_ADDR port " \
    "server certificate " "enrollment: " "KnownIdentities " "rendezvous @sr " \
    "relay endpoint " "device identity @demo" "device $LAB_HOST " "ssh config for "; do
	i=$((i + 1))
	case $(printf '%s\n' "$OUT" | sed -n "${i}p") in
	"OK   $w"*) ;;
	*) fail "check $i is not '$w': $(what)" ;;
	esac
done
expect_eq "$i" "$(printf '%s\n' "$OUT" | grep -c .)" "number of checks"
want="config
identity key
KeyDir
KnownHosts
server
server certificate
enrollment:
KnownIdentities
rendezvous
relay endpoint
device identity
device
ssh config for"
got=$(printf '%s\n' "$OUT" | sed -E 's/^OK   //' | awk '{
	if ($1 == "server" && $2 == "certificate") print "server certificate";
	else if ($1 == "identity" || $1 == "device" && $2 == "identity" ||
	    $1 == "relay") print $1 " " $2;
	else if ($1 == "ssh") print "ssh config for";
	else print $1 }')
expect_eq "$want" "$got" "the checks and their order"
g() { printf '%s\n' "$OUT" | grep -E -- "$1" >/dev/null || fail "no line /$1/ in: $(what)"; }
g "^OK   config $(re_quote "$CONF")\$"
g "^OK   identity key $(re_quote "$KEY") \(@client, mode 0600\)\$"
g "^OK   KeyDir $(re_quote "$LAB/keys") \(0700\)\$"
g "^OK   server $(re_quote "$LAB_CLOUD_ADDR") port $SERVER_PORT reachable"
g "^OK   server certificate $(re_quote "$SERVER_FP") matches ServerFingerprint\$"
g "^OK   enrollment: authenticated as @client at "
g "^OK   rendezvous @sr answers: granted 127\.0\.0\.1:[0-9]+ in [0-9]+ ms"
g "^OK   relay endpoint 127\.0\.0\.1:[0-9]+: connect\+token round trip [0-9]+ ms\$"
g "^OK   device identity @demo: known, pinned key matches\$"
g "^OK   device $(re_quote "$LAB_HOST") answers: np-deviced [0-9.]+, devices: default, features: .*, rtt [0-9]+ ms\$"
g "^OK   ssh config for $(re_quote "$LAB_HOST"): ProxyCommand runs np proxy"
log "doctor, good set-up: $(printf '%s\n' "$OUT" | wc -l) checks OK"

# Without DEVICE: the device checks are not run.
run nodev doctor
expect_rc 0 "doctor without DEVICE"
only_checks
expect_nomatch '^OK   (device|ssh config)' "$OUT" "no device checks without DEVICE"

# A bad DEVICE name is refused before anything runs.
run badname doctor 'a;b.noports'
expect_rc 1 "doctor with a bad device name"
expect_eq "" "$OUT" "no checks for a bad name"
expect_match "^np: bad device name 'a;b\.noports'" "$ERR" "bad name message"

# 3. np ping: the device line, then the relay line with two timings.
srd0=$(lab_lines "$LAB/logs/np-srd.log")
run ping nping "$LAB_HOST"
expect_rc 0 "np ping"
expect_eq 2 "$(printf '%s\n' "$OUT" | grep -c .)" "np ping prints two lines"
expect_match "^$(re_quote "$LAB_HOST") \(@demo\): np-deviced [0-9.]+, devices: default, features: [a-z,]+, rtt [0-9]+ ms\$" \
    "$(printf '%s\n' "$OUT" | sed -n 1p)" "np ping's device line"
relay=$(printf '%s\n' "$OUT" | sed -n 2p)
expect_match '^relay @sr: granted 127\.0\.0\.1:[0-9]+ in [0-9]+ ms, connect\+token round trip [0-9]+ ms$' \
    "$relay" "np ping's relay line"
log "np ping: $(printf '%s' "$OUT" | tr '\n' '|')"
# The session it was granted is never joined by a device: it expires at
# np-srd (SessionTimeout 5 s), and nothing else is said about it.
cport=$(printf '%s\n' "$relay" | sed -E 's/^relay @sr: granted [0-9.]+:([0-9]+) .*/\1/')
sid=$(tail -n +"$((srd0 + 1))" "$LAB/logs/np-srd.log" |
    sed -nE "s/.*session ([0-9a-f]{32}) for @client: ports $cport .*/\1/p" | head -n 1)
[ -n "$sid" ] || fail "np-srd logged no session on port $cport: $(tail -n +"$((srd0 + 1))" "$LAB/logs/np-srd.log")"
wait_for 15 grep -q "session $sid .* end expired" "$LAB/logs/np-srd.log" ||
    fail "np ping's session $sid did not expire at np-srd: $(grep "$sid" "$LAB/logs/np-srd.log")"
grep "$sid" "$LAB/logs/np-srd.log" | grep -Eiq 'error|refus|fail|warn' &&
    fail "np-srd complained about np ping's session: $(grep "$sid" "$LAB/logs/np-srd.log")"
expect_match "client 127\.0\.0\.1:[0-9]+ device - c>d 0 d>c 0 .*end expired" \
    "$(grep "session $sid .* end expired" "$LAB/logs/np-srd.log")" "np-srd's end line"
lab_alive "$LAB" np-srd || fail "np-srd died"
run ping2 nping "$LAB_HOST"
expect_rc 0 "np ping after the expiry"
# A device name the identity does not serve: it answers, np ping says so.
run ping3 nping --no-relay "web.$LAB_HOST"
expect_rc 1 "np ping of a device name not served"
expect_match "answered, but serves no device 'web' \(it serves: default\)" "$ERR" \
    "np ping names the devices served"
run ping4 nping "$LAB_HOST" --no-relay
expect_rc 0 "np ping DEVICE --no-relay"
expect_eq 1 "$(printf '%s\n' "$OUT" | grep -c .)" "--no-relay: the device line only"
# np -v ping: the timed steps on stderr, the same two lines on stdout.
run pv lab_in client timeout 60 "$BUILD/np" -F "$CONF" -v ping "$LAB_HOST"
expect_rc 0 "np -v ping"
expect_eq 2 "$(printf '%s\n' "$OUT" | grep -c .)" "np -v ping prints two lines"
expect_match "^np: loaded the key of @client from $(re_quote "$KEY") \([0-9]+ ms\)\$" "$ERR" \
    "np -v ping: the key step"
expect_match '^np: connected to .* as @client \([0-9]+ ms\)$' "$ERR" \
    "np -v ping: the connect step"

# 4. The identity key readable by others.
chmod 0644 "$KEY"
run key644 doctor --ssh-config "$SSHCONF" "$LAB_HOST"
chmod 0600 "$KEY"
expect_rc 1 "doctor with the key 0644"
only_checks
nfail 1
g "^FAIL identity key $(re_quote "$KEY"): mode 0644, group or other may read or write it .* -- fix: chmod 600 $(re_quote "$KEY")"
g '^SKIP enrollment: no usable identity key$'
g '^SKIP rendezvous: '
g '^SKIP device identity @demo: '
g "^SKIP device $(re_quote "$LAB_HOST"): "
g "^OK   ssh config for "
log "key 0644: $(printf '%s\n' "$OUT" | grep '^FAIL')"

# 5. A config that does not parse, and one that others can write.
BAD=$T/bad.conf
{ cat "$CONF"; echo "NoSuchKeyword yes"; } >"$BAD"
chmod 0600 "$BAD"
run badconf lab_in client "$BUILD/np" -F "$BAD" doctor
expect_rc 1 "doctor with a config that does not parse"
only_checks
nfail 1
n=$(wc -l <"$BAD")
g "^FAIL config $(re_quote "$BAD"): line $n: unknown keyword 'NoSuchKeyword' -- fix: "
g '^SKIP identity key: the config did not load$'
expect_nomatch '^OK' "$OUT" "nothing OK after a bad config"
cp "$CONF" "$T/gw.conf"
chmod 0620 "$T/gw.conf"
run gwconf lab_in client "$BUILD/np" -F "$T/gw.conf" doctor
expect_rc 1 "doctor with a group-writable config"
g "^FAIL config $(re_quote "$T/gw.conf"): writable by group or other \(mode 0620; np refuses it\) -- fix: chmod go-w "

# 6. A wrong ServerFingerprint (the right form, another certificate's).
WRONG=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
FPC=$T/fp.conf
sed "s|^ServerFingerprint .*|ServerFingerprint $WRONG|" "$CONF" >"$FPC"
chmod 0600 "$FPC"
run fp lab_in client "$BUILD/np" -F "$FPC" doctor
expect_rc 1 "doctor with a wrong ServerFingerprint"
only_checks
nfail 1
g "^OK   server $(re_quote "$LAB_CLOUD_ADDR") port $SERVER_PORT reachable"
g "^FAIL server certificate: fingerprint mismatch: the server has $(re_quote "$SERVER_FP"), ServerFingerprint is $(re_quote "$WRONG") -- fix: "
g "^SKIP enrollment: the server's certificate is not the pinned one\$"
log "wrong fingerprint: $(printf '%s\n' "$OUT" | grep '^FAIL' | cut -c1-120)..."

# 7. ssh configs: no snippet; the snippet without IdentityFile, with
# another UserKnownHostsFile, running np with another config.
printf 'Host *\n\tUser %s\n' "$LAB_USER" >"$T/ssh.none"
run sshnone doctor --ssh-config "$T/ssh.none" "$LAB_HOST"
expect_rc 1 "doctor with an ssh config without the snippet"
only_checks
nfail 1
g "^FAIL ssh config for $(re_quote "$LAB_HOST"): no ProxyCommand \(ssh would connect to $(re_quote "$LAB_HOST") directly\) -- fix: install ssh-config-snippets/noports\.conf"
g "^OK   device $(re_quote "$LAB_HOST") answers"
grep -v 'IdentityFile' "$SSHCONF" >"$T/ssh.noid"
run sshnoid doctor --ssh-config "$T/ssh.noid" "$LAB_HOST"
expect_rc 1 "doctor with an ssh config without IdentityFile"
nfail 1
g "^FAIL ssh config for $(re_quote "$LAB_HOST"): no IdentityFile is $(re_quote "$LAB/keys/$LAB_USER@$LAB_HOST") .* -- fix: IdentityFile $(re_quote "$LAB/keys")/%r@%h "
sed "s|UserKnownHostsFile .*|UserKnownHostsFile $T/elsewhere|" "$SSHCONF" >"$T/ssh.ukh"
run sshukh doctor --ssh-config "$T/ssh.ukh" "$LAB_HOST"
expect_rc 1 "doctor with another UserKnownHostsFile"
nfail 1
g "^FAIL ssh config for $(re_quote "$LAB_HOST"): its UserKnownHostsFile \($(re_quote "$T/elsewhere")\) is not KnownHosts $(re_quote "$LAB/known_hosts")"
run sshlab doctor --ssh-config "$LAB/ssh_config" "$LAB_HOST"
expect_rc 1 "doctor with an ssh config running np with another config"
nfail 1
g "^FAIL ssh config for $(re_quote "$LAB_HOST"): its ProxyCommand runs np with the config $(re_quote "$LAB/client.conf"), but these checks read $(re_quote "$CONF")"
# ...and that one, checked with its own config, is fine.
run sshlab2 lab_in client "$BUILD/np" -F "$LAB/client.conf" doctor --ssh-config "$LAB/ssh_config" "$LAB_HOST"
expect_rc 0 "the lab's own ssh config with the lab's np config"

# 8. np-deviced stopped: the device does not answer; np ping exits 1
# (its relay line still OK).
lab_kill np-deviced TERM
run nodevd doctor --ssh-config "$SSHCONF" "$LAB_HOST"
expect_rc 1 "doctor with np-deviced stopped"
only_checks
nfail 1
g '^OK   device identity @demo: known, pinned key matches$'
g "^FAIL device $(re_quote "$LAB_HOST"): no answer from @demo within 4 s -- fix: is np-deviced running on the device"
g '^OK   relay endpoint '
run pingnodev nping "$LAB_HOST"
expect_rc 1 "np ping with np-deviced stopped"
expect_match "^np: $(re_quote "$LAB_HOST"): no answer from @demo within 4 s \(is np-deviced running" "$ERR" "np ping's device error"
expect_match '^relay @sr: granted 127\.0\.0\.1:[0-9]+ in [0-9]+ ms, connect\+token round trip [0-9]+ ms$' \
    "$OUT" "np ping's relay line without the device"
lab_restart np-deviced

# 9. np-srd stopped: np ping still exits 0 (the device answered), its
# relay line says FAIL; doctor fails the rendezvous check.
lab_kill np-srd TERM
run pingnosrd nping "$LAB_HOST"
expect_rc 0 "np ping with np-srd stopped"
expect_match "^$(re_quote "$LAB_HOST") \(@demo\): np-deviced " "$(printf '%s\n' "$OUT" | sed -n 1p)" "device line"
expect_eq "relay @sr: FAIL: no answer within 4 s (is np-srd running, and does its Allow line name @client?)" \
    "$(printf '%s\n' "$OUT" | sed -n 2p)" "np ping's relay line with np-srd stopped"
run nosrd doctor --ssh-config "$SSHCONF" "$LAB_HOST"
expect_rc 1 "doctor with np-srd stopped"
only_checks
nfail 1
g '^FAIL rendezvous @sr: no answer within 4 s -- fix: is np-srd running and connected to the server'
g '^SKIP relay endpoint: no session granted$'
g "^OK   device $(re_quote "$LAB_HOST") answers"
lab_restart np-srd

# 10. No Rendezvous configured: np ping says so on its relay line.
grep -v '^Rendezvous ' "$CONF" >"$T/norv.conf"
chmod 0600 "$T/norv.conf"
run pingnorv lab_in client "$BUILD/np" -F "$T/norv.conf" ping "$LAB_HOST"
expect_rc 0 "np ping without a Rendezvous"
expect_eq "relay: FAIL: no Rendezvous configured (set 'Rendezvous @sr' in $T/norv.conf)" \
    "$(printf '%s\n' "$OUT" | sed -n 2p)" "np ping's relay line without a Rendezvous"

# 11. np-server stopped: unreachable; what needs it is skipped, the
# local checks still run.
lab_kill np-server TERM
run nosrv doctor --ssh-config "$SSHCONF" "$LAB_HOST"
expect_rc 1 "doctor with np-server stopped"
only_checks
nfail 1
g "^FAIL server $(re_quote "$LAB_CLOUD_ADDR") port $SERVER_PORT: cannot connect: Connection refused -- fix: is np-server running there"
g '^SKIP server certificate: the server was not reached$'
g '^SKIP enrollment: the server was not reached$'
g '^SKIP rendezvous: not authenticated to the server$'
g '^SKIP device identity @demo: not authenticated to the server$'
g '^OK   KnownIdentities '
g "^OK   ssh config for $(re_quote "$LAB_HOST")"
run pingnosrv nping "$LAB_HOST"
expect_rc 1 "np ping with np-server stopped"
log PASS
