/*
 * `ssh -G HOST` for np doctor: run it (no shell), and take apart what it
 * prints and the ProxyCommand in it (pure functions).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "ev.h"
#include "sshcfg.h"

void
np_sshg_parse(char *text, struct np_sshg *g)
{
	char *line, *next, *sp;

	memset(g, 0, sizeof(*g));
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL) {
			*next++ = '\0';
		}
		if ((sp = strchr(line, ' ')) == NULL) {
			continue;
		}
		*sp++ = '\0';
		if (strcmp(line, "user") == 0) {
			g->user = sp;
		} else if (strcmp(line, "hostname") == 0) {
			g->hostname = sp;
		} else if (strcmp(line, "port") == 0) {
			g->port = sp;
		} else if (strcmp(line, "proxycommand") == 0) {
			g->proxycommand = sp;
		} else if (strcmp(line, "userknownhostsfile") == 0) {
			g->ukh = sp;
		} else if (strcmp(line, "identityfile") == 0 &&
		    g->nidfiles < NP_SSHG_IDFILES_MAX) {
			g->idfiles[g->nidfiles++] = sp;
		}
	}
}

int
np_sshg_proxy_parse(const char *pc, struct np_sshg_proxy *p, char *why,
    size_t whylen)
{
	char *w[NP_SSHG_WORDS_MAX + 1], *save = NULL, *tok;
	const char *base;
	size_t n = 0, i = 0;

	memset(p, 0, sizeof(*p));
	if (strlen(pc) >= sizeof(p->buf)) {
		snprintf(why, whylen, "it is too long");
		return NP_ERR_INVALID;
	}
	memcpy(p->buf, pc, strlen(pc) + 1);
	for (tok = strtok_r(p->buf, " \t", &save); tok != NULL &&
	    n <= NP_SSHG_WORDS_MAX; tok = strtok_r(NULL, " \t", &save)) {
		w[n++] = tok;
	}
	if (n > NP_SSHG_WORDS_MAX) {
		snprintf(why, whylen, "it has too many words");
		return NP_ERR_INVALID;
	}
	if (n > 0 && strcmp(w[0], "exec") == 0) {
		i++;
	}
	base = i < n ? strrchr(w[i], '/') : NULL;
	base = base != NULL ? base + 1 : i < n ? w[i] : "";
	if (strcmp(base, "np") != 0) {
		snprintf(why, whylen, "it does not run np");
		return NP_ERR_INVALID;
	}
	p->np = w[i];
	for (i++; i < n && w[i][0] == '-'; i++) {
		if (strcmp(w[i], "-F") == 0 && i + 1 < n) {
			p->config = w[++i];
		} else if (strcmp(w[i], "-v") != 0) {
			snprintf(why, whylen, "it gives np the option %.64s",
			    w[i]);
			return NP_ERR_INVALID;
		}
	}
	if (n != i + 4 || strcmp(w[i], "proxy") != 0 ||
	    strcmp(w[i + 1], "%h") != 0 || strcmp(w[i + 2], "%p") != 0 ||
	    strcmp(w[i + 3], "%r") != 0) {
		snprintf(why, whylen, "it is not np proxy %%h %%p %%r");
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* The value of token c, or NULL. */
static const char *
expand_token(char c, const struct np_sshg *g, const struct np_sshg_env *e,
    char num[32])
{
	switch (c) {
	case '%':
		return "%";
	case 'd':
		return e->home;
	case 'h':
		return g->hostname;
	case 'r':
		return g->user;
	case 'n':
		return e->arg;
	case 'p':
		return g->port;
	case 'u':
		return e->luser;
	case 'i':
		snprintf(num, 32, "%u", e->uid);
		return num;
	default:
		return NULL;
	}
}

