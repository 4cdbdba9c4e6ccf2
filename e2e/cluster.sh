#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, built from Go modules:
# etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler,
# kwok playing the kubelets of 3 fake nodes, and a Prometheus server.
#
#   e2e/cluster.sh up      start it, or reuse a healthy one
#   e2e/cluster.sh down    stop exactly the processes `up` started, remove the data dir
#   e2e/cluster.sh env     print the exports for `eval`
#   e2e/cluster.sh status  exit 0 when the cluster is healthy
set -euo pipefail
source "$(dirname "$0")/lib.sh"

D=$SERIN_CLUSTER_DIR
PKI=$D/pki
KUBECONFIG_PATH=$D/kubeconfig
NODES=${SERIN_NODES:-3}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus)

kubectl() { "$SERIN_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# pid_alive NAME: the recorded process is running, and is the binary we started.
pid_alive() {
  local pidfile=$D/pids/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -d "/proc/$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$D/"
}

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  kubectl get --raw /readyz >/dev/null 2>&1 || return 1
  nodes_ready
}

ready_nodes() {
  kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
    grep -c '^True$' || true
}

nodes_ready() { [ "$(ready_nodes)" -ge "$NODES" ]; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll with a deadline.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${limit}s waiting for $what (logs: $D/logs)"
    sleep 0.2
  done
}

# start NAME BINARY ARGS...: a child process with its pid recorded.
start() {
  local name=$1; shift
  nohup "$@" > "$D/logs/$name.log" 2>&1 &
  echo $! > "$D/pids/$name.pid"
}

gen_pki() {
  mkdir -p "$PKI"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 3650 \
    -subj "/CN=serin-e2e-ca" 2>/dev/null
  # cert NAME SUBJECT USAGE [SANS]: v3 leaf certificates (rustls refuses v1).
  cert() {
    local ext=(-addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature,keyEncipherment"
      -addext "extendedKeyUsage=$3")
    [ -n "${4:-}" ] && ext+=(-addext "subjectAltName=$4")
    openssl req "${ec[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2" "${ext[@]}" 2>/dev/null
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -days 3650 -copy_extensions copy -out "$PKI/$1.crt" 2>/dev/null
  }
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=serin-e2e-admin" clientAuth
  cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER
write_kubeconfig() {
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: serin-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$2.crt")
    client-key-data: $(base64 -w0 < "$PKI/$2.key")
contexts:
- name: serin-e2e
  context: {cluster: serin-e2e, user: $2}
current-context: serin-e2e
EOF
}

ensure_prometheus() {
  command -v prometheus >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian package prometheus"
    # The package would start its own service; this cluster runs its own instance.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    (apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; }) ||
      { rm -f /usr/sbin/policy-rc.d; die "apt-get install prometheus failed"; }
    rm -f /usr/sbin/policy-rc.d
  else
    die "prometheus is not installed: run 'sudo apt-get install prometheus' (Debian/Ubuntu) or put a prometheus 2.x binary on PATH"
  fi
}

write_prometheus_config() {
  mkdir -p "$D/prometheus/targets"
  # Tests add scrape targets by writing file_sd JSON files into targets/.
  cat > "$D/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
- job_name: e2e
  file_sd_configs:
  - files: ["$D/prometheus/targets/*.json"]
    refresh_interval: 1s
EOF
}

create_nodes() {
  local i manifest=""
  for ((i = 0; i < NODES; i++)); do
    manifest+="
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, topology.kubernetes.io/zone: zone-$((i % 3))}
status:
  capacity: {cpu: \"32\", memory: 256Gi, pods: \"250\"}
  allocatable: {cpu: \"32\", memory: 256Gi, pods: \"250\"}"
  done
  kubectl apply -f - <<< "$manifest" >/dev/null
}

up() {
  if healthy; then
    log "reusing the healthy cluster in $D"
    return 0
  fi
  [ -d "$D" ] && { log "found a broken cluster in $D; replacing it"; down; }
  "$SERIN_REPO/e2e/build-tools.sh"
  ensure_prometheus
  local t0=$SECONDS
  mkdir -p "$D"/{pids,logs,etcd}
  gen_pki
  for u in admin kube-controller-manager kube-scheduler; do write_kubeconfig "$D/$u.kubeconfig" "$u"; done
  cp "$D/admin.kubeconfig" "$KUBECONFIG_PATH"
  write_prometheus_config

  start prometheus prometheus --config.file="$D/prometheus/prometheus.yml" \
    --storage.tsdb.path="$D/prometheus/data" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --storage.tsdb.retention.time=1h
  start etcd "$SERIN_BIN/etcd" --name=serin-e2e --data-dir="$D/etcd" --unsafe-no-fsync \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster="serin-e2e=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level=warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$SERIN_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none --allow-privileged=true
  wait_for kube-apiserver 60 kubectl get --raw /readyz

  # SERIN_KCM_FLAGS: extra flags, e.g. a higher client QPS for the fleet bench.
  local kcm_flags=()
  read -ra kcm_flags <<< "${SERIN_KCM_FLAGS:-}"
  start kube-controller-manager "$SERIN_BIN/kube-controller-manager" \
    --kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" "${kcm_flags[@]}"
  start kube-scheduler "$SERIN_BIN/kube-scheduler" \
    --kubeconfig="$D/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$D/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$D/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false
  start kwok "$SERIN_BIN/kwok" --kubeconfig="$KUBECONFIG_PATH" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --config="$SERIN_REPO/e2e/kwok/stages.yaml" --cidr=10.244.0.0/16 --node-ip=127.0.0.1 \
    --server-address="127.0.0.1:$KWOK_PORT" --node-lease-duration-seconds=40

  create_nodes
  kubectl apply --server-side -f "$SERIN_CACHE/gateway-api-$GATEWAY_API_VERSION" >/dev/null
  kubectl apply --server-side -f "$SERIN_CACHE/istio-$ISTIO_API_VERSION" >/dev/null
  wait_for "$NODES Ready nodes" 60 nodes_ready
  wait_for "the default ServiceAccount" 60 kubectl get serviceaccount default -n default
  kubectl wait --for=condition=Established --timeout=30s crd --all >/dev/null
  wait_for prometheus 30 curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  log "cluster up in $((SECONDS - t0))s; KUBECONFIG=$KUBECONFIG_PATH"
}

down() {
  local c pid
  for c in "${COMPONENTS[@]}"; do
    pid_alive "$c" && kill "$(cat "$D/pids/$c.pid")" 2>/dev/null || true
  done
  for c in "${COMPONENTS[@]}"; do
    [ -f "$D/pids/$c.pid" ] || continue
    pid=$(cat "$D/pids/$c.pid")
    for _ in $(seq 50); do pid_alive "$c" || break; sleep 0.1; done
    pid_alive "$c" && kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$D"
  log "cluster down"
}

env_exports() {
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export PATH=$SERIN_BIN:\$PATH"
  echo "export SERIN_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT"
  echo "export SERIN_PROMETHEUS_TARGETS=$D/prometheus/targets"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_exports ;;
  status) healthy ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
