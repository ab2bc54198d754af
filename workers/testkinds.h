/* Job types compiled only into the test build (build/jobqd-test), for
 * crash-recovery and torture tests. Never part of jobqd. */
#ifndef JOBQ_TESTKINDS_H
#define JOBQ_TESTKINDS_H

/* Registers crash and tally. Returns -1 if a name is taken. */
int testkinds_register(void);

#endif
