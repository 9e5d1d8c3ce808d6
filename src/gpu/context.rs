//! Instance, adapter and device: choosing a GPU and opening it with the limits our plans need.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::precision::Precision;
use crate::error::{Error, Result};
use crate::platform;

/// How long any wait on the GPU may take before it is reported as a hang (the default of
/// [`GpuContext::set_timeout`]). Generous: a large batch on a software adapter takes minutes.
pub const GPU_TIMEOUT: Duration = Duration::from_secs(600);

/// Which adapter to open. Empty fields fall back to `WGPU_ADAPTER_NAME` / `WGPU_BACKEND`, then
/// to the best adapter wgpu offers (discrete over integrated over software).
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
    /// `vulkan`, `metal`, `dx12` or `gl`.
    pub backend: Option<String>,
}

/// Options of the device and its shaders.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub adapter: AdapterChoice,
    /// Create every shader with wgpu's runtime bounds checks (slow on NVIDIA; a safety net
    /// and a second test configuration). Off by default: the plan proves indices in range.
    pub checked_shaders: bool,
    /// Force the `registers` conv kernel (`Some(true)`) or the `tiled` one (`Some(false)`);
    /// `None` picks by adapter type (`registers` on CPU adapters).
    pub prefer_registers: Option<bool>,
    /// Whether stride-1 3×3 convs run Winograd (see [`WinogradChoice`]).
    pub winograd: WinogradChoice,
    /// Where tuning results and compiled pipelines are cached between runs.
    pub disk_cache: super::disk_cache::DiskCache,
    /// How activations and weights are stored; f16 needs the adapter's `SHADER_F16` and is
    /// refused (never silently dropped) where it is missing.
    pub precision: Precision,
}

/// Whether stride-1 3×3 dense convs run Winograd: as the heuristic (and tuning) decide,
/// never, or wherever it can with output tiles of 2×2 or 4×4. Forcing the conv kernel
/// (`prefer_registers`) turns `Auto` into `Off`; anything but `Auto` ignores tuning results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WinogradChoice {
    #[default]
    Auto,
    Off,
    Tile2,
    Tile4,
}

/// One line about an adapter, for `resnet adapters` and logs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
}

