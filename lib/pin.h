/*
 * known_identities: identity keys pinned on first use (as ssh pins host
 * keys), followed only along rotation chains signed by the pinned key.
 *
 * File: one line per identity, "@name <base64 of the 32-byte Ed25519 pk>",
 * '#' comments and blank lines allowed; anything else makes the whole
 * file invalid (a silently dropped pin would re-open trust on first use).
 * Rewritten atomically (temp + rename), mode 0600.
 */
#ifndef NP_PIN_H
#define NP_PIN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"

#define NP_PINS_MAX 100000	   /* identities in one file */
#define NP_PINS_FILE_MAX (16 * 1024 * 1024)
#define NP_ROT_CHAIN_MAX 16
#define NP_ROT_LABEL "noports-rotate-v1" /* sizeof includes the NUL */

struct np_pins;

struct np_rot {
	uint8_t old_pk[NP_PK_LEN];
	uint8_t new_pk[NP_PK_LEN];
	uint8_t sig[NP_SIG_LEN]; /* by old over np_rot_message() */
};

struct np_pins *np_pins_new(void);
/* Missing file: an empty set.  NP_ERR_PERM if group/other can write it. */
int np_pins_load(const char *path, struct np_pins **out);
/* Pure parser (fuzzable). */
int np_pins_parse(const uint8_t *p, size_t len, struct np_pins **out);
int np_pins_serialize(const struct np_pins *p, struct np_buf *b);
int np_pins_save(const struct np_pins *p, const char *path);
void np_pins_free(struct np_pins *p);
size_t np_pins_count(const struct np_pins *p);

/* NP_ERR_NOT_FOUND when id is not pinned. */
int np_pins_get(const struct np_pins *p, const char *id,
    uint8_t pk[NP_PK_LEN]);
/* Add or replace.  NP_ERR_LIMIT past NP_PINS_MAX. */
int np_pins_set(struct np_pins *p, const char *id,
    const uint8_t pk[NP_PK_LEN]);
/* NP_ERR_NOT_FOUND when id is not pinned. */
int np_pins_forget(struct np_pins *p, const char *id);

/* "noports-rotate-v1\0" || id || old_pk || new_pk, appended to out. */
int np_rot_message(const char *id, const uint8_t old_pk[NP_PK_LEN],
    const uint8_t new_pk[NP_PK_LEN], struct np_buf *out);
/* NP_OK when r->sig is old_pk's signature over the message. */
int np_rot_verify(const char *id, const struct np_rot *r);

/*
 * Decide about the key pk the directory returned for id, with its rotation
 * chain rot[0..nrot) (oldest first):
 *   pinned == pk: NP_OK, *changed = 0;
 *   not pinned: tofu ? pin it, NP_OK, *changed = 1 : NP_ERR_NOT_FOUND;
 *   pinned != pk: walk the chain from the link whose old_pk is the pin;
 *   each link must verify and continue from the previous new_pk; reaching
 *   pk re-pins (NP_OK, *changed = 1), anything else is NP_ERR_KEY_CHANGED
 *   and the pin stays.  NP_ERR_TOO_BIG when nrot > NP_ROT_CHAIN_MAX.
 * The caller saves the set when *changed.
 */
int np_pins_check(struct np_pins *p, const char *id,
    const uint8_t pk[NP_PK_LEN], const struct np_rot *rot, size_t nrot,
    int tofu, int *changed);

#endif
