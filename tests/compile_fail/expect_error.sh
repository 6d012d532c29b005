#!/usr/bin/env bash
# Compiles FILE with the project's compiler and flags; passes if compilation
# fails and the diagnostics contain MESSAGE.
# Usage: expect_error.sh COMPILER FILE MESSAGE INCLUDE_DIR...
set -u
cxx=$1 file=$2 msg=$3
shift 3
incs=()
for d in "$@"; do incs+=("-I$d"); done
out=$("$cxx" -std=c++20 -fsyntax-only -DGORO_STATIC_DEFINE "${incs[@]}" "$file" 2>&1)
if [ $? -eq 0 ]; then
  echo "$(basename "$file"): compiled, but must not"
  exit 1
fi
if ! grep -qF -- "$msg" <<<"$out"; then
  echo "$(basename "$file"): failed to compile without the message: $msg"
  echo "$out" | head -40
  exit 1
fi
echo "$(basename "$file"): rejected with: $msg"
