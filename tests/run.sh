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
ensure_checkers
ensure_browser
cargo test --locked --all-targets "$@"
# With no test filter given: the image, built by Docker from deploy/Dockerfile,
# where its base images can be pulled (no registry answers on some machines:
# then this one step is skipped, and says so).
if [ "$#" = 0 ]; then
  build_image
fi
