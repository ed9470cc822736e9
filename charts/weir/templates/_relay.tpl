{{/*
The relay (`weir relay`) and what the agents need for it: each agent's flow API on TCP with
mutual TLS, only when the relay is enabled. Included by daemonset.yaml; the relay's own
objects are in relay-*.yaml.
*/}}

{{- define "weir.relay.fullname" -}}
{{- printf "%s-relay" (include "weir.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "weir.relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: relay
{{- end -}}

{{/* Secrets holding ca.crt, tls.crt and tls.key: the chart's, or the ones named in relay.tls.existingSecrets. */}}
{{- define "weir.relay.agentSecret" -}}
{{- if .Values.relay.tls.existingSecrets.enabled -}}
{{- required "relay.tls.existingSecrets.agent is required when relay.tls.existingSecrets.enabled" .Values.relay.tls.existingSecrets.agent -}}
{{- else -}}
{{- printf "%s-agent-tls" (include "weir.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "weir.relay.clientSecret" -}}
{{- if .Values.relay.tls.existingSecrets.enabled -}}
{{- required "relay.tls.existingSecrets.relay is required when relay.tls.existingSecrets.enabled" .Values.relay.tls.existingSecrets.relay -}}
{{- else -}}
{{- printf "%s-client-tls" (include "weir.relay.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "weir.relay.agentArgs" -}}
{{- if .Values.relay.enabled }}
- --observer-address=$(HOST_IP):{{ .Values.relay.agentPort }}
- --observer-tls-ca=/etc/weir/flows-tls/ca.crt
- --observer-tls-cert=/etc/weir/flows-tls/tls.crt
- --observer-tls-key=/etc/weir/flows-tls/tls.key
{{- end }}
{{- end -}}

{{- define "weir.relay.agentEnv" -}}
{{- if .Values.relay.enabled }}
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- end -}}

{{- define "weir.relay.agentVolumeMounts" -}}
{{- if .Values.relay.enabled }}
# The flow API's TCP listener for the relay: mutual TLS.
- name: flows-tls
  mountPath: /etc/weir/flows-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "weir.relay.agentVolumes" -}}
{{- if .Values.relay.enabled }}
- name: flows-tls
  secret:
    secretName: {{ include "weir.relay.agentSecret" . }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "weir.relay.labels" -}}
helm.sh/chart: {{ include "weir.chart" . }}
{{ include "weir.relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: weir
{{- end -}}
