{{- define "enseal.labels" -}}
app.kubernetes.io/name: enseal-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: enseal
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "enseal.selector" -}}
app.kubernetes.io/name: enseal-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "enseal.sa" -}}
{{ .Values.serviceAccount.name }}
{{- end }}
