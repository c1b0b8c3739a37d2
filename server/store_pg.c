/*
 * The store on PostgreSQL (libpq), for several np-server instances that
 * share one database.  The same semantics as store_sqlite.c: every value
 * goes through a parameter of a prepared statement (binary format, so
 * keys and boxes are bytea as they are), results come back in binary.
 *
 * Concurrency: PostgreSQL runs each statement in READ COMMITTED; the
 * multi-statement calls lock what they decide on (the candidate tokens
 * of an enrollment, the identity row of a rotation, the recipient row of
 * a box against a concurrent revocation).  Box seq comes from an
 * identity column, so seq order is not commit order across instances
 * (np_store_seq_ordered() is 0).
 *
 * Other instances: box_put notifies channel np_box with "recipient tag"
 * and enroll/revoke/rotate channel np_ident with the name, inside their
 * transaction (delivered on commit); the handle LISTENs on both and keeps
 * what arrives (a bounded queue) until np_store_watch_read() or
 * np_store_changed() takes it.
 *
 * Connection loss: the failing call logs one line and returns NP_ERR_IO;
 * a batch on it is lost and reported failed.  A later call outside a
 * transaction starts a non-blocking reconnect (at most one a second) and
 * drives it a little, without waiting more than PG_CONNECT_WAIT_MS; when
 * it is up again the statements are prepared anew, LISTEN is re-issued
 * and the next watch read reports "re-check everyone".
 *
 * The connection URI may hold a password: it is never logged (messages
 * show np_store_redact()'s form; libpq's messages are scrubbed of it).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "err.h"
#include "ev.h"
#include "ident.h"
#include "log.h"
#include "msg.h"
#include "store_int.h"

#define PG_SCHEMA_VERSION 1
#define PG_RETRY_MS 1000       /* at most one reconnect attempt a second */
#define PG_CONNECT_WAIT_MS 250 /* longest a call waits for a reconnect */
#define PG_PEND_MAX 1024       /* box notifications kept between reads */
#define PG_ARGS_MAX 8
#define PG_MSG_MAX 512

/* Parameter type OIDs (catalog/pg_type.h; stable across versions). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

enum pst {
	P_ID_GET,
	P_ID_GET_LOCK,
	P_ID_UPSERT,
	P_ID_REVOKE,
	P_ID_SETPK,
	P_TOK_ADD,
	P_TOK_FIND,
	P_TOK_DEL,
	P_TOK_DEL_NAME,
	P_TOK_EXPIRE,
	P_ROT_CLEAR,
	P_ROT_MAXIDX,
	P_ROT_ADD,
	P_ROT_TRIM,
	P_ROT_GET,
	P_BOX_PUT,
	P_BOX_COUNT,
	P_BOX_TRIM,
	P_BOX_FETCH,
	P_BOX_ACK,
	P_BOX_DEL_RCPT,
	P_BOX_EXPIRE,
	P_LIST,
	P_NOTIFY_IDENT,
	P_COUNT
};

/* types: one letter a parameter: t text, b bytea, i int8. */
static const struct {
	const char *sql;
	const char *types;
} pst_def[P_COUNT] = {
    [P_ID_GET] = {"SELECT pk, state FROM identities WHERE name = $1", "t"},
    [P_ID_GET_LOCK] = {"SELECT pk, state FROM identities WHERE name = $1 "
		       "FOR UPDATE",
		       "t"},
    [P_ID_UPSERT] = {"INSERT INTO identities (name, pk, state, created, "
		     "updated) VALUES ($1, $2, 'active', $3, $3) "
		     "ON CONFLICT (name) DO UPDATE SET pk = excluded.pk, "
		     "state = 'active', updated = excluded.updated",
		     "tbi"},
    [P_ID_REVOKE] = {"UPDATE identities SET state = 'revoked', updated = $2 "
		     "WHERE name = $1",
		     "ti"},
    [P_ID_SETPK] = {"UPDATE identities SET pk = $2, updated = $3 "
		    "WHERE name = $1",
		    "tbi"},
    [P_TOK_ADD] = {"INSERT INTO tokens (name, hash, expires, issued_at) "
		   "VALUES ($1, $2, $3, $4)",
		   "tbii"},
    /* Locked: a concurrent enrollment with the same token waits, then
     * finds it gone. */
    [P_TOK_FIND] = {"SELECT id, hash FROM tokens WHERE name = $1 AND "
		    "expires > $2 FOR UPDATE",
		    "ti"},
    [P_TOK_DEL] = {"DELETE FROM tokens WHERE id = $1", "i"},
    [P_TOK_DEL_NAME] = {"DELETE FROM tokens WHERE name = $1", "t"},
    [P_TOK_EXPIRE] = {"DELETE FROM tokens WHERE expires <= $1", "i"},
    [P_ROT_CLEAR] = {"DELETE FROM rotations WHERE name = $1", "t"},
    [P_ROT_MAXIDX] = {"SELECT coalesce(max(idx), 0)::int8 FROM rotations "
		      "WHERE name = $1",
		      "t"},
    [P_ROT_ADD] = {"INSERT INTO rotations (name, idx, old_pk, new_pk, sig) "
		   "VALUES ($1, $2, $3, $4, $5)",
		   "tibbb"},
    [P_ROT_TRIM] = {"DELETE FROM rotations WHERE name = $1 AND idx <= $2",
		    "ti"},
    [P_ROT_GET] = {"SELECT old_pk, new_pk, sig FROM rotations "
		   "WHERE name = $1 ORDER BY idx DESC LIMIT $2",
		   "ti"},
    /* Only for an active recipient (its row share-locked against a
     * concurrent revocation); a duplicate (recipient, mid) inserts
     * nothing; the notification goes out with the commit. */
    [P_BOX_PUT] = {"WITH ins AS (INSERT INTO boxes (recipient, sender, mid, "
		   "box, created_ms, expires_ms, tag) "
		   "SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS "
		   "(SELECT 1 FROM identities WHERE name = $1 AND "
		   "state = 'active' FOR SHARE) "
		   "ON CONFLICT (recipient, mid) DO NOTHING RETURNING seq) "
		   "SELECT seq, pg_notify('np_box', $1 || ' ' || $7) IS NULL "
		   "FROM ins",
		   "tttbiit"},
    [P_BOX_COUNT] = {"SELECT count(*) FROM boxes WHERE recipient = $1", "t"},
    /* Keep the newest $2. */
    [P_BOX_TRIM] = {"DELETE FROM boxes WHERE seq IN (SELECT seq FROM boxes "
		    "WHERE recipient = $1 ORDER BY seq DESC OFFSET $2)",
		    "ti"},
    [P_BOX_FETCH] = {"SELECT seq, sender, mid, box, created_ms, expires_ms, "
		     "tag FROM boxes WHERE recipient = $1 AND tag = $5 "
		     "AND seq > $2 AND expires_ms > $3 ORDER BY seq LIMIT $4",
		     "tiiit"},
    [P_BOX_ACK] = {"DELETE FROM boxes WHERE recipient = $1 AND seq = $2", "ti"},
    [P_BOX_DEL_RCPT] = {"DELETE FROM boxes WHERE recipient = $1", "t"},
    [P_BOX_EXPIRE] = {"DELETE FROM boxes WHERE expires_ms <= $1", "i"},
    /* Byte order, as SQLite sorts. */
    [P_LIST] = {"SELECT i.name, i.pk, i.state, (SELECT count(*) FROM boxes b "
		"WHERE b.recipient = i.name) FROM identities i "
		"ORDER BY i.name COLLATE \"C\"",
		""},
    [P_NOTIFY_IDENT] = {"SELECT pg_notify('np_ident', $1) IS NULL", "t"},
};

