{{- /*
NetworkPolicies as z2jh writes them, from the same keys: `enabled`, `ingress` and `egress` (extra rules),
`egressAllowRules` (which destinations pods may reach), `allowedIngressPorts` (ports open to anyone) and
`interNamespaceAccessLabels` (`ignore`, or `accept` to honour the access labels on other namespaces too). The
key names and values are checked with the rest of the values (host/config's `NetworkPolicy`).
Arguments: root, name, component, settings (the values' networkPolicy), allowRules (this component's defaults),
ingressFrom (a list of [access label, port] pairs), egressTo (rules every such pod needs).
*/}}
{{- define "wasmhub.networkPolicy" -}}
{{- $settings := default dict .settings -}}
{{- $namespaces := default "ignore" $settings.interNamespaceAccessLabels -}}
{{- /* Each rule as given, else this component's default; an explicit false is kept (sprig's merge would drop it). */ -}}
{{- $given := default dict $settings.egressAllowRules -}}
{{- $rules := dict -}}
{{- range $key, $default := .allowRules -}}
{{- $set := and (hasKey $given $key) (not (kindIs "invalid" (index $given $key))) -}}
{{- $_ := set $rules $key (ternary (index $given $key) $default $set) -}}
{{- end -}}
{{- $private := list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" -}}
{{- $dns := list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP") -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "wasmhub.name" (dict "root" .root "name" .name) }}
  labels:
    {{- include "wasmhub.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "wasmhub.selector" (dict "root" .root "component" .component) | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- range .ingressFrom }}
    - ports:
        - port: {{ index . 1 }}
      from:
        - podSelector:
            matchLabels:
              {{ index . 0 }}: "true"
        {{- if eq $namespaces "accept" }}
        - namespaceSelector:
            matchLabels:
              {{ index . 0 }}: "true"
        - podSelector:
            matchLabels:
              {{ index . 0 }}: "true"
          namespaceSelector:
            matchLabels:
              {{ index . 0 }}: "true"
        {{- end }}
    {{- end }}
    {{- with $settings.allowedIngressPorts }}
    - ports:
        {{- range . }}
        - port: {{ . }}
        {{- end }}
    {{- end }}
    {{- with $settings.ingress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    {{- with .egressTo }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if $rules.cloudMetadataServer }}
    - to:
        - ipBlock:
            cidr: 169.254.169.254/32
    {{- end }}
    {{- if $rules.dnsPortsCloudMetadataServer }}
    - to:
        - ipBlock:
            cidr: 169.254.169.254/32
      ports: {{ toJson $dns }}
    {{- end }}
    {{- if $rules.dnsPortsKubeSystemNamespace }}
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
      ports: {{ toJson $dns }}
    {{- end }}
    {{- if $rules.dnsPortsPrivateIPs }}
    - to:
        {{- range $private }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports: {{ toJson $dns }}
    {{- end }}
    {{- if $rules.nonPrivateIPs }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except:
              {{- range $private }}
              - {{ . }}
              {{- end }}
              {{- if not $rules.cloudMetadataServer }}
              - 169.254.169.254/32
              {{- end }}
    {{- end }}
    {{- if $rules.privateIPs }}
    - to:
        {{- range $private }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
    {{- end }}
    {{- with $settings.egress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
