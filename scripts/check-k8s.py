#!/usr/bin/env python3
"""Checks k8s/: every object against the Kubernetes API schema (strict:
unknown fields are errors), then what a schema cannot see: every role of the
binary has a workload whose port, probes and Service agree, a
PodDisruptionBudget, resources and the pod name as its instance; every
Service, PDB and HPA selects or targets something that exists; every
secret key the manifests read is one k8s/deploy.sh creates.

    python3 scripts/check-k8s.py [k8s-dir]      (exit 1 on any problem)
    python3 scripts/check-k8s.py --self-test    (the checks catch breakage)
"""
import copy
import pathlib
import re
import sys

import kubernetes_validate
import yaml

VERSION = "1.31.0"
# Each role and the port it listens on by default (boxoffice <role> --help).
ROLES = {"api": 8080, "reservation-processor": 8180, "seat-processor": 8280, "dashboard": 8380}
WORKLOADS = ("Deployment", "StatefulSet")


def load(directory):
    docs = []
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def secret_keys(directory):
    script = (pathlib.Path(directory) / "deploy.sh").read_text()
    return set(re.findall(r"--from-literal=([A-Z_]+)=", script))


def problems(docs, created_keys):
    found = []
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            found.append(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {e.message}")
        except Exception as e:  # an unknown kind or version
            found.append(f"{name}: {doc.get('kind')}: {e}")
    by_kind = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    workloads = {n: d for k in WORKLOADS for n, d in by_kind.get(k, {}).items()}
    for role, port in ROLES.items():
        w = workloads.get(role)
        if not w:
            found.append(f"role {role} has no Deployment or StatefulSet")
            continue
        pod = w["spec"]["template"]["spec"]
        c = pod["containers"][0]
        if c.get("args") != [role]:
            found.append(f"{role}: runs {c.get('args')}, not [{role!r}]")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        env = {e["name"]: e for e in c.get("env", [])}
        if ports.get("http") != port or env.get("BOXOFFICE_PORT", {}).get("value") != str(port):
            found.append(f"{role}: listens on {port}, the manifest says {ports} / {env.get('BOXOFFICE_PORT')}")
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                found.append(f"{role}: {probe} must GET {path}")
        if not c.get("resources", {}).get("requests"):
            found.append(f"{role}: no resource requests")
        field = env.get("BOXOFFICE_INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field != "metadata.name":
            found.append(f"{role}: BOXOFFICE_INSTANCE must be the pod name")
        if role not in by_kind.get("Service", {}):
            found.append(f"{role}: no Service")
        if role not in by_kind.get("PodDisruptionBudget", {}):
            found.append(f"{role}: no PodDisruptionBudget")
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in workloads.values()]
    for kind in ("Service", "PodDisruptionBudget"):
        for name, d in by_kind.get(kind, {}).items():
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(all(l.get(k) == v for k, v in sel.items()) for l in labels):
                found.append(f"{kind}/{name} selects no pods")
    for name, d in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = d["spec"]["scaleTargetRef"]
        if by_kind.get(ref["kind"], {}).get(ref["name"]) is None:
            found.append(f"HorizontalPodAutoscaler/{name} targets missing {ref['kind']}/{ref['name']}")
    used = set()
    for _, doc in docs:
        text = yaml.safe_dump(doc)
        used |= set(re.findall(r"secretKeyRef:\n\s+key: ([A-Z_]+)", text))
    for key in sorted(used - created_keys):
        found.append(f"secret key {key} is read but deploy.sh does not create it")
    return found


def self_test(directory):
    docs = load(directory)
    keys = secret_keys(directory)
    assert problems(docs, keys) == [], problems(docs, keys)

    def broken(change):
        spoiled = copy.deepcopy(docs)
        change({d["metadata"]["name"] + "/" + d["kind"]: d for _, d in spoiled})
        return problems(spoiled, keys)

    def typo(d):
        d["api/Deployment"]["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    def port(d):
        d["dashboard/Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 8000

    def selector(d):
        d["seat-processor/Service"]["spec"]["selector"] = {"app.kubernetes.io/name": "seat-processr"}

    for change in (typo, port, selector):
        assert broken(change), f"{change.__name__} went unnoticed"
    assert problems(docs, keys - {"POSTGRES_PASSWORD"}), "a missing secret key went unnoticed"
    print("check-k8s self-test: every kind of breakage is caught")


if __name__ == "__main__":
    args = sys.argv[1:]
    directory = next((a for a in args if not a.startswith("--")), "k8s")
    if "--self-test" in args:
        self_test(directory)
        sys.exit(0)
    docs = load(directory)
    found = problems(docs, secret_keys(directory))
    for p in found:
        print(f"k8s: {p}")
    if found:
        sys.exit(1)
    print(f"k8s: {len(docs)} objects valid against Kubernetes {VERSION}, roles and references consistent")
