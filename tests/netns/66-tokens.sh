#!/usr/bin/env bash
# The rendezvous endpoints of real ssh sessions, attacked from the office
# (the client's own namespace, as another user) and from the cloud: an
# attacker who connects to the client endpoint of a session whose device
# side is already in (joined to the device's sshd) and waiting, without a
# token, with garbage, a wrong token, the device's token (sniffed off the
# wire: the token line travels in clear TCP, so an on-path attacker can
# read it), or the tokens of a finished session, never reaches the
# device's sshd: np-srd answers "NPSR1 ERR" or closes, no byte of sshd's
# banner comes back, sshd sees one connection per accepted session and no
# more, and the sessions themselves (one waiting, one moving 16 MiB in
# parallel) complete as if nothing happened.
#
# To hold a real session in the "device in, client not yet" state long
# enough, the client's SYNs to the rendezvous ports are dropped (iptables
# in the client namespace, owner match on root, who runs ssh and np) for
# a few seconds; TCP's own SYN retransmission brings the client in after.
. "$(dirname "$0")/lib.sh"
netns_require
command -v tcpdump >/dev/null || skip "tcpdump not installed (scripts/install-deps)"
command -v setpriv >/dev/null || skip "setpriv not installed (util-linux)"
netns_up
# SessionTimeout 60: session C's client gets in on a SYN retransmission
# (1, 3, 7, 15 s after its first), after the attacks, which take longer
# on a loaded machine.
LAB_CLIENT_EXTRA="SessionTimeout 60" LAB_SRD_EXTRA="AuthTimeout 2" netns_lab_up
SRDLOG=$LAB/logs/np-srd.log
SSHD0=$(lab_log_count sshd 'Connection from')
ACC0=$(lab_log_count np-deviced ': accepted,')

# An on-path observer on the internet bridge, cloud traffic other than
# the control plane (which is TLS) in ASCII.
bg sniff nsx "$NS_INET" tcpdump -i br0 -l -n -A -s 0 \
    "tcp and host $CLOUD_ADDR and not port $SERVER_PORT"
wait_for 10 grep -q 'listening on' "$T/sniff.log" || fail "tcpdump did not start"
sniffed() { # SID SIDE: the token that side sent, as seen on the wire
	grep -aEo "NPSR1 $1 $2 [A-Za-z0-9_-]{43}" "$T/sniff.out" | head -n 1 | awk '{print $4}'
}
count_gt() { # NAME ERE N: more than N lines of NAME's log match ERE
	[ "$(lab_log_count "$1" "$2")" -gt "$3" ]
}
ports_of() { # SID: "CLIENTPORT DEVICEPORT"
	grep -Eo "session $1 for @client: ports [0-9]+ [0-9]+" "$SRDLOG" | awk '{print $6, $7}'
}
new_sid() { # LINES: the sid of the first "device side in" after LINES
	tail -n +"$(($1 + 1))" "$SRDLOG" | grep -Eo 'session [0-9a-f]{32}: device side in' |
	    head -n 1 | awk '{print $2}' | tr -d :
}

# 1. Session A, finished: its tokens as an eavesdropper saw them.
b=$(lines "$SRDLOG")
run a lssh "$LAB_HOST" 'echo session-a'
expect_rc 0 "session A"
expect_eq session-a "$OUT" "session A output"
SID_A=$(new_sid "$b")
[ -n "$SID_A" ] || fail "np-srd logged no device side for session A"
wait_for 5 grep -aq "NPSR1 $SID_A c" "$T/sniff.out" || fail "the token lines of A were not seen on the wire: $(grep -a NPSR1 "$T/sniff.out" | head -n 3; head -c 600 "$T/sniff.out"; cat "$T/sniff.log")"
TOK_AC=$(sniffed "$SID_A" c)
TOK_AD=$(sniffed "$SID_A" d)
read -r PA_C PA_D <<<"$(ports_of "$SID_A")"
log "session A $SID_A (ports $PA_C $PA_D) done; tokens sniffed off the bridge"

# 2. Session B in parallel: 16 MiB through ssh, read after a pause.
head -c $((16 << 20)) /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
nrelay=$(lab_log_count np-srd 'client side in from')
bg sessb bash -c 'exec ip netns exec "$1" timeout 90 ssh -F "$2" -o BatchMode=yes "$3" "sleep 10; sha256sum" <"$0"' \
    "$T/blob" "$NS_CLI" "$LAB/ssh_config" "$LAB_HOST"
PID_B=$BGPID
wait_for 20 count_gt np-srd 'client side in from' "$nrelay" ||
    fail "session B did not start relaying"

# 3. Session C, held with its device side in and its client out.
nsx "$NS_CLI" iptables -A OUTPUT -p tcp --syn -d "$CLOUD_ADDR" \
    -m owner --uid-owner 0 ! --dport "$SERVER_PORT" -j DROP
b=$(lines "$SRDLOG")
bg sessc lssh "$LAB_HOST" 'echo session-c'
PID_C=$BGPID
for i in $(seq 1 300); do
	SID_C=$(new_sid "$b")
	[ -n "$SID_C" ] && break
	sleep 0.05
