#!/usr/bin/env bash
# Installs the system packages the build, the tests and the benchmarks use (Debian): SQLite headers for the
# embedded engine; redis-server (the tests start their own on free loopback ports), redis-tools
# (redis-cli, redis-benchmark) and openssl (TLS test certificates) for the Redis adapter.
# Idempotent; quiet when all is there.
set -euo pipefail
need=()
for pkg in libsqlite3-dev redis-server redis-tools openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package starts a system redis on port 6379; the tests do not use it.
fi
