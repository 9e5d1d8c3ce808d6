//! The WGSL kernels: sources, bind-group layouts and a pipeline cache keyed by
//! (kernel, specialisation constants). Shaders are specialised only through `override`
//! constants, never by editing their text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::context::GpuContext;
use super::pipeline_cache::{DiskPipelineCache, PipelineCacheState};
use crate::error::{Error, Result};

/// Shader files, compiled into the binary.
pub const SHADER_FILES: [(&str, &str); 4] = [
    ("conv.wgsl", include_str!("../../shaders/conv.wgsl")),
    ("fold_bn.wgsl", include_str!("../../shaders/fold_bn.wgsl")),
    ("pool.wgsl", include_str!("../../shaders/pool.wgsl")),
    ("linear.wgsl", include_str!("../../shaders/linear.wgsl")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    Conv,
    /// Register-only implicit GEMM, no barriers (`direct` in conv.wgsl): CPU adapters, and
    /// grouped convs with groups of 4k channels.
    ConvDirect,
    /// Split-K reduction (`split_k_reduce` in conv.wgsl): adds the partial sums of a split
    /// conv and applies its epilogue.
    ConvReduce,
    FoldBn,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    Linear,
}

/// How a binding is used; the layouts are explicit so every binding exists whatever the
/// specialisation (a disabled residual still has its slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    Read,
    ReadWrite,
}

impl Kernel {
    pub const ALL: [Kernel; 8] = [
        Kernel::Conv,
        Kernel::ConvDirect,
        Kernel::ConvReduce,
        Kernel::FoldBn,
        Kernel::MaxPool,
        Kernel::AvgPool,
        Kernel::GlobalAvgPool,
        Kernel::Linear,
    ];

    pub fn file(self) -> &'static str {
        match self {
            Kernel::Conv | Kernel::ConvDirect | Kernel::ConvReduce => "conv.wgsl",
            Kernel::FoldBn => "fold_bn.wgsl",
            Kernel::MaxPool | Kernel::AvgPool | Kernel::GlobalAvgPool => "pool.wgsl",
            Kernel::Linear => "linear.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        SHADER_FILES
            .iter()
            .find(|(f, _)| *f == self.file())
            .map(|(_, s)| *s)
            .unwrap_or("")
    }

    pub fn entry(self) -> &'static str {
        match self {
            Kernel::MaxPool => "max_pool",
            Kernel::AvgPool => "avg_pool",
            Kernel::ConvDirect => "direct",
            Kernel::ConvReduce => "split_k_reduce",
            Kernel::GlobalAvgPool => "global_avg_pool",
            _ => "main",
        }
    }

    pub fn bindings(self) -> &'static [Binding] {
        use Binding::*;
        match self {
            // params, input, weight, bias, residual, output (the reduction reads the
            // partial sums as `input` and never touches `weight`)
            Kernel::Conv | Kernel::ConvDirect | Kernel::ConvReduce => {
                &[Uniform, Read, Read, Read, Read, ReadWrite]
            }
            // params, w_raw, gamma, beta, mean, var, w_out, b_out
            Kernel::FoldBn => &[Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite],
            // params, input, output
            Kernel::MaxPool | Kernel::AvgPool | Kernel::GlobalAvgPool => {
                &[Uniform, Read, ReadWrite]
            }
            // params, x, weight, bias, y
            Kernel::Linear => &[Uniform, Read, Read, Read, ReadWrite],
        }
    }
}

/// Specialisation constants, kept sorted so equal specialisations share one pipeline.
pub type Constants = Vec<(&'static str, f64)>;

type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

/// Shader modules, layouts and pipelines for one device.
pub struct Kernels {
    modules: BTreeMap<&'static str, wgpu::ShaderModule>,
    layouts: BTreeMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: Mutex<BTreeMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// Pipelines compiled and the time spent in their creation calls, summed over threads:
    /// what a cold start pays, logged by the engine (`-v`).
    compiled: AtomicUsize,
    compile_ns: AtomicU64,
    /// The driver's pipeline cache, kept on disk between runs where the device has one.
    disk: Option<DiskPipelineCache>,
    disk_state: PipelineCacheState,
}

/// Pipelines compiled so far and the summed time of their creation calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompileStats {
    pub pipelines: usize,
    pub time: Duration,
}

