//! Every missing-path watch of the server and the inotify watches they hold. A watch is
//! armed on the nearest existing directory above each of its paths, and re-checked (and
//! re-armed one level deeper) whenever an entry that leads to one of its paths appears.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, Inotify, InotifyEvent, WatchDescriptor};

use crate::notify::NotificationSink;

/// A watch, named by the session that owns it and the client's watch id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub owner: u64,
    pub watch_id: u64,
}

/// Entries appearing in a watched directory (created, or moved in), and the directory
/// itself going away or moving (the watch then re-anchors higher up). `IN_ONLYDIR` because a
/// directory replaced by a file between the check and the arm must not be watched as one.
const MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// Directories that keep changing under a watch faster than it can be re-armed make it give
/// up on inotify after this many rounds and fall back to polling.
const MAX_ARM_ROUNDS: usize = 16;

/// For each directory to watch, the names below it that lead to a missing path.
type Plan = BTreeMap<PathBuf, BTreeSet<OsString>>;

struct Watch {
    paths: Vec<PathBuf>,
    /// The inotify watches held, each with the names that matter below it.
    armed: HashMap<WatchDescriptor, BTreeSet<OsString>>,
    /// Inotify does not fully cover this watch (no instance, watch limit reached, a
    /// directory that cannot be watched): the poll tick re-checks it.
    polling: bool,
    sink: Arc<NotificationSink>,
}

/// A watch that fired and was removed: where its `fs/missingChanged` goes.
pub struct Fired {
    pub sink: Arc<NotificationSink>,
    pub watch_id: u64,
}

#[derive(Default)]
pub struct Watches {
    inotify: Option<Arc<Inotify>>,
    by_owner: HashMap<u64, HashMap<u64, Watch>>,
    /// Which watches hold each inotify watch: one directory watched for several paths or
    /// sessions is a single inotify watch, removed when its last user lets go.
    users: HashMap<WatchDescriptor, HashSet<Key>>,
}

/// Whether anything (even a dangling symlink) is at `path`.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The nearest ancestor of `path` that is a directory, and the name below it that leads to
/// `path`. An ancestor that exists but is not a directory is skipped: it has to be replaced
/// for `path` to appear, which its own parent sees.
fn anchor(path: &Path) -> Option<(PathBuf, OsString)> {
    let mut child = path;
    for parent in path.ancestors().skip(1) {
        if parent.is_dir() {
            return Some((parent.to_path_buf(), child.file_name()?.to_os_string()));
        }
        child = parent;
    }
    None
}

fn plan(paths: &[PathBuf]) -> Plan {
    let mut plan = Plan::new();
    for (dir, name) in paths.iter().filter_map(|p| anchor(p)) {
        plan.entry(dir).or_default().insert(name);
    }
    plan
}

impl Watches {
    /// Uses `inotify` for the watches armed from now on (`None`: polling only).
    pub fn set_inotify(&mut self, inotify: Option<Arc<Inotify>>) {
        self.inotify = inotify;
    }

    pub fn count(&self, owner: u64) -> usize {
        self.by_owner.get(&owner).map_or(0, HashMap::len)
    }

    pub fn is_empty(&self) -> bool {
        self.by_owner.is_empty()
    }

