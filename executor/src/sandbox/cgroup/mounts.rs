//! Where this process's cgroups are: the cgroup mounts (/proc/self/mountinfo) joined with
//! the process's own cgroup paths (/proc/self/cgroup).

use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub(super) struct Mounts {
    /// (mount point, root of the mount within the hierarchy, super options) of v1 mounts.
    v1: Vec<(PathBuf, String, Vec<String>)>,
    /// (mount point, root within the hierarchy) of the cgroup2 mount, if any.
    v2: Option<(PathBuf, String)>,
    /// (controllers, path) of each line of /proc/self/cgroup; controllers empty for v2.
    own: Vec<(Vec<String>, String)>,
}

impl Mounts {
    pub(super) fn read() -> Mounts {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Mounts::parse(&mountinfo, &own)
    }

    fn parse(mountinfo: &str, own: &str) -> Mounts {
        let mut mounts = Mounts::default();
        for mount in crate::sandbox::mountinfo::parse(mountinfo) {
            match mount.fstype.as_str() {
                "cgroup2" if mounts.v2.is_none() => mounts.v2 = Some((mount.point, mount.root)),
                "cgroup" => mounts.v1.push((mount.point, mount.root, mount.super_options)),
                _ => {}
            }
        }
        for line in own.lines() {
            // `id:controllers:path`
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let controllers = controllers.split(',').filter(|c| !c.is_empty()).map(String::from).collect();
            mounts.own.push((controllers, path.to_string()));
        }
        mounts
    }

    /// The directory of this process's cgroup in the v1 hierarchy of `controller`.
    pub(super) fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        let (point, root, _) = self.v1.iter().find(|(_, _, options)| options.iter().any(|o| o == controller))?;
        let (_, path) = self.own.iter().find(|(controllers, _)| controllers.iter().any(|c| c == controller))?;
        Some(join_below(point, root, path))
    }

    /// The directory of this process's cgroup in the cgroup2 hierarchy.
    pub(super) fn v2_dir(&self) -> Option<PathBuf> {
        let (point, root) = self.v2.as_ref()?;
        let (_, path) = self.own.iter().find(|(controllers, path)| controllers.is_empty() && !path.is_empty())?;
        Some(join_below(point, root, path))
    }
}

/// `point` + (`path` below the mount's `root`). A path outside the mount's root (another
/// cgroup namespace) falls back to the mount point itself, which is then our own root.
fn join_below(point: &Path, root: &str, path: &str) -> PathBuf {
    let relative = if root == "/" { Some(path) } else { path.strip_prefix(root) };
    let relative = relative.unwrap_or("/").trim_start_matches('/');
    let dir = point.join(relative);
    if dir.is_dir() {
        dir
    } else {
        point.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_directories_join_the_mount_and_our_path() {
        let m = Mounts::parse(MOUNTINFO, OWN);
        assert_eq!(m.v1.len(), 3);
        assert_eq!(m.v2.as_ref().map(|(p, _)| p.clone()), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(m.own[1], (vec!["memory".to_string()], "/process_api/abc".to_string()));
        assert_eq!(m.v1_dir("nosuch"), None);
    }
}
