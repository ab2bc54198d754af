#!/bin/sh
# Succeeds with plain text on stdout: the result is that text as a string.
printf 'hello from a command\nsecond line\n'
