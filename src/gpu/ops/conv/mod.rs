//! Convolution, the op family that is most of a ResNet's time: the problem a conv dispatch
//! solves, the configurations the kernels accept for it (one validity check), the heuristic
//! default, its pipeline constants and `Params` uniform. [`steps`] turns a (problem,
//! configuration) into dispatches; the tuner's search space over configurations is in
//! `gpu::tuning::space`. Kernels: `tiled`, `registers` and `split_k_reduce` in conv.wgsl;
//! 1×1 convs also as plain GEMMs ([`gemm`], gemm.wgsl).

use serde::{Deserialize, Serialize};

use crate::gpu::context::{GpuContext, WinogradChoice};
use crate::gpu::kernels::{Binding, Constants, KernelSpec, UniformLayout};
pub use crate::graph::problem::ConvProblem;

pub mod gemm;
pub mod steps;
pub mod winograd;

// params, input, weight, bias, residual, output, pre-activation, partial sums. The partial
// sums of split-K have their own binding because they stay f32 in every precision while
// activations are stored as `Act`; a conv that does not split binds a small unused buffer
// there (WebGPU refuses a writable binding that aliases another one). The split-K sum reads
// `partials` and never touches `input`, `weight` or the pre-activation.
pub(super) const CONV_BINDINGS: &[Binding] = &[
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
    Binding::Read,
    Binding::ReadWrite,
];

/// Implicit GEMM with workgroup-memory tiles and 4×4 register blocks (GPUs).
pub const TILED: KernelSpec = KernelSpec {
    name: "ConvTiled",
    file: "conv.wgsl",
    entry: "tiled",
    bindings: CONV_BINDINGS,
};

/// Register-only implicit GEMM, no barriers: CPU adapters, and grouped convs with groups of
/// 4k channels.
pub const REGISTERS: KernelSpec = KernelSpec {
    name: "ConvRegisters",
    file: "conv.wgsl",
    entry: "registers",
    bindings: CONV_BINDINGS,
};

/// Split-K sum: adds the partial sums of a split conv and applies its epilogue.
pub const SPLIT_K_SUM: KernelSpec = KernelSpec {
    name: "ConvReduce",
    file: "conv.wgsl",
    entry: "split_k_reduce",
    bindings: CONV_BINDINGS,
};

/// The `Params` uniform of conv.wgsl (every conv entry point and the split-K sum).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvUniform {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
    pub m: u32,
    pub k: u32,
    pub group_in_c: u32,
    pub group_out_c: u32,
    pub group_tiles: u32,
    /// K elements per split-K slice (= k without a split).
    pub k_split: u32,
    /// Frames and temporal window (1, 1, 1, 1, 0 unless the conv mixes frames).
    pub in_t: u32,
    pub out_t: u32,
    pub kernel_t: u32,
    pub stride_t: u32,
    pub pad_t: u32,
    pub _pad: [u32; 3],
}

pub const CONV_UNIFORM: UniformLayout = crate::uniform_layout!(
    "conv.wgsl",
    ConvUniform,
    [
        batch,
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        kernel,
        stride,
        pad,
        m,
        k,
        group_in_c,
        group_out_c,
        group_tiles,
        k_split,
        in_t,
        out_t,
        kernel_t,
        stride_t,
        pad_t
    ]
);

/// Tile configuration of one conv dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConvTiles {
    pub tile_m: u32,
    pub tile_n: u32,
    pub tile_k: u32,
}

impl ConvTiles {
    /// Heuristic default: tiles no larger than the GEMM, so late layers at small spatial
    /// sizes (M = 4 for ResNet's layer4 at 64×64) and narrow layers do not compute mostly
    /// padding; TILE_K as deep as the thread count allows (fewer barriers per FLOP).
    pub fn for_shape(m: usize, out_channels: usize) -> Self {
        let fit = |x: usize| x.next_power_of_two().clamp(16, 64) as u32;
        let (tile_m, tile_n) = (fit(m), fit(out_channels));
        let threads = (tile_m / 4) * (tile_n / 4);
        let tile_k = if threads % 32 == 0 { 32 } else { 16 };
        ConvTiles {
            tile_m,
            tile_n,
            tile_k,
        }
    }