impl AdapterSummary {
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, {} {})",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::Usage(format!(
            "unknown backend `{other}` (use vulkan, metal, dx12 or gl)"
        ))),
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn resolve(choice: &AdapterChoice) -> Result<(Option<String>, wgpu::Backends)> {
    let name = choice
        .name
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .filter(|s| !s.is_empty());
    let backends = match choice
        .backend
        .clone()
        .or_else(|| std::env::var("WGPU_BACKEND").ok())
        .filter(|s| !s.is_empty())
    {
        Some(b) => b
            .split(',')
            .map(|s| parse_backend(s.trim()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(wgpu::Backends::empty(), |a, b| a | b),
        None => wgpu::Backends::all(),
    };
    Ok((name, backends))
}

/// Every adapter wgpu can see on the chosen backends.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<AdapterSummary>> {
    platform::block_on(list_adapters_async(choice), "list_adapters_async")
}

/// [`list_adapters`] without blocking (a browser offers one adapter, or none).
pub async fn list_adapters_async(choice: &AdapterChoice) -> Result<Vec<AdapterSummary>> {
    let (_, backends) = resolve(choice)?;
    let adapters = instance(backends).enumerate_adapters(backends).await;
    Ok(adapters
        .iter()
        .map(|a| AdapterSummary::of(&a.get_info()))
        .collect())
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// An open device. Only `gpu/` holds wgpu objects: the kernels, the ops' steps and the
/// engine's plans are made on this device.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterSummary,
    pub limits: wgpu::Limits,
    pub checked_shaders: bool,
    /// How every engine on this device stores activations and weights.
    pub precision: Precision,
    /// The `registers` conv kernel is the default here: CPU adapters (lavapipe, WARP), whose
    /// workgroup barriers are costly and caches make workgroup-memory tiles pointless, or
    /// forced (`GpuOptions::prefer_registers`).
    pub prefer_registers: bool,
    /// The user named the conv kernel (`GpuOptions::prefer_registers`): tuning results are
    /// not used.
    pub conv_kernel_forced: bool,
    /// Winograd as asked (`Off` where the conv kernel was forced and Winograd not named).
    pub winograd: WinogradChoice,
    /// Where tuning results and compiled pipelines are kept between runs.
    pub disk_cache: super::disk_cache::DiskCache,
    /// Why the device can no longer be used (lost, or a wait timed out); set once, by the
    /// device-lost callback or by a timeout, and checked before every use.
    broken: Arc<OnceLock<String>>,
    /// An error wgpu raised outside any error scope, reported by the next check.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// What error scopes caught, where that is known only later (in a browser).
    pub(crate) scope_errors: Arc<ScopeErrors>,
    timeout_ms: AtomicU64,
}

/// What a set of popped error scopes caught, as our error; known once the future resolves.
type Caught = Pin<Box<dyn Future<Output = Option<Error>> + Send>>;

/// Error-scope results not known yet. Natively wgpu knows them when the scope is popped; a
/// browser answers only after control has gone back to its event loop, so there they wait
/// here and [`GpuContext::settle`] reports the first (every async entry point settles before
/// it returns).
#[derive(Default)]
pub(crate) struct ScopeErrors {
    pending: Mutex<Vec<Caught>>,
}

impl ScopeErrors {
    /// What `caught` holds: natively at once; in a browser, if it is not known yet, `None`
    /// now and the error (if any) at the next [`GpuContext::settle`].
    pub(crate) fn now_or_at_settle(
        &self,
        caught: impl Future<Output = Option<Error>> + Send + 'static,
    ) -> Option<Error> {
        match platform::now_or_later(Box::pin(caught) as Caught) {
            Ok(error) => error,
            Err(later) => {
                if let Ok(mut pending) = self.pending.lock() {
                    pending.push(later);
                }
                None
            }
        }
    }

    /// Awaits every pending result; the first error, in the order the scopes were popped.
    async fn settle(&self) -> Result<()> {
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Err(Error::Gpu("error-scope queue poisoned".into())),
        };
        let mut first = None;
        for caught in pending {
            let error = caught.await;
            first = first.or(error);
        }
        first.map_or(Ok(()), Err)
    }
}

/// The adapter `choice` names (or the best one): real GPUs first, and Vulkan/Metal/DX12
/// over GL for the same device. A choice that matches nothing is a user error listing what
/// there is.
async fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let (name, backends) = resolve(choice)?;
    let mut adapters = instance(backends).enumerate_adapters(backends).await;
    if let Some(want) = &name {
        let want = want.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (rank(i.device_type), i.backend == wgpu::Backend::Gl)
    });
    match adapters.into_iter().next() {
        Some(adapter) => Ok(adapter),
        None => Err(no_adapter(name, backends).await),
    }
}

/// Why no adapter matched: none at all, or none of the name and backends asked for.
async fn no_adapter(name: Option<String>, backends: wgpu::Backends) -> Error {
    let restricted = backends != wgpu::Backends::all();
    if name.is_none() && !restricted {
        return Error::NoAdapter(platform::NO_ADAPTER_HINT.into());
    }
    // The user asked for something that is not there: list what is, on any backend.
    let everywhere: Vec<String> = list_adapters_async(&AdapterChoice {
        name: None,
        backend: Some("vulkan,metal,dx12,gl".into()),
    })
    .await
    .map(|l| {
        l.iter()
            .map(|a| format!("{} ({})", a.name, a.backend))
            .collect()
    })
    .unwrap_or_default();
    let mut wanted = Vec::new();
    if let Some(n) = &name {
        wanted.push(format!("name `{n}`"));
    }
    if restricted {
        use wgpu::Backends as B;
        let names: Vec<&str> = [
            (B::VULKAN, "vulkan"),
            (B::METAL, "metal"),
            (B::DX12, "dx12"),
            (B::GL, "gl"),
        ]
        .into_iter()
        .filter(|(b, _)| backends.contains(*b))
        .map(|(_, n)| n)
        .collect();
        wanted.push(format!("backend {}", names.join(",")));
    }
    Error::AdapterNotFound {
        wanted: wanted.join(" and "),
        available: if everywhere.is_empty() {
            "none".into()
        } else {
            everywhere.join(", ")
        },
    }
}