static const char pg_schema[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE identities ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " pk BYTEA NOT NULL CHECK (length(pk) = 32),"
    " state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),"
    " created BIGINT NOT NULL,"
    " updated BIGINT NOT NULL);"
    "CREATE TABLE rotations ("
    " name TEXT NOT NULL REFERENCES identities (name) ON DELETE CASCADE,"
    " idx BIGINT NOT NULL,"
    " old_pk BYTEA NOT NULL CHECK (length(old_pk) = 32),"
    " new_pk BYTEA NOT NULL CHECK (length(new_pk) = 32),"
    " sig BYTEA NOT NULL CHECK (length(sig) = 64),"
    " PRIMARY KEY (name, idx));"
    "CREATE TABLE tokens ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " hash BYTEA NOT NULL CHECK (length(hash) = 32),"
    " expires BIGINT NOT NULL,"
    " issued_at BIGINT NOT NULL);"
    "CREATE INDEX tokens_name ON tokens (name);"
    "CREATE TABLE boxes ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " recipient TEXT NOT NULL REFERENCES identities (name),"
    " sender TEXT NOT NULL,"
    " mid TEXT NOT NULL,"
    " box BYTEA NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " tag TEXT NOT NULL DEFAULT '',"
    " UNIQUE (recipient, mid));"
    "CREATE INDEX boxes_recipient_seq ON boxes (recipient, seq);"
    "CREATE INDEX boxes_recipient_tag_seq ON boxes (recipient, tag, seq);"
    "CREATE INDEX boxes_expires ON boxes (expires_ms);";

struct pg_pend {
	char recipient[NP_IDENT_MAX + 1];
	char tag[NP_STORE_TAG_MAX + 1];
};

struct pg {
	struct np_store base; /* first: the handle store.c sees */
	PGconn *conn;
	char *uri;	    /* wiped on close */
	char *password;	    /* as libpq decodes it, for scrubbing; or NULL */
	char *raw_password; /* as written in the URI; or NULL */
	char safe[256];	    /* the URI for messages */
	int prepared[P_COUNT];
	/* connection state */
	int down;	/* lost and not yet back */
	int connecting; /* a non-blocking reconnect in progress */
	PostgresPollingStatusType cpoll;
	uint64_t last_try_ms;
	int retry_logged; /* a failed reconnect of this outage was logged */
	/* transactions */
	int batch;
	int batch_err; /* NP_OK, or why the batch is lost */
	int in_op;     /* a savepoint (batch) or transaction of one call */
	/* what arrived from the other instances */
	struct pg_pend *pend;
	size_t npend, pend_head;
	int pend_overflow;
	int resync_watch, resync_poll; /* after a reconnect */
	int ident_watch, ident_poll;   /* np_ident arrived */
};

struct pg_args {
	int n;
	const char *v[PG_ARGS_MAX];
	int len[PG_ARGS_MAX];
	int fmt[PG_ARGS_MAX];
	uint8_t i64[PG_ARGS_MAX][8];
};

static const struct np_store_ops pg_ops;

static struct pg *
pg_of(struct np_store *b)
{
	return (struct pg *)b;
}

static const struct pg *
pg_cof(const struct np_store *b)
{
	return (const struct pg *)b;
}

/* ---- messages ---- */

/* Replace every occurrence of secret in buf (in place, NUL-terminated). */
static void
scrub_one(char *buf, size_t buflen, const char *secret)
{
	char tmp[PG_MSG_MAX];
	size_t n, len = 0;
	char *p = buf, *hit;

	if (secret == NULL || (n = strlen(secret)) == 0) {
		return;
	}
	while ((hit = strstr(p, secret)) != NULL) {
		len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%.*s%s",
					(int)(hit - p), p, "xxx");
		if (len >= sizeof(tmp)) {
			len = sizeof(tmp) - 1;
			break;
		}
		p = hit + n;
	}
	if (p == buf) {
		return;
	}
	snprintf(tmp + len, sizeof(tmp) - len, "%s", p);
	snprintf(buf, buflen, "%s", tmp);
	sodium_memzero(tmp, sizeof(tmp));
}

/* A libpq message fit for the log: one line, without the password. */
static void
pg_msg(const struct pg *s, const char *msg, char *out, size_t outlen)
{
	char *p;

	snprintf(out, outlen, "%s", msg != NULL ? msg : "");
	for (p = out; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			*p = ' ';
		}
	}
	while (p > out && p[-1] == ' ') {
		*--p = '\0';
	}
	scrub_one(out, outlen, s->password);
	scrub_one(out, outlen, s->raw_password);
}

/* ---- connection ---- */

/* Our defaults first, so that the URI can override them. */
static PGconn *
pg_connect(const struct pg *s, int async)
{
	static const char *const kw[] = {
	    "connect_timeout",
	    "fallback_application_name",
	    "keepalives",
	    "keepalives_idle",
	    "keepalives_interval",
	    "keepalives_count",
	    "tcp_user_timeout",
	    "dbname",
	    NULL,
	};
	const char *val[] = {
	    "10", "np-server", "1", "10", "5", "3", "15000", s->uri, NULL,
	};

	return async ? PQconnectStartParams(kw, val, 1)
		     : PQconnectdbParams(kw, val, 1);
}

/* The connection went away: log it once, lose the batch. */
static int
pg_lost(struct pg *s, const char *what)
{
	char msg[PG_MSG_MAX];

	if (!s->down) {
		pg_msg(s, PQerrorMessage(s->conn), msg, sizeof(msg));
		np_error("postgresql: %s: connection to %s lost: %s", what,
			 s->safe, msg);
	}
	s->down = 1;
	if (s->batch && s->batch_err == NP_OK) {
		s->batch_err = NP_ERR_IO;
	}
	return NP_ERR_IO;
}

