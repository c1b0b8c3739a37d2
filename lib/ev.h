/*
 * A small event loop: fd readiness (epoll), one-shot timers on the
 * monotonic clock, and signals (signalfd).  Single-threaded.  Callbacks
 * may add and delete fds and timers, including their own.
 */
#ifndef NP_EV_H
#define NP_EV_H

#include <stdint.h>

#define NP_EV_READ 0x1
#define NP_EV_WRITE 0x2
#define NP_EV_ERROR 0x4 /* EPOLLERR / EPOLLHUP: delivered always */

struct np_ev;

typedef void np_ev_fd_cb(struct np_ev *ev, int fd, uint32_t events,
    void *arg);
typedef void np_ev_timer_cb(struct np_ev *ev, uint64_t id, void *arg);
typedef void np_ev_signal_cb(struct np_ev *ev, int signo, void *arg);

struct np_ev *np_ev_new(void);
void np_ev_free(struct np_ev *ev); /* does not close fds */

int np_ev_add(struct np_ev *ev, int fd, uint32_t mask, np_ev_fd_cb *cb,
    void *arg);
int np_ev_mod(struct np_ev *ev, int fd, uint32_t mask);
int np_ev_del(struct np_ev *ev, int fd);

/* One-shot timer after ms milliseconds; returns an id > 0, 0 on error. */
uint64_t np_ev_timer_add(struct np_ev *ev, uint64_t ms, np_ev_timer_cb *cb,
    void *arg);
void np_ev_timer_del(struct np_ev *ev, uint64_t id); /* 0 / stale ok */

/* Block signo and deliver it through the loop. */
int np_ev_signal_add(struct np_ev *ev, int signo, np_ev_signal_cb *cb,
    void *arg);

/* Run until np_ev_stop(); NP_OK or an error. */
int np_ev_run(struct np_ev *ev);
/* One iteration, waiting at most timeout_ms (-1: until an event). */
int np_ev_run_once(struct np_ev *ev, int timeout_ms);
void np_ev_stop(struct np_ev *ev);

/* Monotonic milliseconds. */
uint64_t np_now_mono_ms(void);
/* Wall-clock milliseconds since the epoch. */
int64_t np_now_real_ms(void);

#endif
