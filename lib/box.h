/*
 * End-to-end boxes (docs/PROTOCOL.md "End-to-end boxes"):
 *   box = nonce(24) || crypto_box_easy(json, nonce, to_x25519_pk,
 *                                      from_x25519_sk)
 * The plaintext is one JSON object
 *   {"v":1,"type":STR,"from":"@a","to":"@b","session":STR,"ts":MS,
 *    "ttl":S,"id":MID,"body":{...}}
 * and a replay cache remembers message ids until their window ends.
 */
#ifndef NP_BOX_H
#define NP_BOX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"

struct json_object;

#define NP_BOX_MAX (48 * 1024)	 /* max sealed box bytes */
#define NP_BOX_NONCE_LEN 24
#define NP_BOX_OVERHEAD (24 + 16) /* nonce + MAC */
#define NP_BOX_SKEW_MS 30000
#define NP_BOX_MAX_TTL 604800	 /* seconds, 7 days */
#define NP_BOX_TYPE_MAX 32	 /* [a-z0-9_.-]{1,32} */
#define NP_BOX_SESSION_MAX 64	 /* printable ASCII, may be empty */
#define NP_BOX_TS_MAX ((int64_t)1 << 53)
#define NP_MID_LEN 32		 /* hex digits */
#define NP_REPLAY_DEFAULT 65536	 /* a sensible np_replay_new() size */

struct np_box_msg {
	char *type;
	char *from;
	char *to;
	char *session;
	int64_t ts;
	uint32_t ttl;
	char id[NP_MID_LEN + 1];
	struct json_object *body; /* owned reference */
};

struct np_replay;

/* 16 random bytes as 32 lowercase hex digits. */
int np_mid_new(char out[NP_MID_LEN + 1]);
/* 1 if s is exactly 32 lowercase hex digits. */
int np_mid_valid(const char *s);
/* 1 if s is a valid message type ([a-z0-9_.-]{1,32}). */
int np_box_type_valid(const char *s);

/*
 * Seal a message from sender to (to, to_pk) and append the box to out.
 * session NULL means "", body NULL means {} (body is borrowed), mid NULL
 * means a fresh one; the mid used is copied to mid_out when not NULL.
 * ttl must be 1..NP_BOX_MAX_TTL.  NP_ERR_TOO_BIG when the box would
 * exceed NP_BOX_MAX.
 */
int np_box_seal(const struct np_key *sender, const uint8_t to_pk[NP_PK_LEN],
    const char *to, const char *type, const char *session,
    struct json_object *body, uint32_t ttl, int64_t now_ms, const char *mid,
    struct np_buf *out, char mid_out[NP_MID_LEN + 1]);

/*
 * Open a box from outer_from (the server-recorded sender, whose pinned key
 * is from_pk) to me.  Checks, in order, with distinct codes:
 *   length (NP_ERR_TOO_BIG / NP_ERR_TRUNCATED), decryption
 *   (NP_ERR_CRYPTO), plaintext (NP_ERR_INVALID), from/to/id against the
 *   routing (NP_ERR_WRONG_PEER; outer_mid NULL: id not checked), ttl and
 *   ts window (NP_ERR_STALE), replay (NP_ERR_REPLAY, or NP_ERR_LIMIT when
 *   the cache is full; rc NULL: no replay check).
 */
int np_box_open(const struct np_key *me, const uint8_t from_pk[NP_PK_LEN],
    const char *outer_from, const char *outer_mid, const uint8_t *box,
    size_t len, int64_t now_ms, struct np_replay *rc,
    struct np_box_msg **out);

/*
 * For diagnostics only, after np_box_open() said NP_ERR_STALE: the same
 * checks (decryption with the sender's key, plaintext, from/to/id against
 * the routing) without the time window and the replay cache.  NP_OK only
 * for a box that is authentic and outside its window because of its ts
 * (a box inside its window, or with a ttl above NP_BOX_MAX_TTL, gives
 * NP_ERR_INVALID), so it cannot serve as a way around the window.  The
 * message must never be acted on (no session started, no key used, no
 * reply trusted): a caller may only derive a diagnostic from it, e.g. the
 * sender's clock offset, or refuse the request it carries.
 */
int np_box_open_stale(const struct np_key *me,
    const uint8_t from_pk[NP_PK_LEN], const char *outer_from,
    const char *outer_mid, const uint8_t *box, size_t len, int64_t now_ms,
    struct np_box_msg **out);
/*
 * How far the sender's clock, as the box's ts shows it, is from now:
 * ts - now_ms (> 0: ahead; < 0: behind, which includes the time the box
 * spent in transit or queued).
 */
int64_t np_box_clock_off_ms(const struct np_box_msg *m, int64_t now_ms);
/* "N s ahead of" / "N s behind" for an offset (whole seconds, rounded). */
void np_box_off_text(int64_t off_ms, char *buf, size_t len);

/*
 * Mark every string under o (objects and arrays, recursively) to be wiped
 * with sodium_memzero when json-c frees it, i.e. when its last reference
 * goes.  np_box_parse_plain() / np_box_open() do this for everything they
 * return (a body may hold a session private key); callers building a body
 * with secrets for np_box_seal() should call it on that body.
 */
void np_json_wipe_on_free(struct json_object *o);

/* Pure, strict parser of a box plaintext (fuzz target). */
int np_box_parse_plain(const uint8_t *p, size_t len, struct np_box_msg **out);
void np_box_msg_free(struct np_box_msg *m);

/* A replay cache holding at most max_entries live ids. */
struct np_replay *np_replay_new(size_t max_entries);
void np_replay_free(struct np_replay *rc);
/*
 * Remember mid until until_ms.  NP_ERR_REPLAY when it is already there,
 * NP_ERR_LIMIT when the cache is full of unexpired ids (live entries are
 * never evicted: that would allow replays).  Purges expired entries.
 * With a persisted cache the entry is on disk (fsync) before NP_OK.
 */
int np_replay_check_add(struct np_replay *rc, const char *mid,
    int64_t until_ms, int64_t now_ms);
/* Number of entries held (expired ones may linger until the next add). */
size_t np_replay_count(const struct np_replay *rc);
/*
 * Persist the cache in path (lines "mid until_ms", file 0600): loads the
 * unexpired entries already there, skipping garbage, then appends each new
 * entry (fflush + fsync), compacting the file when it grows past twice the
 * live entries.
 */
int np_replay_persist(struct np_replay *rc, const char *path);
/*
 * Add the live entries of replay-file text p[0..len) ("MID UNTIL_MS"
 * lines; garbage lines, expired and repeated ids skipped) to rc, up to
 * its size.  Pure: np_replay_persist's reader (fuzz target).
 */
void np_replay_load(struct np_replay *rc, const uint8_t *p, size_t len,
    int64_t now_ms);

#endif
