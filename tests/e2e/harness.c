/*
 * harness.c - processes, files, ports, and the PostgreSQL and nats-server
 * servers the end-to-end tests run against (see harness.h). The per-test
 * environment, the service and the runner hooks are in harness_env.c, HTTP
 * and load in harness_http.c, SQL and JetStream in harness_data.c.
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define PORT_LOCK_DIR "/tmp/es-e2e-ports"

extern char **environ;

bool h_in_runner;

/* ---- time, files ---------------------------------------------------------- */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

long h_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

char *h_read_file(const char *path, long from, long *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    if (from > 0 && fseek(f, from, SEEK_SET) != 0)
        from = 0;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (long)n;
    return buf;
}

bool h_file_contains(const char *path, const char *needle, long from)
{
    long len = 0;
    char *text = h_read_file(path, from, &len);
    bool found = text != NULL && memmem(text, (size_t)len, needle, strlen(needle)) != NULL;
    free(text);
    return found;
}

void h_print_tail(const char *path, int lines, const char *prefix)
{
    long len = 0;
    char *text = h_read_file(path, 0, &len);
    if (text == NULL) {
        fprintf(stderr, "%s(no file %s)\n", prefix, path);
        return;
    }
    const char *start = text + len;
    for (int seen = 0; start > text; start--)
        if (start[-1] == '\n' && start != text + len && ++seen > lines)
            break;
    for (const char *line = start; *line;) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(stderr, "%s%.*s\n", prefix, n, line);
        line += n + (nl ? 1 : 0);
    }
    free(text);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

void h_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void chown_postgres(const char *path)
{
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL || chown(path, pw->pw_uid, pw->pw_gid) != 0)
        h_fatal("cannot give %s to the postgres user", path);
}

/* ---- processes, ports ----------------------------------------------------- */

static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int h_free_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)h_now_ms();
    mkdir(PORT_LOCK_DIR, 01777);
    chmod(PORT_LOCK_DIR, 01777);
    for (int attempt = 0; attempt < 5000; attempt++) {
        int port = 20000 + (int)(rand_r(&seed) % 12000);
        char path[64];
        snprintf(path, sizeof(path), PORT_LOCK_DIR "/%d.lock", port);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !port_bindable(port)) {
            close(fd);
            continue;
        }
        return port; /* fd stays open: the lock lasts as long as this process */
    }
    h_fatal("no free port found");
    return -1;
}

