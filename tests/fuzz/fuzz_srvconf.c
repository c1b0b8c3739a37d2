/*
 * libFuzzer target: np-server's server.conf (np_conf_parse over
 * srv_conf_table, then srv_conf_check: Listen, LogLevel).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "srv_cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_conf c;
	struct np_hostport hp;
	char err[512];

	srv_conf_init(&c);
	err[0] = '\0';
	if (np_conf_parse(srv_conf_table, &c, (const char *)data, size,
	    "fuzz", err, sizeof(err)) == NP_OK &&
	    srv_conf_check(&c, "fuzz", err, sizeof(err)) == NP_OK) {
		/* What the check accepted, the server can listen on. */
		if (c.listen == NULL || c.log_level == NULL ||
		    srv_listen_parse(c.listen, &hp) != NP_OK) {
			abort();
		}
		np_hostport_free(&hp);
	} else if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL) {
		abort(); /* a failure says why */
	}
	srv_conf_free(&c);
	return 0;
}
