/*
 * Event loop: epoll for fds, a binary min-heap of one-shot timers on the
 * monotonic clock (with a hash from id to timer for O(log n) deletion),
 * and one signalfd for every signal the loop handles.
 *
 * Callbacks may delete any fd or timer, their own included.  An fd's slot
 * carries a generation number that is also stored in the epoll event, so
 * an event gathered before a callback deleted (or deleted and re-added) an
 * fd is recognised as stale and dropped.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "ev.h"

#define EV_MAX_EVENTS 256
#define EV_NSIG 65

struct ev_fd {
	np_ev_fd_cb *cb;
	void *arg;
	uint32_t mask;
	uint32_t gen; /* 0: slot unused */
};

struct ev_timer {
	uint64_t when;
	uint64_t id;
	np_ev_timer_cb *cb;
	void *arg;
	size_t idx;	       /* position in the heap */
	struct ev_timer *next; /* hash chain */
};

struct ev_sig {
	np_ev_signal_cb *cb;
	void *arg;
};

struct np_ev {
	int epfd;
	int stop;
	/* fds, indexed by fd number */
	struct ev_fd *fds;
	size_t nfds;
	uint32_t gen;
	/* timers */
	struct ev_timer **heap;
	size_t nheap, heapalloc;
	struct ev_timer **hash;
	size_t nhash; /* buckets, a power of two */
	uint64_t next_id;
	/* signals */
	int sigfd;
	sigset_t sigset;
	struct ev_sig sigs[EV_NSIG];
	struct epoll_event events[EV_MAX_EVENTS];
};

uint64_t
np_now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
np_now_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct np_ev *
np_ev_new(void)
{
	struct np_ev *ev;

	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return NULL;
	ev->sigfd = -1;
	ev->next_id = 1;
	sigemptyset(&ev->sigset);
	ev->nhash = 64;
	if ((ev->hash = calloc(ev->nhash, sizeof(*ev->hash))) == NULL) {
		free(ev);
		return NULL;
	}
	if ((ev->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		free(ev->hash);
		free(ev);
		return NULL;
	}
	return ev;
}

void
np_ev_free(struct np_ev *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < ev->nheap; i++)
		free(ev->heap[i]);
	free(ev->heap);
	free(ev->hash);
	free(ev->fds);
	if (ev->sigfd != -1)
		close(ev->sigfd);
	close(ev->epfd);
	free(ev);
}

/* ---- fds ---- */

static uint32_t
mask_to_epoll(uint32_t mask)
{
	uint32_t e = 0;

	if (mask & NP_EV_READ)
		e |= EPOLLIN;
	if (mask & NP_EV_WRITE)
		e |= EPOLLOUT;
	return e;
}

static uint32_t
epoll_to_mask(uint32_t e)
{
	uint32_t m = 0;

	if (e & (EPOLLIN | EPOLLPRI))
		m |= NP_EV_READ;
	if (e & EPOLLOUT)
		m |= NP_EV_WRITE;
	if (e & (EPOLLERR | EPOLLHUP))
		m |= NP_EV_ERROR;
	return m;
}

static int
fds_grow(struct np_ev *ev, int fd)
{
	size_t n = ev->nfds == 0 ? 64 : ev->nfds;
	struct ev_fd *nf;

	if ((size_t)fd < ev->nfds)
		return NP_OK;
	while (n <= (size_t)fd)
		n *= 2;
	if ((nf = realloc(ev->fds, n * sizeof(*nf))) == NULL)
		return NP_ERR_ALLOC;
	memset(nf + ev->nfds, 0, (n - ev->nfds) * sizeof(*nf));
	ev->fds = nf;
	ev->nfds = n;
	return NP_OK;
}

static uint32_t
next_gen(struct np_ev *ev)
{
	if (++ev->gen == 0)
		ev->gen = 1;
	return ev->gen;
}

int
np_ev_add(struct np_ev *ev, int fd, uint32_t mask, np_ev_fd_cb *cb, void *arg)
{
	struct epoll_event e;
	struct ev_fd *f;
	uint32_t gen;
	int r;

	if (fd < 0 || cb == NULL)
		return NP_ERR_INVALID;
	if ((r = fds_grow(ev, fd)) != NP_OK)
		return r;
	gen = next_gen(ev);
	memset(&e, 0, sizeof(e));
	e.events = mask_to_epoll(mask);
	e.data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd;
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) == -1) {
		/* A slot still in use for a closed-and-reused fd number
		 * is simply replaced: the kernel already dropped it. */
		return errno == EEXIST ? NP_ERR_EXISTS : NP_ERR_SYSTEM;
	}
	f = &ev->fds[fd];
	f->cb = cb;
	f->arg = arg;
	f->mask = mask;
	f->gen = gen;
	return NP_OK;
}

