#!/usr/bin/env bash
# Cross-compiles platform/windows_context_check.cc with MinGW-w64 and runs it under Wine, at -O0
# and at -O2 (see the top of that file for what it checks). Run from anywhere; needs
#   apt-get install -y g++-mingw-w64-x86-64-posix wine wine64
# (for this check only: ./bazelw does not install them). Exit status 0 when both builds pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
readonly CXX=x86_64-w64-mingw32-g++-posix
if ! command -v "$CXX" >/dev/null; then
  echo "needs $CXX (apt-get install g++-mingw-w64-x86-64-posix)" >&2
  exit 2
fi
command -v wine >/dev/null || { echo "needs wine (apt-get install wine wine64)" >&2; exit 2; }
out_dir=$(mktemp -d /tmp/windows_context_check.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
for opt in -O0 -O2; do
  exe="$out_dir/windows_context_check$opt.exe"
  echo "== $CXX -std=c++20 $opt: build"
  "$CXX" -std=c++20 "$opt" -g -Wall -Wextra -Werror -I. -static \
    platform/check.cc platform/context.cc platform/context_windows_x64.cc \
    platform/windows_context_check.cc -o "$exe"
  echo "== $opt: run under $(wine --version)"
  WINEDEBUG=-all wine "$exe"
done
