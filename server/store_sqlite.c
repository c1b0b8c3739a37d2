/*
 * The store on SQLite: WAL, synchronous=FULL, a busy timeout so the
 * command-line tools can write while the server runs, foreign keys, and
 * a schema version.  Statements are prepared once and cached; every
 * value goes through a bound parameter.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "err.h"
#include "ident.h"
#include "log.h"
#include "msg.h"
#include "store_int.h"

#define STORE_SCHEMA_VERSION 2
#define STORE_BUSY_MS 5000

enum st {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_ID_GET,
	S_ID_UPSERT,
	S_ID_REVOKE,
	S_ID_SETPK,
	S_TOK_ADD,
	S_TOK_FIND,
	S_TOK_DEL,
	S_TOK_DEL_NAME,
	S_TOK_EXPIRE,
	S_ROT_CLEAR,
	S_ROT_MAXIDX,
	S_ROT_ADD,
	S_ROT_TRIM,
	S_ROT_GET,
	S_BOX_PUT,
	S_BOX_COUNT,
	S_BOX_DROP,
	S_BOX_FETCH,
	S_BOX_ACK,
	S_BOX_DEL_RCPT,
	S_BOX_EXPIRE,
	S_LIST,
	S_DATA_VERSION,
	S_COUNT
};

static const char *const st_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT np_op",
    [S_RELEASE] = "RELEASE np_op",
    [S_ROLLBACK_TO] = "ROLLBACK TO np_op",
    [S_ID_GET] = "SELECT pk, state FROM identities WHERE name = ?1",
    [S_ID_UPSERT] = "INSERT INTO identities (name, pk, state, created, "
		    "updated) VALUES (?1, ?2, 'active', ?3, ?3) "
		    "ON CONFLICT (name) DO UPDATE SET pk = excluded.pk, "
		    "state = 'active', updated = excluded.updated",
    [S_ID_REVOKE] = "UPDATE identities SET state = 'revoked', "
		    "updated = ?2 WHERE name = ?1",
    [S_ID_SETPK] = "UPDATE identities SET pk = ?2, updated = ?3 "
		   "WHERE name = ?1",
    [S_TOK_ADD] = "INSERT INTO tokens (name, hash, expires, issued_at) "
		  "VALUES (?1, ?2, ?3, ?4)",
    [S_TOK_FIND] = "SELECT rowid, hash FROM tokens "
		   "WHERE name = ?1 AND expires > ?2",
    [S_TOK_DEL] = "DELETE FROM tokens WHERE rowid = ?1",
    [S_TOK_DEL_NAME] = "DELETE FROM tokens WHERE name = ?1",
    [S_TOK_EXPIRE] = "DELETE FROM tokens WHERE expires <= ?1",
    [S_ROT_CLEAR] = "DELETE FROM rotations WHERE name = ?1",
    [S_ROT_MAXIDX] = "SELECT coalesce(max(idx), 0) FROM rotations "
		     "WHERE name = ?1",
    [S_ROT_ADD] = "INSERT INTO rotations (name, idx, old_pk, new_pk, sig) "
		  "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_ROT_TRIM] = "DELETE FROM rotations WHERE name = ?1 AND idx <= ?2",
    [S_ROT_GET] = "SELECT old_pk, new_pk, sig FROM rotations "
		  "WHERE name = ?1 ORDER BY idx DESC LIMIT ?2",
    /* Only for an active recipient: no row is inserted otherwise, and
     * box_insert asks why (no such identity, revoked, or a duplicate). */
    [S_BOX_PUT] = "INSERT INTO boxes (recipient, sender, mid, box, "
		  "created_ms, expires_ms, tag) "
		  "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS "
		  "(SELECT 1 FROM identities WHERE name = ?1 AND "
		  "state = 'active') "
		  "ON CONFLICT (recipient, mid) DO NOTHING",
    [S_BOX_COUNT] = "SELECT count(*) FROM boxes WHERE recipient = ?1",
    [S_BOX_DROP] = "DELETE FROM boxes WHERE seq IN (SELECT seq FROM boxes "
		   "WHERE recipient = ?1 ORDER BY seq LIMIT ?2)",
    [S_BOX_FETCH] = "SELECT seq, sender, mid, box, created_ms, expires_ms, "
		    "tag FROM boxes WHERE recipient = ?1 AND tag IS ?5 "
		    "AND seq > ?2 AND expires_ms > ?3 ORDER BY seq LIMIT ?4",
    [S_BOX_ACK] = "DELETE FROM boxes WHERE recipient = ?1 AND seq = ?2",
    [S_BOX_DEL_RCPT] = "DELETE FROM boxes WHERE recipient = ?1",
    [S_BOX_EXPIRE] = "DELETE FROM boxes WHERE expires_ms <= ?1",
    [S_LIST] = "SELECT i.name, i.pk, i.state, (SELECT count(*) FROM boxes b "
	       "WHERE b.recipient = i.name) FROM identities i "
	       "ORDER BY i.name",
    [S_DATA_VERSION] = "PRAGMA data_version",
};

