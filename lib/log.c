#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "err.h"
#include "log.h"

/* Set once at start-up by np_log_init(); read-only afterwards. */
static const char *log_prog = "np";
static int log_syslog;
static int log_level = NP_LOG_INFO;

void
np_log_init(const char *prog, int to_syslog, int level)
{
	log_prog = prog;
	log_syslog = to_syslog;
	log_level = level;
	if (to_syslog)
		openlog(prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
np_log_set_level(int level)
{
	log_level = level;
}

int
np_log_get_level(void)
{
	return log_level;
}

static int
syslog_prio(int level)
{
	switch (level) {
	case NP_LOG_ERROR:
		return LOG_ERR;
	case NP_LOG_WARN:
		return LOG_WARNING;
	case NP_LOG_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

void
np_log(int level, const char *func, int r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Never let control characters from the network reach a log. */
	for (char *p = msg; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	if (log_syslog) {
		if (r != 0)
			syslog(syslog_prio(level), "%s: %s: %s", func, msg,
			    np_strerror(r));
		else
			syslog(syslog_prio(level), "%s: %s", func, msg);
	} else {
		if (level >= NP_LOG_DEBUG) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			fprintf(stderr, "%lld.%03ld ", (long long)ts.tv_sec,
			    ts.tv_nsec / 1000000);
		}
		if (r != 0)
			fprintf(stderr, "%s: %s: %s: %s\n", log_prog, func, msg,
			    np_strerror(r));
		else
			fprintf(stderr, "%s: %s: %s\n", log_prog, func, msg);
	}
	errno = saved;
}
