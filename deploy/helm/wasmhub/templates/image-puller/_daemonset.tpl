{{- /*
A DaemonSet that pulls every user image onto each node: one init container per image that only says so, then a
pause container that keeps the pod (and so the images) there. Arguments: root, name, hook (whether it is the
Helm hook's).
*/}}
{{- define "wasmhub.imagePuller" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "wasmhub.name" (dict "root" $root "name" .name) }}
  labels:
    {{- include "wasmhub.labels" (dict "root" $root "component" .name) | nindent 4 }}
  {{- if .hook }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    helm.sh/hook-weight: "-10"
  {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "wasmhub.selector" (dict "root" $root "component" .name) | nindent 6 }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 100%
  template:
    metadata:
      labels:
        {{- include "wasmhub.labels" (dict "root" $root "component" .name) | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 0
      {{- with include "wasmhub.imagePullSecrets" $root }}
      {{- . | trim | nindent 6 }}
      {{- end }}
      securityContext:
        {{- include "wasmhub.podSecurityContext" $root | nindent 8 }}
      {{- if $root.Values.scheduling.podPriority.enabled }}
      priorityClassName: {{ include "wasmhub.priorityName" (dict "root" $root "name" "image-puller") }}
      {{- end }}
      # Wherever user pods may run.
      {{- with $root.Values.scheduling.userPods.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      initContainers:
        {{- range $name, $image := include "wasmhub.userImages" $root | fromYaml }}
        - name: image-pull-{{ $name }}
          image: {{ $image }}
          command: [/bin/sh, -c, echo "Pulling complete"]
          securityContext:
            {{- include "wasmhub.containerSecurityContext" $root | nindent 12 }}
        {{- end }}
      containers:
        - name: pause
          image: {{ include "wasmhub.image" $root.Values.prePuller.pause.image }}
          securityContext:
            {{- include "wasmhub.containerSecurityContext" $root | nindent 12 }}
{{- end }}
