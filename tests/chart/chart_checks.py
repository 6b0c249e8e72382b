"""Offline checks of the Helm chart (deploy/helm/wasmhub), run by tests/tests/chart.rs with the `k8s` peer venv:
Helm 4 in-process (helm-python-sdk) renders and lints, kubernetes-validate checks every object against the
Kubernetes schemas. Usage: chart_checks.py CHECK --repo DIR --wasmhub BIN. Prints what failed and exits 1."""

import argparse
import base64
import copy
import json
import pathlib
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

KUBERNETES_VERSIONS = [f"1.{minor}.0" for minor in range(30, 38)]
# Fixed secrets, so renders are comparable; without them the chart keeps the release's or generates new ones.
FIXED_SECRETS = {"proxy": {"secretToken": "0" * 64}, "hub": {"cookieSecret": "1" * 64}}


def merged(base, extra):
    """`extra` deep-merged into a copy of `base`, as Helm merges values files."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class Checks:
    def __init__(self, repo, wasmhub):
        self.repo = pathlib.Path(repo)
        self.chart = self.repo / "deploy/helm/wasmhub"
        self.wasmhub = wasmhub
        self.failures = []

    def fail(self, message):
        self.failures.append(message)

    def value_sets(self):
        """Default values, every example of deploy/examples/ unchanged, and the chart's own variants."""
        sets = {"defaults": {}}
        for example in sorted((self.repo / "deploy/examples").glob("*.yaml")):
            sets[example.stem] = yaml.safe_load(example.read_text()) or {}
        sets["postgres-https-ingress-policies"] = {
            "hub": {"db": {"type": "postgres", "url": "postgres://hub@db:5432/hub", "password": "pw"}},
            "proxy": {"https": {"enabled": True, "type": "secret", "hosts": ["hub.example.org"],
                                "secret": {"name": "hub-tls"}}},
            "ingress": {"enabled": True, "hosts": ["hub.example.org"]},
            "wasmhub": {"policies": {"files": {"gpu-cull.yaml": "hook: cull\n"},
                                     "binaryFiles": {"components/gpu.wasm": base64.b64encode(b"\0asm").decode()}}},
            "hub.pdb": None,
        }
        del sets["postgres-https-ingress-policies"]["hub.pdb"]
        sets["manual-tls-offload-off"] = {
            "proxy": {"https": {"enabled": True, "type": "manual", "manual": {"cert": "CERT", "key": "KEY"}}},
            "hub": {"pdb": {"enabled": True}}, "fullnameOverride": "jh",
        }
        return sets

    def render(self, values, fixed=True):
        with helm.Chart.load(str(self.chart)) as chart:
            rendered = chart.render(merged(values, FIXED_SECRETS) if fixed else values, name="jhub",
                                    namespace="jhub", is_install=True)
        return {path: text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")}

    def objects(self, rendered):
        return [(path, doc) for path, text in rendered.items() for doc in yaml.safe_load_all(text) if doc]

    def hub_config(self, objects):
        for _, doc in objects:
            if doc["kind"] == "Secret" and "values.yaml" in doc.get("data", {}):
                return base64.b64decode(doc["data"]["values.yaml"]).decode()
        raise AssertionError("no hub Secret with values.yaml")

    # --- the checks -------------------------------------------------------------------------------------------

    def check_lint(self):
        for name, values in self.value_sets().items():
            for version in (KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]):
                result = helm.lint(str(self.chart), merged(values, FIXED_SECRETS), strict=True,
                                   namespace="jhub", kube_version=f"v{version}")
                findings = result.get("errors", []) + [
                    f"{message['path']}: {message['error']}" for message in result.get("messages", [])
                    if message.get("severity", 0) >= 2]
                for finding in findings:
                    self.fail(f"lint {name} (Kubernetes {version}): {finding}")

    def check_validate(self):
        for name, values in self.value_sets().items():
            for path, doc in self.objects(self.render(values)):
                for version in KUBERNETES_VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as error:
                        where = ".".join(map(str, error.path))
                        self.fail(f"{name}: {path} {doc['kind']}/{doc['metadata']['name']} on {version}: {where}: "
                                  f"{error.message}")
                    except kubernetes_validate.SchemaNotFoundError:
                        self.fail(f"{name}: {path}: no schema for {doc['apiVersion']}/{doc['kind']} on {version}")
            self.check_references(name, self.objects(self.render(values)))

    def check_references(self, name, objects):
        """What the schemas cannot see: selectors that select, ports and accounts and volumes that exist."""
        by_kind = {}
        for _, doc in objects:
            by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        templates = [doc["spec"]["template"] for doc in by_kind.get("Deployment", {}).values()]
        for deployment in by_kind.get("Deployment", {}).values():
            selector = deployment["spec"]["selector"]["matchLabels"]
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if any(labels.get(key) != value for key, value in selector.items()):
                self.fail(f"{name}: Deployment/{deployment['metadata']['name']}: selector does not match its pods")
            spec = deployment["spec"]["template"]["spec"]
            account = spec.get("serviceAccountName")
            if account and account not in by_kind.get("ServiceAccount", {}):
                self.fail(f"{name}: Deployment/{deployment['metadata']['name']}: no ServiceAccount {account}")
            for volume in spec.get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                config_map = volume.get("configMap", {}).get("name")
                if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
                    self.fail(f"{name}: volume {volume['name']}: no claim {claim}")
                if config_map and config_map not in by_kind.get("ConfigMap", {}):
                    self.fail(f"{name}: volume {volume['name']}: no ConfigMap {config_map}")
        for service in by_kind.get("Service", {}).values():
            selector = service["spec"]["selector"]
            pods = [t for t in templates if all(t["metadata"]["labels"].get(k) == v for k, v in selector.items())]
            if not pods:
                self.fail(f"{name}: Service/{service['metadata']['name']} selects no pods")
            ports = {port["name"] for pod in pods for c in pod["spec"]["containers"] for port in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                target = port.get("targetPort")
                if isinstance(target, str) and target not in ports:
                    self.fail(f"{name}: Service/{service['metadata']['name']}: targetPort {target} names no port")
        for binding in by_kind.get("RoleBinding", {}).values():
            if binding["roleRef"]["name"] not in by_kind.get("Role", {}):
                self.fail(f"{name}: RoleBinding/{binding['metadata']['name']}: no Role {binding['roleRef']['name']}")

    def check_golden(self):
        golden = self.repo / "tests/chart/golden"
        for name, values in self.value_sets().items():
            rendered = self.render(values)
            text = "".join(f"# {path}\n{body.strip()}\n" for path, body in rendered.items())
            # The hub's config is base64 in its Secret: shown decoded too, so a review sees what the hub reads.
            text += "# the hub's config file (hub Secret, values.yaml, decoded)\n"
            text += "".join(f"#   {line}\n" for line in self.hub_config(self.objects(rendered)).splitlines())
            path = golden / f"{name}.yaml"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                self.fail(f"tests/chart/golden/{name}.yaml was out of date and has been rewritten; review it")

    def check_config(self):
        for name, values in self.value_sets().items():
            config = self.hub_config(self.objects(self.render(values)))
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
                file.write(config)
                file.flush()
                result = subprocess.run([self.wasmhub, "config", "check", file.name], capture_output=True, text=True)
            if result.returncode != 0:
                self.fail(f"{name}: the rendered hub config fails `wasmhub config check`:\n{result.stdout}"
                          f"{result.stderr}")

    def check_unknown_keys(self):
        """A misspelt key fails the install with the hint `wasmhub config check` gives for it."""
        cases = [{"hubb": {"baseUrl": "/"}}, {"singleuser": {"defaultUrll": "/lab"}},
                 {"hub": {"config": {"Authenticator": {"admin_user": ["alice"]}}}},
                 {"cull": {"timout": 10}}, {"singleuser": {"profileList": [{"display_name": "x", "slugg": "x"}]}},
                 {"hub": {"extraConfig": {"00-site": "c.Spawner.cmd = 'x'"}}},
                 # Sections only the chart reads are closed too: a key it would not read is refused.
                 {"hub": {"pdb": {"enable": True}}}, {"prePuller": {"hook": {"pullOnlyOnChange": False}}}]
        # What z2jh has and this chart does not: refused at install, naming what does the same job.
        for values, words in [({"httpRoute": {"enabled": True}}, "httpRoute.enabled: not supported"),
                              ({"proxy": {"traefik": {"hsts": {}}}}, "proxy.traefik: not supported"),
                              ({"imagePullSecret": {"create": True}}, "imagePullSecret.create: not supported"),
                              ({"global": {"safeToShowValues": True}}, "global: not supported"),
                              ({"nameOverride": "jh"}, "nameOverride: not supported")]:
            try:
                self.render(values)
                self.fail(f"{values}: rendered without complaint")
            except helm.HelmError as error:
                if words not in str(error):
                    self.fail(f"{values}: the refusal does not say {words!r}: {error}")
        for values in cases:
            try:
                self.render(values)
                self.fail(f"{values}: rendered without complaint")
                continue
            except helm.HelmError as error:
                chart_says = str(error)
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
                yaml.safe_dump(values, file)
                file.flush()
                result = subprocess.run([self.wasmhub, "config", "check", file.name], capture_output=True, text=True)
            # `FILE:LINE:COLUMN: path: message` from the check, the same `path: message` from the chart.
            said = [line.split(": ", 1)[1] for line in result.stdout.splitlines() + result.stderr.splitlines()
                    if line.startswith(file.name)]
            if not said:
                self.fail(f"{values}: `wasmhub config check` found nothing wrong")
            for line in said:
                if line not in chart_says:
                    self.fail(f"{values}: the chart does not say {line!r}; it said: {chart_says}")

    def check_config_hook(self):
        """The pre-install/pre-upgrade Job runs `wasmhub config check` on the config the hub would get; run here as
        the Job would run it, it passes for good values and fails, naming the key, for values only the hub's own
        check refuses."""
        def job_outcome(values):
            objects = self.objects(self.render(values))
            job = next(doc for _, doc in objects if doc["kind"] == "Job" and doc["metadata"]["name"] == "hub-config-check")
            secret = next(doc for _, doc in objects if doc["kind"] == "Secret"
                          and doc["metadata"]["name"] == "hub-config-check")
            if job["metadata"]["annotations"]["helm.sh/hook"] != "pre-install,pre-upgrade":
                self.fail(f"the config check Job is not a pre-install/pre-upgrade hook: {job['metadata']}")
            if base64.b64decode(secret["data"]["values.yaml"]).decode() != self.hub_config(objects):
                self.fail("the config check Job checks another config than the hub gets")
            args = job["spec"]["template"]["spec"]["containers"][0]["args"]
            with tempfile.TemporaryDirectory() as folder:
                path = pathlib.Path(folder) / "values.yaml"
                path.write_bytes(base64.b64decode(secret["data"]["values.yaml"]))
                command = [self.wasmhub] + [str(path) if arg.endswith("values.yaml") else arg for arg in args]
                return subprocess.run(command, capture_output=True, text=True)
        if job_outcome({}).returncode != 0:
            self.fail("the config check Job fails for the default values")
        refused = job_outcome({"proxy": {"https": {"enabled": True, "type": "letsencrypt", "hosts": ["a.example"]}}})
        if refused.returncode == 0 or "proxy.https.type" not in refused.stdout + refused.stderr:
            self.fail(f"letsencrypt passed the config check Job, or without naming the key: {refused.stderr}")

    def check_effects(self):
        """Every key the chart reads changes what it creates: each value below, set over the base it needs, changes
        some object other than the hub's config file (which holds every value) and its checksum."""
        def nested(path, value):
            for key in reversed(path.split(".")):
                value = {key: value}
            return value

        def objects_apart_from_the_config(values):
            kept = []
            for _, doc in self.objects(self.render(values)):
                if doc["kind"] == "Secret" and "values.yaml" in doc.get("data", {}):
                    continue
                doc = copy.deepcopy(doc)
                annotations = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
                annotations.pop("checksum/config", None)
                kept.append(doc)
            return json.dumps(kept, sort_keys=True)

        image = {"name": "example.org/x", "tag": "9", "pullPolicy": "Always"}
        probe = {"initialDelaySeconds": 7, "periodSeconds": 7, "failureThreshold": 7, "timeoutSeconds": 7}
        policy = {"ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}],
                  "allowedIngressPorts": [9999], "interNamespaceAccessLabels": "accept",
                  "egressAllowRules": {"cloudMetadataServer": True, "dnsPortsCloudMetadataServer": False,
                                       "dnsPortsKubeSystemNamespace": False, "dnsPortsPrivateIPs": False,
                                       "nonPrivateIPs": False, "privateIPs": True}}
        pdb_on = {"enabled": True}
        cases = [("fullnameOverride", "jh", {}), ("rbac.create", False, {}), ("imagePullSecrets", ["r"], {}),
                 ("wasmhub.proxy.defaultTargetHold", 5, {}), ("wasmhub.proxy.logFormat", "text", {}),
                 ("wasmhub.policies.files", {"a.yaml": "hook: cull\n"}, {}),
                 ("wasmhub.policies.binaryFiles", {"c/a.wasm": "AGFzbQ=="}, {}),
                 ("singleuser.networkTools.image", image, {}), ("singleuser.image", image, {}),
                 ("hub.service", {"type": "NodePort", "annotations": {"a": "b"}}, {}),
                 ("hub.db.pvc", {"accessModes": ["ReadWriteMany"], "storage": "5Gi", "storageClassName": "fast",
                                 "annotations": {"a": "b"}, "selector": {"matchLabels": {"a": "b"}}}, {}),
                 ("hub.deploymentStrategy", {"type": "RollingUpdate"}, {}),
                 ("proxy.deploymentStrategy", {"type": "RollingUpdate"}, {}),
                 ("proxy.labels", {"a": "b"}, {}), ("proxy.annotations", {"a": "b"}, {}),
                 ("proxy.service", {"type": "NodePort", "labels": {"a": "b"}, "annotations": {"a": "b"},
                                    "nodePorts": {"http": 30080}, "extraPorts": [{"name": "x", "port": 9}]}, {}),
                 ("proxy.service.loadBalancerIP", "192.0.2.1", {}),
                 ("proxy.service.loadBalancerSourceRanges", ["192.0.2.0/24"], {}),
                 ("proxy.service.disableHttpPort", True,
                  nested("proxy.https", {"enabled": True, "type": "offload"})),
                 ("proxy.service.nodePorts.https", 30443,
                  merged(nested("proxy.https", {"enabled": True, "type": "offload"}),
                         nested("proxy.service.type", "NodePort"))),
                 ("proxy.chp.defaultTarget", "http://elsewhere:8081", {}),
                 ("proxy.chp.errorTarget", "http://elsewhere:8081/error", {}),
                 ("proxy.chp.extraCommandLineFlags", ["--timeout=1000"], {}),
                 ("scheduling.userScheduler", {"replicas": 3, "logLevel": 2, "image": image, "resources": {"limits": {"cpu": "1"}},
                                               "plugins": {"score": {}}, "pluginConfig": []}, {}),
                 ("scheduling.userScheduler.pdb", {"enabled": False}, {}),
                 ("scheduling.userScheduler.pdb.maxUnavailable", 2, {}),
                 ("scheduling.podPriority", {"globalDefault": True, "defaultPriority": 5, "imagePullerPriority": -1,
                                             "userPlaceholderPriority": -2}, nested("scheduling.podPriority.enabled", True)),
                 ("scheduling.userPlaceholder", {"replicas": 2, "resources": {"requests": {"cpu": "1"}}}, {}),
                 ("scheduling.userPlaceholder.enabled", False, {}),
                 ("scheduling.corePods.tolerations", [{"key": "x", "operator": "Exists"}], {}),
                 ("scheduling.corePods.nodeAffinity.matchNodePurpose", "ignore", {}),
                 ("scheduling.userPods.tolerations", [{"key": "x", "operator": "Exists"}], {}),
                 ("prePuller.hook", {"image": image, "podSchedulingWaitDuration": 3,
                                     "resources": {"limits": {"cpu": "1"}}}, {}),
                 ("prePuller.continuous.enabled", False, {}), ("prePuller.pause.image", image, {}),
                 ("prePuller.extraImages", {"x": image}, {}),
                 ("prePuller.pullProfileListImages", False,
                  nested("singleuser.profileList", [{"display_name": "x", "kubespawner_override": {"image": "e.org/p:1"}}])),
                 ("ingress", {"annotations": {"a": "b"}, "ingressClassName": "nginx", "hosts": ["h.example"],
                              "pathSuffix": "x", "pathType": "ImplementationSpecific", "tls": [{"hosts": ["h.example"]}]},
                  nested("ingress.enabled", True))]
        for component in ("hub", "proxy.chp"):
            cases += [(f"{component}.image", image, {}), (f"{component}.resources", {"limits": {"cpu": "1"}}, {}),
                      (f"{component}.nodeSelector", {"a": "b"}, {}),
                      (f"{component}.tolerations", [{"key": "x", "operator": "Exists"}], {}),
                      (f"{component}.livenessProbe", probe, {}), (f"{component}.readinessProbe", probe, {}),
                      (f"{component}.livenessProbe.enabled", False, {}),
                      (f"{component}.readinessProbe.enabled", False, {}),
                      (f"{component}.pdb.enabled", True, {}),
                      (f"{component}.pdb.maxUnavailable", 1, nested(f"{component}.pdb", pdb_on)),
                      (f"{component}.pdb.minAvailable", 0, nested(f"{component}.pdb", pdb_on)),
                      (f"{component}.networkPolicy.enabled", False, {})]
        for component in ("hub", "proxy.chp", "singleuser"):
            cases += [(f"{component}.networkPolicy.{key}", value, {}) for key, value in policy.items()
                      if key != "egressAllowRules"]
            cases += [(f"{component}.networkPolicy.egressAllowRules.{key}", value, {})
                      for key, value in policy["egressAllowRules"].items()]
        for path, value, base in cases:
            if objects_apart_from_the_config(base) == objects_apart_from_the_config(merged(base, nested(path, value))):
                # Some egress rules are already what the component's default is; flip them the other way.
                if isinstance(value, bool) and objects_apart_from_the_config(base) != objects_apart_from_the_config(
                        merged(base, nested(path, not value))):
                    continue
                self.fail(f"{path}: {value!r} changes nothing the chart creates")

    def check_schema(self):
        """values.schema.json, generated from host/config, refuses a value of the wrong type at install."""
        for values, where in [({"cull": {"timeout": "soon"}}, "/cull/timeout"),
                              ({"hub": {"db": {"type": "oracle"}}}, "/hub/db/type")]:
            try:
                self.render(values)
                self.fail(f"{values}: accepted")
            except helm.HelmError as error:
                if where not in str(error):
                    self.fail(f"{values}: the error does not name {where}: {error}")

    def check_checksums(self):
        """A hub config change restarts the hub (its checksum changes) and leaves the proxy alone."""
        def annotations(values):
            pods = {doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["annotations"]
                    for _, doc in self.objects(self.render(values)) if doc["kind"] == "Deployment"}
            return pods["hub"], pods["proxy"]
        hub_before, proxy_before = annotations({})
        hub_after, proxy_after = annotations({"hub": {"config": {"Authenticator": {"admin_users": ["alice"]}}}})
        if hub_before["checksum/config"] == hub_after["checksum/config"]:
            self.fail("a hub config change left the hub's checksum/config unchanged")
        if proxy_before != proxy_after:
            self.fail("a hub config change changed the proxy's annotations (it would restart the proxy)")
        _, proxy_hold = annotations({"wasmhub": {"proxy": {"defaultTargetHold": 5}}})
        if proxy_hold == proxy_before:
            self.fail("a change of the proxy's settings left its annotations unchanged")

    def check_settings(self):
        """Keys the chart reads have their effect on the objects."""
        objects = self.objects(self.render({"wasmhub": {"proxy": {"defaultTargetHold": 7}},
                                            "hub": {"db": {"type": "postgres", "url": "postgres://db/hub"}}}))
        by_name = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in objects}
        proxy = by_name[("Deployment", "proxy")]["spec"]["template"]["spec"]["containers"][0]
        if "--default-target-hold=7" not in proxy["args"]:
            self.fail(f"wasmhub.proxy.defaultTargetHold: not on the proxy's command line: {proxy['args']}")
        hub = by_name[("Deployment", "hub")]["spec"]
        if hub["strategy"]["type"] != "RollingUpdate" or ("PersistentVolumeClaim", "hub-db-dir") in by_name:
            self.fail("hub.db.type postgres: expected a RollingUpdate hub and no hub-db-dir claim")
        config = yaml.safe_load(self.hub_config(objects))
        blocked = config["singleuser"]["initContainers"][0]
        if blocked["name"] != "block-cloud-metadata" or "169.254.169.254" not in blocked["command"]:
            self.fail(f"singleuser.cloudMetadata.blockWithIptables: no init container in {blocked}")
        config = yaml.safe_load(self.hub_config(self.objects(self.render({"singleuser": {"cloudMetadata": {"ip": "169.254.0.1"}}}))))
        if "169.254.0.1" not in config["singleuser"]["initContainers"][0]["command"]:
            self.fail("singleuser.cloudMetadata.ip: the init container blocks another address")
        objects = self.objects(self.render({"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}))
        if self.hub_config(objects).count("block-cloud-metadata"):
            self.fail("singleuser.cloudMetadata.blockWithIptables: false still blocks")

        # The user scheduler runs and user pods name it; podPriority gives them a class; placeholders use both.
        def scheduling(values):
            objects = self.objects(self.render(values))
            kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in objects}
            spawner = yaml.safe_load(self.hub_config(objects))["hub"]["config"].get("KubeSpawner") or {}
            return kinds, spawner
        kinds, spawner = scheduling({"scheduling": {"podPriority": {"enabled": True},
                                                    "userPlaceholder": {"replicas": 2}}})
        for wanted in [("Deployment", "user-scheduler"), ("PriorityClass", "jhub-default-priority"),
                       ("PriorityClass", "jhub-user-placeholder-priority"), ("StatefulSet", "user-placeholder")]:
            if wanted not in kinds:
                self.fail(f"scheduling: no {wanted[0]}/{wanted[1]}")
        if spawner.get("scheduler_name") != "jhub-user-scheduler" or \
                spawner.get("priority_class_name") != "jhub-default-priority":
            self.fail(f"scheduling: user pods are not sent to the user scheduler with a priority: {spawner}")
        kinds, spawner = scheduling({"scheduling": {"userScheduler": {"enabled": False},
                                                    "userPlaceholder": {"enabled": False}},
                                     "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}}})
        if "scheduler_name" in spawner or any(name in {"user-scheduler", "user-placeholder", "hook-image-puller",
                                                       "continuous-image-puller"} for _, name in kinds):
            self.fail(f"switched off, still there: {sorted(kinds)} {spawner}")

        # rbac.create: false leaves the Roles to the operator; imagePullSecrets and corePods reach the chart's pods.
        objects = self.objects(self.render({"rbac": {"create": False}, "imagePullSecrets": ["registry"],
                                            "scheduling": {"corePods": {"nodeAffinity": {"matchNodePurpose": "require"}}},
                                            "hub": {"tolerations": [{"key": "site", "operator": "Exists"}]}}))
        kinds = {doc["kind"] for _, doc in objects}
        if kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}:
            self.fail(f"rbac.create: false still creates {kinds & {'Role', 'RoleBinding', 'ClusterRole'}}")
        hub_pod = next(doc for _, doc in objects if doc["kind"] == "Deployment"
                       and doc["metadata"]["name"] == "hub")["spec"]["template"]["spec"]
        if hub_pod.get("imagePullSecrets") != [{"name": "registry"}]:
            self.fail(f"imagePullSecrets: not on the hub pod: {hub_pod.get('imagePullSecrets')}")
        if "requiredDuringSchedulingIgnoredDuringExecution" not in hub_pod.get("affinity", {}).get("nodeAffinity", {}):
            self.fail(f"scheduling.corePods.nodeAffinity.matchNodePurpose: require not applied: {hub_pod.get('affinity')}")
        keys = [toleration.get("key") for toleration in hub_pod.get("tolerations", [])]
        if keys != ["hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated", "site"]:
            self.fail(f"the hub's tolerations are not corePods' then hub.tolerations: {keys}")

        # egressAllowRules: an explicit false closes what the component's default opens, a true opens.
        objects = self.objects(self.render({
            "hub": {"networkPolicy": {"egressAllowRules": {"nonPrivateIPs": False}}},
            "singleuser": {"networkPolicy": {"egressAllowRules": {"privateIPs": True}}}}))
        policies = {doc["metadata"]["name"]: json.dumps(doc["spec"]["egress"]) for _, doc in objects
                    if doc["kind"] == "NetworkPolicy"}
        if "0.0.0.0/0" in policies["hub"]:
            self.fail("hub.networkPolicy.egressAllowRules.nonPrivateIPs: false still allows every address")
        private_rule = [rule for rule in json.loads(policies["singleuser"]) if "ports" not in rule
                        and any(peer.get("ipBlock", {}).get("cidr") == "10.0.0.0/8" for peer in rule["to"])]
        if not private_rule:
            self.fail(f"singleuser.networkPolicy.egressAllowRules.privateIPs: true opens nothing: {policies['singleuser']}")

        # Every image of the profiles is pulled ahead, by the hook and on nodes that join later.
        objects = self.objects(self.render({"singleuser": {"profileList": [
            {"display_name": "GPU", "kubespawner_override": {"image": "example.org/gpu:1"},
             "profile_options": {"flavour": {"display_name": "Flavour", "choices": {
                 "r": {"display_name": "R", "kubespawner_override": {"image": "example.org/r:2"}}}}}}]},
            "prePuller": {"extraImages": {"tools": {"name": "example.org/tools", "tag": "3"}}}}))
        for puller in ("hook-image-puller", "continuous-image-puller"):
            daemonset = next(doc for _, doc in objects if doc["metadata"]["name"] == puller)
            pulled = {c["image"] for c in daemonset["spec"]["template"]["spec"]["initContainers"]}
            for image in ("example.org/gpu:1", "example.org/r:2", "example.org/tools:3"):
                if image not in pulled:
                    self.fail(f"{puller} does not pull {image}: {sorted(pulled)}")


def print_manifest(checks, values_files):
    """Prints the objects the chart renders for `values_files` (merged in order), as one JSON list, for the
    end-to-end test that runs them."""
    values = {}
    for path in values_files:
        values = merged(values, yaml.safe_load(pathlib.Path(path).read_text()) or {})
    print(json.dumps([doc for _, doc in checks.objects(checks.render(values))]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("check")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--wasmhub", required=True)
    parser.add_argument("--values", action="append", default=[])
    args = parser.parse_args()
    checks = Checks(args.repo, args.wasmhub)
    if args.check == "manifest":
        print_manifest(checks, args.values)
        return
    getattr(checks, f"check_{args.check}")()
    for failure in checks.failures:
        print(failure)
    sys.exit(1 if checks.failures else 0)


if __name__ == "__main__":
    main()
