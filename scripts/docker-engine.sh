#!/usr/bin/env bash
# A local Docker engine, a base image and a registry for stageflow's builds: up | down | status | env.
#
#   up      start what is missing: dockerd without a bridge (unix socket only), the base image
#           stageflow-base:bookworm (debootstrap minbase + python3, carrying this machine's CA bundle),
#           and a registry (distribution 2.8) on 127.0.0.1. Installs docker.io, docker-registry and
#           debootstrap with apt-get when root and they are missing. Prints the seconds it took.
#   down    stop only what `up` started, by recorded PID.
#   status  what runs, from the records.
#   env     print the shell exports (DOCKER_HOST, STAGEFLOW_REGISTRY, STAGEFLOW_BASE_IMAGE).
#
# Everything lives under $STAGEFLOW_DOCKER_DIR (default /var/lib/stageflow-docker): data root, exec
# root, socket, PID files, logs, registry config + storage, the cached rootfs tarball, and engine.json,
# the record stageflow reads (docs/docker.md). Exit codes: 0 ok, 3 no engine and no way to start one.
set -euo pipefail

DIR=${STAGEFLOW_DOCKER_DIR:-/var/lib/stageflow-docker}
SOCK="$DIR/docker.sock"
STATE="$DIR/engine.json"
BASE_IMAGE=${STAGEFLOW_BASE_IMAGE:-stageflow-base:bookworm}
SUITE=bookworm
ROOTFS_TAR="$DIR/cache/rootfs-$SUITE-python3.tar"
CA_BUNDLE=${STAGEFLOW_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
DOCKER=/usr/bin/docker # the engine's own client (a newer one elsewhere on PATH negotiates too)
HINT="run scripts/docker-engine.sh up as root on a Debian machine with apt, or set DOCKER_HOST to a running engine"

T0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - T0) / 100000000))" | sed -E 's/^([0-9]*)([0-9])$/\1.\2/; s/^\./0./'; }
log() { echo "docker-engine: [$(elapsed)s] $*" >&2; }
die3() {
  log "error: $1 ($HINT)"
  exit 3
}
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null || true; }
docker_cmd() {
  local bin=$DOCKER
  [ -x "$bin" ] || bin=$(command -v docker || true)
  [ -n "$bin" ] || return 127
  DOCKER_HOST="unix://$SOCK" "$bin" "$@"
}
engine_ok() { [ -S "$SOCK" ] && docker_cmd version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_port() { [ -f "$DIR/registry/port" ] && cat "$DIR/registry/port" || true; }
registry_ok() {
  local port
  port=$(registry_port)
  [ -n "$port" ] && python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2).read()
PY
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die3 "missing ${missing[*]} and not root"
  command -v apt-get >/dev/null || die3 "missing ${missing[*]} and no apt-get"
  log "installing ${missing[*]} with apt-get"
  # Keep the packages' init scripts from starting a bridged daemon or a registry on every interface.
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"; } >"$DIR/apt.log" 2>&1 || rc=$?
  [ "$added" -eq 1 ] && rm -f "$policy"
  [ "$rc" -eq 0 ] || {
    tail -5 "$DIR/apt.log" >&2
    die3 "apt-get install ${missing[*]} failed (log $DIR/apt.log)"
  }
}

start_engine() {
  if engine_ok; then return 0; fi
  local pid
  pid=$(pid_of "$DIR/dockerd.pid")
  if alive "$pid"; then
    log "dockerd (pid $pid) runs but does not answer on $SOCK"
    exit 3
  fi
  rm -f "$SOCK" "$DIR/dockerd.pid"
  mkdir -p "$DIR/data" "$DIR/exec"
  # No bridge, no iptables, no masquerading: containers get host or no networking, never a private-range
  # address. Only a unix socket, no TCP listener.
  setsid dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/dockerd.pid" \
    -H "unix://$SOCK" </dev/null >"$DIR/dockerd.log" 2>&1 9>&- &
  local started=$!
  echo "$started" >"$DIR/dockerd.started"
  for _ in $(seq 1 150); do
    engine_ok && {
      log "dockerd started (pid $started, socket $SOCK)"
      return 0
    }
    alive "$started" || break
    sleep 0.2
  done
  tail -5 "$DIR/dockerd.log" >&2 || true
  die3 "dockerd did not come up (log $DIR/dockerd.log)"
}

make_rootfs_tar() {
  [ -s "$ROOTFS_TAR" ] && return 0
  command -v debootstrap >/dev/null || die3 "debootstrap missing"
  local rootfs="$DIR/cache/rootfs.tmp"
  rm -rf "$rootfs" && mkdir -p "$DIR/cache"
  log "debootstrap --variant=minbase $SUITE with python3 (about 40 s; cached in $ROOTFS_TAR)"
  # python3 and python3-venv are installed here, once, rather than in every cold image build.
  debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$rootfs" \
    ${DEBOOTSTRAP_MIRROR:+"$DEBOOTSTRAP_MIRROR"} >"$DIR/debootstrap.log" 2>&1 || {
    tail -5 "$DIR/debootstrap.log" >&2
    rm -rf "$rootfs"
    die3 "debootstrap failed (log $DIR/debootstrap.log)"
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  tar -C "$rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$rootfs"
}

ca_sha() { sha256sum "$CA_BUNDLE" | cut -c1-16; }

