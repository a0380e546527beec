#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/test_report_browser.py):
#
#   scripts/browser-install.sh   # apt: chromium, chromium-driver (needs root)
#
# The test drives Debian's chromium through its chromium-driver (the chromedriver on PATH), so that
# Selenium never downloads a browser or driver; without them it skips and says why.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

die() { echo "browser-install.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get install ${PACKAGES[*]})"
command -v apt-get >/dev/null || die "apt-get not found; install ${PACKAGES[*]} with your package manager"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}" \
  || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || die "installed ${PACKAGES[*]} but chromium or chromedriver is not on PATH"
chromium --version
