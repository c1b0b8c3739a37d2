#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "ev.h"

static void
mkpair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, sv),
			 0);
}

/* ---- fds ---- */

struct rd {
	int calls;
	uint32_t events;
	char got[16];
	int del_self;
	int close_self;
	int other_fd; /* deleted by the callback when >= 0 */
};

static void
on_read(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct rd *r = arg;
	ssize_t n;

	r->calls++;
	r->events |= events;
	if (events & NP_EV_READ) {
		n = read(fd, r->got, sizeof(r->got) - 1);
		if (n > 0)
			r->got[n] = '\0';
	}
	if (r->other_fd >= 0) {
		ck_assert_int_eq(np_ev_del(ev, r->other_fd), NP_OK);
		r->other_fd = -1;
	}
	if (r->del_self)
		ck_assert_int_eq(np_ev_del(ev, fd), NP_OK);
	if (r->close_self)
		close(fd);
}

START_TEST(fd_read_ready)
{
	struct np_ev *ev = np_ev_new();
	struct rd r = {.other_fd = -1};
	int sv[2];

	ck_assert_ptr_nonnull(ev);
	mkpair(sv);
	ck_assert_int_eq(np_ev_add(ev, sv[0], NP_EV_READ, on_read, &r), NP_OK);
	ck_assert_int_eq(np_ev_add(ev, sv[0], NP_EV_READ, on_read, &r),
			 NP_ERR_EXISTS);
	/* Nothing to read: a short wait returns without a call. */
	ck_assert_int_eq(np_ev_run_once(ev, 10), NP_OK);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(write(sv[1], "hi", 2), 2);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.events & NP_EV_READ);
	ck_assert_str_eq(r.got, "hi");
	/* Peer closes: readable (EOF). */
	close(sv[1]);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(np_ev_del(ev, sv[0]), NP_OK);
	ck_assert_int_eq(np_ev_del(ev, sv[0]), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_ev_mod(ev, sv[0], NP_EV_READ), NP_ERR_NOT_FOUND);
	close(sv[0]);
	np_ev_free(ev);
}
END_TEST

