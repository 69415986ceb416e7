#!/bin/sh
echo "coverage is not available offline (netpoll replaces Bazel's remote_coverage_tools)" >&2
exit 1