/// The features `precision` requires: f16 storage needs `SHADER_F16`, and an adapter without
/// it is an error naming both — never a silent fall back to f32.
fn features_for(
    precision: Precision,
    adapter: &wgpu::Adapter,
    info: &AdapterSummary,
) -> Result<wgpu::Features> {
    if precision == Precision::F32 {
        return Ok(wgpu::Features::empty());
    }
    if !adapter.features().contains(wgpu::Features::SHADER_F16) {
        return Err(Error::MissingFeature {
            adapter: info.to_string(),
            feature: "SHADER_F16".into(),
            what: "--precision f16".into(),
        });
    }
    Ok(wgpu::Features::SHADER_F16)
}

/// The device with `limits` (the adapter's unless imposed), the features `needed`, and the
/// features we use where the adapter has them.
async fn open_device(
    adapter: &wgpu::Adapter,
    info: &AdapterSummary,
    limits: &wgpu::Limits,
    needed: wgpu::Features,
) -> Result<(wgpu::Device, wgpu::Queue)> {
    // Timestamps for the profiler, and a pipeline cache that can be kept on disk (see
    // `pipeline_cache`), where the adapter has them.
    let features = adapter.features()
        & (wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::PIPELINE_CACHE)
        | needed;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("resnet-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        })
        .await
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            msg: e.to_string(),
        })?;
    Ok((device, queue))
}

/// The device-lost callback (sets the sticky "broken" state) and an uncaptured-error
/// handler in place of wgpu's panicking default.
fn error_handlers(device: &wgpu::Device) -> (Arc<OnceLock<String>>, Arc<Mutex<Option<String>>>) {
    let broken = Arc::new(OnceLock::new());
    let lost = broken.clone();
    device.set_device_lost_callback(move |reason, msg| {
        // `Destroyed` is also how a device we drop ends: nobody is left to tell then.
        if reason != wgpu::DeviceLostReason::Destroyed {
            log::error!("GPU device lost: {reason:?}: {msg}");
        }
        let detail = if msg.is_empty() {
            format!("{reason:?}")
        } else {
            format!("{reason:?}: {msg}")
        };
        let _ = lost.set(format!("the GPU device was lost ({detail})"));
    });
    // wgpu's default handler panics on an error raised outside an error scope; record
    // it instead, so the caller gets an error.
    let uncaptured = Arc::new(Mutex::new(None));
    let sink = uncaptured.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        log::error!("uncaptured GPU error: {e}");
        if let Ok(mut slot) = sink.lock() {
            slot.get_or_insert_with(|| e.to_string());
        }
    }));
    (broken, uncaptured)
}

impl GpuContext {
    /// The device `options` choose, with everything its adapter offers: large networks and
    /// batches need the big binding sizes; the plan checks each buffer against these limits.
    pub fn new(options: &GpuOptions) -> Result<Self> {
        platform::block_on(Self::open(options, None), "GpuContext::new_async")
    }

    /// [`GpuContext::new`] without blocking: the way to open a device in a browser.
    pub async fn new_async(options: &GpuOptions) -> Result<Self> {
        Self::open(options, None).await
    }

    /// Like [`GpuContext::new`] with `limits` imposed instead of the adapter's own (each must
    /// be within the adapter's): with `wgpu::Limits::default()`, WebGPU's defaults, the plans
    /// are those of a browser that grants no more.
    pub fn with_limits(options: &GpuOptions, limits: wgpu::Limits) -> Result<Self> {
        platform::block_on(Self::open(options, Some(limits)), "GpuContext::new_async")
    }

