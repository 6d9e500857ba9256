#!/usr/bin/env bash
# npm_pinned_install.sh — installs the npm packages pinned by a test's package.json and
# package-lock.json into a cache directory under the build tree, once: later runs (and tests
# running at the same time, under a lock) reuse it while the two files are unchanged.
#
# usage: tests/npm_pinned_install.sh NAME PACKAGE_DIR CACHE_DIR MODULE...
#
#   NAME         the test, for messages
#   PACKAGE_DIR  where package.json and package-lock.json are
#   CACHE_DIR    where they are installed (npm ci --ignore-scripts)
#   MODULE       packages that must be present in CACHE_DIR/node_modules afterwards
#
# Environment (optional): KURA_ORACLE_INSTALL_TIMEOUT seconds for the npm install (default 300).
# Needs: npm (first run only, npm registry), flock, timeout, sha256sum.
set -euo pipefail

[[ $# -ge 4 ]] || { sed -n '2,16p' "$0" >&2; exit 2; }
NAME=$1
PACKAGE_DIR=$2
CACHE_DIR=$3
shift 3

die() { echo "$NAME: FAIL: $*" >&2; exit 1; }
for tool in npm flock timeout sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (npm: apt-get install nodejs npm)"
done

mkdir -p "$CACHE_DIR"
want_stamp=$(cat "$PACKAGE_DIR/package.json" "$PACKAGE_DIR/package-lock.json" | sha256sum |
             cut -d' ' -f1)

exec 9>"$CACHE_DIR/.install.lock"
flock -w 900 9 || die "could not lock $CACHE_DIR/.install.lock"
installed=true
for module in "$@"; do
  [[ -f $CACHE_DIR/node_modules/$module/package.json ]] || installed=false
done
if [[ $installed == true && "$(cat "$CACHE_DIR/.kura-stamp" 2>/dev/null)" == "$want_stamp" ]]
then
  echo "$NAME: packages already installed in $CACHE_DIR"
else
  echo "$NAME: installing $* into $CACHE_DIR (npm ci)"
  rm -f "$CACHE_DIR/.kura-stamp"
  cp "$PACKAGE_DIR/package.json" "$PACKAGE_DIR/package-lock.json" "$CACHE_DIR/"
  if ! (cd "$CACHE_DIR" && timeout "${KURA_ORACLE_INSTALL_TIMEOUT:-300}" \
          npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
          >"$CACHE_DIR/npm-install.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/npm-install.log" >&2
    die "npm ci failed (log: $CACHE_DIR/npm-install.log)"
  fi
  for module in "$@"; do
    [[ -f $CACHE_DIR/node_modules/$module/package.json ]] || die "npm ci did not install $module"
  done
  echo "$want_stamp" >"$CACHE_DIR/.kura-stamp"
fi