static int
pg_check_conn(struct pg *s, const char *what)
{
	if (s->conn == NULL || s->connecting || s->down) {
		return NP_ERR_IO;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		return pg_lost(s, what);
	}
	return NP_OK;
}

/* A statement's failure: the connection's, or the database's message. */
static int
pg_fail(struct pg *s, const PGresult *res, const char *what)
{
	char msg[PG_MSG_MAX];
	const char *state;

	if (PQstatus(s->conn) != CONNECTION_OK) {
		return pg_lost(s, what);
	}
	pg_msg(s,
	       res != NULL ? PQresultErrorMessage(res)
			   : PQerrorMessage(s->conn),
	       msg, sizeof(msg));
	np_error("postgresql: %s: %s", what, msg);
	/* A failed statement outside a savepoint aborts the batch. */
	if (s->batch && !s->in_op && s->batch_err == NP_OK &&
	    PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
		s->batch_err = NP_ERR_SYSTEM;
	}
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state == NULL) {
		return NP_ERR_SYSTEM;
	}
	if (strncmp(state, "23", 2) == 0) {
		return NP_ERR_INVALID; /* a constraint */
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0) {
		return NP_ERR_TIMEOUT; /* serialization, deadlock, lock */
	}
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
		return NP_ERR_IO; /* connection, shutdown */
	}
	return NP_ERR_SYSTEM;
}

/* Run SQL without parameters (transaction control, LISTEN, DDL). */
static int
pg_simple(struct pg *s, const char *sql)
{
	PGresult *res;
	int r = NP_OK;

	if ((r = pg_check_conn(s, sql)) != NP_OK) {
		return r;
	}
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_fail(s, res, sql);
	}
	PQclear(res);
	return r;
}

/* The server's notices (warnings) go to our log, not to stderr. */
static void
pg_notice(void *arg, const char *message)
{
	char msg[PG_MSG_MAX];

	pg_msg(arg, message, msg, sizeof(msg));
	np_debug("postgresql: %s", msg);
}

/* A fresh connection: LISTEN, statements to prepare again. */
static int
pg_session(struct pg *s)
{
	int r;

	(void)PQsetNoticeProcessor(s->conn, pg_notice, s);
	memset(s->prepared, 0, sizeof(s->prepared));
	if ((r = pg_simple(s, "LISTEN np_box")) != NP_OK ||
	    (r = pg_simple(s, "LISTEN np_ident")) != NP_OK) {
		return r;
	}
	return NP_OK;
}

/* Wait up to ms for the socket as PQconnectPoll wants it; 1 if ready. */
static int
pg_sock_ready(struct pg *s, int ms)
{
	struct pollfd pfd;

	pfd.fd = PQsocket(s->conn);
	pfd.events = s->cpoll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	pfd.revents = 0;
	if (pfd.fd < 0) {
		return 1; /* let PQconnectPoll report it */
	}
	return poll(&pfd, 1, ms) > 0;
}

/* Drive a reconnect; NP_OK once it is up. */
static int
pg_connect_step(struct pg *s, int wait_ms)
{
	char msg[PG_MSG_MAX];
	uint64_t t0 = np_now_mono_ms(), now;
	int left;

	for (;;) {
		now = np_now_mono_ms();
		left = wait_ms - (int)(now - t0);
		if (!pg_sock_ready(s, left > 0 ? left : 0)) {
			return NP_ERR_IO;
		}
		s->cpoll = PQconnectPoll(s->conn);
		if (s->cpoll == PGRES_POLLING_OK) {
			break;
		}
		if (s->cpoll == PGRES_POLLING_FAILED) {
			pg_msg(s, PQerrorMessage(s->conn), msg, sizeof(msg));
			/* the first failure of an outage; then once a second */
			np_log(s->retry_logged ? NP_LOG_DEBUG : NP_LOG_WARN,
			       __func__, 0,
			       "postgresql: reconnecting to %s: %s", s->safe,
			       msg);
			s->retry_logged = 1;
			s->connecting = 0;
			return NP_ERR_IO;
		}
	}
	s->connecting = 0;
	s->down = 0;
	if (pg_session(s) != NP_OK) {
		return NP_ERR_IO;
	}
	s->resync_watch = s->resync_poll = 1;
	s->retry_logged = 0;
	np_info("postgresql: reconnected to %s", s->safe);
	return NP_OK;
}

/*
 * Before a call outside a transaction: the connection is up, or a
 * reconnect is started (at most one a second) or driven on.
 */
