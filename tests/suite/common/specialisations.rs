//! Every shader specialisation the planner can produce, enumerated once for the naga tests
//! (`shaders` and `shaders_family` check them as SPIR-V with the plan's budgets;
//! `translations` writes each for the other back ends): the kernels' sources, parsed,
//! validated and specialised through their override constants.

use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{Module, ShaderStage};
use resnet_wgpu::gpu::kernels::{Constants, SHADER_FILES};
use resnet_wgpu::gpu::ops::conv::{
    conv_constants, grouped_conv_constants, ConvAlgo, ConvConfig, ConvProblem, ConvTiles, DeviceFit,
};
use resnet_wgpu::gpu::ops::Kernel;
use resnet_wgpu::Precision;

pub fn validator() -> Validator {
    Validator::new(ValidationFlags::all(), Capabilities::all())
}

/// One WGSL file of `SHADER_FILES`, parsed and validated.
pub fn parse(file: &str) -> (Module, ModuleInfo) {
    parse_in(file, Precision::F32)
}

/// One WGSL file of `SHADER_FILES` as the engine builds it in `precision`, parsed and
/// validated.
pub fn parse_in(file: &str, precision: Precision) -> (Module, ModuleInfo) {
    let source = SHADER_FILES
        .iter()
        .find(|(f, _)| *f == file)
        .unwrap_or_else(|| panic!("{file} not in SHADER_FILES"))
        .1;
    let source = precision
        .shader_source(file, source)
        .unwrap_or_else(|e| panic!("{e}"));
    let what = format!("{file} ({precision})");
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&source)));
    let info = validator()
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&source)));
    (module, info)
}

/// `kernel`'s module with `constants` applied and compacted to its entry point, re-validated:
/// what wgpu hands each back end when it creates the pipeline.
pub fn specialised(kernel: Kernel, constants: &Constants) -> (Module, ModuleInfo) {
    specialised_in(kernel, constants, Precision::F32)
}

/// [`specialised`] for the module of `precision`.
pub fn specialised_in(
    kernel: Kernel,
    constants: &Constants,
    precision: Precision,
) -> (Module, ModuleInfo) {
    let (module, info) = parse_in(kernel.file(), precision);
    let map: PipelineConstants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let what = format!("{kernel:?} {constants:?} ({precision})");
    let (processed, _) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((ShaderStage::Compute, kernel.entry())),
        &map,
    )
    .unwrap_or_else(|e| panic!("{what}: overrides: {e:?}"));
    let processed_info = validator()
        .validate(&processed)
        .unwrap_or_else(|e| panic!("{what}: re-validation: {e:?}"));
    (processed.into_owned(), processed_info)
}

/// `kernel`'s specialised module as SPIR-V 1.3 (what wgpu's Vulkan back end asks for).
pub fn spirv(
    kernel: Kernel,
    module: &Module,
    info: &ModuleInfo,
) -> Result<Vec<u32>, naga::back::spv::Error> {
    let options = naga::back::spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: kernel.entry().to_string(),
    };
    naga::back::spv::write_vec(module, info, &options, Some(&pipeline))
}

/// Every tile configuration `ConvTiles::for_shape` can return, found by sweeping its inputs.
pub fn all_conv_tiles() -> Vec<ConvTiles> {
    let mut tiles = Vec::new();
    for out_c in 1..=4096 {
        for m in [1, 20, 33, 63, 64, 65, 4096, 1 << 20] {
            let t = ConvTiles::for_shape(m, out_c);
            if !tiles.contains(&t) {
                tiles.push(t);
            }
        }
    }
    tiles
}

/// Every tile configuration `ConvTiles::for_grouped` can return.
pub fn grouped_tiles() -> Vec<ConvTiles> {
    let mut tiles: Vec<ConvTiles> = Vec::new();
    for group_out_c in 1..=256 {
        let t = ConvTiles::for_grouped(group_out_c);
        if !tiles.contains(&t) {
            tiles.push(t);
        }
    }
    tiles
}

/// Tiles of the register-only kernel, from a narrow layer to a wide one.
pub fn register_tiles() -> Vec<ConvTiles> {
    [16, 63, 64, 4096]
        .map(ConvTiles::for_registers)
        .into_iter()
        .collect()
}

/// The four epilogues: (residual, ReLU).
pub const EPILOGUES: [(bool, bool); 4] =
    [(false, false), (false, true), (true, false), (true, true)];

/// The dense conv's constants for `tiles` in each flag combination a plan can produce: 16
/// for images, 8 over frames (a 1×1 over frames is never planned as pointwise) and 8
/// pre-activating ones (channels-last images only: never the stem, never over frames).
pub fn dense_conv_constants(tiles: ConvTiles) -> Vec<Constants> {
    (0..64u32)
        .filter_map(|bits| {
            let [residual, relu, nchw, pointwise, temporal, pre_act] =
                [0, 1, 2, 3, 4, 5].map(|b| bits & (1 << b) != 0);
            if (temporal && pointwise) || (pre_act && (nchw || temporal)) {
                return None;
            }
            let mut c = conv_constants(tiles, residual, relu, nchw, pointwise);
            for (name, value) in &mut c {
                match *name {
                    "TEMPORAL" => *value = temporal as u32 as f64,
                    "PRE_ACT" => *value = pre_act as u32 as f64,
                    _ => {}
                }
            }
            Some(c)
        })
        .collect()
}

