{{/*
imdsgate.alertGroups are the Prometheus rule groups of the PrometheusRule (docs/observability.md).
The test suite renders them, runs `promtool check rules` on them, and makes each alert fire and clear
with `promtool test rules` (test/integration/chart/alerts.test.ts). Label "node" comes from the
monitors' relabeling; "pod_namespace" of imdsgate_decisions_total is the calling pod's namespace.
*/}}
{{- define "imdsgate.alertGroups" -}}
{{- $sel := printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-.*" (include "imdsgate.fullname" .)) -}}
- name: imdsgate.agent
  rules:
    - alert: ImdsgateAgentDown
      expr: up{ {{- $sel -}} } == 0
      for: 5m
      labels:
        severity: critical
      annotations:
        summary: imdsgate on {{ "{{ $labels.node }}" }} is not answering scrapes
        description: Pods on the node get "connection refused" from the metadata address (the rules stay, fail closed) until the agent is back.
    - alert: ImdsgateAgentAbsent
      expr: absent(up{ {{- $sel -}} })
      for: 15m
      labels:
        severity: warning
      annotations:
        summary: No imdsgate agent is being scraped
        description: Check the DaemonSet and the ServiceMonitor/PodMonitor selection.
    - alert: ImdsgateNotReady
      expr: imdsgate_ready == 0
      for: 5m
      labels:
        severity: critical
      annotations:
        summary: imdsgate on {{ "{{ $labels.node }}" }} has not been ready for 5 minutes
        description: Its rules or its pod view are not in place; pods on the node cannot get credentials.
- name: imdsgate.rules
  rules:
    - alert: ImdsgateRulesMissing
      expr: imdsgate_rules_installed == 0
      for: 1m
      labels:
        severity: critical
      annotations:
        summary: Interception rules ({{ "{{ $labels.family }}" }}) missing on {{ "{{ $labels.node }}" }}
        description: Pods on this node may reach the real metadata service and the node's credentials.
    - alert: ImdsgateInterceptionBroken
      expr: imdsgate_interception_ok == 0
      for: 5m
      labels:
        severity: critical
      annotations:
        summary: Pod metadata traffic on {{ "{{ $labels.node }}" }} does not reach imdsgate ({{ "{{ $labels.reason }}" }})
        description: A pod interface is not matched by config.interfaces, so its pods may reach the node's own metadata service. See docs/troubleshooting.md "Interception self-check".
    - alert: ImdsgateRulesRepaired
      expr: increase(imdsgate_rules_repairs_total[15m]) > 0
      labels:
        severity: warning
      annotations:
        summary: Interception rules on {{ "{{ $labels.node }}" }} were removed or altered and have been repaired
        description: Something else rewrites the nat table (a CNI, kube-proxy flush, or an operator). Find out what.
    - alert: ImdsgateRulesReconcileFailing
      expr: increase(imdsgate_rules_reconcile_errors_total[10m]) > 0
      for: 10m
      labels:
        severity: critical
      annotations:
        summary: imdsgate cannot check or repair its rules on {{ "{{ $labels.node }}" }}
        description: See the agent's log (iptables errors, xtables lock contention, missing capability).
- name: imdsgate.identity
  rules:
    - alert: ImdsgateStsErrors
      expr: sum by (node, api) (rate(imdsgate_sts_requests_total{outcome!="success"}[5m])) > 0.05
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: STS {{ "{{ $labels.api }}" }} calls failing on {{ "{{ $labels.node }}" }}
        description: Pods keep still-valid cached credentials for a while; new sessions fail. Check trust policies and throttling.
    - alert: ImdsgateDenialsSpike
      expr: sum by (node) (rate(imdsgate_decisions_total{outcome="deny"}[5m])) > {{ .Values.prometheusRule.denialsPerSecond }}
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: Many role denials on {{ "{{ $labels.node }}" }}
        description: A workload asks for a role it may not have, or a namespace policy changed. See the Events on the pods and `imdsgate explain`.
    - alert: ImdsgatePodViewStale
      expr: imdsgate_pod_view_staleness_seconds > {{ .Values.prometheusRule.staleSeconds }}
      for: 5m
      labels:
        severity: warning
      annotations:
        summary: imdsgate's pod view on {{ "{{ $labels.node }}" }} is stale
        description: The pod watch has not heard from the API server for a while; new pods may be refused until it catches up.
    - alert: ImdsgateUpstreamErrors
      expr: sum by (node, kind) (rate(imdsgate_upstream_errors_total[5m])) > 0.1
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: Upstream IMDS errors ({{ "{{ $labels.kind }}" }}) on {{ "{{ $labels.node }}" }}
        description: The node's own metadata service is slow or refusing; check the instance's metadata options (hop limit, IMDSv2).
{{- end }}
