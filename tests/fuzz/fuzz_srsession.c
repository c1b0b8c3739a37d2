/*
 * libFuzzer target: the srd.session body.
 *   np_json_parse() on the input, np_sr_session_from_json() on the
 *   object; an accepted session goes back through np_sr_session_to_json()
 *   and must parse again to the same struct.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "srproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const struct np_sr_session *a, const struct np_sr_session *b)
{
	int i;

	if (strcmp(a->sid, b->sid) != 0 || a->deadline_ms != b->deadline_ms) {
		return 0;
	}
	for (i = 0; i < 2; i++) {
		if (strcmp(a->side[i].host, b->side[i].host) != 0 ||
		    a->side[i].port != b->side[i].port ||
		    memcmp(a->side[i].token, b->side[i].token,
		    NP_SR_TOKEN_LEN) != 0) {
			return 0;
		}
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL, *o2 = NULL;
	struct np_sr_session s, t;

	if (np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	if (np_sr_session_from_json(o, &s) == NP_OK) {
		if (np_sr_session_to_json(&s, &o2) != NP_OK ||
		    np_sr_session_from_json(o2, &t) != NP_OK || !same(&s, &t)) {
			abort();
		}
	}
	json_object_put(o2);
	json_object_put(o);
	return 0;
}
