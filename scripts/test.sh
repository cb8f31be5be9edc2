#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
swift build --build-tests
swift test --skip-build "$@"
