/*
 * libFuzzer target: the np.session.ok body a device sends the client
 * (np_session_ok_parse).  The host keys it accepts are canonical public
 * key lines, as written to known_hosts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "session.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SID "0123456789abcdef0123456789abcdef"

static void
check_key(const char *line)
{
	struct np_sshpub *p = NULL;
	struct np_buf *b;

	if (strchr(line, '\n') != NULL || strchr(line, '\r') != NULL ||
	    np_sshpub_parse((const uint8_t *)line, strlen(line), &p) !=
	    NP_OK || p->comment[0] != '\0') {
		abort();
	}
	if ((b = np_buf_new(2 * NP_SSHPUB_LINE_MAX)) != NULL) {
		if (np_sshpub_format(p, b) != NP_OK ||
		    np_buf_len(b) != strlen(line) ||
		    memcmp(np_buf_ptr(b), line, np_buf_len(b)) != 0) {
			abort();
		}
	}
	np_buf_free(b);
	np_sshpub_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	struct np_session_ok ok;
	size_t i;

	if (np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	if (np_session_ok_parse(o, SID, &ok) == NP_OK) {
		if (ok.nhostkeys == 0 || ok.nhostkeys > NP_HOSTKEYS_MAX) {
			abort();
		}
		for (i = 0; i < ok.nhostkeys; i++) {
			check_key(ok.hostkeys[i]);
		}
	} else if (ok.nhostkeys != 0) {
		abort(); /* cleared on failure */
	}
	np_session_ok_clear(&ok);
	json_object_put(o);
	return 0;
}
