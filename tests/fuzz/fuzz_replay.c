/*
 * libFuzzer target: the replay file (np_replay_load, np_replay_persist's
 * reader) on arbitrary content, into a small cache.  Loading the same
 * text again adds nothing; an id loaded is refused as a replay.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "err.h"

#define NOW 1700000000000LL
#define MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_replay *rc;
	char mid[NP_MID_LEN + 1];
	size_t n;

	if ((rc = np_replay_new(MAX)) == NULL) {
		return 0;
	}
	np_replay_load(rc, data, size, NOW);
	if ((n = np_replay_count(rc)) > MAX) {
		abort();
	}
	np_replay_load(rc, data, size, NOW);
	if (np_replay_count(rc) != n) {
		abort();
	}
	/* The first line's id, when the file starts with a live entry. */
	if (n > 0 && size > NP_MID_LEN) {
		memcpy(mid, data, NP_MID_LEN);
		mid[NP_MID_LEN] = '\0';
		if (np_mid_valid(mid) &&
		    np_replay_check_add(rc, mid, NOW + 1000, NOW) == NP_OK) {
			/* Only when that first line was not loaded. */
			if (np_replay_count(rc) != n + 1) {
				abort();
			}
		}
	}
	np_replay_free(rc);
	return 0;
}
