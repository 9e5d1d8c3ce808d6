//! Instance, adapter and device: choosing a GPU and opening it with the limits our plans need.

use std::time::Duration;

use crate::error::{Error, Result};

/// How long any wait on the GPU may take before it is reported as a hang.
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
    /// Force the register-only conv kernel (`Some(true)`) or the tiled one (`Some(false)`);
    /// `None` picks by adapter type (register-only on CPU adapters).
    pub register_kernels: Option<bool>,
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
    let (_, backends) = resolve(choice)?;
    let adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
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

/// An open device. The executor is the only other place that holds wgpu objects.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterSummary,
    pub limits: wgpu::Limits,
    pub checked_shaders: bool,
    /// CPU adapters (lavapipe, WARP) run the register-only conv kernel: their workgroup
    /// barriers are costly and their caches make workgroup-memory tiles pointless.
    pub prefer_register_kernels: bool,
}

impl GpuContext {
    pub fn new(options: &GpuOptions) -> Result<Self> {
        let (name, backends) = resolve(&options.adapter)?;
        let mut adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
        let available: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        if let Some(want) = &name {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        // Prefer real GPUs, and Vulkan/Metal/DX12 over GL for the same device.
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (rank(i.device_type), i.backend == wgpu::Backend::Gl)
        });
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            Error::NoAdapter(match &name {
                Some(n) => format!(
                    " matching `{n}` (available: {})",
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ),
                None => " (on Linux without a GPU, install Mesa's lavapipe: scripts/setup.sh)"
                    .to_string(),
            })
        })?;
        let info = AdapterSummary::of(&adapter.get_info());
        // Ask for everything the adapter offers: large networks and batches need the big
        // binding sizes; the plan checks each buffer against these limits.
        let limits = adapter.limits();
        // Timestamps for the profiler, where the adapter has them.
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("resnet-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            msg: e.to_string(),
        })?;
        device.set_device_lost_callback(|reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                log::error!("GPU device lost: {reason:?}: {msg}");
            }
        });
        log::info!("adapter: {info}");
        let prefer_register_kernels = options
            .register_kernels
            .unwrap_or(adapter.get_info().device_type == wgpu::DeviceType::Cpu);
        Ok(GpuContext {
            adapter,
            device,
            queue,
            info,
            limits,
            checked_shaders: options.checked_shaders,
            prefer_register_kernels,
        })
    }

    /// Blocks until the queue is idle, with a timeout so a hung GPU is an error, not a hang.
    pub fn wait_idle(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(GPU_TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they caught
    /// into an error naming `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        Ok(out)
    }
}
