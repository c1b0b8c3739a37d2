/*
 * known_identities: pinned identity keys and rotation chains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "pin.h"

#define PIN_LINE_MAX 512
#define PIN_B64_LEN 44 /* base64 of 32 bytes */

struct pin {
	char id[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
};

struct np_pins {
	struct pin *v;
	size_t n;
	size_t alloc;
};

struct np_pins *
np_pins_new(void)
{
	return calloc(1, sizeof(struct np_pins));
}

void
np_pins_free(struct np_pins *p)
{
	if (p == NULL) {
		return;
	}
	free(p->v);
	free(p);
}

size_t
np_pins_count(const struct np_pins *p)
{
	return p->n;
}

/*
 * The set is kept sorted by id: lookups are binary searches and a saved
 * file (sorted) loads by appending.  *at is where id is or would go.
 */
static struct pin *
pins_search(const struct np_pins *p, const char *id, size_t *at)
{
	size_t lo = 0, hi = p->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(id, p->v[mid].id)) == 0) {
			*at = mid;
			return &p->v[mid];
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	*at = lo;
	return NULL;
}

static struct pin *
pins_find(const struct np_pins *p, const char *id)
{
	size_t at;

	return pins_search(p, id, &at);
}

int
np_pins_get(const struct np_pins *p, const char *id, uint8_t pk[NP_PK_LEN])
{
	const struct pin *e;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((e = pins_find(p, id)) == NULL) {
		return NP_ERR_NOT_FOUND;
	}
	memcpy(pk, e->pk, NP_PK_LEN);
	return NP_OK;
}

static int
pins_grow(struct np_pins *p)
{
	struct pin *nv;
	size_t na;

	if (p->n < p->alloc) {
		return NP_OK;
	}
	if (p->n >= NP_PINS_MAX) {
		return NP_ERR_LIMIT;
	}
	na = p->alloc == 0 ? 16 : p->alloc * 2;
	if (na > NP_PINS_MAX) {
		na = NP_PINS_MAX;
	}
	if ((nv = reallocarray(p->v, na, sizeof(*nv))) == NULL) {
		return NP_ERR_ALLOC;
	}
	p->v = nv;
	p->alloc = na;
	return NP_OK;
}

int
np_pins_set(struct np_pins *p, const char *id, const uint8_t pk[NP_PK_LEN])
{
	struct pin *e;
	size_t at;
	int r;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((e = pins_search(p, id, &at)) == NULL) {
		if ((r = pins_grow(p)) != NP_OK) {
			return r;
		}
		e = &p->v[at];
		memmove(e + 1, e, (p->n - at) * sizeof(*e));
		p->n++;
		snprintf(e->id, sizeof(e->id), "%s", id);
	}
	memcpy(e->pk, pk, NP_PK_LEN);
	return NP_OK;
}

/*
 * Append without keeping the order (the parser sorts once at the end:
 * inserting each line in place would cost O(n^2) moves on an unsorted
 * file of NP_PINS_MAX lines).
 */
static int
pins_append(struct np_pins *p, const char *id, const uint8_t pk[NP_PK_LEN])
{
	struct pin *e;
	int r;

	if ((r = pins_grow(p)) != NP_OK) {
		return r;
	}
	e = &p->v[p->n++];
	snprintf(e->id, sizeof(e->id), "%s", id);
	memcpy(e->pk, pk, NP_PK_LEN);
	return NP_OK;
}

int
np_pins_forget(struct np_pins *p, const char *id)
{
	struct pin *e;
	size_t i;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((e = pins_find(p, id)) == NULL) {
		return NP_ERR_NOT_FOUND;
	}
	i = (size_t)(e - p->v);
	memmove(e, e + 1, (p->n - i - 1) * sizeof(*e));
	p->n--;
	return NP_OK;
}

/* ---- file format ---- */

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One line without its '\n'.  Blank and comment lines add nothing. */
static int
pins_parse_line(struct np_pins *p, const char *s, size_t len)
{
	char id[NP_IDENT_MAX + 1], b64[PIN_B64_LEN + 1];
	uint8_t pk[NP_PK_LEN];
	size_t i = 0, a;

	while (i < len && is_blank(s[i])) {
		i++;
	}
	if (i == len || s[i] == '#') {
		return NP_OK;
	}
	for (a = i; i < len && !is_blank(s[i]); i++) {
	}
	if (i - a > NP_IDENT_MAX || memchr(s + a, '\0', i - a) != NULL) {
		return NP_ERR_INVALID;
	}
	memcpy(id, s + a, i - a);
	id[i - a] = '\0';
	while (i < len && is_blank(s[i])) {
		i++;
	}
	for (a = i; i < len && !is_blank(s[i]); i++) {
	}
	if (i - a != PIN_B64_LEN) {
		return NP_ERR_INVALID;
	}
	memcpy(b64, s + a, PIN_B64_LEN);
	b64[PIN_B64_LEN] = '\0';
	while (i < len && is_blank(s[i])) {
		i++;
	}
	if (i != len || !np_ident_valid(id) ||
	    np_b64_decode_exact(b64, pk, NP_PK_LEN) != NP_OK) {
		return NP_ERR_INVALID;
	}
	return pins_append(p, id, pk);
}

static int
pin_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pin *)a)->id, ((const struct pin *)b)->id);
}

/* Sort the appended entries once; a repeated id makes the file invalid. */
static int
pins_sort(struct np_pins *p)
{
	size_t i;

	if (p->n < 2) {
		return NP_OK;
	}
	qsort(p->v, p->n, sizeof(*p->v), pin_cmp);
	for (i = 1; i < p->n; i++) {
		if (strcmp(p->v[i - 1].id, p->v[i].id) == 0) {
			return NP_ERR_INVALID;
		}
	}
	return NP_OK;
}