static int
pg_ready(struct pg *s)
{
	uint64_t now;

	if (s->conn != NULL && !s->down && !s->connecting) {
		if (PQstatus(s->conn) == CONNECTION_OK) {
			return NP_OK;
		}
		(void)pg_lost(s, "connection check");
	}
	if (s->connecting) {
		return pg_connect_step(s, 0);
	}
	now = np_now_mono_ms();
	if (s->last_try_ms != 0 && now - s->last_try_ms < PG_RETRY_MS) {
		return NP_ERR_IO;
	}
	s->last_try_ms = now;
	PQfinish(s->conn);
	if ((s->conn = pg_connect(s, 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		return NP_ERR_IO;
	}
	s->connecting = 1;
	s->cpoll = PGRES_POLLING_WRITING;
	return pg_connect_step(s, PG_CONNECT_WAIT_MS);
}

/* At the start of every call: inside a batch the batch must be alive
 * (no reconnect in the middle of a transaction); outside, pg_ready. */
static int
pg_enter(struct pg *s)
{
	if (s->batch) {
		if (s->batch_err != NP_OK) {
			return s->batch_err;
		}
		return pg_check_conn(s, "batch");
	}
	return pg_ready(s);
}

/* ---- statements ---- */

static void
arg_text(struct pg_args *a, const char *v)
{
	a->v[a->n] = v;
	a->len[a->n] = (int)strlen(v);
	a->fmt[a->n] = 1;
	a->n++;
}

static void
arg_bytes(struct pg_args *a, const void *p, size_t n)
{
	a->v[a->n] = p;
	a->len[a->n] = (int)n;
	a->fmt[a->n] = 1;
	a->n++;
}

static void
arg_i64(struct pg_args *a, int64_t v)
{
	uint64_t u = (uint64_t)v;
	int i;

	for (i = 0; i < 8; i++) {
		a->i64[a->n][i] = (uint8_t)(u >> (56 - 8 * i));
	}
	arg_bytes(a, a->i64[a->n], 8);
}

static int
pg_prepare(struct pg *s, enum pst id)
{
	Oid types[PG_ARGS_MAX];
	char name[16];
	const char *t = pst_def[id].types;
	PGresult *res;
	int i, r = NP_OK;

	for (i = 0; t[i] != '\0' && i < PG_ARGS_MAX; i++) {
		types[i] = t[i] == 'b'	 ? OID_BYTEA
			   : t[i] == 'i' ? OID_INT8
					 : OID_TEXT;
	}
	snprintf(name, sizeof(name), "np_%d", (int)id);
	res = PQprepare(s->conn, name, pst_def[id].sql, i, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_fail(s, res, pst_def[id].sql);
	} else {
		s->prepared[id] = 1;
	}
	PQclear(res);
	return r;
}

/*
 * Run prepared statement id with args a (NULL: none); on NP_OK *out (if
 * not NULL) holds the result to PQclear.
 */
static int
pg_exec(struct pg *s, enum pst id, const struct pg_args *a, PGresult **out)
{
	char name[16];
	PGresult *res;
	ExecStatusType st;
	int r;

	if (out != NULL) {
		*out = NULL;
	}
	if ((r = pg_check_conn(s, pst_def[id].sql)) != NP_OK) {
		return r;
	}
	if (!s->prepared[id] && (r = pg_prepare(s, id)) != NP_OK) {
		return r;
	}
	snprintf(name, sizeof(name), "np_%d", (int)id);
	res = PQexecPrepared(s->conn, name, a != NULL ? a->n : 0,
			     a != NULL ? a->v : NULL, a != NULL ? a->len : NULL,
			     a != NULL ? a->fmt : NULL, 1);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = pg_fail(s, res, pst_def[id].sql);
		PQclear(res);
		return r;
	}
	if (out != NULL) {
		*out = res;
	} else {
		PQclear(res);
	}
	return NP_OK;
}

/* Rows a DELETE or UPDATE touched. */
static int64_t
res_affected(PGresult *res)
{
	return strtoll(PQcmdTuples(res), NULL, 10);
}

static int
res_i64(const PGresult *res, int row, int col, int64_t *v)
{
	const uint8_t *p;
	uint64_t u = 0;
	int i;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8) {
		return NP_ERR_INVALID;
	}
	p = (const uint8_t *)PQgetvalue(res, row, col);
	for (i = 0; i < 8; i++) {
		u = u << 8 | p[i];
	}
	*v = (int64_t)u;
	return NP_OK;
}

static int
res_bytes(const PGresult *res, int row, int col, uint8_t *out, size_t n)
{
	if (PQgetisnull(res, row, col) ||
	    (size_t)PQgetlength(res, row, col) != n) {
		return NP_ERR_INVALID;
	}
	memcpy(out, PQgetvalue(res, row, col), n);
	return NP_OK;
}

static int
res_text(const PGresult *res, int row, int col, char *out, size_t outlen)
{
	const char *p;
	size_t n;

	if (PQgetisnull(res, row, col)) {
		return NP_ERR_INVALID;
	}
	p = PQgetvalue(res, row, col);
	n = (size_t)PQgetlength(res, row, col);
	if (n >= outlen || memchr(p, '\0', n) != NULL) {
		return NP_ERR_INVALID;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return NP_OK;
}

static int
res_state(const PGresult *res, int row, int col)
{
	const char *p = PQgetvalue(res, row, col);

	return PQgetlength(res, row, col) == 6 && memcmp(p, "active", 6) == 0
		   ? NP_STORE_ACTIVE
		   : NP_STORE_REVOKED;
}

/* A statement whose only parameter is name. */
static int
exec_name(struct pg *s, enum pst id, const char *name, PGresult **out)
{
	struct pg_args a = {0};

	arg_text(&a, name);
	return pg_exec(s, id, &a, out);
}

static int
i64_by_name(struct pg *s, enum pst id, const char *name, int64_t *v)
{
	PGresult *res;
	int r;

	if ((r = exec_name(s, id, name, &res)) != NP_OK) {
		return r;
	}
	r = PQntuples(res) == 1 ? res_i64(res, 0, 0, v) : NP_ERR_INVALID;
	PQclear(res);
	return r;
}

/* ---- transactions ---- */

/* One call's transaction: a savepoint inside a batch. */
static int
op_begin(struct pg *s)
{
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	r = pg_simple(s, s->batch ? "SAVEPOINT np_op" : "BEGIN");
	if (r == NP_OK) {
		s->in_op = 1;
	} else if (s->batch && s->batch_err == NP_OK) {
		s->batch_err = r;
	}
	return r;
}

/* Commit when r is NP_OK, otherwise roll back; returns the outcome. */
static int
op_end(struct pg *s, int r)
{
	PGresult *res;
	int r2;

	s->in_op = 0;
	if (s->batch) {
		if (s->batch_err != NP_OK) {
			return r != NP_OK ? r : s->batch_err;
		}
		if (r != NP_OK &&
		    (r2 = pg_simple(s, "ROLLBACK TO SAVEPOINT np_op")) !=
			NP_OK) {
			s->batch_err = r2;
			return r;
		}
		if ((r2 = pg_simple(s, "RELEASE SAVEPOINT np_op")) != NP_OK) {
			s->batch_err = r2;
			return r != NP_OK ? r : r2;
		}
		return r;
	}
	if (pg_check_conn(s, "transaction") != NP_OK) {
		return r != NP_OK ? r : NP_ERR_IO;
	}
	if (r == NP_OK && PQtransactionStatus(s->conn) == PQTRANS_INTRANS) {
		res = PQexec(s->conn, "COMMIT");
		if (PQresultStatus(res) == PGRES_COMMAND_OK &&
		    strcmp(PQcmdStatus(res), "COMMIT") == 0) {
			PQclear(res);
			return NP_OK;
		}
		r = PQresultStatus(res) == PGRES_COMMAND_OK
			? NP_ERR_SYSTEM
			: pg_fail(s, res, "COMMIT");
		PQclear(res);
	} else if (r == NP_OK) {
		r = NP_ERR_SYSTEM; /* aborted by a failed statement */
	}
	if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		(void)pg_simple(s, "ROLLBACK");
	}
	return r;
}

static int
pg_batch_begin(struct np_store *b)
{
	struct pg *s = pg_of(b);
	int r;

	if (s->batch) {
		return NP_ERR_INTERNAL;
	}
	if ((r = pg_ready(s)) != NP_OK ||
	    (r = pg_simple(s, "BEGIN")) != NP_OK) {
		return r;
	}
	s->batch = 1;
	s->batch_err = NP_OK;
	s->in_op = 0;
	return NP_OK;
}

