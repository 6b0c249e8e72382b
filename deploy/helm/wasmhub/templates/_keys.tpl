{{- /*
Refuses values with a key wasmhub does not know, naming the nearest known key as `wasmhub config check` does
(host/config/src/suggest.rs): keys compare without case, `_` and `-`; a candidate is near when its normalised edit
distance (with transpositions) leaves a similarity of at least 0.6, or is one edit. The known keys come from
files/keys.json, generated from host/config's declarations. Helm checks values.schema.json (types) first.
*/}}

{{- define "wasmhub.checkKeys" -}}
{{- $problems := list -}}
{{- $tree := .Files.Get "files/keys.json" | fromJson -}}
{{- $problems = include "wasmhub.walkKeys" (dict "values" .Values "tree" $tree "path" "") | trim -}}
{{- if .Values.hub.extraConfig -}}
{{- $problems = printf "%s\nhub.extraConfig: wasmhub does not run Python configuration; express this as a policy plugin (wasmhub.policies.dir) or as settings in this file" $problems | trim -}}
{{- end -}}
{{- $problems = printf "%s\n%s" $problems (include "wasmhub.refusals" .) | trim -}}
{{- if $problems -}}
{{- fail (printf "\n%s" $problems) -}}
{{- end -}}
{{- end }}

{{- /* One line per unknown key below `.path`. */}}
{{- define "wasmhub.walkKeys" -}}
{{- $tree := .tree -}}
{{- $path := .path -}}
{{- if and (kindIs "map" .values) (kindIs "map" $tree) -}}
{{- if hasKey $tree "*" -}}
{{- range $key, $value := .values -}}
{{- include "wasmhub.walkKeys" (dict "values" $value "tree" (get $tree "*") "path" (printf "%s.%s" $path $key)) -}}
{{- end -}}
{{- else -}}
{{- range $key, $value := .values -}}
{{- $child := ternary $key (printf "%s.%s" $path $key) (eq $path "") -}}
{{- if hasKey $tree $key -}}
{{- include "wasmhub.walkKeys" (dict "values" $value "tree" (get $tree $key) "path" $child) -}}
{{- else -}}
{{- $near := include "wasmhub.nearest" (dict "key" $key "candidates" (keys $tree | sortAlpha)) -}}
{{- printf "%s: unknown key%s\n" $child (ternary (printf "; did you mean %s?" $near) "" (ne $near "")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else if and (kindIs "slice" .values) (kindIs "map" $tree) (hasKey $tree "[]") -}}
{{- range $index, $item := .values -}}
{{- include "wasmhub.walkKeys" (dict "values" $item "tree" (get $tree "[]") "path" (printf "%s[%d]" $path $index)) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- /* The candidate nearest to `.key`, or nothing. */}}
{{- define "wasmhub.nearest" -}}
{{- $wanted := .key | replace "_" "" | replace "-" "" | lower -}}
{{- $best := "" -}}
{{- $bestDistance := 0 -}}
{{- $bestLength := 1 -}}
{{- $exact := false -}}
{{- range $candidate := .candidates -}}
{{- if not $exact -}}
{{- $normalised := $candidate | replace "_" "" | replace "-" "" | lower -}}
{{- if eq $normalised $wanted -}}
{{- $best = $candidate -}}
{{- $exact = true -}}
{{- else -}}
{{- $distance := include "wasmhub.distance" (dict "a" $wanted "b" $normalised) | atoi -}}
{{- $length := max (len $wanted) (len $normalised) -}}
{{- /* similarity 1 - d/len >= 0.6, i.e. 10 d <= 4 len; or a single edit */ -}}
{{- if or (le (mul $distance 10) (mul $length 4)) (le $distance 1) -}}
{{- /* more similar: d/len smaller than the best one's */ -}}
{{- if or (eq $best "") (lt (mul $distance $bestLength) (mul $bestDistance $length)) -}}
{{- $best = $candidate -}}
{{- $bestDistance = $distance -}}
{{- $bestLength = $length -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $best -}}
{{- end }}

{{- /* Edit distance with adjacent transpositions (optimal string alignment) between `.a` and `.b`. */}}
{{- define "wasmhub.distance" -}}
{{- $a := .a -}}
{{- $b := .b -}}
{{- $before := list -}}
{{- $previous := list -}}
{{- range $j := until (add1 (len $b) | int) -}}
{{- $previous = append $previous $j -}}
{{- end -}}
{{- range $i := until (len $a) -}}
{{- $row := list (add1 $i) -}}
{{- $ai := substr $i (add1 $i | int) $a -}}
{{- range $j := until (len $b) -}}
{{- $bj := substr $j (add1 $j | int) $b -}}
{{- $cost := ternary 0 1 (eq $ai $bj) -}}
{{- $best := min (add1 (index $previous (add1 $j | int))) (add1 (index $row $j)) (add (index $previous $j) $cost) -}}
{{- if and (gt $i 0) (gt $j 0) -}}
{{- if and (eq $ai (substr (sub $j 1 | int) $j $b)) (eq (substr (sub $i 1 | int) $i $a) $bj) -}}
{{- $best = min $best (add1 (index $before (sub $j 1 | int))) -}}
{{- end -}}
{{- end -}}
{{- $row = append $row $best -}}
{{- end -}}
{{- $before = $previous -}}
{{- $previous = $row -}}
{{- end -}}
{{- last $previous -}}
{{- end }}

{{- /* z2jh settings this chart does not implement, refused with what does the same job here. */}}
{{- define "wasmhub.refusals" -}}
{{- if and .Values.httpRoute (get .Values.httpRoute "enabled") }}
httpRoute.enabled: not supported; expose proxy-public with ingress (ingress.enabled) or its LoadBalancer Service
{{- end }}
{{- if .Values.proxy.traefik }}
proxy.traefik: not supported: there is no autohttps pod; let proxy.https (type secret, manual or offload) serve HTTPS
{{- end }}
{{- if and .Values.imagePullSecret (get .Values.imagePullSecret "create") }}
imagePullSecret.create: not supported; create the registry secret with kubectl and name it in imagePullSecrets
{{- end }}
{{- if .Values.nameOverride }}
nameOverride: not supported; fullnameOverride prefixes the names of every object
{{- end }}
{{- if .Values.global }}
global: not supported; no setting of this chart is read from there
{{- end }}
{{- end }}