    fn all_keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.by_owner.iter().flat_map(|(owner, watches)| watches.keys().map(|id| Key { owner: *owner, watch_id: *id }))
    }

    pub fn polling_keys(&self) -> Vec<Key> {
        self.all_keys().filter(|k| self.get(*k).is_some_and(|w| w.polling)).collect()
    }

    fn get(&self, key: Key) -> Option<&Watch> {
        self.by_owner.get(&key.owner)?.get(&key.watch_id)
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut Watch> {
        self.by_owner.get_mut(&key.owner)?.get_mut(&key.watch_id)
    }

    /// Adds a watch (replacing one with the same key) and arms it; `Some` when one of its
    /// paths appeared meanwhile, in which case it has already ended.
    pub fn insert(&mut self, key: Key, paths: Vec<PathBuf>, sink: Arc<NotificationSink>) -> Option<Fired> {
        self.remove(key);
        let watch = Watch { paths, armed: HashMap::new(), polling: false, sink };
        self.by_owner.entry(key.owner).or_default().insert(key.watch_id, watch);
        self.refresh(key)
    }

    /// Ends a watch, releasing its inotify watches.
    pub fn remove(&mut self, key: Key) -> Option<Arc<NotificationSink>> {
        let owned = self.by_owner.get_mut(&key.owner)?;
        let watch = owned.remove(&key.watch_id)?;
        if owned.is_empty() {
            self.by_owner.remove(&key.owner);
        }
        for wd in watch.armed.keys() {
            self.release(key, *wd);
        }
        Some(watch.sink)
    }

    pub fn remove_owner(&mut self, owner: u64) {
        let ids: Vec<u64> = self.by_owner.get(&owner).map(|w| w.keys().copied().collect()).unwrap_or_default();
        for watch_id in ids {
            self.remove(Key { owner, watch_id });
        }
    }

    fn release(&mut self, key: Key, wd: WatchDescriptor) {
        let Some(users) = self.users.get_mut(&wd) else { return };
        users.remove(&key);
        if users.is_empty() {
            self.users.remove(&wd);
            if let Some(inotify) = &self.inotify {
                // Fails only when the kernel already dropped it (directory deleted).
                let _ = inotify.rm_watch(wd);
            }
        }
    }

    /// Fires the watch if one of its paths exists; otherwise arms it on the directories
    /// where its paths would appear, until that placement no longer changes under it.
    pub fn refresh(&mut self, key: Key) -> Option<Fired> {
        let mut armed_on: Option<Plan> = None;
        for _ in 0..MAX_ARM_ROUNDS {
            let watch = self.get(key)?;
            if watch.paths.iter().any(|p| exists(p)) {
                let sink = self.remove(key)?;
                return Some(Fired { sink, watch_id: key.watch_id });
            }
            let now = plan(&watch.paths);
            // Armed on `now` and nothing appeared after arming: every later change that
            // matters produces an event.
            if armed_on.as_ref() == Some(&now) {
                return None;
            }
            self.arm(key, &now);
            armed_on = Some(now);
        }
        tracing::debug!(watch = key.watch_id, "directories keep changing under a missing-path watch; polling it");
        if let Some(watch) = self.get_mut(key) {
            watch.polling = true;
        }
        None
    }

    /// Replaces the watch's inotify watches by those of `plan`.
    fn arm(&mut self, key: Key, plan: &Plan) {
        let mut armed: HashMap<WatchDescriptor, BTreeSet<OsString>> = HashMap::new();
        let mut complete = self.inotify.is_some();
        if let Some(inotify) = self.inotify.clone() {
            for (dir, names) in plan {
                match inotify.add_watch(dir.as_path(), MASK) {
                    Ok(wd) => {
                        armed.entry(wd).or_default().extend(names.iter().cloned());
                        self.users.entry(wd).or_default().insert(key);
                    }
                    Err(e) => {
                        complete = false;
                        log_arm_failure(dir, e);
                    }
                }
            }
        }
        let Some(watch) = self.get_mut(key) else { return };
        watch.polling = !complete;
        let old = std::mem::replace(&mut watch.armed, armed);
        let dropped: Vec<WatchDescriptor> = old.into_keys().filter(|wd| !watch.armed.contains_key(wd)).collect();
        for wd in dropped {
            self.release(key, wd);
        }
    }

    /// The watches an inotify event may concern: those waiting for the event's name in that
    /// directory, or all users of the directory when the directory itself changed.
    pub fn affected(&mut self, events: &[InotifyEvent]) -> HashSet<Key> {
        let mut keys = HashSet::new();
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                // Events were lost: re-check everything.
                return self.all_keys().collect();
            }
            if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                keys.extend(self.forget_descriptor(event.wd));
                continue;
            }
            let Some(users) = self.users.get(&event.wd) else { continue };
            for key in users {
                let wanted = match &event.name {
                    Some(name) => self.get(*key).and_then(|w| w.armed.get(&event.wd)).is_some_and(|n| n.contains(name)),
                    None => true,
                };
                if wanted {
                    keys.insert(*key);
                }
            }
        }
        keys
    }

    /// The kernel dropped `wd` (its directory was deleted or unmounted); returns its users.
    fn forget_descriptor(&mut self, wd: WatchDescriptor) -> HashSet<Key> {
        let users = self.users.remove(&wd).unwrap_or_default();
        for key in &users {
            if let Some(watch) = self.get_mut(*key) {
                watch.armed.remove(&wd);
            }
        }
        users
    }

    /// Inotify stopped working: every watch falls back to polling.
    pub fn drop_inotify(&mut self) {
        self.inotify = None;
        self.users.clear();
        for watch in self.by_owner.values_mut().flat_map(HashMap::values_mut) {
            watch.armed.clear();
            watch.polling = true;
        }
    }

    pub fn refresh_all(&mut self, keys: impl IntoIterator<Item = Key>) -> Vec<Fired> {
        keys.into_iter().filter_map(|key| self.refresh(key)).collect()
    }
}

fn log_arm_failure(dir: &Path, e: Errno) {
    if e == Errno::ENOSPC {
        tracing::warn!(dir = %dir.display(), "inotify watch limit reached (fs.inotify.max_user_watches); polling instead");
    } else {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; polling instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_is_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c");
        assert_eq!(anchor(&deep), Some((dir.path().to_path_buf(), OsString::from("a"))));
        std::fs::write(dir.path().join("f"), b"").expect("write");
        // Below a regular file: its parent watches for the file's name.
        let below_file = dir.path().join("f/x");
        assert_eq!(anchor(&below_file), Some((dir.path().to_path_buf(), OsString::from("f"))));
    }
}
