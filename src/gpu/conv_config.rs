//! Which kernel and tiles run a convolution. Pure data: the problem a conv dispatch solves,
//! the configurations the kernels accept for it, the heuristic default, and the candidates
//! `resnet tune` times. The executor turns a (problem, configuration) into dispatches.

use serde::{Deserialize, Serialize};

use super::kernels::{conv_constants, grouped_conv_constants, Constants, ConvTiles, Kernel};

/// One convolution as the kernels see it (BatchNorm folded, epilogue fused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvProblem {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    /// The stem reads the user's NCHW input.
    pub input_nchw: bool,
    pub residual: bool,
    pub relu: bool,
}

impl ConvProblem {
    /// GEMM rows: output pixels over the batch.
    pub fn m(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }
    pub fn group_in_c(&self) -> usize {
        self.in_c / self.groups
    }
    pub fn group_out_c(&self) -> usize {
        self.out_c / self.groups
    }
    /// GEMM depth of one group: kH·kW·C_in/G.
    pub fn k(&self) -> usize {
        self.kernel * self.kernel * self.group_in_c()
    }
    pub fn grouped(&self) -> bool {
        self.groups > 1
    }
    /// 1×1, stride 1, no padding, channels-last: A is the input matrix itself.
    pub fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0 && !self.input_nchw && !self.grouped()
    }
    pub fn flops(&self) -> u64 {
        2 * (self.m() * self.out_c * self.k()) as u64
    }

    /// Key of a tuning result: everything that decides which configuration is fastest. The
    /// epilogue (residual, ReLU) is left out: it costs the same under every configuration.
    pub fn key(&self) -> String {
        format!(
            "n{} {}x{}x{} k{} s{} p{} g{} -> {}{}",
            self.batch,
            self.in_h,
            self.in_w,
            self.in_c,
            self.kernel,
            self.stride,
            self.pad,
            self.groups,
            self.out_c,
            if self.input_nchw { " nchw" } else { "" }
        )
    }
}

/// The conv kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgo {
    /// `main`: workgroup-memory tiles, 4×4 register blocks per thread (GPUs).
    Tiled,
    /// `direct`: register-only, no barriers (CPU adapters, grouped convs of 4k channels).
    Registers,
}

/// How one conv runs: kernel, tiles, and how many slices its reduction is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvConfig {
    pub algo: ConvAlgo,
    pub tiles: ConvTiles,
    /// Split-K: K is cut into this many slices computed by separate workgroups, whose partial
    /// sums a second dispatch adds (with the epilogue). 1 = no split. Fills the GPU when a
    /// layer has few output tiles (7×7 and 14×14 layers at batch 1).
    pub split_k: u32,
}

/// The device facts a configuration must respect.
#[derive(Clone, Copy, Debug)]
pub struct DeviceFit {
    pub workgroup_storage: u32,
    pub invocations: u32,
    pub workgroup_size_x: u32,
    pub workgroup_size_y: u32,
    pub workgroups_per_dimension: u32,
    pub binding_bytes: u64,
}

impl DeviceFit {
    pub fn of(limits: &wgpu::Limits) -> Self {
        DeviceFit {
            workgroup_storage: limits.max_compute_workgroup_storage_size,
            invocations: limits.max_compute_invocations_per_workgroup,
            workgroup_size_x: limits.max_compute_workgroup_size_x,
            workgroup_size_y: limits.max_compute_workgroup_size_y,
            workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            binding_bytes: limits.max_storage_buffer_binding_size,
        }
    }
}

/// Split-K factors the tuner tries (the heuristic picks among them too).
pub const SPLITS: [u32; 5] = [1, 2, 4, 8, 16];

impl ConvConfig {
    /// The default without a tuning result. `registers`: the register-only kernel is
    /// preferred on this adapter (CPU adapters, or forced). `gpu`: a real GPU, where layers
    /// with few output tiles are split along K to keep every compute unit busy.
    pub fn heuristic(p: &ConvProblem, registers: bool, gpu: bool, fit: &DeviceFit) -> Self {
        let tiles = |algo, tiles| ConvConfig {
            algo,
            tiles,
            split_k: 1,
        };
        if p.grouped() {
            // A 4-channel slice never straddles two groups when groups have 4k channels.
            return if p.group_out_c() % 4 == 0 {
                tiles(ConvAlgo::Registers, ConvTiles::for_registers(p.out_c))
            } else {
                tiles(ConvAlgo::Tiled, ConvTiles::for_grouped(p.group_out_c()))
            };
        }
        if registers {
            return tiles(ConvAlgo::Registers, ConvTiles::for_registers(p.out_c));
        }
        let mut config = tiles(ConvAlgo::Tiled, ConvTiles::for_shape(p.m(), p.out_c));
        if gpu {
            // Aim for ≥ 128 workgroups (about one per SM on a large GPU) while each slice
            // keeps ≥ 8 K steps, so the partial sums stay small next to the GEMM.
            let workgroups = config.output_tiles(p);
            let k_steps = p.k().div_ceil(config.tiles.tile_k as usize);
            for s in SPLITS {
                let next = ConvConfig {
                    split_k: s,
                    ..config
                };
                if workgroups * s as usize > 128 * 2
                    || k_steps < 8 * s as usize
                    || next.check(p, fit).is_err()
                {
                    break;
                }
                config = next;
                if workgroups * s as usize >= 128 {
                    break;
                }
            }
        }
        config
    }

