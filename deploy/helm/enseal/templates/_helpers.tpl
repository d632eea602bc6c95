{{/*
Name of the release's objects (Deployment, ClusterRole, Role, bindings, PDB): the release name
when it already says "enseal", else RELEASE-enseal; fullnameOverride wins. So
`helm install enseal-controller deploy/helm/enseal` names everything as deploy/base does, and
two releases never share a cluster-scoped name.
*/}}
{{- define "enseal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "enseal.labels" -}}
{{ include "enseal.selector" . }}
app.kubernetes.io/part-of: enseal
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "enseal.selector" -}}
app.kubernetes.io/name: enseal-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the Deployment runs as and the bindings name. */}}
{{- define "enseal.sa" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "enseal.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end }}
