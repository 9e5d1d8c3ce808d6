//! The generic kernel machinery: shader modules (compiled in), bind-group layouts and a
//! pipeline cache keyed by (kernel, specialisation constants). What each kernel is — its
//! file, entry point and bindings — lives with its op in `ops/`. Shaders are specialised only
//! through `override` constants, never by editing their text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::context::{GpuContext, ScopeErrors};
use super::pipeline_cache::{DiskPipelineCache, PipelineCacheState};
use crate::error::{Error, Result};
use crate::platform::Instant;

/// Shader files, compiled into the binary.
pub const SHADER_FILES: [(&str, &str); 7] = [
    ("conv.wgsl", include_str!("../../shaders/conv.wgsl")),
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("fold_bn.wgsl", include_str!("../../shaders/fold_bn.wgsl")),
    ("pool.wgsl", include_str!("../../shaders/pool.wgsl")),
    ("linear.wgsl", include_str!("../../shaders/linear.wgsl")),
    ("se.wgsl", include_str!("../../shaders/se.wgsl")),
    ("winograd.wgsl", include_str!("../../shaders/winograd.wgsl")),
];

/// What the generic machinery needs to know of one kernel: its shader file, entry point and
/// bindings. Each op file declares its kernels' specs next to the code that dispatches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    /// Labels the layout, the pipelines and their errors (`ConvTiled`, `MaxPool`, …).
    pub name: &'static str,
    pub file: &'static str,
    pub entry: &'static str,
    /// In binding order; the layouts are explicit so every binding exists whatever the
    /// specialisation (a disabled residual still has its slot).
    pub bindings: &'static [Binding],
}

impl KernelSpec {
    /// The WGSL source of the kernel's file.
    pub fn source(&self) -> &'static str {
        SHADER_FILES
            .iter()
            .find(|(f, _)| *f == self.file)
            .map(|(_, s)| *s)
            .unwrap_or("")
    }
}

/// How a binding is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    Read,
    ReadWrite,
}

/// Specialisation constants, kept sorted so equal specialisations share one pipeline.
pub type Constants = Vec<(&'static str, f64)>;

type PipelineKey = (&'static str, Vec<(&'static str, u64)>);

/// Shader modules, layouts and pipelines for one device.
pub struct Kernels {
    modules: BTreeMap<&'static str, wgpu::ShaderModule>,
    layouts: BTreeMap<&'static str, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: Mutex<BTreeMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// Pipelines compiled and the time spent in their creation calls, summed over threads:
    /// what a cold start pays, logged by the engine (`-v`).
    compiled: AtomicUsize,
    compile_ns: AtomicU64,
    /// The driver's pipeline cache, kept on disk between runs where the device has one.
    disk: Option<DiskPipelineCache>,
    disk_state: PipelineCacheState,
    /// The device's error-scope results that are known only later (in a browser).
    scope_errors: Arc<ScopeErrors>,
}

/// Pipelines compiled so far and the summed time of their creation calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompileStats {
    pub pipelines: usize,
    pub time: Duration,
}

