{{/*
imdsgate.name is the chart name, or nameOverride.
*/}}
{{- define "imdsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
imdsgate.fullname is the release-qualified name, truncated to 63 characters because some Kubernetes
name fields are limited to this (DNS-1123 labels).
*/}}
{{- define "imdsgate.fullname" -}}
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

{{/*
imdsgate.chart is name-version for the helm.sh/chart label.
*/}}
{{- define "imdsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
imdsgate.labels are the recommended labels (helm.sh best practices) plus commonLabels.
*/}}
{{- define "imdsgate.labels" -}}
helm.sh/chart: {{ include "imdsgate.chart" . }}
{{ include "imdsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: imdsgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
imdsgate.testLabels label the helm test's objects: the recommended labels, but never the DaemonSet's
selector (a DaemonSet controller adopts and deletes orphan pods that match its selector).
*/}}
{{- define "imdsgate.testLabels" -}}
helm.sh/chart: {{ include "imdsgate.chart" . }}
app.kubernetes.io/name: {{ include "imdsgate.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: imdsgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
imdsgate.selectorLabels are name + instance only: selectors are immutable, so nothing that changes
between chart versions belongs here.
*/}}
{{- define "imdsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imdsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
imdsgate.serviceAccountName is the agent's ServiceAccount.
*/}}
{{- define "imdsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imdsgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
imdsgate.image is registry/repository followed by @digest or :tag (default appVersion).
*/}}
{{- define "imdsgate.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
imdsgate.bindAddress is the address both ports listen on: the node IP from the Downward API unless set.
$(IMDSGATE_HOST_IP) is expanded by the kubelet from the env var defined before it.
*/}}
{{- define "imdsgate.bindAddress" -}}
{{- .Values.bindAddress | default "$(IMDSGATE_HOST_IP)" }}
{{- end }}

{{/*
imdsgate.configEnv turns .Values.config into IMDSGATE_* variables: camelCase key → UPPER_SNAKE
(src/config.ts envName), lists joined with commas, numbers printed as integers, empty values left out
so the agent's default applies.
*/}}
{{- define "imdsgate.configEnv" -}}
{{- range $key, $value := .Values.config }}
{{- $str := "" }}
{{- if kindIs "slice" $value }}{{ $str = join "," $value }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}{{ $str = printf "%d" (int64 $value) }}
{{- else }}{{ $str = toString $value }}
{{- end }}
{{- if ne $str "" }}
- name: IMDSGATE_{{ $key | snakecase | upper }}
  value: {{ $str | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
imdsgate.securityContext: with manageRules the container runs as root with only NET_ADMIN and NET_RAW
(iptables-restore needs them in the effective set, which Kubernetes grants only to UID 0: there are no
ambient capabilities), no privilege escalation and a read-only root. Without manageRules nothing needs
privilege: non-root, no capabilities.
*/}}
{{- define "imdsgate.securityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
{{- if .Values.config.manageRules }}
runAsUser: 0
runAsNonRoot: false
capabilities:
  drop: ["ALL"]
  {{- if eq .Values.config.iptablesBackend "nft" }}
  add: ["NET_ADMIN"]
  {{- else }}
  add: ["NET_ADMIN", "NET_RAW"]
  {{- end }}
{{- else }}
runAsUser: 65534
runAsGroup: 65534
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}
{{- end }}
