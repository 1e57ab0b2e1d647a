{{/* The name of every object: the release name (one release per topic). */}}
{{- define "ingest-sink.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ingest-sink.selectorLabels" -}}
app.kubernetes.io/name: ingest-sink
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ingest-sink.labels" -}}
{{ include "ingest-sink.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
