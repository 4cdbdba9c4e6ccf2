#!/usr/bin/env bash
# `make demo`: the local cluster, serin's controller, and three Releases in the
# namespace serin-demo, each rolled from v1 to v2 live through
# `kubectl serin get release NAME --watch`:
#   1. web       a rolling update (examples/release.yaml)
#   2. shop      a canary on the HTTPRoute shop: 20%, 50%, then a promote
#                (examples/demo/canary.yaml)
#   3. checkout  a blue-green switch of the active Service, after a promote
#                (examples/demo/bluegreen.yaml)
# and a summary: revisions, time, the traffic seen, the Releases' Events.
#
# It runs unattended: the script itself promotes, after a pause it announces.
# Run it again at will: it first deletes what the last run left in serin-demo.
# On a terminal the live view is redrawn in place on the alternate screen;
# otherwise (a pipe, CI logs) each changed frame is printed, with no control
# sequences.
#
#   SERIN_DEMO_PAUSE=N   seconds to wait, visibly, before each promote (default 5)
#   e2e/demo.sh --check  runs the demo into a file and checks its transcript
#                        (make demo-check)
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh

ns=serin-demo
pause=${SERIN_DEMO_PAUSE:-5}
tty=
[ -t 1 ] && tty=1

# --check: the whole demo with its output in a file, as CI sees it, then the
# lines a user reads in its summary.
if [ "${1:-}" = --check ]; then
  out=$(mktemp)
  t0=$SECONDS
  code=0
  SERIN_DEMO_PAUSE=${SERIN_DEMO_PAUSE:-1} "$0" > "$out" 2>&1 || code=$?
  fails=0
  if [ "$code" = 0 ]; then echo "ok: e2e/demo.sh exited 0"; else echo "FAILED: e2e/demo.sh exited $code"; fails=$((fails + 1)); fi
  if grep -q $'\033' "$out"; then echo "FAILED: control sequences in the output of a non-terminal"; fails=$((fails + 1)); else echo "ok: no control sequences"; fi
  # The summary with each stage on one line: continuation lines (6 spaces) joined.
  summary=$(sed -n '/| summary: what happened/,$p' "$out" |
    awk '/^      / { l = $0; sub(/^ +/, "", l); line = line " " l; next } { if (NR > 1) print line; line = $0 } END { print line }')
  expect() {
    if grep -Eq -- "$1" <<<"$summary"; then echo "ok: $2"; else echo "FAILED: $2 (no summary line matches /$1/)"; fails=$((fails + 1)); fi
  }
  rev='v1 [0-9a-f]{10} -> v2 [0-9a-f]{10}'
  expect "^  rolling +web +[0-9]+s +$rev pods: at most [0-9]+, at least [0-9]+ available \(of 6; .* Events: RolloutStarted, .*Promoted$" \
    "rolling: web v1 -> v2, Events RolloutStarted ... Promoted"
  if grep -E '^  rolling ' <<<"$summary" | sed -nE 's/.*pods: at most ([0-9]+), at least ([0-9]+) available.*/\1 \2/p' |
    awk '{ exit !($1 <= 8 && $2 >= 5) }'; then
    echo "ok: rolling: at most 8 pods (6 + maxSurge 2), at least 5 available (6 - maxUnavailable 1)"
  else
    echo "FAILED: rolling: the pods seen break maxSurge 2 or maxUnavailable 1"; fails=$((fails + 1))
  fi
  expect "^  canary +shop +[0-9]+s +$rev route weights shop/shop-canary: 100/0 -> 80/20 -> 50/50 -> 100/0 Services shop/shop-canary: v1/v1 -> v1/v2 -> v2/v2 .* Events: .*TrafficShifted x3, .*StepPromoted, Promoted$" \
    "canary: route 100/0, 80/20, 50/50, 100/0; canary Service then stable Service on v2; StepPromoted, Promoted"
  expect "^  blue-green +checkout +[0-9]+s +$rev Services checkout/checkout-preview: v1/v1 -> v1/v2 -> v2/v2 .* Events: .*AwaitingPromotion, Promoting, Switched, Promoted$" \
    "blue-green: preview on v2, then the active Service switched; AwaitingPromotion, Promoting, Switched, Promoted"
  expect '^demo .* done in [0-9]+s' "the closing line"
  echo "e2e/demo.sh --check: $((SECONDS - t0))s, transcript $out"
  [ "$fails" = 0 ] || { echo "--- the transcript's last 60 lines"; tail -60 "$out"; exit 1; }
  exit 0
