/*
 * libFuzzer target: a lookup result from the server (np_cpc_parse_lookup:
 * the identity, its key and its rotation chain) and the pin check that
 * follows it (np_pins_check walking the chain from the pinned key).
 *
 * The fuzzer cannot forge signatures, so each chain is also checked with
 * its entries re-signed wherever the old key is one of four fixed test
 * keys (seeds "k0".."k3"; the seed corpus uses their public keys).  An
 * accepted key change must end in a key that a verified rotation names.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "cpc.h"
#include "err.h"
#include "frame.h"
#include "key.h"
#include "pin.h"

#define NKEYS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Made once; reachable until exit, so not leaks. */
static struct np_key *keys[NKEYS];

static int
fuzz_keys(void)
{
	uint8_t seed[32];
	int i;

	if (keys[0] != NULL) {
		return 0;
	}
	for (i = 0; i < NKEYS; i++) {
		memset(seed, 0, sizeof(seed));
		seed[0] = 'k';
		seed[1] = (uint8_t)('0' + i);
		if (np_key_from_seed("@fuzz", seed, &keys[i]) != NP_OK) {
			return -1;
		}
	}
	return 0;
}

static void
resign(const char *id, struct np_rot *rot, size_t n)
{
	struct np_buf *m;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < NKEYS; k++) {
			if (memcmp(rot[i].old_pk, np_key_pk(keys[k]),
			    NP_PK_LEN) != 0) {
				continue;
			}
			if ((m = np_buf_new(256)) == NULL) {
				return;
			}
			if (np_rot_message(id, rot[i].old_pk, rot[i].new_pk,
			    m) != NP_OK ||
			    np_key_sign(keys[k], np_buf_ptr(m), np_buf_len(m),
			    rot[i].sig) != NP_OK) {
				abort();
			}
			np_buf_free(m);
		}
	}
}

/* Pin keys[0] for the id, check, and judge what the check decided. */
static void
check(const struct np_cpc_lookup_res *res, const struct np_rot *rot,
    size_t n, const uint8_t pinned[NP_PK_LEN])
{
	struct np_pins *p = np_pins_new();
	uint8_t now[NP_PK_LEN];
	int changed, r, ok = 0;
	size_t i;

	if (p == NULL || np_pins_set(p, res->id, pinned) != NP_OK) {
		np_pins_free(p);
		return;
	}
	r = np_pins_check(p, res->id, res->pk, rot, n, 0, &changed);
	if (np_pins_get(p, res->id, now) != NP_OK) {
		abort();
	}
	if (r != NP_OK) {
		if (changed || memcmp(now, pinned, NP_PK_LEN) != 0) {
			abort(); /* a refusal changes nothing */
		}
	} else if (!changed) {
		if (memcmp(res->pk, pinned, NP_PK_LEN) != 0) {
			abort();
		}
	} else {
		for (i = 0; i < n; i++) {
			if (memcmp(rot[i].new_pk, res->pk, NP_PK_LEN) == 0 &&
			    np_rot_verify(res->id, &rot[i]) == NP_OK) {
				ok = 1;
			}
		}
		if (!ok || memcmp(now, res->pk, NP_PK_LEN) != 0) {
			abort();
		}
	}
	np_pins_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	struct np_cpc_lookup_res res;
	struct np_rot rot[NP_CPC_ROT_MAX];

	if (fuzz_keys() != 0 || np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	if (np_cpc_parse_lookup(o, &res) == NP_OK) {
		if (res.nrot > NP_CPC_ROT_MAX) {
			abort();
		}
		check(&res, res.rot, res.nrot, np_key_pk(keys[0]));
		memcpy(rot, res.rot, sizeof(rot));
		resign(res.id, rot, res.nrot);
		check(&res, rot, res.nrot, np_key_pk(keys[0]));
		if (res.nrot > 0) {
			check(&res, rot, res.nrot, rot[0].old_pk);
		}
	}
	json_object_put(o);
	return 0;
}
