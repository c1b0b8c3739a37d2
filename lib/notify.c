/*
 * systemd readiness: see notify.h.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "notify.h"

int
np_notify(const char *state)
{
	struct sockaddr_un sa;
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;
	ssize_t n;
	int fd, r = NP_OK;

	if (path == NULL || path[0] == '\0' || state == NULL) {
		return NP_OK;
	}
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		return NP_ERR_INVALID;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@') {
		sa.sun_path[0] = '\0'; /* abstract namespace */
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		return NP_ERR_SYSTEM;
	}
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	if (n < 0 || (size_t)n != strlen(state)) {
		r = NP_ERR_SYSTEM;
	}
	close(fd);
	return r;
}
