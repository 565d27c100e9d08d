#!/usr/bin/env bash
# Why this exists: the images' entry point. It turns `docker run IMAGE [flags]` into
# `easel worker sdxl run [flags]` (any other first word runs that easel command instead,
# e.g. `up --config ...` or `config show`), and refuses to start, with exit code 78 and a
# message that says what to mount, when the data home cannot be written or EASEL_MODEL
# names nothing. Then it execs easel, so SIGTERM reaches the worker itself.
set -euo pipefail

EASEL_BIN=${EASEL_BIN:-/usr/local/bin/easel}
EXIT_CONFIG=78 # the worker's own code for "configuration error": restarting will not help

die() {
  echo "easel entrypoint: $*" >&2
  exit "$EXIT_CONFIG"
}

# The value of flag $1 among the remaining arguments (--flag VALUE or --flag=VALUE), if any.
flag_value() {
  local name=$1
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      "$name")
        if [ $# -ge 2 ]; then printf '%s' "$2"; fi
        return 0
        ;;
      "$name"=*) printf '%s' "${1#*=}"; return 0 ;;
    esac
    shift
  done
}

# Creates the data home if needed and proves a file can be made in it.
check_writable() {
  local dir=$1 probe
  if ! mkdir -p -- "$dir" 2>/dev/null || ! probe=$(mktemp -- "$dir/.entrypoint-write-check.XXXXXX" 2>/dev/null); then
    die "the data home $dir is not writable by uid $(id -u) (the embedded queue, job table and local storage live there).
Mount a volume there that this user can write (Kubernetes: securityContext.fsGroup: $(id -g);
docker: -v easel-data:$dir, or chown $(id -u) the host folder), or set EASEL_DATA_DIR to a writable path."
  fi
  rm -f -- "$probe"
}

# No arguments, or flags only: the SDXL worker.
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- worker sdxl run "$@"
fi

data_dir=$(flag_value --data-dir "$@")
data_dir=${data_dir:-${EASEL_DATA_DIR:-}}
if [ -n "$data_dir" ]; then
  check_writable "$data_dir"
fi

model=$(flag_value --model "$@")
model=${model:-${EASEL_MODEL:-}}
if [ -n "$model" ] && [ ! -e "$model" ]; then
  die "the model $model does not exist. Mount the models volume (at /models in these images)
and point EASEL_MODEL at a .safetensors checkpoint or a diffusers folder in it, or unset
EASEL_MODEL to run the bundled tiny model."
fi

if [ ! -x "$EASEL_BIN" ]; then
  die "$EASEL_BIN is not an executable; set EASEL_BIN to the easel binary"
fi
exec "$EASEL_BIN" "$@"
