/*
 * The store, against a temporary SQLite database file and, when
 * NP_TEST_PG_URI names one (scripts/run-tests starts a PostgreSQL with
 * tests/pglib.sh), against PostgreSQL: the same tests for both backends,
 * then PostgreSQL's own (several instances on one database, notifications,
 * reconnecting after the server restarts).  Without NP_TEST_PG_URI the
 * PostgreSQL half is reported skipped ("skip:" line).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>

#include "err.h"
#include "store.h"

#define NOW 1700000000000LL
#define HOUR (3600LL * 1000)

static char dir[64];
static char path[1024]; /* the SQLite file, or the PostgreSQL URI */
static struct np_store *st;
static const char *pg_uri; /* NP_TEST_PG_URI */

static void
setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	snprintf(dir, sizeof(dir), "/tmp/np-test-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/np.db", dir);
	ck_assert_int_eq(np_store_open(path, NP_STORE_CREATE, &st), NP_OK);
}

static void
teardown(void)
{
	char p[sizeof(path) + 8];

	np_store_close(st);
	st = NULL;
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	unlink(path);
	rmdir(dir);
}

/* Run SQL on the test database directly (not through the store). */
static void
pg_sql(const char *sql)
{
	PGconn *c = PQconnectdb(pg_uri);
	PGresult *res;

	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
			  PQresultStatus(res) == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

static void
pg_drop(void)
{
	pg_sql("SET client_min_messages = warning; "
	       "DROP TABLE IF EXISTS boxes, tokens, rotations, identities, "
	       "schema_version CASCADE");
}

/* A fresh PostgreSQL database for each test: the tables dropped, then
 * created by the store as np-server init does. */
static void
setup_pg(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_ptr_nonnull(pg_uri);
	snprintf(path, sizeof(path), "%s", pg_uri);
	pg_drop();
	ck_assert_int_eq(np_store_open(path, NP_STORE_CREATE, &st), NP_OK);
}

static void
teardown_pg(void)
{
	np_store_close(st);
	st = NULL;
}

/* Wait (up to 5 s) until s's watch fd has something: another handle's
 * commit reaches PostgreSQL's listeners asynchronously.  SQLite has no
 * fd: nothing to wait for. */
static void
wait_watch(struct np_store *s)
{
	struct pollfd pfd;

	if ((pfd.fd = np_store_watch_fd(s)) < 0) {
		return;
	}
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
}

static void
hash_of(const char *token, uint8_t h[NP_STORE_HASH_LEN])
{
	crypto_hash_sha256(h, (const uint8_t *)token, strlen(token));
}

static void
add_token(const char *name, const char *token, int64_t expires)
{
	uint8_t h[NP_STORE_HASH_LEN];

	hash_of(token, h);
	ck_assert_int_eq(np_store_token_add(st, name, h, expires, NOW), NP_OK);
}

static int
enroll(const char *name, const char *token, uint8_t fill, int64_t now)
{
	uint8_t h[NP_STORE_HASH_LEN], pk[NP_STORE_PK_LEN];

	hash_of(token, h);
	memset(pk, fill, sizeof(pk));
	return np_store_enroll(st, name, h, pk, now);
}

/* Enroll @name with key bytes all equal to fill. */
static void
make_ident(const char *name, uint8_t fill)
{
	add_token(name, "setup-token", NOW + HOUR);
	ck_assert_int_eq(enroll(name, "setup-token", fill, NOW), NP_OK);
}

static int
put_box(const char *to, const char *mid, int64_t expires, int64_t qmax,
	int *dup, int64_t *dropped)
{
	struct np_store_box b;
	uint8_t data[40];

	memset(&b, 0, sizeof(b));
	snprintf(b.recipient, sizeof(b.recipient), "%s", to);
	snprintf(b.sender, sizeof(b.sender), "@sender");
	snprintf(b.mid, sizeof(b.mid), "%s", mid);
	memset(data, strlen(mid) > 0 ? mid[strlen(mid) - 1] : 0, sizeof(data));
	b.box = data;
	b.box_len = sizeof(data);
	b.created_ms = NOW;
	b.expires_ms = expires;
	return np_store_box_put(st, &b, qmax, dup, dropped);
}

/* Queue a 1-byte box (contents i) for to with tag ("" or NULL: none). */
static int
put_tagged(const char *to, int i, const char *tag, int64_t *seq)
{
	struct np_store_box b;
	uint8_t data[1] = {(uint8_t)i};
	char mid[NP_STORE_MID_MAX + 1];
	int r;

	memset(&b, 0, sizeof(b));
	snprintf(b.recipient, sizeof(b.recipient), "%s", to);
	snprintf(b.sender, sizeof(b.sender), "@sender");
	snprintf(mid, sizeof(mid), "%032x", 0x7000 + i);
	snprintf(b.mid, sizeof(b.mid), "%s", mid);
	snprintf(b.tag, sizeof(b.tag), "%s", tag != NULL ? tag : "");
	b.box = data;
	b.box_len = sizeof(data);
	b.created_ms = NOW;
	b.expires_ms = NOW + HOUR;
	r = np_store_box_put(st, &b, 1000, NULL, NULL);
	if (seq != NULL) {
		*seq = b.seq;
	}
	return r;
}

static const char *
mid_n(int i)
{
	static char m[NP_STORE_MID_MAX + 1];

	snprintf(m, sizeof(m), "%032x", i);
	return m;
}

START_TEST(test_open_create_twice)
{
	struct np_store *s2 = NULL;

	ck_assert_int_eq(np_store_open(path, NP_STORE_CREATE, &s2),
			 NP_ERR_EXISTS);
	ck_assert_ptr_null(s2);
	ck_assert_int_eq(np_store_open(path, 0, &s2), NP_OK);
	np_store_close(s2);
	np_store_close(NULL);
}
END_TEST

START_TEST(test_open_missing)
{
	struct np_store *s2 = NULL;
	char p[160];

	snprintf(p, sizeof(p), "%s/nonexistent.db", dir);
	ck_assert_int_ne(np_store_open(p, 0, &s2), NP_OK);
	ck_assert_ptr_null(s2);
	ck_assert_int_ne(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_open_not_a_store)
{
	struct np_store *s2 = NULL;
	char p[160];
	FILE *f;

	snprintf(p, sizeof(p), "%s/junk.db", dir);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs("this is not a database at all, not even close........", f);
	fclose(f);
	ck_assert_int_ne(np_store_open(p, 0, &s2), NP_OK);
	ck_assert_ptr_null(s2);
	unlink(p);
}
END_TEST

START_TEST(test_enroll_good)
{
	uint8_t pk[NP_STORE_PK_LEN], want[NP_STORE_PK_LEN];
	int state = 0;

	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, &state),
			 NP_ERR_NOT_FOUND);
	add_token("@alice", "tok-a", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW), NP_OK);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, &state),
			 NP_OK);
	memset(want, 0xaa, sizeof(want));
	ck_assert_mem_eq(pk, want, sizeof(pk));
	ck_assert_int_eq(state, NP_STORE_ACTIVE);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", NULL, NULL),
			 NP_OK);
}
END_TEST