int
np_pins_parse(const uint8_t *data, size_t len, struct np_pins **out)
{
	const uint8_t *p = data, *end, *nl;
	struct np_pins *pins;
	int r = NP_OK;

	*out = NULL;
	if (len > NP_PINS_FILE_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (data == NULL && len > 0) {
		return NP_ERR_INVALID;
	}
	end = data == NULL ? NULL : data + len; /* no NULL + 0 */
	if ((pins = np_pins_new()) == NULL) {
		return NP_ERR_ALLOC;
	}
	while (p < end && r == NP_OK) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			nl = end;
		}
		if ((size_t)(nl - p) > PIN_LINE_MAX) {
			r = NP_ERR_INVALID;
		} else {
			r = pins_parse_line(pins, (const char *)p,
			    (size_t)(nl - p));
		}
		p = nl + (nl < end);
	}
	if (r == NP_OK) {
		r = pins_sort(pins);
	}
	if (r != NP_OK) {
		np_pins_free(pins);
		return r;
	}
	*out = pins;
	return NP_OK;
}

int
np_pins_serialize(const struct np_pins *p, struct np_buf *b)
{
	char b64[NP_PK_B64_MAX];
	size_t i;
	int r;

	if ((r = np_buf_putf(b, "# noports known identities: "
	    "@name base64(Ed25519 public key)\n")) != NP_OK) {
		return r;
	}
	for (i = 0; i < p->n; i++) {
		if ((r = np_b64_encode(p->v[i].pk, NP_PK_LEN, b64,
		    sizeof(b64))) != NP_OK ||
		    (r = np_buf_putf(b, "%s %s\n", p->v[i].id, b64)) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

int
np_pins_save(const struct np_pins *p, const char *path)
{
	struct np_buf *b;
	int r;

	if ((b = np_buf_new(NP_PINS_FILE_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_pins_serialize(p, b)) == NP_OK) {
		r = np_file_write_atomic(path, np_buf_ptr(b), np_buf_len(b), 1);
	}
	np_buf_free(b);
	return r;
}

int
np_pins_load(const char *path, struct np_pins **out)
{
	struct np_buf *b = NULL;
	int r;

	*out = NULL;
	r = np_file_read_checked(path, NP_PINS_FILE_MAX, 022, 0, &b);
	if (r == NP_ERR_NOT_FOUND) {
		*out = np_pins_new();
		return *out == NULL ? NP_ERR_ALLOC : NP_OK;
	}
	if (r != NP_OK) {
		return r;
	}
	r = np_pins_parse(np_buf_ptr(b), np_buf_len(b), out);
	np_buf_free(b);
	return r;
}

/* ---- rotation ---- */

int
np_rot_message(const char *id, const uint8_t old_pk[NP_PK_LEN],
    const uint8_t new_pk[NP_PK_LEN], struct np_buf *out)
{
	int r;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_buf_put(out, NP_ROT_LABEL, sizeof(NP_ROT_LABEL))) !=
	    NP_OK ||
	    (r = np_buf_put(out, id, strlen(id))) != NP_OK ||
	    (r = np_buf_put(out, old_pk, NP_PK_LEN)) != NP_OK ||
	    (r = np_buf_put(out, new_pk, NP_PK_LEN)) != NP_OK) {
		return r;
	}
	return NP_OK;
}

int
np_rot_verify(const char *id, const struct np_rot *rot)
{
	struct np_buf *m;
	int r;

	if ((m = np_buf_new(256)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_rot_message(id, rot->old_pk, rot->new_pk, m)) == NP_OK) {
		r = np_sig_verify(rot->old_pk, np_buf_ptr(m), np_buf_len(m),
		    rot->sig);
	}
	np_buf_free(m);
	return r;
}

/* Follow rot[] from pinned; NP_OK when a verified path reaches pk. */
static int
walk_chain(const char *id, const uint8_t pinned[NP_PK_LEN],
    const uint8_t pk[NP_PK_LEN], const struct np_rot *rot, size_t nrot)
{
	const uint8_t *cur = pinned;
	size_t i;

	for (i = 0; i < nrot; i++) {
		if (sodium_memcmp(rot[i].old_pk, pinned, NP_PK_LEN) == 0) {
			break;
		}
	}
	for (; i < nrot; i++) {
		if (sodium_memcmp(rot[i].old_pk, cur, NP_PK_LEN) != 0 ||
		    np_rot_verify(id, &rot[i]) != NP_OK) {
			return NP_ERR_KEY_CHANGED;
		}
		cur = rot[i].new_pk;
		if (sodium_memcmp(cur, pk, NP_PK_LEN) == 0) {
			return NP_OK;
		}
	}
	return NP_ERR_KEY_CHANGED;
}

int
np_pins_check(struct np_pins *p, const char *id, const uint8_t pk[NP_PK_LEN],
    const struct np_rot *rot, size_t nrot, int tofu, int *changed)
{
	uint8_t pinned[NP_PK_LEN];
	int r;

	*changed = 0;
	if (nrot > NP_ROT_CHAIN_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_pins_get(p, id, pinned)) == NP_ERR_NOT_FOUND) {
		if (!tofu) {
			return NP_ERR_NOT_FOUND;
		}
		if ((r = np_pins_set(p, id, pk)) == NP_OK) {
			*changed = 1;
		}
		return r;
	}
	if (r != NP_OK) {
		return r;
	}
	if (sodium_memcmp(pinned, pk, NP_PK_LEN) == 0) {
		return NP_OK;
	}
	if ((r = walk_chain(id, pinned, pk, rot, nrot)) != NP_OK) {
		return r;
	}
	if ((r = np_pins_set(p, id, pk)) == NP_OK) {
		*changed = 1;
	}
	return r;
}
