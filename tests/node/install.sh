#!/bin/sh
# Installs the test-only npm tools (tests/node/package.json, exact versions
# pinned by package-lock.json) into DEST/node_modules with `npm ci`, once:
# a copy of the lock file beside them marks a finished install, so later
# runs cost nothing until the lock file changes. The CMake fixture
# node.setup runs it before every test that needs Node (tests/node/README.md).
# Usage: tests/node/install.sh DEST
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=$1
if [ -f "$dest/node_modules/.orderd-lock" ] &&
   cmp -s "$here/package-lock.json" "$dest/node_modules/.orderd-lock"; then
  exit 0
fi
command -v npm >/dev/null || { echo "node.setup: npm not found (scripts/deps.sh test installs it)" >&2; exit 1; }
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
cd "$dest"
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.orderd-lock
