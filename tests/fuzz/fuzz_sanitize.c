/*
 * libFuzzer target: cli_sanitize and cli_sanitize_inplace, which np
 * applies to every string from a peer before it reaches the terminal (np
 * recv, np ping; cli_err for refusal reasons).  Every string in the
 * input (one JSON object, as a box body) comes out with no C0 or C1
 * control character and no DEL; in place, the length stays.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "err.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
clean(const char *d)
{
	const unsigned char *u;

	for (u = (const unsigned char *)d; *u != '\0'; u++) {
		if (*u < 0x20 || *u == 0x7f ||
		    (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f)) {
			abort();
		}
	}
}

static void
check(const char *s)
{
	char *d;

	if ((d = cli_sanitize(s)) == NULL) {
		return;
	}
	if (strlen(d) > strlen(s)) {
		abort();
	}
	clean(d);
	free(d);
	if ((d = strdup(s)) == NULL) {
		return;
	}
	cli_sanitize_inplace(d);
	if (strlen(d) != strlen(s)) {
		abort();
	}
	clean(d);
	free(d);
}

static void
walk(struct json_object *o, int depth)
{
	size_t i, n;

	if (depth > 64) {
		return;
	}
	switch (json_object_get_type(o)) {
	case json_type_string:
		check(json_object_get_string(o));
		break;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			check(k);
			walk(v, depth + 1);
		}
		break;
	}
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++) {
			walk(json_object_array_get_idx(o, i), depth + 1);
		}
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;

	if (np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	walk(o, 0);
	json_object_put(o);
	return 0;
}
