#!/usr/bin/env bash
# Installs the Debian packages goro's build, tests and demo need, if missing.
# Used by the README's two commands and by .ci/run. Safe to re-run.
set -euo pipefail
pkgs=(g++ cmake ninja-build libgtest-dev libbenchmark-dev pkg-config libdw-dev)
# goro::nats: the C client it wraps, and the server its tests and demo start.
pkgs+=(libnats-dev nats-server)
# clang 14 and its sanitizer runtimes: the clang presets (CI builds with both compilers).
[ "${GORO_SETUP_CLANG:-0}" = 1 ] && pkgs+=(clang libclang-rt-14-dev)
[ "${GORO_SETUP_BENCH:-0}" = 1 ] && pkgs+=(golang-1.19-go libboost-fiber-dev libboost-context-dev wrk golang-github-nats-io-go-nats-dev)
# ccache: CI's five builds reuse the objects of the previous run on this machine.
[ "${GORO_SETUP_CCACHE:-0}" = 1 ] && pkgs+=(ccache)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
