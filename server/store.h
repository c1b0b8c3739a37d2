/*
 * The control plane's storage: identities, their rotation chains,
 * one-time enrollment tokens (only their SHA-256) and the queued boxes.
 *
 * One narrow interface with plain C types and two backends behind it
 * (store.c dispatches): SQLite in store_sqlite.c, the default, and
 * PostgreSQL via libpq in store_pg.c, which several np-server instances
 * can share (the watch functions below tell one what the others did).
 * Identities are passed as "@name".  Times are milliseconds since the
 * epoch and are passed in by the caller, so expiry can be tested.
 * Every function returns NP_OK or a negative np_err code; on PostgreSQL
 * any of them can return NP_ERR_IO when the connection is lost (the next
 * call reconnects, at most one attempt a second).
 */
#ifndef NP_STORE_H
#define NP_STORE_H

#include <stddef.h>
#include <stdint.h>

#define NP_STORE_PK_LEN 32
#define NP_STORE_SIG_LEN 64
#define NP_STORE_HASH_LEN 32 /* SHA-256 of a token */
#define NP_STORE_ROT_MAX 16  /* rotation chain length kept */
#define NP_STORE_MID_MAX 32  /* 32 lowercase hex digits */
#define NP_STORE_BOX_MAX 49152
#define NP_STORE_FETCH_MAX 256 /* most boxes one fetch returns */
#define NP_STORE_TAG_MAX 32    /* reply tag: 1..32 of [a-z0-9] */

/* np_store_open() flags */
#define NP_STORE_CREATE 0x1 /* create a new database (fails if present) */

enum np_store_state {
	NP_STORE_ACTIVE = 1,
	NP_STORE_REVOKED = 2,
};

struct np_store;

struct np_store_rot {
	uint8_t old_pk[NP_STORE_PK_LEN];
	uint8_t new_pk[NP_STORE_PK_LEN];
	uint8_t sig[NP_STORE_SIG_LEN];
};

struct np_store_box {
	int64_t seq;	    /* assigned by the store */
	char recipient[64]; /* "@name" */
	char sender[64];    /* "@name" */
	char mid[NP_STORE_MID_MAX + 1];
	char tag[NP_STORE_TAG_MAX + 1]; /* "" when untagged */
	uint8_t *box; /* malloc'ed (fetch) or caller's (put) */
	size_t box_len;
	int64_t created_ms;
	int64_t expires_ms;
};

/* One row of np_store_list(). */
struct np_store_ident {
	const char *name;
	const uint8_t *pk; /* NP_STORE_PK_LEN bytes */
	int state;	   /* enum np_store_state */
	int64_t queued;
};
typedef int np_store_list_cb(const struct np_store_ident *id, void *arg);

/*
 * Open (or with NP_STORE_CREATE create) the database at path.  A path
 * that starts with "postgresql://" or "postgres://" is a libpq connection
 * URI and opens PostgreSQL (NP_STORE_CREATE creates the tables there,
 * NP_ERR_EXISTS when they are present; without them the open fails
 * saying to run np-server init); anything else is an SQLite file.  An
 * existing database must carry a schema version this code knows; an
 * older SQLite one is migrated in place (version 1 -> 2: boxes gain a
 * tag).
 */
int np_store_open(const char *path, int flags, struct np_store **out);
/* 1 when path names a PostgreSQL database (a connection URI). */
int np_store_is_uri(const char *path);
/*
 * path fit for a message: a URI's password (user:PASSWORD@, or a
 * password= parameter) replaced by "xxx".  Always NUL-terminated;
 * truncated to outlen.
 */
void np_store_redact(const char *path, char *out, size_t outlen);
/* "sqlite" or "postgresql" */
const char *np_store_backend(const struct np_store *s);
void np_store_close(struct np_store *s); /* NULL is fine */

/*
 * A batch: every call from np_store_batch_begin() to np_store_batch_end()
 * runs inside one transaction (each call still all or nothing, as a
 * savepoint), so many writes share one commit and one fsync.  Nothing of
 * the batch is durable, or visible to other processes, before
 * np_store_batch_end(s, 1) returns NP_OK; on any failure everything of
 * the batch is rolled back.  np_store_batch_end(s, 0) rolls back.
 * Batches do not nest (NP_ERR_INTERNAL).
 */
int np_store_batch_begin(struct np_store *s);
int np_store_batch_end(struct np_store *s, int commit);
int np_store_in_batch(const struct np_store *s);

/* pk and/or state may be NULL.  NP_ERR_NOT_FOUND. */
int np_store_identity_get(struct np_store *s, const char *name,
			  uint8_t pk[NP_STORE_PK_LEN], int *state);

/* Remember SHA-256(token) for name, valid until expires_ms. */
int np_store_token_add(struct np_store *s, const char *name,
		       const uint8_t hash[NP_STORE_HASH_LEN],
		       int64_t expires_ms, int64_t now_ms);

