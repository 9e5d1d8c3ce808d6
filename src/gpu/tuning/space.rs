//! The tuner's search space over conv configurations: the candidates `--exhaustive` times,
//! the one-step neighbours the local search walks, and the split-K variants of a tiled
//! configuration. Every configuration returned passes [`ConvConfig::check`].

use crate::gpu::ops::conv::gemm::{self, gemm_tiles, GEMM_BLOCKS};
use crate::gpu::ops::conv::winograd::{self, TUNING_TILES};
use crate::gpu::ops::conv::{ConvAlgo, ConvConfig, ConvProblem, ConvTiles, DeviceFit, SPLITS};

impl ConvConfig {
    /// Configurations without a split that `resnet tune` times for `p`, valid on this device,
    /// the heuristic choices first. Split-K variants of the best tiled ones come after (see
    /// [`ConvConfig::splits_of`]), so the search stays linear in the tile space.
    pub fn candidates(p: &ConvProblem, fit: &DeviceFit) -> Vec<ConvConfig> {
        let mut out = Self::starting_points(p, false, fit);
        let m_cap = (p.m().next_power_of_two() * 2).max(32);
        let n_cap = (p.group_out_c().next_power_of_two() * 2).max(32);
        for (tm, tn) in [
            (16, 16),
            (32, 16),
            (16, 32),
            (32, 32),
            (64, 32),
            (32, 64),
            (64, 64),
        ] {
            out.push(ConvConfig {
                algo: ConvAlgo::Registers,
                tiles: ConvTiles {
                    tile_m: tm,
                    tile_n: tn,
                    tile_k: 4,
                },
                split_k: 1,
            });
        }
        for tm in [16, 32, 64, 128] {
            for tn in [16, 32, 64, 128] {
                for tk in [8, 16, 32] {
                    if tm as usize > m_cap || tn as usize > n_cap {
                        continue;
                    }
                    out.push(ConvConfig {
                        algo: ConvAlgo::Tiled,
                        tiles: ConvTiles {
                            tile_m: tm,
                            tile_n: tn,
                            tile_k: tk,
                        },
                        split_k: 1,
                    });
                }
            }
        }
        out.extend(Self::gemm_candidates(p));
        for (tile_m, tile_n) in TUNING_TILES {
            out.extend(Self::winograd_with(ConvTiles {
                tile_m,
                tile_n,
                tile_k: 4,
            }));
        }
        out.extend(Self::winograd_starts(p, fit));
        valid_and_unique(out, p, fit)
    }

    /// Where the local search starts: each kernel's heuristic choice (register-only, and
    /// tiled on `gpu`'s terms), and for a GEMM-eligible 1×1 conv both GEMM kernels' defaults
    /// and the register-only conv kernel, and for a stride-1 3×3 both Winograd tile sides, so
    /// the tuner chooses the algorithm per shape.
    pub fn starting_points(p: &ConvProblem, gpu: bool, fit: &DeviceFit) -> Vec<ConvConfig> {
        let mut out = vec![
            Self::heuristic(p, true, gpu, fit),
            Self::heuristic(p, false, gpu, fit),
        ];
        if gemm::problem_error(p).is_none() {
            out.push(gemm::default_gemm());
            out.push(ConvConfig {
                algo: ConvAlgo::GemmTiled,
                ..Self::heuristic(p, false, false, fit)
            });
            out.push(ConvConfig {
                algo: ConvAlgo::Registers,
                tiles: ConvTiles::for_registers(p.out_c),
                split_k: 1,
            });
        }
        out.extend(Self::winograd_starts(p, fit));
        valid_and_unique(out, p, fit)
    }

