#!/usr/bin/env bash
# A tool some tests need, from Debian's packages, installed only when it is missing.
#
#   scripts/debian-tool-for-tests.sh PROGRAM PACKAGE...
#
# PROGRAM is a command on PATH or an absolute path. When it is there, nothing to do;
# otherwise, on a Debian machine where we are root: apt-get update once, then install
# PACKAGE... without recommends. Used by .ci/run for Graphviz's `dot`
# (tests/compiler/test_graph.py) and Debian's Chromium (tests/browser/, which
# Playwright drives at /usr/bin/chromium: its own browser download needs a network
# CI does not have). Quiet and idempotent: one line on stderr says what it found or
# installed; apt-get's output goes to a log shown only when something fails.
set -euo pipefail

[ "$#" -ge 2 ] || { echo "usage: $0 PROGRAM PACKAGE..." >&2; exit 2; }
program=$1
shift
packages=("$@")

say() { echo "tool-for-tests ($program): $*" >&2; }
die() {
  say "error: $*"
  exit 1
}
found() { command -v "$program" >/dev/null 2>&1 || [ -x "$program" ]; }

if found; then
  say "found $(command -v "$program" || echo "$program")"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "not found and not root: install ${packages[*]}"
command -v apt-get >/dev/null 2>&1 || die "not found and no apt-get: install ${packages[*]}"

log="$(mktemp -t tool-for-tests.XXXXXX)"
trap 'rm -f "$log"' EXIT
say "installing ${packages[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >"$log" 2>&1 || die "apt-get update failed: $(tail -n 5 "$log")"
apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$log" 2>&1 ||
  die "apt-get install ${packages[*]} failed: $(tail -n 5 "$log")"
found || die "${packages[*]} installed but $program is still missing"
say "installed $(command -v "$program" || echo "$program")"
