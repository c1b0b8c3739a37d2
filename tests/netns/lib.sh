# Sourced by the network-namespace tests (tests/netns/*.sh): builds a
# small internet on this machine out of network namespaces and veth
# pairs, starts the lab in it, and tears everything down on exit (also on
# failure).
#
#                         203.0.113.0/24 ("the internet": a bridge in NS-inet)
#        +-------------------+-------------------+
#   cloud 203.0.113.10   home router .20     office router .30
#   np-server, np-srd    NAT (MASQUERADE),   NAT (MASQUERADE),
#                        no port forwards    no port forwards
#                            |  192.0.2.0/24     |  198.51.100.0/24
#                        device 192.0.2.10   client 198.51.100.10
#                        sshd (127.0.0.1),   np proxy, ssh
#                        np-deviced
#
# Only documentation prefixes are used, no namespace has a route out of
# this set, and nothing connects to the machine's own namespace.  The
# routers forward only what a LAN host started (conntrack ESTABLISHED);
# a new connection from outside reaches the router itself, where nothing
# listens.
# shellcheck shell=bash

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
. "$TOP/tests/lab/testlib.sh"

NS_PREFIX=npt$$
NS_INET=$NS_PREFIX-inet
NS_CLOUD=$NS_PREFIX-cloud
NS_HOMER=$NS_PREFIX-homer
NS_DEV=$NS_PREFIX-dev
NS_OFFICER=$NS_PREFIX-officer
NS_CLI=$NS_PREFIX-cli
NS_ALL="$NS_INET $NS_CLOUD $NS_HOMER $NS_DEV $NS_OFFICER $NS_CLI"
CLOUD_ADDR=203.0.113.10
HOMER_WAN=203.0.113.20
OFFICER_WAN=203.0.113.30
HOMER_LAN=192.0.2.1
DEV_ADDR=192.0.2.10
OFFICER_LAN=198.51.100.1
CLI_ADDR=198.51.100.10
NETNS_IS_UP=0

# netns_require: skips unless this machine can build the test network
# (root, ip netns, iptables, veth and bridge links), and unless the lab's
# sshd can run.
netns_require() {
	[ "$(id -u)" = 0 ] || skip "network-namespace tests need root (CI runs as root)"
	command -v ip >/dev/null || skip "ip not installed (apt-get install iproute2)"
	command -v iptables >/dev/null ||
	    skip "iptables not installed (apt-get install iptables)"
	ip netns add "$NS_PREFIX-probe" 2>/dev/null ||
	    skip "ip netns add does not work here: $(ip netns add "$NS_PREFIX-probe2" 2>&1)"
	ip netns del "$NS_PREFIX-probe"
	lab_require
}

# nsx NS COMMAND...: runs COMMAND (a program) in namespace NS.
nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# netns_sweep: removes namespaces that an earlier run left behind (its
# process is gone: it was killed before its trap could run).
netns_sweep() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		[[ $ns =~ ^npt([0-9]+)- ]] || continue
		pid=${BASH_REMATCH[1]}
		[ "$pid" != $$ ] || continue
		kill -0 "$pid" 2>/dev/null && continue
		netns_kill_all "$ns"
		ip netns del "$ns" 2>/dev/null
	done
}

