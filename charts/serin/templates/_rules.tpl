{{/*
The controller's rules on namespaced objects: the same list for the
ClusterRole (cluster mode) and the Role (namespaced mode). No wildcards, no
Secrets (see secret-reader.yaml), no leases (see leader-election.yaml).
*/}}
{{- define "serin.rules" -}}
# Releases and their templates; the controller writes status only.
- apiGroups: [serin.dev]
  resources: [releases, analysistemplates]
  verbs: [get, list, watch]
- apiGroups: [serin.dev]
  resources: [releases/status]
  verbs: [get, patch, update]
# The ReplicaSets a Release owns, scaled through their scale subresource.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [replicasets/scale]
  verbs: [get, patch, update]
# Deployments a Release adopts (spec.workloadRef): read and watched for their
# template; scaled through /scale unless scaleDown is never.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
# Analysis runs of kind Job.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Config snapshots (spec.configSnapshots.configMaps): the ConfigMaps the pods
# read are watched (metadata) and read, and copied into immutable ConfigMaps
# whose owners are updated to the ReplicaSets that use them.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update]
# Traffic: Service selectors (blue-green, canary), HTTPRoute, GRPCRoute and
# VirtualService rules, DestinationRule subsets, canary
# Ingresses; watched so that an outside edit is put back at once.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, grpcroutes]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch]
{{- range .Values.trafficRouting.generic }}
# trafficRouting.generic: read, watch and patch the weights, nothing more.
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: [get, list, watch, patch]
{{- end }}
# Events on Releases (events.k8s.io, and core events for older clients).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
