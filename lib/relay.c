/*
 * The relay pump.  Two directions, each in one of three modes:
 *
 *  PIPE    rfd -> own pipe -> wfd with splice(2); the pipe is created on
 *          the first readable event and holds at most its size in flight.
 *  DIRECT  rfd or wfd is itself a pipe: one splice(2) moves the bytes.
 *  COPY    read(2)/write(2) through a heap buffer of NP_RELAY_BUF bytes,
 *          for fds splice refuses (EINVAL), or when forced.
 *  XFORM   relay stream records (srec.h): a sealing direction readv(2)s
 *          into NP_RELAY_XSEGS record-sized slots of one buffer, seals
 *          each in place and writes the records at once; an opening one
 *          reads records, opens every whole one in place and writev(2)s
 *          their plaintexts, then moves a partial record to the front.
 *          After a handoff (relay.h) the direction continues as PIPE or
 *          DIRECT, its keys wiped.
 *
 * Backpressure: a direction either waits for its input (NP_EV_READ on
 * rfd) or, while it holds unwritten bytes, for its output (NP_EV_WRITE on
 * wfd) and then does not read.  The mask of each distinct fd is the union
 * of both directions' needs; an fd needing nothing is taken out of the
 * loop altogether (so EPOLLHUP on it cannot spin).  Level-triggered.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "relay.h"

#define RELAY_BUDGET (4 * 1024 * 1024) /* bytes per direction a callback */
#define RELAY_DIRECT_CHUNK (1024 * 1024)
#define SPLICE_FLAGS (SPLICE_F_NONBLOCK | SPLICE_F_MOVE)

#define XIOV_MAX 64 /* plaintexts of opened records written at once */

enum { M_PIPE = 0, M_DIRECT, M_COPY, M_XFORM };

/* An XFORM direction's state (only where records are used). */
struct xdir {
	struct np_srec *rec;
	uint8_t *buf;	       /* NP_RELAY_XBUF bytes, NULL while none */
	uint32_t off, len;     /* seal: records buf[off..off+len) to write */
	uint32_t have, parsed; /* open: buf[0..have) read, [0..parsed) opened */
	struct iovec iov[XIOV_MAX]; /* open: plaintexts to write */
	int niov, iovi;
	uint64_t left;	       /* seal with handoff: bytes before it */
	uint8_t sealing;
	uint8_t handoff;       /* the ends agreed on a handoff */
	uint8_t final;	       /* NP_SREC_IS_FINAL / _HANDOFF: seal: made;
				* open: seen */
};
enum { W_NONE = 0, W_READ, W_WRITE };
enum { P_OK = 0, P_ERR };

struct rdir {
	int rfd, wfd;
	int pr, pw;	   /* own pipe, -1 while none */
	char *buf;	   /* COPY buffer, NULL while none */
	uint32_t pending;  /* bytes in the own pipe */
	uint32_t cap;	   /* own pipe's size */
	uint32_t off, len; /* COPY buffer contents */
	uint8_t mode;
	uint8_t want;
	uint8_t eof;
	uint8_t ended;
	uint8_t wsock; /* wfd is a socket */
	uint8_t rfifo; /* rfd is a pipe */
	struct xdir *x; /* XFORM only */
};

struct rfd {
	int fd;	       /* -1: unused slot */
	uint32_t mask; /* registered mask, 0: not in the loop */
};

struct np_relay {
	struct np_ev *ev;
	np_relay_done_cb *cb;
	void *arg;
	struct rdir d[2]; /* 0: a -> b, 1: b -> a */
	struct rfd fds[4];
	uint64_t timer; /* idle/trim timer, or the stop timer */
	uint64_t idle_ms;
	uint64_t trim_ms; /* release pipes and buffers unused this long */
	struct np_relay_stats st;
	uint32_t pipe_size;
	uint8_t finished;
	uint8_t stopping;
};

static void relay_fd_cb(struct np_ev *, int, uint32_t, void *);
static uint8_t splice_mode(struct rdir *);
static void timer_cb(struct np_ev *, uint64_t, void *);
static int arm_timer(struct np_relay *, uint64_t);

/* Side (1 a, 2 b) of direction i's read fd and write fd. */
static int
rside(int i)
{
	return i == 0 ? 1 : 2;
}

static int
wside(int i)
{
	return i == 0 ? 2 : 1;
}

static int
set_error(struct np_relay *r, int side, int err)
{
	if (r->st.err_side == 0) {
		r->st.err_side = side;
		r->st.err_errno = err;
	}
	return P_ERR;
}

