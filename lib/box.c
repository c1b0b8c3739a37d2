/*
 * End-to-end boxes: seal, open, the strict plaintext parser and the
 * replay cache of message ids.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "log.h"

#define BOX_JSON_DEPTH 8
#define BOX_NMEMBERS 9

/* ---- message ids and field syntax ---- */

int
np_mid_new(char out[NP_MID_LEN + 1])
{
	uint8_t rb[NP_MID_LEN / 2];

	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(out, NP_MID_LEN + 1, rb, sizeof(rb));
	return NP_OK;
}

int
np_mid_valid(const char *s)
{
	size_t i;

	if (s == NULL) {
		return 0;
	}
	for (i = 0; i < NP_MID_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[NP_MID_LEN] == '\0';
}

int
np_box_type_valid(const char *s)
{
	size_t i;
	char c;

	if (s == NULL || *s == '\0') {
		return 0;
	}
	for (i = 0; (c = s[i]) != '\0'; i++) {
		if (i >= NP_BOX_TYPE_MAX) {
			return 0;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-')) {
			return 0;
		}
	}
	return 1;
}

static int
session_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= NP_BOX_SESSION_MAX || s[i] < 0x20 || s[i] > 0x7e) {
			return 0;
		}
	}
	return 1;
}

/* ---- plaintext ---- */

void
np_box_msg_free(struct np_box_msg *m)
{
	if (m == NULL) {
		return;
	}
	free(m->type);
	free(m->from);
	free(m->to);
	free(m->session);
	json_object_put(m->body);
	free(m);
}

static const struct {
	const char *name;
	json_type type;
} box_members[BOX_NMEMBERS] = {
	{ "v", json_type_int },
	{ "type", json_type_string },
	{ "from", json_type_string },
	{ "to", json_type_string },
	{ "session", json_type_string },
	{ "ts", json_type_int },
	{ "ttl", json_type_int },
	{ "id", json_type_string },
	{ "body", json_type_object },
};

/* Exactly the nine members, each with its JSON type. */
static int
check_members(struct json_object *o)
{
	struct json_object *v;
	size_t i;

	if (!json_object_is_type(o, json_type_object) ||
	    json_object_object_length(o) != BOX_NMEMBERS) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < BOX_NMEMBERS; i++) {
		if (!json_object_object_get_ex(o, box_members[i].name, &v) ||
		    !json_object_is_type(v, box_members[i].type)) {
			return NP_ERR_INVALID;
		}
	}
	return NP_OK;
}

/* A string member without NUL inside, copied. */
static int
dup_str(struct json_object *o, const char *key, char **out)
{
	struct json_object *v;
	const char *s;
	size_t len;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v)) {
		return NP_ERR_INVALID;
	}
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (s == NULL || strlen(s) != len) {
		return NP_ERR_INVALID;
	}
	if ((*out = strdup(s)) == NULL) {
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
    int64_t *out)
{
	struct json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(o, key, &v)) {
		return NP_ERR_INVALID;
	}
	errno = 0;
	x = json_object_get_int64(v);
	if (errno != 0 || x < min || x > max) {
		return NP_ERR_INVALID;
	}
	*out = x;
	return NP_OK;
}

static int
msg_strings(struct json_object *o, struct np_box_msg *m)
{
	char *id = NULL;
	int r;

	if ((r = dup_str(o, "type", &m->type)) != NP_OK ||
	    (r = dup_str(o, "from", &m->from)) != NP_OK ||
	    (r = dup_str(o, "to", &m->to)) != NP_OK ||
	    (r = dup_str(o, "session", &m->session)) != NP_OK ||
	    (r = dup_str(o, "id", &id)) != NP_OK) {
		return r;
	}
	r = NP_ERR_INVALID;
	if (np_box_type_valid(m->type) && np_ident_valid(m->from) &&
	    np_ident_valid(m->to) && session_valid(m->session) &&
	    np_mid_valid(id)) {
		memcpy(m->id, id, sizeof(m->id));
		r = NP_OK;
	}
	free(id);
	return r;
}

