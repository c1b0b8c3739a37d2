#!/usr/bin/env bash
# Floods of garbage, oversized frames, slowloris and TLS-then-garbage
# connections (tests/tools/np-flood, each mode from its own loopback source
# address) must not starve an enrolled client, crash the server, leak
# descriptors, or grow its memory without bound.
. "$(dirname "$0")/../lib.sh"

FLOOD=$BUILD/tools/np-flood
[ -x "$FLOOD" ] || fail "$FLOOD missing: run make tools"
RSS_LIMIT_KB=${RSS_LIMIT_KB:-131072}
# ASan keeps freed memory in a quarantine (256 MB by default): allow for it.
if ldd "$NPSERVER" 2>/dev/null | grep -q libasan; then
	RSS_LIMIT_KB=$((RSS_LIMIT_KB + 512 * 1024))
fi
AUTH_TIMEOUT=3

server_init s
cat >"$T/flood.conf" <<CONF
AuthTimeout $AUTH_TIMEOUT
LogLevel info
CONF
server_start s -F "$T/flood.conf"
enroll alice s
enroll bob s
# Pin each other before the flood so the timed rounds measure delivery.
npas alice lookup @bob >/dev/null || fail "alice lookup @bob"
npas bob lookup @alice >/dev/null || fail "bob lookup @alice"

rss() { awk '/^VmRSS:/{print $2}' "/proc/$PID_s/status" 2>/dev/null; }
nfds() { ls "/proc/$PID_s/fd" 2>/dev/null | wc -l; }
rss0=$(rss)
fds0=$(nfds)
loglines0=$(lines "$T/s.log")
log "before: rss ${rss0} kB, ${fds0} fds"

# mode source count concurrency; each runs at least FLOOD_SECONDS.
FLOOD_SECONDS=${FLOOD_SECONDS:-10}
floods="garbage 127.0.0.2 1000 50
bigframe 127.0.0.3 1000 50
tlsjunk 127.0.0.4 1000 50
idle 127.0.0.5 300 100
slow 127.0.0.6 300 100"
fpids=()
while read -r mode src count conc; do
	"$FLOOD" -t "127.0.0.1:$PORT_s" -b "$src" -m "$mode" -n "$count" \
	    -c "$conc" -R "$FLOOD_SECONDS" -d 90 -H 15 >"$T/flood-$mode.out" 2>"$T/flood-$mode.err" &
	fpids+=("$!")
	PIDS+=("$!")
done <<<"$floods"

# Sample the server's RSS while the floods run.
(
	while kill -0 "$PID_s" 2>/dev/null; do
		awk '/^VmRSS:/{print $2}' "/proc/$PID_s/status" 2>/dev/null
		sleep 0.2
	done >"$T/rss.samples"
) &
PIDS+=("$!")
sampler=$!

# Real traffic during the flood: three rounds of send -> live recv, each
# bounded to 10 s end to end.
sleep 1
for round in 1 2 3; do
	alive=0
	for p in "${fpids[@]}"; do
		kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
	done
	[ $round != 1 ] || [ $alive = ${#fpids[@]} ] ||
	    fail "only $alive of ${#fpids[@]} floods running at round 1"
	bg recv$round npas bob recv --count 1 --timeout 20
	rpid=$BGPID
	t0=$(now_ms)
	run send$round npas alice send @bob "round $round under flood"
	expect_rc 0 "alice send during the flood (round $round)"
	wait_exit "$rpid" 10 ||
	    fail "round $round: bob did not receive within 10 s under flood"
	t1=$(now_ms)
	expect_rc 0 "bob recv during the flood (round $round)"
	expect_eq "@alice note round $round under flood" \
	    "$(cat "$T/recv$round.out")" "round $round text"
	log "round $round: send+recv in $((t1 - t0)) ms under $alive floods"
	[ $((t1 - t0)) -le 10000 ] || fail "round $round took $((t1 - t0)) ms"
	t0=$(now_ms)
	run lk$round npas alice lookup @bob
	t1=$(now_ms)
	expect_rc 0 "lookup during the flood (round $round)"
	log "round $round: lookup in $((t1 - t0)) ms"
done

# Check whether floods were still running during the rounds (otherwise
# the rounds proved little).
still=0
for p in "${fpids[@]}"; do
	kill -0 "$p" 2>/dev/null && still=$((still + 1))
done
log "$still of ${#fpids[@]} floods still running after the rounds"

for p in "${fpids[@]}"; do
	wait_exit "$p" 100 || fail "a flood did not finish within its deadline"
done
for mode in garbage bigframe tlsjunk idle slow; do
	res=$(cat "$T/flood-$mode.out")
	log "flood $res"
	[ -n "$res" ] || fail "no result from flood $mode: $(cat "$T/flood-$mode.err")"
	declare -A F=()
	for kv in $res; do
		F[${kv%%=*}]=${kv#*=}
	done
	[ "${F[started]}" -ge "${F[count]}" ] ||
	    fail "flood $mode did not start all: $res"
	[ "${F[cut_short]}" = 0 ] || fail "flood $mode ran out of time: $res"
	[ "${F[connected]}" -gt 0 ] || fail "flood $mode never connected: $res"
	# The server, not the flood's 15 s hold, ended every connection.
	[ "${F[we_closed]}" = 0 ] ||
	    fail "flood $mode: ${F[we_closed]} connections held 15 s without the server closing them: $res"
	case $mode in
	idle | slow)
		[ "${F[max_close_ms]}" -le $(((AUTH_TIMEOUT + 4) * 1000)) ] ||
		    fail "flood $mode: a connection lived ${F[max_close_ms]} ms (AuthTimeout $AUTH_TIMEOUT)"
		;;
	esac
	unset F
done

kill -0 "$PID_s" 2>/dev/null || fail "the server died during the flood"
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
rssmax=$(sort -n "$T/rss.samples" | tail -n 1)
[ -n "$rssmax" ] || rssmax=$(rss)

# Descriptors come back once the floods are gone.
wait_for 10 eval 'test "$(nfds)" -le $((fds0 + 8))' ||
    fail "server holds $(nfds) fds after the flood (before: $fds0)"
rss1=$(rss)
fds1=$(nfds)
log "server RSS: before ${rss0} kB, max ${rssmax} kB, after ${rss1} kB; fds before $fds0, after $fds1"
[ "$rssmax" -le "$RSS_LIMIT_KB" ] ||
    fail "server RSS reached $rssmax kB (limit $RSS_LIMIT_KB kB)"

# The log shows the refusals.
loglines1=$(lines "$T/s.log")
refusals=$(tail -n +"$((loglines0 + 1))" "$T/s.log" |
    grep -Eci 'refus|reject|limit|timeout|timed out|too.?big|tls|handshake|frame|proto|drop|invalid|malformed|closed|close')
log "server log: $((loglines1 - loglines0)) lines during the flood, $refusals about refusals"
[ "$refusals" -gt 0 ] || fail "the server log shows no refusals"
log "sample log lines: $(tail -n +"$((loglines0 + 1))" "$T/s.log" | head -n 3 | tr '\n' '|')"

# Still fully working afterwards.
run s9 npas alice send @bob "after the flood"
expect_rc 0 "send after the flood"
run r9 npas bob recv --timeout 10
expect_rc 0 "recv after the flood"
expect_eq "@alice note after the flood" "$OUT" "box after the flood"
server_stop s TERM
rc=$?
[ "$rc" = 0 ] || fail "np-server exited $rc on SIGTERM after the flood"

log PASS