    /// Output tiles (workgroups before any split).
    pub fn output_tiles(&self, p: &ConvProblem) -> usize {
        self.channel_tiles(p) * p.m().div_ceil(self.tiles.tile_m as usize)
    }

    /// Workgroups along x before the split: channel tiles (per group × groups when grouped
    /// on the tiled kernel; the register kernel walks C_out in tiles across groups).
    pub fn channel_tiles(&self, p: &ConvProblem) -> usize {
        let tn = self.tiles.tile_n as usize;
        match self.algo {
            ConvAlgo::Registers => p.out_c.div_ceil(tn),
            ConvAlgo::Tiled => p.groups * p.group_out_c().div_ceil(tn),
        }
    }

    /// K elements per split (a multiple of TILE_K): the whole K without a split.
    pub fn k_per_split(&self, p: &ConvProblem) -> usize {
        let tk = self.tiles.tile_k as usize;
        let steps = p.k().div_ceil(tk);
        steps.div_ceil(self.split_k.max(1) as usize) * tk
    }

    /// Bytes of the partial-sum buffer `(split_k, M, C_out)`; 0 without a split.
    pub fn scratch_bytes(&self, p: &ConvProblem) -> u64 {
        if self.split_k <= 1 {
            return 0;
        }
        self.split_k as u64 * p.m() as u64 * p.out_c as u64 * 4
    }