static void
dir_release(struct rdir *d)
{
	if (d->pr != -1) {
		close(d->pr);
		close(d->pw);
	}
	d->pr = d->pw = -1;
	d->pending = 0;
	free(d->buf);
	d->buf = NULL;
	d->off = d->len = 0;
	if (d->x != NULL) {
		free(d->x->buf);
		d->x->buf = NULL;
		d->x->off = d->x->len = d->x->have = d->x->parsed = 0;
		d->x->niov = d->x->iovi = 0;
	}
}

/* ---- fd registration ---- */

static uint32_t
fd_need(const struct np_relay *r, int fd)
{
	const struct rdir *d;
	uint32_t m = 0;
	int i;

	for (i = 0; i < 2; i++) {
		d = &r->d[i];
		if (d->ended) {
			continue;
		}
		if (d->want == W_READ && d->rfd == fd) {
			m |= NP_EV_READ;
		}
		if (d->want == W_WRITE && d->wfd == fd) {
			m |= NP_EV_WRITE;
		}
	}
	return m;
}

static int
fd_set_mask(struct np_relay *r, struct rfd *f, uint32_t m)
{
	int ret;

	if (m == f->mask) {
		return NP_OK;
	}
	if (f->mask == 0) {
		ret = np_ev_add(r->ev, f->fd, m, relay_fd_cb, r);
	} else if (m == 0) {
		ret = np_ev_del(r->ev, f->fd);
	} else {
		ret = np_ev_mod(r->ev, f->fd, m);
	}
	if (ret == NP_OK) {
		f->mask = m;
	}
	return ret;
}

static int
update_masks(struct np_relay *r)
{
	int i, ret;

	for (i = 0; i < 4; i++) {
		if (r->fds[i].fd == -1) {
			continue;
		}
		ret = fd_set_mask(r, &r->fds[i], fd_need(r, r->fds[i].fd));
		if (ret != NP_OK) {
			return ret;
		}
	}
	return NP_OK;
}

static void
unregister_all(struct np_relay *r)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (r->fds[i].fd != -1 && r->fds[i].mask != 0) {
			np_ev_del(r->ev, r->fds[i].fd);
		}
		r->fds[i].mask = 0;
	}
}

/* Take fd out of the loop and the fd list (it is about to be closed). */
static void
forget_fd(struct np_relay *r, int fd)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (r->fds[i].fd != fd) {
			continue;
		}
		if (r->fds[i].mask != 0) {
			np_ev_del(r->ev, fd);
		}
		r->fds[i].fd = -1;
		r->fds[i].mask = 0;
	}
}

/* ---- ending ---- */

/* Everything read has been written and the input ended. */
static void
dir_end(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];

	dir_release(d);
	d->ended = 1;
	d->want = W_NONE;
	if (d->wsock) {
		/* ENOTCONN after a reset: the other direction reports. */
		(void)shutdown(d->wfd, SHUT_WR);
	} else if (d->wfd != r->d[1 - i].rfd) {
		forget_fd(r, d->wfd);
		close(d->wfd);
		r->st.wfd_closed |= i == 0 ? 2 : 1;
	}
}

/* Ends the relay; r must not be touched after this returns. */
static void
finish(struct np_relay *r, int result)
{
	unregister_all(r);
	np_ev_timer_del(r->ev, r->timer);
	r->timer = 0;
	dir_release(&r->d[0]);
	dir_release(&r->d[1]);
	r->finished = 1;
	r->cb(r, result, r->arg);
}

/* ---- the three pumps ---- */

static void
count(struct np_relay *r, int i, size_t n)
{
	if (i == 0) {
		r->st.a_to_b += n;
	} else {
		r->st.b_to_a += n;
	}
}

static int
to_copy(struct np_relay *r, struct rdir *d, int side)
{
	d->mode = M_COPY;
	if (d->buf == NULL && (d->buf = malloc(NP_RELAY_BUF)) == NULL) {
		return set_error(r, side, ENOMEM);
	}
	return P_OK;
}

static int
pipe_open(struct np_relay *r, struct rdir *d)
{
	int p[2], sz;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1) {
		return -1;
	}
	if (r->pipe_size > 0) {
		(void)fcntl(p[1], F_SETPIPE_SZ, (int)r->pipe_size);
	}
	sz = fcntl(p[1], F_GETPIPE_SZ);
	d->cap = sz > 0 ? (uint32_t)sz : 4096;
	d->pr = p[0];
	d->pw = p[1];
	d->pending = 0;
	if (r->timer == 0 && !r->stopping) {
		/* Best effort: without it the pipe is kept till the end. */
		(void)arm_timer(r, np_now_mono_ms());
	}
	return 0;
}

