#!/usr/bin/env bash
# tests/net_examples.sh SERVER KIND LOAD CONNS: starts an example server
# (examples/echo_server or examples/http_hello) on a free loopback port and
# has examples/net_load open CONNS connections to it at once (--hold), each
# doing 3 checked round trips (echo payloads or HTTP keep-alive requests).
# Fails unless every connection is opened and every reply is right. Exits 77
# (skipped) if the hard open-file limit cannot hold CONNS connections.
set -euo pipefail
server=$1 kind=$2 load=$3 conns=$4

hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && (( hard < conns + 64 )); then
  echo "hard RLIMIT_NOFILE $hard is below $conns connections + 64: skipped"
  exit 77
fi
ulimit -n "$hard"  # for the client; the server raises its own, as Go does

out=$(mktemp)
"$server" 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 200); do
  grep -q '^listening on ' "$out" && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$out")
[[ -n $addr ]] || { echo "server did not start:"; cat "$out"; exit 1; }
"$load" "$kind" "$addr" --conns "$conns" --hold --rounds 3
kill -0 "$pid"  # the server survived
