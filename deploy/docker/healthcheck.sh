#!/usr/bin/env bash
# Why this exists: the images' HEALTHCHECK without curl or wget in the image: one HTTP/1.0
# GET over bash's /dev/tcp. Exit 0 when the answer is 200, 1 otherwise (Docker reads only
# 0 and 1). Checks /livez on WORKER_PORT by default; `healthcheck.sh /readyz` checks
# readiness, EASEL_HEALTH_PORT another port (the orchestrator's 7870 under `easel up`).
set -euo pipefail

host=${EASEL_HEALTH_HOST:-127.0.0.1}
port=${EASEL_HEALTH_PORT:-${WORKER_PORT:-7859}}
path=${1:-/livez}

unhealthy() {
  echo "unhealthy: $*" >&2
  exit 1
}

{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || unhealthy "nothing listens on $host:$port"
printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
status=
IFS= read -r -t 5 status <&3 || true
exec 3<&-
status=${status%$'\r'}
case $status in
  "HTTP/1."?" 200 "*) exit 0 ;;
  "") unhealthy "$host:$port$path gave no answer within 5 s" ;;
  *) unhealthy "$host:$port$path answered '$status'" ;;
esac
