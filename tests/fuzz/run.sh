#!/bin/sh
# Builds the request fuzzer with libFuzzer, ASan and UBSan and runs it for
# ${FUZZ_SECONDS:-30} seconds on a copy of the seed corpus. Run from anywhere;
# findings (crash-*, leak-*) land in ${FUZZ_OUT:-build-fuzz}.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
mkdir -p "$out/corpus"
cp -n "$here"/corpus/* "$out/corpus/" 2>/dev/null || true

cd "$root"
# shellcheck disable=SC2046 # pkg-config output is meant to split
clang -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 -Isrc \
	tests/fuzz/fuzz_request.c src/core/order.c src/util/jsonx.c \
	src/util/timefmt.c src/util/err.c \
	$(pkg-config --cflags --libs jansson) -o "$out/fuzz_request"

cd "$out"
./fuzz_request -max_total_time="${FUZZ_SECONDS:-30}" -max_len=70000 \
	-timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
	-dict="$here/request.dict" corpus
