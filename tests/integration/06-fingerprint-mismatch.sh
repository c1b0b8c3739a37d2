#!/usr/bin/env bash
# A wrong server fingerprint stops enrollment before the token is spent,
# and stops a configured client from sending.
. "$(dirname "$0")/../lib.sh"

server_init s
server_init other # same kind of server, another certificate
server_start s
srv=127.0.0.1:$PORT_s
[ "$FP_s" != "$FP_other" ] || fail "two servers got the same fingerprint"
expect_match '^SHA256:[A-Za-z0-9+/]{43}$' "$FP_s" "init prints a fingerprint"
run fp npsrv fingerprint -d "$T/s"
expect_rc 0 "np-server fingerprint"
expect_eq "$FP_s" "$OUT" "fingerprint matches init's"

npas alice keygen @alice >"$T/alice.pub" || fail "keygen"
tok=$(npsrv token -d "$T/s" @alice) || fail "token"

for bad in "$FP_other" "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; do
	run e1 npas alice enroll @alice --token "$tok" --server "$srv" \
	    --fingerprint "$bad"
	expect_rc 1 "enroll with fingerprint $bad"
	expect_match '^np: .*fingerprint mismatch' "$ERR" "mismatch message"
	expect_match "$(re_quote "$FP_s")" "$ERR" "message names the real one"
	[ ! -e "$(config_of alice)" ] || fail "failed enrollment wrote a config"
done

# The token was not spent: it still works with the right fingerprint.
run e2 npas alice enroll @alice --token "$tok" --server "$srv" \
    --fingerprint "$FP_s"
expect_rc 0 "enroll with the right fingerprint and the same token"
expect_eq "enrolled @alice at $srv" "$OUT" "enroll output"
[ -f "$(config_of alice)" ] || fail "enroll did not write a config"
mode=$(stat -c %a "$(config_of alice)")
expect_eq 600 "$mode" "config file mode"
grep -Eq "^ServerFingerprint[ =]+\"?$(re_quote "$FP_s")\"?\$" \
    "$(config_of alice)" || fail "config lacks ServerFingerprint: $(cat "$(config_of alice)")"

enroll bob s

# A client configured with the wrong fingerprint cannot send.
cfg=$(config_of bob)
cp "$cfg" "$T/bob-config.good"
grep -vi '^ServerFingerprint' "$T/bob-config.good" >"$cfg"
echo "ServerFingerprint $FP_other" >>"$cfg"
chmod 0600 "$cfg"
for cmd in "send @alice should-not-arrive" "lookup @alice" "recv --timeout 3"; do
	# shellcheck disable=SC2086
	run wrong npas bob $cmd
	expect_rc 1 "np $cmd with the wrong ServerFingerprint"
	expect_match '^np: .*fingerprint mismatch' "$ERR" "mismatch message"
done

# Nothing arrived at alice.
run r1 npas alice recv --timeout 2
expect_rc 1 "alice has nothing"
expect_eq "" "$OUT" "nothing delivered through a mismatched client"

# With the right fingerprint back, bob can send.
cp "$T/bob-config.good" "$cfg"
run s1 npas bob send @alice "now it works"
expect_rc 0 "bob send with the right fingerprint"
run r2 npas alice recv --timeout 10
expect_rc 0 "alice recv"
expect_eq "@bob note now it works" "$OUT" "box arrived"

log PASS
