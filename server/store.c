/*
 * The store's public functions: the backend is chosen by the path
 * (a "postgresql://" or "postgres://" URI opens PostgreSQL, anything
 * else SQLite), arguments are checked here once for both backends, and
 * every call goes through the backend's table (store_int.h).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ident.h"
#include "msg.h"
#include "store_int.h"

static const char *const store_uri_schemes[] = {
    "postgresql://",
    "postgres://",
};

int
np_store_is_uri(const char *path)
{
	size_t i, n;

	for (i = 0; path != NULL && i < sizeof(store_uri_schemes) /
					    sizeof(store_uri_schemes[0]);
	     i++) {
		n = strlen(store_uri_schemes[i]);
		if (strncmp(path, store_uri_schemes[i], n) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Append s[0..n) to out (room outlen, used *len), always terminated. */
static void
put_n(char *out, size_t outlen, size_t *len, const char *s, size_t n)
{
	if (*len + 1 >= outlen) {
		return;
	}
	if (n > outlen - 1 - *len) {
		n = outlen - 1 - *len;
	}
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
}

/* The userinfo password: between the first ':' after "://" and the last
 * '@' before the query.  Returns its bounds, or 0 when there is none. */
int
np_store_uri_password(const char *path, size_t *from, size_t *to)
{
	const char *start, *q, *at = NULL, *colon, *p;

	if ((start = strstr(path, "://")) == NULL) {
		return 0;
	}
	start += 3;
	q = strchr(start, '?');
	for (p = start; *p != '\0' && (q == NULL || p < q); p++) {
		if (*p == '@') {
			at = p;
		}
	}
	if (at == NULL ||
	    (colon = memchr(start, ':', (size_t)(at - start))) == NULL) {
		return 0;
	}
	*from = (size_t)(colon + 1 - path);
	*to = (size_t)(at - path);
	return 1;
}

void
np_store_redact(const char *path, char *out, size_t outlen)
{
	size_t len = 0, i = 0, n, from = 0, to = 0;
	int pw;

	if (outlen == 0) {
		return;
	}
	out[0] = '\0';
	if (path == NULL) {
		return;
	}
	pw = np_store_uri_password(path, &from, &to);
	n = strlen(path);
	while (i < n) {
		if (pw && i == from) {
			put_n(out, outlen, &len, "xxx", 3);
			i = to;
			continue;
		}
		/* password=VALUE in a query string or a conninfo string */
		if (strncmp(path + i, "password=", 9) == 0 &&
		    (i == 0 || strchr("?& \t", path[i - 1]) != NULL)) {
			put_n(out, outlen, &len, "password=xxx", 12);
			i += 9;
			while (i < n && strchr("& \t", path[i]) == NULL) {
				i++;
			}
			continue;
		}
		put_n(out, outlen, &len, path + i, 1);
		i++;
	}
}

int
np_store_open(const char *path, int flags, struct np_store **out)
{
	*out = NULL;
	if (path == NULL || *path == '\0') {
		return NP_ERR_INVALID;
	}
	if (np_store_is_uri(path)) {
		return np_store_pg_open(path, flags, out);
	}
	return np_store_sqlite_open(path, flags, out);
}

void
np_store_close(struct np_store *s)
{
	if (s != NULL) {
		s->ops->close(s);
	}
}

const char *
np_store_backend(const struct np_store *s)
{
	return s->ops->name;
}

int
np_store_batch_begin(struct np_store *s)
{
	return s->ops->batch_begin(s);
}

int
np_store_batch_end(struct np_store *s, int commit)
{
	return s->ops->batch_end(s, commit);
}

int
np_store_in_batch(const struct np_store *s)
{
	return s->ops->in_batch(s);
}

static int
name_ok(const char *name)
{
	return name != NULL && np_ident_valid(name) ? NP_OK : NP_ERR_INVALID;
}

int
np_store_identity_get(struct np_store *s, const char *name,
		      uint8_t pk[NP_STORE_PK_LEN], int *state)
{
	int r;

	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	return s->ops->identity_get(s, name, pk, state);
}

int
np_store_token_add(struct np_store *s, const char *name,
		   const uint8_t hash[NP_STORE_HASH_LEN], int64_t expires_ms,
		   int64_t now_ms)
{
	int r;

	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	return s->ops->token_add(s, name, hash, expires_ms, now_ms);
}

int
np_store_enroll(struct np_store *s, const char *name,
		const uint8_t hash[NP_STORE_HASH_LEN],
		const uint8_t pk[NP_STORE_PK_LEN], int64_t now_ms)
{
	int r;

	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	return s->ops->enroll(s, name, hash, pk, now_ms);
}

int
np_store_revoke(struct np_store *s, const char *name, int64_t now_ms)
{
	int r;

	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	return s->ops->revoke(s, name, now_ms);
}

int
np_store_rotate(struct np_store *s, const char *name,
		const struct np_store_rot *rot, int64_t now_ms)
{
	int r;

	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	return s->ops->rotate(s, name, rot, now_ms);
}

