"""Why this exists: the offline checks of the deployment files under deploy/, run by
scripts/check-deploy.sh inside the venv it installs (kubernetes-validate, cloudcoil-models-keda,
PyYAML, jsonschema). Each subcommand exits non-zero with one line per problem:

    deploy_checks.py manifests FILE...   every YAML document against its API schema, strictly
                                         (unknown fields are errors): Kubernetes kinds with
                                         kubernetes-validate's schemas for several versions,
                                         KEDA kinds with the schema of cloudcoil's models of
                                         KEDA's CRDs; KEDA trigger parameters against the names
                                         KEDA's redis and prometheus scalers read
    deploy_checks.py consistency DIR     the manifests agree with each other and with Easel:
                                         names, Secret keys, probes, grace periods, GPU, queue,
                                         [worker] keys, metric names
    deploy_checks.py dockerfile FILE...  image rules: non-root numeric USER, HEALTHCHECK on
                                         /livez, STOPSIGNAL SIGTERM, EASEL_BIND=0.0.0.0, CUDA 13.0
    deploy_checks.py runpod FILE         the RunPod template: known fields, port, env, volume
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Kubernetes versions the manifests must be valid for: an old one still in service and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
KEDA_KINDS = {"ScaledObject", "ScaledJob", "TriggerAuthentication", "ClusterTriggerAuthentication"}
WORKER_PORT = 7859
DOCKER_DIR = ROOT / "deploy/docker"
# What the worker needs after its shutdown grace to flush callbacks and exit.
FLUSH_MARGIN_SECS = 20
MIN_STARTUP_BUDGET_SECS = 600

# Trigger metadata KEDA's scalers read (the `keda:"name=..."` tags of redis_scaler.go and
# prometheus_scaler.go, KEDA 2.16+). A parameter read from the environment may also be given
# as <name>FromEnv. KEDA itself ignores unknown keys unless KEDA_CHECK_UNEXPECTED_SCALERS_PARAMS
# is set, so a misspelt key would silently fall back to a default: refuse it here.
REDIS_FROM_ENV = ["address", "addresses", "username", "password", "sentinelUsername",
                  "sentinelPassword", "sentinelMaster", "host", "hosts", "port", "ports"]
TRIGGER_PARAMS = {
    "redis": {
        "metadata": set(REDIS_FROM_ENV) | {p + "FromEnv" for p in REDIS_FROM_ENV}
        | {"listName", "listLength", "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"},
        "auth": set(REDIS_FROM_ENV) | {"tls", "cert", "Cert", "key", "keyPassword", "ca"},
        "required": {"listName"},
        "ints": {"listLength", "activationListLength", "databaseIndex"},
        "floats": set(),
        "bools": {"enableTLS", "unsafeSsl"},
    },
    "prometheus": {
        "metadata": {"serverAddress", "query", "queryParameters", "threshold", "activationThreshold",
                     "namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion",
                     "timeout", "identityOwner", "authModes", "authMode", "apiKey", "method",
                     "keyParamName"},
        "auth": {"username", "password", "cert", "key", "ca", "bearerToken", "token", "apiKey",
                 "customAuthHeader", "customAuthValue", "awsRegion"},
        "required": {"serverAddress", "query", "threshold"},
        "ints": set(),
        "floats": {"threshold", "activationThreshold"},
        "bools": {"ignoreNullValues", "unsafeSsl"},
    },
}


class Problems:
    """Collects problems; `done` prints them and gives the exit code."""

    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")

    def done(self, what):
        for p in self.items:
            print(f"  FAIL {p}", file=sys.stderr)
        if self.items:
            print(f"{what}: {len(self.items)} problem(s)", file=sys.stderr)
            return 1
        print(f"{what}: ok")
        return 0


def documents(path):
    """The YAML documents of a file, empty ones left out."""
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def name_of(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# ---- manifests ---------------------------------------------------------------------------

def forbid_unknown(node):
    """Makes a JSON schema strict the way kubernetes-validate's -strict schemas are: every
    object schema that lists its properties allows no others."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            forbid_unknown(v)
    elif isinstance(node, list):
        for v in node:
            forbid_unknown(v)


def keda_validator(kind, cache={}):
    """A strict validator for one KEDA kind, from cloudcoil's models of KEDA's CRDs."""
    if kind not in cache:
        import jsonschema
        from cloudcoil.models.keda import v1alpha1

        schema = getattr(v1alpha1, kind).model_json_schema(by_alias=True)
        forbid_unknown(schema)
        cache[kind] = jsonschema.Draft202012Validator(schema)
    return cache[kind]