    /// Tiles for a grouped conv with `group_out_c` output channels per group: the channel
    /// tile shrinks to the group (ResNeXt groups have 4–64 channels) so no lane computes
    /// another group's channels, and the pixel tile grows to keep 64–128 threads busy.
    pub fn for_grouped(group_out_c: usize) -> Self {
        let (tile_m, tile_n, tile_k) = match group_out_c {
            0..=4 => (256, 4, 8),
            5..=8 => (128, 8, 16),
            9..=16 => (128, 16, 16),
            17..=32 => (64, 32, 16),
            _ => (64, 64, 16),
        };
        ConvTiles {
            tile_m,
            tile_n,
            tile_k,
        }
    }

    /// Tiles of the register-only kernel (`registers`; for grouped convs, groups of a multiple
    /// of 4 channels): TILE_N/4 consecutive 4-channel slices × TILE_M/4 pixel quads per
    /// workgroup, 128 threads (measured on lavapipe at ResNeXt-50's four 3×3 shapes: 32×64
    /// beat 16×64, 32×32 and 64×16 by up to 1.3×); 32 threads when C_out < 64, where wider
    /// tiles would idle. TILE_K is unused there; 4 keeps the module's staging arrays small.
    pub fn for_registers(out_channels: usize) -> Self {
        ConvTiles {
            tile_m: 32,
            tile_n: if out_channels >= 64 { 64 } else { 16 },
            tile_k: 4,
        }
    }

    /// Whether the tiled kernel can run these tiles on any device (see
    /// [`ConvConfig::check`], the one validity check, for the device's limits too).
    pub fn is_valid(&self) -> bool {
        self.block_error().is_none() && self.load_pattern_error().is_none()
    }

    /// Both kernels compute 4×4 register blocks, at most 256 threads, and walk K in steps
    /// of TILE_K (a step of 0 would never end, and divides by zero).
    fn block_error(&self) -> Option<String> {
        let (x, y) = (self.tile_n / 4, self.tile_m / 4);
        if !self.tile_m.is_multiple_of(4) || !self.tile_n.is_multiple_of(4) || x == 0 || y == 0 {
            return Some("tiles must be multiples of the 4×4 register block".into());
        }
        if self.tile_k == 0 {
            return Some("TILE_K must be at least 1".into());
        }
        if x * y > 256 {
            return Some(format!("{} threads per workgroup", x * y));
        }
        None
    }

    /// The tiled kernel's A-tile loads: every thread loads a fixed column of the A tile
    /// (threads a multiple of TILE_K), at most `A_LOADS_MAX` (32) A loads per thread.
    fn load_pattern_error(&self) -> Option<String> {
        let t = self.threads();
        let ok = t.is_multiple_of(self.tile_k)
            && self.tile_k * self.tile_m / t <= 32
            && (self.tile_k * self.tile_m).is_multiple_of(t);
        (!ok).then(|| format!("tile {self:?} breaks the kernel's load pattern"))
    }

    pub fn threads(&self) -> u32 {
        (self.tile_m / 4) * (self.tile_n / 4)
    }

    pub fn workgroup_bytes(&self) -> u32 {
        self.tile_k * (self.tile_m + self.tile_n) * 4
    }
}

/// Specialisation of the (dense) conv kernels (both entry points read the same overrides).
/// `TEMPORAL` and `PRE_ACT` start off; [`ConvConfig::constants`] sets them per problem.
pub fn conv_constants(
    tiles: ConvTiles,
    residual: bool,
    relu: bool,
    input_nchw: bool,
    pointwise: bool,
) -> Constants {
    vec![
        ("TILE_M", tiles.tile_m as f64),
        ("TILE_N", tiles.tile_n as f64),
        ("TILE_K", tiles.tile_k as f64),
        ("HAS_RESIDUAL", residual as u32 as f64),
        ("RELU", relu as u32 as f64),
        ("INPUT_NCHW", input_nchw as u32 as f64),
        ("POINTWISE", pointwise as u32 as f64),
        ("GROUPED", 0.0),
        ("SPLIT_K", 0.0),
        ("TEMPORAL", 0.0),
        ("PRE_ACT", 0.0),
    ]
}