static int
pg_batch_end(struct np_store *b, int commit)
{
	struct pg *s = pg_of(b);
	PGresult *res;
	int r = NP_OK;

	if (!s->batch) {
		return NP_ERR_INTERNAL;
	}
	s->batch = 0;
	s->in_op = 0;
	if (s->batch_err != NP_OK) {
		r = s->batch_err;
	} else if ((r = pg_check_conn(s, "COMMIT")) != NP_OK) {
		/* nothing more to do */
	} else if (commit) {
		if (PQtransactionStatus(s->conn) != PQTRANS_INTRANS) {
			r = NP_ERR_SYSTEM;
		} else {
			res = PQexec(s->conn, "COMMIT");
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				r = pg_fail(s, res, "COMMIT");
			} else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
				r = NP_ERR_SYSTEM;
			}
			PQclear(res);
		}
	}
	if (s->conn != NULL && !s->down && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		(void)pg_simple(s, "ROLLBACK");
	}
	if (r != NP_OK && commit) {
		np_error_r(r, "postgresql: the batch was rolled back");
	}
	s->batch_err = NP_OK;
	return commit ? r : NP_OK;
}

static int
pg_in_batch(const struct np_store *b)
{
	return pg_cof(b)->batch;
}

/* ---- identities and tokens ---- */

static int
id_get(struct pg *s, const char *name, int lock, uint8_t *pk, int *state)
{
	PGresult *res;
	int r;

	if ((r = exec_name(s, lock ? P_ID_GET_LOCK : P_ID_GET, name, &res)) !=
	    NP_OK) {
		return r;
	}
	if (PQntuples(res) == 0) {
		r = NP_ERR_NOT_FOUND;
	} else if (pk != NULL &&
		   (r = res_bytes(res, 0, 0, pk, NP_STORE_PK_LEN)) != NP_OK) {
		/* r set */
	} else {
		if (state != NULL) {
			*state = res_state(res, 0, 1);
		}
		r = NP_OK;
	}
	PQclear(res);
	return r;
}

static int
pg_identity_get(struct np_store *b, const char *name, uint8_t *pk, int *state)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	return id_get(s, name, 0, pk, state);
}

static int
pg_token_add(struct np_store *b, const char *name,
	     const uint8_t hash[NP_STORE_HASH_LEN], int64_t expires_ms,
	     int64_t now_ms)
{
	struct pg *s = pg_of(b);
	struct pg_args a = {0};
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	arg_text(&a, name);
	arg_bytes(&a, hash, NP_STORE_HASH_LEN);
	arg_i64(&a, expires_ms);
	arg_i64(&a, now_ms);
	return pg_exec(s, P_TOK_ADD, &a, NULL);
}

/*
 * Find (and lock) an unexpired token of name with this hash; *id is its
 * row.  Every candidate is compared in constant time, and the hashes are
 * wiped from the result before it is freed.
 */
static int
token_find(struct pg *s, const char *name,
	   const uint8_t hash[NP_STORE_HASH_LEN], int64_t now_ms, int64_t *id)
{
	struct pg_args a = {0};
	uint8_t h[NP_STORE_HASH_LEN];
	PGresult *res;
	int i, n, r;

	*id = 0;
	arg_text(&a, name);
	arg_i64(&a, now_ms);
	if ((r = pg_exec(s, P_TOK_FIND, &a, &res)) != NP_OK) {
		return r;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		if (res_bytes(res, i, 1, h, sizeof(h)) == NP_OK &&
		    sodium_memcmp(h, hash, sizeof(h)) == 0) {
			(void)res_i64(res, i, 0, id);
		}
		sodium_memzero(PQgetvalue(res, i, 1),
			       (size_t)PQgetlength(res, i, 1));
	}
	PQclear(res);
	sodium_memzero(h, sizeof(h));
	return *id != 0 ? NP_OK : NP_ERR_TOKEN;
}

static int
notify_ident(struct pg *s, const char *name)
{
	return exec_name(s, P_NOTIFY_IDENT, name, NULL);
}

static int
enroll_tx(struct pg *s, const char *name, const uint8_t hash[NP_STORE_HASH_LEN],
	  const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms)
{
	struct pg_args a = {0};
	PGresult *res;
	int64_t id, n;
	int state = 0, r;

	if ((r = token_find(s, name, hash, now_ms, &id)) != NP_OK) {
		return r;
	}
	r = id_get(s, name, 1, NULL, &state);
	if (r == NP_OK && state == NP_STORE_ACTIVE) {
		return NP_ERR_EXISTS;
	}
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		return r;
	}
	arg_i64(&a, id);
	if ((r = pg_exec(s, P_TOK_DEL, &a, &res)) != NP_OK) {
		return r;
	}
	n = res_affected(res);
	PQclear(res);
	if (n != 1) {
		return NP_ERR_TOKEN;
	}
	if ((r = exec_name(s, P_ROT_CLEAR, name, NULL)) != NP_OK) {
		return r;
	}
	memset(&a, 0, sizeof(a));
	arg_text(&a, name);
	arg_bytes(&a, pk, NP_STORE_PK_LEN);
	arg_i64(&a, now_ms);
	if ((r = pg_exec(s, P_ID_UPSERT, &a, NULL)) != NP_OK) {
		return r;
	}
	return notify_ident(s, name);
}

static int
pg_enroll(struct np_store *b, const char *name,
	  const uint8_t hash[NP_STORE_HASH_LEN],
	  const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = op_begin(s)) != NP_OK) {
		return r;
	}
	return op_end(s, enroll_tx(s, name, hash, pk, now_ms));
}

static int
revoke_tx(struct pg *s, const char *name, int64_t now_ms)
{
	struct pg_args a = {0};
	int r;

	if ((r = id_get(s, name, 1, NULL, NULL)) != NP_OK) {
		return r;
	}
	arg_text(&a, name);
	arg_i64(&a, now_ms);
	if ((r = pg_exec(s, P_ID_REVOKE, &a, NULL)) != NP_OK ||
	    (r = exec_name(s, P_BOX_DEL_RCPT, name, NULL)) != NP_OK ||
	    (r = exec_name(s, P_TOK_DEL_NAME, name, NULL)) != NP_OK) {
		return r;
	}
	return notify_ident(s, name);
}

static int
pg_revoke(struct np_store *b, const char *name, int64_t now_ms)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = op_begin(s)) != NP_OK) {
		return r;
	}
	return op_end(s, revoke_tx(s, name, now_ms));
}

