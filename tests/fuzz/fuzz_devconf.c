/*
 * libFuzzer target: deviced.conf (dev_conf_parse: the keyword table,
 * then dev_conf_check with the Allow lines, device names, modes and
 * paths).  An accepted file is queried the way requests query it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dev_conf c;
	const struct dev_allow *a;
	char err[512];
	size_t i;

	if (dev_conf_init(&c) != NP_OK) {
		return 0;
	}
	err[0] = '\0';
	if (dev_conf_parse(&c, (const char *)data, size, "fuzz", err,
	    sizeof(err)) == NP_OK) {
		for (i = 0; i < c.nallow; i++) {
			if ((a = dev_conf_allow(&c, c.allow[i].id)) == NULL) {
				abort(); /* every Allow line is found */
			}
		}
		(void)dev_conf_allow(&c, "@alice");
		for (i = 0; i < c.device_name.n; i++) {
			if (!dev_conf_serves(&c, c.device_name.v[i])) {
				abort();
			}
		}
		(void)dev_conf_serves(&c, "default");
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	dev_conf_free(&c);
	return 0;
}