int
np_ev_mod(struct np_ev *ev, int fd, uint32_t mask)
{
	struct epoll_event e;
	struct ev_fd *f;

	if (fd < 0 || (size_t)fd >= ev->nfds || ev->fds[fd].gen == 0)
		return NP_ERR_NOT_FOUND;
	f = &ev->fds[fd];
	if (f->mask == mask)
		return NP_OK;
	memset(&e, 0, sizeof(e));
	e.events = mask_to_epoll(mask);
	e.data.u64 = ((uint64_t)f->gen << 32) | (uint32_t)fd;
	if (epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &e) == -1)
		return NP_ERR_SYSTEM;
	f->mask = mask;
	return NP_OK;
}

int
np_ev_del(struct np_ev *ev, int fd)
{
	if (fd < 0 || (size_t)fd >= ev->nfds || ev->fds[fd].gen == 0)
		return NP_ERR_NOT_FOUND;
	memset(&ev->fds[fd], 0, sizeof(ev->fds[fd]));
	/* EBADF / ENOENT: the fd was closed first; nothing to undo. */
	(void)epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
	return NP_OK;
}

static void
dispatch(struct np_ev *ev, const struct epoll_event *e)
{
	int fd = (int)(uint32_t)e->data.u64;
	uint32_t gen = (uint32_t)(e->data.u64 >> 32);
	struct ev_fd *f;
	uint32_t m;

	if (fd < 0 || (size_t)fd >= ev->nfds)
		return;
	f = &ev->fds[fd];
	if (f->gen != gen)
		return; /* deleted, or deleted and re-added, meanwhile */
	m = epoll_to_mask(e->events) & (f->mask | NP_EV_ERROR);
	if (m == 0)
		return; /* masked off by an earlier callback */
	f->cb(ev, fd, m, f->arg);
}

/* ---- timers ---- */

static int
timer_less(const struct ev_timer *a, const struct ev_timer *b)
{
	if (a->when != b->when)
		return a->when < b->when;
	return a->id < b->id;
}

static void
heap_set(struct np_ev *ev, size_t i, struct ev_timer *t)
{
	ev->heap[i] = t;
	t->idx = i;
}

static void
heap_up(struct np_ev *ev, size_t i)
{
	struct ev_timer *t = ev->heap[i];
	size_t p;

	while (i > 0) {
		p = (i - 1) / 2;
		if (!timer_less(t, ev->heap[p]))
			break;
		heap_set(ev, i, ev->heap[p]);
		i = p;
	}
	heap_set(ev, i, t);
}

static void
heap_down(struct np_ev *ev, size_t i)
{
	struct ev_timer *t = ev->heap[i];
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= ev->nheap)
			break;
		if (c + 1 < ev->nheap &&
		    timer_less(ev->heap[c + 1], ev->heap[c]))
			c++;
		if (!timer_less(ev->heap[c], t))
			break;
		heap_set(ev, i, ev->heap[c]);
		i = c;
	}
	heap_set(ev, i, t);
}

static void
heap_remove(struct np_ev *ev, struct ev_timer *t)
{
	size_t i = t->idx;
	struct ev_timer *last;

	last = ev->heap[--ev->nheap];
	if (i == ev->nheap)
		return;
	heap_set(ev, i, last);
	heap_down(ev, i);
	heap_up(ev, last->idx);
}

static size_t
hash_slot(const struct np_ev *ev, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (ev->nhash - 1);
}

static void
hash_insert(struct np_ev *ev, struct ev_timer *t)
{
	size_t s = hash_slot(ev, t->id);

	t->next = ev->hash[s];
	ev->hash[s] = t;
}

/* Unlink and return the timer with this id, or NULL. */
static struct ev_timer *
hash_take(struct np_ev *ev, uint64_t id)
{
	struct ev_timer **pp, *t;

	for (pp = &ev->hash[hash_slot(ev, id)]; (t = *pp) != NULL;
	     pp = &t->next) {
		if (t->id == id) {
			*pp = t->next;
			t->next = NULL;
			return t;
		}
	}
	return NULL;
}

/* Double the buckets when the chains get long; failure is harmless. */
static void
hash_grow(struct np_ev *ev)
{
	struct ev_timer **old = ev->hash, *t, *next;
	size_t oldn = ev->nhash, i;

	if (ev->nheap < ev->nhash || oldn > SIZE_MAX / 2 / sizeof(*old))
		return;
	if ((ev->hash = calloc(oldn * 2, sizeof(*old))) == NULL) {
		ev->hash = old;
		return;
	}
	ev->nhash = oldn * 2;
	for (i = 0; i < oldn; i++) {
		for (t = old[i]; t != NULL; t = next) {
			next = t->next;
			hash_insert(ev, t);
		}
	}
	free(old);
}