static int
rot_append(struct pg *s, const char *name, const struct np_store_rot *rot,
	   int64_t idx)
{
	struct pg_args a = {0};
	int r;

	arg_text(&a, name);
	arg_i64(&a, idx);
	arg_bytes(&a, rot->old_pk, NP_STORE_PK_LEN);
	arg_bytes(&a, rot->new_pk, NP_STORE_PK_LEN);
	arg_bytes(&a, rot->sig, NP_STORE_SIG_LEN);
	if ((r = pg_exec(s, P_ROT_ADD, &a, NULL)) != NP_OK) {
		return r;
	}
	memset(&a, 0, sizeof(a));
	arg_text(&a, name);
	arg_i64(&a, idx - NP_STORE_ROT_MAX);
	return pg_exec(s, P_ROT_TRIM, &a, NULL);
}

static int
rotate_tx(struct pg *s, const char *name, const struct np_store_rot *rot,
	  int64_t now_ms)
{
	struct pg_args a = {0};
	uint8_t pk[NP_STORE_PK_LEN];
	int64_t idx;
	int state, r;

	if ((r = id_get(s, name, 1, pk, &state)) != NP_OK) {
		return r;
	}
	if (state != NP_STORE_ACTIVE) {
		return NP_ERR_REVOKED;
	}
	if (sodium_memcmp(pk, rot->old_pk, sizeof(pk)) != 0) {
		return NP_ERR_KEY_CHANGED;
	}
	if ((r = i64_by_name(s, P_ROT_MAXIDX, name, &idx)) != NP_OK ||
	    (r = rot_append(s, name, rot, idx + 1)) != NP_OK) {
		return r;
	}
	arg_text(&a, name);
	arg_bytes(&a, rot->new_pk, NP_STORE_PK_LEN);
	arg_i64(&a, now_ms);
	if ((r = pg_exec(s, P_ID_SETPK, &a, NULL)) != NP_OK) {
		return r;
	}
	return notify_ident(s, name);
}

static int
pg_rotate(struct np_store *b, const char *name, const struct np_store_rot *rot,
	  int64_t now_ms)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = op_begin(s)) != NP_OK) {
		return r;
	}
	return op_end(s, rotate_tx(s, name, rot, now_ms));
}

static int
pg_rot_get(struct np_store *b, const char *name, struct np_store_rot *out,
	   size_t max, size_t *n)
{
	struct pg *s = pg_of(b);
	struct pg_args a = {0};
	PGresult *res;
	size_t i, cnt;
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	arg_text(&a, name);
	arg_i64(&a, (int64_t)max);
	if ((r = pg_exec(s, P_ROT_GET, &a, &res)) != NP_OK) {
		return r;
	}
	cnt = (size_t)PQntuples(res);
	if (cnt > max) {
		cnt = max;
	}
	/* Newest first from the query; the caller wants oldest first. */
	for (i = 0; i < cnt; i++) {
		struct np_store_rot *o = &out[cnt - 1 - i];

		if ((r = res_bytes(res, (int)i, 0, o->old_pk,
				   NP_STORE_PK_LEN)) != NP_OK ||
		    (r = res_bytes(res, (int)i, 1, o->new_pk,
				   NP_STORE_PK_LEN)) != NP_OK ||
		    (r = res_bytes(res, (int)i, 2, o->sig, NP_STORE_SIG_LEN)) !=
			NP_OK) {
			PQclear(res);
			return r;
		}
	}
	PQclear(res);
	*n = cnt;
	return NP_OK;
}

/* ---- boxes ---- */

static int
box_insert(struct pg *s, struct np_store_box *b, int *dup)
{
	struct pg_args a = {0};
	PGresult *res;
	int state, r;

	arg_text(&a, b->recipient);
	arg_text(&a, b->sender);
	arg_text(&a, b->mid);
	arg_bytes(&a, b->box, b->box_len);
	arg_i64(&a, b->created_ms);
	arg_i64(&a, b->expires_ms);
	arg_text(&a, b->tag);
	if ((r = pg_exec(s, P_BOX_PUT, &a, &res)) != NP_OK) {
		return r;
	}
	if (PQntuples(res) == 1) {
		r = res_i64(res, 0, 0, &b->seq);
		PQclear(res);
		return r;
	}
	PQclear(res);
	/* Not inserted: which of the three reasons? */
	if ((r = id_get(s, b->recipient, 0, NULL, &state)) != NP_OK) {
		return r;
	}
	if (state != NP_STORE_ACTIVE) {
		return NP_ERR_REVOKED;
	}
	*dup = 1;
	return NP_OK;
}

/* Keep the newest queue_max boxes of recipient. */
static int
box_trim(struct pg *s, const char *recipient, int64_t queue_max,
	 int64_t *dropped)
{
	struct pg_args a = {0};
	PGresult *res;
	int r;

	arg_text(&a, recipient);
	arg_i64(&a, queue_max);
	if ((r = pg_exec(s, P_BOX_TRIM, &a, &res)) != NP_OK) {
		return r;
	}
	*dropped = res_affected(res);
	PQclear(res);
	return NP_OK;
}

/*
 * As on SQLite: the queue is counted first; one with room takes the box
 * with one statement (atomic by itself, also in a batch: it fails only
 * on an unexpected error, which loses the batch), a full one needs
 * insert and trim together (a transaction, or a savepoint of the batch).
 */
static int
pg_box_put(struct np_store *bs, struct np_store_box *b, int64_t queue_max,
	   int *dup, int64_t *dropped)
{
	struct pg *s = pg_of(bs);
	int64_t cnt;
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	if ((r = i64_by_name(s, P_BOX_COUNT, b->recipient, &cnt)) != NP_OK) {
		return r;
	}
	if (cnt + 1 <= queue_max) {
		return box_insert(s, b, dup);
	}
	if ((r = op_begin(s)) != NP_OK) {
		return r;
	}
	r = box_insert(s, b, dup);
	if (r == NP_OK && !*dup) {
		r = box_trim(s, b->recipient, queue_max, dropped);
	}
	return op_end(s, r);
}

static int
box_row(const PGresult *res, int i, const char *recipient,
	struct np_store_box *b)
{
	size_t n;
	int r;

	memset(b, 0, sizeof(*b));
	snprintf(b->recipient, sizeof(b->recipient), "%s", recipient);
	if ((r = res_i64(res, i, 0, &b->seq)) != NP_OK ||
	    (r = res_text(res, i, 1, b->sender, sizeof(b->sender))) != NP_OK ||
	    (r = res_text(res, i, 2, b->mid, sizeof(b->mid))) != NP_OK ||
	    (r = res_i64(res, i, 4, &b->created_ms)) != NP_OK ||
	    (r = res_i64(res, i, 5, &b->expires_ms)) != NP_OK ||
	    (r = res_text(res, i, 6, b->tag, sizeof(b->tag))) != NP_OK) {
		return r;
	}
	if (b->tag[0] != '\0' && !np_tag_valid(b->tag)) {
		return NP_ERR_INVALID;
	}
	n = (size_t)PQgetlength(res, i, 3);
	if (PQgetisnull(res, i, 3) || n == 0 || n > NP_STORE_BOX_MAX) {
		return NP_ERR_INVALID;
	}
	if ((b->box = malloc(n)) == NULL) {
		return NP_ERR_ALLOC;
	}
	memcpy(b->box, PQgetvalue(res, i, 3), n);
	b->box_len = n;
	return NP_OK;
}

