#!/usr/bin/env bash
# Installs what the lab and the tests need, only when it is missing. Safe to run again.
#  - Debian: kamailio (+ json, extra, utils modules), sip-tester (sipp), dovecot-imapd (the
#    message store the history tests start unprivileged) and chromium (the live view's
#    headless-browser test), redis-server (the shared-state engine the Redis store tests start)
#  - npm: the locked dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(kamailio kamailio-json-modules kamailio-extra-modules kamailio-utils-modules sip-tester
  dovecot-imapd chromium redis-server)
MODDIR=""
for d in /usr/lib/x86_64-linux-gnu/kamailio/modules /usr/lib/aarch64-linux-gnu/kamailio/modules /usr/lib/kamailio/modules; do
  [ -d "$d" ] && MODDIR="$d" && break
done

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package enables a system Kamailio service; the lab runs its own instance.
  # The packages enable system Kamailio and Dovecot services; the lab and the tests run
  # their own instances on free loopback ports.
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now kamailio dovecot redis-server >/dev/null 2>&1 || true
  fi
fi
command -v kamailio >/dev/null || { echo "ensure-deps: kamailio not found after install" >&2; exit 1; }
command -v sipp >/dev/null || { echo "ensure-deps: sipp not found after install" >&2; exit 1; }
command -v chromium >/dev/null || { echo "ensure-deps: chromium not found after install" >&2; exit 1; }
[ -x /usr/sbin/dovecot ] || { echo "ensure-deps: dovecot not found after install" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "ensure-deps: redis-server not found after install" >&2; exit 1; }

# npm: install when node_modules is absent or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm ci" >&2
  # Some npm releases have rejected the lock file over other platforms' optional
  # packages (EUSAGE); then fall back to a lock-respecting npm install. npm ci's output
  # goes to a log, so a failure is one line here, not a hundred.
  mkdir -p run
  log=run/npm-ci.log
  if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    code=$(grep -m1 -o 'npm error code [A-Z0-9_]*' "$log" | awk '{print $4}' || true)
    echo "ensure-deps: npm ci failed${code:+ ($code)}, see $log; falling back to npm install" >&2
    npm install --no-audit --no-fund --loglevel=error --no-save
  fi
fi
