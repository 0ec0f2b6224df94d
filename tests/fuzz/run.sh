#!/bin/sh
# Usage: run.sh TARGET
# Builds tests/fuzz/fuzz_TARGET.c with libFuzzer, ASan and UBSan and runs it
# for ${FUZZ_SECONDS:-${FUZZ_DEFAULT_SECONDS:-30}} seconds on a copy of corpus/TARGET/ (with
# TARGET.dict when there is one). The target's sources and pkg-config
# libraries are named in its "fuzz-sources:" and "fuzz-libs:" header lines
# (and an input size cap in "fuzz-max-len:"), so one runner serves every
# target. ctest sets FUZZ_DEFAULT_SECONDS; FUZZ_SECONDS overrides both. Findings (crash-*, leak-*, timeout-*,
# oom-*) land in ${FUZZ_OUT:-build-fuzz}/TARGET/; the exit status is
# libFuzzer's (non-zero on a finding). See README.md.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 TARGET" >&2; exit 2; }
target=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src=$here/fuzz_$target.c
[ -f "$src" ] || { echo "run.sh: no target \"$target\" ($src)" >&2; exit 2; }
out=${FUZZ_OUT:-$root/build-fuzz}/$target
mkdir -p "$out/corpus"
# The seeds, refreshed each run; what the fuzzer adds stays beside them.
cp "$here/corpus/$target"/* "$out/corpus/"

sources=$(sed -n 's/^ \* fuzz-sources://p' "$src")
libs=$(sed -n 's/^ \* fuzz-libs://p' "$src")
max_len=$(sed -n 's/^ \* fuzz-max-len: *//p' "$src")
cd "$root"
# shellcheck disable=SC2046,SC2086 # the lists are meant to split
clang -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	-D_GNU_SOURCE -DORDERD_VERSION='"fuzz"' -std=gnu11 -Isrc \
	"$src" $sources $( [ -z "$libs" ] || pkg-config --cflags --libs $libs ) \
	-o "$out/fuzz_$target"

dict=
[ ! -f "$here/$target.dict" ] || dict=-dict=$here/$target.dict
cd "$out"
# shellcheck disable=SC2086
exec ./fuzz_"$target" \
	-max_total_time="${FUZZ_SECONDS:-${FUZZ_DEFAULT_SECONDS:-30}}" \
	-max_len="${max_len:-70000}" -timeout=10 -rss_limit_mb=1024 \
	-print_final_stats=1 -artifact_prefix="$out/" $dict corpus
