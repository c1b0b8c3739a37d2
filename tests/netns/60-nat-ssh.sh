#!/usr/bin/env bash
# ssh DEVICE.noports from an office behind NAT to a home device behind
# another NAT, through np-server and np-srd in the cloud; and nothing on
# the home side accepts a connection from outside: a scan of every TCP
# port of the home router's outside address (from the cloud and from the
# office) and of the device itself (from the cloud, routed at the
# router) finds nothing open, and np-deviced owns no listening socket.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
netns_lab_up

# 1. Commands, exit codes, stdin and a file copy, from the office.
run echo lssh "$LAB_HOST" 'echo "hello from $(hostname) $SSH_CONNECTION"'
expect_rc 0 "ssh through both NATs"
expect_match '^hello from ' "$OUT" "remote command output"
log "ssh: $OUT"
run rc lssh "$LAB_HOST" 'exit 7'
expect_rc 7 "the remote exit status"
head -c $((8 << 20)) /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)
run copy lssh "$LAB_HOST" 'sha256sum' <"$T/blob"
expect_rc 0 "8 MiB through stdin"
expect_eq "$want  -" "$OUT" "the checksum of what arrived"
run scp lab_in client timeout 60 scp -q -F "$LAB/ssh_config" \
    -o BatchMode=yes "$T/blob" "$LAB_HOST:$T/blob.copy"
expect_rc 0 "scp through both NATs"
expect_eq "$want" "$(sha256sum <"$T/blob.copy" | cut -d' ' -f1)" "scp copy"

# The rendezvous saw both sides come from the routers' outside addresses
# (the NATs), never from the LAN addresses behind them.
grep -q "client side in from $(re_quote "$OFFICER_WAN")" "$LAB/logs/np-srd.log" ||
    fail "np-srd did not see the client side arrive from the office NAT $OFFICER_WAN"
grep -q "device side in from $(re_quote "$HOMER_WAN")" "$LAB/logs/np-srd.log" ||
    fail "np-srd did not see the device side arrive from the home NAT $HOMER_WAN"
! grep -Eq "from ($(re_quote "$DEV_ADDR")|$(re_quote "$CLI_ADDR"))" \
    "$LAB/logs/np-srd.log" || fail "a LAN address reached the cloud un-NATed"

# 2. Scans. open_ports NS TARGET: the TCP ports of TARGET that answer a
# connection from NS (nmap, every port, connect scan, bounded).
open_ports() {
	nsx "$1" timeout 300 nmap -n -Pn -sT -p- -T5 --max-retries 1 \
	    --min-rate 3000 --host-timeout 240s -oG - "$2" \
	    >"$T/scan-$1-$2.out" 2>&1 || fail "nmap from $1 at $2 failed: $(tail -n 3 "$T/scan-$1-$2.out")"
	grep -q 'Status\|Ports\|Ignored' "$T/scan-$1-$2.out" ||
	    grep -q '# Nmap done' "$T/scan-$1-$2.out" ||
	    fail "nmap from $1 at $2 printed no result"
	grep -o '[0-9]*/open/' "$T/scan-$1-$2.out" | cut -d/ -f1 | tr '\n' ' '
}
command -v nmap >/dev/null || fail "nmap not installed (scripts/install-deps)"
# The scanner works: from the office, np-server's port in the cloud is open.
got=$(open_ports "$NS_CLI" "$CLOUD_ADDR")
expect_match "(^| )$SERVER_PORT " "$got " "the scan finds np-server's port (control)"
log "office -> cloud: open: $got"
for from in "$NS_CLOUD" "$NS_CLI"; do
	got=$(open_ports "$from" "$HOMER_WAN")
	[ -z "$got" ] || fail "the home router answers on ports [$got] (scan from $from)"
	log "$from -> home router $HOMER_WAN: no open port in 65535"
done
# An attacker upstream of the router (it routes the LAN to the router):
# the router forwards nothing it did not see start from inside.
ip -n "$NS_CLOUD" route add 192.0.2.0/24 via "$HOMER_WAN"
got=$(open_ports "$NS_CLOUD" "$DEV_ADDR")
ip -n "$NS_CLOUD" route del 192.0.2.0/24 via "$HOMER_WAN"
[ -z "$got" ] || fail "the device answers on ports [$got] from outside"
log "cloud -> device $DEV_ADDR (routed via its NAT): no open port in 65535"

# 3. On the device: np-deviced owns no listening socket; the only
# listener is sshd, on loopback.
dpid=$(lab_pidof np-deviced)
[ -n "$dpid" ] || fail "np-deviced is not running"
nsx "$NS_DEV" ss -Hltnp >"$T/listen-tcp.out"
nsx "$NS_DEV" ss -Hlunp >"$T/listen-udp.out"
if grep -q "pid=$dpid," "$T/listen-tcp.out" "$T/listen-udp.out"; then
	fail "np-deviced listens: $(grep "pid=$dpid," "$T"/listen-*.out)"
fi
if awk '{print $4}' "$T/listen-tcp.out" | grep -vq '^127\.0\.0\.1:'; then
	fail "something on the device listens beyond loopback: $(cat "$T/listen-tcp.out")"
fi
log "device listeners: $(awk '{print $4}' "$T/listen-tcp.out" | tr '\n' ' ')(sshd only)"

# And ssh still works after the scans (they disturbed nothing).
run after lssh "$LAB_HOST" 'echo still-here'
expect_rc 0 "ssh after the scans"
expect_eq still-here "$OUT" "output after the scans"
log PASS
