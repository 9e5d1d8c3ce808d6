//! The tuning cache: `resnet tune`'s fastest configuration per conv shape, per adapter, as
//! JSON in the disk-cache directory (`tune.json`). Keyed by adapter name, backend, driver
//! and driver version, so a driver update or another GPU starts from the heuristics again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TuneReport;
use crate::error::{Error, Result};
use crate::gpu::context::{AdapterSummary, GpuContext};
use crate::gpu::ops::conv::ConvConfig;
use crate::gpu::precision::Precision;

/// Format version; a file of another version is ignored (and rewritten by the next tune).
pub const TUNE_CACHE_VERSION: u32 = 1;

/// One tuned conv shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedConv {
    pub config: ConvConfig,
    /// Median GPU ms of the winner and of the heuristic default when it was tuned.
    pub ms: f64,
    pub default_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TuneCache {
    pub version: u32,
    /// adapter key → conv shape key ([`crate::graph::problem::ConvProblem::key`]) → result.
    pub adapters: BTreeMap<String, BTreeMap<String, TunedConv>>,
}

impl TuneCache {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("tune.json")
    }

    /// The adapter part of the key, with the precision tuned in: configurations are timed
    /// per precision (f16 halves the memory traffic). f32 keeps the key it always had.
    pub fn adapter_key(info: &AdapterSummary, precision: Precision) -> String {
        let key = format!(
            "{} | {} | {} | {}",
            info.name, info.backend, info.driver, info.driver_info
        );
        match precision {
            Precision::F32 => key,
            Precision::F16 => format!("{key} | f16"),
        }
    }

    /// Reads `path`; a missing file is an empty cache. A file that cannot be parsed or is of
    /// another version is an error (callers loading it for inference log it and go on).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let cache: TuneCache = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: not a tuning cache: {e}", path.display())))?;
        if cache.version != TUNE_CACHE_VERSION {
            return Err(Error::Usage(format!(
                "{}: tuning cache version {} (this build reads {TUNE_CACHE_VERSION}); run `resnet tune` again",
                path.display(),
                cache.version
            )));
        }
        Ok(cache)
    }

    pub fn empty() -> Self {
        TuneCache {
            version: TUNE_CACHE_VERSION,
            adapters: BTreeMap::new(),
        }
    }

    /// Writes atomically, creating the directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Usage(format!("serialising the tuning cache: {e}")))?;
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    /// Saves this cache's entries merged into the file as it is now, under a lock
    /// (`tune.json.lock` beside it): entries of the file that this cache lacks are kept, and
    /// this cache's win for their shapes. Two `resnet tune` runs on one cache folder thus
    /// keep both runs' results, whichever saves last. A file that cannot be read is replaced,
    /// with a warning.
    pub fn save_merged(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        crate::fsutil::with_lock(Path::new(&lock), || {
            let mut merged = Self::load(path).unwrap_or_else(|e| {
                log::warn!("replacing the tuning cache: {e}");
                Self::empty()
            });
            for (adapter, convs) in &self.adapters {
                let entry = merged.adapters.entry(adapter.clone()).or_default();
                entry.extend(convs.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            merged.save(path)
        })
    }

    /// Records every winner of `report`, tuned on `adapter` in `precision`, replacing earlier
    /// results for the same shapes.
    pub fn record(&mut self, adapter: &AdapterSummary, precision: Precision, report: &TuneReport) {
        let key = Self::adapter_key(adapter, precision);
        let entry = self.adapters.entry(key).or_default();
        for s in &report.shapes {
            entry.insert(
                s.key.clone(),
                TunedConv {
                    config: s.best,
                    ms: s.best_ms,
                    default_ms: s.default_ms,
                },
            );
        }
    }

    /// The configurations tuned for `ctx`'s adapter from the disk cache, if any. A cache
    /// that cannot be read is a warning: inference goes on with the heuristics. Each entry
    /// is checked against its conv when a plan uses it (`Engine::conv_config`), with the
    /// same check as a freshly tuned one; one that cannot run is ignored with a warning.
    pub fn tuned_for(ctx: &GpuContext) -> BTreeMap<String, ConvConfig> {
        let Some(dir) = ctx.disk_cache.dir() else {
            return BTreeMap::new();
        };
        match TuneCache::load(&TuneCache::path(&dir)) {
            Ok(cache) => {
                let tuned = cache.configs_for(&TuneCache::adapter_key(&ctx.info, ctx.precision));
                if !tuned.is_empty() {
                    log::info!("{} tuned conv shapes from {}", tuned.len(), dir.display());
                }
                tuned
            }
            Err(e) => {
                log::warn!("ignoring the tuning cache: {e}");
                BTreeMap::new()
            }
        }
    }

    /// The configurations tuned on `adapter`, by conv shape key.
    pub fn configs_for(&self, adapter: &str) -> BTreeMap<String, ConvConfig> {
        self.adapters
            .get(adapter)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.config)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::ops::conv::{ConvAlgo, ConvTiles};

    #[test]
    fn round_trip_and_versions() {
        let dir = std::env::temp_dir().join(format!("resnet-tune-cache-{}", std::process::id()));
        let path = TuneCache::path(&dir);
        assert!(TuneCache::load(&path).unwrap().adapters.is_empty());
        let mut cache = TuneCache::empty();
        let config = ConvConfig {
            algo: ConvAlgo::Tiled,
            tiles: ConvTiles {
                tile_m: 32,
                tile_n: 64,
                tile_k: 16,
            },
            split_k: 4,
        };
        cache
            .adapters
            .entry("gpu | vulkan | d | 1".into())
            .or_default()
            .insert(
                "n1 7x7x512 k3 s1 p1 g1 -> 512".into(),
                TunedConv {
                    config,
                    ms: 1.0,
                    default_ms: 2.0,
                },
            );
        cache.save(&path).unwrap();
        let back = TuneCache::load(&path).unwrap();
        assert_eq!(back.configs_for("gpu | vulkan | d | 1").len(), 1);
        assert!(back.configs_for("other").is_empty());
        std::fs::write(&path, r#"{"version": 99, "adapters": {}}"#).unwrap();
        assert!(TuneCache::load(&path).is_err());
        std::fs::write(&path, "not json").unwrap();
        assert!(TuneCache::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The kernel's one name is written; the spellings of older builds are still read.
    #[test]
    fn kernel_names_old_and_new() {
        for old in ["registers", "register", "direct"] {
            let json = format!(
                r#"{{"algo": "{old}", "tiles": {{"tile_m": 32, "tile_n": 64, "tile_k": 4}}, "split_k": 1}}"#
            );
            let c: ConvConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(c.algo, ConvAlgo::Registers, "{old}");
            let back = serde_json::to_string(&c).unwrap();
            assert!(back.contains(r#""algo":"registers""#), "{back}");
        }
        let tiled: ConvAlgo = serde_json::from_str(r#""tiled""#).unwrap();
        assert_eq!(tiled, ConvAlgo::Tiled);
    }
}