static bool find_program(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        snprintf(out, cap, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/bin:/sbin:/bin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static bool env_named(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

pid_t h_spawn(const char *const *argv, const char *log_path, bool as_postgres,
              const char *const *env_unset, const char *const *env_set)
{
    char prog[512];
    if (!find_program(argv[0], prog, sizeof(prog)))
        h_fatal("program not found: %s", argv[0]);
    /* Everything the child needs is prepared here: after fork in a
     * multithreaded process only async-signal-safe calls are allowed. */
    size_t n = 0;
    while (environ[n])
        n++;
    size_t extra = 0;
    while (env_set && env_set[extra])
        extra++;
    char **envp = calloc(n + extra + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool drop = false;
        for (size_t u = 0; env_unset && env_unset[u]; u++)
            drop = drop || env_named(environ[i], env_unset[u]);
        for (size_t s = 0; s < extra; s++)
            drop = drop || strncmp(environ[i], env_set[s], strcspn(env_set[s], "=") + 1) == 0;
        if (!drop)
            envp[k++] = environ[i];
    }
    for (size_t s = 0; s < extra; s++)
        envp[k++] = (char *)env_set[s];
    envp[k] = NULL;
    struct passwd *pw = as_postgres ? getpwnam("postgres") : NULL;
    if (as_postgres && pw == NULL)
        h_fatal("no postgres user");
    uid_t uid = pw ? pw->pw_uid : 0;
    gid_t gid = pw ? pw->pw_gid : 0;
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0)
        h_fatal("cannot open %s: %s", log_path, strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        closefrom(3);
        if (as_postgres &&
            (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || chdir("/tmp") != 0))
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(125);
        execve(prog, (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    close(logfd);
    close(nullfd);
    if (pid < 0)
        h_fatal("fork: %s", strerror(errno));
    return pid;
}

bool h_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            if (status)
                *status = r == pid ? st : 0;
            return true;
        }
        if (h_now_ms() >= deadline)
            return false;
        h_pause_ms(5);
    }
}

int h_stop_process(pid_t pid, int sig, int timeout_ms)
{
    int status = 0;
    kill(pid, sig);
    if (h_wait_exit(pid, timeout_ms, &status))
        return status;
    kill(pid, SIGKILL);
    h_wait_exit(pid, 10000, NULL);
    return -1;
}

/* ---- PostgreSQL ----------------------------------------------------------- */

void h_pg_start(h_pg_t *pg)
{
    char data[300], log[300], port[16];
    snprintf(data, sizeof(data), "%s/pgdata", pg->dir);
    snprintf(log, sizeof(log), "%s/pg.log", pg->dir);
    snprintf(port, sizeof(port), "%d", pg->port);
    const char *argv[] = {PG_BIN "/postgres",
                          "-D",
                          data,
                          "-k",
                          pg->dir,
                          "-p",
                          port,
                          "-c",
                          "listen_addresses=127.0.0.1",
                          "-c",
                          "fsync=off",
                          "-c",
                          "synchronous_commit=off",
                          "-c",
                          "full_page_writes=off",
                          "-c",
                          "max_connections=400",
                          "-c",
                          "shared_buffers=64MB",
                          NULL};
    pg->pid = h_spawn(argv, log, true, NULL, NULL);
    char conninfo[200];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2", pg->port);
    int64_t deadline = h_now_ms() + 30000;
    while (PQping(conninfo) != PQPING_OK) {
        int status;
        if (h_wait_exit(pg->pid, 0, &status)) {
            pg->pid = 0;
            h_print_tail(log, 20, "  pg.log| ");
            h_fatal("PostgreSQL on port %d exited at start (status 0x%x)", pg->port, status);
        }
        if (h_now_ms() > deadline)
            h_fatal("PostgreSQL on port %d not accepting connections after 30 s", pg->port);
        h_pause_ms(10);
    }
}

void h_pg_create(h_pg_t *pg, const char *dir, int port)
{
    snprintf(pg->dir, sizeof(pg->dir), "%s", dir);
    pg->port = port;
    pg->pid = 0;
    chown_postgres(dir);
    char data[300], log[300];
    snprintf(data, sizeof(data), "%s/pgdata", dir);
    snprintf(log, sizeof(log), "%s/initdb.log", dir);
    const char *argv[] = {PG_BIN "/initdb",
                          "-D",
                          data,
                          "-A",
                          "trust",
                          "-U",
                          "postgres",
                          "-E",
                          "UTF8",
                          "--locale=C.UTF-8",
                          "--no-sync",
                          "--no-instructions",
                          NULL};
    pid_t pid = h_spawn(argv, log, true, NULL, NULL);
    int status = 0;
    if (!h_wait_exit(pid, 120000, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        h_print_tail(log, 20, "  initdb| ");
        h_fatal("initdb %s failed (status 0x%x)", data, status);
    }
    h_pg_start(pg);
}

void h_pg_stop(h_pg_t *pg)
{
    if (pg->pid > 0 && h_stop_process(pg->pid, SIGINT, 30000) < 0)
        fprintf(stderr, "e2e: PostgreSQL on port %d needed SIGKILL\n", pg->port);
    pg->pid = 0;
}

void h_pg_destroy(h_pg_t *pg)
{
    h_pg_stop(pg);
    char data[300];
    snprintf(data, sizeof(data), "%s/pgdata", pg->dir);
    h_rm_rf(data);
}

bool h_pg_admin(int port, const char *sql, char *err, size_t errlen)
{
    char conninfo[200];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=10 "
             "options='-c client_min_messages=warning'",
             port);
    PGconn *c = PQconnectdb(conninfo);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}

/* ---- nats-server ---------------------------------------------------------- */

void h_nats_start(h_nats_t *n)
{
    char store[300], log[300], port[16];
    snprintf(store, sizeof(store), "%s/nats-store", n->dir);
    snprintf(log, sizeof(log), "%s/nats.log", n->dir);
    snprintf(port, sizeof(port), "%d", n->port);
    mkdir(store, 0755);
    long from = h_file_size(log);
    const char *argv[] = {"nats-server", "-js", "-sd", store, "-a", "127.0.0.1",
                          "-p",          port,  "-l",  log,   NULL};
    n->pid = h_spawn(argv, log, false, NULL, NULL);
    int64_t deadline = h_now_ms() + 20000;
    while (!h_file_contains(log, "Server is ready", from)) {
        int status;
        if (h_wait_exit(n->pid, 0, &status)) {
            n->pid = 0;
            h_print_tail(log, 20, "  nats.log| ");
            h_fatal("nats-server on port %d exited at start", n->port);
        }
        if (h_now_ms() > deadline)
            h_fatal("nats-server on port %d not ready after 20 s", n->port);
        h_pause_ms(5);
    }
}

void h_nats_stop(h_nats_t *n, int sig)
{
    if (n->pid > 0)
        h_stop_process(n->pid, sig, 15000);
    n->pid = 0;
}
