/* The store's fault seam, for tests: makes one op fail halfway, at a step
 * the backend chose (a row read, a statement after the first), as if
 * memory ran out there. */
#ifndef JOBQ_STORE_FAULT_H
#define JOBQ_STORE_FAULT_H

#include "store/store.h"

/* The next op of this kind fails at its step-th step (1 is the first);
 * once. An op with fewer steps does not fail and leaves it armed. */
void store_fault_arm(enum store_op_kind kind, int step);

/* Disarms; returns whether the armed fault has fired since store_fault_arm. */
bool store_fault_disarm(void);

#endif