/// Specialisation of the conv kernel for a grouped conv (groups as a grid dimension). The
/// stem and 1×1 specialisations never apply: ResNeXt groups only its 3×3 convs.
pub fn grouped_conv_constants(tiles: ConvTiles, residual: bool, relu: bool) -> Constants {
    let mut c = conv_constants(tiles, residual, relu, false, false);
    for (name, value) in &mut c {
        if *name == "GROUPED" {
            *value = 1.0;
        }
    }
    c
}

/// The conv kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgo {
    /// `tiled`: workgroup-memory tiles, 4×4 register blocks per thread (GPUs).
    Tiled,
    /// `registers`: register-only, no barriers (CPU adapters, grouped convs of 4k channels).
    /// Older spellings are read, never written.
    #[serde(alias = "register", alias = "direct")]
    Registers,
    /// `gemm` (gemm.wgsl): 1×1 convs as plain GEMMs, vec4 loads, register blocks of up to
    /// 8×8 per thread, no barriers (CPU adapters). Tiles: 8×8 threads × the block.
    Gemm,
    /// `gemm_tiled` (gemm.wgsl): 1×1 convs as GEMMs with workgroup-memory tiles (GPUs).
    GemmTiled,
    /// Winograd F(2×2, 3×3) (winograd.wgsl): stride-1 3×3 dense convs; 2.25× fewer
    /// multiplies, plus transforms.
    #[serde(rename = "winograd2x2")]
    Winograd2,
    /// Winograd F(4×4, 3×3): 4× fewer multiplies, larger transforms and rounding error.
    #[serde(rename = "winograd4x4")]
    Winograd4,
}

