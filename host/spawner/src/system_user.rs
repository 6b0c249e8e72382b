//! The Unix account a local server runs as, JupyterHub's LocalProcessSpawner model: each hub user is the system
//! user of the same name, looked up in the password database or, when the site allows it, created on first spawn
//! (JupyterHub's `create_system_users`, here with `useradd`). The server's process switches to that user's uid,
//! gid and supplementary groups before it executes anything, so it can read neither the hub's files nor its
//! environment (`/proc/<hub>/environ`), nor another server's environment, token or home.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};

use crate::SpawnError;

/// A resolved system account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemUser {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    /// Primary and supplementary groups, as `initgroups` would set them.
    pub(crate) groups: Vec<Gid>,
    pub(crate) home: PathBuf,
    pub(crate) shell: PathBuf,
}

/// How many times `useradd` is retried when another process holds the password database's lock.
const USERADD_ATTEMPTS: u32 = 40;

/// The system user `name`, created with a private home when missing and `create` is set. Never root.
pub(crate) async fn resolve(name: &str, create: bool) -> Result<SystemUser, SpawnError> {
    let refused = |message: String| SpawnError::Failed(message);
    // Names a shell or useradd could read as options or paths never reach either.
    // Nor are `.` and `..`, which `wasmhub.local.workDir`'s `{username}` would turn into a parent folder.
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name.len() <= 32
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if !valid {
        return Err(refused(format!(
            "{name:?} is not a valid system user name: with system users, hub user names must be letters, digits, \
             '_', '-' or '.' (at most 32, not starting with '-'); map them with Authenticator.username_map"
        )));
    }
    let mut user = lookup(name)?;
    if user.is_none() && create {
        create_user(name).await?;
        user = lookup(name)?;
    }
    let Some(user) = user else {
        return Err(refused(format!(
            "There is no system user {name} to run the server as; create it, or set \
             wasmhub.local.createSystemUsers: true"
        )));
    };
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(refused(format!("System user {name} is root or in group root; servers never run as root")));
    }
    let c_name = CString::new(name).map_err(|_| refused(format!("{name:?} is not a valid system user name")))?;
    let groups = nix::unistd::getgrouplist(&c_name, user.gid)
        .map_err(|error| refused(format!("Reading the groups of system user {name}: {error}")))?;
    let system_user =
        SystemUser { name: name.to_owned(), uid: user.uid, gid: user.gid, groups, home: user.dir, shell: user.shell };
    private_home(&system_user)?;
    Ok(system_user)
}

fn lookup(name: &str) -> Result<Option<User>, SpawnError> {
    User::from_name(name).map_err(|error| SpawnError::Failed(format!("Looking up system user {name}: {error}")))
}

/// `useradd` with a home and a group of the user's own. Parallel spawns of several new users contend for the
/// password database's lock, so a failure is retried while the user still does not exist.
async fn create_user(name: &str) -> Result<(), SpawnError> {
    let mut last_error = String::new();
    for _ in 0..USERADD_ATTEMPTS {
        let output = tokio::process::Command::new("useradd")
            .args(["--create-home", "--user-group", "--shell", "/bin/bash", "--", name])
            .output()
            .await
            .map_err(|error| SpawnError::Failed(format!("Cannot run useradd to create system user {name}: {error}")))?;
        if output.status.success() || lookup(name)?.is_some() {
            tracing::info!(user = %name, "created system user");
            return Ok(());
        }
        last_error = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(SpawnError::Failed(format!("Creating system user {name} failed: {last_error}")))
}

/// The home exists, belongs to the user and is readable by the user alone (0700).
fn private_home(user: &SystemUser) -> Result<(), SpawnError> {
    let failed = |error: std::io::Error| {
        SpawnError::Failed(format!("Preparing {}'s home {}: {error}", user.name, user.home.display()))
    };
    if !user.home.is_dir() {
        std::fs::create_dir_all(&user.home).map_err(failed)?;
        nix::unistd::chown(&user.home, Some(user.uid), Some(user.gid)).map_err(|error| failed(error.into()))?;
    }
    std::fs::set_permissions(&user.home, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    Ok(())
}

/// A folder of the user's own (`wasmhub.local.workDir`): created when missing, owned by the user, 0700.
/// A concurrent spawn creating the same parent may race this one; the second spawn's failure names the folder.
pub(crate) fn private_dir(user: &SystemUser, dir: &std::path::Path) -> Result<(), SpawnError> {
    let failed = |error: std::io::Error| {
        SpawnError::Failed(format!("Preparing {}'s working directory {}: {error}", user.name, dir.display()))
    };
    // Missing parents are made traversable (0711) but not listable: the hub's umask would make them 0700, which
    // keeps the user out of their own folder.
    let missing: Vec<&std::path::Path> = dir.ancestors().take_while(|ancestor| !ancestor.exists()).collect();
    for ancestor in missing.iter().rev() {
        std::fs::create_dir(ancestor).map_err(failed)?;
        std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(0o711)).map_err(failed)?;
    }
    nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).map_err(|error| failed(error.into()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    Ok(())
}

/// Becomes `user` in the forked child, before `exec`: groups first (only root may set them), then the gid, then
/// the uid, which gives up root for good; and the usual file mode mask, not the hub's private one. It runs
/// between `fork` and `exec`, so it only makes system calls: no allocation, no locks.
pub(crate) fn become_user(user: &SystemUser) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let (groups, gid, uid) = (user.groups.clone(), user.gid, user.uid);
    move || {
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setgid(gid)?;
        nix::unistd::setuid(uid)?;
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_a_shell_could_misread_and_root_are_refused() {
        for name in ["-r", "a b", "a/b", "", ".", "..", "x".repeat(33).as_str(), "al\u{202e}ice"] {
            let error = resolve(name, false).await.unwrap_err().to_string();
            assert!(error.contains("not a valid system user name"), "{name:?}: {error}");
        }
        let error = resolve("root", false).await.unwrap_err().to_string();
        assert!(error.contains("servers never run as root"), "{error}");
        let error = resolve("no-such-user-here", false).await.unwrap_err().to_string();
        assert!(error.contains("wasmhub.local.createSystemUsers"), "{error}");
    }
}