static int
pg_box_fetch(struct np_store *bs, const char *recipient, const char *tag,
	     int64_t after, size_t limit, int64_t now_ms,
	     struct np_store_box *v, size_t *n)
{
	struct pg *s = pg_of(bs);
	struct pg_args a = {0};
	PGresult *res;
	size_t i, cnt;
	int r = NP_OK;

	*n = 0;
	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	arg_text(&a, recipient);
	arg_i64(&a, after);
	arg_i64(&a, now_ms);
	arg_i64(&a, (int64_t)limit);
	arg_text(&a, tag);
	if ((r = pg_exec(s, P_BOX_FETCH, &a, &res)) != NP_OK) {
		return r;
	}
	cnt = (size_t)PQntuples(res);
	for (i = 0; i < cnt && i < limit; i++) {
		/* counted first, so a partial allocation is freed */
		if ((r = box_row(res, (int)i, recipient, &v[(*n)++])) !=
		    NP_OK) {
			break;
		}
	}
	PQclear(res);
	return r;
}

static int
pg_box_ack(struct np_store *b, const char *recipient, int64_t seq)
{
	struct pg *s = pg_of(b);
	struct pg_args a = {0};
	PGresult *res;
	int64_t n;
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	arg_text(&a, recipient);
	arg_i64(&a, seq);
	if ((r = pg_exec(s, P_BOX_ACK, &a, &res)) != NP_OK) {
		return r;
	}
	n = res_affected(res);
	PQclear(res);
	return n > 0 ? NP_OK : NP_ERR_NOT_FOUND;
}

static int
pg_box_count(struct np_store *b, const char *recipient, int64_t *n)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = pg_enter(s)) != NP_OK) {
		return r;
	}
	return i64_by_name(s, P_BOX_COUNT, recipient, n);
}

static int
exec_now(struct pg *s, enum pst id, int64_t now_ms, int64_t *changed)
{
	struct pg_args a = {0};
	PGresult *res;
	int r;

	arg_i64(&a, now_ms);
	if ((r = pg_exec(s, id, &a, &res)) != NP_OK) {
		return r;
	}
	*changed = res_affected(res);
	PQclear(res);
	return NP_OK;
}

static int
pg_expire(struct np_store *b, int64_t now_ms, int64_t *nboxes, int64_t *ntokens)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = op_begin(s)) != NP_OK) {
		return r;
	}
	r = exec_now(s, P_BOX_EXPIRE, now_ms, nboxes);
	if (r == NP_OK) {
		r = exec_now(s, P_TOK_EXPIRE, now_ms, ntokens);
	}
	return op_end(s, r);
}

static int
pg_list(struct np_store *b, np_store_list_cb *cb, void *arg)
{
	struct pg *s = pg_of(b);
	struct np_store_ident id;
	char name[NP_IDENT_MAX + 1];
	uint8_t pk[NP_STORE_PK_LEN];
	PGresult *res;
	int i, n, r;

	if ((r = pg_enter(s)) != NP_OK ||
	    (r = pg_exec(s, P_LIST, NULL, &res)) != NP_OK) {
		return r;
	}
	n = PQntuples(res);
	for (i = 0; i < n && r == NP_OK; i++) {
		memset(&id, 0, sizeof(id));
		if (res_text(res, i, 0, name, sizeof(name)) != NP_OK ||
		    res_bytes(res, i, 1, pk, sizeof(pk)) != NP_OK ||
		    res_i64(res, i, 3, &id.queued) != NP_OK) {
			r = NP_ERR_INVALID;
			break;
		}
		id.name = name;
		id.pk = pk;
		id.state = res_state(res, i, 2);
		r = cb(&id, arg);
	}
	PQclear(res);
	return r;
}

/* ---- notifications ---- */

static void
pend_push(struct pg *s, const char *extra)
{
	struct pg_pend *p;
	const char *sp = strchr(extra, ' ');
	size_t n;

	if (sp == NULL || (n = (size_t)(sp - extra)) > NP_IDENT_MAX ||
	    strlen(sp + 1) > NP_STORE_TAG_MAX) {
		s->pend_overflow = 1; /* not ours to parse: re-check all */
		return;
	}
	if (s->npend == PG_PEND_MAX) {
		s->pend_overflow = 1;
		return;
	}
	p = &s->pend[(s->pend_head + s->npend) % PG_PEND_MAX];
	memcpy(p->recipient, extra, n);
	p->recipient[n] = '\0';
	snprintf(p->tag, sizeof(p->tag), "%s", sp + 1);
	if (!np_ident_valid(p->recipient) ||
	    (p->tag[0] != '\0' && !np_tag_valid(p->tag))) {
		s->pend_overflow = 1;
		return;
	}
	s->npend++;
}

/* Read what the socket holds and move libpq's notifications into ours. */
static int
pg_drain(struct pg *s)
{
	PGnotify *n;
	int self;

	if (PQconsumeInput(s->conn) != 1) {
		return pg_lost(s, "reading notifications");
	}
	self = PQbackendPID(s->conn);
	while ((n = PQnotifies(s->conn)) != NULL) {
		if (n->be_pid == self) {
			/* our own commits: the server knows them */
		} else if (strcmp(n->relname, "np_ident") == 0) {
			s->ident_watch = s->ident_poll = 1;
		} else if (strcmp(n->relname, "np_box") == 0) {
			pend_push(s, n->extra);
		}
		PQfreemem(n);
	}
	return NP_OK;
}

static int
pg_changed(struct np_store *b, int *changed)
{
	struct pg *s = pg_of(b);
	int r;

	if ((r = pg_enter(s)) != NP_OK || (r = pg_drain(s)) != NP_OK) {
		return r;
	}
	*changed = s->ident_poll || s->resync_poll;
	s->ident_poll = s->resync_poll = 0;
	return NP_OK;
}

static int
pg_watch_fd(struct np_store *b)
{
	struct pg *s = pg_of(b);

	if (s->conn == NULL || s->down || s->connecting ||
	    PQstatus(s->conn) != CONNECTION_OK) {
		return -1;
	}
	return PQsocket(s->conn);
}

