/*
 * Logging.  Every line carries the function name; the *_r variants add
 * the name of an np_err code.  Daemons log to syslog (journal) unless
 * started in the foreground with debugging, tools log to stderr.
 */
#ifndef NP_LOG_H
#define NP_LOG_H

enum np_log_level {
	NP_LOG_ERROR = 0,
	NP_LOG_WARN,
	NP_LOG_INFO,
	NP_LOG_DEBUG,
};

/* prog: name shown in each line; to_syslog: nonzero for syslog. */
void np_log_init(const char *prog, int to_syslog, int level);
void np_log_set_level(int level);
int np_log_get_level(void);

void np_log(int level, const char *func, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define np_error(...)  np_log(NP_LOG_ERROR, __func__, 0, __VA_ARGS__)
#define np_warn(...)   np_log(NP_LOG_WARN, __func__, 0, __VA_ARGS__)
#define np_info(...)   np_log(NP_LOG_INFO, __func__, 0, __VA_ARGS__)
#define np_debug(...)  np_log(NP_LOG_DEBUG, __func__, 0, __VA_ARGS__)
#define np_error_r(r, ...) np_log(NP_LOG_ERROR, __func__, (r), __VA_ARGS__)
#define np_warn_r(r, ...)  np_log(NP_LOG_WARN, __func__, (r), __VA_ARGS__)
#define np_info_r(r, ...)  np_log(NP_LOG_INFO, __func__, (r), __VA_ARGS__)
#define np_debug_r(r, ...) np_log(NP_LOG_DEBUG, __func__, (r), __VA_ARGS__)

#endif