START_TEST(test_enroll_token_twice)
{
	add_token("@alice", "tok-a", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW), NP_OK);
	ck_assert_int_eq(np_store_revoke(st, "@alice", NOW), NP_OK);
	/* Used up: even once the name is free again it does not work. */
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xbb, NOW), NP_ERR_TOKEN);
}
END_TEST

START_TEST(test_enroll_wrong_token)
{
	add_token("@alice", "tok-a", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-b", 0xaa, NOW), NP_ERR_TOKEN);
	ck_assert_int_eq(enroll("@alice", "", 0xaa, NOW), NP_ERR_TOKEN);
	/* A token is good only for the name it was issued for. */
	ck_assert_int_eq(enroll("@bob", "tok-a", 0xaa, NOW), NP_ERR_TOKEN);
	ck_assert_int_eq(np_store_identity_get(st, "@bob", NULL, NULL),
			 NP_ERR_NOT_FOUND);
	/* The failures did not use it up. */
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW), NP_OK);
}
END_TEST

START_TEST(test_enroll_expired_token)
{
	add_token("@alice", "tok-a", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW + HOUR),
			 NP_ERR_TOKEN);
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW + 2 * HOUR),
			 NP_ERR_TOKEN);
	ck_assert_int_eq(enroll("@alice", "tok-a", 0xaa, NOW + HOUR - 1),
			 NP_OK);
}
END_TEST

START_TEST(test_enroll_bound_name)
{
	uint8_t pk[NP_STORE_PK_LEN], want[NP_STORE_PK_LEN];

	add_token("@alice", "tok-1", NOW + HOUR);
	add_token("@alice", "tok-2", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-1", 0xaa, NOW), NP_OK);
	ck_assert_int_eq(enroll("@alice", "tok-2", 0xbb, NOW), NP_ERR_EXISTS);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, NULL), NP_OK);
	memset(want, 0xaa, sizeof(want));
	ck_assert_mem_eq(pk, want, sizeof(pk));
}
END_TEST

START_TEST(test_enroll_bad_name)
{
	uint8_t h[NP_STORE_HASH_LEN] = {0};

	ck_assert_int_eq(np_store_token_add(st, "alice", h, NOW + HOUR, NOW),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_store_token_add(st, "@Alice", h, NOW + HOUR, NOW),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_store_token_add(st, "@", h, NOW + HOUR, NOW),
			 NP_ERR_INVALID);
	ck_assert_int_eq(enroll("@a'; DROP TABLE x;--", "t", 1, NOW),
			 NP_ERR_INVALID);
	ck_assert_int_eq(np_store_identity_get(st, "", NULL, NULL),
			 NP_ERR_INVALID);
}
END_TEST

START_TEST(test_revoke_reenroll)
{
	struct np_store_rot rot, chain[NP_STORE_ROT_MAX];
	uint8_t pk[NP_STORE_PK_LEN], want[NP_STORE_PK_LEN];
	size_t n;
	int state, dup;

	ck_assert_int_eq(np_store_revoke(st, "@alice", NOW), NP_ERR_NOT_FOUND);
	add_token("@alice", "tok-1", NOW + HOUR);
	add_token("@alice", "tok-early", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-1", 0xaa, NOW), NP_OK);
	memset(rot.old_pk, 0xaa, 32);
	memset(rot.new_pk, 0xab, 32);
	memset(rot.sig, 0x01, 64);
	ck_assert_int_eq(np_store_rotate(st, "@alice", &rot, NOW), NP_OK);
	ck_assert_int_eq(
	    put_box("@alice", mid_n(1), NOW + HOUR, 10, &dup, NULL), NP_OK);

	ck_assert_int_eq(np_store_revoke(st, "@alice", NOW), NP_OK);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", NULL, &state),
			 NP_OK);
	ck_assert_int_eq(state, NP_STORE_REVOKED);
	/* Boxes are gone and no more are taken. */
	{
		int64_t c = -1;

		ck_assert_int_eq(np_store_box_count(st, "@alice", &c), NP_OK);
		ck_assert_int_eq(c, 0);
	}
	ck_assert_int_eq(
	    put_box("@alice", mid_n(2), NOW + HOUR, 10, &dup, NULL),
	    NP_ERR_REVOKED);
	ck_assert_int_eq(np_store_rotate(st, "@alice", &rot, NOW),
			 NP_ERR_REVOKED);
	/* A token issued before the revocation is dead. */
	ck_assert_int_eq(enroll("@alice", "tok-early", 0xcc, NOW),
			 NP_ERR_TOKEN);
	/* A new one works; the old chain is gone. */
	add_token("@alice", "tok-late", NOW + HOUR);
	ck_assert_int_eq(enroll("@alice", "tok-late", 0xcc, NOW), NP_OK);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, &state),
			 NP_OK);
	memset(want, 0xcc, sizeof(want));
	ck_assert_mem_eq(pk, want, sizeof(pk));
	ck_assert_int_eq(state, NP_STORE_ACTIVE);
	ck_assert_int_eq(np_store_rot_get(st, "@alice", chain, 16, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_rotation_chain)
{
	struct np_store_rot rot, chain[NP_STORE_ROT_MAX + 4];
	uint8_t pk[NP_STORE_PK_LEN];
	size_t n;
	int i;

	make_ident("@alice", 0);
	for (i = 0; i < 20; i++) {
		memset(rot.old_pk, i, 32);
		memset(rot.new_pk, i + 1, 32);
		memset(rot.sig, 0x40 + i, 64);
		ck_assert_int_eq(np_store_rotate(st, "@alice", &rot, NOW),
				 NP_OK);
	}
	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, NULL), NP_OK);
	ck_assert_uint_eq(pk[0], 20);
	ck_assert_uint_eq(pk[31], 20);
	ck_assert_int_eq(
	    np_store_rot_get(st, "@alice", chain, NP_STORE_ROT_MAX + 4, &n),
	    NP_OK);
	ck_assert_uint_eq(n, NP_STORE_ROT_MAX);
	/* Oldest first; the four oldest were dropped. */
	for (i = 0; i < NP_STORE_ROT_MAX; i++) {
		ck_assert_uint_eq(chain[i].old_pk[0], i + 4);
		ck_assert_uint_eq(chain[i].new_pk[31], i + 5);
		ck_assert_uint_eq(chain[i].sig[63], 0x40 + i + 4);
	}
	/* A shorter read gets the newest entries, still oldest first. */
	ck_assert_int_eq(np_store_rot_get(st, "@alice", chain, 2, &n), NP_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(chain[0].old_pk[0], 18);
	ck_assert_uint_eq(chain[1].old_pk[0], 19);
}
END_TEST

