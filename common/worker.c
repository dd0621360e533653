#include "common/worker.h"

#include "common/log.h"
#include "common/timeutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

void es_worker_signals(void (*on_stop)(int))
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

void es_worker_beat(int master_fd)
{
    char beat = 'h';
    ssize_t n = write(master_fd, &beat, 1);
    (void)n;
}

bool es_worker_master_gone(int master_fd)
{
    struct pollfd p = {master_fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return false;
    char buf[64];
    ssize_t got = read(master_fd, buf, sizeof(buf));
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        es_warn("master process is gone; stopping");
        return true;
    }
    return false;
}

bool es_worker_heartbeat(int master_fd, int64_t *last_beat_ms)
{
    int64_t now = es_time_mono_ms();
    if (now - *last_beat_ms < 1000)
        return true;
    *last_beat_ms = now;
    es_worker_beat(master_fd);
    return !es_worker_master_gone(master_fd);
}
