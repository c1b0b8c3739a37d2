# Shared by tests/lab/up, down, start and client: where things live in a
# lab directory and how its processes are started and stopped.
#
# Layout of a lab directory DIR (everything is created by `up`):
#   DIR/lab.env            shell variables describing the lab (ports, names)
#   DIR/ssh_config         `ssh -F DIR/ssh_config demo.noports` uses this
#   DIR/client.conf        np's config for the client identity @client
#   DIR/keys/              session keys the proxy writes (KeyDir, 0700)
#   DIR/known_hosts        device host keys the proxy writes (KnownHosts)
#   DIR/server/            np-server's data directory
#   DIR/sr/, DIR/device/, DIR/client/   identity keys, pins, configs
#   DIR/spool/             np-deviced's session key spool (np-keyhelper -s)
#   DIR/sshd/              the private sshd's config and host key
#   DIR/logs/NAME.log      one log per program
#   DIR/pids/NAME.pid      one pid per program: np-server np-srd np-deviced sshd
# shellcheck shell=bash

LAB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_BUILD=${BUILD:-build}
case $LAB_BUILD in /*) ;; *) LAB_BUILD=$LAB_TOP/$LAB_BUILD ;; esac
LAB_SSHD=${LAB_SSHD:-/usr/sbin/sshd}
LAB_PROGS="np-server np-srd sshd np-deviced"
LAB_STOP_LIMIT=${LAB_STOP_LIMIT:-10}
# Where the parts run.  On loopback (the default) everything runs here and
# np-server and np-srd listen on 127.0.0.1.  tests/netns/ puts the cloud
# (np-server, np-srd), the device (sshd, np-deviced) and the client (np,
# ssh) in network namespaces of their own: LAB_NS_CLOUD, LAB_NS_DEVICE and
# LAB_NS_CLIENT name them, and LAB_CLOUD_ADDR is the cloud's address.
LAB_CLOUD_ADDR=${LAB_CLOUD_ADDR:-127.0.0.1}
LAB_NS_CLOUD=${LAB_NS_CLOUD:-}
LAB_NS_DEVICE=${LAB_NS_DEVICE:-}
LAB_NS_CLIENT=${LAB_NS_CLIENT:-}

lab_say() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

# lab_abs PATH: PATH made absolute (the directory need not exist yet).
lab_abs() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd)" "$1" ;;
	esac
}

# lab_role NAME: where program NAME runs: cloud, device or client.
lab_role() {
	case $1 in
	np-server | np-srd) echo cloud ;;
	sshd | np-deviced) echo device ;;
	*) echo client ;;
	esac
}

# lab_ns ROLE: the network namespace of ROLE (cloud, device, client);
# empty when it runs here.
lab_ns() {
	case $1 in
	cloud) printf '%s\n' "$LAB_NS_CLOUD" ;;
	device) printf '%s\n' "$LAB_NS_DEVICE" ;;
	client) printf '%s\n' "$LAB_NS_CLIENT" ;;
	*) lab_die "unknown role $1" ;;
	esac
}

# lab_in ROLE COMMAND...: runs COMMAND (a program, not a shell function)
# where ROLE lives: in its network namespace when the lab has one.
lab_in() {
	local ns
	ns=$(lab_ns "$1") || exit 1
	shift
	if [ -n "$ns" ]; then
		ip netns exec "$ns" "$@"
	else
		"$@"
	fi
}

# lab_pid DIR NAME: prints the pid of NAME when its pid file names a live
# process that still is NAME (a recycled pid is not ours); else fails.
lab_pid() {
	local f=$1/pids/$2.pid pid exe
	[ -f "$f" ] || return 1
	read -r pid <"$f" 2>/dev/null || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=
	# setsid, ip (netns exec) and env exec the program: seen only just
	# after lab_spawn.
	case ${exe##*/} in
	"$2" | "$2 (deleted)" | setsid | env | ip) ;;
	*) return 1 ;;
	esac
	printf '%s\n' "$pid"
}

# lab_running DIR: true when any lab process of DIR is alive.
lab_running() {
	local n
	for n in $LAB_PROGS; do
		lab_pid "$1" "$n" >/dev/null && return 0
	done
	return 1
}

# lab_stop DIR NAME [SIGNAL]: stops NAME (SIGTERM or SIGNAL, then SIGKILL
# after LAB_STOP_LIMIT seconds) and removes its pid file.
lab_stop() {
	local dir=$1 name=$2 sig=${3:-TERM} pid i=0
	if pid=$(lab_pid "$dir" "$name"); then
		kill "-$sig" "$pid" 2>/dev/null
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			if [ $i -gt $((LAB_STOP_LIMIT * 20)) ]; then
				lab_say "$name ($pid) still running after" \
				    "$LAB_STOP_LIMIT s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null
				sleep 0.1
				break
			fi
			sleep 0.05
		done
	fi
	rm -f "$dir/pids/$name.pid"
}

