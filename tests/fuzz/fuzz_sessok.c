/*
 * libFuzzer target: the np.session.ok body a device sends the client
 * (np_session_ok_parse, and np_session_ok_parse_tunnel for a tunnel's).
 * The host keys it accepts are canonical public key lines, as written to
 * known_hosts; its cipher is one we know, or none without "enc".  What
 * the ssh parser accepts the tunnel parser accepts the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "err.h"
#include "frame.h"
#include "session.h"
#include "srec.h"
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

/* No "enc": no cipher; else one we know. */
static void
check_cipher(struct json_object *o, int cipher)
{
	int has = json_object_object_get_ex(o, "enc", NULL);

	if ((!has && cipher != NP_SREC_NONE) || (has &&
	    cipher != NP_SREC_AES256GCM &&
	    cipher != NP_SREC_CHACHA20POLY1305)) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL;
	struct np_session_ok ok, tok;
	size_t i;
	int r;

	if (np_json_parse(data, size, &o) != NP_OK) {
		return 0;
	}
	if ((r = np_session_ok_parse(o, SID, &ok)) == NP_OK) {
		if (ok.nhostkeys == 0 || ok.nhostkeys > NP_HOSTKEYS_MAX) {
			abort();
		}
		for (i = 0; i < ok.nhostkeys; i++) {
			check_key(ok.hostkeys[i]);
		}
		check_cipher(o, ok.cipher);
	} else if (ok.nhostkeys != 0) {
		abort(); /* cleared on failure */
	}
	if (np_session_ok_parse_tunnel(o, SID, &tok) == NP_OK) {
		if (tok.nhostkeys > NP_HOSTKEYS_MAX) {
			abort();
		}
		for (i = 0; i < tok.nhostkeys; i++) {
			check_key(tok.hostkeys[i]);
		}
		check_cipher(o, tok.cipher);
		if (r == NP_OK && (tok.nhostkeys != ok.nhostkeys ||
		    tok.cipher != ok.cipher || tok.expires != ok.expires ||
		    memcmp(tok.kx, ok.kx, sizeof(ok.kx)) != 0)) {
			abort();
		}
	} else if (r == NP_OK || tok.nhostkeys != 0) {
		abort(); /* stricter than the ssh parser, or not cleared */
	}
	np_session_ok_clear(&tok);
	np_session_ok_clear(&ok);
	json_object_put(o);
	return 0;
}