int
np_sshg_expand(const char *in, const struct np_sshg *g,
    const struct np_sshg_env *e, char *out, size_t outlen)
{
	const char *v;
	char num[32];
	size_t o = 0, k;

	if (outlen == 0) {
		return NP_ERR_TOO_BIG;
	}
	if (in[0] == '~' && (in[1] == '/' || in[1] == '\0')) {
		if (e->home == NULL) {
			return NP_ERR_INVALID;
		}
		if ((k = strlen(e->home)) >= outlen) {
			return NP_ERR_TOO_BIG;
		}
		memcpy(out, e->home, k);
		o = k;
		in++;
	}
	for (; *in != '\0'; in++) {
		if (*in != '%') {
			v = in;
			k = 1;
		} else if ((v = expand_token(*++in, g, e, num)) == NULL) {
			return NP_ERR_INVALID; /* also "%" at the end */
		} else {
			k = strlen(v);
		}
		if (k >= outlen - o) {
			return NP_ERR_TOO_BIG;
		}
		memcpy(out + o, v, k);
		o += k;
	}
	out[o] = '\0';
	return NP_OK;
}

/* ---------------- running ssh -G ---------------- */

struct sink {
	int fd;
	char *buf;
	size_t len, cap; /* cap excludes the NUL */
};

/* One read from a ready pipe; what does not fit is dropped. */
static void
sink_read(struct sink *s)
{
	char drop[4096];
	size_t room = s->cap - s->len;
	ssize_t n;

	n = read(s->fd, room > 0 ? s->buf + s->len : drop, room > 0 ? room :
	    sizeof(drop));
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
		return;
	}
	if (n <= 0) {
		s->fd = -1;
	} else if (room > 0) {
		s->len += (size_t)n;
	}
	s->buf[s->len] = '\0';
}

/* Read both pipes until EOF on both, or the deadline. */
static int
sinks_drain(struct sink *s, uint64_t deadline)
{
	struct pollfd pf[2];
	uint64_t now;
	int i;

	while (s[0].fd >= 0 || s[1].fd >= 0) {
		if ((now = np_now_mono_ms()) >= deadline) {
			return NP_ERR_TIMEOUT;
		}
		for (i = 0; i < 2; i++) {
			pf[i].fd = s[i].fd;
			pf[i].events = POLLIN;
			pf[i].revents = 0;
		}
		if (poll(pf, 2, (int)(deadline - now)) < 0 && errno != EINTR) {
			return NP_ERR_SYSTEM;
		}
		for (i = 0; i < 2; i++) {
			if (s[i].fd >= 0 && pf[i].revents != 0) {
				sink_read(&s[i]);
			}
		}
	}
	return NP_OK;
}

static void
ssh_child(int fo, int fe, char *const *argv)
{
	int fd = open("/dev/null", O_RDONLY);

	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) {
		_exit(127);
	}
	(void)signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int
np_sshg_run(const char *file, const char *host, int timeout_ms,
    char **out, int *status, char *err, size_t errlen)
{
	char *argv[7];
	struct sink s[2];
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, st = 0, i = 0, r;
	pid_t pid;

	*status = 0;
	if (errlen == 0) {
		return NP_ERR_INVALID;
	}
	err[0] = '\0';
	argv[i++] = "ssh";
	if (file != NULL) {
		argv[i++] = "-F";
		argv[i++] = (char *)file;
	}
	argv[i++] = "-G";
	argv[i++] = "--";
	argv[i++] = (char *)host;
	argv[i] = NULL;
	if ((*out = malloc(NP_SSHG_OUT_MAX + 1)) == NULL) {
		return NP_ERR_ALLOC;
	}
	(*out)[0] = '\0';
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
	    (pid = fork()) < 0) {
		r = NP_ERR_SYSTEM;
		goto out;
	}
	if (pid == 0) {
		ssh_child(po[1], pe[1], argv);
	}
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	s[0] = (struct sink){ po[0], *out, 0, NP_SSHG_OUT_MAX };
	s[1] = (struct sink){ pe[0], err, 0, errlen - 1 };
	if ((r = sinks_drain(s, np_now_mono_ms() + (uint64_t)timeout_ms)) !=
	    NP_OK) {
		(void)kill(pid, SIGKILL); /* our own child */
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
		continue;
	}
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
 out:
	for (i = 0; i < 2; i++) {
		if (po[i] >= 0) {
			close(po[i]);
		}
		if (pe[i] >= 0) {
			close(pe[i]);
		}
	}
	return r;
}