# netns_kill_all NS: SIGKILLs every process in namespace NS.
netns_kill_all() {
	local p
	for p in $(ip netns pids "$1" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
}

# veth NS1 IF1 NS2 IF2: a veth pair from NS1 (IF1) to NS2 (IF2), both up.
veth() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" ||
	    fail "veth $1/$2 - $3/$4"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# router NS LANADDR: NS forwards between wan and lan, masquerades what
# leaves on wan and lets in from wan only what belongs to a connection a
# LAN host opened (no port forwards).
router() {
	local ns=$1
	nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
	nsx "$ns" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
	nsx "$ns" iptables -P FORWARD DROP
	nsx "$ns" iptables -A FORWARD -i lan -o wan -j ACCEPT
	nsx "$ns" iptables -A FORWARD -i wan -o lan -m conntrack \
	    --ctstate ESTABLISHED,RELATED -j ACCEPT
}

# netns_up: builds the network above; fails the test when it cannot.
netns_up() {
	local ns
	netns_sweep
	NETNS_IS_UP=1
	for ns in $NS_ALL; do
		ip netns add "$ns" || fail "ip netns add $ns"
		ip -n "$ns" link set lo up
		nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	done
	ip -n "$NS_INET" link add br0 type bridge || fail "bridge in $NS_INET"
	ip -n "$NS_INET" link set br0 up
	veth "$NS_CLOUD" eth0 "$NS_INET" c0
	veth "$NS_HOMER" wan "$NS_INET" h0
	veth "$NS_OFFICER" wan "$NS_INET" o0
	for ns in c0 h0 o0; do
		ip -n "$NS_INET" link set "$ns" master br0
	done
	veth "$NS_DEV" eth0 "$NS_HOMER" lan
	veth "$NS_CLI" eth0 "$NS_OFFICER" lan
	ip -n "$NS_CLOUD" addr add "$CLOUD_ADDR/24" dev eth0
	ip -n "$NS_HOMER" addr add "$HOMER_WAN/24" dev wan
	ip -n "$NS_HOMER" addr add "$HOMER_LAN/24" dev lan
	ip -n "$NS_OFFICER" addr add "$OFFICER_WAN/24" dev wan
	ip -n "$NS_OFFICER" addr add "$OFFICER_LAN/24" dev lan
	ip -n "$NS_DEV" addr add "$DEV_ADDR/24" dev eth0
	ip -n "$NS_DEV" route add default via "$HOMER_LAN"
	ip -n "$NS_CLI" addr add "$CLI_ADDR/24" dev eth0
	ip -n "$NS_CLI" route add default via "$OFFICER_LAN"
	router "$NS_HOMER"
	router "$NS_OFFICER"
	# The bridge forwards at once (no STP listening delay).
	ip -n "$NS_INET" link set br0 type bridge forward_delay 0 stp_state 0
	wait_for 10 nsx "$NS_DEV" ping -c 1 -W 1 "$CLOUD_ADDR" ||
	    fail "the device cannot reach the cloud through its NAT"
	wait_for 10 nsx "$NS_CLI" ping -c 1 -W 1 "$CLOUD_ADDR" ||
	    fail "the client cannot reach the cloud through its NAT"
	log "network up: cloud $CLOUD_ADDR; device $DEV_ADDR behind $HOMER_WAN;" \
	    "client $CLI_ADDR behind $OFFICER_WAN (namespaces $NS_PREFIX-*)"
}

# netns_down: kills whatever still runs in the namespaces and deletes them.
netns_down() {
	local ns
	[ "$NETNS_IS_UP" = 1 ] || return 0
	for ns in $NS_ALL; do
		netns_kill_all "$ns"
	done
	for ns in $NS_ALL; do
		ip netns del "$ns" 2>/dev/null
	done
	NETNS_IS_UP=0
}

# netns_lab_up [up options]: the lab with np-server and np-srd in the
# cloud, sshd and np-deviced on the device, np and ssh on the client.
netns_lab_up() {
	export LAB_NS_CLOUD=$NS_CLOUD LAB_NS_DEVICE=$NS_DEV LAB_NS_CLIENT=$NS_CLI
	export LAB_CLOUD_ADDR=$CLOUD_ADDR
	lab_up "$@"
}

# On exit: the lab's logs (on failure) and its processes first, then the
# network.
netns_exit() {
	local rc=$?
	if [ "$LAB_IS_UP" = 1 ]; then
		"$LABBIN/down" "$LAB" >/dev/null 2>&1
	fi
	netns_down
	(exit "$rc")
	lab_test_exit
}
trap netns_exit EXIT

# link_down NS IF / link_up NS IF: takes a link down or up.
link_down() { ip -n "$1" link set "$2" down || fail "link down $1 $2"; }
link_up() { ip -n "$1" link set "$2" up || fail "link up $1 $2"; }

# open_session TAG LINES [READY]: ssh from the client in the background,
# printing "in", then LINES numbered lines, one a second; waits (20 s)
# until its output has the line READY (default "in"); sets SPID.
open_session() {
	SSH_LIMIT=$(($2 + 60)) bg "$1" lssh "$LAB_HOST" \
	    "echo in; i=0; while [ \$i -lt $2 ]; do echo \"\$i\"; sleep 1; i=\$((i + 1)); done"
	SPID=$BGPID
	wait_for 20 grep -qx -- "${3:-in}" "$T/$1.out" ||
	    fail "$1: session did not start: $(cat "$T/$1.log")"
}
