#!/usr/bin/env python3
"""The API server's CPU per status write of a Release, by kind of write.

usage: e2e/bench/status-write.py [N [ROUNDS [MODE ...]]]

On a running local cluster ($SERIN_CLUSTER_DIR, serin's CRDs applied, no
serin running), it creates N Releases from examples/release.yaml in namespace
status-write, then writes each one's status ROUNDS times per MODE, each write
a real change, and prints the kube-apiserver's CPU (utime + stime of /proc)
per write. MODE is one of:
  apply       server-side apply of the whole status, forced (what serin sends)
  merge       JSON merge patch of the whole status
  merge-diff  JSON merge patch of only the fields that changed (as Argo Rollouts sends)
  event       an Event about the Release (for scale: what one Event costs)
  deployment  a merge patch of a Deployment's status (the built-in type's cost)
One process sends every request on one connection, so the figure is the API
server's work per request; run it on an idle machine and compare modes within
one run (docs/benchmarks.md).
"""
import copy
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.environ.get("SERIN_CLUSTER_DIR", os.path.expanduser("~/.cache/serin/cluster"))
NS = "status-write"
RELEASES = f"/apis/serin.dev/v1alpha1/namespaces/{NS}/releases"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
T0 = "2026-12-02T16:00:00Z"


def connect():
    server = yaml.safe_load(open(f"{CLUSTER}/kubeconfig"))["clusters"][0]["cluster"]["server"]
    url = urllib.parse.urlparse(server)
    ctx = ssl.create_default_context(cafile=f"{CLUSTER}/pki/ca.crt")
    ctx.load_cert_chain(f"{CLUSTER}/pki/admin.crt", f"{CLUSTER}/pki/admin.key")
    return http.client.HTTPSConnection(url.hostname, url.port, context=ctx)


CONN = connect()
APISERVER = int(open(f"{CLUSTER}/pids/kube-apiserver.pid").read())
TICK = os.sysconf("SC_CLK_TCK")


def apiserver_cpu():
    fields = open(f"/proc/{APISERVER}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def request(method, path, body=None, content_type="application/json", exists_ok=False):
    CONN.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": content_type, "Accept": "application/json"})
    response = CONN.getresponse()
    data = response.read()
    if response.status == 409 and exists_ok:
        return None
    if response.status >= 300:
        sys.exit(f"{method} {path}: {response.status} {data[:400]!r}")
    return json.loads(data)


def status(i, name):
    """A Release status as serin writes it mid-rollout; i varies the counts and messages."""
    conditions = [{"type": kind, "status": "True" if (i + k) % 2 else "False",
                   "reason": "Progressing" if i % 2 else "RolloutComplete",
                   "message": f"revision {name}-abc123 has {i % 3} of 2 pods ready",
                   "observedGeneration": 1, "lastTransitionTime": T0}
                  for k, kind in enumerate(["Ready", "Progressing", "Degraded", "Reconciling", "Stalled"])]
    return {"observedGeneration": 1, "phase": "Progressing" if i % 2 else "Healthy", "strategy": "rolling",
            "conditions": conditions, "currentRevision": "abc123", "stableRevision": "def456",
            "rolloutStartTime": T0, "replicas": 2 + i % 2, "updatedReplicas": i % 3, "readyReplicas": 2,
            "availableReplicas": 2, "selector": "app=web", "message": f"{i % 3} of 2 updated"}


def write(mode, i, name):
    s = status(i, name)
    if mode == "apply":
        request("PATCH", f"{RELEASES}/{name}/status?fieldManager=serin&force=true",
                {"apiVersion": "serin.dev/v1alpha1", "kind": "Release", "status": s}, "application/apply-patch+yaml")
    elif mode == "merge":
        request("PATCH", f"{RELEASES}/{name}/status?fieldManager=serin", {"status": s}, "application/merge-patch+json")
    elif mode == "merge-diff":
        changed = {key: s[key] for key in ("phase", "replicas", "updatedReplicas", "message", "conditions")}
        request("PATCH", f"{RELEASES}/{name}/status?fieldManager=serin", {"status": changed},
                "application/merge-patch+json")
    elif mode == "event":
        request("POST", f"/api/v1/namespaces/{NS}/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": name + "."},
            "involvedObject": {"apiVersion": "serin.dev/v1alpha1", "kind": "Release", "name": name, "namespace": NS},
            "reason": "ScalingReplicaSet", "message": f"Scaled {name}-abc123 to {i}", "type": "Normal",
            "source": {"component": "serin"}, "firstTimestamp": T0, "lastTimestamp": T0, "count": 1})
    elif mode == "deployment":
        conditions = [{"type": c["type"], "status": c["status"], "reason": c["reason"], "message": c["message"],
                       "lastUpdateTime": T0, "lastTransitionTime": T0} for c in s["conditions"][:2]]
        request("PATCH", f"{DEPLOYMENTS}/{name}/status?fieldManager=serin",
                {"status": {"observedGeneration": 1, "replicas": s["replicas"], "updatedReplicas": s["updatedReplicas"],
                            "conditions": conditions}}, "application/merge-patch+json")
    else:
        sys.exit(f"unknown mode {mode!r}")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    modes = sys.argv[3:] or ["apply", "merge", "merge-diff", "event", "deployment"] * 2
    names = [f"r{i}" for i in range(n)]
    request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            exists_ok=True)
    release = yaml.safe_load(open(f"{REPO}/examples/release.yaml"))
    for name in names:
        body = copy.deepcopy(release)
        body["metadata"] = {"name": name, "namespace": NS}
        request("POST", RELEASES, body, exists_ok=True)
        # replicas 0: the built-in controller has nothing to do but its own status.
        request("POST", DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                                      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                                               "template": release["spec"]["template"] | {"metadata": {"labels": {"app": name}}}}},
                exists_ok=True)
    print(f"kube-apiserver CPU per write, {n} objects x {rounds} rounds per mode")
    for mode in modes:
        before, started = apiserver_cpu(), time.time()
        for i in range(rounds):
            for name in names:
                write(mode, i + 1, name)
        used, writes = apiserver_cpu() - before, rounds * n
        print(f"  {mode:10}  {1000 * used / writes:6.2f} ms  ({used:.2f} s over {writes} writes, {time.time() - started:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
