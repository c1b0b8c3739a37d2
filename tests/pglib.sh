# A throwaway PostgreSQL from Debian's packages, for the tests (sourced by
# tests/integration/*.sh and scripts/run-tests).
#
#   pg_start DIR   initdb into DIR/data, start postgres on a unix socket
#                  in DIR and on 127.0.0.1 at a free port, create the role
#                  and database np; exports NP_TEST_PG_URI
#                  (postgresql://np:PASSWORD@127.0.0.1:PORT/np),
#                  NP_TEST_PG_CTL (DIR/ctl start|stop|restart) and
#                  NP_TEST_PG_DIR.  Returns 1 with a message in PG_WHY when
#                  PostgreSQL cannot start here (binaries missing, no user
#                  to run it as): the caller skips (exit 77).
#   pg_stop DIR    stops it and removes DIR.
#
# Every server pg_start started is stopped on EXIT, also on failure (the
# EXIT trap that was there before, e.g. tests/lib.sh's cleanup, still runs
# afterwards with the same exit status).  Durability settings are left at
# their defaults (fsync on); only memory is made small.
PG_DIRS=()
PG_WHY=

# pg_bindir: the newest /usr/lib/postgresql/*/bin with initdb and pg_ctl.
pg_bindir() {
	local d best=
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] &&
		    [ -x "$d/psql" ] || continue
		best=$d
	done
	[ -n "$best" ] || return 1
	printf '%s\n' "$best"
}

# pg_as CMD...: runs CMD as the user that owns the cluster (initdb refuses
# root: as root that is the system user postgres).
pg_as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

_pg_free_port() {
	local p i
	for i in $(seq 1 200); do
		# below the kernel's ephemeral ports (32768-60999), where an
		# outgoing connection's port, not listening, would not show
		p=$((20000 + RANDOM % 12000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

_pg_cleanup_all() {
	local d
	for d in "${PG_DIRS[@]:-}"; do
		[ -n "$d" ] && [ -d "$d" ] && pg_stop "$d"
	done
	PG_DIRS=()
}

# Chain our cleanup in front of the EXIT trap already set (once).
_pg_trap() {
	local prev
	[ "${_PG_TRAPPED:-0}" = 1 ] && return 0
	_PG_TRAPPED=1
	prev=$(trap -p EXIT)
	prev=${prev#"trap -- '"}
	prev=${prev%"' EXIT"}
	[ -n "$prev" ] || prev=:
	# shellcheck disable=SC2064
	trap "_pg_rc=\$?; _pg_cleanup_all; (exit \$_pg_rc); $prev" EXIT
}

pg_start() {
	local dir=$1 bin port pw i ok
	PG_WHY=
	if ! bin=$(pg_bindir); then
		PG_WHY="PostgreSQL not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
		return 1
	fi
	PG_USER=$(id -un)
	if [ "$(id -u)" = 0 ]; then
		if ! getent passwd postgres >/dev/null ||
		    ! command -v runuser >/dev/null; then
			PG_WHY="running as root and there is no user postgres (or no runuser) to run initdb as"
			return 1
		fi
		PG_USER=postgres
	fi
	_pg_trap
	mkdir -p "$dir" || return 1
	chmod 0755 "$dir"
	PG_DIRS+=("$dir")
	[ "$PG_USER" = "$(id -un)" ] || chown "$PG_USER" "$dir"
	pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
	printf '%s\n' "$pw" >"$dir/pwfile"
	chmod 0644 "$dir/pwfile"
	if ! pg_as "$bin/initdb" -D "$dir/data" -U postgres -A scram-sha-256 \
	    --auth-local=trust --pwfile="$dir/pwfile" -E UTF8 \
	    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
		PG_WHY="initdb failed: $(tail -n 3 "$dir/initdb.log" | tr '\n' ' ')"
		return 1
	fi
	rm -f "$dir/pwfile"
	port=$(_pg_free_port) || { PG_WHY="no free port"; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "shared_buffers = 16MB"
		echo "max_connections = 40"
		echo "log_min_messages = warning"
	} | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
	cat >"$dir/ctl" <<EOF
#!/bin/sh
# $dir/ctl start|stop|restart: this test cluster's pg_ctl.
cd /
if [ "\$(id -u)" = 0 ]; then
	exec runuser -u $PG_USER -- "$bin/pg_ctl" -D "$dir/data" \\
	    -l "$dir/postgres.log" -w -t 30 -m fast "\$1"
fi
exec "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 -m fast "\$1"
EOF
	chmod 0755 "$dir/ctl"
	[ "$PG_USER" = "$(id -un)" ] || chown "$PG_USER" "$dir"
	touch "$dir/postgres.log"
	[ "$PG_USER" = "$(id -un)" ] || chown "$PG_USER" "$dir/postgres.log"
	# A port taken between the look and postgres' bind: another port
	# (the last "port =" line of postgresql.conf counts), three times.
	for i in 1 2 3; do
		"$dir/ctl" start >"$dir/start.log" 2>&1 && break
		if [ "$i" = 3 ] ||
		    ! grep -q 'could not create any TCP/IP sockets' "$dir/postgres.log"; then
			PG_WHY="postgres did not start: $(tail -n 3 "$dir/postgres.log" | tr '\n' ' ')"
			return 1
		fi
		port=$(_pg_free_port) || { PG_WHY="no free port"; return 1; }
		echo "port = $port" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
	done
	ok=0
	for i in 1 2 3; do
		if pg_as "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres \
		    -d postgres -v ON_ERROR_STOP=1 \
		    -c "CREATE ROLE np LOGIN PASSWORD '$pw'" \
		    -c "CREATE DATABASE np OWNER np" >"$dir/psql.log" 2>&1; then
			ok=1
			break
		fi
		sleep 1
	done
	if [ "$ok" != 1 ]; then
		PG_WHY="cannot create the database: $(tr '\n' ' ' <"$dir/psql.log")"
		return 1
	fi
	export NP_TEST_PG_URI="postgresql://np:$pw@127.0.0.1:$port/np"
	export NP_TEST_PG_CTL="$dir/ctl"
	export NP_TEST_PG_DIR="$dir"
	export NP_TEST_PG_PORT="$port"
	export NP_TEST_PG_BIN="$bin"
	return 0
}

# pg_psql SQL...: statements in database np as the superuser.
pg_psql() {
	local a=() s
	for s in "$@"; do
		a+=(-c "$s")
	done
	pg_as "$NP_TEST_PG_BIN/psql" -X -q -At -h "$NP_TEST_PG_DIR" \
	    -p "$NP_TEST_PG_PORT" -U postgres -d np -v ON_ERROR_STOP=1 "${a[@]}"
}

pg_stop() {
	local dir=$1
	[ -d "$dir" ] || return 0
	if [ -x "$dir/ctl" ] && [ -f "$dir/data/postmaster.pid" ]; then
		"$dir/ctl" stop >/dev/null 2>&1
	fi
	rm -rf "$dir"
}
