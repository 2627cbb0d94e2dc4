{{- define "sd-runtime.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The cluster-scoped NodePool and EC2NodeClass: nodes.poolName where two stacks may share
     the cluster (sdctl sets it for an existing cluster), else the release's name. */}}
{{- define "sd-runtime.poolName" -}}
{{- .Values.nodes.poolName | default (include "sd-runtime.fullname" .) -}}
{{- end -}}

{{- define "sd-runtime.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sdctl
sdctl.io/runtime: {{ .Values.runtime.name }}
{{- end -}}

{{- define "sd-runtime.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sd-runtime.taintKey" -}}sdctl.io/runtime{{- end -}}