/* Fill the empty buffer: bytes left in the own pipe first. */
static int
copy_in(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	size_t want = NP_RELAY_BUF;
	ssize_t n;
	int src = d->rfd;

	if (d->pending > 0) {
		src = d->pr;
		if (d->pending < want) {
			want = d->pending;
		}
	}
	do {
		n = read(src, d->buf, want);
	} while (n == -1 && errno == EINTR);
	if (n > 0) {
		d->off = 0;
		d->len = (uint32_t)n;
		if (src == d->pr) {
			d->pending -= (uint32_t)n;
		}
	} else if (n == 0) {
		d->eof = 1;
	} else if (errno == EAGAIN) {
		d->want = W_READ;
	} else {
		return set_error(r, rside(i), errno);
	}
	if (d->pending == 0 && d->pr != -1) {
		close(d->pr);
		close(d->pw);
		d->pr = d->pw = -1;
	}
	return P_OK;
}

/* Write from the buffer; sets want W_WRITE when the output is full. */
static int
copy_out(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	ssize_t n;

	do {
		if (d->wsock) {
			n = send(d->wfd, d->buf + d->off, d->len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			n = write(d->wfd, d->buf + d->off, d->len);
		}
	} while (n == -1 && errno == EINTR);
	if (n > 0) {
		d->off += (uint32_t)n;
		d->len -= (uint32_t)n;
		count(r, i, (size_t)n);
	} else if (n == -1 && errno == EAGAIN) {
		d->want = W_WRITE;
	} else {
		return set_error(r, wside(i), n == 0 ? EPIPE : errno);
	}
	return P_OK;
}

static int
pump_copy(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	uint64_t start = r->st.a_to_b + r->st.b_to_a;

	if (d->buf == NULL) {
		if ((d->buf = malloc(NP_RELAY_BUF)) == NULL) {
			return set_error(r, rside(i), ENOMEM);
		}
		if (r->timer == 0 && !r->stopping) {
			(void)arm_timer(r, np_now_mono_ms());
		}
	}
	while (r->st.a_to_b + r->st.b_to_a - start < RELAY_BUDGET) {
		d->want = W_NONE;
		if (d->len == 0 && (d->pending > 0 || !d->eof) &&
		    copy_in(r, i) != P_OK) {
			return P_ERR;
		}
		if (d->want == W_READ) {
			return P_OK;
		}
		if (d->len > 0 && copy_out(r, i) != P_OK) {
			return P_ERR;
		}
		if (d->want == W_WRITE) {
			return P_OK;
		}
		if (d->len == 0 && d->pending == 0 && d->eof) {
			dir_end(r, i);
			return P_OK;
		}
	}
	d->want = d->len > 0 || d->pending > 0 ? W_WRITE : W_READ;
	return P_OK;
}

/* Direction i found splice unusable: continue by copying. */
static int
fall_back(struct np_relay *r, int i, int side)
{
	if (to_copy(r, &r->d[i], side) != P_OK) {
		return P_ERR;
	}
	return pump_copy(r, i);
}

static int
pump_pipe(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	size_t moved = 0, ask;
	ssize_t n;
	int progress, drained = 0;

	if (d->pr == -1 && pipe_open(r, d) == -1) {
		/* EMFILE and the like: copy instead. */
		return fall_back(r, i, rside(i));
	}
	while (moved < RELAY_BUDGET) {
		progress = 0;
		if (!d->eof && d->pending < d->cap) {
			ask = d->cap - d->pending;
			n = splice(d->rfd, NULL, d->pw, NULL, ask,
				   SPLICE_FLAGS);
			if (n > 0) {
				d->pending += (uint32_t)n;
				progress = 1;
				/* Short: most likely drained for now. */
				drained = (size_t)n < ask;
			} else if (n == 0) {
				d->eof = 1;
			} else if (errno == EINVAL) {
				return fall_back(r, i, rside(i));
			} else if (errno != EAGAIN && errno != EINTR) {
				return set_error(r, rside(i), errno);
			}
		}
		if (d->pending > 0) {
			n = splice(d->pr, NULL, d->wfd, NULL, d->pending,
				   SPLICE_FLAGS);
			if (n > 0) {
				d->pending -= (uint32_t)n;
				count(r, i, (size_t)n);
				moved += (size_t)n;
				progress = 1;
			} else if (n < 0 && errno == EAGAIN) {
				d->want = W_WRITE;
				return P_OK;
			} else if (n < 0 && errno == EINVAL) {
				return fall_back(r, i, wside(i));
			} else if (n < 0 && errno != EINTR) {
				return set_error(r, wside(i), errno);
			}
		}
		if (d->pending == 0 && d->eof) {
			dir_end(r, i);
			return P_OK;
		}
		if (!progress || (drained && d->pending == 0)) {
			d->want = W_READ;
			return P_OK;
		}
	}
	d->want = d->pending > 0 ? W_WRITE : W_READ;
	return P_OK;
}

/*
 * After EAGAIN from a direct splice: wait for the output if it is full,
 * else for the input.  An output that has failed or hung up is an error
 * now: the splice may never touch it while the input stays empty.
 */
static int
direct_wait(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct pollfd p;
	socklen_t len = sizeof(int);
	int err = 0;

	memset(&p, 0, sizeof(p));
	p.fd = d->wfd;
	p.events = POLLOUT;
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP))) {
		if (!d->wsock ||
		    getsockopt(d->wfd, SOL_SOCKET, SO_ERROR, &err, &len) ==
			-1 ||
		    err == 0) {
			err = EPIPE;
		}
		return set_error(r, wside(i), err);
	}
	d->want = (p.revents & POLLOUT) ? W_READ : W_WRITE;
	return P_OK;
}

