#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every suite, the MongoDB store included
# (trait MongoDB: the build and the test run must name the same traits, or the test run rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
TRAITS=(--traits MongoDB)
swift build --build-tests "${TRAITS[@]}"
swift test --skip-build "${TRAITS[@]}" "$@"