START_TEST(test_rotation_refused)
{
	struct np_store_rot rot, chain[4];
	uint8_t pk[NP_STORE_PK_LEN];
	size_t n;

	memset(rot.old_pk, 7, 32);
	memset(rot.new_pk, 8, 32);
	memset(rot.sig, 9, 64);
	ck_assert_int_eq(np_store_rotate(st, "@nobody", &rot, NOW),
			 NP_ERR_NOT_FOUND);
	make_ident("@alice", 1);
	ck_assert_int_eq(np_store_rotate(st, "@alice", &rot, NOW),
			 NP_ERR_KEY_CHANGED);
	ck_assert_int_eq(np_store_identity_get(st, "@alice", pk, NULL), NP_OK);
	ck_assert_uint_eq(pk[0], 1);
	ck_assert_int_eq(np_store_rot_get(st, "@alice", chain, 4, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_box_order_ack)
{
	struct np_store_box *v;
	size_t n;
	int64_t seqs[5], c;
	int i, dup;

	make_ident("@bob", 2);
	for (i = 0; i < 5; i++) {
		struct np_store_box b;
		uint8_t data[3] = {1, 2, (uint8_t)i};

		memset(&b, 0, sizeof(b));
		snprintf(b.recipient, sizeof(b.recipient), "@bob");
		snprintf(b.sender, sizeof(b.sender), "@alice");
		snprintf(b.mid, sizeof(b.mid), "%s", mid_n(100 + i));
		b.box = data;
		b.box_len = sizeof(data);
		b.created_ms = NOW + i;
		b.expires_ms = NOW + HOUR;
		ck_assert_int_eq(np_store_box_put(st, &b, 100, &dup, NULL),
				 NP_OK);
		ck_assert_int_eq(dup, 0);
		seqs[i] = b.seq;
		if (i > 0) {
			ck_assert_int_gt(seqs[i], seqs[i - 1]);
		}
	}
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 3, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(v[i].seq, seqs[i]);
		ck_assert_str_eq(v[i].sender, "@alice");
		ck_assert_str_eq(v[i].recipient, "@bob");
		ck_assert_str_eq(v[i].mid, mid_n(100 + i));
		ck_assert_uint_eq(v[i].box_len, 3);
		ck_assert_uint_eq(v[i].box[2], i);
		ck_assert_int_eq(v[i].created_ms, NOW + i);
		ck_assert_int_eq(v[i].expires_ms, NOW + HOUR);
	}
	np_store_boxes_free(v, n);
	/* The next page starts after the last seq seen. */
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, seqs[2], 10, NOW, &v, &n),
	    NP_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].seq, seqs[3]);
	np_store_boxes_free(v, n);

	/* Ack removes exactly one box of that recipient. */
	ck_assert_int_eq(np_store_box_ack(st, "@bob", seqs[1]), NP_OK);
	ck_assert_int_eq(np_store_box_ack(st, "@bob", seqs[1]),
			 NP_ERR_NOT_FOUND);
	make_ident("@carol", 3);
	ck_assert_int_eq(np_store_box_ack(st, "@carol", seqs[2]),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_OK);
	ck_assert_int_eq(c, 4);
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(v[0].seq, seqs[0]);
	ck_assert_int_eq(v[1].seq, seqs[2]);
	np_store_boxes_free(v, n);
	/* Nobody else sees them. */
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@carol", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	np_store_boxes_free(v, n);
	/* limit 0 returns nothing. */
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 0, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v);
}
END_TEST

START_TEST(test_box_duplicate)
{
	struct np_store_box *v;
	size_t n;
	int dup = -1;

	make_ident("@bob", 2);
	ck_assert_int_eq(put_box("@bob", mid_n(7), NOW + HOUR, 10, &dup, NULL),
			 NP_OK);
	ck_assert_int_eq(dup, 0);
	ck_assert_int_eq(
	    put_box("@bob", mid_n(7), NOW + 2 * HOUR, 10, &dup, NULL), NP_OK);
	ck_assert_int_eq(dup, 1);
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].expires_ms, NOW + HOUR);
	np_store_boxes_free(v, n);
	/* The same mid to another recipient is a different box. */
	make_ident("@carol", 3);
	ck_assert_int_eq(
	    put_box("@carol", mid_n(7), NOW + HOUR, 10, &dup, NULL), NP_OK);
	ck_assert_int_eq(dup, 0);
}
END_TEST

START_TEST(test_box_queue_bound)
{
	struct np_store_box *v;
	int64_t dropped = -1;
	size_t n;
	int i;

	make_ident("@bob", 2);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(
		    put_box("@bob", mid_n(i), NOW + HOUR, 5, NULL, &dropped),
		    NP_OK);
		ck_assert_int_eq(dropped, 0);
	}
	ck_assert_int_eq(
	    put_box("@bob", mid_n(5), NOW + HOUR, 5, NULL, &dropped), NP_OK);
	ck_assert_int_eq(dropped, 1);
	/* A smaller bound drops several at once. */
	ck_assert_int_eq(
	    put_box("@bob", mid_n(6), NOW + HOUR, 3, NULL, &dropped), NP_OK);
	ck_assert_int_eq(dropped, 3);
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].mid, mid_n(4));
	ck_assert_str_eq(v[1].mid, mid_n(5));
	ck_assert_str_eq(v[2].mid, mid_n(6));
	np_store_boxes_free(v, n);
}
END_TEST

