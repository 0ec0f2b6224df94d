#!/bin/sh
# Fails when a C file is not formatted by the project's .clang-format.
# Fix with `make format`.
cd "$(dirname "$0")/../.." || exit 2
command -v clang-format >/dev/null || { echo "clang-format missing" >&2; exit 1; }
if ! clang-format --dry-run -Werror src/*/*.c src/*/*.h tests/unit/*.c \
	tests/fuzz/*.c bench/*.c; then
  echo "format: run 'make format'" >&2
  exit 1
fi
echo "format: every C file matches .clang-format"