pub fn fold_constants(
    w: u32,
    gamma: u32,
    beta: u32,
    mean: u32,
    var: u32,
    has_bn: bool,
) -> Constants {
    vec![
        ("W_DTYPE", w as f64),
        ("GAMMA_DTYPE", gamma as f64),
        ("BETA_DTYPE", beta as f64),
        ("MEAN_DTYPE", mean as f64),
        ("VAR_DTYPE", var as f64),
        ("HAS_BN", has_bn as u32 as f64),
    ]
}

/// All 3⁵ dtype assignments (f32, f16, bf16) of the fold's five inputs × HAS_BN: 486.
pub fn fold_bn_constants() -> Vec<Constants> {
    let mut all = Vec::new();
    for code in 0..3u32.pow(5) {
        let d = [0, 1, 2, 3, 4].map(|i| (code / 3u32.pow(i)) % 3);
        for has_bn in [false, true] {
            all.push(fold_constants(d[0], d[1], d[2], d[3], d[4], has_bn));
        }
    }
    all
}

/// Every GEMM configuration the tuner tries on a 1×1 conv (all `gemm` register blocks and
/// `gemm_tiled` tiles), in each of the 16 flag combinations a plan can produce: residual,
/// ReLU, stride 2 (a row gather) and pre-activation.
pub fn gemm_specialisations() -> Vec<(ConvConfig, Kernel, Constants)> {
    let fit = DeviceFit::of(&wgpu::Limits::default());
    let base = problem(2, 14, 256, 64, 1, 1, 1, false);
    let mut all = Vec::new();
    for bits in 0..16u32 {
        let [residual, relu, strided, pre_act] = [0, 1, 2, 3].map(|b| bits & (1 << b) != 0);
        let stride = if strided { 2 } else { 1 };
        let p = ConvProblem {
            residual,
            relu,
            pre_act,
            ..problem(2, 14, 256, 64, 1, stride, 1, false)
        };
        for c in ConvConfig::candidates(&base, &fit) {
            if matches!(c.algo, ConvAlgo::Gemm | ConvAlgo::GemmTiled) {
                let kernel = Kernel::named(c.kernel().name).expect("a listed kernel");
                all.push((c, kernel, c.constants(&p)));
            }
        }
    }
    all
}

/// The split-K sum's epilogues.
pub fn conv_reduce_constants() -> Vec<Constants> {
    (0..4u32)
        .map(|bits| {
            vec![
                ("HAS_RESIDUAL", (bits & 1) as f64),
                ("RELU", (bits >> 1) as f64),
            ]
        })
        .collect()
}

/// Every configuration `resnet tune` may try under WebGPU's default limits (both kernels,
/// every tile size, split-K), on shapes from a stem to a late grouped layer, with the
/// problem it was made for and its kernel and constants; each distinct specialisation once.
pub fn tuning_candidates() -> Vec<(ConvConfig, ConvProblem, Kernel, Constants)> {
    let fit = DeviceFit::of(&wgpu::Limits::default());
    let problems = [
        problem(1, 224, 3, 64, 7, 2, 1, true),
        problem(1, 7, 512, 512, 3, 1, 1, false),
        problem(8, 14, 1024, 256, 1, 1, 1, false),
        problem(1, 14, 256, 256, 3, 1, 32, false),
        problem(1, 14, 96, 96, 3, 1, 16, false),
        // Video: an r3d stem over an NCTHW clip, a 3×3×3 conv, R(2+1)D's 3×1×1.
        clip_problem(problem(1, 112, 3, 64, 7, 2, 1, true), 16, 3, 1),
        clip_problem(problem(1, 28, 128, 128, 3, 1, 1, false), 8, 3, 1),
        clip_problem(problem(1, 14, 230, 256, 1, 1, 1, false), 4, 3, 2),
    ];
    let mut seen = std::collections::HashSet::new();
    let mut all = Vec::new();
    for p in problems {
        let mut configs = ConvConfig::candidates(&p, &fit);
        let splits: Vec<ConvConfig> = configs.iter().flat_map(|c| c.splits_of(&p, &fit)).collect();
        configs.extend(splits);
        for c in configs {
            let constants = c.constants(&p);
            let kernel = Kernel::named(c.kernel().name).expect("a listed kernel");
            if seen.insert((kernel, format!("{constants:?}"))) {
                all.push((c, p, kernel, constants));
            }
        }
    }
    all
}

