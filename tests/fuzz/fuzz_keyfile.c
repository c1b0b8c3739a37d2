/* libFuzzer target: the identity key-file parser (np_key_parse). */
#include <stddef.h>
#include <stdint.h>

#include "key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_key *k = NULL;

	if (np_key_parse(data, size, &k) == 0) {
		/* A parsed key must serialise back to a parseable file. */
		struct np_buf *b = np_buf_new_secure(NP_KEYFILE_MAX);
		struct np_key *k2 = NULL;

		if (b != NULL && np_key_serialize(k, b) == 0 &&
		    np_key_parse(np_buf_ptr(b), np_buf_len(b), &k2) != 0) {
			__builtin_trap();
		}
		np_key_free(k2);
		np_buf_free(b);
	}
	np_key_free(k);
	return 0;
}
