{{/* The name of every object: the release name (one release per topic). */}}
{{- define "ingest-sink.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pod's ServiceAccount: serviceAccount.name, else the full name when the chart creates
     it, else the namespace's `default`. */}}
{{- define "ingest-sink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ingest-sink.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
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

{{/* The most replicas an autoscaler may run: maxReplicaCount, else the partition count; fails
     when that is below the minimum (at least 1 replica for the check, the HPA's floor). */}}
{{- define "ingest-sink.maxReplicas" -}}
{{- $a := .Values.autoscaling -}}
{{- $max := int (default $a.partitions $a.maxReplicaCount) -}}
{{- $min := max 1 (int $a.minReplicaCount) -}}
{{- if lt $max $min -}}
{{- fail (printf "autoscaling.minReplicaCount (%d) is above the most replicas (%d): lower it or raise autoscaling.maxReplicaCount / partitions" $min $max) -}}
{{- end -}}
{{- $max -}}
{{- end -}}
