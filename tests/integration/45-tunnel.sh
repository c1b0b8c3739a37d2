#!/usr/bin/env bash
# np tunnel through the lab: curl reaches an HTTP server on the device
# through a local port (IPv4 and IPv6 on both sides), a target the
# device's PermitOpen does not list is refused with the reason, a
# permitted target that is down is reported, 50 connections at once carry
# checksummed payloads both ways, --once exits with the connection's
# status (and with -v prints its timed steps), several -L at once, and
# SIGTERM ends the tunnel and its connections.  Every session's relay is
# encrypted (np-deviced says which cipher).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"
lab_require
command -v curl >/dev/null || skip "curl not installed (scripts/install-deps)"
command -v python3 >/dev/null || skip "python3 not installed (scripts/install-deps)"
command -v socat >/dev/null || skip "socat not installed (scripts/install-deps)"

HTTP=$(free_port)
HTTP6=$(free_port)
ECHO=$(free_port)
DOWN=$(free_port)
mkdir -p "$T/www"
head -c 300000 /dev/urandom >"$T/www/blob"
echo "hello through the tunnel" >"$T/www/index.html"
# The device's services: HTTP on 127.0.0.1 and on ::1, an echo server.
(cd "$T/www" && exec python3 -m http.server "$HTTP" --bind 127.0.0.1) \
    >"$T/http4.log" 2>&1 &
PIDS+=($!)
(cd "$T/www" && exec python3 -m http.server "$HTTP6" --bind ::1) \
    >"$T/http6.log" 2>&1 &
PIDS+=($!)
socat TCP-LISTEN:"$ECHO",bind=127.0.0.1,fork,reuseaddr EXEC:cat \
    >"$T/echo.log" 2>&1 &
PIDS+=($!)

# Each tunnelled connection is a rendezvous session of its own: 50 at
# once from one identity is more than np-srd's default of 32 unfinished
# sessions per identity (its answer, "too many sessions", would close some).
# Each is a control-plane connection of its own too, 50 from one address
# at once: np-server's MaxUnauthPerSource, lowered from 32 to 8 here,
# closes the least advanced of them, and those must try again (lib/cpc.c
# cpc_early_retry) instead of failing their connection.
LAB_SERVER_EXTRA="MaxUnauthPerSource 8" LAB_SRD_EXTRA="MaxSessionsPerIdentity 128" \
LAB_DEVICED_EXTRA="PermitOpen localhost:$HTTP 127.0.0.1:$ECHO [::1]:$HTTP6
PermitOpen 127.0.0.1:$DOWN" lab_up
NP="$BUILD/np -F $LAB/client.conf"
# tcp_listening PORT: something listens on PORT where the client runs
# (without connecting: np tunnel --once would take the probe as its one
# connection).
tcp_listening() {
	lab_in client ss -Hltn "sport = :$1" | grep -q .
}
wait_for 10 lab_tcp_open "$HTTP" || fail "http server did not start"

# tunnel_up TAG ARGS...: np tunnel in the background; waits for its
# "listening on" lines (one per -L at least); TPID is its pid.
tunnel_up() {
	local tag=$1 n
	shift
	bg "$tag" $NP tunnel "$LAB_HOST" "$@"
	TPID=$BGPID
	n=$(printf '%s\n' "$@" | grep -c '^-L')
	wait_for 10 eval "[ \$(grep -c '^listening on' '$T/$tag.out' 2>/dev/null) -ge $n ]" ||
	    fail "np tunnel $* did not start: $(cat "$T/$tag.out" "$T/$tag.log")"
}

L1=$(free_port)
L2=$(free_port)
L3=$(free_port)
tunnel_up tun -L "$L1:localhost:$HTTP" -L "[::1]:$L2:[::1]:$HTTP6" \
    -L "127.0.0.1:$L3:127.0.0.1:$ECHO"
expect_match "listening on 127\.0\.0\.1:$L1 for localhost port $HTTP" \
    "$(cat "$T/tun.out")" "the first -L listens on loopback"
expect_match "listening on \[::1\]:$L1 " "$(cat "$T/tun.out")" \
    "a loopback -L listens on ::1 too"
expect_match "listening on \[::1\]:$L2 for ::1 port $HTTP6" \
    "$(cat "$T/tun.out")" "the IPv6 -L"
expect_nomatch "listening on 127\.0\.0\.1:$L2" "$(cat "$T/tun.out")" \
    "an explicit [::1] bind is IPv6 only"

# 1. curl through the tunnel, over IPv4 and IPv6 on both sides.
run c1 curl -sS -m 20 "http://127.0.0.1:$L1/index.html"
expect_rc 0 "curl through the tunnel"
expect_eq "hello through the tunnel" "$OUT" "the page through the tunnel"
run c2 curl -sS -m 20 -o "$T/blob.1" "http://localhost:$L1/blob"
expect_rc 0 "curl of 300 kB"
cmp -s "$T/www/blob" "$T/blob.1" || fail "the 300 kB file came back different"
run c3 curl -sS -m 20 -g -o "$T/blob.6" "http://[::1]:$L2/blob"
expect_rc 0 "curl over IPv6 to an IPv6 server"
cmp -s "$T/www/blob" "$T/blob.6" || fail "the IPv6 copy differs"
grep -q "GET /blob" "$T/http6.log" || fail "the ::1 server saw no request"
lab_log_has "$LAB" np-deviced 0 "tunnel to ::1 port $HTTP6 accepted.*relay (aes-256-gcm|chacha20-poly1305)" ||
    fail "np-deviced did not log an encrypted tunnel to ::1"

# 2. 50 connections at once, each 256 kB each way through the echo
# server; every one must come back byte for byte.
for i in $(seq 1 50); do
	head -c 262144 /dev/urandom >"$T/p.$i"