def check_k8s(doc, where, problems):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            problems.add(where, f"no Kubernetes {version} schema for {doc.get('apiVersion')} {doc.get('kind')}")
            return
        except ValidationError as e:
            path = "/".join(str(p) for p in e.path) or "(top)"
            problems.add(where, f"Kubernetes {version}: at {path}: {e.message}")
            return


def check_keda(doc, where, problems):
    kind = doc.get("kind")
    if doc.get("apiVersion") != "keda.sh/v1alpha1" or kind not in KEDA_KINDS:
        problems.add(where, f"unknown KEDA apiVersion/kind {doc.get('apiVersion')} {kind}")
        return
    for e in sorted(keda_validator(kind).iter_errors(doc), key=lambda e: list(e.path)):
        path = "/".join(str(p) for p in e.path) or "(top)"
        problems.add(where, f"KEDA {kind} schema: at {path}: {e.message}")
    for i, trigger in enumerate(((doc.get("spec") or {}).get("triggers")) or []):
        check_trigger(trigger, f"{where} trigger {i}", problems)


def check_trigger(trigger, where, problems):
    kind = trigger.get("type")
    rules = TRIGGER_PARAMS.get(kind)
    if rules is None:
        problems.add(where, f"trigger type {kind!r} is not one these checks know (redis, prometheus)")
        return
    meta = trigger.get("metadata") or {}
    for key in sorted(set(meta) - rules["metadata"]):
        problems.add(where, f"{kind} trigger has no parameter {key!r}")
    for key in sorted(rules["required"] - set(meta)):
        problems.add(where, f"{kind} trigger needs {key!r}")
    for key, value in meta.items():
        if not isinstance(value, str):
            continue  # the schema has said so already
        if key in rules["ints"] and not re.fullmatch(r"-?\d+", value):
            problems.add(where, f"{key} must be an integer, not {value!r}")
        if key in rules["floats"] and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            problems.add(where, f"{key} must be a number, not {value!r}")
        if key in rules["bools"] and value.lower() not in ("true", "false"):
            problems.add(where, f"{key} must be \"true\" or \"false\", not {value!r}")


def cmd_manifests(files):
    problems = Problems()
    count = 0
    for path in files:
        for doc in documents(path):
            count += 1
            where = f"{path} {name_of(doc)}"
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                problems.add(path, "a document without apiVersion and kind")
            elif str(doc["apiVersion"]).startswith("keda.sh/"):
                check_keda(doc, where, problems)
            else:
                check_k8s(doc, where, problems)
    if count == 0:
        problems.add(" ".join(files) or "(no files)", "no manifests to check")
    return problems.done(f"schemas ({count} documents; Kubernetes {', '.join(K8S_VERSIONS)}; KEDA)")


# ---- consistency -------------------------------------------------------------------------

def worker_keys():
    """The [worker] keys Easel knows (new and deprecated spellings), from settings.rs."""
    src = (ROOT / "crates/easel-config/src/settings.rs").read_text(encoding="utf-8")
    keys = set(re.findall(r'\b(?:s|dur)\(\s*"([a-z0-9_]+)"', src))
    keys |= set(re.findall(r'\bold\(\s*"([a-z0-9_]+)"', src))
    if len(keys) < 20:
        raise SystemExit(f"could not read the settings from settings.rs (found {sorted(keys)})")
    return keys


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def by_kind(directory):
    """Every document under directory, by kind, plus the Secret example's keys."""
    found = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for doc in documents(path):
            found.setdefault(doc["kind"], []).append(doc)
    return found


def one(found, kind, problems):
    docs = found.get(kind, [])
    if len(docs) != 1:
        problems.add(kind, f"expected exactly one {kind}, found {len(docs)}")
        return {}
    return docs[0]


def check_worker_toml(config_map, problems):
    text = (config_map.get("data") or {}).get("easel.toml")
    if text is None:
        problems.add("ConfigMap", "has no easel.toml key")
        return {}
    try:
        toml = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.add("ConfigMap easel.toml", f"is not TOML: {e}")
        return {}
    known = worker_keys()
    worker = toml.get("worker", {})
    for key in sorted(set(worker) - known):
        problems.add("ConfigMap easel.toml", f"[worker] has no setting {key!r} (see crates/easel-config/src/settings.rs)")
    for key in ("bind", "port", "data_dir", "device"):
        if key in worker or key in toml:
            problems.add("ConfigMap easel.toml", f"{key} is set by an environment variable in the Deployment; leave it out of the file")
    return worker