    async fn open(options: &GpuOptions, limits: Option<wgpu::Limits>) -> Result<Self> {
        let adapter = choose_adapter(&options.adapter).await?;
        let info = AdapterSummary::of(&adapter.get_info());
        let limits = limits.unwrap_or_else(|| adapter.limits());
        let needed = features_for(options.precision, &adapter, &info)?;
        let (device, queue) = open_device(&adapter, &info, &limits, needed).await?;
        let (broken, uncaptured) = error_handlers(&device);
        log::info!("adapter: {info}");
        let prefer_registers = options
            .prefer_registers
            .unwrap_or(adapter.get_info().device_type == wgpu::DeviceType::Cpu);
        Ok(GpuContext {
            adapter,
            device,
            queue,
            info,
            limits,
            checked_shaders: options.checked_shaders,
            precision: options.precision,
            prefer_registers,
            conv_kernel_forced: options.prefer_registers.is_some()
                || options.winograd != WinogradChoice::Auto,
            winograd: match (options.winograd, options.prefer_registers) {
                (WinogradChoice::Auto, Some(_)) => WinogradChoice::Off,
                (w, _) => w,
            },
            disk_cache: options.disk_cache.clone(),
            broken,
            uncaptured,
            scope_errors: Arc::default(),
            timeout_ms: AtomicU64::new(GPU_TIMEOUT.as_millis() as u64),
        })
    }

    /// A CPU adapter (lavapipe, WARP): no split-K, `registers` kernels by default.
    pub fn is_cpu(&self) -> bool {
        self.adapter.get_info().device_type == wgpu::DeviceType::Cpu
    }

    /// How long a wait on the GPU may take before it is an error.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// `Err(Error::Gpu)` once the device is lost or has timed out, and for an error wgpu
    /// raised outside an error scope since the last check.
    pub fn check(&self) -> Result<()> {
        if let Some(why) = self.broken.get() {
            return Err(Error::Gpu(format!(
                "{why}; the device cannot be used any more (load the network again)"
            )));
        }
        let pending = self.uncaptured.lock().ok().and_then(|mut e| e.take());
        match pending {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Waits for what error scopes caught where that is known only later (in a browser), then
    /// [`GpuContext::check`]s: every `async` entry point ends with it. Natively it only checks.
    pub async fn settle(&self) -> Result<()> {
        self.scope_errors.settle().await?;
        self.check()
    }

    /// Marks the device unusable: every later call fails with `why`.
    fn mark_broken(&self, why: String) {
        log::error!("{why}");
        let _ = self.broken.set(why);
    }

    /// Blocks until the queue is idle; see [`GpuContext::wait_for`].
    pub fn wait_idle(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// Blocks until `submission` (or all work) has finished, at most [`GpuContext::timeout`]:
    /// a hung GPU is an error, not a hang. The device counts as broken after a timeout,
    /// since the work still queued on it may finish at any time or never.
    pub fn wait_for(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.check()?;
        let timeout = self.timeout();
        match self.device.poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: Some(timeout),
        }) {
            Ok(_) => self.check(),
            Err(wgpu::PollError::Timeout) => {
                self.mark_broken(format!("the GPU did not finish within {timeout:?}"));
                self.check()
            }
            Err(e) => {
                // Work on a lost device is dropped silently (WebGPU reports no errors after
                // a loss), so its submission index is unknown to the wait; a plain poll lets
                // wgpu run the device-lost callback, and the loss is the error to report.
                let _ = self.device.poll(wgpu::PollType::Poll);
                self.check()?;
                Err(Error::Gpu(format!("waiting for the GPU: {e}")))
            }
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they caught
    /// into an error naming `what`. Fails first if the device is already unusable.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        // Popped innermost first, now; their results may come later (in a browser).
        let (v, o) = (validation.pop(), oom.pop());
        let what = what.to_owned();
        let caught = async move {
            let (v, o) = (v.await, o.await);
            v.or(o).map(|e| Error::Gpu(format!("{what}: {e}")))
        };
        let caught = self.scope_errors.now_or_at_settle(caught);
        // A lost device explains every error after it; say so rather than the symptom.
        self.check()?;
        caught.map_or(Ok(out), Err)
    }
}

impl GpuOptions {
    /// Convenience for tests and the CLI: the default adapter with checks as given.
    pub fn with_checks(checked_shaders: bool) -> Self {
        GpuOptions {
            checked_shaders,
            ..Default::default()
        }
    }
}
