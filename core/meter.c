/* Per-key one-minute event meters: a hash of keys, each a ring of 60
 * one-second buckets stamped with the second they count. */
#include "core/meter.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METER_BUCKETS 256
#define METER_SECONDS 60

struct meter_key {
	char key[72];
	int64_t second[METER_SECONDS];
	int64_t count[METER_SECONDS];
	struct meter_key *next;
};

struct meter {
	pthread_mutex_t mu;
	struct meter_key *buckets[METER_BUCKETS];
};

static size_t bucket_of(const char *key)
{
	size_t h = 5381;
	for (; *key; key++)
		h = h * 33 + (unsigned char)*key;
	return h % METER_BUCKETS;
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
