/*
 * libFuzzer target: the srd.open body np-srd takes (srd_open_parse),
 * and no body at all when the input is not JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "ident.h"
#include "msg.h"
#include "srd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	struct srd_open op;
	int r;

	if (np_json_parse(data, size, &o) != NP_OK) {
		o = NULL;
	}
	r = srd_open_parse(o, &op);
	/* The rt is kept even on a refusal, but only a valid one. */
	if ((op.rt[0] != '\0' && !np_tag_valid(op.rt)) ||
	    (r == NP_OK && op.peer[0] != '\0' && !np_ident_valid(op.peer)) ||
	    memchr(op.rt, '\0', sizeof(op.rt)) == NULL ||
	    memchr(op.peer, '\0', sizeof(op.peer)) == NULL) {
		abort();
	}
	json_object_put(o);
	return 0;
}