static int
pump_direct(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	size_t moved = 0;
	ssize_t n;

	while (moved < RELAY_BUDGET) {
		n = splice(d->rfd, NULL, d->wfd, NULL, RELAY_DIRECT_CHUNK,
			   SPLICE_FLAGS);
		if (n > 0) {
			count(r, i, (size_t)n);
			moved += (size_t)n;
		} else if (n == 0) {
			d->eof = 1;
			dir_end(r, i);
			return P_OK;
		} else if (errno == EAGAIN) {
			return direct_wait(r, i);
		} else if (errno == EINVAL) {
			return fall_back(r, i, rside(i));
		} else if (errno == EPIPE || d->rfifo) {
			/* A pipe reader gone, or the socket side failed. */
			return set_error(r, wside(i), errno);
		} else if (errno != EINTR) {
			return set_error(r, rside(i), errno);
		}
	}
	d->want = W_READ;
	return P_OK;
}

/* ---- relay stream records ---- */

static int
x_error(struct np_relay *r, int side, int err, const char *what)
{
	if (r->st.err_side == 0) {
		r->st.err_what = what;
	}
	return set_error(r, side, err);
}

static int
x_buf(struct np_relay *r, struct xdir *x, int side)
{
	if (x->buf != NULL) {
		return P_OK;
	}
	if ((x->buf = malloc(NP_RELAY_XBUF)) == NULL) {
		return set_error(r, side, ENOMEM);
	}
	if (r->timer == 0 && !r->stopping) {
		(void)arm_timer(r, np_now_mono_ms());
	}
	return P_OK;
}

/*
 * After the handoff record (sealed and written, or opened and what came
 * after it written): the records' state goes, keys wiped, and the
 * direction relays as it is from here.
 */
static void
dir_plain(struct rdir *d)
{
	np_srec_free(d->x->rec); /* cleanses the key schedule */
	free(d->x->buf);
	free(d->x);
	d->x = NULL;
	d->mode = splice_mode(d);
	d->want = W_READ;
}

/* Read plaintext into the record slots and seal what came. */
static int
seal_in(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct xdir *x = d->x;
	struct iovec iov[NP_RELAY_XSEGS];
	const size_t slot = NP_SREC_MAX + NP_SREC_OVERHEAD;
	size_t left, n1;
	uint32_t out = 0;
	ssize_t n;
	int k;

	int nseg = NP_RELAY_XSEGS;

	for (k = 0; k < NP_RELAY_XSEGS; k++) {
		iov[k].iov_base = x->buf + k * slot + NP_SREC_HDR;
		iov[k].iov_len = NP_SREC_MAX;
	}
	if (x->handoff) { /* no further than the handoff point */
		for (left = x->left, k = 0; k < NP_RELAY_XSEGS; k++) {
			if (left <= NP_SREC_MAX) {
				iov[k].iov_len = left;
				nseg = k + 1;
				break;
			}
			left -= NP_SREC_MAX;
		}
	}
	do {
		n = readv(d->rfd, iov, nseg);
	} while (n == -1 && errno == EINTR);
	if (n == 0) {
		d->eof = 1;
		return P_OK;
	}
	if (n < 0) {
		if (errno == EAGAIN) {
			d->want = W_READ;
			return P_OK;
		}
		return set_error(r, rside(i), errno);
	}
	/* readv fills slot after slot: whole records, then one short. */
	for (left = (size_t)n, k = 0; left > 0; k++) {
		n1 = left < NP_SREC_MAX ? left : NP_SREC_MAX;
		if (np_srec_seal(x->rec, x->buf + k * slot, n1, 0) != NP_OK) {
			return x_error(r, rside(i), EPROTO,
			    "cannot seal a relay record");
		}
		out += (uint32_t)(n1 + NP_SREC_OVERHEAD);
		left -= n1;
	}
	if (x->handoff) {
		x->left -= (uint64_t)n;
	}
	x->off = 0;
	x->len = out;
	return P_OK;
}