    /// The GEMM kernels' blockings for a 1×1 conv (none for other problems: `check` drops
    /// them): every `gemm` register block, and `gemm_tiled` over the tiled kernel's tiles.
    fn gemm_candidates(p: &ConvProblem) -> Vec<ConvConfig> {
        if gemm::problem_error(p).is_some() {
            return Vec::new();
        }
        let config = |algo, tiles| ConvConfig {
            algo,
            tiles,
            split_k: 1,
        };
        let mut out: Vec<ConvConfig> = GEMM_BLOCKS
            .iter()
            .map(|&(bm, bn)| config(ConvAlgo::Gemm, gemm_tiles(bm, bn)))
            .collect();
        for tile_m in [32, 64, 128] {
            for tile_n in [32, 64, 128] {
                for tile_k in [8, 16, 32] {
                    let tiles = ConvTiles {
                        tile_m,
                        tile_n,
                        tile_k,
                    };
                    out.push(config(ConvAlgo::GemmTiled, tiles));
                }
            }
        }
        out
    }

    /// Both Winograd algorithms with the GEMM tiles `tiles`.
    fn winograd_with(tiles: ConvTiles) -> [ConvConfig; 2] {
        [ConvAlgo::Winograd2, ConvAlgo::Winograd4].map(|algo| ConvConfig {
            algo,
            tiles,
            split_k: 1,
        })
    }

    /// Where the local search starts on Winograd: both tile sides with the heuristic's GEMM
    /// tiles, where `p` is eligible.
    pub fn winograd_starts(p: &ConvProblem, fit: &DeviceFit) -> Vec<ConvConfig> {
        let mut out = Self::winograd_with(ConvTiles::for_registers(p.out_c)).to_vec();
        out.retain(|c| c.check(p, fit).is_ok());
        out
    }

    /// Valid configurations one step away: each tile dimension halved or doubled, for
    /// the tiled kernel the split-K factor halved or doubled, for Winograd the other tile
    /// side. The tuner's local search walks
    /// these from the heuristic starting points.
    pub fn neighbours(&self, p: &ConvProblem, fit: &DeviceFit) -> Vec<ConvConfig> {
        let mut out = Vec::new();
        let step = |v: u32, up: bool| if up { v * 2 } else { v / 2 };
        for up in [false, true] {
            let t = self.tiles;
            let mut variants = vec![
                ConvTiles {
                    tile_m: step(t.tile_m, up),
                    ..t
                },
                ConvTiles {
                    tile_n: step(t.tile_n, up),
                    ..t
                },
            ];
            if matches!(self.algo, ConvAlgo::Tiled | ConvAlgo::GemmTiled) {
                variants.push(ConvTiles {
                    tile_k: step(t.tile_k, up),
                    ..t
                });
            }
            for tiles in variants {
                if tiles.tile_m >= 4 && tiles.tile_n >= 4 && tiles.tile_k >= 4 {
                    out.push(ConvConfig { tiles, ..*self });
                }
            }
            if self.algo == ConvAlgo::Tiled && (up || self.split_k > 1) {
                out.push(ConvConfig {
                    split_k: step(self.split_k, up),
                    ..*self
                });
            }
        }
        if let Some(m) = winograd::tile_side(self.algo) {
            let algo = match m {
                2 => ConvAlgo::Winograd4,
                _ => ConvAlgo::Winograd2,
            };
            out.push(ConvConfig { algo, ..*self });
        }
        out.retain(|c| c.check(p, fit).is_ok());
        out
    }

    /// Valid split-K variants (split > 1) of a tiled configuration.
    pub fn splits_of(&self, p: &ConvProblem, fit: &DeviceFit) -> Vec<ConvConfig> {
        SPLITS[1..]
            .iter()
            .map(|&s| ConvConfig {
                split_k: s,
                ..*self
            })
            .filter(|c| c.check(p, fit).is_ok())
            .collect()
    }
}