static const char store_schema[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE identities ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " pk BLOB NOT NULL CHECK (length(pk) = 32),"
    " state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL);"
    "CREATE TABLE rotations ("
    " name TEXT NOT NULL REFERENCES identities (name) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL,"
    " old_pk BLOB NOT NULL CHECK (length(old_pk) = 32),"
    " new_pk BLOB NOT NULL CHECK (length(new_pk) = 32),"
    " sig BLOB NOT NULL CHECK (length(sig) = 64),"
    " PRIMARY KEY (name, idx));"
    "CREATE TABLE tokens ("
    " name TEXT NOT NULL,"
    " hash BLOB NOT NULL CHECK (length(hash) = 32),"
    " expires INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL);"
    "CREATE INDEX tokens_name ON tokens (name);"
    "CREATE TABLE boxes ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " recipient TEXT NOT NULL REFERENCES identities (name),"
    " sender TEXT NOT NULL,"
    " mid TEXT NOT NULL,"
    " box BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " tag TEXT,"
    " UNIQUE (recipient, mid));"
    "CREATE INDEX boxes_recipient_seq ON boxes (recipient, seq);"
    "CREATE INDEX boxes_recipient_tag_seq ON boxes (recipient, tag, seq);"
    "CREATE INDEX boxes_expires ON boxes (expires_ms);";

/* Version 1 -> 2: boxes gain a reply tag (NULL: untagged). */
static const char store_migrate_2[] =
    "ALTER TABLE boxes ADD COLUMN tag TEXT;"
    "CREATE INDEX boxes_recipient_tag_seq ON boxes (recipient, tag, seq);"
    "INSERT INTO schema_version VALUES (2);";

struct sq {
	struct np_store base; /* first: the handle store.c sees */
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	int64_t data_version;
	int batch;	/* inside np_store_batch_begin() */
	int batch_lost; /* SQLite rolled the batch back by itself */
};

/* Map an SQLite result code to ours, logging the database's message. */
static int
db_err(struct sq *s, int rc, const char *what)
{
	np_error("sqlite: %s: %s", what, sqlite3_errmsg(s->db));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return NP_ERR_TIMEOUT;
	case SQLITE_NOMEM:
		return NP_ERR_ALLOC;
	case SQLITE_CONSTRAINT:
		return NP_ERR_INVALID;
	default:
		return NP_ERR_SYSTEM;
	}
}

static sqlite3_stmt *
st_get(struct sq *s, enum st id)
{
	int rc;

	if (s->st[id] != NULL) {
		return s->st[id];
	}
	rc = sqlite3_prepare_v3(s->db, st_sql[id], -1,
				SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL);
	if (rc != SQLITE_OK) {
		db_err(s, rc, st_sql[id]);
		s->st[id] = NULL;
	}
	return s->st[id];
}

static void
st_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* Run a statement that returns no rows (after binding). */
static int
st_exec(struct sq *s, sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	st_done(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		return db_err(s, rc, sqlite3_sql(st));
	}
	return NP_OK;
}

/* Bind helpers: they only fail on a misuse or out of memory. */
static int
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) == SQLITE_OK
		   ? NP_OK
		   : NP_ERR_INTERNAL;
}

static int
bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (n > INT32_MAX) {
		return NP_ERR_TOO_BIG;
	}
	return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) == SQLITE_OK
		   ? NP_OK
		   : NP_ERR_INTERNAL;
}

static int
bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v) == SQLITE_OK ? NP_OK
							 : NP_ERR_INTERNAL;
}

/* Copy a blob column that must be exactly n bytes. */
static int
col_blob(sqlite3_stmt *st, int i, uint8_t *out, size_t n)
{
	const void *p = sqlite3_column_blob(st, i);

	if (p == NULL || (size_t)sqlite3_column_bytes(st, i) != n) {
		return NP_ERR_INVALID;
	}
	memcpy(out, p, n);
	return NP_OK;
}