    /// Why this configuration cannot run `p` on this device, if it cannot.
    pub fn check(&self, p: &ConvProblem, fit: &DeviceFit) -> Result<(), String> {
        let t = self.tiles;
        let (x, y) = (t.tile_n / 4, t.tile_m / 4);
        if t.tile_m % 4 != 0 || t.tile_n % 4 != 0 || x == 0 || y == 0 {
            return Err("tiles must be multiples of the 4×4 register block".into());
        }
        // Every plan divides K by TILE_K (`k_per_split`), whichever kernel runs.
        if t.tile_k == 0 {
            return Err("TILE_K must be positive".into());
        }
        if x * y > fit.invocations.min(256) || x > fit.workgroup_size_x || y > fit.workgroup_size_y
        {
            return Err(format!("{} threads per workgroup", x * y));
        }
        let channel_tiles = self.channel_tiles(p) as u64 * self.split_k.max(1) as u64;
        if channel_tiles > fit.workgroups_per_dimension as u64 {
            return Err(format!("{channel_tiles} workgroups along x"));
        }
        match self.algo {
            ConvAlgo::Registers => {
                if self.split_k != 1 {
                    return Err("split-K runs on the tiled kernel only".into());
                }
                if p.grouped() && p.group_out_c() % 4 != 0 {
                    return Err("register kernel needs groups of 4k output channels".into());
                }
            }
            ConvAlgo::Tiled => {
                if !t.is_valid() {
                    return Err(format!("tile {t:?} breaks the kernel's load pattern"));
                }
                if t.workgroup_bytes() > fit.workgroup_storage {
                    return Err(format!("{} bytes of workgroup memory", t.workgroup_bytes()));
                }
                if self.split_k == 0 || !SPLITS.contains(&self.split_k) {
                    return Err(format!("split-K {} is not one of {SPLITS:?}", self.split_k));
                }
                if self.split_k > 1 {
                    if p.grouped() {
                        return Err(
                            "split-K runs on dense convs only (the grouped grid uses x for groups)"
                                .into(),
                        );
                    }
                    // Every slice must own some K, or its partial sums stay unwritten.
                    let per = self.k_per_split(p);
                    if per * (self.split_k as usize - 1) >= p.k() {
                        return Err(format!(
                            "K = {} has too few steps for {} slices",
                            p.k(),
                            self.split_k
                        ));
                    }
                    if self.scratch_bytes(p) > fit.binding_bytes {
                        return Err(format!("{} bytes of partial sums", self.scratch_bytes(p)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The conv kernel's pipeline.
    pub fn kernel(&self) -> Kernel {
        match self.algo {
            ConvAlgo::Tiled => Kernel::Conv,
            ConvAlgo::Registers => Kernel::ConvDirect,
        }
    }

    /// Specialisation constants of the conv dispatch. Under split-K the epilogue moves to
    /// the reduction, so the conv itself writes raw partial sums.
    pub fn constants(&self, p: &ConvProblem) -> Constants {
        let split = self.split_k > 1;
        let (residual, relu) = (p.residual && !split, p.relu && !split);
        let mut c = if p.grouped() {
            grouped_conv_constants(self.tiles, residual, relu)
        } else {
            conv_constants(self.tiles, residual, relu, p.input_nchw, p.pointwise())
        };
        for (name, value) in &mut c {
            if *name == "SPLIT_K" {
                *value = split as u32 as f64;
            }
        }
        c
    }

    /// Constants of the split-K reduction (bias, residual, ReLU applied there).
    pub fn reduce_constants(p: &ConvProblem) -> Constants {
        vec![
            ("HAS_RESIDUAL", p.residual as u32 as f64),
            ("RELU", p.relu as u32 as f64),
        ]
    }

    /// Every pipeline this configuration runs: the conv, and under split-K the reduction.
    pub fn pipelines(&self, p: &ConvProblem) -> Vec<(Kernel, Constants)> {
        let mut v = vec![(self.kernel(), self.constants(p))];
        if self.split_k > 1 {
            v.push((Kernel::ConvReduce, Self::reduce_constants(p)));
        }
        v
    }

    /// For profiles and logs: `tiled 64x64x16`, `registers 32x64`, `tiled 64x64x32 split-K 8`.
    pub fn describe(&self) -> String {
        let t = self.tiles;
        let mut s = match self.algo {
            ConvAlgo::Tiled => format!("tiled {}x{}x{}", t.tile_m, t.tile_n, t.tile_k),
            ConvAlgo::Registers => format!("registers {}x{}", t.tile_m, t.tile_n),
        };
        if self.split_k > 1 {
            s += &format!(" split-K {}", self.split_k);
        }
        s
    }

    /// Configurations without a split that `resnet tune` times for `p`, valid on this device,
    /// the heuristic choices first. Split-K variants of the best tiled ones come after (see
    /// [`ConvConfig::splits_of`]), so the search stays linear in the tile space.
    pub fn candidates(p: &ConvProblem, fit: &DeviceFit) -> Vec<ConvConfig> {
        let mut out = vec![
            Self::heuristic(p, true, false, fit),
            Self::heuristic(p, false, false, fit),
        ];
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
        let mut seen = Vec::new();
        out.retain(|c| {
            let keep = c.check(p, fit).is_ok() && !seen.contains(c);
            seen.push(*c);
            keep
        });
        out
    }

    /// Valid configurations one step away: each tile dimension halved or doubled, and for
    /// the tiled kernel the split-K factor halved or doubled. The tuner's local search walks
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
            if self.algo == ConvAlgo::Tiled {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> DeviceFit {
        DeviceFit::of(&wgpu::Limits::default())
    }

    fn problem(batch: usize, hw: usize, in_c: usize, out_c: usize, kernel: usize) -> ConvProblem {
        ConvProblem {
            batch,
            in_h: hw,
            in_w: hw,
            in_c,
            out_h: hw,
            out_w: hw,
            out_c,
            kernel,
            stride: 1,
            pad: kernel / 2,
            groups: 1,
            input_nchw: false,
            residual: true,
            relu: true,
        }
    }

    #[test]
    fn gpu_heuristic_splits_small_late_layers_only() {
        // ResNet-50 layer4 3×3 at batch 1: 1×8 output tiles, K = 4608.
        let late = problem(1, 7, 512, 512, 3);
        let c = ConvConfig::heuristic(&late, false, true, &fit());
        assert!(c.split_k >= 8, "{c:?}");
        assert!(c.output_tiles(&late) * c.split_k as usize <= 256);
        // Nor on a CPU adapter, nor where the grid is already full.
        assert_eq!(
            ConvConfig::heuristic(&late, false, false, &fit()).split_k,
            1
        );
        let early = problem(32, 56, 64, 64, 3);
        assert_eq!(
            ConvConfig::heuristic(&early, false, true, &fit()).split_k,
            1
        );
    }

    #[test]
    fn splits_leave_no_slice_empty() {
        let p = problem(1, 7, 20, 30, 1); // K = 20: two TILE_K=16 steps at most
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
            problem(1, 7, 512, 2048, 1),
            problem(2, 13, 3, 5, 3),
            problem(1, 56, 64, 64, 3),
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
        let p = problem(1, 14, 256, 256, 3);
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
    fn grouped_never_splits_and_picks_registers_for_4k_groups() {
        let mut p = problem(1, 14, 256, 256, 3);
        p.groups = 32; // 8 channels per group
        let c = ConvConfig::heuristic(&p, false, true, &fit());
        assert_eq!(c.algo, ConvAlgo::Registers);
        let tiled = ConvConfig {
            algo: ConvAlgo::Tiled,
            tiles: ConvTiles::for_grouped(8),
            split_k: 2,
        };
        assert!(tiled.check(&p, &fit()).is_err());
    }

    #[test]
    fn workgroup_memory_limit_is_respected() {
        let small = DeviceFit {
            workgroup_storage: 4096,
            ..fit()
        };
        let p = problem(4, 28, 128, 128, 3);
        for c in ConvConfig::candidates(&p, &small) {
            if c.algo == ConvAlgo::Tiled {
                assert!(c.tiles.workgroup_bytes() <= 4096);
            }
        }
    }
}
