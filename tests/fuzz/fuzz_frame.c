/*
 * Fuzz the frame decoder: the input is the byte stream of one connection;
 * decode frames from it until there are no more (or an error).
 */
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"
#include "err.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_buf *in, *out;
	struct json_object *obj;
	int r;

	if ((in = np_buf_new(size + 1)) == NULL)
		return 0;
	if (size > 0 && np_buf_put(in, data, size) != NP_OK) {
		np_buf_free(in);
		return 0;
	}
	out = np_buf_new(NP_FRAME_MAX + 4);
	for (;;) {
		obj = NULL;
		r = np_frame_decode(in, &obj);
		if (r != NP_OK)
			break;
		/* Re-encode what decoded, and decode that again. */
		if (out != NULL) {
			struct json_object *again = NULL;

			np_buf_reset(out);
			if (np_frame_encode(obj, out) == NP_OK)
				(void)np_frame_decode(out, &again);
			json_object_put(again);
		}
		json_object_put(obj);
	}
	np_buf_free(out);
	np_buf_free(in);
	return 0;
}
