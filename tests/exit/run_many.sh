#!/usr/bin/env bash
# Runs an exit-shape program N times; every run must exit 0, print the
# expected first line and write nothing to stderr (no crash, no sanitizer
# report). Usage: run_many.sh PROGRAM N EXPECTED_STDOUT
set -u
prog=$1 n=$2 want=$3
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for ((i = 1; i <= n; i++)); do
  out=$("$prog" 2>"$err")
  rc=$?
  if [ $rc -ne 0 ] || [ "$out" != "$want" ] || [ -s "$err" ]; then
    echo "run $i of $n: exit status $rc, stdout '$out' (want '$want')"
    head -50 "$err"
    exit 1
  fi
done
echo "$n runs of $(basename "$prog"): all clean"
