/*
 * libFuzzer target: the np.session.err body a device sends the client
 * (np_session_err_parse).  The reason reaches the user's terminal, so
 * what comes out is printable ASCII only, cut to the buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SID "0123456789abcdef0123456789abcdef"

static void
one(struct json_object *o, size_t whylen)
{
	char why[256];
	size_t i;

	memset(why, 'x', sizeof(why));
	if (np_session_err_parse(o, SID, why, whylen) != NP_OK ||
	    whylen == 0) {
		return;
	}
	if (memchr(why, '\0', whylen) == NULL) {
		abort();
	}
	for (i = 0; why[i] != '\0'; i++) {
		if (why[i] < 0x20 || why[i] >= 0x7f) {
			abort();
		}
	}
	for (i = whylen; i < sizeof(why); i++) {
		if (why[i] != 'x') {
			abort(); /* nothing written past whylen */
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;

	if (np_json_parse(data, size, &o) != NP_OK) {
		o = NULL;
	}
	one(o, 256);
	one(o, 16);
	one(o, 1);
	one(o, 0);
	json_object_put(o);
	return 0;
}