START_TEST(fd_write_and_mod)
{
	struct np_ev *ev = np_ev_new();
	struct rd r = {.other_fd = -1};
	int sv[2];

	mkpair(sv);
	ck_assert_int_eq(np_ev_add(ev, sv[0], 0, on_read, &r), NP_OK);
	ck_assert_int_eq(np_ev_run_once(ev, 10), NP_OK);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(np_ev_mod(ev, sv[0], NP_EV_WRITE), NP_OK);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_uint_eq(r.events, NP_EV_WRITE);
	/* Readable data but only WRITE wanted: no READ reported. */
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_uint_eq(r.events, NP_EV_WRITE);
	ck_assert_int_eq(np_ev_mod(ev, sv[0], NP_EV_READ), NP_OK);
	r.events = 0;
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_uint_eq(r.events, NP_EV_READ);
	ck_assert_int_eq(np_ev_add(ev, -1, NP_EV_READ, on_read, &r),
			 NP_ERR_INVALID);
	np_ev_free(ev);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(fd_delete_self)
{
	struct np_ev *ev = np_ev_new();
	struct rd r = {.other_fd = -1, .del_self = 1, .close_self = 1};
	int sv[2];

	mkpair(sv);
	ck_assert_int_eq(
	    np_ev_add(ev, sv[0], NP_EV_READ | NP_EV_WRITE, on_read, &r), NP_OK);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(np_ev_run_once(ev, 10), NP_OK);
	ck_assert_int_eq(r.calls, 1);
	close(sv[1]);
	np_ev_free(ev);
}
END_TEST

/*
 * Two ready fds; whichever runs first deletes and closes the other, then
 * a fresh socket takes the closed number and is added: the stale event
 * gathered for the old fd must not reach the new registration.
 */
struct pairdel {
	struct np_ev *ev;
	int fds[2];
	int calls[2];
	int fresh[2];
	int fresh_calls;
};

static void
on_fresh(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct pairdel *p = arg;

	p->fresh_calls++;
}

static void
on_pair(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct pairdel *p = arg;
	int me = fd == p->fds[0] ? 0 : 1, other = p->fds[1 - me];

	p->calls[me]++;
	ck_assert_int_eq(np_ev_del(ev, other), NP_OK);
	close(other);
	ck_assert_int_eq(socketpair(AF_UNIX,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, p->fresh),
			 0);
	/* The lowest free number is the one just closed. */
	ck_assert_int_eq(p->fresh[0], other);
	/* Readable-only registration: not writable-ready in this round's
	 * stale event (which was for READ of the old fd). */
	ck_assert_int_eq(np_ev_add(ev, p->fresh[0], NP_EV_READ, on_fresh, p),
			 NP_OK);
	ck_assert_int_eq(np_ev_del(ev, fd), NP_OK);
}

START_TEST(fd_delete_other_and_reuse)
{
	struct pairdel p;
	int a[2], b[2];

	memset(&p, 0, sizeof(p));
	p.ev = np_ev_new();
	mkpair(a);
	mkpair(b);
	p.fds[0] = a[0];
	p.fds[1] = b[0];
	ck_assert_int_eq(write(a[1], "x", 1), 1);
	ck_assert_int_eq(write(b[1], "x", 1), 1);
	ck_assert_int_eq(np_ev_add(p.ev, a[0], NP_EV_READ, on_pair, &p), NP_OK);
	ck_assert_int_eq(np_ev_add(p.ev, b[0], NP_EV_READ, on_pair, &p), NP_OK);
	ck_assert_int_eq(np_ev_run_once(p.ev, 1000), NP_OK);
	ck_assert_int_eq(p.calls[0] + p.calls[1], 1);
	ck_assert_int_eq(p.fresh_calls, 0);
	/* The fresh fd works normally afterwards. */
	ck_assert_int_eq(write(p.fresh[1], "y", 1), 1);
	ck_assert_int_eq(np_ev_run_once(p.ev, 1000), NP_OK);
	ck_assert_int_eq(p.fresh_calls, 1);
	ck_assert_int_eq(p.calls[0] + p.calls[1], 1);
	np_ev_free(p.ev);
	close(p.calls[0] ? a[0] : b[0]);
	close(a[1]);
	close(b[1]);
	close(p.fresh[0]);
	close(p.fresh[1]);
}
END_TEST

START_TEST(many_fds)
{
	enum { N = 300 };
	struct np_ev *ev = np_ev_new();
	struct rd r[N];
	int sv[N][2], i, total = 0;

	memset(r, 0, sizeof(r));
	for (i = 0; i < N; i++) {
		mkpair(sv[i]);
		r[i].other_fd = -1;
		ck_assert_int_eq(
		    np_ev_add(ev, sv[i][0], NP_EV_READ, on_read, &r[i]), NP_OK);
		ck_assert_int_eq(write(sv[i][1], "z", 1), 1);
	}
	/* 300 ready fds take two rounds of at most 256 events. */
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	for (i = 0; i < N; i++)
		total += r[i].calls;
	ck_assert_int_le(total, 256);
	ck_assert_int_eq(np_ev_run_once(ev, 1000), NP_OK);
	ck_assert_int_eq(np_ev_run_once(ev, 0), NP_OK);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_str_eq(r[i].got, "z");
		close(sv[i][0]);
		close(sv[i][1]);
	}
	np_ev_free(ev);
}
END_TEST

/* ---- timers ---- */

struct tlog {
	int n;
	uint64_t ids[64];
	int tags[64];
	struct np_ev *ev;
	uint64_t del_id; /* deleted by the first callback */
	uint64_t self_id;
};

struct targ {
	struct tlog *log;
	int tag;
};

static void
on_timer(struct np_ev *ev, uint64_t id, void *arg)
{
	struct targ *t = arg;
	struct tlog *l = t->log;

	l->ids[l->n] = id;
	l->tags[l->n++] = t->tag;
	if (l->del_id != 0) {
		np_ev_timer_del(ev, l->del_id);
		l->del_id = 0;
	}
	/* Deleting oneself while running is a harmless no-op. */
	np_ev_timer_del(ev, id);
}

static void
run_until(struct np_ev *ev, struct tlog *l, int n, uint64_t max_ms)
{
	uint64_t end = np_now_mono_ms() + max_ms;

	while (l->n < n && np_now_mono_ms() < end)
		ck_assert_int_eq(np_ev_run_once(ev, 50), NP_OK);
}