def check_deployment(dep, worker, secret_keys, problems):
    where = f"Deployment/{dep['metadata']['name']}"
    pod = dep["spec"]["template"]["spec"]
    containers = pod.get("containers", [])
    if len(containers) != 1:
        problems.add(where, "expected one container")
        return
    c = containers[0]
    res = c.get("resources", {})
    if str((res.get("limits") or {}).get("nvidia.com/gpu")) != "1":
        problems.add(where, "limits must ask for exactly one GPU (nvidia.com/gpu: 1)")
    env = {e["name"]: e for e in c.get("env", [])}
    if (env.get("EASEL_BIND") or {}).get("value") != "0.0.0.0":
        problems.add(where, "EASEL_BIND must be 0.0.0.0 (the default, loopback, is unreachable for probes)")
    if str((env.get("WORKER_PORT") or {}).get("value")) != str(WORKER_PORT):
        problems.add(where, f"WORKER_PORT must be {WORKER_PORT}")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("http") != WORKER_PORT:
        problems.add(where, f"the container port named http must be {WORKER_PORT}")
    for e in env.values():
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref and (ref.get("name") != "easel-secrets" or ref.get("key") not in secret_keys):
            problems.add(where, f"env {e['name']} reads {ref.get('name')}/{ref.get('key')}, which secret.example.yaml lacks")
    check_probes(where, c, problems)
    grace = seconds(worker.get("shutdown_grace", "60s"))
    termination = pod.get("terminationGracePeriodSeconds", 30)
    if termination < grace + FLUSH_MARGIN_SECS:
        problems.add(where, f"terminationGracePeriodSeconds {termination} must be at least shutdown_grace ({grace:g}s) + {FLUSH_MARGIN_SECS}s")
    args = c.get("args", [])
    if "--config" not in args:
        problems.add(where, "args must pass --config with the mounted easel.toml")
    else:
        path = args[args.index("--config") + 1]
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        config_vol = next((n for n, v in volumes.items() if (v.get("configMap") or {}).get("name") == "easel-config"), None)
        if config_vol is None or f"{mounts.get(config_vol)}/easel.toml" != path:
            problems.add(where, f"--config {path} is not easel.toml of the mounted ConfigMap easel-config")
        models = next((n for n, v in volumes.items() if v.get("persistentVolumeClaim")), None)
        if models is None or mounts.get(models) != "/models":
            problems.add(where, "the models PersistentVolumeClaim must be mounted at /models")
    sc = pod.get("securityContext", {})
    if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
        problems.add(where, "the pod must run as a non-root user (runAsNonRoot, runAsUser)")
    for dockerfile in sorted(DOCKER_DIR.glob("Dockerfile*")):
        users = [rest for k, rest in instructions(dockerfile) if k == "USER"]
        uid = users[-1].split(":")[0] if users else None
        if uid != str(sc.get("runAsUser")) or uid != str(sc.get("fsGroup")):
            problems.add(where, f"runAsUser and fsGroup must be the uid {uid} of {dockerfile.name}'s USER, so the data volume is writable")


def check_probes(where, c, problems):
    want = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    for probe, path in want.items():
        p = c.get(probe)
        if not p:
            problems.add(where, f"has no {probe}")
            continue
        got = (p.get("httpGet") or {}).get("path")
        allowed = {path, "/livez"} if probe == "startupProbe" else {path}
        if got not in allowed:
            problems.add(where, f"{probe} must GET {path}, not {got}")
    s = c.get("startupProbe") or {}
    budget = s.get("periodSeconds", 10) * s.get("failureThreshold", 3)
    if budget < MIN_STARTUP_BUDGET_SECS:
        problems.add(where, f"startupProbe allows {budget}s for the model to load; at least {MIN_STARTUP_BUDGET_SECS}s")


