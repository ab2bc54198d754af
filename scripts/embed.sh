#!/bin/sh
# Writes a C file defining NAME (the bytes of FILE, NUL-terminated) and
# NAME_len (their count, without the NUL). Usage: embed.sh NAME FILE
# Each byte is cast, so UTF-8 text (bytes above 0x7f) fits a plain char.
set -eu
name=$1
file=$2
printf '/* Generated from %s by scripts/embed.sh; do not edit. */\n' "$file"
printf 'const char %s[] = {\n' "$name"
od -An -v -tx1 "$file" | sed -e 's/ \([0-9a-f][0-9a-f]\)/(char)0x\1,/g' -e 's/^/\t/'
printf '\t0x00\n};\n'
printf 'const unsigned long %s_len = sizeof %s - 1;\n' "$name" "$name"
