//! The GPU backend: wgpu + the WGSL kernels in `shaders/`.
//!
//! * [`GpuContext`]: instance, adapter, device and queue, with GPU errors (validation, out of
//!   memory, device lost) collected by callbacks and turned into `anyhow` errors at the next
//!   check, plus the submission / read-back counters.
//! * [`kernels`]: the compute pipelines, all built once up front.
//! * [`ops`]: one recorder per operation (linear layers, ReLU, softmax cross-entropy,
//!   reductions, optimizer, mini-batch gather), each with its typed parameter struct.
//! * [`mlp`]: a training step of any MLP as a loop over its layers, like `cpu::forward` /
//!   `cpu::backward`.
//! * [`buffers`]: the shared buffers and the per-pass ones (a Vec of per-layer activations).
//! * [`backend`]: [`GpuBackend`], the [`crate::backend::Backend`] that keeps data, weights,
//!   optimizer state, best weights and activations on the GPU; [`dump`]: its debug step.
//! * [`tune`]: the per-adapter choice of matmul strategy (timed once, cached on disk).

pub mod backend;
pub mod buffers;
pub mod dump;
pub mod kernels;
pub mod lbfgs;
pub mod mlp;
pub mod ops;
mod setup;
mod telemetry_history;
pub mod tune;

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};

pub use backend::GpuBackend;
pub use dump::StepDump;
pub use kernels::Strategy;

/// How to open and drive the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Adapter name substring (`--adapter`); None = the best adapter.
    pub adapter: Option<String>,
    /// Force a matmul strategy (`--matmul-kernel`); None = the cached or timed choice.
    pub matmul_kernel: Option<Strategy>,
    /// Cap on one image binding in bytes (tests use it to force chunking); None = the
    /// adapter's max_storage_buffer_binding_size.
    pub max_binding_bytes: Option<u64>,
    /// Print the matmul choice and timing notes on stderr.
    pub verbose: bool,
}

/// No adapter matched: the caller may fall back to the CPU (`--backend auto`).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("no GPU adapter found by wgpu. Install a Vulkan driver (on Debian/Ubuntu without a GPU, the software one: `apt-get install mesa-vulkan-drivers`, i.e. lavapipe) or run with `--backend cpu`")]
    NoAdapter,
    #[error(
        "no GPU adapter name contains {filter:?}; adapters found: {found}. See `rprop-lab devices`"
    )]
    NoMatch { filter: String, found: String },
}

/// The backends searched: the native compute-capable ones (WGPU_BACKEND overrides).
fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

/// Keeps Mesa's Vulkan device-select layer quiet on headless machines.
///
/// The layer (an implicit layer, active for every Vulkan app) asks the Wayland compositor
/// for the default GPU whenever the app enables VK_KHR_wayland_surface, which wgpu always
/// does; without an absolute XDG_RUNTIME_DIR, libwayland then prints
/// `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` to stderr, which reads
/// like an error of ours. With XDG_RUNTIME_DIR pointing at an empty private directory the
/// connection attempt fails silently and the layer falls back to its normal order. Only
/// done when the variable is unset or invalid, so real desktop sessions are untouched
/// (NODEVICE_SELECT=1 would also silence it but disables MESA_VK_DEVICE_SELECT).
///
/// Call it before spawning threads (`main` does, first thing): setting an environment
/// variable while another thread reads the environment is a data race in C. [`instance`]
/// calls it too (once per process) for library users and tests.
pub fn quiet_headless_wsi() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let valid = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|v| std::path::Path::new(&v).is_absolute());
        if valid {
            return;
        }
        let dir = std::env::temp_dir().join("rprop-lab-xdg-runtime");
        // Best effort: libwayland only needs an absolute path to try (and fail) to connect.
        #[cfg(unix)]
        let _ = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        };
        #[cfg(not(unix))]
        let _ = std::fs::create_dir(&dir);
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    });
}

