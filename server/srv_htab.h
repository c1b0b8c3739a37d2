/*
 * A small hash table from byte-string keys to pointers, for the server's
 * routing (identity -> connections) and per-source counters.  Keys are
 * hashed with SipHash (crypto_shorthash) under a random key, so a peer
 * cannot pick addresses or names that all land in one bucket.  The table
 * grows as needed; values are the caller's.
 */
#ifndef NP_SRV_HTAB_H
#define NP_SRV_HTAB_H

#include <stddef.h>

#define HTAB_KEY_MAX 256

struct srv_htab;

struct srv_htab *srv_htab_new(void);
void srv_htab_free(struct srv_htab *h); /* NULL is fine; values are not freed */
size_t srv_htab_count(const struct srv_htab *h);
void *srv_htab_get(const struct srv_htab *h, const void *key, size_t klen);
/* Insert or replace.  NP_ERR_ALLOC, NP_ERR_TOO_BIG (key too long). */
int srv_htab_put(struct srv_htab *h, const void *key, size_t klen, void *val);
/* Remove; returns the value that was stored, or NULL. */
void *srv_htab_del(struct srv_htab *h, const void *key, size_t klen);

#endif