static int
col_text(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	size_t n;

	if (p == NULL || (n = (size_t)sqlite3_column_bytes(st, i)) >= outlen) {
		return NP_ERR_INVALID;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return NP_OK;
}

static int
run_simple(struct sq *s, enum st id)
{
	sqlite3_stmt *st;

	if ((st = st_get(s, id)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	return st_exec(s, st);
}

/*
 * In a batch the transaction is already open: every operation is a
 * savepoint of it, so it stays all or nothing while the batch commits
 * once.  SQLite ends a transaction by itself on some errors (I/O, disk
 * full); the batch is then lost and every later operation of it fails.
 */
static int
batch_alive(struct sq *s)
{
	if (!s->batch_lost && sqlite3_get_autocommit(s->db)) {
		np_error("sqlite: the batch transaction was rolled back");
		s->batch_lost = 1;
	}
	return s->batch_lost ? NP_ERR_SYSTEM : NP_OK;
}

static int
tx_begin(struct sq *s)
{
	int r;

	if (s->batch) {
		if ((r = batch_alive(s)) != NP_OK) {
			return r;
		}
		return run_simple(s, S_SAVEPOINT);
	}
	return run_simple(s, S_BEGIN);
}

/* Commit when r is NP_OK, otherwise roll back; returns the outcome. */
static int
tx_end(struct sq *s, int r)
{
	int r2;

	if (s->batch) {
		if (batch_alive(s) != NP_OK) {
			return r != NP_OK ? r : NP_ERR_SYSTEM;
		}
		if (r != NP_OK) {
			(void)run_simple(s, S_ROLLBACK_TO);
		}
		if ((r2 = run_simple(s, S_RELEASE)) != NP_OK && r == NP_OK) {
			r = r2;
		}
		return r;
	}
	if (r == NP_OK) {
		if ((r2 = run_simple(s, S_COMMIT)) == NP_OK) {
			return NP_OK;
		}
		r = r2;
	}
	if (!sqlite3_get_autocommit(s->db)) {
		(void)run_simple(s, S_ROLLBACK);
	}
	return r;
}

static int
exec_sql(struct sq *s, const char *sql)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		np_error("sqlite: %s", msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc == SQLITE_BUSY ? NP_ERR_TIMEOUT : NP_ERR_SYSTEM;
	}
	return NP_OK;
}

/* Single-row integer query. */
static int
query_i64(struct sq *s, const char *sql, int64_t *v, int *found)
{
	sqlite3_stmt *st = NULL;
	int rc, r = NP_OK;

	*found = 0;
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		return db_err(s, rc, sql);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		*found = 1;
	} else if (rc != SQLITE_DONE) {
		r = db_err(s, rc, sql);
	}
	sqlite3_finalize(st);
	return r;
}

static int
schema_create(struct sq *s)
{
	char sql[64];
	int r;

	if ((r = exec_sql(s, "BEGIN IMMEDIATE")) != NP_OK) {
		return r;
	}
	snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)",
		 STORE_SCHEMA_VERSION);
	if ((r = exec_sql(s, store_schema)) != NP_OK ||
	    (r = exec_sql(s, sql)) != NP_OK) {
		(void)exec_sql(s, "ROLLBACK");
		return r;
	}
	return exec_sql(s, "COMMIT");
}

static int
schema_version(struct sq *s, int64_t *v)
{
	int found, r;

	*v = 0;
	if ((r = query_i64(s, "SELECT max(version) FROM schema_version", v,
			   &found)) != NP_OK) {
		return r;
	}
	if (!found) {
		*v = 0;
	}
	return NP_OK;
}

/* Bring an older schema up to date, in one transaction (another process
 * may be doing the same: the version is re-read under the lock). */
static int
schema_migrate(struct sq *s)
{
	int64_t v;
	int r;

	if ((r = schema_version(s, &v)) != NP_OK || v >= STORE_SCHEMA_VERSION ||
	    v < 1) {
		return r;
	}
	if ((r = exec_sql(s, "BEGIN IMMEDIATE")) != NP_OK) {
		return r;
	}
	if ((r = schema_version(s, &v)) == NP_OK && v == 1) {
		np_info("migrating the database schema from version 1 to 2");
		r = exec_sql(s, store_migrate_2);
	}
	if (r != NP_OK) {
		(void)exec_sql(s, "ROLLBACK");
		return r;
	}
	return exec_sql(s, "COMMIT");
}

