{{/* Names, labels and the checks every template relies on. */}}

{{- define "serin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "serin.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "serin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "serin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: serin
{{- end }}

{{- define "serin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "serin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "serin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "serin.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "serin.leaseName" -}}
{{- default (printf "%s-controller" (include "serin.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The namespaces the controller watches in namespaced mode, as a JSON list; []
in cluster mode. Fails the render for a setting the controller cannot honour.
*/}}
{{- define "serin.watchNamespaces" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount above 1 needs leaderElection.enabled: two controllers without a lease would both act on every Release" }}
{{- end }}
{{- .Values.watchNamespaces | default list | uniq | toJson }}
{{- end }}

{{/* Namespaces whose Secrets the controller may read: secretNamespaces plus the watched ones. */}}
{{- define "serin.secretNamespaces" -}}
{{- $ns := .Values.secretNamespaces | default list }}
{{- $ns = concat $ns (include "serin.watchNamespaces" . | fromJsonArray) }}
{{- $ns | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
Shards, as a JSON list of objects: index, name (the Deployment and the
PodDisruptionBudget) and lease (the Lease it holds, as the controller names
it: src/controller/shard.rs). One shard keeps the unsharded names, so an
existing install keeps its Deployment (its selector cannot change) and Lease.
*/}}
{{- define "serin.shards" -}}
{{- $count := int .Values.shards }}
{{- $fullname := include "serin.fullname" . }}
{{- $lease := include "serin.leaseName" . }}
{{- $shards := list }}
{{- range $index := until $count }}
{{- if eq $count 1 }}
{{- $shards = append $shards (dict "index" $index "name" $fullname "lease" $lease) }}
{{- else }}
{{- $shards = append $shards (dict "index" $index "name" (printf "%s-shard-%d" $fullname $index) "lease" (printf "%s-shard-%d-of-%d" $lease $index $count)) }}
{{- end }}
{{- end }}
{{- $shards | toJson }}
{{- end }}

{{/* Every shard's Lease name, as a YAML flow list. */}}
{{- define "serin.leaseNames" -}}
{{- $names := list }}
{{- range include "serin.shards" . | fromJsonArray }}
{{- $names = append $names (.lease | quote) }}
{{- end }}
{{- printf "[%s]" (join ", " $names) }}
{{- end }}

{{/* serin's CRDs, as a YAML flow list (the names of the files in crds/). */}}
{{- define "serin.crdNames" -}}
[releases.serin.dev, analysistemplates.serin.dev, clusteranalysistemplates.serin.dev]
{{- end }}

{{/* Labels of the `helm test` objects: not the controller's selector labels,
so the metrics Service and the PodDisruptionBudget never pick the test pod. */}}
{{- define "serin.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: self-test
app.kubernetes.io/part-of: serin
{{- end }}