static int
msg_from_json(struct json_object *o, struct np_box_msg **out)
{
	struct np_box_msg *m;
	struct json_object *body;
	int64_t v, ts, ttl;
	int r;

	if ((r = check_members(o)) != NP_OK) {
		return r;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = get_int(o, "v", 1, 1, &v)) != NP_OK ||
	    (r = get_int(o, "ts", 0, NP_BOX_TS_MAX, &ts)) != NP_OK ||
	    (r = get_int(o, "ttl", 0, UINT32_MAX, &ttl)) != NP_OK ||
	    (r = msg_strings(o, m)) != NP_OK) {
		goto out;
	}
	m->ts = ts;
	m->ttl = (uint32_t)ttl;
	json_object_object_get_ex(o, "body", &body);
	m->body = json_object_get(body);
	*out = m;
	m = NULL;
out:
	np_box_msg_free(m);
	return r;
}

/* ---- wiping json-c's copies of secrets ---- */

static char wipe_marker; /* address used as a tag only */

static void
wipe_string(struct json_object *o, void *userdata)
{
	const char *s = json_object_get_string(o);
	int n = json_object_get_string_len(o);

	if (userdata == &wipe_marker && s != NULL && n > 0) {
		sodium_memzero((char *)s, (size_t)n);
	}
}

void
np_json_wipe_on_free(struct json_object *o)
{
	size_t i, n;

	switch (json_object_get_type(o)) {
	case json_type_string:
		/* Setting userdata again would run the old hook (a wipe) now:
		 * mark wiped strings so a second call leaves them alone. */
		if (json_object_get_userdata(o) != &wipe_marker) {
			json_object_set_userdata(o, &wipe_marker, wipe_string);
		}
		break;
	case json_type_object: {
		json_object_object_foreach(o, key, v) {
			(void)key;
			np_json_wipe_on_free(v);
		}
		break;
	}
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++) {
			np_json_wipe_on_free(json_object_array_get_idx(o, i));
		}
		break;
	default:
		break;
	}
}

/*
 * The tokener copies every string it reads into its printbuf.  Size that
 * buffer for the whole input up front, so it never moves (a realloc would
 * leave a copy of a secret behind), and wipe it before freeing.  The
 * struct is published in json_tokener.h; json-c has no accessor.
 */
static struct json_tokener *
tokener_new(size_t len)
{
	struct json_tokener *tok;

	if ((tok = json_tokener_new_ex(BOX_JSON_DEPTH)) == NULL) {
		return NULL;
	}
	if (printbuf_memset(tok->pb, 0, 0, (int)len + 1) < 0) {
		json_tokener_free(tok);
		return NULL;
	}
	printbuf_reset(tok->pb);
	return tok;
}

static void
tokener_free(struct json_tokener *tok)
{
	if (tok == NULL) {
		return;
	}
	if (tok->pb != NULL && tok->pb->buf != NULL && tok->pb->size > 0) {
		sodium_memzero(tok->pb->buf, (size_t)tok->pb->size);
	}
	json_tokener_free(tok);
}

int
np_box_parse_plain(const uint8_t *p, size_t len, struct np_box_msg **out)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;
	int r = NP_ERR_INVALID;

	*out = NULL;
	if (len > NP_BOX_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (len == 0 || len > INT32_MAX || memchr(p, '\0', len) != NULL) {
		return NP_ERR_INVALID;
	}
	if ((tok = tokener_new(len)) == NULL) {
		return NP_ERR_ALLOC;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, (const char *)p, (int)len);
	if (o != NULL) {
		/* Every string (the body may hold a private key) is wiped
		 * when its last reference goes, on every path. */
		np_json_wipe_on_free(o);
	}
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		goto out;
	}
	r = msg_from_json(o, out);
out:
	json_object_put(o);
	tokener_free(tok);
	return r;
}

/* ---- seal ---- */