done
for i in $(seq 1 50); do
	socat -t 30 -T 60 - TCP:127.0.0.1:"$L3" <"$T/p.$i" >"$T/r.$i" 2>"$T/s.$i" &
	SP[$i]=$!
done
bad=0
for i in $(seq 1 50); do
	wait "${SP[$i]}" || bad=$((bad + 1))
done
[ "$bad" = 0 ] || fail "$bad of 50 concurrent socat clients failed: $(cat "$T"/s.* | head -5)"
for i in $(seq 1 50); do
	[ "$(sha256sum <"$T/p.$i")" = "$(sha256sum <"$T/r.$i")" ] ||
	    fail "connection $i: the echo differs ($(wc -c <"$T/r.$i") bytes back)"
done
n=$(grep -c "connection [0-9]* from" "$T/tun.log")
[ "$n" -ge 53 ] || fail "np tunnel logged $n connections, want >= 53"
kill -0 "$TPID" 2>/dev/null || fail "np tunnel died: $(tail "$T/tun.log")"
log "np-server closed early connections: $(grep -c 'MaxUnauthPerSource' "$LAB/logs/np-server.log") reports"

# 3. Not in PermitOpen: refused, with the device's reason.
L4=$(free_port)
bg once1 $NP tunnel "$LAB_HOST" -L "$L4:127.0.0.1:$SSHD_PORT" --once
wait_for 10 eval "grep -q '^listening on' '$T/once1.out'" || fail "np tunnel --once did not start"
run c4 curl -sS -m 20 "http://127.0.0.1:$L4/"
[ "$RC" != 0 ] || fail "a refused tunnel gave curl an answer: $(what)"
wait_exit "$BGPID" 20 || fail "np tunnel --once did not exit"
expect_eq 1 "$RC" "--once exit status after a refusal"
expect_match "device refused: tunnel target not permitted by the device's PermitOpen" \
    "$(cat "$T/once1.log")" "the refusal reason"
lab_log_has "$LAB" np-deviced 0 "refused: tunnel target not permitted" ||
    fail "np-deviced did not log the refusal"

# 4. Permitted but nothing listens there: said so.
L5=$(free_port)
bg once2 $NP tunnel "$LAB_HOST" -L "$L5:127.0.0.1:$DOWN" --once -q
wait_for 10 tcp_listening "$L5" || fail "np tunnel -q did not listen"
[ -s "$T/once2.out" ] && fail "-q printed: $(cat "$T/once2.out")"
run c5 curl -sS -m 20 "http://127.0.0.1:$L5/"
wait_exit "$BGPID" 20 || fail "np tunnel --once did not exit"
expect_eq 1 "$RC" "--once exit status when the target is down"
expect_match "127\.0\.0\.1 port $DOWN unreachable from the device" \
    "$(cat "$T/once2.log")" "the target-down reason"

# 5. --once with a good connection exits 0 after it; with -v, the
# connection's timed steps on stderr.
L6=$(free_port)
bg once3 $BUILD/np -F "$LAB/client.conf" -v tunnel "$LAB_HOST" -L "$L6:localhost:$HTTP" --once
wait_for 10 eval "grep -q '^listening on' '$T/once3.out'" || fail "np tunnel --once did not start"
run c6 curl -sS -m 20 "http://127.0.0.1:$L6/index.html"
expect_eq "hello through the tunnel" "$OUT" "--once page"
wait_exit "$BGPID" 20 || fail "np tunnel --once did not exit after its connection"
expect_eq 0 "$RC" "--once exit status"
tcp_listening "$L6" && fail "--once still listens"
for s in "$(re_quote "$LAB_HOST"): tunnel to localhost port $HTTP \\([0-9]+ ms\\)" \
    'connected to .* as @client \([0-9]+ ms\)' \
    'relay granted: session [0-9a-f]+ \([0-9]+ ms\)' \
    "device answered: it connects to localhost port $HTTP, relay encryption (aes-256-gcm|chacha20-poly1305) \\([0-9]+ ms\\)" \
    'relay joined \([0-9]+ ms\)'; do
	expect_match "^np: $s\$" "$(cat "$T/once3.log")" "np -v step /$s/"
done

# 6. Bad -L values: usage errors, nothing listens.
for spec in "$L6" "x:localhost:80" "$L6:bad/host:80" "$L6:localhost:0" \
    "[::1:$L6:localhost:80" "1:2:3:4:5"; do
	run bad $NP tunnel "$LAB_HOST" -L "$spec" --once
	expect_rc 1 "-L $spec"
	expect_match "^np: -L " "$ERR" "-L $spec says what is wrong"
done
run bad $NP tunnel "$LAB_HOST"
expect_rc 2 "no -L"

# 7. SIGTERM ends the tunnel and the connection it carries.
sleep 30 | socat -T 60 - TCP:127.0.0.1:"$L3" >/dev/null 2>&1 &
held=$!
PIDS+=("$held")
wait_for 10 eval "[ \$(grep -c 'connection [0-9]* from' '$T/tun.log') -ge 54 ]" ||
    fail "the held connection did not arrive"
kill -TERM "$TPID"
wait_exit "$TPID" 10 || fail "np tunnel did not exit on SIGTERM"
expect_eq 0 "$RC" "np tunnel exit status on SIGTERM"
wait_exit "$held" 10 || fail "the held connection outlived the tunnel"
tcp_listening "$L1" && fail "still listening after SIGTERM"
pgrep -f "np -F $LAB/client.conf tunnel" >/dev/null &&
    fail "np tunnel children left: $(pgrep -af "np -F $LAB/client.conf tunnel")"
log PASS