static int
schema_check(struct sq *s)
{
	int64_t v = 0;
	int found, r;

	if ((r = query_i64(
		 s,
		 "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
		 "AND name = 'schema_version'",
		 &v, &found)) != NP_OK) {
		return r;
	}
	if (v == 0) {
		np_error("database has no schema_version table");
		return NP_ERR_INVALID;
	}
	if ((r = schema_migrate(s)) != NP_OK ||
	    (r = schema_version(s, &v)) != NP_OK) {
		return r;
	}
	if (v != STORE_SCHEMA_VERSION) {
		np_error("database schema version %lld, expected %d",
			 (long long)v, STORE_SCHEMA_VERSION);
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
store_pragmas(struct sq *s)
{
	int64_t v;
	int found, r;

	if ((r = exec_sql(s, "PRAGMA foreign_keys = ON")) != NP_OK ||
	    (r = exec_sql(s, "PRAGMA synchronous = FULL")) != NP_OK) {
		return r;
	}
	/* journal_mode answers with a row: the mode now in force. */
	if ((r = query_i64(s, "PRAGMA journal_mode = WAL", &v, &found)) !=
	    NP_OK) {
		return r;
	}
	return NP_OK;
}

/* Create the file 0600 ourselves, refusing one that already exists. */
static int
store_precreate(const char *path)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd == -1) {
		return errno == EEXIST ? NP_ERR_EXISTS : NP_ERR_SYSTEM;
	}
	close(fd);
	return NP_OK;
}

static const struct np_store_ops sq_ops;

static struct sq *
sq_of(struct np_store *b)
{
	return (struct sq *)b;
}

static const struct sq *
sq_cof(const struct np_store *b)
{
	return (const struct sq *)b;
}

static void
sq_free(struct sq *s)
{
	size_t i;

	if (s == NULL) {
		return;
	}
	for (i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
	}
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK) {
		np_warn("sqlite: close: %s", sqlite3_errmsg(s->db));
	}
	free(s);
}

static int sq_changed(struct np_store *b, int *changed);

int
np_store_sqlite_open(const char *path, int flags, struct np_store **out)
{
	struct sq *s = NULL;
	int rc, r;

	*out = NULL;
	if ((flags & NP_STORE_CREATE) && (r = store_precreate(path)) != NP_OK) {
		return r;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NP_ERR_ALLOC;
	}
	s->base.ops = &sq_ops;
	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		np_error("sqlite: open %s: %s", path,
			 s->db != NULL ? sqlite3_errmsg(s->db)
				       : sqlite3_errstr(rc));
		r = rc == SQLITE_CANTOPEN ? NP_ERR_NOT_FOUND : NP_ERR_SYSTEM;
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	if ((r = store_pragmas(s)) != NP_OK) {
		goto out;
	}
	if ((flags & NP_STORE_CREATE) && (r = schema_create(s)) != NP_OK) {
		goto out;
	}
	if ((r = schema_check(s)) != NP_OK) {
		goto out;
	}
	if ((r = sq_changed(&s->base, &rc)) != NP_OK) {
		goto out;
	}
	*out = &s->base;
	s = NULL;
	r = NP_OK;
out:
	sq_free(s);
	return r;
}

static void
sq_close(struct np_store *b)
{
	sq_free(sq_of(b));
}

static int
sq_batch_begin(struct np_store *b)
{
	struct sq *s = sq_of(b);
	int r;

	if (s->batch) {
		return NP_ERR_INTERNAL;
	}
	if ((r = run_simple(s, S_BEGIN)) != NP_OK) {
		return r;
	}
	s->batch = 1;
	s->batch_lost = 0;
	return NP_OK;
}

static int
sq_batch_end(struct np_store *b, int commit)
{
	struct sq *s = sq_of(b);
	int r = NP_OK;

	if (!s->batch) {
		return NP_ERR_INTERNAL;
	}
	s->batch = 0;
	if (s->batch_lost) {
		r = NP_ERR_SYSTEM;
	} else if (commit) {
		r = run_simple(s, S_COMMIT);
	}
	if (!sqlite3_get_autocommit(s->db)) {
		(void)run_simple(s, S_ROLLBACK);
	}
	s->batch_lost = 0;
	return commit ? r : NP_OK;
}

static int
sq_in_batch(const struct np_store *b)
{
	const struct sq *s = sq_cof(b);
	return s->batch;
}

/* Identity row inside or outside a transaction. */
static int
id_get(struct sq *s, const char *name, uint8_t *pk, int *state)
{
	sqlite3_stmt *st;
	const unsigned char *sv;
	int rc, r;

	if ((st = st_get(s, S_ID_GET)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK) {
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = NP_ERR_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_err(s, rc, "identity get");
		goto out;
	}
	if (pk != NULL && (r = col_blob(st, 0, pk, NP_STORE_PK_LEN)) != NP_OK) {
		goto out;
	}
	sv = sqlite3_column_text(st, 1);
	if (state != NULL) {
		*state = sv != NULL && strcmp((const char *)sv, "active") == 0
			     ? NP_STORE_ACTIVE
			     : NP_STORE_REVOKED;
	}
	r = NP_OK;
out:
	st_done(st);
	return r;
}

static int
sq_identity_get(struct np_store *b, const char *name, uint8_t *pk, int *state)
{
	return id_get(sq_of(b), name, pk, state);
}

static int
sq_token_add(struct np_store *b, const char *name,
	     const uint8_t hash[NP_STORE_HASH_LEN], int64_t expires_ms,
	     int64_t now_ms)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st;
	int r;

	if (s->batch && (r = batch_alive(s)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_TOK_ADD)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_blob(st, 2, hash, NP_STORE_HASH_LEN)) != NP_OK ||
	    (r = bind_i64(st, 3, expires_ms)) != NP_OK ||
	    (r = bind_i64(st, 4, now_ms)) != NP_OK) {
		st_done(st);
		return r;
	}
	return st_exec(s, st);
}

