{{- /*
Names, labels and the rendered hub config. Objects are named as Zero-to-JupyterHub names them (hub, proxy,
proxy-api, proxy-public, hub-db-dir, singleuser), prefixed with `fullnameOverride` when it is set.
*/}}

{{- define "wasmhub.name" -}}
{{- if .root.Values.fullnameOverride -}}
{{- printf "%s-%s" .root.Values.fullnameOverride .name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- .name -}}
{{- end -}}
{{- end }}

{{- /* Labels as z2jh writes them: the legacy component/app/release set and the app.kubernetes.io set. */}}
{{- define "wasmhub.labels" -}}
{{ include "wasmhub.selector" . }}
chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
heritage: {{ .root.Release.Service }}
app.kubernetes.io/name: jupyterhub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "wasmhub.selector" -}}
component: {{ .component }}
app: jupyterhub
release: {{ .root.Release.Name }}
{{- end }}

{{- define "wasmhub.image" -}}
{{- printf "%s:%s" .name (toString .tag) -}}
{{- end }}

{{- /* The security settings of every pod the chart runs: no root, no privilege, a read-only root filesystem. */}}
{{- define "wasmhub.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65534
runAsGroup: 65534
fsGroup: 65534
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "wasmhub.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{- /*
The proxy's API token: the value given, else the one the release already has (Helm's lookup), else a new one,
so an upgrade never changes it unasked (z2jh keeps its generated secrets the same way).
*/}}
{{- define "wasmhub.proxyToken" -}}
{{- if .Values.proxy.secretToken -}}
{{- .Values.proxy.secretToken -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "wasmhub.name" (dict "root" . "name" "hub")) -}}
{{- if and $existing (index $existing.data "hub.config.ConfigurableHTTPProxy.auth_token") -}}
{{- index $existing.data "hub.config.ConfigurableHTTPProxy.auth_token" | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "wasmhub.cookieSecret" -}}
{{- if .Values.hub.cookieSecret -}}
{{- .Values.hub.cookieSecret -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "wasmhub.name" (dict "root" . "name" "hub")) -}}
{{- if and $existing (index $existing.data "hub.config.JupyterHub.cookie_secret") -}}
{{- index $existing.data "hub.config.JupyterHub.cookie_secret" | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- /* Whether the proxy serves TLS itself (manual or secret); offload ends TLS before it. */}}
{{- define "wasmhub.proxyServesTls" -}}
{{- $https := .Values.proxy.https -}}
{{- if and $https.enabled (has $https.type (list "manual" "secret")) -}}true{{- end -}}
{{- end }}

{{- /*
The hub's config file: the values as given, with what the cluster decides on top (where the proxy, the database
and the policies are, the spawner, the hub's address for pods), and the secrets filled in. `wasmhub config check`
accepts it (a test renders and checks it).
*/}}
{{- define "wasmhub.hubConfig" -}}
{{- $config := deepCopy .Values -}}
{{- $hub := include "wasmhub.name" (dict "root" . "name" "hub") -}}
{{- $proxyApi := include "wasmhub.name" (dict "root" . "name" "proxy-api") -}}
{{- $_ := set $config.proxy "secretToken" (include "wasmhub.proxyToken" .) -}}
{{- $_ := set $config.hub "cookieSecret" (include "wasmhub.cookieSecret" .) -}}
{{- $hubConfig := default dict $config.hub.config -}}
{{- $chp := default dict $hubConfig.ConfigurableHTTPProxy -}}
{{- $_ := set $chp "should_start" false -}}
{{- $_ := set $chp "api_url" (printf "http://%s:8001" $proxyApi) -}}
{{- $_ := set $hubConfig "ConfigurableHTTPProxy" $chp -}}
{{- $_ := set $config.hub "config" $hubConfig -}}
{{- if eq (toString $config.hub.db.type) "sqlite-pvc" -}}
{{- $_ := set $config.hub.db "url" (default "sqlite:///srv/wasmhub/wasmhub.sqlite" $config.hub.db.url) -}}
{{- end -}}
{{- $wasmhub := $config.wasmhub -}}
{{- $_ := set $wasmhub "spawner" "kubernetes" -}}
{{- $listen := default dict $wasmhub.listen -}}
{{- $_ := set $listen "hub" "0.0.0.0:8081" -}}
{{- $_ := set $wasmhub "listen" $listen -}}
{{- $kubernetes := default dict $wasmhub.kubernetes -}}
{{- $_ := set $kubernetes "namespace" .Release.Namespace -}}
{{- $_ := set $kubernetes "hubConnectUrl" (printf "http://%s:8081" $hub) -}}
{{- $_ := set $kubernetes "hubInstance" (default .Release.Name $kubernetes.hubInstance) -}}
{{- $_ := set $wasmhub "kubernetes" $kubernetes -}}
{{- $_ := set $wasmhub.policies "dir" "/etc/wasmhub/policies" -}}
{{- /* The policy files reach the hub through their ConfigMap, not through its config. */ -}}
{{- $_ := unset $wasmhub.policies "files" -}}
{{- $_ := unset $wasmhub.policies "binaryFiles" -}}
{{- $singleuser := $config.singleuser -}}
{{- $labels := default dict $singleuser.extraLabels -}}
{{- $_ := set $labels "release" .Release.Name -}}
{{- if not (hasKey $labels "hub.jupyter.org/network-access-hub") -}}
{{- $_ := set $labels "hub.jupyter.org/network-access-hub" "true" -}}
{{- end -}}
{{- $_ := set $singleuser "extraLabels" $labels -}}
{{- /* singleuser.cloudMetadata.blockWithIptables: z2jh's init container, before the site's own. */ -}}
{{- if $singleuser.cloudMetadata.blockWithIptables -}}
{{- $tools := $singleuser.networkTools.image -}}
{{- $block := dict "name" "block-cloud-metadata" "image" (include "wasmhub.image" $tools) "command" (list "iptables" "--append" "OUTPUT" "--protocol" "tcp" "--destination" (toString $singleuser.cloudMetadata.ip) "--destination-port" "80" "--jump" "DROP") "securityContext" (dict "privileged" true "runAsUser" 0 "capabilities" (dict "add" (list "NET_ADMIN"))) -}}
{{- $_ := set $singleuser "initContainers" (prepend (default list $singleuser.initContainers) $block) -}}
{{- end -}}
{{- $config | toYaml -}}
{{- end }}

{{- /* Where each policy file of the ConfigMap goes in the policies folder. */}}
{{- define "wasmhub.policyItems" -}}
{{- $policies := .Values.wasmhub.policies -}}
{{- range $path := concat (keys (default dict $policies.files)) (keys (default dict $policies.binaryFiles)) | sortAlpha }}
- key: {{ $path | replace "/" "__" }}
  path: {{ $path }}
{{- end }}
{{- end }}