fi

bold() { if [ -n "$tty" ]; then printf '\033[1m%s\033[0m' "$*"; else printf '%s' "$*"; fi; }
say() { printf 'demo %s | %s\n' "$(date +%H:%M:%S)" "$(bold "$*")"; }
# detail TEXT: a plain line under the last one.
detail() { printf '                %s\n' "$*"; }
started=$SECONDS

say "the local cluster: e2e/cluster.sh up"
detail "(reused if running; a first start builds Kubernetes from Go modules)"
e2e/cluster.sh up
eval "$(e2e/cluster.sh env)"

say "building serin and kubectl-serin: cargo build --bin serin --bin kubectl-serin"
detail "(a first build takes about 6 minutes on 2 cores; later ones seconds)"
t=$SECONDS
cargo build --bin serin --bin kubectl-serin
say "built in $((SECONDS - t))s"
# kubectl finds plugins on PATH: `kubectl serin` is target/debug/kubectl-serin.
export PATH=$PWD/target/debug:$PATH

tmp=$(mktemp -d)
controller='' watching='' drawing='' recorders=()
cleanup() {
  # shellcheck disable=SC2086 # each is a pid or empty
  kill $watching $drawing "${recorders[@]}" $controller 2>/dev/null || true
  [ -n "$tty" ] && printf '\033[?25h\033[?1049l'
  rm -rf "$tmp"
}
trap cleanup EXIT

# A demo controller left by an interrupted run would steer this run's Releases too.
pidfile=$SERIN_CLUSTER_DIR/serin-demo.pid
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if tr '\0' ' ' 2>/dev/null < "/proc/$old/cmdline" | grep -qF -- "controller --namespace $ns "; then
    say "stopping the controller an earlier demo left running (pid $old)"
    kill "$old" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$old" ] || break; sleep 0.1; done
  fi
fi

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The same field manager as the e2e suite, so the two never conflict over the CRDs.
kubectl apply --server-side --force-conflicts --field-manager serin-e2e -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/releases.serin.dev --timeout=30s >/dev/null

say "namespace $ns: deleting what an earlier run left"
detail "(Releases, Services, HTTPRoutes, their ReplicaSets and pods, Events)"
t=$SECONDS
# The ReplicaSets and pods too, rather than wait for the garbage collector,
# which a busy cluster can keep for half a minute.
kubectl -n "$ns" delete releases.serin.dev,services,httproutes.gateway.networking.k8s.io,replicasets,pods \
  --all --wait >/dev/null
deadline=$((SECONDS + 120))
until [ -z "$(kubectl -n "$ns" get replicasets,pods -o name)" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "the previous run's pods in $ns are still there after 120s"
  sleep 0.5
done
# One DELETE of the collection: `kubectl delete events --all` sends one a
# Event, over 20 s for a few hundred.
kubectl delete --raw "/api/v1/namespaces/$ns/events" >/dev/null
detail "(done in $((SECONDS - t))s)"

log=$SERIN_CLUSTER_DIR/logs/serin-demo.log
target/debug/serin controller --namespace "$ns" --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 > "$log" 2>&1 &
controller=$!
echo "$controller" > "$pidfile"
say "serin controller running: pid $controller, log $log"

# ---------------------------------------------------------------- the live view
# The recorders append what kubectl's own watch sees of the HTTPRoute and the
# Services (one line an update) to files under $tmp; the view and the summary
# read them.
record() { # NAME KUBECTL-GET-ARGS...
  local name=$1; shift
  kubectl -n "$ns" get "$@" --watch > "$tmp/$name" 2>/dev/null &
  recorders+=($!)
}
# ({range} templates print only the first object under --watch: kubectl 1.36.)
route_jsonpath='{.spec.rules[0].backendRefs[*].name}:{.spec.rules[0].backendRefs[*].weight}{"\n"}'
event_jsonpath='{range .items[*]}{.metadata.name} {.reason} {.count}{"\n"}{end}'
service_jsonpath='{.metadata.name}={.spec.selector.serin\.dev/revision}{"\n"}'

# label REVISION: v1 or v2 with the revision, as the summary names them.
label() {
  case $1 in
    "") echo "none" ;;
    "$(cat "$tmp/v1")") echo "v1 $1" ;;
    *) echo "v2 $1" ;;
  esac
}

