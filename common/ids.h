/*
 * ids.h - random identifiers (UUID v4 text) from the kernel's CSPRNG.
 */
#ifndef ES_IDS_H
#define ES_IDS_H

#include "common/es.h"

#define ES_UUID_LEN 36

/* Writes a new random UUID v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a NUL
 * into out (ES_UUID_LEN + 1 bytes). */
void es_uuid_v4(char *out);
/* A time-ordered UUID (RFC 9562 version 7): the 48-bit Unix time in
 * milliseconds of unix_us, then 74 random bits. Ids made in later
 * milliseconds sort after earlier ones, so an index on them grows at its
 * right edge instead of touching a random page per insert. */
void es_uuid_v7(int64_t unix_us, char *out);

/* Writes a UUID (version 5 layout) derived from name with SHA-256: the same
 * name always gives the same UUID. */
void es_uuid_from_name(const char *name, size_t len, char *out);

/* Fills buf with n random bytes from getrandom, drawn ahead in a per-thread
 * pool that a forked child never shares (aborts if the kernel cannot). */
void es_random_bytes(void *buf, size_t n);

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void es_hex(const unsigned char *in, size_t n, char *out);

#endif
