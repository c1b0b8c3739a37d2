#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "srv_htab.h"

#define HTAB_MIN_BUCKETS 64

struct hent {
	struct hent *next;
	void *val;
	uint64_t hash;
	size_t klen;
	unsigned char key[]; /* klen bytes */
};

struct srv_htab {
	struct hent **b;
	size_t nb; /* a power of two */
	size_t count;
	unsigned char k[crypto_shorthash_KEYBYTES];
};

struct srv_htab *
srv_htab_new(void)
{
	struct srv_htab *h;

	if (sodium_init() < 0 || (h = calloc(1, sizeof(*h))) == NULL) {
		return NULL;
	}
	h->nb = HTAB_MIN_BUCKETS;
	if ((h->b = calloc(h->nb, sizeof(*h->b))) == NULL) {
		free(h);
		return NULL;
	}
	crypto_shorthash_keygen(h->k);
	return h;
}

void
srv_htab_free(struct srv_htab *h)
{
	struct hent *e, *n;
	size_t i;

	if (h == NULL) {
		return;
	}
	for (i = 0; i < h->nb; i++) {
		for (e = h->b[i]; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(h->b);
	free(h);
}

size_t
srv_htab_count(const struct srv_htab *h)
{
	return h->count;
}

static uint64_t
hash_of(const struct srv_htab *h, const void *key, size_t klen)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(out, key, klen, h->k);
	memcpy(&v, out, sizeof(v));
	return v;
}

static struct hent **
find(const struct srv_htab *h, const void *key, size_t klen, uint64_t hv)
{
	struct hent **pp;

	for (pp = &h->b[hv & (h->nb - 1)]; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->hash == hv && (*pp)->klen == klen &&
		    memcmp((*pp)->key, key, klen) == 0) {
			return pp;
		}
	}
	return pp;
}

void *
srv_htab_get(const struct srv_htab *h, const void *key, size_t klen)
{
	struct hent **pp;

	if (klen > HTAB_KEY_MAX) {
		return NULL;
	}
	pp = find(h, key, klen, hash_of(h, key, klen));
	return *pp != NULL ? (*pp)->val : NULL;
}

/* Double the bucket array; on failure the table just stays denser. */
static void
grow(struct srv_htab *h)
{
	struct hent **nb, *e, *n;
	size_t i, size = h->nb * 2;

	if (size > SIZE_MAX / sizeof(*nb) ||
	    (nb = calloc(size, sizeof(*nb))) == NULL) {
		return;
	}
	for (i = 0; i < h->nb; i++) {
		for (e = h->b[i]; e != NULL; e = n) {
			n = e->next;
			e->next = nb[e->hash & (size - 1)];
			nb[e->hash & (size - 1)] = e;
		}
	}
	free(h->b);
	h->b = nb;
	h->nb = size;
}

int
srv_htab_put(struct srv_htab *h, const void *key, size_t klen, void *val)
{
	struct hent **pp, *e;
	uint64_t hv;

	if (klen > HTAB_KEY_MAX) {
		return NP_ERR_TOO_BIG;
	}
	hv = hash_of(h, key, klen);
	pp = find(h, key, klen, hv);
	if (*pp != NULL) {
		(*pp)->val = val;
		return NP_OK;
	}
	if ((e = malloc(sizeof(*e) + klen)) == NULL) {
		return NP_ERR_ALLOC;
	}
	e->next = NULL;
	e->val = val;
	e->hash = hv;
	e->klen = klen;
	memcpy(e->key, key, klen);
	*pp = e;
	h->count++;
	if (h->count > h->nb) {
		grow(h);
	}
	return NP_OK;
}

void *
srv_htab_del(struct srv_htab *h, const void *key, size_t klen)
{
	struct hent **pp, *e;
	void *val;

	if (klen > HTAB_KEY_MAX) {
		return NULL;
	}
	pp = find(h, key, klen, hash_of(h, key, klen));
	if ((e = *pp) == NULL) {
		return NULL;
	}
	*pp = e->next;
	val = e->val;
	free(e);
	h->count--;
	return val;
}