# extras KIND: the lines shown above the frame; the route's weights and the
# Services' selectors as stored, read from the recorders.
extras() {
  local kind=$1 line name rev names weights i
  if [ "$kind" = canary ]; then
    line=$(tail -n1 "$tmp/route" 2>/dev/null || true)
    read -ra names <<<"${line%%:*}"
    read -ra weights <<<"${line#*:}"
    printf '  HTTPRoute %s weights:' "$release"
    for i in "${!names[@]}"; do printf '   %s %s' "${names[$i]}" "${weights[$i]:-}"; done
    printf '\n'
  fi
  if [ "$kind" != rolling ]; then
    line=
    while IFS='=' read -r name rev; do
      [ -n "$name" ] && line+="   $name -> $(label "$rev")"
    done < <(awk -F= -v r="$release" 'NF == 2 && ($1 == r || index($1, r "-") == 1) {
        rev[$1] = $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
      END { for (i = 1; i <= n; i++) print order[i] "=" rev[order[i]] }' "$tmp/services" 2>/dev/null)
    [ -z "$line" ] || printf '  Services:%s\n' "$line"
  fi
}

# draw KIND FRAME: one frame of `kubectl serin get --watch` with the extras;
# in place on a terminal, else only when something changed.
draw() {
  local kind=$1 frame=$2 block key
  pods=$(sed -nE 's/^  Pods: +[0-9]+ desired, ([0-9]+) current, [0-9]+ updated, ([0-9]+) available$/\1 \2/p' <<<"$frame")
  [ -n "$pods" ] && echo "$pods" >> "$tmp/pods"
  block=$(extras "$kind")
  block+=${block:+$'\n'}"\$ kubectl serin -n $ns get release $release --watch"$'\n'"$frame"
  if [ -n "$tty" ]; then
    {
      printf '\033[H'
      # The phase in kubectl serin's colours (it prints none into a pipe), the
      # route and the Services in bold; each line cleared to its end.
      printf '%s\n' "$(bold "serin demo $title")" "$(cat "$tmp/note" 2>/dev/null)" "$block" |
        sed -E 's/(Phase: )(Healthy)/\1\x1b[32m\2\x1b[0m/; s/(Phase: )(Degraded)/\1\x1b[31m\2\x1b[0m/
          s/(Phase: )(Paused)/\1\x1b[33m\2\x1b[0m/; s/(Phase: )(Progressing)/\1\x1b[36m\2\x1b[0m/
          s/^(  HTTPRoute .*|  Services:.*)$/\x1b[1m\1\x1b[0m/; s/$/\x1b[K/'
      printf '\033[J'
    }
    return
  fi
  # A frame whose only change is a countdown ("1m2s left") is not printed again.
  key=$(sed -E 's/[0-9][0-9hms.]* left/left/g' <<<"$block")
  if [ "$key" != "${last_key:-}" ]; then
    printf -- '-- %s\n%s\n' "$(date +%H:%M:%S)" "$block"
    last_key=$key
  fi
}

# view KIND: reads frames (separated by a blank line) until the watch ends.
view() {
  local kind=$1 frame='' line
  while IFS= read -r line; do
    if [ -n "$line" ]; then
      frame+=$line$'\n'
    elif [ -n "$frame" ]; then
      draw "$kind" "${frame%$'\n'}"
      frame=
    fi
  done
  [ -z "$frame" ] || draw "$kind" "${frame%$'\n'}"
}

# note TEXT: a line for the reader; on a terminal it shows above the frame.
note() {
  if [ -n "$tty" ]; then echo "  >> $*" > "$tmp/note"; else say "$*"; fi
}

# live_start KIND: recorders and `kubectl serin get --watch` for $release.
live_start() {
  local kind=$1
  : > "$tmp/pods"
  : > "$tmp/note"
  [ "$kind" = canary ] && record route httproute "$release" -o jsonpath="$route_jsonpath"
  [ "$kind" != rolling ] && record services services -o jsonpath="$service_jsonpath"
  [ -n "$tty" ] && printf '\033[?1049h\033[?25l\033[H\033[J'
  rm -f "$tmp/frames"
  mkfifo "$tmp/frames"
  view "$kind" < "$tmp/frames" &
  drawing=$!
  kubectl serin -n "$ns" get release "$release" --watch > "$tmp/frames" &
  watching=$!
}

# live_stop KIND: the watch and recorders end; the final state stays on screen.
live_stop() {
  local kind=$1
  kill "$watching" "${recorders[@]}" 2>/dev/null || true
  wait "$watching" "$drawing" "${recorders[@]}" 2>/dev/null || true
  watching='' drawing='' recorders=()
  [ -n "$tty" ] && printf '\033[?25h\033[?1049l'
  say "${title%%:*} done in $(cat "$tmp/$release.took")s"
  extras "$kind"
  kubectl serin -n "$ns" get release "$release"
}

# wait_reason RELEASE REASON: until the Progressing condition has that reason.
wait_reason() {
  local deadline=$((SECONDS + 180))
  until [ "$(kubectl -n "$ns" get release "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}')" = "$2" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$1 did not reach $2 within 180s; see $log"
    sleep 0.5
  done
}

# settled RELEASE: Ready on its new revision (kubectl serin status), and the
# old revision scaled down after its drain delay.
settled() {
  kubectl serin -n "$ns" status "$1" --timeout 3m >/dev/null ||
    die "$1 did not become Ready (kubectl serin status exited $?); see $log"
  local deadline=$((SECONDS + 120))
  until [ "$(kubectl -n "$ns" get release "$1" -o jsonpath='{.status.replicas}/{.spec.replicas}' |
    awk -F/ '{ print ($1 == $2) }')" = 1 ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "the old revision of $1 did not scale down within 120s; see $log"
    sleep 0.5
  done
}

# promote_after RELEASE WHAT: a visible countdown, then kubectl serin promote.
promote_after() {
  local i
  for ((i = pause; i > 0; i--)); do
    note "$2: kubectl serin promote $1 in ${i}s"
    [ -n "$tty" ] || break
    sleep 1
  done
  [ -n "$tty" ] || sleep "$pause"
  kubectl serin -n "$ns" promote "$1" >/dev/null
  note "$2: kubectl serin promote $1: sent"
}

# stage NUMBER KIND RELEASE TITLE: rolls RELEASE to v2 with its live view.
stage() {
  local kind=$2 t
  release=$3 title="$1 $4"
  kubectl -n "$ns" get release "$release" -o jsonpath='{.status.stableRevision}' > "$tmp/v1"
  say "$title"
  kubectl -n "$ns" get events --field-selector "involvedObject.kind=Release,involvedObject.name=$release" \
    -o jsonpath="$event_jsonpath" > "$tmp/$release.events0"
  live_start "$kind"
  t=$SECONDS
  kubectl serin -n "$ns" set image "$release" "$release=example.com/$release:2" >/dev/null
  note "kubectl serin set image $release $release=example.com/$release:2"
  case $kind in
    canary)
      wait_reason "$release" CanaryPauseStep
      promote_after "$release" "paused at step 4/4, the route at $(tail -n1 "$tmp/route" | sed -E 's/^.*://; s/ /\//')"
      ;;
    bluegreen)
      wait_reason "$release" AwaitingPromotion
      promote_after "$release" "preview ready, checkout still on v1"
      ;;
  esac
  settled "$release"
  echo $((SECONDS - t)) > "$tmp/$release.took"
  live_stop "$kind"
  echo
  kubectl -n "$ns" get release "$release" -o jsonpath='{.status.stableRevision}' > "$tmp/$release.v2"
  cp "$tmp/v1" "$tmp/$release.v1"
  cp "$tmp/pods" "$tmp/$release.pods"
  if [ -f "$tmp/route" ]; then mv "$tmp/route" "$tmp/$release.route"; fi
  if [ -f "$tmp/services" ]; then mv "$tmp/services" "$tmp/$release.services"; fi
}

# ---------------------------------------------------------------- the run
say "v1 of web, shop and checkout: kubectl apply -f examples/release.yaml -f examples/demo/"
kubectl -n "$ns" apply -f examples/release.yaml -f examples/demo/ >/dev/null
for r in web shop checkout; do
  kubectl serin -n "$ns" status "$r" --timeout 3m >/dev/null ||
    die "$r did not become Ready on v1; see $log"
done
kubectl serin -n "$ns" list
echo

stage 1/3 rolling web "rolling update: web v1 -> v2, 6 pods, maxSurge 2, maxUnavailable 1"
stage 2/3 canary shop "canary: shop v1 -> v2 on HTTPRoute shop: 20%, 5s, 50%, promote"
stage 3/3 bluegreen checkout "blue-green: checkout v1 -> v2: preview, promote, switch"

# ---------------------------------------------------------------- the summary
# distinct: consecutive duplicates dropped, joined with " -> ".
distinct() { awk 'NF && $0 != last { printf "%s%s", (n++ ? " -> " : ""), $0; last = $0 } END { print "" }'; }
revisions() { echo "v1 $(cat "$tmp/$1.v1") -> v2 $(cat "$tmp/$1.v2")"; }
# The route's weights as stable/canary, one line each.
weights() { sed -E 's/^.*://; s/ /\//' "$tmp/$1.route"; }
# switches RELEASE SERVICE OTHER: the two Services' revisions (v1/v2) after
# each recorded update.
switches() {
  awk -F= -v v1="$(cat "$tmp/$1.v1")" -v a="$2" -v b="$3" '
    NF == 2 { rev[$1] = $2 }
    NF == 2 && (a in rev) && (b in rev) { print (rev[a] == v1 ? "v1" : "v2") "/" (rev[b] == v1 ? "v1" : "v2") }
  ' "$tmp/$1.services"
}
pods() { awk 'NF == 2 { if ($1 > max) max = $1; if (min == "" || $2 < min) min = $2 } END { printf "pods: at most %d, at least %d available (of 6", max, min }' "$tmp/$1.pods"; }
# events_since RELEASE: the Release's Events of its stage (those new or
# counted again since the snapshot at its start), by reason in order of
# first appearance, with counts, wrapped at 78 columns.
events_since() {
  kubectl -n "$ns" get events --field-selector "involvedObject.kind=Release,involvedObject.name=$1" \
    --sort-by=.metadata.creationTimestamp -o jsonpath="$event_jsonpath" |
    awk -v r="$1" 'NR == FNR { base[$1] = ($3 == "" ? 1 : $3); next }
      NF >= 2 { d = ($3 == "" ? 1 : $3) - base[$1]; if (d <= 0) next
        n[$2] += d; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
      END {
        line = "      Events:"
        for (i = 1; i <= k; i++) {
          item = " " order[i] (n[order[i]] > 1 ? " x" n[order[i]] : "") (i < k ? "," : "")
          if (length(line) + length(item) > 78) { print line; line = "       " }
          line = line item
        }
        print line
      }' "$tmp/$1.events0" -
}

echo
say "summary: what happened in namespace $ns"
printf '  %-11s %-9s %5s  %s\n' stage release took revisions
# headline STAGE RELEASE: the stage, how long it took, its two revisions.
headline() { printf '  %-11s %-9s %4ss  %s\n' "$1" "$2" "$(cat "$tmp/$2.took")" "$(revisions "$2")"; }
headline rolling web
echo "      $(pods web); maxSurge 2, maxUnavailable 1)"
events_since web
headline canary shop
echo "      route weights shop/shop-canary: $(weights shop | distinct)"
echo "      Services shop/shop-canary: $(switches shop shop shop-canary | distinct)"
echo "      promoted by the script at step 4/4: kubectl serin promote shop"
events_since shop
headline blue-green checkout
echo "      Services checkout/checkout-preview: $(switches checkout checkout checkout-preview | distinct)"
echo "      promoted by the script, preview ready: kubectl serin promote checkout"
events_since checkout
echo "  Events: those of each Release during its stage; their messages:"
echo "    kubectl -n $ns get events --sort-by=.lastTimestamp"
say "done in $((SECONDS - started))s"
detail "(the Releases stay; make cluster-down stops the cluster)"
