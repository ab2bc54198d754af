/* Per-key event meters: a hash of keys, each with a ring of 60 one-second
 * buckets and a ring of METER_MINUTES one-minute buckets, each bucket
 * stamped with the second or minute it counts (a stale stamp reads as 0). */
#include "core/meter.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define METER_BUCKETS 256
#define METER_SECONDS 60

struct meter_key {
	char key[72];
	int64_t second[METER_SECONDS];
	int64_t count[METER_SECONDS];
	int64_t minute[METER_MINUTES];
	int64_t per_minute[METER_MINUTES];
	struct meter_key *next;
};

struct meter {
	pthread_mutex_t mu;
	struct meter_key *buckets[METER_BUCKETS];
};

static size_t bucket_of(const char *key)
{
	return (size_t)(hash_str(key) % METER_BUCKETS);
}

struct meter *meter_new(void)
{
	struct meter *m = calloc(1, sizeof *m);
	if (m)
		pthread_mutex_init(&m->mu, NULL);
	return m;
}

void meter_free(struct meter *m)
{
	if (!m)
		return;
	for (size_t b = 0; b < METER_BUCKETS; b++) {
		struct meter_key *k = m->buckets[b];
		while (k) {
			struct meter_key *next = k->next;
			free(k);
			k = next;
		}
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Caller holds mu. create: add the key when missing (NULL on OOM). */
static struct meter_key *find(struct meter *m, const char *key, int create)
{
	size_t b = bucket_of(key);
	struct meter_key *k = m->buckets[b];
	while (k && strcmp(k->key, key) != 0)
		k = k->next;
	if (!k && create && (k = calloc(1, sizeof *k))) {
		snprintf(k->key, sizeof k->key, "%s", key);
		k->next = m->buckets[b];
		m->buckets[b] = k;
	}
	return k;
}

void meter_add(struct meter *m, const char *key, int64_t now_ms)
{
	int64_t sec = now_ms / 1000;
	int slot = (int)(sec % METER_SECONDS);
	pthread_mutex_lock(&m->mu);
	struct meter_key *k = find(m, key, 1);
	if (k) {
		if (k->second[slot] != sec) {
			k->second[slot] = sec;
			k->count[slot] = 0;
		}
		k->count[slot]++;
		int64_t min = sec / 60;
		int mslot = (int)(min % METER_MINUTES);
		if (k->minute[mslot] != min) {
			k->minute[mslot] = min;
			k->per_minute[mslot] = 0;
		}
		k->per_minute[mslot]++;
	}
	pthread_mutex_unlock(&m->mu);
}

int64_t meter_last_minute(struct meter *m, const char *key, int64_t now_ms)
{
	int64_t sec = now_ms / 1000, sum = 0;
	pthread_mutex_lock(&m->mu);
	struct meter_key *k = find(m, key, 0);
	for (int i = 0; k && i < METER_SECONDS; i++)
		if (k->second[i] > sec - METER_SECONDS && k->second[i] <= sec)
			sum += k->count[i];
	pthread_mutex_unlock(&m->mu);
	return sum;
}

void meter_minutes(struct meter *m, const char *key, int64_t now_ms,
                   int64_t minute_ms[METER_MINUTES], int64_t count[METER_MINUTES])
{
	int64_t now_min = now_ms / 60000;
	pthread_mutex_lock(&m->mu);
	struct meter_key *k = find(m, key, 0);
	for (int i = 0; i < METER_MINUTES; i++) {
		int64_t min = now_min - (METER_MINUTES - 1) + i;
		int slot = (int)(min % METER_MINUTES);
		minute_ms[i] = min * 60000;
		count[i] = k && k->minute[slot] == min ? k->per_minute[slot] : 0;
	}
	pthread_mutex_unlock(&m->mu);
}
