/*
 * libFuzzer target: box plaintexts and box opening.
 *   1. np_box_parse_plain() on the input;
 *   2. np_box_open() on the input as a sealed box (fixed keys and time);
 *   3. the input sealed as a plaintext from @alice to @bob, then opened,
 *      so the checks after decryption see fuzzed plaintexts too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "key.h"

#define FUZZ_NOW 1700000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fixed test keys, made once; reachable until exit, so not leaks. */
static struct np_key *alice, *bob;

static int
fuzz_keys(void)
{
	uint8_t seed[32];

	if (alice != NULL) {
		return 0;
	}
	memset(seed, 'a', sizeof(seed));
	if (np_key_from_seed("@alice", seed, &alice) != 0) {
		return -1;
	}
	memset(seed, 'b', sizeof(seed));
	return np_key_from_seed("@bob", seed, &bob);
}

static void
open_one(const uint8_t *box, size_t len)
{
	struct np_replay *rc = np_replay_new(4);
	struct np_box_msg *m = NULL;

	if (rc == NULL) {
		return;
	}
	if (np_box_open(bob, np_key_pk(alice), "@alice", NULL, box, len,
	    FUZZ_NOW, rc, &m) == 0) {
		np_box_msg_free(m);
		m = NULL;
		/* The same box again is a replay. */
		if (np_box_open(bob, np_key_pk(alice), "@alice", NULL, box,
		    len, FUZZ_NOW, rc, &m) == 0) {
			__builtin_trap();
		}
	}
	np_box_msg_free(m);
	np_replay_free(rc);
}

static void
seal_open(const uint8_t *pt, size_t len)
{
	uint8_t xpk[32], *box;

	if (len > NP_BOX_MAX - NP_BOX_OVERHEAD ||
	    np_pk_box_pk(np_key_pk(bob), xpk) != 0) {
		return;
	}
	if ((box = malloc(len + NP_BOX_OVERHEAD)) == NULL) {
		return;
	}
	memset(box, 0, NP_BOX_NONCE_LEN);
	if (crypto_box_easy(box + NP_BOX_NONCE_LEN, pt, len, box, xpk,
	    np_key_box_sk(alice)) == 0) {
		open_one(box, len + NP_BOX_OVERHEAD);
	}
	free(box);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_box_msg *m = NULL;

	if (np_box_parse_plain(data, size, &m) == 0 && m == NULL) {
		__builtin_trap();
	}
	np_box_msg_free(m);
	if (fuzz_keys() != 0) {
		return 0;
	}
	open_one(data, size);
	seal_open(data, size);
	return 0;
}