static int
x_write(struct np_relay *r, int i, const struct iovec *iov, int n,
    size_t *wrote)
{
	struct rdir *d = &r->d[i];
	struct msghdr mh;
	ssize_t w;

	*wrote = 0;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = (size_t)n;
	do {
		w = d->wsock ? sendmsg(d->wfd, &mh, MSG_NOSIGNAL |
		    MSG_DONTWAIT) : writev(d->wfd, iov, n);
	} while (w == -1 && errno == EINTR);
	if (w > 0) {
		*wrote = (size_t)w;
		count(r, i, (size_t)w);
		return P_OK;
	}
	if (w == -1 && errno == EAGAIN) {
		d->want = W_WRITE;
		return P_OK;
	}
	return set_error(r, wside(i), w == 0 ? EPIPE : errno);
}

static int
pump_seal(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct xdir *x = d->x;
	uint64_t start = r->st.a_to_b + r->st.b_to_a;
	struct iovec iov;
	size_t w;

	if (x_buf(r, x, rside(i)) != P_OK) {
		return P_ERR;
	}
	while (r->st.a_to_b + r->st.b_to_a - start < RELAY_BUDGET) {
		d->want = W_NONE;
		if (x->len == 0) {
			if (x->final == NP_SREC_IS_HANDOFF) {
				dir_plain(d);
				return P_OK; /* level-triggered: input wakes it */
			}
			if (x->final) {
				dir_end(r, i);
				return P_OK;
			}
			if (x->handoff && x->left == 0 && !d->eof) {
				if (np_srec_seal(x->rec, x->buf, 0,
				    NP_SREC_IS_HANDOFF) != NP_OK) {
					return x_error(r, rside(i), EPROTO,
					    "cannot seal the handoff record");
				}
				x->final = NP_SREC_IS_HANDOFF;
				x->off = 0;
				x->len = NP_SREC_OVERHEAD;
			} else if (d->eof) {
				if (np_srec_seal(x->rec, x->buf, 0, 1) !=
				    NP_OK) {
					return x_error(r, rside(i), EPROTO,
					    "cannot seal the final record");
				}
				x->final = 1;
				x->off = 0;
				x->len = NP_SREC_OVERHEAD;
			} else {
				if (seal_in(r, i) != P_OK) {
					return P_ERR;
				}
				if (d->want == W_READ) {
					return P_OK;
				}
				continue;
			}
		}
		iov.iov_base = x->buf + x->off;
		iov.iov_len = x->len;
		if (x_write(r, i, &iov, 1, &w) != P_OK) {
			return P_ERR;
		}
		if (d->want == W_WRITE) {
			return P_OK;
		}
		x->off += (uint32_t)w;
		x->len -= (uint32_t)w;
	}
	d->want = x->len > 0 ? W_WRITE : W_READ;
	return P_OK;
}

/* Open the whole records in buf[parsed..have) (at most XIOV_MAX). */
static int
open_records(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct xdir *x = d->x;
	size_t len;
	int final, e;

	x->niov = x->iovi = 0;
	while (x->niov < XIOV_MAX - 1 && !x->final &&
	    x->have - x->parsed >= NP_SREC_HDR) {
		if (np_srec_header(x->buf + x->parsed, &len, &final) !=
		    NP_OK) {
			return x_error(r, rside(i), EPROTO,
			    "bad relay record header (corrupted stream)");
		}
		if (x->have - x->parsed < len + NP_SREC_OVERHEAD) {
			break;
		}
		e = np_srec_open(x->rec, x->buf + x->parsed,
		    len + NP_SREC_OVERHEAD, &final);
		if (e != NP_OK) {
			return x_error(r, rside(i), EBADMSG, e == NP_ERR_CRYPTO ?
			    "a relay record failed authentication (tampered "
			    "or corrupted stream)" : "bad relay record");
		}
		if (len > 0) {
			x->iov[x->niov].iov_base = x->buf + x->parsed +
			    NP_SREC_HDR;
			x->iov[x->niov].iov_len = len;
			x->niov++;
		}
		x->parsed += (uint32_t)(len + NP_SREC_OVERHEAD);
		if (final == NP_SREC_IS_HANDOFF) {
			if (!x->handoff) {
				return x_error(r, rside(i), EPROTO,
				    "a relay handoff record the ends did not "
				    "agree on");
			}
			x->final = NP_SREC_IS_HANDOFF;
			/* What came after it is the stream as it is (the
			 * loop keeps a slot free for it). */
			if (x->have > x->parsed) {
				x->iov[x->niov].iov_base = x->buf + x->parsed;
				x->iov[x->niov].iov_len = x->have - x->parsed;
				x->niov++;
				x->parsed = x->have;
			}
			break;
		}
		if (final) {
			x->final = NP_SREC_IS_FINAL;
		}
	}
	if (x->final == NP_SREC_IS_FINAL && x->parsed != x->have) {
		return x_error(r, rside(i), EPROTO,
		    "bytes after the final relay record");
	}
	return P_OK;
}