static int
add_member(struct json_object *o, const char *key, struct json_object *v)
{
	if (v == NULL) {
		return NP_ERR_ALLOC;
	}
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
add_str(struct json_object *o, const char *key, const char *v)
{
	return add_member(o, key, json_object_new_string(v));
}

static int
add_int(struct json_object *o, const char *key, int64_t v)
{
	return add_member(o, key, json_object_new_int64(v));
}

static int
build_plain(const char *from, const char *to, const char *type,
    const char *session, struct json_object *body, uint32_t ttl,
    int64_t now_ms, const char *mid, struct json_object **out)
{
	struct json_object *o;
	int r;

	*out = NULL;
	if ((o = json_object_new_object()) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = add_int(o, "v", 1)) != NP_OK ||
	    (r = add_str(o, "type", type)) != NP_OK ||
	    (r = add_str(o, "from", from)) != NP_OK ||
	    (r = add_str(o, "to", to)) != NP_OK ||
	    (r = add_str(o, "session", session)) != NP_OK ||
	    (r = add_int(o, "ts", now_ms)) != NP_OK ||
	    (r = add_int(o, "ttl", ttl)) != NP_OK ||
	    (r = add_str(o, "id", mid)) != NP_OK ||
	    (r = add_member(o, "body", body == NULL ?
	    json_object_new_object() : json_object_get(body))) != NP_OK) {
		json_object_put(o);
		return r;
	}
	*out = o;
	return NP_OK;
}

static int
seal_args_valid(const char *to, const char *type, const char *session,
    struct json_object *body, uint32_t ttl, int64_t now_ms, const char *mid)
{
	if (!np_ident_valid(to) || !np_box_type_valid(type) ||
	    !session_valid(session) || ttl < 1 || ttl > NP_BOX_MAX_TTL ||
	    now_ms < 0 || now_ms > NP_BOX_TS_MAX ||
	    (mid != NULL && !np_mid_valid(mid)) ||
	    (body != NULL && !json_object_is_type(body, json_type_object))) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

static int
encrypt_into(const struct np_key *sender, const uint8_t to_pk[NP_PK_LEN],
    const char *pt, size_t ptlen, struct np_buf *out)
{
	uint8_t xpk[crypto_box_PUBLICKEYBYTES], *dst;
	size_t n;
	int r;

	if (ptlen > NP_BOX_MAX - NP_BOX_OVERHEAD) {
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_pk_box_pk(to_pk, xpk)) != NP_OK) {
		return r;
	}
	n = NP_BOX_OVERHEAD + ptlen;
	if ((r = np_buf_reserve(out, n, &dst)) != NP_OK) {
		return r;
	}
	randombytes_buf(dst, NP_BOX_NONCE_LEN);
	if (crypto_box_easy(dst + NP_BOX_NONCE_LEN, (const uint8_t *)pt,
	    ptlen, dst, xpk, np_key_box_sk(sender)) != 0) {
		np_buf_unreserve(out, n);
		return NP_ERR_CRYPTO;
	}
	return NP_OK;
}

int
np_box_seal(const struct np_key *sender, const uint8_t to_pk[NP_PK_LEN],
    const char *to, const char *type, const char *session,
    struct json_object *body, uint32_t ttl, int64_t now_ms, const char *mid,
    struct np_buf *out, char mid_out[NP_MID_LEN + 1])
{
	struct json_object *o = NULL;
	char id[NP_MID_LEN + 1];
	const char *pt = NULL;
	size_t ptlen = 0;
	int r;

	if (session == NULL) {
		session = "";
	}
	if ((r = np_crypto_init()) != NP_OK ||
	    (r = seal_args_valid(to, type, session, body, ttl, now_ms,
	    mid)) != NP_OK) {
		return r;
	}
	if (mid != NULL) {
		memcpy(id, mid, sizeof(id));
	} else if ((r = np_mid_new(id)) != NP_OK) {
		return r;
	}
	if ((r = build_plain(np_key_name(sender), to, type, session, body, ttl,
	    now_ms, id, &o)) != NP_OK) {
		return r;
	}
	pt = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN,
	    &ptlen);
	if (pt == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = encrypt_into(sender, to_pk, pt, ptlen, out)) != NP_OK) {
		goto out;
	}
	if (mid_out != NULL) {
		memcpy(mid_out, id, sizeof(id));
	}
out:
	if (pt != NULL) {
		/* The body may hold secrets: wipe json-c's string. */
		sodium_memzero((char *)pt, ptlen);
	}
	json_object_put(o);
	return r;
}

/* ---- open ---- */

