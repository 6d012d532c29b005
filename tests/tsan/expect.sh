#!/usr/bin/env bash
# Runs tests/tsan/races in one mode and checks ThreadSanitizer's verdict.
# Usage: expect.sh PROGRAM MODE race|clean
set -u
prog=$1 mode=$2 want=$3
out=$(TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_EXTRA:-}" "$prog" "$mode" 2>&1)
rc=$?
if grep -q "WARNING: ThreadSanitizer: data race" <<<"$out"; then got=race; else got=clean; fi
if [ "$got" != "$want" ]; then
  echo "$mode: expected $want, got $got (exit status $rc)"
  echo "$out" | head -60
  exit 1
fi
if [ "$want" = clean ] && [ $rc -ne 0 ]; then
  echo "$mode: no race reported, but exit status $rc"
  echo "$out" | head -60
  exit 1
fi
echo "$mode: $want, as expected"