/* Write pending plaintexts; partial writes advance the iovecs. */
static int
open_out(struct np_relay *r, int i)
{
	struct xdir *x = r->d[i].x;
	size_t w;

	if (x_write(r, i, x->iov + x->iovi, x->niov - x->iovi, &w) != P_OK) {
		return P_ERR;
	}
	while (w > 0 && x->iovi < x->niov) {
		if (w >= x->iov[x->iovi].iov_len) {
			w -= x->iov[x->iovi].iov_len;
			x->iovi++;
		} else {
			x->iov[x->iovi].iov_base =
			    (uint8_t *)x->iov[x->iovi].iov_base + w;
			x->iov[x->iovi].iov_len -= w;
			w = 0;
		}
	}
	return P_OK;
}

/* Read more records after a partial one is moved to the front. */
static int
open_in(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct xdir *x = d->x;
	ssize_t n;

	if (x->parsed > 0) {
		memmove(x->buf, x->buf + x->parsed, x->have - x->parsed);
		x->have -= x->parsed;
		x->parsed = 0;
	}
	if (d->eof) {
		return x_error(r, rside(i), EPROTO,
		    "the relay stream ended without its final record "
		    "(truncated: the other end failed or stopped, or the "
		    "stream was cut)");
	}
	do {
		n = read(d->rfd, x->buf + x->have, NP_RELAY_XBUF - x->have);
	} while (n == -1 && errno == EINTR);
	if (n > 0) {
		x->have += (uint32_t)n;
	} else if (n == 0) {
		d->eof = 1;
	} else if (errno == EAGAIN) {
		d->want = W_READ;
	} else {
		return set_error(r, rside(i), errno);
	}
	return P_OK;
}

static int
pump_open(struct np_relay *r, int i)
{
	struct rdir *d = &r->d[i];
	struct xdir *x = d->x;
	uint64_t start = r->st.a_to_b + r->st.b_to_a, opened = 0;
	uint32_t before;

	if (x_buf(r, x, rside(i)) != P_OK) {
		return P_ERR;
	}
	/* Both what was written and what was opened count (a peer sending
	 * empty records writes nothing but costs work). */
	while (r->st.a_to_b + r->st.b_to_a - start < RELAY_BUDGET &&
	    opened < RELAY_BUDGET) {
		d->want = W_NONE;
		if (x->iovi < x->niov) {
			if (open_out(r, i) != P_OK) {
				return P_ERR;
			}
			if (d->want == W_WRITE) {
				return P_OK;
			}
			continue;
		}
		if (x->final == NP_SREC_IS_HANDOFF) {
			dir_plain(d);
			return P_OK;
		}
		if (x->final) {
			dir_end(r, i);
			return P_OK;
		}
		before = x->parsed;
		if (open_records(r, i) != P_OK) {
			return P_ERR;
		}
		opened += x->parsed - before;
		if (x->niov > 0 || x->final) {
			continue;
		}
		if (open_in(r, i) != P_OK) {
			return P_ERR;
		}
		if (d->want == W_READ) {
			return P_OK;
		}
	}
	/*
	 * Out of budget.  Work already in hand (plaintexts to write, the
	 * final record, records read but not opened yet) must not wait for
	 * the input to become readable again, which it may never do: ask for
	 * the output instead, which comes back at once when it has room.
	 */
	d->want = x->iovi < x->niov || x->final ||
	    x->have - x->parsed >= NP_SREC_HDR ? W_WRITE : W_READ;
	return P_OK;
}

static int
pump(struct np_relay *r, int i)
{
	switch (r->d[i].mode) {
	case M_PIPE:
		return pump_pipe(r, i);
	case M_DIRECT:
		return pump_direct(r, i);
	case M_XFORM:
		return r->d[i].x->sealing ? pump_seal(r, i) : pump_open(r, i);
	default:
		return pump_copy(r, i);
	}
}

/* ---- loop callbacks ---- */

static int
dir_wakes(const struct rdir *d, int fd, uint32_t events)
{
	if (d->ended) {
		return 0;
	}
	if (d->want == W_READ && d->rfd == fd &&
	    (events & (NP_EV_READ | NP_EV_ERROR))) {
		return 1;
	}
	if (d->want == W_WRITE && d->wfd == fd &&
	    (events & (NP_EV_WRITE | NP_EV_ERROR))) {
		return 1;
	}
	return 0;
}

