#!/usr/bin/env bash
# tests/diag/expect.sh PROGRAM MODE STATUS STDERR_REGEX [NOT_STDERR_REGEX]
# Runs `PROGRAM MODE` (with a 60 s limit), and checks its exit status
# (a number, or "signal:N" for death by signal N) and that its stderr
# ("-": anything)
# matches STDERR_REGEX (grep -E, over the whole text) and, if given, does
# not match NOT_STDERR_REGEX.
set -u
prog=$1 mode=$2 want=$3 re=$4 notre=${5:-}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
timeout 60 "$prog" "$mode" 2>"$err" >/dev/null
st=$?
got=$st
if [ "$st" -gt 128 ] && [ "$st" -ne 124 ]; then got="signal:$((st - 128))"; fi
fail=0
if [ "$got" != "$want" ]; then echo "$mode: exit status $got, want $want"; fail=1; fi
if [ "$re" != "-" ] && ! grep -Eq -- "$re" "$err"; then echo "$mode: stderr does not match /$re/"; fail=1; fi
if [ -n "$notre" ] && grep -Eq -- "$notre" "$err"; then echo "$mode: stderr matches /$notre/"; fail=1; fi
if [ $fail -ne 0 ]; then echo "--- stderr:"; head -c 4000 "$err"; exit 1; fi
echo "$mode: status $got as expected"
