{{/*
imdsgate.validate fails rendering on combinations values.schema.json cannot express, with the same
wording as the agent's own configuration errors.
*/}}
{{- define "imdsgate.validate" -}}
{{- if eq (int .Values.ports.agent) (int .Values.ports.metrics) }}
{{- fail "ports.agent and ports.metrics must differ (both bind on the host network)" }}
{{- end }}
{{- if and (eq .Values.config.credentialMode "assume-role") (gt (int .Values.config.sessionDurationSeconds) 3600) }}
{{- fail "config.sessionDurationSeconds: at most 3600 with config.credentialMode=assume-role (role chaining)" }}
{{- end }}
{{- if and .Values.config.ipv6 (not .Values.config.manageRules) }}
{{- fail "config.ipv6 needs config.manageRules (it only changes the rules the agent installs)" }}
{{- end }}
{{- end }}
