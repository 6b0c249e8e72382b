//! The chart end to end (issue 15): the hub and proxy Deployments exactly as the chart renders them for the
//! seed's dummy-authenticator fragment (command, arguments, environment, volumes, uid), each run as a process
//! that sees what its pod would: a read-only root, the rendered Secret and ConfigMap mounted where the pod mounts
//! them, tmpfs for each `emptyDir`, the cluster's Service names (`tests/src/pod.rs`). Against the fake API server
//! with the chart's Role enforced, as RBAC would, a user logs in through the proxy, gets a pod (a real
//! `jupyterhub-singleuser`) and runs `1+1` in JupyterLab; no call of the hub was refused, one outside the Role is.
//! The test's only additions to the values: the dummy password and where the fake cluster's kubeconfig is mounted.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use serde_json::Value;
use wasmhub_system_tests::hub_client::{Browser, PASSWORD, Site, use_jupyterlab};
use wasmhub_system_tests::pod::{self, PodSpec};
use wasmhub_system_tests::{ChildGuard, venv_bin, wasmhub_bin};
use wasmhub_testkit::fake_k8s::{AccessRule, FakeApiServer, FakeConfig, PodMatch, ProcessBacking, Scenario};

const NAMESPACE: &str = "jhub";
/// Where the test mounts the fake cluster's kubeconfig in the hub's pod (in a cluster: the service account).
const KUBECONFIG_PATH: &str = "/var/run/secrets/fake-cluster/kubeconfig";

/// The chart's public port: the proxy container's `http` port, which `proxy-public` forwards port 80 to.
struct ChartSite {
    port: u16,
}

impl Site for ChartSite {
    fn public_port(&self) -> u16 {
        self.port
    }
    fn base_path(&self) -> &str {
        ""
    }
}