static int
pg_watch_read(struct np_store *b, np_store_box_cb *cb, void *arg, int *changed)
{
	struct pg *s = pg_of(b);
	struct pg_pend p;
	int r;

	if ((r = pg_enter(s)) != NP_OK || (r = pg_drain(s)) != NP_OK) {
		return r;
	}
	*changed = s->ident_watch || s->resync_watch;
	s->ident_watch = 0;
	if (s->resync_watch || s->pend_overflow) {
		s->resync_watch = s->pend_overflow = 0;
		s->npend = s->pend_head = 0;
		if (cb != NULL) {
			cb(NULL, NULL, arg);
		}
		return NP_OK;
	}
	while (s->npend > 0) {
		p = s->pend[s->pend_head]; /* taken first: cb may call us */
		s->pend_head = (s->pend_head + 1) % PG_PEND_MAX;
		s->npend--;
		if (cb != NULL) {
			cb(p.recipient, p.tag, arg);
		}
	}
	return NP_OK;
}

/* ---- open and close ---- */

static void
pg_free(struct pg *s)
{
	if (s == NULL) {
		return;
	}
	PQfinish(s->conn);
	if (s->uri != NULL) {
		sodium_memzero(s->uri, strlen(s->uri));
		free(s->uri);
	}
	if (s->password != NULL) {
		sodium_memzero(s->password, strlen(s->password));
		free(s->password);
	}
	if (s->raw_password != NULL) {
		sodium_memzero(s->raw_password, strlen(s->raw_password));
		free(s->raw_password);
	}
	free(s->pend);
	free(s);
}

static void
pg_close(struct np_store *b)
{
	pg_free(pg_of(b));
}

/* Keep the password (decoded by libpq, and as written) for scrubbing
 * messages; refuse a URI libpq cannot parse, without echoing it. */
static int
pg_secrets(struct pg *s)
{
	PQconninfoOption *opts, *o;
	char *err = NULL;
	size_t from, to;
	int r = NP_OK;

	if ((opts = PQconninfoParse(s->uri, &err)) == NULL) {
		np_error("postgresql: %s: not a valid connection URI", s->safe);
		PQfreemem(err);
		return NP_ERR_CONF;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0' &&
		    (s->password = strdup(o->val)) == NULL) {
			r = NP_ERR_ALLOC;
		}
		if (o->val != NULL) {
			sodium_memzero(o->val, strlen(o->val));
		}
	}
	PQconninfoFree(opts);
	if (r == NP_OK && np_store_uri_password(s->uri, &from, &to) &&
	    to > from &&
	    (s->raw_password = strndup(s->uri + from, to - from)) == NULL) {
		r = NP_ERR_ALLOC;
	}
	return r;
}

static int
pg_query_i64(struct pg *s, const char *sql, int64_t *v, int *found)
{
	PGresult *res;
	int r = NP_OK;

	*found = 0;
	res = PQexecParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = pg_fail(s, res, sql);
	} else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		r = res_i64(res, 0, 0, v);
		*found = r == NP_OK;
	}
	PQclear(res);
	return r;
}

static int
schema_present(struct pg *s, int *present)
{
	int64_t v = 0;
	int found, r;

	r = pg_query_i64(s,
			 "SELECT count(*) FROM pg_catalog.pg_class c JOIN "
			 "pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
			 "WHERE c.relname = 'schema_version' AND "
			 "n.nspname = current_schema()",
			 &v, &found);
	*present = r == NP_OK && v > 0;
	return r;
}

static int
schema_create(struct pg *s)
{
	char sql[80];
	int present, r;

	if ((r = schema_present(s, &present)) != NP_OK) {
		return r;
	}
	if (present) {
		np_error("postgresql: %s already holds a NoPorts database",
			 s->safe);
		return NP_ERR_EXISTS;
	}
	snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)",
		 PG_SCHEMA_VERSION);
	if ((r = pg_simple(s, "BEGIN")) != NP_OK) {
		return r;
	}
	if ((r = pg_simple(s, pg_schema)) != NP_OK ||
	    (r = pg_simple(s, sql)) != NP_OK) {
		(void)pg_simple(s, "ROLLBACK");
		return r;
	}
	return pg_simple(s, "COMMIT");
}

static int
schema_check(struct pg *s)
{
	int64_t v = 0;
	int present, found, r;

	if ((r = schema_present(s, &present)) != NP_OK) {
		return r;
	}
	if (!present) {
		np_error("postgresql: %s has no NoPorts tables: run np-server "
			 "init with this Store first",
			 s->safe);
		return NP_ERR_NOT_FOUND;
	}
	if ((r = pg_query_i64(s,
			      "SELECT max(version)::int8 FROM schema_version",
			      &v, &found)) != NP_OK) {
		return r;
	}
	if (!found || v != PG_SCHEMA_VERSION) {
		np_error("postgresql: %s: database schema version %lld, "
			 "expected %d",
			 s->safe, (long long)v, PG_SCHEMA_VERSION);
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
np_store_pg_open(const char *uri, int flags, struct np_store **out)
{
	struct pg *s = NULL;
	char msg[PG_MSG_MAX];
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->pend = calloc(PG_PEND_MAX, sizeof(*s->pend))) == NULL ||
	    (s->uri = strdup(uri)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	s->base.ops = &pg_ops;
	np_store_redact(uri, s->safe, sizeof(s->safe));
	if ((r = pg_secrets(s)) != NP_OK) {
		goto out;
	}
	if ((s->conn = pg_connect(s, 0)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		pg_msg(s, PQerrorMessage(s->conn), msg, sizeof(msg));
		np_error("postgresql: cannot connect to %s: %s", s->safe, msg);
		r = NP_ERR_UNREACHABLE;
		goto out;
	}
	if ((flags & NP_STORE_CREATE) && (r = schema_create(s)) != NP_OK) {
		goto out;
	}
	if ((r = schema_check(s)) != NP_OK || (r = pg_session(s)) != NP_OK) {
		goto out;
	}
	*out = &s->base;
	s = NULL;
	r = NP_OK;
out:
	pg_free(s);
	return r;
}

static const struct np_store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .batch_begin = pg_batch_begin,
    .batch_end = pg_batch_end,
    .in_batch = pg_in_batch,
    .identity_get = pg_identity_get,
    .token_add = pg_token_add,
    .enroll = pg_enroll,
    .revoke = pg_revoke,
    .rotate = pg_rotate,
    .rot_get = pg_rot_get,
    .box_put = pg_box_put,
    .box_fetch = pg_box_fetch,
    .box_ack = pg_box_ack,
    .box_count = pg_box_count,
    .expire = pg_expire,
    .list = pg_list,
    .changed = pg_changed,
    .watch_fd = pg_watch_fd,
    .watch_read = pg_watch_read,
    .seq_ordered = 0,
};