/// `p` over clips of `frames` frames with temporal kernel `kernel_t` and stride `stride_t`
/// (padding kernel_t / 2).
fn clip_problem(p: ConvProblem, frames: usize, kernel_t: usize, stride_t: usize) -> ConvProblem {
    let pad_t = kernel_t / 2;
    ConvProblem {
        in_t: frames,
        out_t: (frames + 2 * pad_t - kernel_t) / stride_t + 1,
        kernel_t,
        stride_t,
        pad_t,
        ..p
    }
}

#[allow(clippy::too_many_arguments)]
fn problem(
    batch: usize,
    hw: usize,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    input_nchw: bool,
) -> ConvProblem {
    ConvProblem {
        batch,
        in_t: 1,
        out_t: 1,
        in_h: hw,
        in_w: hw,
        in_c,
        out_h: hw / stride,
        out_w: hw / stride,
        out_c,
        kernel,
        stride,
        pad: kernel / 2,
        kernel_t: 1,
        stride_t: 1,
        pad_t: 0,
        groups,
        input_nchw,
        residual: true,
        relu: true,
        pre_act: false,
    }
}

/// Every Winograd specialisation a plan or the tuner can make: both tile sides, the GEMM
/// tiles of the heuristic and the tuner, every epilogue with and without the
/// pre-activation, for the three per-inference kernels; and the weight transform per side.
pub fn winograd_specialisations() -> Vec<(Kernel, Constants)> {
    use resnet_wgpu::gpu::ops::conv::{winograd, ConvAlgo};
    let mut all = Vec::new();
    let mut tiles = register_tiles();
    tiles.extend(
        resnet_wgpu::gpu::ops::conv::winograd::TUNING_TILES.map(|(tile_m, tile_n)| ConvTiles {
            tile_m,
            tile_n,
            tile_k: 4,
        }),
    );
    tiles.dedup_by_key(|t| (t.tile_m, t.tile_n));
    let mut seen = Vec::new();
    tiles.retain(|t| {
        !seen.contains(t) && {
            seen.push(*t);
            true
        }
    });
    for algo in [ConvAlgo::Winograd2, ConvAlgo::Winograd4] {
        for &tiles in &tiles {
            for (residual, relu) in EPILOGUES {
                for pre_act in [false, true] {
                    let c = ConvConfig {
                        algo,
                        tiles,
                        split_k: 1,
                    };
                    let p = ConvProblem {
                        residual,
                        relu,
                        pre_act,
                        ..problem(1, 14, 64, 64, 3, 1, 1, false)
                    };
                    for (spec, constants) in c.pipelines(&p) {
                        all.push((Kernel::named(spec.name).expect("listed"), constants));
                    }
                }
            }
        }
        let m = winograd::tile_side(algo).expect("a Winograd algorithm");
        all.push((Kernel::WinogradWeights, winograd::weight_constants(m)));
    }
    all
}

/// Everything above, and the kernels the engine runs without constants: every (kernel,
/// constants) pair a plan or the tuner can create a pipeline for.
pub fn every_specialisation() -> Vec<(Kernel, Constants)> {
    let mut all: Vec<(Kernel, Constants)> = Vec::new();
    for tiles in all_conv_tiles() {
        all.extend(
            dense_conv_constants(tiles)
                .into_iter()
                .map(|c| (Kernel::ConvTiled, c)),
        );
    }
    // The register kernel runs dense convs on CPU adapters, with every image and clip flag.
    for tiles in register_tiles() {
        all.extend(
            dense_conv_constants(tiles)
                .into_iter()
                .map(|c| (Kernel::ConvRegisters, c)),
        );
    }
    for (kernel, tiles) in grouped_tiles()
        .into_iter()
        .map(|t| (Kernel::ConvTiled, t))
        .chain(
            register_tiles()
                .into_iter()
                .map(|t| (Kernel::ConvRegisters, t)),
        )
    {
        for (residual, relu) in EPILOGUES {
            all.push((kernel, grouped_conv_constants(tiles, residual, relu)));
        }
    }
    all.extend(fold_bn_constants().into_iter().map(|c| (Kernel::FoldBn, c)));
    all.extend(
        conv_reduce_constants()
            .into_iter()
            .map(|c| (Kernel::ConvReduce, c)),
    );
    all.extend(tuning_candidates().into_iter().map(|(_, _, k, c)| (k, c)));
    all.extend(gemm_specialisations().into_iter().map(|(_, k, c)| (k, c)));
    all.extend(winograd_specialisations());
    for kernel in [
        Kernel::MaxPool,
        Kernel::Linear,
        Kernel::SqueezeExcite,
        Kernel::SeApply,
    ] {
        all.push((kernel, vec![]));
    }
    // The average pools read the input plain or pre-activated.
    for kernel in [Kernel::AvgPool, Kernel::GlobalAvgPool] {
        for pre_act in [0.0, 1.0] {
            all.push((kernel, vec![("PRE_ACT", pre_act)]));
        }
    }
    // Each once, whichever list found it first.
    let mut seen = std::collections::HashSet::new();
    all.retain(|(k, c)| seen.insert((*k, format!("{c:?}"))));
    all
}