/// The objects the chart renders for the seed's dummy-authenticator fragment and the test's additions.
fn render(work: &Path) -> Result<Vec<Value>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the repository")?;
    let additions = work.join("test-values.yaml");
    std::fs::write(
        &additions,
        format!(
            "hub:\n  config:\n    DummyAuthenticator:\n      password: {PASSWORD}\nwasmhub:\n  kubernetes:\n    \
             kubeconfig: {KUBECONFIG_PATH}\n"
        ),
    )?;
    let output = Command::new(venv_bin("k8s").join("python"))
        .arg(repo.join("tests/chart/chart_checks.py"))
        .args(["manifest", "--repo"])
        .arg(repo)
        .args(["--wasmhub", "-", "--values"])
        .arg(repo.join("deploy/examples/dummy-authenticator.yaml"))
        .arg("--values")
        .arg(&additions)
        .output()?;
    ensure!(output.status.success(), "rendering the chart: {}", String::from_utf8_lossy(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .with_context(|| format!("the chart rendered no {kind}/{name}"))
}

fn text_map(object: &Value, field: &str, decode: bool) -> Result<HashMap<String, Vec<u8>>> {
    let mut files = HashMap::new();
    for (key, value) in object[field].as_object().into_iter().flatten() {
        let text = value.as_str().context("a data value")?;
        let bytes =
            if decode { base64::engine::general_purpose::STANDARD.decode(text)? } else { text.as_bytes().to_vec() };
        files.insert(key.clone(), bytes);
    }
    Ok(files)
}

/// The container of `deployment` as a [`PodSpec`]: its volumes made as the kubelet makes them under `work`.
fn pod_spec(objects: &[Value], deployment: &str, work: &Path) -> Result<PodSpec> {
    let template = &find(objects, "Deployment", deployment)?["spec"]["template"]["spec"];
    let container = &template["containers"][0];
    let uid = template["securityContext"]["runAsUser"].as_u64().context("runAsUser")? as u32;
    // Services give every pod NAME_SERVICE_HOST and NAME_SERVICE_PORT; args expand $(NAME) from the environment.
    let mut env: Vec<(String, String)> = Vec::new();
    for service in objects.iter().filter(|object| object["kind"] == "Service") {
        let name = service["metadata"]["name"].as_str().unwrap_or_default().to_uppercase().replace('-', "_");
        env.push((format!("{name}_SERVICE_HOST"), "127.0.0.1".into()));
        env.push((format!("{name}_SERVICE_PORT"), service["spec"]["ports"][0]["port"].to_string()));
    }
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().context("env name")?.to_owned();
        let value = if let Some(value) = variable["value"].as_str() {
            value.to_owned()
        } else if variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            NAMESPACE.to_owned()
        } else if let Some(secret) = variable["valueFrom"]["secretKeyRef"].as_object() {
            let data = text_map(find(objects, "Secret", secret["name"].as_str().unwrap_or_default())?, "data", true)?;
            String::from_utf8(data.get(secret["key"].as_str().unwrap_or_default()).context("secret key")?.clone())?
        } else {
            bail!("an environment variable the test cannot provide: {variable}");
        };
        env.push((name, value));
    }
    let expand =
        |arg: &str| env.iter().fold(arg.to_owned(), |arg, (name, value)| arg.replace(&format!("$({name})"), value));
    let mut args: Vec<String> = Vec::new();
    for list in ["command", "args"] {
        args.extend(container[list].as_array().into_iter().flatten().filter_map(Value::as_str).map(expand));
    }

    let volumes: HashMap<&str, &Value> = template["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|volume| Some((volume["name"].as_str()?, volume)))
        .collect();
    let mut mounts = Vec::new();
    let mut empty_dirs = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let (name, path) =
            (mount["name"].as_str().unwrap_or_default(), mount["mountPath"].as_str().unwrap_or_default());
        let volume = volumes.get(name).with_context(|| format!("volume {name}"))?;
        let read_only = mount["readOnly"] == true;
        let source = work.join(format!("{deployment}-volume-{name}"));
        std::fs::create_dir_all(&source)?;
        let files = if let Some(secret) = volume["secret"]["secretName"].as_str() {
            Some((text_map(find(objects, "Secret", secret)?, "data", true)?, &volume["secret"]["items"]))
        } else if let Some(map) = volume["configMap"]["name"].as_str() {
            let object = find(objects, "ConfigMap", map)?;
            let mut files = text_map(object, "data", false)?;
            files.extend(text_map(object, "binaryData", true)?);
            Some((files, &volume["configMap"]["items"]))
        } else if volume.get("emptyDir").is_some() {
            empty_dirs.push(path.to_owned());
            continue;
        } else if volume.get("persistentVolumeClaim").is_some() {
            // A fresh volume, writable by the pod's fsGroup.
            std::os::unix::fs::chown(&source, Some(uid), Some(uid))?;
            None
        } else {
            bail!("a volume the test cannot provide: {volume}");
        };
        if let Some((files, items)) = files {
            // `items` picks keys and names their paths; without it every key is a file.
            let chosen: Vec<(String, String)> = match items.as_array() {
                Some(items) => items
                    .iter()
                    .map(|item| {
                        (
                            item["key"].as_str().unwrap_or_default().into(),
                            item["path"].as_str().unwrap_or_default().into(),
                        )
                    })
                    .collect(),
                None => files.keys().map(|key| (key.clone(), key.clone())).collect(),
            };
            for (key, relative) in chosen {
                let target = source.join(&relative);
                std::fs::create_dir_all(target.parent().context("parent")?)?;
                std::fs::write(&target, files.get(&key).with_context(|| format!("{name}: no key {key}"))?)?;
            }
        }
        chmod_readable(&source)?;
        mounts.push((source, path.to_owned(), read_only));
    }
    let image_program = "/usr/local/bin/wasmhub".to_owned();
    Ok(PodSpec {
        name: deployment.to_owned(),
        program: wasmhub_bin(),
        program_path: image_program,
        args,
        env,
        mounts,
        empty_dirs,
        hosts: objects
            .iter()
            .filter(|object| object["kind"] == "Service")
            .filter_map(|service| service["metadata"]["name"].as_str().map(str::to_owned))
            .collect(),
        uid,
    })
}

/// Files 0644 and folders 0755, as the kubelet writes secret and ConfigMap volumes (defaultMode 0644).
fn chmod_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chmod_readable(&entry?.path())?;
        }
    }
    Ok(())
}

/// The proxy container's port named `name`.
fn container_port(objects: &[Value], deployment: &str, name: &str) -> Result<u16> {
    let container = &find(objects, "Deployment", deployment)?["spec"]["template"]["spec"]["containers"][0];
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|port| port["name"] == name)
        .and_then(|port| port["containerPort"].as_u64())
        .map(|port| port as u16)
        .with_context(|| format!("{deployment} has no port {name}"))
}

