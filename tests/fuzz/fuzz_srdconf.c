/*
 * libFuzzer target: np-srd's srd.conf (srd_conf_parse: the keyword
 * table, then srd_conf_check with PortRange, Allow, addresses, limits).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "srd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srd_conf c;
	char err[512];
	size_t i;

	if (srd_conf_init(&c) != NP_OK) {
		return 0;
	}
	err[0] = '\0';
	if (srd_conf_parse(&c, (const char *)data, size, "fuzz", err,
	    sizeof(err)) == NP_OK) {
		if (c.port_lo > c.port_hi || c.port_lo < 0 ||
		    c.port_hi > 65535) {
			abort();
		}
		for (i = 0; !c.allow_all && i < c.allow.n; i++) {
			if (!srd_conf_allowed(&c, c.allow.v[i])) {
				abort(); /* every Allow entry is allowed */
			}
		}
		(void)srd_conf_allowed(&c, "@alice");
	} else if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	srd_conf_free(&c);
	return 0;
}