/*
 * Find an unexpired token of name with this hash; *rowid is its row.
 * Every candidate is compared in constant time.
 */
static int
token_find(struct sq *s, const char *name,
	   const uint8_t hash[NP_STORE_HASH_LEN], int64_t now_ms,
	   int64_t *rowid)
{
	sqlite3_stmt *st;
	uint8_t h[NP_STORE_HASH_LEN];
	int rc, r;

	*rowid = 0;
	if ((st = st_get(s, S_TOK_FIND)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_i64(st, 2, now_ms)) != NP_OK) {
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (col_blob(st, 1, h, sizeof(h)) != NP_OK) {
			continue;
		}
		if (sodium_memcmp(h, hash, sizeof(h)) == 0) {
			*rowid = sqlite3_column_int64(st, 0);
		}
	}
	if (rc != SQLITE_DONE) {
		r = db_err(s, rc, "token find");
		goto out;
	}
	r = *rowid != 0 ? NP_OK : NP_ERR_TOKEN;
out:
	st_done(st);
	sodium_memzero(h, sizeof(h));
	return r;
}

static int
exec_name(struct sq *s, enum st id, const char *name)
{
	sqlite3_stmt *st;
	int r;

	if ((st = st_get(s, id)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK) {
		st_done(st);
		return r;
	}
	return st_exec(s, st);
}

static int
enroll_tx(struct sq *s, const char *name, const uint8_t hash[NP_STORE_HASH_LEN],
	  const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms)
{
	sqlite3_stmt *st;
	int64_t rowid;
	int state = 0, r;

	if ((r = token_find(s, name, hash, now_ms, &rowid)) != NP_OK) {
		return r;
	}
	r = id_get(s, name, NULL, &state);
	if (r == NP_OK && state == NP_STORE_ACTIVE) {
		return NP_ERR_EXISTS;
	}
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		return r;
	}
	if ((st = st_get(s, S_TOK_DEL)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_i64(st, 1, rowid)) != NP_OK ||
	    (r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	if ((r = exec_name(s, S_ROT_CLEAR, name)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_ID_UPSERT)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_blob(st, 2, pk, NP_STORE_PK_LEN)) != NP_OK ||
	    (r = bind_i64(st, 3, now_ms)) != NP_OK) {
		st_done(st);
		return r;
	}
	return st_exec(s, st);
}

static int
sq_enroll(struct np_store *b, const char *name,
	  const uint8_t hash[NP_STORE_HASH_LEN],
	  const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms)
{
	struct sq *s = sq_of(b);
	int r;

	if ((r = tx_begin(s)) != NP_OK) {
		return r;
	}
	return tx_end(s, enroll_tx(s, name, hash, pk, now_ms));
}

static int
revoke_tx(struct sq *s, const char *name, int64_t now_ms)
{
	sqlite3_stmt *st;
	int r;

	if ((r = id_get(s, name, NULL, NULL)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_ID_REVOKE)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_i64(st, 2, now_ms)) != NP_OK ||
	    (r = st_exec(s, st)) != NP_OK) {
		st_done(st);
		return r;
	}
	if ((r = exec_name(s, S_BOX_DEL_RCPT, name)) != NP_OK) {
		return r;
	}
	return exec_name(s, S_TOK_DEL_NAME, name);
}

static int
sq_revoke(struct np_store *b, const char *name, int64_t now_ms)
{
	struct sq *s = sq_of(b);
	int r;

	if ((r = tx_begin(s)) != NP_OK) {
		return r;
	}
	return tx_end(s, revoke_tx(s, name, now_ms));
}