def check_scaling(found, dep, worker, secret_keys, problems):
    dep_name = dep["metadata"]["name"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    auths = {a["metadata"]["name"]: a for a in found.get("TriggerAuthentication", [])}
    for a in auths.values():
        for ref in a["spec"].get("secretTargetRef", []):
            if ref.get("name") != "easel-secrets" or ref.get("key") not in secret_keys:
                problems.add(f"TriggerAuthentication/{a['metadata']['name']}", f"reads {ref.get('name')}/{ref.get('key')}, which secret.example.yaml lacks")
    queue = worker.get("queue_name", "sdxl_queue")
    metrics_src = (ROOT / "crates/easel-jobs/src/metrics.rs").read_text(encoding="utf-8")
    for so in found.get("ScaledObject", []):
        where = f"ScaledObject/{so['metadata']['name']}"
        if so["spec"]["scaleTargetRef"].get("name") != dep_name:
            problems.add(where, f"scales {so['spec']['scaleTargetRef'].get('name')}, not the Deployment {dep_name}")
        for t in so["spec"].get("triggers", []):
            ref = (t.get("authenticationRef") or {}).get("name")
            if ref is not None and ref not in auths:
                problems.add(where, f"authenticationRef {ref} names no TriggerAuthentication")
            auth_params = {r["parameter"] for r in (auths.get(ref) or {}).get("spec", {}).get("secretTargetRef", [])}
            for p in sorted(auth_params - TRIGGER_PARAMS.get(t["type"], {}).get("auth", set())):
                problems.add(where, f"TriggerAuthentication {ref} gives {p!r}, which a {t['type']} trigger does not read")
            meta = t.get("metadata", {})
            if t["type"] == "redis" and meta.get("listName") != queue:
                problems.add(where, f"redis listName {meta.get('listName')!r} is not the worker's queue {queue!r}")
            if t["type"] == "prometheus":
                check_query(where, meta.get("query", ""), metrics_src, problems)
    for pdb in found.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            problems.add(f"PodDisruptionBudget/{pdb['metadata']['name']}", "selector does not match the worker pods")


def check_query(where, query, metrics_src, problems):
    """The metric names and state labels a PromQL query uses must be ones Easel exports."""
    names = set(re.findall(r"\beasel_[a-z_]+", query))
    if not names:
        problems.add(where, "the prometheus query reads no easel_ metric")
    for n in sorted(names):
        if f'"{n}' not in metrics_src and f"{n}{{" not in metrics_src:
            problems.add(where, f"the query reads {n}, which crates/easel-jobs/src/metrics.rs does not export")
    for state in re.findall(r'state="([a-z_]+)"', query):
        if f'state=\\"{state}\\"' not in metrics_src:
            problems.add(where, f'the query reads state="{state}", which easel_queue_depth does not have')


def cmd_consistency(directory):
    problems = Problems()
    found = by_kind(directory)
    secret = one(found, "Secret", problems)
    secret_keys = set((secret.get("stringData") or {}) | (secret.get("data") or {}))
    config_map = one(found, "ConfigMap", problems)
    worker = check_worker_toml(config_map, problems) if config_map else {}
    dep = one(found, "Deployment", problems)
    if dep:
        check_deployment(dep, worker, secret_keys, problems)
        check_scaling(found, dep, worker, secret_keys, problems)
        claims = {p["metadata"]["name"] for p in found.get("PersistentVolumeClaim", [])}
        for v in dep["spec"]["template"]["spec"].get("volumes", []):
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in claims:
                problems.add("Deployment", f"volume {v['name']} claims {claim}, which no manifest defines")
    for kind in ("PodDisruptionBudget", "TriggerAuthentication", "ScaledObject"):
        if kind not in found:
            problems.add(directory, f"has no {kind}")
    return problems.done(f"consistency of {directory}")


# ---- Dockerfiles -------------------------------------------------------------------------

def instructions(path):
    """(keyword, arguments) of each instruction, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def check_dockerfile(path, problems):
    ins = instructions(path)
    args = {}
    for k, rest in ins:
        if k == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args.setdefault(name, value)
    stages = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    if len(stages) < 2:
        problems.add(path, "must be multi-stage (a builder stage and a runtime stage)")
        return
    final = ins[stages[-1]:]
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), final[0][1].split()[0])
    users = [rest for k, rest in final if k == "USER"]
    if not users:
        problems.add(path, "the runtime stage has no USER: it would run as root")
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0") or not user.isdigit():
            problems.add(path, f"USER {users[-1]} must be a numeric non-root uid (Kubernetes runAsNonRoot checks the number)")
    health = [rest for k, rest in final if k == "HEALTHCHECK"]
    if not health or "/livez" not in health[-1]:
        problems.add(path, "the runtime stage needs a HEALTHCHECK on /livez")
    if ("STOPSIGNAL", "SIGTERM") not in final:
        problems.add(path, "the runtime stage needs STOPSIGNAL SIGTERM")
    env = " ".join(rest for k, rest in final if k == "ENV")
    if not re.search(r"(^|\s)EASEL_BIND=0\.0\.0\.0(\s|$)", env):
        problems.add(path, "the runtime stage must set EASEL_BIND=0.0.0.0 (loopback is unreachable from outside)")
    if not any(k == "EXPOSE" and str(WORKER_PORT) in rest for k, rest in final):
        problems.add(path, f"the runtime stage must EXPOSE {WORKER_PORT}")
    if not any(k == "ENTRYPOINT" and "entrypoint.sh" in rest for k, rest in final):
        problems.add(path, "the runtime stage must run deploy/docker/entrypoint.sh")
    if path.endswith(".cuda"):
        check_cuda_base(path, base, ins, problems)


def check_cuda_base(path, base, ins, problems):
    """The CUDA runtime base must be the release build-cuda.sh links against."""
    script = (ROOT / "scripts/build-cuda.sh").read_text(encoding="utf-8")
    pinned = re.search(r"nvidia-cuda-runtime==(\d+\.\d+)\.", script)
    m = re.fullmatch(r"nvidia/cuda:(\d+\.\d+)\.\d+-runtime-ubuntu\d+\.\d+", base)
    if not pinned or not m or m[1] != pinned[1]:
        problems.add(path, f"the runtime base {base} must be nvidia/cuda:<{pinned[1] if pinned else '?'}.x>-runtime-ubuntu..., the CUDA release build-cuda.sh links")
    if not any(k == "RUN" and "scripts/build-cuda.sh" in rest for k, rest in ins):
        problems.add(path, "the builder stage must run scripts/build-cuda.sh")


def cmd_dockerfile(files):
    problems = Problems()
    for path in files:
        check_dockerfile(path, problems)
    return problems.done(f"image rules ({len(files)} Dockerfiles)")


# ---- RunPod ------------------------------------------------------------------------------

# Fields of a template in RunPod's REST API (POST /v1/templates).
RUNPOD_FIELDS = {"name", "imageName", "category", "containerDiskInGb", "containerRegistryAuthId",
                 "dockerEntrypoint", "dockerStartCmd", "env", "isPublic", "isServerless", "ports",
                 "readme", "volumeInGb", "volumeMountPath"}


def cmd_runpod(path):
    problems = Problems()
    try:
        t = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.add(path, f"is not JSON: {e}")
        return problems.done("RunPod template")
    for key in sorted(set(t) - RUNPOD_FIELDS):
        problems.add(path, f"RunPod templates have no field {key!r}")
    for key in ("name", "imageName", "containerDiskInGb", "volumeInGb", "volumeMountPath", "ports", "env"):
        if key not in t:
            problems.add(path, f"needs {key!r}")
    for key in ("containerDiskInGb", "volumeInGb"):
        if key in t and (not isinstance(t[key], int) or t[key] <= 0):
            problems.add(path, f"{key} must be a positive integer")
    if t.get("isServerless") is not False:
        problems.add(path, "isServerless must be false: the serverless handler protocol is not implemented")
    if f"{WORKER_PORT}/http" not in (t.get("ports") or []):
        problems.add(path, f"ports must expose {WORKER_PORT}/http")
    env = t.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        problems.add(path, "env must map names to strings")
        env = {}
    if env.get("EASEL_BIND") != "0.0.0.0":
        problems.add(path, "env EASEL_BIND must be 0.0.0.0")
    if env.get("WORKER_PORT") != str(WORKER_PORT):
        problems.add(path, f"env WORKER_PORT must be \"{WORKER_PORT}\"")
    mount = t.get("volumeMountPath", "")
    if not env.get("EASEL_MODEL", "").startswith(mount.rstrip("/") + "/"):
        problems.add(path, f"env EASEL_MODEL must lie on the volume ({mount})")
    # RunPod mounts the volume with ownership of its own, which the image's user (10001) may
    # not be allowed to write; the data home stays on the container disk, in its home.
    if not env.get("EASEL_DATA_DIR", "").startswith("/home/easel/"):
        problems.add(path, "env EASEL_DATA_DIR must be under /home/easel, which the image's user owns")
    return problems.done("RunPod template")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, rest = argv[1], argv[2:]
    if cmd == "manifests":
        return cmd_manifests(rest)
    if cmd == "consistency" and len(rest) == 1:
        return cmd_consistency(rest[0])
    if cmd == "dockerfile":
        return cmd_dockerfile(rest)
    if cmd == "runpod" and len(rest) == 1:
        return cmd_runpod(rest[0])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
