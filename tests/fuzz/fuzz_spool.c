/*
 * libFuzzer target: the key spool file parser (np_spool_parse), and the
 * authorized_keys line built from what it accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_spool_entry e, f;
	struct np_buf *b;

	if (np_spool_parse(data, size, &e) != 0) {
		return 0;
	}
	if ((b = np_buf_new(NP_SPOOL_FILE_MAX)) == NULL) {
		return 0;
	}
	/* The format is strict: what parses is exactly what we write. */
	if (np_spool_format(&e, b) != 0 || np_buf_len(b) != size ||
	    memcmp(np_buf_ptr(b), data, size) != 0) {
		__builtin_trap();
	}
	np_buf_reset(b);
	/* The line the keyhelper prints parses back to the same fields. */
	if (np_authkey_format(&e, b) != 0 ||
	    np_authkey_parse(np_buf_ptr(b), np_buf_len(b), &f) != 0 ||
	    f.expires != e.expires || strcmp(f.sid, e.sid) != 0 ||
	    memcmp(f.pk, e.pk, sizeof(f.pk)) != 0 ||
	    memchr(np_buf_ptr(b), '\n', np_buf_len(b)) != NULL) {
		__builtin_trap();
	}
	np_buf_free(b);
	return 0;
}
