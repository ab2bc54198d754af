#!/bin/sh
# Lists this shell's open fds (ls -l of /proc/<shell pid>/fd, run as a child
# so the listing is stable), to check that jobqd hands over fds 0-3 only; the
# shell's own script fd, if any, is a regular file.
ls -l /proc/$$/fd
exit 0
