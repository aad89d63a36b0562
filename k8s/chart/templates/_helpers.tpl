{{/* Labels of every object: the component's name, the system, and who manages it. */}}
{{- define "boxoffice.labels" -}}
app.kubernetes.io/name: {{ . }}
app.kubernetes.io/part-of: boxoffice
{{- end }}

{{/* Helm's own labels; k8s/base is rendered without them. */}}
{{- define "boxoffice.helmLabels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "boxoffice.selector" -}}
app.kubernetes.io/name: {{ . }}
{{- end }}

{{/* Metadata of a namespaced object: (list $ name). */}}
{{- define "boxoffice.meta" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
name: {{ $name }}
namespace: {{ $root.Values.namespace }}
labels:
  {{- include "boxoffice.labels" $name | nindent 2 }}
  {{- include "boxoffice.helmLabels" $root | nindent 2 }}
{{- end }}

{{/* The hardened container security context every boxoffice container runs with. */}}
{{- define "boxoffice.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: { drop: [ALL] }
seccompProfile: { type: RuntimeDefault }
{{- end }}