ensure_base_image() {
  [ -f "$CA_BUNDLE" ] || die3 "no CA bundle at $CA_BUNDLE (set STAGEFLOW_CA_BUNDLE)"
  local want have
  want=$(ca_sha)
  have=$(docker_cmd image inspect --format '{{index .Config.Labels "org.stageflow.ca-bundle"}}' \
    "$BASE_IMAGE" 2>/dev/null || true)
  [ "$have" = "$want" ] && return 0
  if ! docker_cmd image inspect "stageflow-rootfs:$SUITE" >/dev/null 2>&1; then
    make_rootfs_tar
    log "importing $ROOTFS_TAR as stageflow-rootfs:$SUITE"
    docker_cmd import "$ROOTFS_TAR" "stageflow-rootfs:$SUITE" >/dev/null
  fi
  # The CA bundle goes to a path nothing regenerates (update-ca-certificates rewrites
  # /etc/ssl/certs/ca-certificates.crt when a later apt-get pulls in ca-certificates) and to the usual one.
  local ctx="$DIR/cache/base-context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$CA_BUNDLE" "$ctx/ca-bundle.crt"
  cat >"$ctx/Dockerfile" <<EOF
FROM stageflow-rootfs:$SUITE
COPY ca-bundle.crt /etc/ssl/stageflow/ca-bundle.crt
COPY ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\
    SSL_CERT_FILE=/etc/ssl/stageflow/ca-bundle.crt PIP_CERT=/etc/ssl/stageflow/ca-bundle.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/stageflow/ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1
LABEL org.stageflow.ca-bundle=$want org.opencontainers.image.title="stageflow base ($SUITE minbase + python3)"
CMD ["python3"]
EOF
  log "building $BASE_IMAGE (CA bundle $want)"
  docker_cmd build --network host -q -t "$BASE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_registry() {
  if registry_ok; then return 0; fi
  command -v docker-registry >/dev/null || die3 "docker-registry missing"
  local pid
  pid=$(pid_of "$DIR/registry/pid")
  if alive "$pid"; then kill "$pid" 2>/dev/null || true; fi
  mkdir -p "$DIR/registry/storage"
  local port=${STAGEFLOW_REGISTRY_PORT:-$(registry_port)}
  [ -n "$port" ] || port=$(free_port)
  cat >"$DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  echo "$port" >"$DIR/registry/port"
  setsid docker-registry serve "$DIR/registry/config.yml" </dev/null >"$DIR/registry/registry.log" 2>&1 9>&- &
  echo $! >"$DIR/registry/pid"
  for _ in $(seq 1 100); do
    registry_ok && {
      log "registry started on 127.0.0.1:$port (pid $(cat "$DIR/registry/pid"))"
      return 0
    }
    sleep 0.1
  done
  tail -5 "$DIR/registry/registry.log" >&2 || true
  die3 "registry did not come up on 127.0.0.1:$port (log $DIR/registry/registry.log)"
}

write_state() {
  local port dpid rpid
  port=$(registry_port)
  dpid=$(pid_of "$DIR/dockerd.pid")
  rpid=$(pid_of "$DIR/registry/pid")
  cat >"$STATE.tmp" <<EOF
{"docker_host": "unix://$SOCK", "registry": "127.0.0.1:$port", "base_image": "$BASE_IMAGE",
 "dockerd_pid": ${dpid:-null}, "registry_pid": ${rpid:-null}, "dir": "$DIR"}
EOF
  mv "$STATE.tmp" "$STATE"
  chmod 0755 "$DIR" && chmod 0644 "$STATE"
}

cmd_env() {
  [ -f "$STATE" ] || exit 3
  echo "export DOCKER_HOST=unix://$SOCK"
  echo "export STAGEFLOW_REGISTRY=127.0.0.1:$(registry_port)"
  echo "export STAGEFLOW_BASE_IMAGE=$BASE_IMAGE"
}

cmd_up() {
  if ! [ -d "$DIR" ]; then
    mkdir -p "$DIR" 2>/dev/null || die3 "cannot create $DIR"
  fi
  [ -w "$DIR" ] || die3 "cannot write $DIR"
  # One `up` at a time (several worktrees or test runs may share the engine). The daemons get the
  # descriptor closed (9>&-), or they would hold the lock for their whole life.
  exec 9>"$DIR/.lock"
  command -v flock >/dev/null && flock 9
  install_packages
  start_engine
  ensure_base_image
  start_registry
  write_state
  log "up in $(elapsed)s: DOCKER_HOST=unix://$SOCK registry 127.0.0.1:$(registry_port) base $BASE_IMAGE"
}

cmd_down() {
  local stopped=0 pid
  pid=$(pid_of "$DIR/registry/pid")
  if alive "$pid"; then
    kill "$pid" && stopped=1 && log "registry stopped (pid $pid)"
  fi
  rm -f "$DIR/registry/pid"
  pid=$(pid_of "$DIR/dockerd.started")
  if alive "$pid"; then
    kill "$pid"
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -9 "$pid"
    stopped=1 && log "dockerd stopped (pid $pid)"
  fi
  # dockerd leaves its network-namespace bind mount behind; release it so $DIR can be removed.
  if command -v mountpoint >/dev/null && mountpoint -q "$DIR/exec/netns/default" 2>/dev/null; then
    umount "$DIR/exec/netns/default" 2>/dev/null || true
  fi
  rm -f "$DIR/dockerd.started" "$DIR/dockerd.pid" "$STATE"
  [ "$stopped" -eq 1 ] || log "nothing of ours was running"
}

cmd_status() {
  local rc=0
  if engine_ok; then
    log "engine: up (pid $(pid_of "$DIR/dockerd.pid"), DOCKER_HOST=unix://$SOCK)"
  else
    log "engine: down"
    rc=3
  fi
  if registry_ok; then log "registry: up on 127.0.0.1:$(registry_port)"; else
    log "registry: down"
    rc=3
  fi
  if engine_ok && docker_cmd image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image: $BASE_IMAGE"
  else log "base image: missing"; fi
  return $rc
}

case "${1:-status}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 up|down|status|env" >&2
  exit 2
  ;;
esac