/// `configs` without those `p` cannot run on this device and without repeats, in order.
fn valid_and_unique(
    mut configs: Vec<ConvConfig>,
    p: &ConvProblem,
    fit: &DeviceFit,
) -> Vec<ConvConfig> {
    let mut seen = Vec::new();
    configs.retain(|c| {
        let keep = c.check(p, fit).is_ok() && !seen.contains(c);
        seen.push(*c);
        keep
    });
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> DeviceFit {
        DeviceFit::of(&wgpu::Limits::default())
    }

    #[test]
    fn splits_leave_no_slice_empty() {
        let p = ConvProblem::same_size(1, 7, 20, 30, 1); // K = 20: two TILE_K=16 steps at most
        let c = ConvConfig::heuristic(&p, false, false, &fit());
        for s in c.splits_of(&p, &fit()) {
            let per = s.k_per_split(&p);
            assert!(per * (s.split_k as usize - 1) < p.k(), "{s:?}");
        }
        assert!(ConvConfig { split_k: 4, ..c }.check(&p, &fit()).is_err());
    }

    #[test]
    fn candidates_are_valid_and_unique() {
        for p in [
            ConvProblem::same_size(1, 7, 512, 2048, 1),
            ConvProblem::same_size(2, 13, 3, 5, 3),
            ConvProblem::same_size(1, 56, 64, 64, 3),
        ] {
            let cands = ConvConfig::candidates(&p, &fit());
            assert!(cands.len() >= 5);
            for (i, c) in cands.iter().enumerate() {
                assert!(c.check(&p, &fit()).is_ok());
                assert!(!cands[..i].contains(c));
            }
        }
    }

    #[test]
    fn neighbours_are_one_step_and_valid() {
        let p = ConvProblem::same_size(1, 14, 256, 256, 3);
        let start = ConvConfig::heuristic(&p, false, false, &fit());
        let n = start.neighbours(&p, &fit());
        assert!(n.iter().any(|c| c.split_k == 2));
        assert!(n.iter().all(|c| c.check(&p, &fit()).is_ok() && *c != start));
        let regs = ConvConfig::heuristic(&p, true, false, &fit());
        assert!(regs
            .neighbours(&p, &fit())
            .iter()
            .all(|c| c.algo == ConvAlgo::Registers && c.split_k == 1));
    }

    #[test]
    fn winograd_is_a_candidate_for_eligible_problems_only() {
        let wino = |p: &ConvProblem| {
            ConvConfig::candidates(p, &fit())
                .into_iter()
                .filter(|c| c.algo.is_winograd())
                .count()
        };
        assert!(wino(&ConvProblem::same_size(1, 56, 64, 64, 3)) >= 10);
        assert_eq!(wino(&ConvProblem::same_size(1, 56, 64, 256, 1)), 0);
        let start = ConvConfig::winograd_starts(&ConvProblem::same_size(1, 14, 30, 30, 3), &fit());
        assert_eq!(start.len(), 2);
        let p = ConvProblem::same_size(1, 14, 30, 30, 3);
        let n = start[0].neighbours(&p, &fit());
        assert!(n.iter().any(|c| c.algo == ConvAlgo::Winograd4), "{n:?}");
        assert!(n.iter().all(|c| c.algo.is_winograd()));
    }

    #[test]
    fn workgroup_memory_limit_is_respected() {
        let small = DeviceFit {
            workgroup_storage: 4096,
            ..fit()
        };
        for kernel in [3, 1] {
            let p = ConvProblem::same_size(4, 28, 128, 128, kernel);
            let cands = ConvConfig::candidates(&p, &small);
            // The 1×1 gets the GEMM kernels too, within the limit like the tiled conv.
            let gemm_tiled = cands.iter().filter(|c| c.algo == ConvAlgo::GemmTiled);
            assert_eq!(kernel == 1, gemm_tiled.count() > 0);
            for c in cands {
                if matches!(c.algo, ConvAlgo::Tiled | ConvAlgo::GemmTiled) {
                    assert!(c.tiles.workgroup_bytes() <= 4096, "{c:?}");
                }
            }
        }
    }
}
