#!/usr/bin/env bash
# Graphviz's `dot` for the test that renders a policy graph with it
# (tests/compiler/test_graph.py skips without it).
#
#   scripts/graphviz-for-tests.sh     nothing to do when `dot` is on PATH; otherwise, on
#                                     a Debian machine where we are root, install the
#                                     `graphviz` package: apt-get update once, then install.
#
# Quiet and idempotent: one line on stderr says which `dot` it found or installed;
# apt-get's output goes to a log that is shown only when something fails.
set -euo pipefail

say() { echo "graphviz-for-tests: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

if command -v dot >/dev/null 2>&1; then
  say "found $(command -v dot)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "dot not found and not root: install the 'graphviz' package"
command -v apt-get >/dev/null 2>&1 || die "dot not found and no apt-get: install Graphviz"

log="$(mktemp -t graphviz-for-tests.XXXXXX)"
trap 'rm -f "$log"' EXIT
say "installing the graphviz Debian package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >"$log" 2>&1 || die "apt-get update failed: $(tail -n 5 "$log")"
apt-get install -y -qq --no-install-recommends graphviz >"$log" 2>&1 ||
  die "apt-get install graphviz failed: $(tail -n 5 "$log")"
command -v dot >/dev/null 2>&1 || die "graphviz installed but dot is still not on PATH"
say "installed $(command -v dot) ($(dot -V 2>&1))"
