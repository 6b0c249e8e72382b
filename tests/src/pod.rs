//! A process that sees the filesystem a pod of the chart would see: the host's root as a read-only layer (an
//! overlay whose changes are thrown away, then remounted read-only), the volumes the Deployment mounts at their
//! paths, `emptyDir`s as writable tmpfs, the cluster's service names in `/etc/hosts`, and the container's uid
//! with no privileges, no other groups and only the environment the pod spec gives. It shares the host's network,
//! so it reaches the fake API server and other "pods" on loopback. Needs root (a mount namespace per process).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ChildGuard;

/// What one container sees and runs.
pub struct PodSpec {
    /// For messages and the log file name.
    pub name: String,
    /// The binary on the host, mounted at `program_path` (its place in the image).
    pub program: PathBuf,
    pub program_path: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Host folder or file, path in the container, read-only.
    pub mounts: Vec<(PathBuf, String, bool)>,
    /// Writable tmpfs folders (`emptyDir`).
    pub empty_dirs: Vec<String>,
    /// Names that resolve to 127.0.0.1 (the cluster's Services).
    pub hosts: Vec<String>,
    pub uid: u32,
}

/// Single quotes for `sh`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Starts the container in its own mount namespace; stdout and stderr go to `<work>/<name>.log`.
pub fn start(spec: &PodSpec, work: &Path) -> ChildGuard {
    let root = work.join(format!("{}-root", spec.name));
    let layer = work.join(format!("{}-layer", spec.name));
    let q = |path: &Path| shell_quote(path.to_str().expect("UTF-8 path"));
    let mut script = vec![
        "set -eu".to_owned(),
        format!("mkdir -p {} {}", q(&root), q(&layer)),
        format!("mount -t tmpfs tmpfs {}", q(&layer)),
        format!("mkdir {}/upper {}/work", q(&layer), q(&layer)),
        format!(
            "mount -t overlay overlay -o lowerdir=/,upperdir={}/upper,workdir={}/work {}",
            layer.display(),
            layer.display(),
            q(&root)
        ),
    ];
    for system in ["proc", "dev", "sys"] {
        script.push(format!("mount --rbind /{system} {}/{system}", q(&root)));
    }
    let mut mounts = spec.mounts.clone();
    mounts.push((spec.program.clone(), spec.program_path.clone(), true));
    // Mount points are made inside the new root, so a path through a symlink (`/var/run` is `/run`) resolves
    // there and never on the host.
    let make_inside = |kind: &str, target: &str| {
        format!(
            "inside=\"{}$(chroot {} /bin/sh -c 'mkdir -p \"$(dirname \"$0\")\" && {{ [ -e \"$0\" ] || {kind} \"$0\"; }} && readlink -f \"$0\"' {})\"",
            root.display(),
            q(&root),
            shell_quote(target)
        )
    };
    for (source, target, read_only) in &mounts {
        script.push(make_inside(if source.is_dir() { "mkdir -p" } else { "touch" }, target));
        script.push(format!("mount --bind {} \"$inside\"", q(source)));
        if *read_only {
            script.push("mount -o remount,bind,ro \"$inside\"".to_owned());
        }
    }
    for target in &spec.empty_dirs {
        script.push(make_inside("mkdir -p", target));
        script.push("mount -t tmpfs -o mode=1777 tmpfs \"$inside\"".to_owned());
    }
    let hosts = format!("127.0.0.1 localhost {}\n", spec.hosts.join(" "));
    script.push(format!("printf %s {} > {}/etc/hosts", shell_quote(&hosts), q(&root)));
    script.push(format!("mount -o remount,ro {}", q(&root)));
    let mut exec = vec![
        "exec chroot".to_owned(),
        q(&root),
        "/usr/bin/setpriv".to_owned(),
        format!("--reuid={}", spec.uid),
        format!("--regid={}", spec.uid),
        "--clear-groups".to_owned(),
        "--no-new-privs".to_owned(),
        "--".to_owned(),
        "/usr/bin/env".to_owned(),
        "-i".to_owned(),
    ];
    exec.extend(spec.env.iter().map(|(key, value)| shell_quote(&format!("{key}={value}"))));
    exec.push(shell_quote(&spec.program_path));
    exec.extend(spec.args.iter().map(|arg| shell_quote(arg)));
    script.push(exec.join(" "));

    let log = std::fs::File::create(work.join(format!("{}.log", spec.name))).expect("pod log");
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(script.join("\n"))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    ChildGuard::spawn(&spec.name, command)
}