START_TEST(test_box_bad_input)
{
	struct np_store_box b;
	uint8_t big[NP_STORE_BOX_MAX + 1];

	make_ident("@bob", 2);
	ck_assert_int_eq(
	    put_box("@nobody", mid_n(1), NOW + HOUR, 10, NULL, NULL),
	    NP_ERR_NOT_FOUND);
	ck_assert_int_eq(put_box("@bob", "", NOW + HOUR, 10, NULL, NULL),
			 NP_ERR_INVALID);
	ck_assert_int_eq(put_box("@bob", "ABCDEF", NOW + HOUR, 10, NULL, NULL),
			 NP_ERR_INVALID);
	ck_assert_int_eq(put_box("@bob", "12'x", NOW + HOUR, 10, NULL, NULL),
			 NP_ERR_INVALID);
	ck_assert_int_eq(put_box("bob", mid_n(1), NOW + HOUR, 10, NULL, NULL),
			 NP_ERR_INVALID);

	memset(&b, 0, sizeof(b));
	snprintf(b.recipient, sizeof(b.recipient), "@bob");
	snprintf(b.sender, sizeof(b.sender), "@alice");
	snprintf(b.mid, sizeof(b.mid), "%s", mid_n(1));
	memset(big, 1, sizeof(big));
	b.box = big;
	b.box_len = sizeof(big);
	b.expires_ms = NOW + HOUR;
	ck_assert_int_eq(np_store_box_put(st, &b, 10, NULL, NULL),
			 NP_ERR_TOO_BIG);
	b.box_len = 0;
	ck_assert_int_eq(np_store_box_put(st, &b, 10, NULL, NULL),
			 NP_ERR_INVALID);
	b.box_len = NP_STORE_BOX_MAX;
	snprintf(b.sender, sizeof(b.sender), "@Alice");
	ck_assert_int_eq(np_store_box_put(st, &b, 10, NULL, NULL),
			 NP_ERR_INVALID);
	snprintf(b.sender, sizeof(b.sender), "@alice");
	ck_assert_int_eq(np_store_box_put(st, &b, 10, NULL, NULL), NP_OK);
}
END_TEST

START_TEST(test_expiry)
{
	struct np_store_box *v;
	int64_t nb = -1, nt = -1;
	size_t n;

	make_ident("@bob", 2);
	ck_assert_int_eq(put_box("@bob", mid_n(1), NOW + HOUR, 10, NULL, NULL),
			 NP_OK);
	ck_assert_int_eq(
	    put_box("@bob", mid_n(2), NOW + 3 * HOUR, 10, NULL, NULL), NP_OK);
	add_token("@zed", "tok-z1", NOW + HOUR);
	add_token("@zed", "tok-z2", NOW + 3 * HOUR);

	/* An expired box is not fetched even before the sweep. */
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW + 2 * HOUR, &v, &n),
	    NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].mid, mid_n(2));
	np_store_boxes_free(v, n);

	ck_assert_int_eq(np_store_expire(st, NOW + 2 * HOUR, &nb, &nt), NP_OK);
	ck_assert_int_eq(nb, 1);
	ck_assert_int_eq(nt, 1);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &nb), NP_OK);
	ck_assert_int_eq(nb, 1);
	ck_assert_int_eq(np_store_expire(st, NOW + 2 * HOUR, NULL, NULL),
			 NP_OK);
	ck_assert_int_eq(enroll("@zed", "tok-z2", 5, NOW + 2 * HOUR), NP_OK);
}
END_TEST

static int
list_cb(const struct np_store_ident *id, void *arg)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 512 - len, "%s %d %u %lld;", id->name, id->state,
		 id->pk[0], (long long)id->queued);
	return NP_OK;
}

static int
list_stop_cb(const struct np_store_ident *id, void *arg)
{
	(*(int *)arg)++;
	return NP_ERR_LIMIT;
}

START_TEST(test_list)
{
	char out[512] = "";
	int calls = 0;

	ck_assert_int_eq(np_store_list(st, list_cb, out), NP_OK);
	ck_assert_str_eq(out, "");
	make_ident("@bob", 2);
	make_ident("@alice", 1);
	make_ident("@carol", 3);
	ck_assert_int_eq(put_box("@bob", mid_n(1), NOW + HOUR, 10, NULL, NULL),
			 NP_OK);
	ck_assert_int_eq(put_box("@bob", mid_n(2), NOW + HOUR, 10, NULL, NULL),
			 NP_OK);
	ck_assert_int_eq(np_store_revoke(st, "@carol", NOW), NP_OK);
	ck_assert_int_eq(np_store_list(st, list_cb, out), NP_OK);
	ck_assert_str_eq(out, "@alice 1 1 0;@bob 1 2 2;@carol 2 3 0;");
	ck_assert_int_eq(np_store_list(st, list_stop_cb, &calls), NP_ERR_LIMIT);
	ck_assert_int_eq(calls, 1);
}
END_TEST

START_TEST(test_reopen)
{
	struct np_store_box *v;
	uint8_t pk[NP_STORE_PK_LEN];
	size_t n;
	int state;

	make_ident("@bob", 2);
	add_token("@dave", "tok-d", NOW + HOUR);
	ck_assert_int_eq(put_box("@bob", mid_n(9), NOW + HOUR, 10, NULL, NULL),
			 NP_OK);
	np_store_close(st);
	st = NULL;
	ck_assert_int_eq(np_store_open(path, 0, &st), NP_OK);
	ck_assert_int_eq(np_store_identity_get(st, "@bob", pk, &state), NP_OK);
	ck_assert_uint_eq(pk[0], 2);
	ck_assert_int_eq(state, NP_STORE_ACTIVE);
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].mid, mid_n(9));
	np_store_boxes_free(v, n);
	ck_assert_int_eq(enroll("@dave", "tok-d", 4, NOW), NP_OK);
}
END_TEST

START_TEST(test_data_version)
{
	struct np_store *other = NULL;
	int changed = -1, state;

	ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
	ck_assert_int_eq(np_store_changed(st, &changed), NP_OK);
	ck_assert_int_eq(changed, 0);
	/* Our own writes do not count. */
	make_ident("@bob", 2);
	ck_assert_int_eq(np_store_changed(st, &changed), NP_OK);
	ck_assert_int_eq(changed, 0);
	/* Another connection's do, once. */
	ck_assert_int_eq(np_store_revoke(other, "@bob", NOW), NP_OK);
	wait_watch(st);
	ck_assert_int_eq(np_store_changed(st, &changed), NP_OK);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(np_store_changed(st, &changed), NP_OK);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(np_store_identity_get(st, "@bob", NULL, &state),
			 NP_OK);
	ck_assert_int_eq(state, NP_STORE_REVOKED);
	np_store_close(other);
}
END_TEST

