#!/bin/sh
# Writes its stdin as hex in a JSON string, so the result shows every byte
# the command was given (a \u0000 escape, a number's exact digits).
printf '"%s"\n' "$(od -An -v -tx1 | tr -d ' \n')"
