#!/usr/bin/env bash
# observatory_check.sh — HTTP security-header grade of a running Kura server, using the
# MDN HTTP Observatory scanner (npm @mdn/mdn-http-observatory) locally.
#
# usage: tests/security/observatory_check.sh URL CA_CERT_PEM
#
#   URL          https://HOST:PORT/ of the server, e.g. https://localhost:8443/ (HOST must
#                be a name or IP the certificate is valid for; the scanner fetches "/")
#   CA_CERT_PEM  the server's self-signed certificate (or its CA), trusted by the scanner
#                through NODE_EXTRA_CA_CERTS
#
# Passes when the grade is A+ and every observatory test passes, and the response to GET /
# also has the Kura headers the observatory does not grade (Cross-Origin-Opener-Policy:
# same-origin, a Permissions-Policy, Cache-Control: no-store). Prints score, grade and
# per-test results; on failure also the reasons and the response headers.
#
# The scanner is installed once (npm ci --ignore-scripts, versions pinned by
# tests/security/observatory/package-lock.json) into KURA_NPM_CACHE_DIR, and the
# conf/hsts-preload.json file its skipped postinstall step would download is stubbed
# with {} (an empty preload list: nothing, and certainly not localhost, is preloaded).
#
# Environment (all optional):
#   KURA_NPM_CACHE_DIR               install dir (default: build/npm-observatory, relative
#                                    to the current directory)
#   KURA_OBSERVATORY_INSTALL_TIMEOUT seconds for the npm install (default 300)
#   KURA_OBSERVATORY_TIMEOUT         seconds for the scan process (default 90)
# Needs: node >= 20, npm (first run only, npm registry), flock, timeout.
set -euo pipefail

die() { echo "observatory_check: FAIL: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { sed -n '2,11p' "$0" >&2; exit 2; }
URL=$1
CA_CERT=$2
[[ -r $CA_CERT ]] || die "CA_CERT_PEM '$CA_CERT' not readable"
CA_CERT=$(cd "$(dirname "$CA_CERT")" && pwd)/$(basename "$CA_CERT")
[[ $URL =~ ^https://[^/]+/?$ ]] || die "URL must look like https://HOST:PORT/ (got '$URL')"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in node npm flock timeout sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (node/npm: apt-get install nodejs npm)"
done

CACHE_DIR=${KURA_NPM_CACHE_DIR:-build/npm-observatory}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
PKG=$CACHE_DIR/node_modules/@mdn/mdn-http-observatory
LOCK_SRC=$HERE/observatory/package-lock.json
want_stamp=$(cat "$HERE/observatory/package.json" "$LOCK_SRC" | sha256sum | cut -d' ' -f1)

# ---- install (only when missing or the pinned versions changed) ---------------------
exec 9>"$CACHE_DIR/.install.lock"
flock -w 900 9 || die "could not lock $CACHE_DIR/.install.lock"
if [[ -f $PKG/package.json && "$(cat "$CACHE_DIR/.kura-stamp" 2>/dev/null)" == "$want_stamp" ]]; then
  echo "observatory_check: scanner already installed in $CACHE_DIR"
else
  echo "observatory_check: installing the scanner into $CACHE_DIR (npm ci --ignore-scripts)"
  rm -f "$CACHE_DIR/.kura-stamp"
  cp "$HERE/observatory/package.json" "$LOCK_SRC" "$CACHE_DIR/"
  t0=$(date +%s)
  if ! (cd "$CACHE_DIR" && timeout "${KURA_OBSERVATORY_INSTALL_TIMEOUT:-300}" \
          npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$CACHE_DIR/npm-install.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/npm-install.log" >&2
    die "npm ci failed (log: $CACHE_DIR/npm-install.log)"
  fi
  [[ -f $PKG/package.json ]] || die "npm ci did not install @mdn/mdn-http-observatory"
  echo "$want_stamp" >"$CACHE_DIR/.kura-stamp"
  echo "observatory_check: installed in $(( $(date +%s) - t0 ))s"
fi
# The package's postinstall (skipped by --ignore-scripts) downloads Chromium's HSTS preload
# list into conf/hsts-preload.json, which src/analyzer/hsts.js reads on every scan. Shape:
# { "<domain>": { "includeSubDomains": bool, "includeSubDomainsForPinning": bool,
#                 "mode": "force-https", "pinned": bool }, ... }; an empty map is valid.
# (conf/tld-list.json, the other download, is only used by the package's API server.)
if [[ ! -s $PKG/conf/hsts-preload.json ]]; then
  echo '{}' >"$PKG/conf/hsts-preload.json"
  echo "observatory_check: wrote stub $PKG/conf/hsts-preload.json ({})"
fi
flock -u 9

# ---- scan ---------------------------------------------------------------------------
# Hermetic: no proxy may carry the scan off this machine, no config file from outside.
t0=$(date +%s)
rc=0
env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
    -u CONFIG_FILE NO_PROXY='*' no_proxy='*' NODE_EXTRA_CA_CERTS="$CA_CERT" \
  timeout -k 5 "${KURA_OBSERVATORY_TIMEOUT:-90}" node "$HERE/observatory_scan.mjs" "$PKG" "$URL" "A+" \
  </dev/null || rc=$?
elapsed=$(( $(date +%s) - t0 ))
(( rc == 124 || rc == 137 )) && die "scan did not finish within ${KURA_OBSERVATORY_TIMEOUT:-90}s"
(( rc == 0 )) || die "observatory check failed for $URL (${elapsed}s)"
echo "observatory_check: PASS ($URL, ${elapsed}s)"