pub fn instance() -> wgpu::Instance {
    quiet_headless_wsi();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds, best first (discrete, integrated, virtual, CPU).
pub fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(instance.enumerate_adapters(backends()));
    list.sort_by_key(|a| rank(a.get_info().device_type));
    list
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The best adapter, or the first whose name contains `filter` (case-insensitive).
pub fn select_adapter(
    instance: &wgpu::Instance,
    filter: Option<&str>,
) -> Result<wgpu::Adapter, AdapterError> {
    let list = adapters(instance);
    if list.is_empty() {
        return Err(AdapterError::NoAdapter);
    }
    match filter {
        None => Ok(list.into_iter().next().ok_or(AdapterError::NoAdapter)?),
        Some(f) => {
            let needle = f.to_lowercase();
            let names: Vec<String> = list.iter().map(|a| a.get_info().name).collect();
            list.into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&needle))
                .ok_or_else(|| AdapterError::NoMatch {
                    filter: f.to_string(),
                    found: names.join(", "),
                })
        }
    }
}

/// One line per adapter: name, backend, device type, driver and the limits a run needs.
pub fn describe_adapters() -> Vec<String> {
    let instance = instance();
    adapters(&instance)
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            let l = a.limits();
            format!(
                "[{i}] {} | backend {:?} | {:?} | driver {} {}\n    max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, \
                 max_storage_buffers_per_shader_stage {}, max_compute_invocations_per_workgroup {}, \
                 max_compute_workgroup_storage_size {} KiB, max_compute_workgroups_per_dimension {}",
                info.name,
                info.backend,
                info.device_type,
                info.driver,
                info.driver_info,
                l.max_storage_buffer_binding_size >> 20,
                l.max_buffer_size >> 20,
                l.max_storage_buffers_per_shader_stage,
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroup_storage_size >> 10,
                l.max_compute_workgroups_per_dimension,
            )
        })
        .collect()
}

/// What a run needs from the device, beyond the WebGPU defaults.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// Largest single buffer binding, in bytes.
    pub binding: u64,
    /// Largest buffer, in bytes.
    pub buffer: u64,
}

/// Counters of host/device traffic, for the closing note.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub submissions: u64,
    /// Buffers mapped to read back (each a wait for the device).
    pub read_backs: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Instance, adapter, device and queue, with error capture and counters.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
    pub counters: Counters,
}

/// The device limits to ask for: WebGPU's defaults, lowered where the adapter `have` is
/// weaker, raised to what `needs` and the kernels ask; fails naming the limit the adapter
/// (`name`) cannot meet.
fn limits_for(have: &wgpu::Limits, needs: Needs, name: &str) -> Result<wgpu::Limits> {
    let mut limits = wgpu::Limits::default().or_worse_values_from(have);
    let fail = |limit: &str, need: u64, got: u64| {
        anyhow!(
            "GPU adapter {name:?} cannot run this: it needs the limit {limit} >= {need} but allows only {got}"
        )
    };
    let need_buffer = needs.buffer.max(needs.binding);
    if needs.binding > have.max_storage_buffer_binding_size {
        return Err(fail(
            "max_storage_buffer_binding_size",
            needs.binding,
            have.max_storage_buffer_binding_size,
        ));
    }
    if need_buffer > have.max_buffer_size {
        return Err(fail("max_buffer_size", need_buffer, have.max_buffer_size));
    }
    limits.max_storage_buffer_binding_size =
        limits.max_storage_buffer_binding_size.max(needs.binding);
    limits.max_buffer_size = limits.max_buffer_size.max(need_buffer);
    // The texture strategy keeps a whole image set in one 2D array texture: ask for the
    // adapter's largest (cost nothing on lavapipe; the set is laid out to fit).
    limits.max_texture_dimension_2d = have.max_texture_dimension_2d;
    limits.max_texture_array_layers = have.max_texture_array_layers;
    for (limit, need, got) in [
        (
            "max_storage_buffers_per_shader_stage",
            kernels::MAX_STORAGE_BINDINGS,
            have.max_storage_buffers_per_shader_stage,
        ),
        (
            "max_compute_invocations_per_workgroup",
            256,
            have.max_compute_invocations_per_workgroup,
        ),
        (
            "max_compute_workgroup_size_x",
            256,
            have.max_compute_workgroup_size_x,
        ),
        (
            "max_compute_workgroup_storage_size",
            kernels::WORKGROUP_BYTES,
            have.max_compute_workgroup_storage_size,
        ),
    ] {
        if need > got {
            return Err(fail(limit, need as u64, got as u64));
        }
    }
    Ok(limits)
}