# lab_spawn DIR NAME COMMAND...: runs COMMAND in the background in its own
# session (so the lab outlives the shell that started it), where NAME's
# role lives (lab_role: in its network namespace, if any), stdin from
# /dev/null, stdout and stderr appended to DIR/logs/NAME.log; writes
# DIR/pids/NAME.pid.  SIGINT/SIGQUIT get their default action back (bash
# ignores them in background jobs).
lab_spawn() {
	local dir=$1 name=$2 pid ns pre=()
	shift 2
	# setsid, ip netns exec and env each exec the next: one pid.
	ns=$(lab_ns "$(lab_role "$name")")
	[ -z "$ns" ] || pre=(ip netns exec "$ns")
	setsid "${pre[@]}" env --default-signal=INT,QUIT "$@" </dev/null \
	    >>"$dir/logs/$name.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/pids/$name.pid.tmp"
	mv -f "$dir/pids/$name.pid.tmp" "$dir/pids/$name.pid"
}

# lab_wait SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds.
lab_wait() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

# lab_ready DIR NAME SECONDS COMMAND...: polls COMMAND until it succeeds;
# fails at once when NAME's process has exited, or after SECONDS.
lab_ready() {
	local dir=$1 name=$2 end=$((SECONDS + $3))
	shift 3
	while ! "$@" >/dev/null 2>&1; do
		# Its pid, not lab_alive: just after lab_spawn the child may not
		# have exec'd setsid yet (/proc/PID/exe still bash), which
		# lab_pid takes for someone else's process.
		lab_spawned_alive "$dir" "$name" || return 1
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

# lab_spawned_alive DIR NAME: the process lab_spawn started for NAME runs.
lab_spawned_alive() {
	local pid
	read -r pid <"$1/pids/$2.pid" 2>/dev/null || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null
}

# lab_alive DIR NAME: NAME has a live process.
lab_alive() {
	lab_pid "$1" "$2" >/dev/null
}

# lab_log_has DIR NAME SKIP ERE: a line of DIR/logs/NAME.log after its
# first SKIP lines matches ERE.
lab_log_has() {
	tail -n +"$(($3 + 1))" "$1/logs/$2.log" 2>/dev/null | grep -Eq -- "$4"
}

lab_lines() {
	if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

# lab_tcp_open PORT [ROLE]: something accepts connections on
# 127.0.0.1:PORT where ROLE (default device: the lab's sshd) lives.
lab_tcp_open() {
	lab_in "${2:-device}" bash -c '(exec 3<>"/dev/tcp/127.0.0.1/$0") 2>/dev/null' "$1"
}

# lab_tail DIR NAME: the end of NAME's log, for an error message.
lab_tail() {
	if [ -s "$1/logs/$2.log" ]; then
		printf -- '--- %s (last 15 lines)\n' "$1/logs/$2.log" >&2
		tail -n 15 "$1/logs/$2.log" >&2
	fi
}

# lab_start DIR NAME: starts one program of an existing lab from its
# config in DIR and waits until it is ready (bounded); fails with its
# log's end otherwise.  np-server comes back on the port it had.
lab_start() {
	local dir=$1 name=$2 before
	# shellcheck disable=SC1091
	. "$dir/lab.env"
	lab_alive "$dir" "$name" && lab_die "$name is already running in $dir"
	before=$(lab_lines "$dir/logs/$name.log")
	case $name in
	np-server)
		rm -f "$dir/server/port"
		lab_spawn "$dir" np-server "$LAB_BUILD/np-server" run \
		    -d "$dir/server" -l "$LAB_CLOUD_ADDR:${SERVER_PORT:-0}" \
		    --port-file "$dir/server/port" -v
		lab_ready "$dir" np-server 15 test -s "$dir/server/port" || {
			lab_tail "$dir" np-server
			lab_die "np-server did not start"
		}
		;;
	np-srd)
		lab_spawn "$dir" np-srd "$LAB_BUILD/np-srd" -F "$dir/sr/srd.conf" -D
		lab_ready "$dir" np-srd 15 lab_log_has "$dir" np-srd "$before" \
		    'connected to .* as @' || {
			lab_tail "$dir" np-srd
			lab_die "np-srd did not connect to np-server (exited, or not within 15 s)"
		}
		;;
	sshd)
		lab_spawn "$dir" sshd "$LAB_SSHD" -D -e -f "$dir/sshd/sshd_config"
		lab_ready "$dir" sshd 10 lab_tcp_open "$SSHD_PORT" || {
			lab_tail "$dir" sshd
			lab_die "sshd did not listen on 127.0.0.1:$SSHD_PORT"
		}
		;;
	np-deviced)
		lab_spawn "$dir" np-deviced "$LAB_BUILD/np-deviced" \
		    -F "$dir/device/deviced.conf" -D
		lab_ready "$dir" np-deviced 20 lab_ping "$dir" || {
			lab_tail "$dir" np-deviced
			lab_die "np-deviced did not answer np ping (exited, or not within 20 s)"
		}
		;;
	*)
		lab_die "unknown program $name (one of: $LAB_PROGS)"
		;;
	esac
	lab_wait 1 lab_alive "$dir" "$name" || {
		lab_tail "$dir" "$name"
		lab_die "$name exited at start"
	}
}

# lab_ping DIR: np ping of the lab's device as @client succeeds (and the
# device process is still alive, so a stale answer cannot count); the
# device only (--no-relay: no rendezvous session is left behind).
lab_ping() {
	lab_alive "$1" np-deviced || return 1
	lab_in client timeout 10 "$LAB_BUILD/np" -F "$1/client.conf" ping \
	    --no-relay "$LAB_HOST" >/dev/null 2>&1
}
