#!/usr/bin/env bash
# Floods from the office (tests/tools/np-flood in the client's own
# namespace, so through the same NAT address as the real client) against
# np-server (garbage, oversized frames, TLS then junk, idle and slow
# connections) and against np-srd's single port (garbage, idle, slow),
# bounded in count and time, while a real ssh session moves 32 MiB and
# new ssh sessions start one after another: every real session completes
# with the right bytes, both daemons survive and give their descriptors
# back.  The sustained floods hold 80 idle and slow connections at a time
# to np-server from the real client's own address, far past
# MaxUnauthPerSource, and still the new sessions get in.
. "$(dirname "$0")/lib.sh"
netns_require
FLOOD=$BUILD/tools/np-flood
[ -x "$FLOOD" ] || fail "$FLOOD missing: run make"
netns_up
SRD_PORT=7000
LAB_SRD_EXTRA="SinglePort $SRD_PORT" netns_lab_up
FLOOD_SECONDS=${FLOOD_SECONDS:-25}
nfds() { ls "/proc/$(lab_pidof "$1")/fd" 2>/dev/null | wc -l; }
fds_le() { [ "$(nfds "$1")" -le "$2" ]; }
fds_srv0=$(nfds np-server)
fds_srd0=$(nfds np-srd)

# The real bulk session, started first and still running under the flood.
head -c $((32 << 20)) /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
bg bulk bash -c 'exec ip netns exec "$1" timeout 120 ssh -F "$2" -o BatchMode=yes "$3" "sleep 5; sha256sum" <"$0"' \
    "$T/blob" "$NS_CLI" "$LAB/ssh_config" "$LAB_HOST"
PID_BULK=$BGPID

# 1. A classic slowloris from the office: 100 idle and 100 slow
# connections at once to np-server, the same to np-srd, held until the
# daemons close them (no reconnects).  More than MaxUnauthPerSource (32)
# from one address, the address the real client shares behind the NAT:
# each daemon makes room by closing the oldest unauthenticated connection
# of that address, so the new sessions get in.
burst=()
for port in "$SERVER_PORT" "$SRD_PORT"; do
	for mode in idle slow; do
		bg "loris-$port-$mode" nsx "$NS_CLI" "$FLOOD" -t "$CLOUD_ADDR:$port" \
		    -m "$mode" -n 100 -c 100 -d 40 -H 20
		burst+=("$BGPID")
	done
done
sleep 2
for k in 1 2 3; do
	t0=$(now_ms)
	run loris$k lssh "$LAB_HOST" "echo loris-$k"
	expect_rc 0 "new session $k during the slowloris"
	expect_eq "loris-$k" "$OUT" "new session $k output"
	log "slowloris: new session $k in $(($(now_ms) - t0)) ms"
done
for p in "${burst[@]}"; do
	wait_exit "$p" 45 || fail "a slowloris did not end"
done
log "slowloris: $(cat "$T"/loris-*.out | tr '\n' ';')"

# 2. A sustained flood (reconnecting for FLOOD_SECONDS) of every kind;
# against np-server 80 idle and slow connections at a time from the
# client's own address, well past MaxUnauthPerSource (32): np-server makes
# room by closing the connection of that address that has got least far
# (no ClientHello yet), so a real client, which sends its ClientHello at
# once and its auth a round trip after the handshake, still gets in.
# target mode count concurrency hold
floods="$SERVER_PORT garbage 2000 4 15
$SERVER_PORT bigframe 1000 4 15
$SERVER_PORT tlsjunk 1000 4 15
$SERVER_PORT idle 2000 40 20
$SERVER_PORT slow 2000 40 20
$SRD_PORT garbage 2000 8 15
$SRD_PORT idle 400 24 20
$SRD_PORT slow 400 24 20"
fpids=()
i=0
while read -r port mode count conc hold; do
	i=$((i + 1))
	bg "flood$i" nsx "$NS_CLI" "$FLOOD" -t "$CLOUD_ADDR:$port" -m "$mode" \
	    -n "$count" -c "$conc" -R "$FLOOD_SECONDS" -d 40 -H "$hold"
	fpids+=("$BGPID")
	echo "$port $mode" >"$T/flood$i.what"
done <<<"$floods"
sleep 2
peak_srv=$(nfds np-server)
peak_srd=$(nfds np-srd)

# New sessions one after another while the floods run.
n=0
worst=0
t_end=$((SECONDS + FLOOD_SECONDS - 4))
while [ $SECONDS -lt $t_end ] || [ $n -lt 3 ]; do
	n=$((n + 1))
	t0=$(now_ms)
	run new$n lssh "$LAB_HOST" "echo new-$n"
	t1=$(now_ms)
	expect_rc 0 "new session $n under the flood"
	expect_eq "new-$n" "$OUT" "new session $n output"
	[ $((t1 - t0)) -le "$worst" ] || worst=$((t1 - t0))
	f=$(nfds np-server); [ "$f" -le "$peak_srv" ] || peak_srv=$f
	f=$(nfds np-srd); [ "$f" -le "$peak_srd" ] || peak_srd=$f
done
alive=0
for p in "${fpids[@]}"; do
	kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
done
log "$n new ssh sessions under the flood, slowest $worst ms; $alive of ${#fpids[@]} floods still running after them"
[ "$alive" -gt 0 ] || fail "the floods ended before the sessions did (the test proved little)"

wait_exit "$PID_BULK" 120 || fail "the bulk session hung"
expect_rc 0 "the bulk session ($(cat "$T/bulk.log"))"
expect_eq "$want  -" "$(cat "$T/bulk.out")" "the 32 MiB checksum through the flood"

i=0
for p in "${fpids[@]}"; do
	i=$((i + 1))
	wait_exit "$p" 100 || fail "flood $i did not end within its deadline"
	res=$(cat "$T/flood$i.out")
	[ -n "$res" ] || fail "flood $i ($(cat "$T/flood$i.what")) printed nothing: $(cat "$T/flood$i.log")"
	declare -A F=()
	for kv in $res; do
		F[${kv%%=*}]=${kv#*=}
	done
	[ "${F[connected]}" -gt 0 ] || fail "flood $i never connected: $res"
	log "flood to port $(cat "$T/flood$i.what"): $res"
	unset F
done
for p in np-server np-srd np-deviced; do
	[ -n "$(lab_pidof $p)" ] && kill -0 "$(lab_pidof $p)" 2>/dev/null ||
	    fail "$p died under the flood"
done
wait_for 15 fds_le np-server $((fds_srv0 + 8)) ||
    fail "np-server holds $(nfds np-server) fds after the flood (before: $fds_srv0)"
wait_for 15 fds_le np-srd $((fds_srd0 + 8)) ||
    fail "np-srd holds $(nfds np-srd) fds after the flood (before: $fds_srd0)"
log "fds np-server: $fds_srv0 before, peak $peak_srv, $(nfds np-server) after; np-srd: $fds_srd0 before, peak $peak_srd, $(nfds np-srd) after"
run after lssh "$LAB_HOST" 'echo after'
expect_rc 0 "ssh after the flood"
log PASS