impl GpuContext {
    /// Opens the adapter matching `filter` with the limits `needs` asks for; fails naming the
    /// limit the adapter cannot meet.
    pub fn new(filter: Option<&str>, needs: Needs) -> Result<GpuContext> {
        let instance = instance();
        let adapter = select_adapter(&instance, filter)?;
        let info = adapter.get_info();
        let limits = limits_for(&adapter.limits(), needs, &info.name)?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rprop-lab"),
            // Subgroup operations, where offered, let the texture strategy share one fetch
            // among the lanes of a subgroup (see shaders/matmul_sg.wgsl).
            required_features: adapter.features() & wgpu::Features::SUBGROUP,
            required_limits: limits,
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .with_context(|| format!("cannot open GPU device {:?}", info.name))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = sink.lock() {
                v.push(format!("GPU device lost ({reason:?}): {msg}"));
            }
        });
        Ok(GpuContext {
            adapter,
            info,
            device,
            queue,
            errors,
            counters: Counters::default(),
        })
    }

    /// "llvmpipe (LLVM ..., 256 bits) (Vulkan)".
    pub fn describe(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Returns the first GPU error reported so far (validation, out of memory, device lost).
    pub fn check(&self) -> Result<()> {
        let errs = self
            .errors
            .lock()
            .map_err(|_| anyhow!("GPU error log poisoned"))?;
        if let Some(first) = errs.first() {
            bail!("GPU error on {:?}: {first}", self.info.name);
        }
        Ok(())
    }

    /// Submits one command buffer (counted).
    pub fn submit(&mut self, cmd: wgpu::CommandBuffer) {
        self.queue.submit(Some(cmd));
        self.counters.submissions += 1;
    }

    /// Waits for all submitted work, then reports any GPU error.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("GPU poll failed on {:?}: {e}", self.info.name))?;
        self.check()
    }

    /// Runs `f` with validation and out-of-memory errors captured, returning them as errors.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            bail!("GPU out of memory while {what}: {e}");
        }
        if let Some(e) = v {
            bail!("GPU validation error while {what}: {e}");
        }
        self.check()?;
        Ok(out)
    }

    /// Copies `size` bytes at `offset` of `src` (a COPY_SRC buffer) to the host. Slow path
    /// (its own submission) except when called by the per-epoch metrics read-back.
    pub fn read_buffer(&mut self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, size);
        self.submit(enc.finish());
        self.map_read(&staging, size)
    }

    /// Maps a MAP_READ buffer after the submission that fills it, copies it out, unmaps.
    pub fn map_read(&mut self, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = staging.slice(0..size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| anyhow!("GPU read-back was cancelled"))?
            .map_err(|e| anyhow!("GPU read-back failed: {e}"))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| anyhow!("GPU read-back could not map: {e}"))?
            .to_vec();
        staging.unmap();
        self.counters.read_backs += 1;
        self.counters.bytes_read += size;
        Ok(bytes)
    }

    /// Uploads bytes into a buffer (counted).
    pub fn write(&mut self, dst: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        self.queue.write_buffer(dst, offset, bytes);
        self.counters.bytes_written += bytes.len() as u64;
    }
}

/// The `devices` subcommand: every adapter wgpu finds.
pub fn devices() -> Result<()> {
    let lines = describe_adapters();
    if lines.is_empty() {
        return Err(AdapterError::NoAdapter.into());
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
