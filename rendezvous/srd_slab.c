/*
 * Token secrets of all sessions in one slab of sodium_malloc memory:
 * chunks of SRD_SLAB_CHUNK slots of SRD_SLOT_LEN bytes, allocated as the
 * number of sessions grows, and a free list of slot numbers.  One
 * sodium_malloc per session would cost three or more pages each (guard
 * pages, canary); here a session costs its 64 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "srd.h"

struct srd_slab {
	uint8_t **chunks;
	size_t nchunks;
	size_t max_slots;
	uint32_t *free;	/* stack of free slot numbers */
	size_t nfree;
	size_t used;
};

struct srd_slab *
srd_slab_new(size_t max_slots)
{
	struct srd_slab *sl;

	if (max_slots == 0 || max_slots > UINT32_MAX / 2) {
		return NULL;
	}
	if ((sl = calloc(1, sizeof(*sl))) == NULL) {
		return NULL;
	}
	sl->max_slots = max_slots;
	return sl;
}

void
srd_slab_free(struct srd_slab *sl)
{
	size_t i;

	if (sl == NULL) {
		return;
	}
	for (i = 0; i < sl->nchunks; i++) {
		sodium_free(sl->chunks[i]); /* wipes */
	}
	free(sl->chunks);
	free(sl->free);
	free(sl);
}

/* One more chunk: its slots go on the free list, lowest on top. */
static int
slab_grow(struct srd_slab *sl)
{
	size_t cap = sl->nchunks * SRD_SLAB_CHUNK, i;
	uint8_t **nc;
	uint32_t *nf;
	uint8_t *mem;

	if (cap >= sl->max_slots) {
		return NP_ERR_LIMIT;
	}
	nc = realloc(sl->chunks, (sl->nchunks + 1) * sizeof(*nc));
	if (nc == NULL) {
		return NP_ERR_ALLOC;
	}
	sl->chunks = nc;
	nf = realloc(sl->free, (cap + SRD_SLAB_CHUNK) * sizeof(*nf));
	if (nf == NULL) {
		return NP_ERR_ALLOC;
	}
	sl->free = nf;
	if ((mem = sodium_malloc(SRD_SLAB_CHUNK * SRD_SLOT_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	sodium_memzero(mem, SRD_SLAB_CHUNK * SRD_SLOT_LEN);
	sl->chunks[sl->nchunks++] = mem;
	for (i = SRD_SLAB_CHUNK; i > 0; i--) {
		sl->free[sl->nfree++] = (uint32_t)(cap + i - 1);
	}
	return NP_OK;
}

int
srd_slab_get(struct srd_slab *sl, uint32_t *idx)
{
	int r;

	if (sl->used >= sl->max_slots) {
		return NP_ERR_LIMIT;
	}
	if (sl->nfree == 0 && (r = slab_grow(sl)) != NP_OK) {
		return r;
	}
	*idx = sl->free[--sl->nfree];
	sl->used++;
	return NP_OK;
}

uint8_t *
srd_slab_ptr(const struct srd_slab *sl, uint32_t idx)
{
	return sl->chunks[idx / SRD_SLAB_CHUNK] +
	    (size_t)(idx % SRD_SLAB_CHUNK) * SRD_SLOT_LEN;
}

void
srd_slab_put(struct srd_slab *sl, uint32_t idx)
{
	if (sl == NULL || idx / SRD_SLAB_CHUNK >= sl->nchunks) {
		return;
	}
	sodium_memzero(srd_slab_ptr(sl, idx), SRD_SLOT_LEN);
	sl->free[sl->nfree++] = idx;
	sl->used--;
}

size_t
srd_slab_used(const struct srd_slab *sl)
{
	return sl->used;
}
