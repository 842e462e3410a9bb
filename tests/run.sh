#!/usr/bin/env bash
# The test command (README, .ci/run): starts the services the tests need on
# 127.0.0.1, then runs every test: unit tests and the integration suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/services.sh
source tests/services.sh
ensure_postgres
ensure_alertmanager
ensure_docker
exec cargo test --locked --all-targets "$@"