done
[ -n "$SID_C" ] || fail "session C's device side did not arrive"
HELD_AT=$SECONDS
read -r PC_C PC_D <<<"$(ports_of "$SID_C")"
# (a function, so that wait_for looks at the capture again each time)
sniffed_any() { [ -n "$(sniffed "$1" "$2")" ]; }
wait_for 10 sniffed_any "$SID_C" d || fail "C's device token line not seen on the wire"
TOK_CD=$(sniffed "$SID_C" d)
log "session C $SID_C: device side in and waiting (ports $PC_C $PC_D), client held back"

# try NAME NS PORT DATA: connects from NS (as nobody) to the cloud's
# PORT, sends DATA (printf %b; "-" sends nothing), prints all it got
# back (until close, at most 4 s) or CONNREFUSED, in $T/try-NAME.
try() {
	nsx "$2" setpriv --reuid=65534 --regid=65534 --clear-groups \
	    timeout 5 bash -c '
		{ exec 3<>"/dev/tcp/$0/$1"; } 2>/dev/null || { echo CONNREFUSED; exit 0; }
		[ "$2" = - ] || printf "%b" "$2" >&3
		timeout 4 cat <&3 || true
	' "$CLOUD_ADDR" "$3" "$4" >"$T/try-$1" 2>"$T/try-$1.err" &
	TRY_PIDS+=($!)
}
TRY_PIDS=()
wrong=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-43)
n=0
for ns in "$NS_CLI" "$NS_CLOUD"; do
	w=cli
	[ "$ns" = "$NS_CLOUD" ] && w=cloud
	try "$w-empty" "$ns" "$PC_C" '\n'
	try "$w-idle" "$ns" "$PC_C" -
	try "$w-garbage" "$ns" "$PC_C" 'GET / HTTP/1.0\r\n\r\n'
	try "$w-sshbanner" "$ns" "$PC_C" 'SSH-2.0-OpenSSH_9.2p1\r\n'
	try "$w-wrong" "$ns" "$PC_C" "NPSR1 $SID_C c $wrong\\n"
	try "$w-devtok-d" "$ns" "$PC_C" "NPSR1 $SID_C d $TOK_CD\\n"
	try "$w-devtok-c" "$ns" "$PC_C" "NPSR1 $SID_C c $TOK_CD\\n"
	try "$w-finished" "$ns" "$PC_C" "NPSR1 $SID_A c $TOK_AC\\n"
	try "$w-finished-sid" "$ns" "$PC_C" "NPSR1 $SID_C c $TOK_AC\\n"
	try "$w-devport" "$ns" "$PC_D" "NPSR1 $SID_C d $TOK_CD\\n"
	try "$w-a-client" "$ns" "$PA_C" "NPSR1 $SID_A c $TOK_AC\\n"
	try "$w-a-device" "$ns" "$PA_D" "NPSR1 $SID_A d $TOK_AD\\n"
	n=$((n + 12))
done
for p in "${TRY_PIDS[@]}"; do
	wait "$p"
done
log "$n attacks done in $((SECONDS - HELD_AT)) s while C waited"
# Let session C's client in (its SYN is retransmitted by TCP).
nsx "$NS_CLI" iptables -D OUTPUT -p tcp --syn -d "$CLOUD_ADDR" \
    -m owner --uid-owner 0 ! --dport "$SERVER_PORT" -j DROP
for f in "$T"/try-*[!r]; do
	name=${f##*/try-}
	got=$(tr -d '\r' <"$f" | head -c 300)
	case $got in
	*SSH-* | *"NPSR1 OK"*) fail "$name: the attacker got through: [$got]" ;;
	"NPSR1 ERR "* | "" | CONNREFUSED) ;;
	*) fail "$name: unexpected answer [$got]" ;;
	esac
	log "$name: ${got:-closed without a word}"
done

# 4. The real sessions are unaffected.
wait_exit "$PID_C" 30 || fail "session C hung"
expect_rc 0 "session C ($(cat "$T/sessc.log"))"
expect_eq session-c "$(cat "$T/sessc.out")" "session C output"
wait_exit "$PID_B" 90 || fail "session B hung"
expect_rc 0 "session B ($(cat "$T/sessb.log"))"
expect_eq "$want  -" "$(cat "$T/sessb.out")" "session B's 16 MiB checksum"
c_in=$(grep -c "session $SID_C: client side in from" "$SRDLOG")
expect_eq 1 "$c_in" "client sides that came into session C"

# 5. sshd saw exactly one connection per accepted session, one login each.
acc=$(($(lab_log_count np-deviced ': accepted,') - ACC0))
sshd=$(($(lab_log_count sshd 'Connection from') - SSHD0))
logins=$(lab_log_count sshd 'Accepted publickey')
expect_eq 3 "$acc" "sessions np-deviced accepted (A, B, C)"
expect_eq "$acc" "$sshd" "connections sshd saw"
expect_eq 3 "$logins" "logins sshd saw"
refusals=$(tail -n +"$b" "$SRDLOG" | grep -c 'refused ')
log "np-srd refused $refusals connections; sshd: $sshd connections, $logins logins for $acc sessions; B's 16 MiB checksum ok"
log PASS