impl Kernels {
    /// Modules for `ctx`'s device, layouts for `kernels`, and the pipeline cache from disk
    /// (see `pipeline_cache`) where the device has one and disk caches are on.
    pub fn new(ctx: &GpuContext, kernels: &[KernelSpec]) -> Result<Self> {
        let device = &ctx.device;
        let start = Instant::now();
        // One module per file, in the context's precision (see `precision`).
        let modules: BTreeMap<_, _> = SHADER_FILES
            .iter()
            .map(|&(file, source)| {
                let source = ctx.precision.shader_source(file, source)?;
                Ok((file, shader_module(ctx, file, source)))
            })
            .collect::<Result<_>>()?;
        log::info!(
            "{} {} shader modules created in {:.1} ms",
            modules.len(),
            ctx.precision,
            start.elapsed().as_secs_f64() * 1e3
        );
        let (disk, disk_state) =
            DiskPipelineCache::open(device, &ctx.adapter.get_info(), ctx.disk_cache.dir());
        let layouts = kernels
            .iter()
            .map(|k| (k.name, layout(device, k)))
            .collect();
        Ok(Kernels {
            modules,
            layouts,
            pipelines: Mutex::new(BTreeMap::new()),
            compiled: AtomicUsize::new(0),
            compile_ns: AtomicU64::new(0),
            disk,
            disk_state,
            scope_errors: ctx.scope_errors.clone(),
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

    fn layout_of(
        &self,
        kernel: KernelSpec,
    ) -> Result<&(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
        self.layouts
            .get(kernel.name)
            .ok_or_else(|| Error::Gpu(format!("kernel {} has no layout", kernel.name)))
    }

    /// A bind group with `buffers` in `kernel`'s binding order.
    pub fn bind(
        &self,
        device: &wgpu::Device,
        kernel: KernelSpec,
        label: &str,
        buffers: &[&wgpu::Buffer],
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        Ok(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout_of(kernel)?.0,
            entries: &entries,
        }))
    }

    /// The pipeline for `kernel` with `constants`, created on first use.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        kernel: impl Into<KernelSpec>,
        constants: Constants,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let kernel = kernel.into();
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
    pub fn create_pipelines<K: Into<KernelSpec> + Copy>(
        &self,
        device: &wgpu::Device,
        requests: &[(K, Constants)],
    ) -> Result<()> {
        let todo: Vec<(PipelineKey, KernelSpec, Constants)> = {
            let have = self.lock()?;
            let mut seen = BTreeSet::new();
            requests
                .iter()
                .map(|(kernel, constants)| {
                    let kernel: KernelSpec = (*kernel).into();
                    let (key, constants) = canonical(kernel, constants.clone());
                    (key, kernel, constants)
                })
                .filter(|(key, ..)| !have.contains_key(key) && seen.insert(key.clone()))
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let results = self.compile_in_parallel(device, &todo);
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

    /// Compiles `todo` on up to `available_parallelism` threads. Per request, in order: its
    /// pipeline or error, or None when a failure elsewhere stopped the work before it.
    fn compile_in_parallel(
        &self,
        device: &wgpu::Device,
        todo: &[(PipelineKey, KernelSpec, Constants)],
    ) -> Vec<Option<Result<wgpu::ComputePipeline>>> {
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
        results
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
        kernel: KernelSpec,
        constants: &Constants,
    ) -> Result<wgpu::ComputePipeline> {
        let label = format!("{}{constants:?}", kernel.name);
        let layout = &self.layout_of(kernel)?.1;
        let start = Instant::now();
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // A driver that fails to compile a valid module reports an internal error.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(layout),
            module: &self.modules[kernel.file],
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every kernel writes workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: self.disk.as_ref().map(|d| &d.cache),
        });
        // Popped innermost first, now; their results may come later (in a browser).
        let (v, i, o) = (validation.pop(), internal.pop(), oom.pop());
        let caught = async move {
            let (v, i, o) = (v.await, i.await, o.await);
            match (v.or(i), o) {
                (Some(e), _) => Some(Error::Shader {
                    name: label,
                    msg: e.to_string(),
                }),
                (None, Some(e)) => Some(Error::Gpu(format!("creating pipeline {label}: {e}"))),
                (None, None) => None,
            }
        };
        if let Some(e) = self.scope_errors.now_or_at_settle(caught) {
            return Err(e);
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
fn canonical(kernel: KernelSpec, mut constants: Constants) -> (PipelineKey, Constants) {
    constants.sort_by(|a, b| a.0.cmp(b.0));
    let key = (
        kernel.name,
        constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
    );
    (key, constants)
}

/// A shader module, created without runtime bounds checks unless `--checked-shaders`.
fn shader_module(
    ctx: &GpuContext,
    file: &str,
    source: std::borrow::Cow<'static, str>,
) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(file),
        source: wgpu::ShaderSource::Wgsl(source),
    };
    if ctx.checked_shaders {
        return ctx.device.create_shader_module(desc);
    }
    // SAFETY: every storage access in our kernels is guarded by the sizes in its uniform,
    // and before a step is built its op checks that each bound buffer holds those sizes
    // and fits the adapter (`limits::check_size`, `u32_of`, the plan's `check_limits`,
    // `ConvConfig::check`); loops are bounded by the same uniforms.
    unsafe {
        ctx.device
            .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
    }
}

/// The explicit bind-group and pipeline layouts of one kernel.
fn layout(
    device: &wgpu::Device,
    kernel: &KernelSpec,
) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
    let buffer = |ty| wgpu::BindingType::Buffer {
        ty,
        has_dynamic_offset: false,
        min_binding_size: None,
    };
    let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: buffer(match b {
                Binding::Uniform => wgpu::BufferBindingType::Uniform,
                Binding::Read | Binding::ReadWrite => wgpu::BufferBindingType::Storage {
                    read_only: *b == Binding::Read,
                },
            }),
            count: None,
        })
        .collect();
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(kernel.name),
        entries: &entries,
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(kernel.name),
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 0,
    });
    (bgl, pl)
}

/// Where a `#[repr(C)]` uniform struct puts each field, to be checked against the WGSL
/// `Params` struct of `file` by naga reflection (tests/uniforms.rs): same members in the
/// same order at the same offsets, and the Rust size the WGSL size rounded up to 16 bytes.
#[derive(Clone, Copy, Debug)]
pub struct UniformLayout {
    pub file: &'static str,
    /// The Rust struct, for messages.
    pub name: &'static str,
    pub size: usize,
    /// `(WGSL member name, byte offset)`; padding fields are left out.
    pub fields: &'static [(&'static str, usize)],
}

/// The [`UniformLayout`] of a uniform struct: `uniform_layout!("conv.wgsl", ConvUniform,
/// [batch, in_h, …])`.
#[macro_export]
macro_rules! uniform_layout {
    ($file:expr, $ty:ty, [$($field:ident),* $(,)?]) => {
        $crate::gpu::kernels::UniformLayout {
            file: $file,
            name: stringify!($ty),
            size: ::std::mem::size_of::<$ty>(),
            fields: &[$((stringify!($field), ::std::mem::offset_of!($ty, $field))),*],
        }
    };
}