static void
relay_fd_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct np_relay *r = arg;
	uint64_t before = r->st.a_to_b + r->st.b_to_a;
	int i;

	for (i = 0; i < 2; i++) {
		if (dir_wakes(&r->d[i], fd, events) && pump(r, i) != P_OK) {
			finish(r, NP_RELAY_ERROR);
			return;
		}
	}
	if (r->st.a_to_b + r->st.b_to_a != before) {
		r->st.last_io_ms = np_now_mono_ms();
	}
	if (r->d[0].ended && r->d[1].ended) {
		finish(r, NP_RELAY_DONE);
		return;
	}
	if (update_masks(r) != NP_OK) {
		set_error(r, 0, errno);
		finish(r, NP_RELAY_ERROR);
	}
}

static int
holds_memory(const struct np_relay *r)
{
	return r->d[0].pr != -1 || r->d[1].pr != -1 || r->d[0].buf != NULL ||
	       r->d[1].buf != NULL ||
	       (r->d[0].x != NULL && r->d[0].x->buf != NULL) ||
	       (r->d[1].x != NULL && r->d[1].x->buf != NULL);
}

/* Arm the one timer for the idle deadline or the next trim, if any. */
static int
arm_timer(struct np_relay *r, uint64_t now)
{
	uint64_t due = UINT64_MAX, t;

	if (r->idle_ms > 0) {
		due = r->st.last_io_ms + r->idle_ms;
	}
	if (holds_memory(r)) {
		t = r->st.last_io_ms + r->trim_ms;
		if (t <= now) {
			t = now + r->trim_ms;
		}
		due = t < due ? t : due;
	}
	if (due == UINT64_MAX) {
		return NP_OK;
	}
	r->timer =
	    np_ev_timer_add(r->ev, due > now ? due - now : 0, timer_cb, r);
	return r->timer != 0 ? NP_OK : NP_ERR_ALLOC;
}

/* A quiet direction gives back its pipe and buffer (bytes in flight
 * keep them). */
static void
trim(struct rdir *d)
{
	if (d->pending == 0 && d->len == 0 &&
	    (d->x == NULL || (d->x->len == 0 && d->x->have == 0 &&
	    d->x->iovi == d->x->niov))) {
		dir_release(d);
	}
}

static void
timer_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_relay *r = arg;
	uint64_t now = np_now_mono_ms(), quiet;

	r->timer = 0;
	quiet = now - r->st.last_io_ms;
	if (r->idle_ms > 0 && quiet >= r->idle_ms) {
		finish(r, NP_RELAY_IDLE);
		return;
	}
	if (quiet >= r->trim_ms) {
		trim(&r->d[0]);
		trim(&r->d[1]);
	}
	if (arm_timer(r, now) != NP_OK) {
		set_error(r, 0, ENOMEM);
		finish(r, NP_RELAY_ERROR);
	}
}

static void
stop_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct np_relay *r = arg;

	r->timer = 0;
	finish(r, NP_RELAY_STOPPED);
}

/* ---- public ---- */

static void
fd_kind(int fd, uint8_t *sock, uint8_t *fifo)
{
	struct stat sb;

	*sock = *fifo = 0;
	if (fstat(fd, &sb) == 0) {
		*sock = S_ISSOCK(sb.st_mode) ? 1 : 0;
		*fifo = S_ISFIFO(sb.st_mode) ? 1 : 0;
	}
}

/* d's fd kinds (rfifo, wsock) and the splice mode they allow: DIRECT
 * when either end is a pipe, else PIPE. */
static uint8_t
splice_mode(struct rdir *d)
{
	uint8_t rsock, wfifo;

	fd_kind(d->rfd, &rsock, &d->rfifo);
	fd_kind(d->wfd, &d->wsock, &wfifo);
	return d->rfifo || wfifo ? M_DIRECT : M_PIPE;
}

static void
dir_init(struct rdir *d, int rfd, int wfd, int force_copy)
{
	uint8_t mode;

	memset(d, 0, sizeof(*d));
	d->rfd = rfd;
	d->wfd = wfd;
	d->pr = d->pw = -1;
	d->want = W_READ;
	mode = splice_mode(d);
	d->mode = force_copy ? M_COPY : mode;
}

static void
fds_init(struct np_relay *r, struct np_relay_end a, struct np_relay_end b)
{
	int all[4] = {a.rfd, a.wfd, b.rfd, b.wfd};
	int i, j;

	for (i = 0; i < 4; i++) {
		r->fds[i].fd = all[i];
		r->fds[i].mask = 0;
		for (j = 0; j < i; j++) {
			if (all[j] == all[i]) {
				r->fds[i].fd = -1;
			}
		}
	}
}