/// A JSON list of strings.
fn strings(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn log_of(work: &Path, name: &str) -> String {
    std::fs::read_to_string(work.join(format!("{name}.log"))).unwrap_or_default()
}

fn status_line(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_as_rendered_brings_a_user_into_jupyterlab_under_its_role() -> Result<()> {
    ensure!(status_line(std::process::id() as i32, "Uid:").starts_with("Uid:\t0\t"), "this test needs root");
    let work = tempfile::Builder::new().prefix("wasmhub-chart-e2e").tempdir()?;
    std::fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let objects = render(work.path())?;

    // The fake cluster, whose pods run the jh5 venv's jupyterhub-singleuser and see the Services' names.
    let fake = FakeApiServer::start(FakeConfig {
        namespaces: vec![NAMESPACE.into()],
        kubelet_step: Duration::from_millis(50),
        ..FakeConfig::default()
    })
    .await?;
    let pod_hosts = work.path().join("pod-hosts");
    std::fs::write(&pod_hosts, "127.0.0.1 localhost hub proxy-api proxy-public\n")?;
    fake.set_scenario(
        PodMatch::Any,
        Scenario::Process(ProcessBacking {
            bin_dir: Some(venv_bin("jh5")),
            extra_args: vec!["--allow-root".into()],
            work_dir: work.path().join("pods"),
            command_prefix: [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
            ]
            .iter()
            .map(|part| (*part).to_owned())
            .chain([pod_hosts.display().to_string()])
            .collect(),
        }),
    );
    // The hub's Role, enforced as RBAC would.
    let role = find(&objects, "Role", "hub")?;
    let rules = role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rule| rule["apiGroups"].as_array().is_some_and(|groups| groups.iter().any(|group| group == "")))
        .map(|rule| AccessRule { resources: strings(&rule["resources"]), verbs: strings(&rule["verbs"]) })
        .collect();
    fake.enforce_access(rules);

    // The hub and the proxy, as their pods.
    let mut hub_spec = pod_spec(&objects, "hub", work.path())?;
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::copy(fake.kubeconfig_path(), &kubeconfig)?;
    chmod_readable(&kubeconfig)?;
    hub_spec.mounts.push((kubeconfig, KUBECONFIG_PATH.into(), true));
    let proxy_spec = pod_spec(&objects, "proxy", work.path())?;
    let hub: ChildGuard = pod::start(&hub_spec, work.path());
    let proxy: ChildGuard = pod::start(&proxy_spec, work.path());
    let site = ChartSite { port: container_port(&objects, "proxy", "http")? };
    let logs = || format!("--- hub\n{}\n--- proxy\n{}", log_of(work.path(), "hub"), log_of(work.path(), "proxy"));

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let answer = reqwest::get(format!("{}/hub/api/", site.prefixed_url())).await;
        if answer.is_ok_and(|response| response.status() == 200) {
            break;
        }
        ensure!(Instant::now() < deadline, "the hub did not answer through the proxy within 90 s\n{}", logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the pod's process is: its uid, and a read-only root.
    ensure!(status_line(hub.pid(), "Uid:").starts_with("Uid:\t65532\t"), "{}", status_line(hub.pid(), "Uid:"));
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", hub.pid()))?;
    let root = mounts.lines().find(|line| line.split(' ').nth(4) == Some("/")).context("the hub's root mount")?;
    ensure!(root.split(' ').nth(5).is_some_and(|options| options.split(',').any(|option| option == "ro")), "{root}");

    // user3 of the seed's fragment logs in, gets a pod and runs 1+1 in JupyterLab.
    let browser = Browser::new(&site);
    browser.log_in("user3").await.with_context(logs)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, model) = browser.hub_api(reqwest::Method::GET, "/user").await?;
        if status == 200 && model["servers"][""]["ready"] == true {
            break;
        }
        if status == 200 && model["servers"].get("").is_none() {
            let (status, body) = browser.hub_api(reqwest::Method::POST, "/users/user3/server").await?;
            ensure!(status == 201 || status == 202 || status == 400, "starting user3's server: {status} {body}");
        }
        ensure!(Instant::now() < deadline, "user3's server never became ready: {model}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    use_jupyterlab(&site, &browser, "user3", &logs()).await?;

    // The Role was enough for everything the hub did, and it is enforced.
    ensure!(fake.refused_calls().is_empty(), "calls the chart's Role refused: {:?}", fake.refused_calls());
    let secrets = reqwest::get(format!("{}/api/v1/namespaces/{NAMESPACE}/secrets", fake.url())).await?.status();
    ensure!(secrets == 403, "a call outside the Role answered {secrets}");
    drop(proxy);
    drop(hub);
    // Shown by the runner for a failing test only.
    eprintln!("{}", logs());
    Ok(())
}