static int
heap_reserve(struct np_ev *ev)
{
	struct ev_timer **nh;
	size_t n;

	if (ev->nheap < ev->heapalloc)
		return NP_OK;
	n = ev->heapalloc == 0 ? 64 : ev->heapalloc * 2;
	if (n > SIZE_MAX / sizeof(*nh))
		return NP_ERR_ALLOC;
	if ((nh = realloc(ev->heap, n * sizeof(*nh))) == NULL)
		return NP_ERR_ALLOC;
	ev->heap = nh;
	ev->heapalloc = n;
	return NP_OK;
}

uint64_t
np_ev_timer_add(struct np_ev *ev, uint64_t ms, np_ev_timer_cb *cb, void *arg)
{
	struct ev_timer *t;
	uint64_t now = np_now_mono_ms();

	if (cb == NULL || heap_reserve(ev) != NP_OK)
		return 0;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return 0;
	t->when = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
	t->id = ev->next_id++;
	t->cb = cb;
	t->arg = arg;
	ev->heap[ev->nheap++] = t;
	heap_up(ev, ev->nheap - 1);
	hash_insert(ev, t);
	hash_grow(ev);
	return t->id;
}

void
np_ev_timer_del(struct np_ev *ev, uint64_t id)
{
	struct ev_timer *t;

	if (id == 0 || (t = hash_take(ev, id)) == NULL)
		return;
	heap_remove(ev, t);
	free(t);
}

/* Run the timers due now; those added meanwhile wait for the next round. */
static void
run_timers(struct np_ev *ev)
{
	uint64_t now = np_now_mono_ms(), limit = ev->next_id, id;
	struct ev_timer *t;
	np_ev_timer_cb *cb;
	void *arg;

	while (ev->nheap > 0) {
		t = ev->heap[0];
		if (t->when > now || t->id >= limit)
			break;
		hash_take(ev, t->id);
		heap_remove(ev, t);
		cb = t->cb;
		arg = t->arg;
		id = t->id;
		free(t);
		cb(ev, id, arg);
	}
}

/* Milliseconds until the first timer, capped by timeout_ms. */
static int
poll_timeout(struct np_ev *ev, int timeout_ms)
{
	uint64_t now, d;

	if (ev->nheap == 0)
		return timeout_ms;
	now = np_now_mono_ms();
	d = ev->heap[0]->when > now ? ev->heap[0]->when - now : 0;
	if (d > INT_MAX)
		d = INT_MAX;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < d)
		return timeout_ms;
	return (int)d;
}

/* ---- signals ---- */

static void
sig_read(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;
	struct ev_sig *s;
	ssize_t n;

	for (;;) {
		n = read(fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			return;
		if (si.ssi_signo >= EV_NSIG)
			continue;
		s = &ev->sigs[si.ssi_signo];
		if (s->cb != NULL)
			s->cb(ev, (int)si.ssi_signo, s->arg);
	}
}

int
np_ev_signal_add(struct np_ev *ev, int signo, np_ev_signal_cb *cb, void *arg)
{
	sigset_t one;
	int fd, r;

	if (signo <= 0 || signo >= EV_NSIG || cb == NULL)
		return NP_ERR_INVALID;
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) == -1)
		return NP_ERR_SYSTEM;
	sigaddset(&ev->sigset, signo);
	fd = signalfd(ev->sigfd, &ev->sigset, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		return NP_ERR_SYSTEM;
	if (ev->sigfd == -1) {
		if ((r = np_ev_add(ev, fd, NP_EV_READ, sig_read, NULL)) !=
		    NP_OK) {
			close(fd);
			return r;
		}
		ev->sigfd = fd;
	}
	ev->sigs[signo].cb = cb;
	ev->sigs[signo].arg = arg;
	return NP_OK;
}

/* ---- running ---- */

int
np_ev_run_once(struct np_ev *ev, int timeout_ms)
{
	int i, n;

	n = epoll_wait(ev->epfd, ev->events, EV_MAX_EVENTS,
		       poll_timeout(ev, timeout_ms));
	if (n == -1) {
		if (errno == EINTR)
			return NP_OK;
		return NP_ERR_SYSTEM;
	}
	run_timers(ev);
	for (i = 0; i < n; i++)
		dispatch(ev, &ev->events[i]);
	return NP_OK;
}

int
np_ev_run(struct np_ev *ev)
{
	int r = NP_OK;

	while (!ev->stop) {
		if ((r = np_ev_run_once(ev, -1)) != NP_OK)
			break;
	}
	ev->stop = 0;
	return r;
}

void
np_ev_stop(struct np_ev *ev)
{
	ev->stop = 1;
}
