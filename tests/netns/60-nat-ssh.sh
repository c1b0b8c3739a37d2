#!/usr/bin/env bash
# ssh DEVICE.noports from an office behind NAT to a home device behind
# another NAT, through np-server and np-srd in the cloud; a capture of
# everything on "the internet" holds no byte the user typed or read and no
# control-plane message in clear; and nothing on
# the home side accepts a connection from outside: a scan of every TCP
# port of the home router's outside address (from the cloud and from the
# office) and of the device itself (from the cloud, routed at the
# router) finds nothing open, and np-deviced owns no listening socket.
. "$(dirname "$0")/lib.sh"
netns_require
netns_up
netns_lab_up

# Everything that crosses "the internet" is captured on its bridge.
command -v tcpdump >/dev/null || fail "tcpdump not installed (scripts/install-deps)"
bg tcpdump ip netns exec "$NS_INET" tcpdump -i br0 -U -s 0 -Z root -w "$T/inet.pcap"
TCPDUMP=$BGPID
wait_for 10 grep -q 'listening on' "$T/tcpdump.log" || fail "tcpdump did not start"
marker=secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

# 1. Commands, exit codes, stdin and a file copy, from the office.
run marker lssh "$LAB_HOST" "cat; echo $marker-echoed" <<<"$marker-stdin"
expect_rc 0 "ssh with a marker"
expect_eq "$marker-stdin
$marker-echoed" "$OUT" "the marker's round trip"
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

# Nothing readable in the middle: the capture holds the sessions' bytes
# but not the marker the user typed and read back, nor any control-plane
# message in clear, nor even ssh's version banners (relay encryption is on
# by default: the rendezvous and the network see only records).
kill -TERM "$TCPDUMP"
wait_exit "$TCPDUMP" 10 || fail "tcpdump did not stop"
size=$(stat -c %s "$T/inet.pcap")
[ "$size" -gt $((16 << 20)) ] ||
    fail "the capture holds only $size bytes: it missed the sessions"
! grep -aq "$marker" "$T/inet.pcap" ||
    fail "the marker crossed the internet in clear"
! grep -aEq '"t" *: *"(hello|auth|send|deliver)"|np\.session\.req' "$T/inet.pcap" ||
    fail "a control-plane message crossed the internet in clear"
! grep -aq 'SSH-2.0-' "$T/inet.pcap" ||
    fail "an ssh banner crossed the internet outside relay records"
log "capture: $size bytes on the internet bridge, no marker, no clear control message, no ssh banner"
# Control: with RelayEncryption no, the same capture sees ssh's banner,
# so the capture does look at the sessions' bytes.
bg tcpdump2 ip netns exec "$NS_INET" tcpdump -i br0 --immediate-mode -U -s 0 -Z root \
    -w "$T/inet2.pcap"
TCPDUMP2=$BGPID
wait_for 10 grep -q 'listening on' "$T/tcpdump2.log" || fail "tcpdump did not start"
echo "RelayEncryption no" >>"$LAB/client.conf"
run plain lssh "$LAB_HOST" true
expect_rc 0 "ssh with RelayEncryption no"
sed -i '/^RelayEncryption no$/d' "$LAB/client.conf"
sleep 1 # tcpdump writes what it has seen
kill -TERM "$TCPDUMP2"
wait_exit "$TCPDUMP2" 10 || fail "tcpdump did not stop"
grep -aq 'SSH-2.0-' "$T/inet2.pcap" ||
    fail "no ssh banner in the capture of a plain session (control)"

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