impl Kernels {
    /// Modules and layouts for `ctx`'s device, and its pipeline cache from disk (see
    /// `pipeline_cache`) where the device has one and disk caches are on.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let (device, checked) = (&ctx.device, ctx.checked_shaders);
        let start = Instant::now();
        let mut modules = BTreeMap::new();
        for (file, source) in SHADER_FILES {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            let module = if checked {
                device.create_shader_module(desc)
            } else {
                // SAFETY: every storage access in our kernels is guarded by the sizes in its
                // params, and the plan checks that each bound buffer holds at least those
                // sizes (see `executor::check_binding`); loops are bounded by the same params.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            };
            modules.insert(file, module);
        }
        log::info!(
            "{} shader modules created in {:.1} ms",
            modules.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
        let (disk, disk_state) =
            DiskPipelineCache::open(device, &ctx.adapter.get_info(), ctx.disk_cache.dir());
        let mut layouts = BTreeMap::new();
        for kernel in Kernel::ALL {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                .bindings()
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: match b {
                        Binding::Uniform => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage {
                                read_only: *b == Binding::Read,
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                    },
                    count: None,
                })
                .collect();
            let label = format!("{kernel:?}");
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            layouts.insert(kernel, (bgl, pl));
        }
        Ok(Kernels {
            modules,
            layouts,
            pipelines: Mutex::new(BTreeMap::new()),
            compiled: AtomicUsize::new(0),
            compile_ns: AtomicU64::new(0),
            disk,
            disk_state,
        })
    }

    /// Whether created pipelines are kept on disk, and where.
    pub fn pipeline_cache(&self) -> &PipelineCacheState {
        &self.disk_state
    }

    /// Writes the pipeline cache to disk if pipelines were created since the last save. Never
    /// fails: a cache that cannot be written is logged and the run goes on.
    pub fn save_pipeline_cache(&self) {
        if let Some(disk) = &self.disk {
            disk.save();
        }
    }

    /// Pipelines compiled since this device's kernels were made, and the time it took.
    pub fn compile_stats(&self) -> CompileStats {
        CompileStats {
            pipelines: self.compiled.load(Ordering::Relaxed),
            time: Duration::from_nanos(self.compile_ns.load(Ordering::Relaxed)),
        }
    }

    pub fn bind_group_layout(&self, kernel: Kernel) -> &wgpu::BindGroupLayout {
        &self.layouts[&kernel].0
    }