static int
decrypt(const struct np_key *me, const uint8_t from_pk[NP_PK_LEN],
    const uint8_t *box, size_t len, uint8_t *pt)
{
	uint8_t xpk[crypto_box_PUBLICKEYBYTES];

	if (np_pk_box_pk(from_pk, xpk) != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if (crypto_box_open_easy(pt, box + NP_BOX_NONCE_LEN,
	    len - NP_BOX_NONCE_LEN, box, xpk, np_key_box_sk(me)) != 0) {
		return NP_ERR_CRYPTO;
	}
	return NP_OK;
}

static int
check_routing(const struct np_box_msg *m, const struct np_key *me,
    const char *outer_from, const char *outer_mid)
{
	if (outer_from == NULL || strcmp(m->from, outer_from) != 0 ||
	    strcmp(m->to, np_key_name(me)) != 0 ||
	    (outer_mid != NULL && strcmp(m->id, outer_mid) != 0)) {
		return NP_ERR_WRONG_PEER;
	}
	return NP_OK;
}

/* End of the acceptance window: ts + ttl + skew. */
static int64_t
msg_until(const struct np_box_msg *m)
{
	return m->ts + (int64_t)m->ttl * 1000 + NP_BOX_SKEW_MS;
}

static int
check_time(const struct np_box_msg *m, int64_t now_ms)
{
	if (m->ttl > NP_BOX_MAX_TTL || m->ts > now_ms + NP_BOX_SKEW_MS ||
	    now_ms > msg_until(m)) {
		return NP_ERR_STALE;
	}
	return NP_OK;
}

/* Decryption, plaintext and routing: everything but time and replay. */
static int
open_routed(const struct np_key *me, const uint8_t from_pk[NP_PK_LEN],
    const char *outer_from, const char *outer_mid, const uint8_t *box,
    size_t len, struct np_box_msg **out)
{
	struct np_box_msg *m = NULL;
	uint8_t *pt = NULL;
	size_t ptlen;
	int r;

	*out = NULL;
	if (len > NP_BOX_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (len < NP_BOX_OVERHEAD) {
		return NP_ERR_TRUNCATED;
	}
	if ((r = np_crypto_init()) != NP_OK) {
		return r;
	}
	ptlen = len - NP_BOX_OVERHEAD;
	if ((pt = sodium_malloc(ptlen + 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = decrypt(me, from_pk, box, len, pt)) != NP_OK) {
		goto out;
	}
	if ((r = np_box_parse_plain(pt, ptlen, &m)) != NP_OK) {
		r = r == NP_ERR_ALLOC ? r : NP_ERR_INVALID;
		goto out;
	}
	if ((r = check_routing(m, me, outer_from, outer_mid)) != NP_OK) {
		goto out;
	}
	*out = m;
	m = NULL;
out:
	sodium_free(pt); /* wipes */
	np_box_msg_free(m);
	return r;
}

int
np_box_open(const struct np_key *me, const uint8_t from_pk[NP_PK_LEN],
    const char *outer_from, const char *outer_mid, const uint8_t *box,
    size_t len, int64_t now_ms, struct np_replay *rc,
    struct np_box_msg **out)
{
	struct np_box_msg *m = NULL;
	int r;

	*out = NULL;
	if ((r = open_routed(me, from_pk, outer_from, outer_mid, box, len,
	    &m)) != NP_OK || (r = check_time(m, now_ms)) != NP_OK) {
		goto out;
	}
	if (rc != NULL && (r = np_replay_check_add(rc, m->id, msg_until(m),
	    now_ms)) != NP_OK) {
		goto out;
	}
	*out = m;
	m = NULL;
out:
	np_box_msg_free(m);
	return r;
}

int
np_box_open_stale(const struct np_key *me, const uint8_t from_pk[NP_PK_LEN],
    const char *outer_from, const char *outer_mid, const uint8_t *box,
    size_t len, int64_t now_ms, struct np_box_msg **out)
{
	struct np_box_msg *m = NULL;
	int r;

	*out = NULL;
	if ((r = open_routed(me, from_pk, outer_from, outer_mid, box, len,
	    &m)) != NP_OK) {
		return r;
	}
	/* Only a box that is out of its window for its timestamp alone. */
	if (m->ttl > NP_BOX_MAX_TTL || check_time(m, now_ms) != NP_ERR_STALE) {
		np_box_msg_free(m);
		return NP_ERR_INVALID;
	}
	*out = m;
	return NP_OK;
}

int64_t
np_box_clock_off_ms(const struct np_box_msg *m, int64_t now_ms)
{
	return m->ts - now_ms;
}

void
np_box_off_text(int64_t off_ms, char *buf, size_t len)
{
	int64_t a = off_ms < 0 ? -off_ms : off_ms;

	/* Whole seconds, rounded; "0 s" only for sub-second offsets. */
	snprintf(buf, len, "%lld s %s", (long long)((a + 500) / 1000),
	    off_ms < 0 ? "behind" : "ahead of");
}

/* ---- replay cache ---- */

#define REPLAY_LINE_MAX 56 /* mid, space, up to 19 digits, newline */
#define REPLAY_COMPACT_MIN 64

struct replay_ent {
	char mid[NP_MID_LEN + 1];
	int64_t until;
};

struct np_replay {
	struct replay_ent *v;
	size_t n;
	size_t max;
	int fd;		   /* append fd of the persisted file, or -1 */
	char *path;
	size_t file_lines; /* lines in the file */
	int dirty;	   /* a write failed: the file may end mid-line */
};

struct np_replay *
np_replay_new(size_t max_entries)
{
	struct np_replay *rc;

	if (max_entries == 0 || max_entries > (1U << 24)) {
		return NULL;
	}
	if ((rc = calloc(1, sizeof(*rc))) == NULL) {
		return NULL;
	}
	if ((rc->v = calloc(max_entries, sizeof(*rc->v))) == NULL) {
		free(rc);
		return NULL;
	}
	rc->max = max_entries;
	rc->fd = -1;
	return rc;
}

void
np_replay_free(struct np_replay *rc)
{
	if (rc == NULL) {
		return;
	}
	if (rc->fd != -1) {
		close(rc->fd);
	}
	free(rc->path);
	free(rc->v);
	free(rc);
}

size_t
np_replay_count(const struct np_replay *rc)
{
	return rc->n;
}

static void
replay_purge(struct np_replay *rc, int64_t now_ms)
{
	size_t i, j;

	for (i = j = 0; i < rc->n; i++) {
		if (rc->v[i].until >= now_ms) {
			rc->v[j++] = rc->v[i];
		}
	}
	rc->n = j;
}

static int
replay_find(const struct np_replay *rc, const char *mid)
{
	size_t i;

	for (i = 0; i < rc->n; i++) {
		if (memcmp(rc->v[i].mid, mid, NP_MID_LEN) == 0) {
			return 1;
		}
	}
	return 0;
}

static int
replay_line(const struct replay_ent *e, char line[REPLAY_LINE_MAX])
{
	int n;

	n = snprintf(line, REPLAY_LINE_MAX, "%s %lld\n", e->mid,
	    (long long)e->until);
	return n < 0 || n >= REPLAY_LINE_MAX ? -1 : n;
}

/* Rewrite the file with the live entries and reopen it for appends. */
static int
replay_compact(struct np_replay *rc)
{
	struct np_buf *b;
	char line[REPLAY_LINE_MAX];
	struct stat st;
	size_t i;
	int n, fd, r = NP_OK;

	if ((b = np_buf_new(rc->n * REPLAY_LINE_MAX + 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < rc->n && r == NP_OK; i++) {
		if ((n = replay_line(&rc->v[i], line)) < 0) {
			r = NP_ERR_INTERNAL;
		} else {
			r = np_buf_put(b, line, (size_t)n);
		}
	}
	if (r == NP_OK) {
		r = np_file_write_atomic(rc->path, np_buf_ptr(b),
		    np_buf_len(b), 1);
	}
	np_buf_free(b);
	if (r != NP_OK) {
		return r;
	}
	fd = open(rc->path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd < 0) {
		return NP_ERR_SYSTEM;
	}
	/* What we opened must be the regular file we just wrote. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		close(fd);
		return NP_ERR_PERM;
	}
	if (rc->fd != -1) {
		close(rc->fd);
	}
	rc->fd = fd;
	rc->file_lines = rc->n;
	rc->dirty = 0;
	return NP_OK;
}

static int
replay_append(struct np_replay *rc, const struct replay_ent *e)
{
	char line[REPLAY_LINE_MAX];
	ssize_t w;
	int n;

	if ((n = replay_line(e, line)) < 0) {
		return NP_ERR_INTERNAL;
	}
	/*
	 * After a failed (maybe short) write, appending would glue this
	 * entry onto a partial line and lose it on the next load: rewrite
	 * the file from memory first (it holds e already).
	 */
	if (rc->dirty) {
		return replay_compact(rc);
	}
	do {
		w = write(rc->fd, line, (size_t)n);
	} while (w < 0 && errno == EINTR);
	if (w != n || fsync(rc->fd) != 0) {
		rc->dirty = 1;
		return NP_ERR_SYSTEM;
	}
	rc->file_lines++;
	if (rc->file_lines >= REPLAY_COMPACT_MIN &&
	    rc->file_lines > 2 * rc->n) {
		if ((n = replay_compact(rc)) != NP_OK) {
			np_warn_r(n, "compacting %s", rc->path);
		}
	}
	return NP_OK;
}

int
np_replay_check_add(struct np_replay *rc, const char *mid, int64_t until_ms,
    int64_t now_ms)
{
	struct replay_ent *e;
	int r;

	if (!np_mid_valid(mid)) {
		return NP_ERR_INVALID;
	}
	replay_purge(rc, now_ms);
	if (replay_find(rc, mid)) {
		return NP_ERR_REPLAY;
	}
	if (until_ms < now_ms) {
		return NP_OK; /* already outside its window: nothing to keep */
	}
	if (rc->n >= rc->max) {
		return NP_ERR_LIMIT;
	}
	e = &rc->v[rc->n];
	memcpy(e->mid, mid, sizeof(e->mid));
	e->until = until_ms;
	rc->n++;
	if (rc->fd != -1 && (r = replay_append(rc, e)) != NP_OK) {
		rc->n--; /* not durable: let a redelivery try again */
		return r;
	}
	return NP_OK;
}

/* "mid until\n" -> entry; 0 on success, -1 on garbage. */
static int
replay_parse_line(const char *s, size_t len, struct replay_ent *e)
{
	size_t i;
	int64_t v = 0;

	if (len < NP_MID_LEN + 2 || len > NP_MID_LEN + 1 + 18 ||
	    s[NP_MID_LEN] != ' ') {
		return -1;
	}
	memcpy(e->mid, s, NP_MID_LEN);
	e->mid[NP_MID_LEN] = '\0';
	if (!np_mid_valid(e->mid)) {
		return -1;
	}
	for (i = NP_MID_LEN + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	e->until = v;
	return 0;
}

void
np_replay_load(struct np_replay *rc, const uint8_t *p, size_t len,
    int64_t now_ms)
{
	const uint8_t *end = p + len, *nl;
	struct replay_ent e;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			nl = end;
		}
		if (replay_parse_line((const char *)p, (size_t)(nl - p),
		    &e) == 0 && e.until >= now_ms && rc->n < rc->max &&
		    !replay_find(rc, e.mid)) {
			rc->v[rc->n++] = e;
		}
		p = nl + (nl < end);
	}
}

static int64_t
now_ms_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
np_replay_persist(struct np_replay *rc, const char *path)
{
	struct np_buf *b = NULL;
	size_t cap;
	int r;

	if (rc->fd != -1 || path == NULL) {
		return NP_ERR_INVALID;
	}
	if ((rc->path = strdup(path)) == NULL) {
		return NP_ERR_ALLOC;
	}
	cap = (4 * rc->max + 1024) * REPLAY_LINE_MAX;
	if (cap >= NP_BUF_MAX_CAP) {
		cap = NP_BUF_MAX_CAP - 1;
	}
	r = np_file_read_checked(path, cap, 022, 0, &b);
	if (r == NP_OK) {
		np_replay_load(rc, np_buf_ptr(b), np_buf_len(b),
		    now_ms_real());
	} else if (r != NP_ERR_NOT_FOUND) {
		goto out;
	}
	r = replay_compact(rc);
out:
	np_buf_free(b);
	if (r != NP_OK) {
		free(rc->path);
		rc->path = NULL;
	}
	return r;
}