/* Fetch for a tag filter; returns the box contents (1 byte each) in
 * order as a string of digits '0'+i, and checks the tags. */
static void
fetch_tag(const char *tag, int64_t after, const char *want)
{
	struct np_store_box *v;
	char got[64];
	size_t n, i;

	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", tag, after, 50, NOW, &v, &n), NP_OK);
	ck_assert_uint_lt(n, sizeof(got));
	for (i = 0; i < n; i++) {
		got[i] = (char)('0' + v[i].box[0]);
		ck_assert_str_eq(v[i].tag, tag != NULL ? tag : "");
		if (i > 0) {
			ck_assert_int_gt(v[i].seq, v[i - 1].seq);
		}
	}
	got[n] = '\0';
	np_store_boxes_free(v, n);
	ck_assert_str_eq(got, want);
}

START_TEST(test_box_tags)
{
	int64_t s0, s3;

	make_ident("@bob", 2);
	ck_assert_int_eq(put_tagged("@bob", 0, NULL, &s0), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 1, "t1", NULL), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 2, "t2", NULL), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 3, "", &s3), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 4, "t1", NULL), NP_OK);
	ck_assert_int_eq(
	    put_tagged("@bob", 5, "abcdefghijklmnopqrstuvwxyz012345", NULL),
	    NP_OK);
	fetch_tag(NULL, 0, "03");
	fetch_tag("", 0, "03");
	fetch_tag("t1", 0, "14");
	fetch_tag("t2", 0, "2");
	fetch_tag("abcdefghijklmnopqrstuvwxyz012345", 0, "5");
	fetch_tag("nobody", 0, "");
	/* Paging after a seq, within one tag. */
	fetch_tag(NULL, s0, "3");
	fetch_tag(NULL, s3, "");
	/* The queue bound and the count cover all tags. */
	{
		int64_t c;

		ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_OK);
		ck_assert_int_eq(c, 6);
	}
	/* Ack does not care about tags. */
	ck_assert_int_eq(np_store_box_ack(st, "@bob", s3), NP_OK);
	fetch_tag(NULL, 0, "0");
}
END_TEST

START_TEST(test_box_tag_bad)
{
	struct np_store_box *v = (void *)1;
	size_t n = 7;
	static const char *const bad[] = {
	    "T1",
	    "a-b",
	    "a b",
	    "a_b",
	    "abcdefghijklmnopqrstuvwxyz0123456",
	    "\xc3\xa9",
	    "tag\n",
	};
	size_t i;

	make_ident("@bob", 2);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strlen(bad[i]) <= NP_STORE_TAG_MAX) { /* fits b.tag */
			ck_assert_int_eq(put_tagged("@bob", 1, bad[i], NULL),
					 NP_ERR_INVALID);
		}
		ck_assert_int_eq(
		    np_store_box_fetch(st, "@bob", bad[i], 0, 10, NOW, &v, &n),
		    NP_ERR_INVALID);
		ck_assert_ptr_null(v);
		ck_assert_uint_eq(n, 0);
	}
	/* A tag array without a terminator is refused, not overread. */
	{
		struct np_store_box b;
		uint8_t d = 1;

		memset(&b, 0, sizeof(b));
		snprintf(b.recipient, sizeof(b.recipient), "@bob");
		snprintf(b.sender, sizeof(b.sender), "@sender");
		snprintf(b.mid, sizeof(b.mid), "%s", mid_n(1));
		memset(b.tag, 'a', sizeof(b.tag));
		b.box = &d;
		b.box_len = 1;
		b.expires_ms = NOW + HOUR;
		ck_assert_int_eq(np_store_box_put(st, &b, 10, NULL, NULL),
				 NP_ERR_INVALID);
	}
	{
		int64_t c;

		ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_OK);
		ck_assert_int_eq(c, 0);
	}
}
END_TEST

/* The schema of the previous release (version 1), by hand. */
static const char v1_schema[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1);"
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
    " UNIQUE (recipient, mid));"
    "CREATE INDEX boxes_recipient_seq ON boxes (recipient, seq);"
    "CREATE INDEX boxes_expires ON boxes (expires_ms);"
    "INSERT INTO identities VALUES ('@bob', zeroblob(32), 'active', 1, 1);"
    "INSERT INTO boxes (recipient, sender, mid, box, created_ms, expires_ms)"
    " VALUES ('@bob', '@alice', '0000000000000000000000000000abcd',"
    " x'07', 1700000000000, 1700003600000);";

static void
make_db(const char *p, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK);
	sqlite3_free(err);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

static int64_t
db_version(const char *p)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int64_t v = -1;

	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT max(version) FROM "
					    "schema_version",
					    -1, &q, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

START_TEST(test_migrate_v1)
{
	struct np_store_box *v;
	char old[160];
	size_t n;
	int64_t s1;

	np_store_close(st);
	st = NULL;
	snprintf(old, sizeof(old), "%s/old.db", dir);
	make_db(old, v1_schema);
	ck_assert_int_eq(db_version(old), 1);
	ck_assert_int_eq(np_store_open(old, 0, &st), NP_OK);
	ck_assert_int_eq(db_version(old), 2);
	/* The old box survives, untagged. */
	ck_assert_int_eq(
	    np_store_box_fetch(st, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].mid, "0000000000000000000000000000abcd");
	ck_assert_str_eq(v[0].tag, "");
	ck_assert_uint_eq(v[0].box[0], 7);
	np_store_boxes_free(v, n);
	/* Tagged boxes work on the migrated database. */
	ck_assert_int_eq(put_tagged("@bob", 1, "x1", &s1), NP_OK);
	fetch_tag("x1", 0, "1");
	fetch_tag(NULL, 0, "7");
	/* Opening it again is a no-op. */
	np_store_close(st);
	st = NULL;
	ck_assert_int_eq(np_store_open(old, 0, &st), NP_OK);
	ck_assert_int_eq(db_version(old), 2);
	fetch_tag("x1", 0, "1");
	np_store_close(st);
	st = NULL;
	unlink(old);
	snprintf(old + strlen(old), sizeof(old) - strlen(old), "-wal");
	unlink(old);
	old[strlen(old) - 4] = '\0';
	snprintf(old + strlen(old), sizeof(old) - strlen(old), "-shm");
	unlink(old);
	/* Reopen the fixture's database for teardown. */
	ck_assert_int_eq(np_store_open(path, 0, &st), NP_OK);
}
END_TEST