    /// The pipeline for `kernel` with `constants`, created on first use.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        constants: Constants,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let (key, constants) = canonical(kernel, constants);
        if let Some(p) = self.lock()?.get(&key) {
            return Ok(p.clone());
        }
        let pipeline = Arc::new(self.compile(device, kernel, &constants)?);
        Ok(self.lock()?.entry(key).or_insert(pipeline).clone())
    }

    /// Creates every pipeline of `requests` that does not exist yet, on up to
    /// `available_parallelism` threads: the driver work behind a pipeline (naga's translation
    /// of the specialised module, the driver's compile) is independent per pipeline, and a
    /// plan needs a dozen at once. Duplicates are created once. On failure the error is that
    /// of the first failing request in order; the pipelines created before it are kept.
    pub fn create_pipelines(
        &self,
        device: &wgpu::Device,
        requests: &[(Kernel, Constants)],
    ) -> Result<()> {
        let todo: Vec<(PipelineKey, Kernel, Constants)> = {
            let have = self.lock()?;
            let mut seen = BTreeSet::new();
            requests
                .iter()
                .map(|(kernel, constants)| {
                    let (key, constants) = canonical(*kernel, constants.clone());
                    (key, *kernel, constants)
                })
                .filter(|(key, ..)| !have.contains_key(key) && seen.insert(key.clone()))
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(todo.len());
        let start = Instant::now();
        // Workers take the next request in order and stop taking new ones after a failure,
        // so every request before a failed one was attempted: the first error in request
        // order is the same whatever the timing.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = || {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, kernel, constants)) = todo.get(i) else {
                    break;
                };
                let result = self.compile(device, *kernel, constants);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                done.push((i, result));
            }
            done
        };
        let done: Vec<(usize, Result<wgpu::ComputePipeline>)> = if threads == 1 {
            work()
        } else {
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        log::info!(
            "{} pipelines created in {:.1} ms on {threads} threads",
            done.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
        let mut results: Vec<Option<Result<wgpu::ComputePipeline>>> =
            todo.iter().map(|_| None).collect();
        for (i, result) in done {
            results[i] = Some(result);
        }
        let mut have = self.lock()?;
        for ((key, ..), result) in todo.into_iter().zip(results) {
            match result {
                Some(Ok(pipeline)) => {
                    have.entry(key).or_insert(Arc::new(pipeline));
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<PipelineKey, Arc<wgpu::ComputePipeline>>>> {
        self.pipelines
            .lock()
            .map_err(|_| Error::Gpu("pipeline cache poisoned".into()))
    }

    /// Creates one pipeline inside its own error scopes. Scopes are per thread in wgpu
    /// (`std::thread::ThreadId` keys its scope stacks), so this pushes and pops them on the
    /// thread that creates the pipeline, whichever thread that is.
    fn compile(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        constants: &Constants,
    ) -> Result<wgpu::ComputePipeline> {
        let label = format!("{kernel:?}{constants:?}");
        let start = Instant::now();
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // A driver that fails to compile a valid module reports an internal error.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&self.layouts[&kernel].1),
            module: &self.modules[kernel.file()],
            entry_point: Some(kernel.entry()),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every kernel writes workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: self.disk.as_ref().map(|d| &d.cache),
        });
        let v = pollster::block_on(validation.pop());
        let i = pollster::block_on(internal.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(i) {
            return Err(Error::Shader {
                name: label,
                msg: e.to_string(),
            });
        }
        if let Some(e) = o {
            return Err(Error::Gpu(format!("creating pipeline {label}: {e}")));
        }
        if let Some(disk) = &self.disk {
            disk.touched();
        }
        self.compiled.fetch_add(1, Ordering::Relaxed);
        self.compile_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(pipeline)
    }
}

/// A request in canonical form: constants sorted by name, so equal specialisations share one
/// pipeline whatever order they were listed in.
fn canonical(kernel: Kernel, mut constants: Constants) -> (PipelineKey, Constants) {
    constants.sort_by(|a, b| a.0.cmp(b.0));
    let key = (
        kernel,
        constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
    );
    (key, constants)
}

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

    /// Tiles of the register-only kernel (`direct`; for grouped convs, groups of a multiple
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

    /// Whether the conv kernel can run this configuration: register blocks of 4×4, every
    /// thread loading a fixed column of the A tile (threads a multiple of TILE_K), at most
    /// `A_LOADS_MAX` (32) A loads per thread, and at most 256 threads.
    pub fn is_valid(&self) -> bool {
        let t = self.threads();
        self.tile_m % 4 == 0
            && self.tile_n % 4 == 0
            && (1..=256).contains(&t)
            && self.tile_k > 0
            && t % self.tile_k == 0
            && self.tile_k * self.tile_m / t <= 32
            && (self.tile_k * self.tile_m) % t == 0
    }

    pub fn threads(&self) -> u32 {
        (self.tile_m / 4) * (self.tile_n / 4)
    }

    pub fn workgroup_bytes(&self) -> u32 {
        self.tile_k * (self.tile_m + self.tile_n) * 4
    }
}

/// Specialisation of the (dense) conv kernel.
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
