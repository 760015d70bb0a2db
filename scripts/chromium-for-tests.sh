#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser/ skips without it).
# Playwright drives it with executable_path=/usr/bin/chromium: Playwright's own
# browser download needs a network CI does not have, Debian's mirror it has.
#
#   scripts/chromium-for-tests.sh     nothing to do when /usr/bin/chromium exists;
#                                     otherwise, on a Debian machine where we are root,
#                                     install the `chromium` package (and a font, so
#                                     screenshots show text): apt-get update once, then
#                                     install.
#
# Quiet and idempotent: one line on stderr says which chromium it found or installed;
# apt-get's output goes to a log that is shown only when something fails.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-dejavu-core)

say() { echo "chromium-for-tests: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

if [ -x "$CHROMIUM" ]; then
  say "found $CHROMIUM"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "$CHROMIUM not found and not root: install the 'chromium' package"
command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM not found and no apt-get: install Chromium"

log="$(mktemp -t chromium-for-tests.XXXXXX)"
trap 'rm -f "$log"' EXIT
say "installing the chromium Debian package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >"$log" 2>&1 || die "apt-get update failed: $(tail -n 5 "$log")"
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1 ||
  die "apt-get install ${PACKAGES[*]} failed: $(tail -n 5 "$log")"
[ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is still missing"
say "installed $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
