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
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
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
{{- /* User pods go to the user scheduler and get the default priority when the chart runs them (z2jh's mapping);
       hub.config.KubeSpawner still wins. */ -}}
{{- $kubespawner := default dict $hubConfig.KubeSpawner -}}
{{- if and .Values.scheduling.userScheduler.enabled (not (hasKey $kubespawner "scheduler_name")) -}}
{{- $_ := set $kubespawner "scheduler_name" (include "wasmhub.userSchedulerName" .) -}}
{{- end -}}
{{- if and .Values.scheduling.podPriority.enabled (not (hasKey $kubespawner "priority_class_name")) -}}
{{- $_ := set $kubespawner "priority_class_name" (include "wasmhub.priorityName" (dict "root" . "name" "default")) -}}
{{- end -}}
{{- if $kubespawner -}}
{{- $_ := set $hubConfig "KubeSpawner" $kubespawner -}}
{{- end -}}
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

{{- /*
Every image user pods may need, as `name: image` lines: the single-user image, the network tools when cloud
metadata is blocked, init and extra containers, the images of profileList and its choices (unless
prePuller.pullProfileListImages is false), and prePuller.extraImages.
*/}}
{{- define "wasmhub.userImages" -}}
{{- $singleuser := .Values.singleuser -}}
{{- $images := dict "singleuser" (include "wasmhub.image" $singleuser.image) -}}
{{- if $singleuser.cloudMetadata.blockWithIptables -}}
{{- $_ := set $images "network-tools" (include "wasmhub.image" $singleuser.networkTools.image) -}}
{{- end -}}
{{- range $index, $container := concat (default list $singleuser.initContainers) (default list $singleuser.extraContainers) -}}
{{- if $container.image -}}
{{- $_ := set $images (printf "container-%d" $index) $container.image -}}
{{- end -}}
{{- end -}}
{{- if $.Values.prePuller.pullProfileListImages -}}
{{- range $index, $profile := default list $singleuser.profileList -}}
{{- with $profile.kubespawner_override -}}
{{- if .image -}}
{{- $_ := set $images (printf "profile-%d" $index) .image -}}
{{- end -}}
{{- end -}}
{{- range $option, $settings := default dict $profile.profile_options -}}
{{- range $choice, $chosen := default dict $settings.choices -}}
{{- with $chosen.kubespawner_override -}}
{{- if .image -}}
{{- $_ := set $images (printf "profile-%d-%s-%s" $index $option $choice | lower | replace "_" "-" | trunc 50) .image -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name, $image := default dict $.Values.prePuller.extraImages -}}
{{- $_ := set $images (printf "extra-%s" $name | lower | replace "_" "-") (include "wasmhub.image" $image) -}}
{{- end -}}
{{- toYaml $images -}}
{{- end }}

{{- /* The user scheduler's name, which user pods name as their schedulerName. */}}
{{- define "wasmhub.userSchedulerName" -}}
{{- printf "%s-user-scheduler" .Release.Name -}}
{{- end }}

{{- define "wasmhub.priorityName" -}}
{{- printf "%s-%s-priority" .root.Release.Name .name -}}
{{- end }}

{{- /* Scheduling of the chart's own pods (hub, proxy, user scheduler): scheduling.corePods, as z2jh places them. */}}
{{- define "wasmhub.corePodScheduling" -}}
{{- $core := .root.Values.scheduling.corePods -}}
{{- with concat (default list $core.tolerations) (default list .tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $purpose := dict "matchExpressions" (list (dict "key" "hub.jupyter.org/node-purpose" "operator" "In" "values" (list "core"))) -}}
{{- if eq $core.nodeAffinity.matchNodePurpose "prefer" }}
affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          {{- toYaml $purpose | nindent 10 }}
{{- else if eq $core.nodeAffinity.matchNodePurpose "require" }}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - {{- toYaml $purpose | nindent 10 }}
{{- end }}
{{- include "wasmhub.imagePullSecrets" .root }}
{{- end }}

{{- /* Image pull secrets alone, for pods placed as user pods (image pullers, placeholders). */}}
{{- define "wasmhub.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
  {{- end }}
{{- end }}
{{- end }}