START_TEST(timers_in_order)
{
	struct np_ev *ev = np_ev_new();
	struct tlog l;
	struct targ a[5];
	static const int ms[5] = {40, 10, 30, 0, 20};
	uint64_t prev = 0, id, t0;
	int i;

	memset(&l, 0, sizeof(l));
	t0 = np_now_mono_ms();
	for (i = 0; i < 5; i++) {
		a[i].log = &l;
		a[i].tag = ms[i];
		id = np_ev_timer_add(ev, (uint64_t)ms[i], on_timer, &a[i]);
		ck_assert_uint_gt(id, prev); /* ids increase */
		prev = id;
	}
	run_until(ev, &l, 5, 2000);
	ck_assert_int_eq(l.n, 5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(l.tags[i], i * 10);
	ck_assert_uint_ge(np_now_mono_ms() - t0, 40);
	np_ev_free(ev);
}
END_TEST

START_TEST(timer_same_deadline_fifo)
{
	struct np_ev *ev = np_ev_new();
	struct tlog l;
	struct targ a[20];
	int i;

	memset(&l, 0, sizeof(l));
	for (i = 0; i < 20; i++) {
		a[i].log = &l;
		a[i].tag = i;
		ck_assert_uint_gt(np_ev_timer_add(ev, 0, on_timer, &a[i]), 0);
	}
	run_until(ev, &l, 20, 1000);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(l.tags[i], i);
	np_ev_free(ev);
}
END_TEST

START_TEST(timer_delete_before_fire)
{
	struct np_ev *ev = np_ev_new();
	struct tlog l;
	struct targ a[3];
	uint64_t ids[3];
	int i;

	memset(&l, 0, sizeof(l));
	for (i = 0; i < 3; i++) {
		a[i].log = &l;
		a[i].tag = i;
		ids[i] = np_ev_timer_add(ev, 20 + (uint64_t)i, on_timer, &a[i]);
	}
	np_ev_timer_del(ev, ids[1]);
	np_ev_timer_del(ev, ids[1]); /* twice: stale id is fine */
	np_ev_timer_del(ev, 0);
	np_ev_timer_del(ev, 999999);
	run_until(ev, &l, 2, 2000);
	ck_assert_int_eq(np_ev_run_once(ev, 50), NP_OK);
	ck_assert_int_eq(l.n, 2);
	ck_assert_int_eq(l.tags[0], 0);
	ck_assert_int_eq(l.tags[1], 2);
	np_ev_free(ev);
}
END_TEST

START_TEST(timer_deletes_other_in_callback)
{
	struct np_ev *ev = np_ev_new();
	struct tlog l;
	struct targ a[2];

	memset(&l, 0, sizeof(l));
	a[0].log = a[1].log = &l;
	a[0].tag = 0;
	a[1].tag = 1;
	ck_assert_uint_gt(np_ev_timer_add(ev, 0, on_timer, &a[0]), 0);
	/* Due in the same round: deleted by the first before it runs. */
	l.del_id = np_ev_timer_add(ev, 0, on_timer, &a[1]);
	usleep(2000);
	ck_assert_int_eq(np_ev_run_once(ev, 0), NP_OK);
	ck_assert_int_eq(np_ev_run_once(ev, 20), NP_OK);
	ck_assert_int_eq(l.n, 1);
	ck_assert_int_eq(l.tags[0], 0);
	np_ev_free(ev);
}
END_TEST

struct many {
	int fired;
	uint64_t last_when;
	int order_ok;
	uint64_t t0;
};

static void
on_many(struct np_ev *ev, uint64_t id, void *arg)
{
	struct many *m = arg;

	m->fired++;
}

START_TEST(ten_thousand_timers)
{
	enum { N = 10000 };
	struct np_ev *ev = np_ev_new();
	struct many m;
	uint64_t *ids = malloc(N * sizeof(*ids)), end;
	int i, live = 0;

	memset(&m, 0, sizeof(m));
	srand(7);
	for (i = 0; i < N; i++) {
		ids[i] =
		    np_ev_timer_add(ev, (uint64_t)(rand() % 50), on_many, &m);
		ck_assert_uint_gt(ids[i], 0);
	}
	/* Delete every third, in a scattered order. */
	for (i = N - 1; i >= 0; i--) {
		if (i % 3 == 0)
			np_ev_timer_del(ev, ids[i]);
		else
			live++;
	}
	end = np_now_mono_ms() + 5000;
	while (m.fired < live && np_now_mono_ms() < end)
		ck_assert_int_eq(np_ev_run_once(ev, 100), NP_OK);
	ck_assert_int_eq(m.fired, live);
	/* Far-future timers remain pending and are freed with the loop. */
	for (i = 0; i < N; i++)
		ck_assert_uint_gt(np_ev_timer_add(ev, 3600 * 1000, on_many, &m),
				  0);
	ck_assert_int_eq(np_ev_run_once(ev, 0), NP_OK);
	ck_assert_int_eq(m.fired, live);
	free(ids);
	np_ev_free(ev);
}
END_TEST

/* A timer that re-arms itself with 0 ms runs once per round, so the
 * round ends. */
static void
on_rearm(struct np_ev *ev, uint64_t id, void *arg)
{
	int *n = arg;

	(*n)++;
	ck_assert_uint_gt(np_ev_timer_add(ev, 0, on_rearm, n), id);
}

START_TEST(timer_rearm_zero)
{
	struct np_ev *ev = np_ev_new();
	int n = 0;

	ck_assert_uint_gt(np_ev_timer_add(ev, 0, on_rearm, &n), 0);
	ck_assert_int_eq(np_ev_run_once(ev, 0), NP_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(np_ev_run_once(ev, 0), NP_OK);
	ck_assert_int_eq(n, 2);
	np_ev_free(ev);
}
END_TEST

/* ---- signals and run/stop ---- */

struct sig {
	int got;
	int signo;
};

static void
on_signal(struct np_ev *ev, int signo, void *arg)
{
	struct sig *s = arg;

	s->got++;
	s->signo = signo;
	np_ev_stop(ev);
}

START_TEST(signal_delivery)
{
	struct np_ev *ev = np_ev_new();
	struct sig s = {0, 0};

	ck_assert_int_eq(np_ev_signal_add(ev, SIGUSR1, on_signal, &s), NP_OK);
	ck_assert_int_eq(np_ev_signal_add(ev, SIGUSR2, on_signal, &s), NP_OK);
	ck_assert_int_eq(np_ev_signal_add(ev, 0, on_signal, &s),
			 NP_ERR_INVALID);
	ck_assert_int_eq(raise(SIGUSR2), 0);
	ck_assert_int_eq(np_ev_run(ev), NP_OK);
	ck_assert_int_eq(s.got, 1);
	ck_assert_int_eq(s.signo, SIGUSR2);
	ck_assert_int_eq(raise(SIGUSR1), 0);
	ck_assert_int_eq(np_ev_run(ev), NP_OK);
	ck_assert_int_eq(s.got, 2);
	ck_assert_int_eq(s.signo, SIGUSR1);
	np_ev_free(ev);
}
END_TEST

static void
on_stop_timer(struct np_ev *ev, uint64_t id, void *arg)
{
	np_ev_stop(ev);
}

START_TEST(run_until_stop)
{
	struct np_ev *ev = np_ev_new();
	uint64_t t0 = np_now_mono_ms();

	ck_assert_uint_gt(np_ev_timer_add(ev, 30, on_stop_timer, NULL), 0);
	ck_assert_int_eq(np_ev_run(ev), NP_OK);
	ck_assert_uint_ge(np_now_mono_ms() - t0, 30);
	ck_assert_uint_lt(np_now_mono_ms() - t0, 2000);
	ck_assert_int_gt(np_now_real_ms(), INT64_C(1600000000000));
	np_ev_free(ev);
	np_ev_free(NULL);
}
END_TEST

static Suite *
ev_suite(void)
{
	Suite *s = suite_create("ev");
	TCase *fds = tcase_create("fds");
	TCase *timers = tcase_create("timers");
	TCase *sig = tcase_create("signals");

	tcase_add_test(fds, fd_read_ready);
	tcase_add_test(fds, fd_write_and_mod);
	tcase_add_test(fds, fd_delete_self);
	tcase_add_test(fds, fd_delete_other_and_reuse);
	tcase_add_test(fds, many_fds);
	suite_add_tcase(s, fds);
	tcase_add_test(timers, timers_in_order);
	tcase_add_test(timers, timer_same_deadline_fifo);
	tcase_add_test(timers, timer_delete_before_fire);
	tcase_add_test(timers, timer_deletes_other_in_callback);
	tcase_add_test(timers, ten_thousand_timers);
	tcase_add_test(timers, timer_rearm_zero);
	tcase_set_timeout(timers, 30);
	suite_add_tcase(s, timers);
	tcase_add_test(sig, signal_delivery);
	tcase_add_test(sig, run_until_stop);
	suite_add_tcase(s, sig);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ev_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
