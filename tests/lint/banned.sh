#!/bin/sh
# Fails when a banned function (STYLE.md: sprintf, strcpy, strtok, gets,
# atoi and their unbounded cousins) appears in the sources.
cd "$(dirname "$0")/../.." || exit 2
pattern='\b(sprintf|vsprintf|strcpy|strcat|strtok|gets|atoi|atol|atoll)[[:space:]]*\('
if grep -nE "$pattern" src/*/*.c src/*/*.h bench/*.c tests/unit/*.c 2>/dev/null; then
  echo "banned functions found (use snprintf, memcpy, strtok_r, strtoll)" >&2
  exit 1
fi
echo "lint: no banned functions"