/* Single-value integer statement bound to name. */
static int
i64_by_name(struct sq *s, enum st id, const char *name, int64_t *v)
{
	sqlite3_stmt *st;
	int rc, r;

	if ((st = st_get(s, id)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK) {
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = db_err(s, rc, sqlite3_sql(st));
		goto out;
	}
	*v = sqlite3_column_int64(st, 0);
	r = NP_OK;
out:
	st_done(st);
	return r;
}

static int
rot_append(struct sq *s, const char *name, const struct np_store_rot *rot,
	   int64_t idx)
{
	sqlite3_stmt *st;
	int r;

	if ((st = st_get(s, S_ROT_ADD)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_i64(st, 2, idx)) != NP_OK ||
	    (r = bind_blob(st, 3, rot->old_pk, NP_STORE_PK_LEN)) != NP_OK ||
	    (r = bind_blob(st, 4, rot->new_pk, NP_STORE_PK_LEN)) != NP_OK ||
	    (r = bind_blob(st, 5, rot->sig, NP_STORE_SIG_LEN)) != NP_OK) {
		st_done(st);
		return r;
	}
	if ((r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_ROT_TRIM)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_i64(st, 2, idx - NP_STORE_ROT_MAX)) != NP_OK) {
		st_done(st);
		return r;
	}
	return st_exec(s, st);
}

static int
rotate_tx(struct sq *s, const char *name, const struct np_store_rot *rot,
	  int64_t now_ms)
{
	sqlite3_stmt *st;
	uint8_t pk[NP_STORE_PK_LEN];
	int64_t idx;
	int state, r;

	if ((r = id_get(s, name, pk, &state)) != NP_OK) {
		return r;
	}
	if (state != NP_STORE_ACTIVE) {
		return NP_ERR_REVOKED;
	}
	if (sodium_memcmp(pk, rot->old_pk, sizeof(pk)) != 0) {
		return NP_ERR_KEY_CHANGED;
	}
	if ((r = i64_by_name(s, S_ROT_MAXIDX, name, &idx)) != NP_OK ||
	    (r = rot_append(s, name, rot, idx + 1)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_ID_SETPK)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_blob(st, 2, rot->new_pk, NP_STORE_PK_LEN)) != NP_OK ||
	    (r = bind_i64(st, 3, now_ms)) != NP_OK) {
		st_done(st);
		return r;
	}
	return st_exec(s, st);
}

static int
sq_rotate(struct np_store *b, const char *name, const struct np_store_rot *rot,
	  int64_t now_ms)
{
	struct sq *s = sq_of(b);
	int r;

	if ((r = tx_begin(s)) != NP_OK) {
		return r;
	}
	return tx_end(s, rotate_tx(s, name, rot, now_ms));
}

static int
sq_rot_get(struct np_store *b, const char *name, struct np_store_rot *out,
	   size_t max, size_t *n)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st;
	struct np_store_rot tmp;
	size_t i, cnt = 0;
	int rc = SQLITE_DONE, r;

	*n = 0;
	if (max > NP_STORE_ROT_MAX) {
		max = NP_STORE_ROT_MAX;
	}
	if ((st = st_get(s, S_ROT_GET)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, name)) != NP_OK ||
	    (r = bind_i64(st, 2, (int64_t)max)) != NP_OK) {
		goto out;
	}
	while (cnt < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = col_blob(st, 0, out[cnt].old_pk, NP_STORE_PK_LEN)) !=
			NP_OK ||
		    (r = col_blob(st, 1, out[cnt].new_pk, NP_STORE_PK_LEN)) !=
			NP_OK ||
		    (r = col_blob(st, 2, out[cnt].sig, NP_STORE_SIG_LEN)) !=
			NP_OK) {
			goto out;
		}
		cnt++;
	}
	if (cnt < max && rc != SQLITE_DONE) {
		r = db_err(s, rc, "rotation get");
		goto out;
	}
	/* Newest first from the query; the caller wants oldest first. */
	for (i = 0; i < cnt / 2; i++) {
		tmp = out[i];
		out[i] = out[cnt - 1 - i];
		out[cnt - 1 - i] = tmp;
	}
	*n = cnt;
	r = NP_OK;
out:
	st_done(st);
	return r;
}