int
np_relay_start_ex(struct np_ev *ev, struct np_relay_end a,
		  struct np_relay_end b, const struct np_relay_opts *o,
		  np_relay_done_cb *cb, void *arg, struct np_relay **out)
{
	struct np_relay_opts def;
	struct np_relay *r;
	int i, ret;

	if (out != NULL) {
		*out = NULL;
	}
	if (ev == NULL || cb == NULL || out == NULL || a.rfd < 0 || a.wfd < 0 ||
	    b.rfd < 0 || b.wfd < 0) {
		return NP_ERR_INVALID;
	}
	if (o == NULL) {
		memset(&def, 0, sizeof(def));
		o = &def;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return NP_ERR_ALLOC;
	}
	r->ev = ev;
	r->cb = cb;
	r->arg = arg;
	r->idle_ms = o->idle_ms;
	r->trim_ms = o->trim_ms != 0 ? o->trim_ms : NP_RELAY_TRIM_MS;
	r->pipe_size = o->pipe_size != 0 ? o->pipe_size : NP_RELAY_PIPE_SZ;
	dir_init(&r->d[0], a.rfd, b.wfd, o->force_copy);
	dir_init(&r->d[1], b.rfd, a.wfd, o->force_copy);
	fds_init(r, a, b);
	for (i = 0; i < 2; i++) {
		if (o->xf[i] == NULL) {
			continue;
		}
		if ((r->d[i].x = calloc(1, sizeof(*r->d[i].x))) == NULL) {
			ret = NP_ERR_ALLOC;
			goto out;
		}
		r->d[i].mode = M_XFORM;
		r->d[i].x->sealing = (uint8_t)np_srec_sealing(o->xf[i]);
		r->d[i].x->handoff = o->handoff != 0;
		r->d[i].x->left = o->handoff;
	}
	r->st.started_ms = r->st.last_io_ms = np_now_mono_ms();
	if ((ret = update_masks(r)) != NP_OK) {
		goto out;
	}
	if ((ret = arm_timer(r, r->st.started_ms)) != NP_OK) {
		goto out;
	}
	for (i = 0; i < 2; i++) {
		if (r->d[i].x != NULL) {
			r->d[i].x->rec = o->xf[i];
		}
	}
	*out = r;
	r = NULL;
	ret = NP_OK;
out:
	if (r != NULL) {
		unregister_all(r);
		free(r->d[0].x);
		free(r->d[1].x);
		free(r);
	}
	return ret;
}

int
np_relay_start(struct np_ev *ev, struct np_relay_end a, struct np_relay_end b,
	       uint64_t idle_ms, np_relay_done_cb *cb, void *arg,
	       struct np_relay **out)
{
	struct np_relay_opts o;

	memset(&o, 0, sizeof(o));
	o.idle_ms = idle_ms;
	return np_relay_start_ex(ev, a, b, &o, cb, arg, out);
}

void
np_relay_stop(struct np_relay *r)
{
	if (r == NULL || r->finished || r->stopping) {
		return;
	}
	r->stopping = 1;
	unregister_all(r);
	np_ev_timer_del(r->ev, r->timer);
	r->timer = np_ev_timer_add(r->ev, 0, stop_cb, r);
	if (r->timer == 0) {
		/* Out of memory: nothing better than ending right here. */
		finish(r, NP_RELAY_STOPPED);
	}
}

void
np_relay_free(struct np_relay *r)
{
	int i;

	if (r == NULL) {
		return;
	}
	if (!r->finished) {
		unregister_all(r);
		np_ev_timer_del(r->ev, r->timer);
		dir_release(&r->d[0]);
		dir_release(&r->d[1]);
	}
	for (i = 0; i < 2; i++) {
		if (r->d[i].x != NULL) {
			np_srec_free(r->d[i].x->rec);
			free(r->d[i].x->buf);
			free(r->d[i].x);
		}
	}
	free(r);
}

const struct np_relay_stats *
np_relay_stats(const struct np_relay *r)
{
	return &r->st;
}

int
np_sock_keepalive(int fd, int idle_s, int user_timeout_ms)
{
	int on = 1, intvl, cnt = 3;

	if (idle_s < 1) {
		idle_s = 1;
	}
	intvl = idle_s / 3 > 1 ? idle_s / 3 : 1;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1) {
		if (errno == ENOTSOCK || errno == EOPNOTSUPP) {
			return NP_OK;
		}
		return NP_ERR_SYSTEM;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s,
		       sizeof(idle_s)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ==
		-1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == -1 ||
	    (user_timeout_ms >= 0 &&
	     setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
			sizeof(user_timeout_ms)) == -1)) {
		if (errno == ENOTSOCK || errno == EOPNOTSUPP ||
		    errno == ENOPROTOOPT) {
			return NP_OK; /* e.g. a unix socket */
		}
		return NP_ERR_SYSTEM;
	}
	return NP_OK;
}