START_TEST(test_unknown_version)
{
	char p[160];
	struct np_store *s2 = NULL;

	snprintf(p, sizeof(p), "%s/future.db", dir);
	make_db(p, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
		   "INSERT INTO schema_version VALUES (99);");
	ck_assert_int_eq(np_store_open(p, 0, &s2), NP_ERR_INVALID);
	ck_assert_ptr_null(s2);
	ck_assert_int_eq(db_version(p), 99);
	unlink(p);
	snprintf(p, sizeof(p), "%s/empty.db", dir);
	make_db(p, "CREATE TABLE schema_version (version INTEGER NOT NULL);");
	ck_assert_int_eq(np_store_open(p, 0, &s2), NP_ERR_INVALID);
	ck_assert_ptr_null(s2);
	unlink(p);
}
END_TEST

/* A batch: one transaction for many calls, each still all or nothing;
 * invisible to other connections until it commits. */
START_TEST(test_batch_commit)
{
	struct np_store *other = NULL;
	int64_t n = -1, s3;
	int state;

	make_ident("@bob", 2);
	ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
	ck_assert_int_eq(np_store_in_batch(st), 0);
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(np_store_in_batch(st), 1);
	ck_assert_int_eq(np_store_batch_begin(st), NP_ERR_INTERNAL);
	ck_assert_int_eq(put_tagged("@bob", 1, NULL, NULL), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 2, NULL, NULL), NP_OK);
	/* A call that fails leaves the rest of the batch alone. */
	ck_assert_int_eq(put_tagged("@nobody", 9, NULL, NULL),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(enroll("@bob", "no-such-token", 3, NOW), NP_ERR_TOKEN);
	ck_assert_int_eq(put_tagged("@bob", 3, NULL, &s3), NP_OK);
	ck_assert_int_eq(np_store_box_ack(st, "@bob", s3), NP_OK);
	add_token("@carol", "carol-token", NOW + HOUR);
	ck_assert_int_eq(enroll("@carol", "carol-token", 4, NOW), NP_OK);
	/* Our connection sees the batch, the other not yet. */
	ck_assert_int_eq(np_store_box_count(st, "@bob", &n), NP_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(np_store_box_count(other, "@bob", &n), NP_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(np_store_identity_get(other, "@carol", NULL, &state),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_store_batch_end(st, 1), NP_OK);
	ck_assert_int_eq(np_store_in_batch(st), 0);
	ck_assert_int_eq(np_store_batch_end(st, 1), NP_ERR_INTERNAL);
	ck_assert_int_eq(np_store_box_count(other, "@bob", &n), NP_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(np_store_identity_get(other, "@carol", NULL, &state),
			 NP_OK);
	ck_assert_int_eq(state, NP_STORE_ACTIVE);
	np_store_close(other);
}
END_TEST

START_TEST(test_batch_rollback)
{
	int64_t n = -1;
	int state;

	make_ident("@bob", 2);
	ck_assert_int_eq(put_tagged("@bob", 1, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 2, NULL, NULL), NP_OK);
	add_token("@carol", "carol-token", NOW + HOUR);
	ck_assert_int_eq(enroll("@carol", "carol-token", 4, NOW), NP_OK);
	ck_assert_int_eq(np_store_batch_end(st, 0), NP_OK);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &n), NP_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(np_store_identity_get(st, "@carol", NULL, &state),
			 NP_ERR_NOT_FOUND);
	/* The store works on as before. */
	ck_assert_int_eq(put_tagged("@bob", 3, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &n), NP_OK);
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_redact)
{
	char out[256];

	np_store_redact("postgresql://np:s3cr%40t@db.example:5432/np", out,
			sizeof(out));
	ck_assert_str_eq(out, "postgresql://np:xxx@db.example:5432/np");
	np_store_redact("postgres://u:p@ss@h/db?sslmode=require", out,
			sizeof(out));
	ck_assert_str_eq(out, "postgres://u:xxx@h/db?sslmode=require");
	np_store_redact("postgresql://h/db?user=u&password=pw&x=1", out,
			sizeof(out));
	ck_assert_str_eq(out, "postgresql://h/db?user=u&password=xxx&x=1");
	np_store_redact("postgresql://u@h:5/db", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://u@h:5/db");
	np_store_redact("/var/lib/noports/server/np.db", out, sizeof(out));
	ck_assert_str_eq(out, "/var/lib/noports/server/np.db");
	np_store_redact("postgresql://np:secret@h/db", out, 18);
	ck_assert_str_eq(out, "postgresql://np:x");
	ck_assert_int_eq(np_store_is_uri("postgresql://h/db"), 1);
	ck_assert_int_eq(np_store_is_uri("postgres://h/db"), 1);
	ck_assert_int_eq(np_store_is_uri("postgresqlx://h/db"), 0);
	ck_assert_int_eq(np_store_is_uri("np.db"), 0);
}
END_TEST

START_TEST(test_sqlite_watch)
{
	int changed = -1;

	ck_assert_int_eq(np_store_seq_ordered(st), 1);
	ck_assert_int_eq(np_store_watch_fd(st), -1);
	ck_assert_str_eq(np_store_backend(st), "sqlite");
	ck_assert_int_eq(np_store_watch_read(st, NULL, NULL, &changed), NP_OK);
	ck_assert_int_eq(changed, 0);
}
END_TEST

/* ---- PostgreSQL only ---- */

START_TEST(test_pg_no_schema)
{
	struct np_store *s2 = NULL;

	np_store_close(st);
	st = NULL;
	pg_drop();
	ck_assert_int_eq(np_store_open(path, 0, &s2), NP_ERR_NOT_FOUND);
	ck_assert_ptr_null(s2);
	ck_assert_int_eq(np_store_open(path, NP_STORE_CREATE, &st), NP_OK);
	ck_assert_str_eq(np_store_backend(st), "postgresql");
}
END_TEST

START_TEST(test_pg_unknown_version)
{
	struct np_store *s2 = NULL;

	pg_sql("UPDATE schema_version SET version = 99");
	ck_assert_int_eq(np_store_open(path, 0, &s2), NP_ERR_INVALID);
	ck_assert_ptr_null(s2);
	pg_sql("UPDATE schema_version SET version = 1");
	ck_assert_int_eq(np_store_open(path, 0, &s2), NP_OK);
	np_store_close(s2);
}
END_TEST

START_TEST(test_pg_unreachable)
{
	struct np_store *s2 = NULL;

	ck_assert_int_eq(
	    np_store_open("postgresql://np:pw@127.0.0.1:1/np", 0, &s2),
	    NP_ERR_UNREACHABLE);
	ck_assert_ptr_null(s2);
}
END_TEST

struct seen {
	char what[1024];
	int all; /* recipient NULL seen */
};

static void
seen_cb(const char *recipient, const char *tag, void *arg)
{
	struct seen *w = arg;
	size_t len = strlen(w->what);

	if (recipient == NULL) {
		w->all++;
		return;
	}
	snprintf(w->what + len, sizeof(w->what) - len, "%s/%s;", recipient,
		 tag);
}

/* Read s's notifications after waiting for the first. */
static void
watch(struct np_store *s, struct seen *w, int *changed)
{
	memset(w, 0, sizeof(*w));
	wait_watch(s);
	usleep(100 * 1000); /* let the rest of one commit's arrive */
	ck_assert_int_eq(np_store_watch_read(s, seen_cb, w, changed), NP_OK);
}

/* Two handles ("instances") on one database. */
START_TEST(test_pg_two_instances)
{
	struct np_store *other = NULL;
	struct np_store_box *v;
	struct seen w;
	size_t n;
	int changed = -1;

	ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
	ck_assert_int_ge(np_store_watch_fd(other), 0);
	ck_assert_int_eq(np_store_seq_ordered(other), 0);
	/* Nothing pending: NP_OK, nothing reported. */
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(np_store_watch_read(other, seen_cb, &w, &changed),
			 NP_OK);
	ck_assert_int_eq(changed, 0);
	ck_assert_str_eq(w.what, "");

	/* An enrollment on one is an identity change on the other. */
	make_ident("@bob", 2);
	watch(other, &w, &changed);
	ck_assert_int_eq(changed, 1);
	ck_assert_str_eq(w.what, "");

	/* A box put by one is notified on the other and fetchable there. */
	ck_assert_int_eq(put_tagged("@bob", 1, NULL, NULL), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 2, "t1", NULL), NP_OK);
	watch(other, &w, &changed);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(w.all, 0);
	ck_assert_str_eq(w.what, "@bob/;@bob/t1;");
	ck_assert_int_eq(
	    np_store_box_fetch(other, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0].box[0], 1);
	np_store_boxes_free(v, n);
	ck_assert_int_eq(
	    np_store_box_fetch(other, "@bob", "t1", 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].tag, "t1");
	np_store_boxes_free(v, n);

	/* Our own boxes and enrollments are not reported back to us. */
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(np_store_watch_read(st, seen_cb, &w, &changed), NP_OK);
	ck_assert_int_eq(changed, 0);
	ck_assert_str_eq(w.what, "");

	/* A revocation by the other: changed on ours. */
	ck_assert_int_eq(np_store_revoke(other, "@bob", NOW), NP_OK);
	watch(st, &w, &changed);
	ck_assert_int_eq(changed, 1);

	/* A batch notifies on commit only; a rolled back one never. */
	make_ident("@carol", 3);
	watch(other, &w, &changed);
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(put_tagged("@carol", 3, NULL, NULL), NP_OK);
	usleep(200 * 1000);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(np_store_watch_read(other, seen_cb, &w, &changed),
			 NP_OK);
	ck_assert_str_eq(w.what, "");
	ck_assert_int_eq(np_store_batch_end(st, 0), NP_OK);
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(put_tagged("@carol", 4, "x9", NULL), NP_OK);
	ck_assert_int_eq(np_store_batch_end(st, 1), NP_OK);
	watch(other, &w, &changed);
	ck_assert_str_eq(w.what, "@carol/x9;");
	np_store_close(other);
}
END_TEST

/* Seq order is not commit order across instances. */
START_TEST(test_pg_seq_order)
{
	struct np_store *other = NULL;
	struct np_store_box *v;
	int64_t s1, s2;
	size_t n;

	ck_assert_int_eq(np_store_seq_ordered(st), 0);
	make_ident("@bob", 2);
	ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 1, NULL, &s1), NP_OK);
	{
		struct np_store *keep = st;

		st = other; /* put_tagged writes through st */
		ck_assert_int_eq(put_tagged("@bob", 2, NULL, &s2), NP_OK);
		st = keep;
	}
	ck_assert_int_gt(s2, s1);
	/* The later seq is committed and visible, the earlier not yet. */
	ck_assert_int_eq(
	    np_store_box_fetch(other, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].seq, s2);
	np_store_boxes_free(v, n);
	ck_assert_int_eq(np_store_batch_end(st, 1), NP_OK);
	/* A reader that paged past s2 would miss s1: fetch from 0 finds it. */
	ck_assert_int_eq(
	    np_store_box_fetch(other, "@bob", NULL, s2, 10, NOW, &v, &n),
	    NP_OK);
	ck_assert_uint_eq(n, 0);
	np_store_boxes_free(v, n);
	ck_assert_int_eq(
	    np_store_box_fetch(other, "@bob", NULL, 0, 10, NOW, &v, &n), NP_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].seq, s1);
	np_store_boxes_free(v, n);
	np_store_close(other);
}
END_TEST

