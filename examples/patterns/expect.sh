#!/usr/bin/env bash
# examples/patterns/expect.sh PROGRAM EXPECTED: runs PROGRAM (60 s limit) and
# checks that it exits with status 0 and prints exactly EXPECTED on stdout.
set -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 60 "$1" >"$out"
st=$?
if [ $st -ne 0 ]; then echo "$1: exit status $st"; cat "$out"; exit 1; fi
if ! diff -u "$2" "$out"; then echo "$1: output differs from $2"; exit 1; fi
echo "$(basename "$1"): output as expected"
