/*
 * libFuzzer target: what np proxy makes of ssh's %h and %p
 * (np_target_resolve, np_port_parse) and the known_hosts name built from
 * them (np_kh_name).  The input, up to its first NUL, is the host name;
 * the rest is the port.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "ident.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct np_alias aliases[] = {
	{ "web", "@alice", "default" },
	{ "db.prod", "@ops", "db" },
};

static int
name_chars_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '.' || *s == '-')) {
			return 0;
		}
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *host, *port, why[256], kh[NP_KH_NAME_MAX];
	struct np_target t;
	size_t hlen;
	uint16_t p = 22;
	int r;

	hlen = strnlen((const char *)data, size);
	if ((host = malloc(hlen + 1)) == NULL ||
	    (port = malloc(size - hlen + 1)) == NULL) {
		free(host);
		return 0;
	}
	memcpy(host, data, hlen);
	host[hlen] = '\0';
	if (hlen < size) {
		memcpy(port, data + hlen + 1, size - hlen - 1);
		port[size - hlen - 1] = '\0';
	} else {
		port[0] = '\0';
	}
	why[0] = '\0';
	r = np_target_resolve(host, aliases, 2, &t, why, sizeof(why));
	if (r == NP_OK) {
		if (!name_chars_ok(t.host) || !np_ident_valid(t.ident) ||
		    !np_devname_valid(t.device)) {
			abort();
		}
	} else if (why[0] == '\0') {
		abort(); /* a refusal says why */
	}
	if (np_port_parse(port, &p) == NP_OK && p == 0) {
		abort();
	}
	if (r == NP_OK && np_kh_name(t.host, p, kh, sizeof(kh)) != NP_OK) {
		abort(); /* a resolved name always fits */
	}
	free(host);
	free(port);
	return 0;
}
