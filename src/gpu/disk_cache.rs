//! Where results that outlive a process are kept: `resnet tune`'s choices and the driver's
//! compiled-pipeline cache. Both are keyed by adapter inside the directory, so one directory
//! serves every GPU of a machine.

use std::path::PathBuf;

/// Environment variable that moves the user cache directory (tests, CI, shared machines).
pub const CACHE_DIR_ENV: &str = "RESNET_WGPU_CACHE_DIR";

/// Which directory the engine reads and writes its caches in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DiskCache {
    /// `$RESNET_WGPU_CACHE_DIR`, else the platform's user cache directory + `resnet-wgpu`
    /// (`~/.cache/resnet-wgpu` on Linux, `~/Library/Caches/resnet-wgpu` on macOS,
    /// `%LOCALAPPDATA%\resnet-wgpu` on Windows; none in a browser).
    #[default]
    User,
    /// This directory.
    Dir(PathBuf),
    /// No caches on disk: heuristics only, pipelines compiled afresh.
    Off,
}

impl DiskCache {
    /// The directory, if caching is on and one can be named (it may not exist yet).
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            DiskCache::User => std::env::var_os(CACHE_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| crate::platform::user_cache_dir().map(|d| d.join("resnet-wgpu"))),
            DiskCache::Dir(d) => Some(d.clone()),
            DiskCache::Off => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_off() {
        assert_eq!(DiskCache::Dir("/x".into()).dir(), Some(PathBuf::from("/x")));
        assert_eq!(DiskCache::Off.dir(), None);
    }
}
