/* libFuzzer target: the known_identities parser (np_pins_parse). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "pin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parsed set serialises to a file that parses back to the same set. */
static void
roundtrip(const struct np_pins *p)
{
	struct np_buf *b = np_buf_new(NP_PINS_FILE_MAX);
	struct np_pins *q = NULL;

	if (b == NULL || np_pins_serialize(p, b) != 0) {
		np_buf_free(b);
		return;
	}
	if (np_pins_parse(np_buf_ptr(b), np_buf_len(b), &q) != 0 ||
	    np_pins_count(q) != np_pins_count(p)) {
		__builtin_trap();
	}
	np_pins_free(q);
	np_buf_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_pins *p = NULL;
	uint8_t pk[NP_PK_LEN];

	if (np_pins_parse(data, size, &p) != 0) {
		if (p != NULL) {
			__builtin_trap(); /* nothing on failure */
		}
		return 0;
	}
	roundtrip(p);
	/* Lookups and edits on what the parser built. */
	(void)np_pins_get(p, "@dev", pk);
	memset(pk, 7, sizeof(pk));
	(void)np_pins_set(p, "@dev", pk);
	if (np_pins_get(p, "@dev", pk) != 0 || pk[0] != 7) {
		__builtin_trap();
	}
	(void)np_pins_forget(p, "@dev");
	np_pins_free(p);
	return 0;
}
