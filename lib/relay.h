/*
 * The relay pump: moves bytes both ways between two endpoints on the
 * event loop until both directions have ended, with backpressure and
 * half-close.  Used by np-srd (socket <-> socket), np-deviced (SR socket
 * <-> local sshd) and np proxy (stdin/stdout <-> SR socket).
 *
 * Each endpoint is a read fd and a write fd (the same fd for a socket).
 * Direction A->B reads from a.rfd and writes to b.wfd.  Bytes move with
 * splice(2) through a pipe created on first use (so an idle relay holds
 * no pipe); where splice fails with EINVAL (e.g. a tty or a regular
 * file) that direction falls back to a bounded copy buffer.  A direction
 * never holds more than one pipe (NP_RELAY_PIPE_SZ, or 64 KiB where the
 * kernel refuses more) or NP_RELAY_BUF bytes: while its output is
 * blocked, its input is not read.  EOF on a.rfd is forwarded
 * as shutdown(SHUT_WR) on b.wfd (or close of b.wfd when it is not a
 * socket) once everything read before it has been written.
 *
 * Details callers must know:
 * - A write end that is not a socket is closed by the relay at EOF (that
 *   is how a pipe reader such as ssh learns of the end), unless it is also
 *   the other direction's read fd.  np_relay_stats()->wfd_closed says which
 *   ones were closed: the caller must not close those again.
 * - When a read fd or write fd is a pipe (np proxy: ssh's stdin/stdout),
 *   that direction splices straight between the pipe and the other fd,
 *   with no intermediate pipe.
 * - splice(2) to a socket can raise SIGPIPE: programs using the relay set
 *   SIGPIPE to SIG_IGN.
 * - A direction that is moving bytes holds a pipe (two fds); a copy-path
 *   direction holds NP_RELAY_BUF bytes of heap instead.  Both are given
 *   back when the relay has been quiet for NP_RELAY_TRIM_MS (one timer
 *   per relay, only while it holds them or has an idle timeout), so idle
 *   relays hold neither (pipe buffers count against the per-user
 *   fs.pipe-user-pages-soft limit).
 * - The done callback is never called from inside np_relay_start() or
 *   np_relay_stop(): np_relay_stop() unregisters the fds at once and the
 *   callback follows from the loop (a zero-delay timer); np_relay_free()
 *   before that cancels it.
 */
#ifndef NP_RELAY_H
#define NP_RELAY_H

#include <stdint.h>

#include "ev.h"
#include "srec.h"

#define NP_RELAY_BUF (64 * 1024)

struct np_relay;

struct np_relay_end {
	int rfd;
	int wfd; /* may equal rfd */
};

enum np_relay_result {
	NP_RELAY_DONE = 0,	/* both directions ended cleanly */
	NP_RELAY_ERROR = 1,	/* read/write error or reset on a side */
	NP_RELAY_IDLE = 2,	/* idle timeout */
	NP_RELAY_STOPPED = 3,	/* np_relay_stop() */
};

struct np_relay_stats {
	uint64_t a_to_b; /* bytes written to b */
	uint64_t b_to_a; /* bytes written to a */
	uint64_t started_ms;
	uint64_t last_io_ms;
	int err_side;	 /* 0 none, 1 a, 2 b */
	int err_errno;
	int wfd_closed;	 /* bit 0: a.wfd, bit 1: b.wfd closed by the relay */
	/* A relay stream record failure (err_errno EBADMSG or EPROTO):
	 * what went wrong, for the user; NULL otherwise. */
	const char *err_what;
};

/* Options for np_relay_start_ex(); zero means the default. */
struct np_relay_opts {
	uint64_t idle_ms;   /* 0: no idle timeout */
	uint32_t pipe_size; /* F_SETPIPE_SZ for the relay's own pipes,
			       best effort; 0: NP_RELAY_PIPE_SZ */
	int force_copy;	    /* tests: never splice, copy through a buffer */
	uint64_t trim_ms;   /* a direction quiet this long gives back its
			       pipe / buffer; 0: NP_RELAY_TRIM_MS */
	/*
	 * Relay stream records (srec.h) per direction (0: a -> b, 1: b ->
	 * a), NULL: bytes pass as they are.  A sealing one wraps what it
	 * reads into records and ends its output with the final record; an
	 * opening one writes only authenticated plaintext and ends the
	 * relay with NP_RELAY_ERROR (err_what says why) on a bad record,
	 * bytes after the final record, or an input that ends without it.
	 * Such a direction copies through one buffer of NP_RELAY_XBUF
	 * bytes.  On NP_OK the relay owns them (np_relay_free frees them);
	 * on failure the caller still does.
	 */
	struct np_srec *xf[2];
	/*
	 * With records: nonzero lets the ends hand off (an ssh session whose
	 * ends agreed on it, docs/PROTOCOL.md): a sealing direction seals
	 * its first handoff bytes, then the handoff record, and from there
	 * relays the bytes as they are; an opening one accepts the handoff
	 * record and relays what follows it as it is.  0: records for the
	 * whole stream, and a handoff record is a bad record.
	 */
	uint32_t handoff;
};

#define NP_RELAY_XSEGS 4 /* records sealed from one read */

#define NP_RELAY_TRIM_MS 5000

#define NP_RELAY_PIPE_SZ (256 * 1024)
#define NP_RELAY_XBUF (NP_RELAY_XSEGS * (NP_SREC_MAX + NP_SREC_OVERHEAD))

/*
 * Called once when the relay has finished, from the loop.  The callback
 * owns nothing: it must call np_relay_free() (it may do so inside the
 * callback) and close the fds, which the relay never closes except as
 * said above for non-socket write ends.
 */
typedef void np_relay_done_cb(struct np_relay *r, int result, void *arg);

/*
 * Start relaying.  All fds must be non-blocking.  idle_ms 0: no idle
 * timeout.  NP_OK or an error (nothing registered then).
 */
int np_relay_start(struct np_ev *ev, struct np_relay_end a,
    struct np_relay_end b, uint64_t idle_ms, np_relay_done_cb *cb, void *arg,
    struct np_relay **out);
/* Same with options (o may be NULL: the defaults). */
int np_relay_start_ex(struct np_ev *ev, struct np_relay_end a,
    struct np_relay_end b, const struct np_relay_opts *o, np_relay_done_cb *cb,
    void *arg, struct np_relay **out);
/* Stop now (the done callback runs with NP_RELAY_STOPPED). */
void np_relay_stop(struct np_relay *r);
void np_relay_free(struct np_relay *r);
const struct np_relay_stats *np_relay_stats(const struct np_relay *r);
/* Set TCP keepalive + TCP_USER_TIMEOUT on a socket (ignored otherwise). */
int np_sock_keepalive(int fd, int idle_s, int user_timeout_ms);

#endif