static int
box_insert(struct sq *s, struct np_store_box *b, int *dup)
{
	sqlite3_stmt *st;
	int state, r;

	if ((st = st_get(s, S_BOX_PUT)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, b->recipient)) != NP_OK ||
	    (r = bind_text(st, 2, b->sender)) != NP_OK ||
	    (r = bind_text(st, 3, b->mid)) != NP_OK ||
	    (r = bind_blob(st, 4, b->box, b->box_len)) != NP_OK ||
	    (r = bind_i64(st, 5, b->created_ms)) != NP_OK ||
	    (r = bind_i64(st, 6, b->expires_ms)) != NP_OK ||
	    (b->tag[0] != '\0' && (r = bind_text(st, 7, b->tag)) != NP_OK)) {
		st_done(st);
		return r;
	}
	if ((r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	if (sqlite3_changes(s->db) == 0) {
		/* Not inserted: which of the three reasons? */
		if ((r = id_get(s, b->recipient, NULL, &state)) != NP_OK) {
			return r;
		}
		if (state != NP_STORE_ACTIVE) {
			return NP_ERR_REVOKED;
		}
		*dup = 1;
		return NP_OK;
	}
	b->seq = sqlite3_last_insert_rowid(s->db);
	return NP_OK;
}

/* Drop the n oldest boxes of recipient. */
static int
box_drop(struct sq *s, const char *recipient, int64_t n, int64_t *dropped)
{
	sqlite3_stmt *st;
	int r;

	if ((st = st_get(s, S_BOX_DROP)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, recipient)) != NP_OK ||
	    (r = bind_i64(st, 2, n)) != NP_OK) {
		st_done(st);
		return r;
	}
	if ((r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	*dropped = sqlite3_changes(s->db);
	return NP_OK;
}

/*
 * The queue is counted before the insert: one that has room takes the
 * box with one statement, which is atomic by itself; only a full one
 * needs insert and drop together (its own transaction, or a savepoint of
 * the batch).  Outside a batch everything runs in one transaction, as
 * before (one commit).
 */
static int
box_put_do(struct sq *s, struct np_store_box *b, int64_t queue_max, int *dup,
	   int64_t *dropped)
{
	int64_t cnt;
	int full, r;

	if (s->batch && (r = batch_alive(s)) != NP_OK) {
		return r;
	}
	if ((r = i64_by_name(s, S_BOX_COUNT, b->recipient, &cnt)) != NP_OK) {
		return r;
	}
	full = cnt + 1 > queue_max;
	if (s->batch && !full) {
		return box_insert(s, b, dup);
	}
	if ((r = tx_begin(s)) != NP_OK) {
		return r;
	}
	r = box_insert(s, b, dup);
	if (r == NP_OK && !*dup && full) {
		r = box_drop(s, b->recipient, cnt + 1 - queue_max, dropped);
	}
	return tx_end(s, r);
}

static int
sq_box_put(struct np_store *b, struct np_store_box *box, int64_t queue_max,
	   int *dup, int64_t *dropped)
{
	return box_put_do(sq_of(b), box, queue_max, dup, dropped);
}

static int
box_row(sqlite3_stmt *st, const char *recipient, struct np_store_box *b)
{
	const void *p;
	int r;

	memset(b, 0, sizeof(*b));
	b->seq = sqlite3_column_int64(st, 0);
	snprintf(b->recipient, sizeof(b->recipient), "%s", recipient);
	if ((r = col_text(st, 1, b->sender, sizeof(b->sender))) != NP_OK ||
	    (r = col_text(st, 2, b->mid, sizeof(b->mid))) != NP_OK) {
		return r;
	}
	b->box_len = (size_t)sqlite3_column_bytes(st, 3);
	p = sqlite3_column_blob(st, 3);
	if (p == NULL || b->box_len == 0 || b->box_len > NP_STORE_BOX_MAX) {
		return NP_ERR_INVALID;
	}
	if ((b->box = malloc(b->box_len)) == NULL) {
		return NP_ERR_ALLOC;
	}
	memcpy(b->box, p, b->box_len);
	b->created_ms = sqlite3_column_int64(st, 4);
	b->expires_ms = sqlite3_column_int64(st, 5);
	if (sqlite3_column_type(st, 6) != SQLITE_NULL &&
	    ((r = col_text(st, 6, b->tag, sizeof(b->tag))) != NP_OK ||
	     !np_tag_valid(b->tag))) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* v has room for limit boxes; *n counts the ones filled, on error too
 * (store.c frees them). */
static int
sq_box_fetch(struct np_store *b, const char *recipient, const char *tag,
	     int64_t after, size_t limit, int64_t now_ms,
	     struct np_store_box *v, size_t *n)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_DONE, r;

	*n = 0;
	if ((st = st_get(s, S_BOX_FETCH)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, recipient)) != NP_OK ||
	    (r = bind_i64(st, 2, after)) != NP_OK ||
	    (r = bind_i64(st, 3, now_ms)) != NP_OK ||
	    (r = bind_i64(st, 4, (int64_t)limit)) != NP_OK ||
	    (tag[0] != '\0' && (r = bind_text(st, 5, tag)) != NP_OK)) {
		goto out;
	}
	while (*n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* counted first, so a partial allocation is freed */
		if ((r = box_row(st, recipient, &v[(*n)++])) != NP_OK) {
			goto out;
		}
	}
	if (*n < limit && rc != SQLITE_DONE) {
		r = db_err(s, rc, "box fetch");
		goto out;
	}
	r = NP_OK;
out:
	st_done(st);
	return r;
}

static int
sq_box_ack(struct np_store *b, const char *recipient, int64_t seq)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st;
	int r;

	if (s->batch && (r = batch_alive(s)) != NP_OK) {
		return r;
	}
	if ((st = st_get(s, S_BOX_ACK)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_text(st, 1, recipient)) != NP_OK ||
	    (r = bind_i64(st, 2, seq)) != NP_OK) {
		st_done(st);
		return r;
	}
	if ((r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	return sqlite3_changes(s->db) > 0 ? NP_OK : NP_ERR_NOT_FOUND;
}

static int
sq_box_count(struct np_store *b, const char *recipient, int64_t *n)
{
	return i64_by_name(sq_of(b), S_BOX_COUNT, recipient, n);
}

static int
exec_now(struct sq *s, enum st id, int64_t now_ms, int64_t *changed)
{
	sqlite3_stmt *st;
	int r;

	if ((st = st_get(s, id)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	if ((r = bind_i64(st, 1, now_ms)) != NP_OK) {
		st_done(st);
		return r;
	}
	if ((r = st_exec(s, st)) != NP_OK) {
		return r;
	}
	if (changed != NULL) {
		*changed = sqlite3_changes(s->db);
	}
	return NP_OK;
}

static int
sq_expire(struct np_store *b, int64_t now_ms, int64_t *nboxes, int64_t *ntokens)
{
	struct sq *s = sq_of(b);
	int r;

	if (nboxes != NULL) {
		*nboxes = 0;
	}
	if (ntokens != NULL) {
		*ntokens = 0;
	}
	if ((r = tx_begin(s)) != NP_OK) {
		return r;
	}
	r = exec_now(s, S_BOX_EXPIRE, now_ms, nboxes);
	if (r == NP_OK) {
		r = exec_now(s, S_TOK_EXPIRE, now_ms, ntokens);
	}
	return tx_end(s, r);
}

static int
sq_list(struct np_store *b, np_store_list_cb *cb, void *arg)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st;
	struct np_store_ident id;
	uint8_t pk[NP_STORE_PK_LEN];
	const unsigned char *sv;
	int rc, r = NP_OK;

	if ((st = st_get(s, S_LIST)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&id, 0, sizeof(id));
		id.name = (const char *)sqlite3_column_text(st, 0);
		if (id.name == NULL ||
		    col_blob(st, 1, pk, sizeof(pk)) != NP_OK) {
			r = NP_ERR_INVALID;
			break;
		}
		id.pk = pk;
		sv = sqlite3_column_text(st, 2);
		id.state = sv != NULL && strcmp((const char *)sv, "active") == 0
			       ? NP_STORE_ACTIVE
			       : NP_STORE_REVOKED;
		id.queued = sqlite3_column_int64(st, 3);
		if ((r = cb(&id, arg)) != NP_OK) {
			break;
		}
	}
	if (r == NP_OK && rc != SQLITE_DONE) {
		r = db_err(s, rc, "list");
	}
	st_done(st);
	return r;
}

static int
sq_changed(struct np_store *b, int *changed)
{
	struct sq *s = sq_of(b);
	sqlite3_stmt *st;
	int64_t v;
	int rc;

	*changed = 0;
	if ((st = st_get(s, S_DATA_VERSION)) == NULL) {
		return NP_ERR_INTERNAL;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		st_done(st);
		return db_err(s, rc, "data_version");
	}
	v = sqlite3_column_int64(st, 0);
	st_done(st);
	if (v != s->data_version) {
		*changed = s->data_version != 0;
		s->data_version = v;
	}
	return NP_OK;
}

/* One writer: no other instance to watch; np_store_changed on a timer. */
static int
sq_watch_fd(struct np_store *b)
{
	return -1;
}

static int
sq_watch_read(struct np_store *b, np_store_box_cb *cb, void *arg, int *changed)
{
	return sq_changed(b, changed);
}

static const struct np_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .batch_begin = sq_batch_begin,
    .batch_end = sq_batch_end,
    .in_batch = sq_in_batch,
    .identity_get = sq_identity_get,
    .token_add = sq_token_add,
    .enroll = sq_enroll,
    .revoke = sq_revoke,
    .rotate = sq_rotate,
    .rot_get = sq_rot_get,
    .box_put = sq_box_put,
    .box_fetch = sq_box_fetch,
    .box_ack = sq_box_ack,
    .box_count = sq_box_count,
    .expire = sq_expire,
    .list = sq_list,
    .changed = sq_changed,
    .watch_fd = sq_watch_fd,
    .watch_read = sq_watch_read,
    .seq_ordered = 1,
};