/*
 * In one transaction: find an unexpired token of name whose hash matches
 * (constant-time compare), refuse if name is active (NP_ERR_EXISTS), use
 * up the token, bind name to pk (replacing a revoked binding and its
 * rotation chain).  NP_ERR_TOKEN when no token matches.
 */
int np_store_enroll(struct np_store *s, const char *name,
		    const uint8_t hash[NP_STORE_HASH_LEN],
		    const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms);

/* Mark name revoked, drop its boxes and tokens.  NP_ERR_NOT_FOUND. */
int np_store_revoke(struct np_store *s, const char *name, int64_t now_ms);

/*
 * Append rot to name's chain (keeping the newest NP_STORE_ROT_MAX) and
 * bind name to rot->new_pk, if name is active (NP_ERR_REVOKED,
 * NP_ERR_NOT_FOUND) and rot->old_pk is its current key
 * (NP_ERR_KEY_CHANGED).  Signatures are the caller's to check.
 */
int np_store_rotate(struct np_store *s, const char *name,
		    const struct np_store_rot *rot, int64_t now_ms);
/* The chain, oldest first, into out[0..max); *n entries. */
int np_store_rot_get(struct np_store *s, const char *name,
		     struct np_store_rot *out, size_t max, size_t *n);

/*
 * Queue b (recipient, sender, mid, tag, box, created_ms, expires_ms);
 * b->tag is "" for an untagged box, otherwise 1..NP_STORE_TAG_MAX of
 * [a-z0-9] (NP_ERR_INVALID).  The
 * recipient must exist (NP_ERR_NOT_FOUND) and be active
 * (NP_ERR_REVOKED).  A duplicate (recipient, mid) is ignored: *dup = 1
 * and nothing changes.  When the recipient's queue then holds more than
 * queue_max boxes the oldest are deleted and counted in *dropped.
 * b->seq is set on a new insert.  dup and dropped may be NULL.
 */
int np_store_box_put(struct np_store *s, struct np_store_box *b,
		     int64_t queue_max, int *dup, int64_t *dropped);
/*
 * Unexpired boxes for recipient with seq > after whose tag matches (tag
 * NULL or "": untagged boxes only; otherwise only boxes with that tag),
 * in seq order, at most limit (capped at NP_STORE_FETCH_MAX).  *out is
 * an array of *n boxes to release with np_store_boxes_free().
 */
int np_store_box_fetch(struct np_store *s, const char *recipient,
		       const char *tag, int64_t after, size_t limit,
		       int64_t now_ms, struct np_store_box **out, size_t *n);
void np_store_boxes_free(struct np_store_box *v, size_t n);
/* Delete one box of recipient.  NP_ERR_NOT_FOUND when there was none. */
int np_store_box_ack(struct np_store *s, const char *recipient, int64_t seq);
/* Boxes queued for recipient (expired ones included until swept). */
int np_store_box_count(struct np_store *s, const char *recipient, int64_t *n);

/* Delete expired boxes and tokens; counts may be NULL. */
int np_store_expire(struct np_store *s, int64_t now_ms, int64_t *nboxes,
		    int64_t *ntokens);

/* Every identity in name order; a callback result other than NP_OK
 * stops the walk and is returned. */
int np_store_list(struct np_store *s, np_store_list_cb *cb, void *arg);

/*
 * *changed = 1 when another process committed since the last call
 * (SQLite: any commit; PostgreSQL: an identity change by another
 * instance, or a reconnect).
 */
int np_store_changed(struct np_store *s, int *changed);

/*
 * Watching what other np-server instances on the same database commit.
 *
 * np_store_watch_fd: an fd to watch for POLLIN: other instances' commits
 * (PostgreSQL LISTEN); -1 when the backend has none (SQLite: poll
 * np_store_changed on a timer) or while the connection is down.  The fd
 * can change after a reconnect: call again after np_store_watch_read
 * (and on the timer while it is -1).
 */
int np_store_watch_fd(struct np_store *s);
/*
 * Consume what arrived: cb(recipient, tag, arg) once per box
 * notification (tag "" for untagged), recipient NULL meaning "anything
 * may have changed: re-check everyone" (after a reconnect, or when more
 * arrived than one call reports); *changed = 1 when identities changed
 * (enroll/revoke/rotate) in another instance.  NP_OK even when nothing
 * was pending; NP_ERR_IO while the connection is down (each call tries
 * to reconnect, at most once a second).  Boxes this handle queued itself
 * are not reported.  cb may be NULL; it may call the store, but not
 * np_store_watch_read.
 */
typedef void np_store_box_cb(const char *recipient, const char *tag,
			     void *arg);
int np_store_watch_read(struct np_store *s, np_store_box_cb *cb, void *arg,
			int *changed);
/* 1 when box seq order is commit order (SQLite, one writer), 0 when not
 * (PostgreSQL: concurrent instances). */
int np_store_seq_ordered(const struct np_store *s);

#endif
