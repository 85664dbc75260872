//! Simulated volumes: a DOS drive letter mapped to an NT device name, like the mount
//! manager's `C:` → `\Device\HarddiskVolume3`. The filter gets an instance on each
//! volume when it starts filtering (unless its InstanceSetup callback declines).

use parking_lot::Mutex;
use portfilter_bindings::{FILE_DEVICE_DISK_FILE_SYSTEM, FLT_FSTYPE_NTFS};
use std::sync::Arc;

/// A simulated volume.
#[derive(Debug)]
pub struct Volume {
    /// Drive letter (upper case).
    pub letter: char,
    /// NT device name, e.g. `\Device\HarddiskVolume3`.
    pub device: String,
    /// `FILE_DEVICE_*` type handed to InstanceSetup.
    pub device_type: u32,
    /// `FLT_FSTYPE_*` handed to InstanceSetup.
    pub filesystem: i32,
}

static VOLUMES: Mutex<Vec<Arc<Volume>>> = Mutex::new(Vec::new());

/// The default volume table: `C:` = `\Device\HarddiskVolume3` (NTFS).
pub(crate) fn reset() {
    let mut v = VOLUMES.lock();
    v.clear();
    v.push(Arc::new(Volume {
        letter: 'C',
        device: r"\Device\HarddiskVolume3".to_owned(),
        device_type: FILE_DEVICE_DISK_FILE_SYSTEM,
        filesystem: FLT_FSTYPE_NTFS,
    }));
}

/// Adds an NTFS disk volume (before the driver starts filtering; volumes added later
/// are attached at once if the filter is already filtering).
pub fn add(letter: char, device: &str) {
    let vol = Arc::new(Volume {
        letter: letter.to_ascii_uppercase(),
        device: device.to_owned(),
        device_type: FILE_DEVICE_DISK_FILE_SYSTEM,
        filesystem: FLT_FSTYPE_NTFS,
    });
    VOLUMES.lock().push(vol.clone());
    crate::registration::attach_new_volume(&vol);
}

/// Every volume.
#[must_use]
pub fn all() -> Vec<Arc<Volume>> {
    VOLUMES.lock().clone()
}

/// The volume of a drive letter.
#[must_use]
pub fn by_letter(letter: char) -> Option<Arc<Volume>> {
    let l = letter.to_ascii_uppercase();
    VOLUMES.lock().iter().find(|v| v.letter == l).cloned()
}

/// The volume whose device name prefixes `nt_path` (case-insensitive), with the rest.
#[must_use]
pub fn by_nt_path(nt_path: &str) -> Option<(Arc<Volume>, String)> {
    let vols = VOLUMES.lock();
    for v in vols.iter() {
        let n = v.device.len();
        if nt_path.len() >= n
            && nt_path.is_char_boundary(n)
            && nt_path[..n].eq_ignore_ascii_case(&v.device)
            && (nt_path.len() == n || nt_path[n..].starts_with('\\'))
        {
            return Some((v.clone(), nt_path[n..].to_owned()));
        }
    }
    None
}