impl ConvAlgo {
    pub fn is_winograd(self) -> bool {
        winograd::tile_side(self).is_some()
    }
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
            return if p.group_out_c().is_multiple_of(4) {
                tiles(ConvAlgo::Registers, ConvTiles::for_registers(p.out_c))
            } else {
                tiles(ConvAlgo::Tiled, ConvTiles::for_grouped(p.group_out_c()))
            };
        }
        if registers {
            if gemm::problem_error(p).is_none() {
                return gemm::default_gemm();
            }
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

    /// The default on this device without a tuning result: [`ConvConfig::heuristic`]'s
    /// direct kernel, or Winograd where the context asks for it or [`winograd::preferred`]
    /// picks it, when it can run the problem.
    pub fn default_for(p: &ConvProblem, ctx: &GpuContext, fit: &DeviceFit) -> Self {
        let direct = Self::heuristic(p, ctx.prefer_registers, !ctx.is_cpu(), fit);
        let algos = match ctx.winograd {
            WinogradChoice::Off => vec![],
            WinogradChoice::Tile2 => vec![ConvAlgo::Winograd2],
            WinogradChoice::Tile4 => vec![ConvAlgo::Winograd4],
            WinogradChoice::Auto => winograd::preferred(p, ctx.is_cpu()),
        };
        algos
            .into_iter()
            .map(|algo| ConvConfig {
                algo,
                tiles: ConvTiles::for_registers(p.out_c),
                split_k: 1,
            })
            .find(|c| c.check(p, fit).is_ok())
            .unwrap_or(direct)
    }

    /// Output tiles (workgroups before any split).
    pub fn output_tiles(&self, p: &ConvProblem) -> usize {
        self.channel_tiles(p) * p.m().div_ceil(self.tiles.tile_m as usize)
    }

    /// Workgroups along x before the split: channel tiles (per group × groups when grouped
    /// on the tiled kernel; the registers kernel walks C_out in tiles across groups).
    pub fn channel_tiles(&self, p: &ConvProblem) -> usize {
        let tn = self.tiles.tile_n as usize;
        match self.algo {
            ConvAlgo::Registers
            | ConvAlgo::Gemm
            | ConvAlgo::GemmTiled
            | ConvAlgo::Winograd2
            | ConvAlgo::Winograd4 => p.out_c.div_ceil(tn),
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
        if let Some(m) = winograd::tile_side(self.algo) {
            return winograd::scratch_bytes(p, m);
        }
        if self.split_k <= 1 {
            return 0;
        }
        self.split_k as u64 * p.m() as u64 * p.out_c as u64 * 4
    }

    /// Why this configuration cannot run `p` on this device, if it cannot: the one validity
    /// check, for the heuristic, the tuner's candidates, tuned results read from the cache
    /// and every plan.
    pub fn check(&self, p: &ConvProblem, fit: &DeviceFit) -> Result<(), String> {
        let t = self.tiles;
        if t.tile_m == 0 || t.tile_n == 0 {
            return Err("tiles must be at least 1".into());
        }
        if let Some(why) = t.block_error() {
            return Err(why);
        }
        let (x, y) = (t.tile_n / 4, t.tile_m / 4);
        if x * y > fit.invocations || x > fit.workgroup_size_x || y > fit.workgroup_size_y {
            return Err(format!("{} threads per workgroup", x * y));
        }
        let channel_tiles = self.channel_tiles(p) as u64 * self.split_k.max(1) as u64;
        if channel_tiles > fit.workgroups_per_dimension as u64 {
            return Err(format!("{channel_tiles} workgroups along x"));
        }
        match self.algo {
            ConvAlgo::Registers => self.registers_error(p),
            ConvAlgo::Tiled => self.tiled_error(p, fit),
            ConvAlgo::Gemm | ConvAlgo::GemmTiled => gemm::gemm_error(self, p, fit),
            ConvAlgo::Winograd2 | ConvAlgo::Winograd4 => winograd::config_error(self, p, fit),
        }
    }

    fn registers_error(&self, p: &ConvProblem) -> Result<(), String> {
        if self.split_k != 1 {
            return Err("split-K runs on the tiled kernel only".into());
        }
        if p.grouped() && !p.group_out_c().is_multiple_of(4) {
            return Err("the registers kernel needs groups of 4k output channels".into());
        }
        Ok(())
    }

    fn tiled_error(&self, p: &ConvProblem, fit: &DeviceFit) -> Result<(), String> {
        let t = self.tiles;
        if let Some(why) = t.load_pattern_error() {
            return Err(why);
        }
        if t.workgroup_bytes() > fit.workgroup_storage {
            return Err(format!("{} bytes of workgroup memory", t.workgroup_bytes()));
        }
        if self.split_k == 0 || !SPLITS.contains(&self.split_k) {
            return Err(format!("split-K {} is not one of {SPLITS:?}", self.split_k));
        }
        if self.split_k == 1 {
            return Ok(());
        }
        if p.grouped() {
            return Err(
                "split-K runs on dense convs only (the grouped grid uses x for groups)".into(),
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
        Ok(())
    }

    /// The conv kernel's entry point.
    pub fn kernel(&self) -> KernelSpec {
        match self.algo {
            ConvAlgo::Tiled => TILED,
            ConvAlgo::Registers => REGISTERS,
            ConvAlgo::Gemm => gemm::GEMM,
            ConvAlgo::GemmTiled => gemm::GEMM_TILED,
            ConvAlgo::Winograd2 | ConvAlgo::Winograd4 => winograd::GEMM,
        }
    }

    /// Specialisation constants of the conv dispatch. Under split-K the epilogue moves to
    /// the reduction, so the conv itself writes raw partial sums.
    pub fn constants(&self, p: &ConvProblem) -> Constants {
        if matches!(self.algo, ConvAlgo::Gemm | ConvAlgo::GemmTiled) {
            return gemm::gemm_constants(self, p);
        }
        if self.algo.is_winograd() {
            return winograd::constants(self, p);
        }
        let split = self.split_k > 1;
        let (residual, relu) = (p.residual && !split, p.relu && !split);
        let mut c = if p.grouped() {
            grouped_conv_constants(self.tiles, residual, relu)
        } else {
            conv_constants(self.tiles, residual, relu, p.input_nchw, p.pointwise())
        };
        for (name, value) in &mut c {
            match *name {
                "SPLIT_K" => *value = split as u32 as f64,
                "TEMPORAL" => *value = p.temporal() as u32 as f64,
                "PRE_ACT" => *value = p.pre_act as u32 as f64,
                _ => {}
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
    pub fn pipelines(&self, p: &ConvProblem) -> Vec<(KernelSpec, Constants)> {
        if self.algo.is_winograd() {
            return winograd::pipelines(self, p);
        }
        let mut v = vec![(self.kernel(), self.constants(p))];
        if self.split_k > 1 {
            v.push((SPLIT_K_SUM, Self::reduce_constants(p)));
        }
        v
    }

    /// For profiles and logs: `tiled 64x64x16`, `registers 32x64`, `tiled 64x64x32 split-K 8`.
    pub fn describe(&self) -> String {
        let t = self.tiles;
        let mut s = match self.algo {
            ConvAlgo::Tiled => format!("tiled {}x{}x{}", t.tile_m, t.tile_n, t.tile_k),
            ConvAlgo::Registers => format!("registers {}x{}", t.tile_m, t.tile_n),
            ConvAlgo::Gemm => format!(
                "gemm {}x{} (block {}x{})",
                t.tile_m,
                t.tile_n,
                t.tile_m / 8,
                t.tile_n / 8
            ),
            ConvAlgo::GemmTiled => format!("gemm_tiled {}x{}x{}", t.tile_m, t.tile_n, t.tile_k),
            ConvAlgo::Winograd2 => format!("winograd F(2x2,3x3) {}x{}", t.tile_m, t.tile_n),
            ConvAlgo::Winograd4 => format!("winograd F(4x4,3x3) {}x{}", t.tile_m, t.tile_n),
        };
        if self.split_k > 1 {
            s += &format!(" split-K {}", self.split_k);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit() -> DeviceFit {
        DeviceFit::of(&wgpu::Limits::default())
    }

    #[test]
    fn gpu_heuristic_splits_small_late_layers_only() {
        // ResNet-50 layer4 3×3 at batch 1: 1×8 output tiles, K = 4608.
        let late = ConvProblem::same_size(1, 7, 512, 512, 3);
        let c = ConvConfig::heuristic(&late, false, true, &fit());
        assert!(c.split_k >= 8, "{c:?}");
        assert!(c.output_tiles(&late) * c.split_k as usize <= 256);
        // Nor on a CPU adapter, nor where the grid is already full.
        assert_eq!(
            ConvConfig::heuristic(&late, false, false, &fit()).split_k,
            1
        );
        let early = ConvProblem::same_size(32, 56, 64, 64, 3);
        assert_eq!(
            ConvConfig::heuristic(&early, false, true, &fit()).split_k,
            1
        );
    }

    #[test]
    fn grouped_never_splits_and_picks_registers_for_4k_groups() {
        let mut p = ConvProblem::same_size(1, 14, 256, 256, 3);
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

    /// Configurations that parse but make no sense (a tuning cache edited by hand, or from
    /// another build) are refused by the one check, with a reason, never a panic or a
    /// division by zero: a plan then falls back to the heuristic.
    #[test]
    fn nonsense_configurations_are_refused_without_panicking() {
        let p = ConvProblem::same_size(1, 14, 64, 64, 3);
        let tiles = |tile_m, tile_n, tile_k| ConvTiles {
            tile_m,
            tile_n,
            tile_k,
        };
        for algo in [ConvAlgo::Tiled, ConvAlgo::Registers] {
            let bad_tiles = [
                tiles(0, 64, 16),
                tiles(64, 0, 16),
                tiles(64, 64, 0),
                tiles(2, 64, 16),
                tiles(6, 64, 16),
                tiles(1024, 1024, 16),
            ];
            let bad_splits = [0, 3, 1 << 30].map(|s| (tiles(64, 64, 16), s));
            for (t, split_k) in bad_tiles.map(|t| (t, 1)).into_iter().chain(bad_splits) {
                let c = ConvConfig {
                    algo,
                    tiles: t,
                    split_k,
                };
                assert!(c.check(&p, &fit()).is_err(), "{c:?} accepted");
            }
        }
        // A valid one still passes, and its derived sizes are finite.
        let ok = ConvConfig::heuristic(&p, true, false, &fit());
        assert!(ok.check(&p, &fit()).is_ok());
        assert!(ok.k_per_split(&p) > 0 && ok.channel_tiles(&p) > 0);
    }
}
