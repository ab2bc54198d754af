#!/bin/sh
# Writes output without end (past the 1 MiB cap) and would never exit: jobqd
# must stop it and fail the job with "output larger than N bytes".
exec yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
