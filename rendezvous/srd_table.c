/*
 * The session table: sessions by id (hash), the waiting sessions in
 * deadline order (every session gets the same timeout, so the order of
 * creation is the order of deadlines), the relaying ones, per-identity
 * counts, and the tokens in the slab.  No sockets here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "box.h"
#include "err.h"
#include "srd.h"

#define TABLE_MIN_BUCKETS 64
#define OWNER_BUCKETS 256

struct srd_list {
	struct srd_sess *head, *tail;
	size_t n;
};

struct srd_table {
	struct srd_sess **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t max_sessions, max_per_ident;
	struct srd_list waiting, relaying;
	struct srd_owner *owners[OWNER_BUCKETS];
	struct srd_slab *slab;
};

/* Session ids are random hex: their first 16 digits make a fine hash. */
static uint64_t
sid_hash(const char *sid)
{
	uint64_t h = 0;
	size_t i;

	for (i = 0; i < 16 && sid[i] != '\0'; i++) {
		char ch = sid[i];

		h = (h << 4) | (uint64_t)(ch >= 'a' ? ch - 'a' + 10 :
		    ch >= '0' && ch <= '9' ? ch - '0' : (ch & 0xf));
	}
	return h;
}

static size_t
owner_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++) {
		h = (h ^ (uint8_t)*id) * 16777619u;
	}
	return h % OWNER_BUCKETS;
}

struct srd_table *
srd_table_new(size_t max_sessions, size_t max_per_ident)
{
	struct srd_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		return NULL;
	}
	t->max_sessions = max_sessions;
	t->max_per_ident = max_per_ident;
	t->nbuckets = TABLE_MIN_BUCKETS;
	if ((t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL ||
	    (t->slab = srd_slab_new(max_sessions)) == NULL) {
		free(t->buckets);
		free(t);
		return NULL;
	}
	return t;
}

void
srd_table_free(struct srd_table *t)
{
	struct srd_sess *s;

	if (t == NULL) {
		return;
	}
	while ((s = t->waiting.head) != NULL ||
	    (s = t->relaying.head) != NULL) {
		srd_table_remove(t, s);
	}
	free(t->buckets);
	srd_slab_free(t->slab);
	free(t);
}

/* ---- lists ---- */

static void
list_add(struct srd_list *l, struct srd_sess *s)
{
	s->next = NULL;
	s->prev = l->tail;
	if (l->tail != NULL) {
		l->tail->next = s;
	} else {
		l->head = s;
	}
	l->tail = s;
	l->n++;
}

static void
list_del(struct srd_list *l, struct srd_sess *s)
{
	if (s->prev != NULL) {
		s->prev->next = s->next;
	} else {
		l->head = s->next;
	}
	if (s->next != NULL) {
		s->next->prev = s->prev;
	} else {
		l->tail = s->prev;
	}
	s->prev = s->next = NULL;
	l->n--;
}

/* ---- owners ---- */

static struct srd_owner *
owner_find(const struct srd_table *t, const char *id)
{
	struct srd_owner *o;

	for (o = t->owners[owner_hash(id)]; o != NULL; o = o->next) {
		if (strcmp(o->id, id) == 0) {
			return o;
		}
	}
	return NULL;
}

static struct srd_owner *
owner_get(struct srd_table *t, const char *id)
{
	struct srd_owner *o;
	size_t h;

	if ((o = owner_find(t, id)) != NULL) {
		return o;
	}
	if (strlen(id) > NP_IDENT_MAX || (o = calloc(1, sizeof(*o))) == NULL) {
		return NULL;
	}
	memcpy(o->id, id, strlen(id) + 1);
	h = owner_hash(id);
	o->next = t->owners[h];
	t->owners[h] = o;
	return o;
}

static void
owner_release(struct srd_table *t, struct srd_owner *o)
{
	struct srd_owner **pp;

	if (--o->n > 0) {
		return;
	}
	for (pp = &t->owners[owner_hash(o->id)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			free(o);
			return;
		}
	}
}

unsigned
srd_table_owner_count(const struct srd_table *t, const char *owner)
{
	const struct srd_owner *o = owner_find(t, owner);

	return o != NULL ? o->n : 0;
}

/* ---- hash ---- */