int
np_store_rot_get(struct np_store *s, const char *name, struct np_store_rot *out,
		 size_t max, size_t *n)
{
	int r;

	*n = 0;
	if ((r = name_ok(name)) != NP_OK) {
		return r;
	}
	if (max > NP_STORE_ROT_MAX) {
		max = NP_STORE_ROT_MAX;
	}
	return s->ops->rot_get(s, name, out, max, n);
}

static int
box_check(const struct np_store_box *b)
{
	size_t i, n = strnlen(b->mid, sizeof(b->mid));

	if (!np_ident_valid(b->recipient) || !np_ident_valid(b->sender)) {
		return NP_ERR_INVALID;
	}
	if (n == 0 || n > NP_STORE_MID_MAX) {
		return NP_ERR_INVALID;
	}
	for (i = 0; i < n; i++) {
		if (strchr("0123456789abcdef", b->mid[i]) == NULL) {
			return NP_ERR_INVALID;
		}
	}
	if (b->tag[0] != '\0' && !np_tag_valid(b->tag)) {
		return NP_ERR_INVALID;
	}
	if (b->box == NULL || b->box_len == 0) {
		return NP_ERR_INVALID;
	}
	return b->box_len > NP_STORE_BOX_MAX ? NP_ERR_TOO_BIG : NP_OK;
}

int
np_store_box_put(struct np_store *s, struct np_store_box *b, int64_t queue_max,
		 int *dup, int64_t *dropped)
{
	int64_t drop = 0;
	int d = 0, r;

	if (dup != NULL) {
		*dup = 0;
	}
	if (dropped != NULL) {
		*dropped = 0;
	}
	if ((r = box_check(b)) != NP_OK) {
		return r;
	}
	if (queue_max < 1) {
		queue_max = 1;
	}
	if ((r = s->ops->box_put(s, b, queue_max, &d, &drop)) != NP_OK) {
		return r;
	}
	if (dup != NULL) {
		*dup = d;
	}
	if (dropped != NULL) {
		*dropped = drop;
	}
	return NP_OK;
}

int
np_store_box_fetch(struct np_store *s, const char *recipient, const char *tag,
		   int64_t after, size_t limit, int64_t now_ms,
		   struct np_store_box **out, size_t *n)
{
	struct np_store_box *v;
	size_t cnt = 0;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = name_ok(recipient)) != NP_OK) {
		return r;
	}
	if (tag == NULL) {
		tag = "";
	}
	if (tag[0] != '\0' && !np_tag_valid(tag)) {
		return NP_ERR_INVALID;
	}
	if (limit > NP_STORE_FETCH_MAX) {
		limit = NP_STORE_FETCH_MAX;
	}
	if (limit == 0) {
		return NP_OK;
	}
	if ((v = calloc(limit, sizeof(*v))) == NULL) {
		return NP_ERR_ALLOC;
	}
	r = s->ops->box_fetch(s, recipient, tag, after, limit, now_ms, v, &cnt);
	if (r != NP_OK) {
		np_store_boxes_free(v, cnt);
		return r;
	}
	*out = v;
	*n = cnt;
	return NP_OK;
}

void
np_store_boxes_free(struct np_store_box *v, size_t n)
{
	size_t i;

	if (v == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(v[i].box);
	}
	free(v);
}

int
np_store_box_ack(struct np_store *s, const char *recipient, int64_t seq)
{
	int r;

	if ((r = name_ok(recipient)) != NP_OK) {
		return r;
	}
	return s->ops->box_ack(s, recipient, seq);
}

int
np_store_box_count(struct np_store *s, const char *recipient, int64_t *n)
{
	int r;

	*n = 0;
	if ((r = name_ok(recipient)) != NP_OK) {
		return r;
	}
	return s->ops->box_count(s, recipient, n);
}

int
np_store_expire(struct np_store *s, int64_t now_ms, int64_t *nboxes,
		int64_t *ntokens)
{
	int64_t nb = 0, nt = 0;
	int r;

	if (nboxes != NULL) {
		*nboxes = 0;
	}
	if (ntokens != NULL) {
		*ntokens = 0;
	}
	if ((r = s->ops->expire(s, now_ms, &nb, &nt)) != NP_OK) {
		return r;
	}
	if (nboxes != NULL) {
		*nboxes = nb;
	}
	if (ntokens != NULL) {
		*ntokens = nt;
	}
	return NP_OK;
}

int
np_store_list(struct np_store *s, np_store_list_cb *cb, void *arg)
{
	return s->ops->list(s, cb, arg);
}

int
np_store_changed(struct np_store *s, int *changed)
{
	*changed = 0;
	return s->ops->changed(s, changed);
}

int
np_store_watch_fd(struct np_store *s)
{
	return s->ops->watch_fd(s);
}

int
np_store_watch_read(struct np_store *s, np_store_box_cb *cb, void *arg,
		    int *changed)
{
	*changed = 0;
	return s->ops->watch_read(s, cb, arg, changed);
}

int
np_store_seq_ordered(const struct np_store *s)
{
	return s->ops->seq_ordered;
}