/* Concurrent enrollments with one token: one wins. */
START_TEST(test_pg_token_race)
{
	struct np_store *other = NULL;
	uint8_t h[NP_STORE_HASH_LEN], pk[NP_STORE_PK_LEN];

	ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
	add_token("@dan", "tok-d", NOW + HOUR);
	hash_of("tok-d", h);
	memset(pk, 9, sizeof(pk));
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(enroll("@dan", "tok-d", 8, NOW), NP_OK);
	ck_assert_int_eq(np_store_batch_end(st, 1), NP_OK);
	ck_assert_int_eq(np_store_enroll(other, "@dan", h, pk, NOW),
			 NP_ERR_TOKEN);
	np_store_close(other);
}
END_TEST

static void
pg_ctl(const char *what)
{
	char cmd[1024];
	const char *ctl = getenv("NP_TEST_PG_CTL");

	ck_assert_ptr_nonnull(ctl);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", ctl, what);
	ck_assert_int_eq(system(cmd), 0);
}

/* Retry count until the store is back (reconnects are 1 s apart). */
static void
wait_back(struct np_store *s)
{
	int64_t c;
	int i, r = NP_ERR_IO;

	for (i = 0; i < 100 && r != NP_OK; i++) {
		if ((r = np_store_box_count(s, "@bob", &c)) != NP_OK) {
			ck_assert_int_eq(r, NP_ERR_IO);
			usleep(100 * 1000);
		}
	}
	ck_assert_int_eq(r, NP_OK);
}