static void
hash_grow(struct srd_table *t)
{
	size_t n = t->nbuckets * 2, i;
	struct srd_sess **nb, *s, *next;

	if ((nb = calloc(n, sizeof(*nb))) == NULL) {
		return; /* longer chains; still correct */
	}
	for (i = 0; i < t->nbuckets; i++) {
		for (s = t->buckets[i]; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = nb[sid_hash(s->sid) & (n - 1)];
			nb[sid_hash(s->sid) & (n - 1)] = s;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

static void
hash_add(struct srd_table *t, struct srd_sess *s)
{
	size_t h;

	if (t->count >= t->nbuckets) {
		hash_grow(t);
	}
	h = sid_hash(s->sid) & (t->nbuckets - 1);
	s->hnext = t->buckets[h];
	t->buckets[h] = s;
}

static void
hash_del(struct srd_table *t, struct srd_sess *s)
{
	struct srd_sess **pp;

	for (pp = &t->buckets[sid_hash(s->sid) & (t->nbuckets - 1)];
	    *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
	}
}

struct srd_sess *
srd_table_find(const struct srd_table *t, const char *sid)
{
	struct srd_sess *s;

	if (sid == NULL || strlen(sid) != NP_SR_SID_LEN) {
		return NULL;
	}
	for (s = t->buckets[sid_hash(sid) & (t->nbuckets - 1)]; s != NULL;
	    s = s->hnext) {
		if (strcmp(s->sid, sid) == 0) {
			return s;
		}
	}
	return NULL;
}

/* ---- sessions ---- */

static void
sess_init(struct srd_sess *s)
{
	int i;

	for (i = 0; i < 2; i++) {
		s->fd[i] = -1;
		s->lst[i].fd = -1;
		s->lst[i].s = s;
		s->lst[i].side = (uint8_t)i;
	}
}

/* A fresh sid that is not in the table. */
static int
new_sid(const struct srd_table *t, char sid[NP_SR_SID_LEN + 1])
{
	int i, r;

	for (i = 0; i < 8; i++) {
		if ((r = np_mid_new(sid)) != NP_OK) {
			return r;
		}
		if (srd_table_find(t, sid) == NULL) {
			return NP_OK;
		}
	}
	return NP_ERR_INTERNAL;
}

int
srd_table_mint(struct srd_table *t, const char *owner, const char *peer,
    uint64_t now, uint64_t timeout_ms, int64_t now_real,
    struct srd_sess **out, const char **why)
{
	struct srd_sess *s = NULL;
	struct srd_owner *o;
	int r;

	*out = NULL;
	*why = "internal error";
	if (t->count >= t->max_sessions) {
		*why = "busy";
		return NP_ERR_TOO_BIG;
	}
	if ((o = owner_find(t, owner)) != NULL && o->n >= t->max_per_ident) {
		*why = "too many sessions";
		return NP_ERR_LIMIT;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NP_ERR_ALLOC;
	}
	sess_init(s);
	if (peer != NULL && (s->peer = strdup(peer)) == NULL) {
		r = NP_ERR_ALLOC;
		goto fail;
	}
	if ((r = new_sid(t, s->sid)) != NP_OK) {
		goto fail;
	}
	if ((r = srd_slab_get(t->slab, &s->slot)) != NP_OK) {
		goto fail;
	}
	if ((o = owner_get(t, owner)) == NULL) {
		srd_slab_put(t->slab, s->slot);
		r = NP_ERR_ALLOC;
		goto fail;
	}
	randombytes_buf(srd_slab_ptr(t->slab, s->slot), SRD_SLOT_LEN);
	o->n++;
	s->owner = o;
	s->created = now;
	s->deadline = now + timeout_ms;
	s->deadline_real = now_real + (int64_t)timeout_ms;
	hash_add(t, s);
	list_add(&t->waiting, s);
	t->count++;
	*why = NULL;
	*out = s;
	return NP_OK;
 fail:
	free(s->peer);
	free(s);
	return r;
}

const uint8_t *
srd_table_token(const struct srd_table *t, const struct srd_sess *s,
    int side)
{
	return srd_slab_ptr(t->slab, s->slot) +
	    (side == NP_SR_DEVICE ? NP_SR_TOKEN_LEN : 0);
}

int
srd_table_auth(struct srd_table *t, const char *sid, int side,
    const uint8_t token[NP_SR_TOKEN_LEN], const char *lsid, int lside,
    uint64_t now, struct srd_sess **out)
{
	struct srd_sess *s;
	uint8_t *tok;

	*out = NULL;
	if (side != NP_SR_CLIENT && side != NP_SR_DEVICE) {
		return NP_ERR_AUTH;
	}
	if (lsid != NULL && (strcmp(lsid, sid) != 0 || lside != side)) {
		return NP_ERR_AUTH;
	}
	if ((s = srd_table_find(t, sid)) == NULL ||
	    s->state != SRD_WAITING || s->used[side] || now >= s->deadline) {
		return NP_ERR_AUTH;
	}
	tok = srd_slab_ptr(t->slab, s->slot) + side * NP_SR_TOKEN_LEN;
	if (sodium_memcmp(tok, token, NP_SR_TOKEN_LEN) != 0) {
		return NP_ERR_AUTH;
	}
	s->used[side] = 1;
	sodium_memzero(tok, NP_SR_TOKEN_LEN);
	*out = s;
	return NP_OK;
}

void
srd_table_relaying(struct srd_table *t, struct srd_sess *s)
{
	if (s->state != SRD_WAITING) {
		return;
	}
	list_del(&t->waiting, s);
	s->state = SRD_RELAYING;
	/* Both tokens are spent: wipe and return the slot now. */
	srd_slab_put(t->slab, s->slot);
	s->slot = UINT32_MAX;
	list_add(&t->relaying, s);
}

struct srd_sess *
srd_table_expired(const struct srd_table *t, uint64_t now)
{
	struct srd_sess *s = t->waiting.head;

	return s != NULL && s->deadline <= now ? s : NULL;
}

uint64_t
srd_table_next_deadline(const struct srd_table *t)
{
	return t->waiting.head != NULL ? t->waiting.head->deadline : 0;
}

void
srd_table_remove(struct srd_table *t, struct srd_sess *s)
{
	if (s == NULL) {
		return;
	}
	hash_del(t, s);
	if (s->state == SRD_WAITING) {
		list_del(&t->waiting, s);
	} else {
		list_del(&t->relaying, s);
	}
	if (s->slot != UINT32_MAX) {
		srd_slab_put(t->slab, s->slot);
	}
	owner_release(t, s->owner);
	t->count--;
	free(s->peer);
	free(s);
}

size_t
srd_table_count(const struct srd_table *t)
{
	return t->count;
}

size_t
srd_table_waiting(const struct srd_table *t)
{
	return t->waiting.n;
}

size_t
srd_table_relaying_count(const struct srd_table *t)
{
	return t->relaying.n;
}

struct srd_sess *
srd_table_first_waiting(const struct srd_table *t)
{
	return t->waiting.head;
}

struct srd_sess *
srd_table_first_relaying(const struct srd_table *t)
{
	return t->relaying.head;
}
