/*
 * master.h - the master process: binds the listening sockets, applies the
 * schema migrations, then forks and supervises the workers.
 */
#ifndef ES_MASTER_H
#define ES_MASTER_H

#include "common/config.h"

/* Runs the master until SIGTERM/SIGINT and every worker is gone. Takes
 * ownership of cfg (reloads replace it). Returns the process exit status. */
int es_master_run(es_config_t *cfg);

/* Connects to the configured database (retrying up to wait_seconds while it
 * is unreachable) and applies pending migrations. Blocking. */
es_rc_t es_master_migrate(const es_config_t *cfg, int wait_seconds, char *err,
                          size_t errlen) ES_MUST_CHECK;

/* Binds n listening sockets on bind:port with SO_REUSEPORT (one per API
 * worker: the kernel spreads connections evenly across them). */
es_rc_t es_listen_open(const char *bind, int port, int n, int *fds, char *err,
                       size_t errlen) ES_MUST_CHECK;
void es_listen_close(int *fds, int n);

/* Registers this instance in Consul (consul.host:port); false on failure. */
bool es_consul_register(const es_config_t *cfg);
/* Removes the registration made by es_consul_register, if any. */
void es_consul_deregister(const es_config_t *cfg);

#endif