START_TEST(test_pg_reconnect)
{
	struct seen w;
	int64_t c = -1;
	int changed = 0;

	if (getenv("NP_TEST_PG_CTL") == NULL) {
		return; /* a server we cannot restart */
	}
	make_ident("@bob", 2);
	ck_assert_int_eq(put_tagged("@bob", 1, NULL, NULL), NP_OK);

	/* Down: calls fail cleanly, a batch is lost and reported failed. */
	ck_assert_int_eq(np_store_batch_begin(st), NP_OK);
	ck_assert_int_eq(put_tagged("@bob", 2, NULL, NULL), NP_OK);
	pg_ctl("stop");
	ck_assert_int_eq(put_tagged("@bob", 3, NULL, NULL), NP_ERR_IO);
	ck_assert_int_eq(put_tagged("@bob", 4, NULL, NULL), NP_ERR_IO);
	ck_assert_int_ne(np_store_batch_end(st, 1), NP_OK);
	ck_assert_int_eq(np_store_in_batch(st), 0);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_ERR_IO);
	ck_assert_int_eq(np_store_watch_fd(st), -1);
	ck_assert_int_eq(np_store_watch_read(st, seen_cb, &w, &changed),
			 NP_ERR_IO);

	/* Up again: the store reconnects, nothing of the batch was kept,
	 * and the watch says "re-check everyone". */
	pg_ctl("start");
	wait_back(st);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_OK);
	ck_assert_int_eq(c, 1);
	ck_assert_int_ge(np_store_watch_fd(st), 0);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(np_store_watch_read(st, seen_cb, &w, &changed), NP_OK);
	ck_assert_int_eq(w.all, 1);
	ck_assert_int_eq(changed, 1);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(np_store_watch_read(st, seen_cb, &w, &changed), NP_OK);
	ck_assert_int_eq(w.all, 0);
	ck_assert_int_eq(changed, 0);

	/* pg_ctl restart: the first call fails, later ones work, and the
	 * LISTEN was renewed: another handle's box is seen. */
	pg_ctl("restart");
	ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_ERR_IO);
	wait_back(st);
	ck_assert_int_eq(np_store_watch_read(st, seen_cb, &w, &changed), NP_OK);
	{
		struct np_store *other = NULL;
		struct np_store *keep = st;

		ck_assert_int_eq(np_store_open(path, 0, &other), NP_OK);
		st = other;
		ck_assert_int_eq(put_tagged("@bob", 5, NULL, NULL), NP_OK);
		st = keep;
		np_store_close(other);
	}
	watch(st, &w, &changed);
	ck_assert_str_eq(w.what, "@bob/;");
	ck_assert_int_eq(put_tagged("@bob", 6, NULL, NULL), NP_OK);
	ck_assert_int_eq(np_store_box_count(st, "@bob", &c), NP_OK);
	ck_assert_int_eq(c, 3);
}
END_TEST

/* The tests both backends run; fixture chooses the backend. */
/* check keeps the pointer to a case's name and never frees it: the
 * names live here, four per backend. */
static char case_names[8][32];
static size_t ncase_names;

static const char *
case_name(const char *be, const char *what)
{
	char *n = case_names[ncase_names++ % 8];

	snprintf(n, sizeof(case_names[0]), "%s-%s", be, what);
	return n;
}

static void
add_common(Suite *s, const char *be, SFun su, SFun td)
{
	TCase *tc;

	tc = tcase_create(case_name(be, "open"));
	tcase_add_checked_fixture(tc, su, td);
	tcase_add_test(tc, test_open_create_twice);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_data_version);
	suite_add_tcase(s, tc);

	tc = tcase_create(case_name(be, "enroll"));
	tcase_add_checked_fixture(tc, su, td);
	tcase_add_test(tc, test_enroll_good);
	tcase_add_test(tc, test_enroll_token_twice);
	tcase_add_test(tc, test_enroll_wrong_token);
	tcase_add_test(tc, test_enroll_expired_token);
	tcase_add_test(tc, test_enroll_bound_name);
	tcase_add_test(tc, test_enroll_bad_name);
	tcase_add_test(tc, test_revoke_reenroll);
	suite_add_tcase(s, tc);

	tc = tcase_create(case_name(be, "rotate"));
	tcase_add_checked_fixture(tc, su, td);
	tcase_add_test(tc, test_rotation_chain);
	tcase_add_test(tc, test_rotation_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create(case_name(be, "boxes"));
	tcase_add_checked_fixture(tc, su, td);
	tcase_add_test(tc, test_box_order_ack);
	tcase_add_test(tc, test_box_duplicate);
	tcase_add_test(tc, test_box_queue_bound);
	tcase_add_test(tc, test_box_bad_input);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_box_tags);
	tcase_add_test(tc, test_box_tag_bad);
	tcase_add_test(tc, test_batch_commit);
	tcase_add_test(tc, test_batch_rollback);
	suite_add_tcase(s, tc);
}

static Suite *
sqlite_suite(void)
{
	Suite *s = suite_create("store-sqlite");
	TCase *tc;

	add_common(s, "sqlite", setup, teardown);
	tc = tcase_create("sqlite-own");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_open_not_a_store);
	tcase_add_test(tc, test_migrate_v1);
	tcase_add_test(tc, test_unknown_version);
	tcase_add_test(tc, test_sqlite_watch);
	tcase_add_test(tc, test_redact);
	suite_add_tcase(s, tc);
	return s;
}

static Suite *
pg_suite(void)
{
	Suite *s = suite_create("store-pg");
	TCase *tc;

	add_common(s, "pg", setup_pg, teardown_pg);
	tc = tcase_create("pg-own");
	tcase_add_checked_fixture(tc, setup_pg, teardown_pg);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pg_no_schema);
	tcase_add_test(tc, test_pg_unknown_version);
	tcase_add_test(tc, test_pg_unreachable);
	tcase_add_test(tc, test_pg_two_instances);
	tcase_add_test(tc, test_pg_seq_order);
	tcase_add_test(tc, test_pg_token_race);
	tcase_add_test(tc, test_pg_reconnect);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sqlite_suite());
	int failed;

	pg_uri = getenv("NP_TEST_PG_URI");
	if (pg_uri != NULL && *pg_uri != '\0') {
		srunner_add_suite(sr, pg_suite());
	} else {
		/* scripts/run-tests counts this line as a skip */
		printf("skip: store-pg: NP_TEST_PG_URI is not set (no "
		       "PostgreSQL to test against: tests/pglib.sh)\n");
		fflush(stdout);
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
