#!/usr/bin/env bash
# Configuration errors: file:line: messages, key file modes, bad server
# configs, usage errors; all fail cleanly with the documented exit codes.
. "$(dirname "$0")/../lib.sh"

# Versions and usage.
run v1 npsrv --version
expect_rc 0 "np-server --version"
expect_eq "np-server 0.1.0" "$OUT" "server version"
run v2 npas nobody --version
expect_rc 0 "np --version"
expect_eq "np 0.1.0" "$OUT" "client version"
run u1 npas nobody frobnicate
expect_rc 2 "np unknown subcommand"
expect_match '^np: ' "$ERR" "np usage error message"
run u2 npas nobody send
expect_rc 2 "np send without arguments"
run u3 npsrv frobnicate
expect_rc 2 "np-server unknown subcommand"
expect_match '^np-server: ' "$ERR" "np-server usage error message"
run u4 npsrv run
expect_rc 2 "np-server run without -d"
for sub in keygen enroll lookup send recv rotate pin; do
	run h npas nobody "$sub" --help
	expect_rc 0 "np $sub --help"
	[ -n "$OUT$ERR" ] || fail "np $sub --help printed nothing"
done
for sub in init fingerprint token revoke list run; do
	run h npsrv "$sub" --help
	expect_rc 0 "np-server $sub --help"
	[ -n "$OUT$ERR" ] || fail "np-server $sub --help printed nothing"
done

server_init s
server_start s
enroll alice s
enroll bob s

# init refuses an existing data dir.
run i2 npsrv init -d "$T/s"
expect_rc 1 "init over an existing data dir"
expect_match '^np-server: ' "$ERR" "init error message"
expect_eq 700 "$(stat -c %a "$T/s")" "data dir mode"
expect_eq 600 "$(stat -c %a "$T/s/tls.key")" "tls.key mode"

# Unknown keyword in the client config: file:line: in the message.
bad=$T/bad-client.conf
cat "$(config_of alice)" >"$bad"
printf 'Frobnicate yes\n' >>"$bad"
chmod 0600 "$bad"
badline=$(wc -l <"$bad" | tr -d ' ')
run c1 npas alice -F "$bad" lookup @bob
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "unknown keyword: $(what)"
expect_match "^np: .*$(re_quote "$bad"):$badline:" "$ERR" "file:line: in the error"
run c2 env -u NP_CONFIG HOME="$T/home/alice" NP_CONFIG="$bad" \
    timeout 30 "$NP" send @bob "x"
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "NP_CONFIG with unknown keyword: $(what)"
expect_match "$(re_quote "$bad"):$badline:" "$ERR" "file:line: via NP_CONFIG"

# A bad value and a missing -F file.
printf 'ConnectTimeout soon\n' >"$T/bad2.conf"
run c3 npas alice -F "$T/bad2.conf" lookup @bob
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "bad value: $(what)"
expect_match "$(re_quote "$T/bad2.conf"):1:" "$ERR" "file:line: for a bad value"
run c4 npas alice -F "$T/does-not-exist.conf" lookup @bob
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "missing -F file: $(what)"
expect_match '^np: ' "$ERR" "missing config message"

# Nothing was sent by any of those.
run r0 npas bob recv --timeout 2
expect_rc 1 "nothing reached bob"

# A key file readable by others is refused.
key=$(keyfile_of alice)
chmod 0644 "$key"
run k1 npas alice send @bob "x"
expect_rc 1 "send with a 0644 key file"
expect_match '^np: .*(mode|permission|0644|644|open|readable|group|other)' \
    "$ERR" "clear message about the key file mode"
chmod 0600 "$key"
run k2 npas alice send @bob "key mode fixed"
expect_rc 0 "send with the key file back at 0600"
run r1 npas bob recv --timeout 10
expect_eq "@alice note key mode fixed" "$OUT" "box after fixing the mode"

# keygen writes 0600 even under a permissive umask, and warns.
mkdir -p "$T/home/dave"
run kg env -u NP_CONFIG bash -c "umask 022; HOME='$T/home/dave' timeout 30 '$NP' keygen @dave"
expect_rc 0 "keygen under umask 022"
expect_eq 600 "$(stat -c %a "$(keyfile_of dave)")" "new key file mode"
expect_eq 700 "$(stat -c %a "$T/home/dave/.config/noports")" "config dir mode"
[ -n "$ERR" ] || fail "no umask warning from keygen under umask 022"
run kg2 npas dave keygen --force @Dave!
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "keygen with an invalid name: $(what)"

# np-server run with a bad config fails cleanly (no hang, no port file).
srvbad() {
	local tag=$1
	shift
	rm -f "$T/s/port.bad"
	run "$tag" timeout 10 "$NPSERVER" run -d "$T/s" -l 127.0.0.1:0 \
	    --port-file "$T/s/port.bad" "$@"
	[ "$RC" = 1 ] || [ "$RC" = 2 ] ||
	    fail "np-server run with a bad config ($tag): $(what)"
	expect_match '^np-server: ' "$ERR" "np-server error message ($tag)"
	[ ! -e "$T/s/port.bad" ] || fail "np-server wrote a port file ($tag)"
}
printf 'QueueMax 10\nBogusKeyword 1\n' >"$T/srv-bad1.conf"
srvbad sb1 -F "$T/srv-bad1.conf"
expect_match "$(re_quote "$T/srv-bad1.conf"):2:" "$ERR" "server file:line:"
printf 'MaxConnections lots\n' >"$T/srv-bad2.conf"
srvbad sb2 -F "$T/srv-bad2.conf"
expect_match "$(re_quote "$T/srv-bad2.conf"):1:" "$ERR" "server file:line:"
printf 'LogLevel chatty\n' >"$T/srv-bad3.conf"
srvbad sb3 -F "$T/srv-bad3.conf"
srvbad sb4 -F "$T/no-such-server.conf"
run sb5 timeout 10 "$NPSERVER" run -d "$T/not-initialised" -l 127.0.0.1:0
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "run on a missing data dir: $(what)"

# The default server.conf written by init parses as is, with every keyword.
for kw in Listen MaxConnections MaxUnauthPerSource AuthTimeout QueueMax \
    MaxTTL LogLevel; do
	grep -Eq "^#[[:space:]]*${kw}[[:space:]=]" "$T/s/server.conf" ||
	    fail "server.conf lacks a commented $kw line"
done

# The running server is unaffected by all that.
run k3 npas alice send @bob "still up"
expect_rc 0 "send after the config errors"
run r2 npas bob recv --timeout 10
expect_eq "@alice note still up" "$OUT" "server still serving"

log PASS
