//! Compute devices: listing wgpu adapters, choosing one, and falling back to Burn's CPU backend.
//!
//! We enumerate adapters ourselves (Vulkan, Metal, DX12: never GL, on which CubeCL cannot run
//! our kernels), pick one, and ask Burn to open exactly that adapter; Burn returns its wgpu
//! device and queue, which our WGSL kernels share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::prelude::*;
use burn::tensor::wgpu::{wgpu, WgpuBackend, WgpuSetup};

use crate::error::{Error, Result, Setting};
use crate::gpu::{Gpu, GpuContext};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Gpu,
    Cpu,
}

crate::choice::choice!(DeviceChoice {
    Auto => "auto": "the best wgpu adapter, else the CPU backend",
    Gpu => "gpu": "a wgpu adapter, or an error",
    Cpu => "cpu": "Burn's CPU backend",
});

/// One wgpu adapter as `gradsift devices` shows it.
#[derive(Debug, Clone)]
pub struct AdapterEntry {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
}

impl AdapterEntry {
    /// One line: index, name, backend, type, driver.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "[{}] {} ({:?}, {:?}, driver {} {})",
            self.index, i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }
}

fn backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
}

/// Mesa's Vulkan drivers print an alarming `error: XDG_RUNTIME_DIR is invalid` on headless
/// Linux machines where that variable is unset; give them a private directory instead. One per
/// user, reused by every run (a directory per process would pile up in the temporary
/// directory), and only if it is ours: another user's, or a link, leaves the variable unset.
fn quiet_headless_vulkan() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            // /proc/self belongs to the process's effective user.
            let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else { return };
            let dir = std::env::temp_dir().join(format!("gradsift-runtime-{uid}"));
            let _ = std::fs::create_dir(&dir);
            let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
            if ours && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok() {
                std::env::set_var("XDG_RUNTIME_DIR", &dir);
            }
        }
    });
}

/// Every adapter on the supported graphics APIs, in enumeration order.
pub fn list_adapters() -> Vec<AdapterEntry> {
    quiet_headless_vulkan();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backends(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends()))
        .iter()
        .enumerate()
        .map(|(index, a)| AdapterEntry { index, info: a.get_info() })
        .collect()
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Parses `CUBECL_WGPU_DEFAULT_DEVICE` (`DiscreteGpu(n)`, `IntegratedGpu(n)`, `VirtualGpu(n)`,
/// `Other(n)`, `Cpu`) into a device type and the index among adapters of that type.
fn env_override() -> Result<Option<(wgpu::DeviceType, usize)>> {
    let Ok(v) = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE") else { return Ok(None) };
    if v == "Cpu" {
        return Ok(Some((wgpu::DeviceType::Cpu, 0)));
    }
    for (prefix, t) in [
        ("DiscreteGpu(", wgpu::DeviceType::DiscreteGpu),
        ("IntegratedGpu(", wgpu::DeviceType::IntegratedGpu),
        ("VirtualGpu(", wgpu::DeviceType::VirtualGpu),
        ("Other(", wgpu::DeviceType::Other),
    ] {
        if let Some(n) = v.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')).and_then(|n| n.parse().ok()) {
            return Ok(Some((t, n)));
        }
    }
    Err(Error::Environment {
        var: "CUBECL_WGPU_DEFAULT_DEVICE",
        value: v.to_string(),
        message: "not DiscreteGpu(n), IntegratedGpu(n), VirtualGpu(n), Other(n) or Cpu".into(),
    })
}

/// The best adapter of any type (discrete GPU first, software adapters such as lavapipe last),
/// or the one `CUBECL_WGPU_DEFAULT_DEVICE` names.
pub(crate) fn best_adapter(adapters: &[AdapterEntry]) -> Result<Option<usize>> {
    if let Some((t, n)) = env_override()? {
        return Ok(adapters.iter().filter(|a| a.info.device_type == t).nth(n).map(|a| a.index));
    }
    Ok(adapters.iter().min_by_key(|a| (type_rank(a.info.device_type), a.index)).map(|a| a.index))
}

/// The adapter `--device auto` picks: like `best_adapter`, except that a software (CPU-type)
/// adapter is not taken unless `CUBECL_WGPU_DEFAULT_DEVICE` asks for it: Burn's CPU backend is
/// about ten times faster than lavapipe (measured in docs/performance.md).
pub fn auto_pick(adapters: &[AdapterEntry]) -> Result<Option<usize>> {
    let explicit = env_override()?.is_some();
    Ok(best_adapter(adapters)?.filter(|&i| explicit || adapters[i].info.device_type != wgpu::DeviceType::Cpu))
}

/// Resolves `--adapter` (an index or a case-insensitive name substring).
pub(crate) fn find_adapter(adapters: &[AdapterEntry], spec: &str) -> Result<usize> {
    if let Ok(i) = spec.parse::<usize>() {
        return adapters
            .iter()
            .find(|a| a.index == i)
            .map(|a| a.index)
            .ok_or_else(|| Error::NoSuchAdapter(format!("adapter {i}: there are {} adapters", adapters.len())));
    }
    let lower = spec.to_lowercase();
    adapters
        .iter()
        .find(|a| a.info.name.to_lowercase().contains(&lower))
        .map(|a| a.index)
        .ok_or_else(|| Error::NoSuchAdapter(format!("adapter `{spec}` matches no adapter")))
}

/// A device ready to compute on.
#[derive(Clone)]
pub struct Compute {
    /// The Burn device, autodiff enabled.
    pub device: Device,
    /// Our kernels' handles when on a GPU adapter.
    pub gpu: Option<Gpu>,
    /// Human-readable description.
    pub label: String,
    /// A one-line notice to show (e.g. why we fell back to the CPU).
    pub notice: Option<String>,
}

impl Compute {
    /// The CPU backend: Burn's Flex (pure Rust; with its threads, SIMD kernels and gemm's
    /// AVX-512 kernel it computes gradients at SmolLM2's shape 1.8–2.1× faster than NdArray, see
    /// docs/performance.md).
    pub fn cpu() -> Compute {
        Self::cpu_flex()
    }

    /// The other CPU backend, NdArray (its matrix products in OpenBLAS with the `openblas`
    /// feature): an independent implementation for `doctor` to check [`Self::cpu`] against, and
    /// for `bench` to compare with. Only in builds with the `ndarray` feature (Burn deprecates
    /// NdArray, and it is a tenth of a cold build).
    #[cfg(feature = "ndarray")]
    pub fn cpu_other() -> Compute {
        Self::cpu_ndarray()
    }

    /// Burn's Flex backend.
    fn cpu_flex() -> Compute {
        Compute { device: Device::flex().autodiff(), gpu: None, label: "cpu (burn flex backend)".into(), notice: None }
    }

    /// Burn's deprecated NdArray backend (its matrix products in OpenBLAS with the `openblas`
    /// feature).
    #[allow(deprecated)]
    #[cfg(feature = "ndarray")]
    fn cpu_ndarray() -> Compute {
        let label = if cfg!(feature = "openblas") {
            "cpu (burn ndarray backend + OpenBLAS)"
        } else {
            "cpu (burn ndarray backend)"
        };
        Compute { device: Device::ndarray().autodiff(), gpu: None, label: label.into(), notice: None }
    }

    /// True when running on a wgpu adapter.
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }
}

/// Burn's wgpu runtime can be initialised once per adapter per process: keep what we opened.
fn opened() -> &'static Mutex<HashMap<String, Compute>> {
    static OPENED: OnceLock<Mutex<HashMap<String, Compute>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Opens adapter `entry` for Burn and our kernels, with the adapter's own limits.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn open_adapter(adapters: &[AdapterEntry], entry: &AdapterEntry) -> Result<Compute> {
    open_adapter_limited(adapters, entry, None)
}

/// [`open_adapter`] with storage bindings capped at `max_binding` bytes where that is below
/// the adapter's own limit: a browser grants a page far less than a native driver (WebGPU's
/// default is 128 MiB), and this reproduces its limit on any adapter. Tensors larger than the
/// limit are kept in parts (see [`binding_limit`]).
pub(crate) fn open_adapter_limited(
    adapters: &[AdapterEntry],
    entry: &AdapterEntry,
    max_binding: Option<u64>,
) -> Result<Compute> {
    let key = format!("{:?}/{}/{}/{max_binding:?}", entry.info.backend, entry.info.name, entry.index);
    let mut cache = opened().lock().expect("device cache");
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let same = |a: &&AdapterEntry| a.info.backend == entry.info.backend && a.info.device_type == entry.info.device_type;
    let nth = adapters.iter().filter(same).position(|a| a.index == entry.index).unwrap_or(0);
    let kind = match entry.info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(nth),
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(nth),
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(nth),
        wgpu::DeviceType::Cpu => DeviceKind::Cpu,
        wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
    };
    let api = match entry.info.backend {
        wgpu::Backend::Vulkan => WgpuBackend::Vulkan,
        wgpu::Backend::Metal => WgpuBackend::Metal,
        wgpu::Backend::Dx12 => WgpuBackend::Dx12,
        _ => WgpuBackend::Auto,
    };
    let opened = match max_binding {
        Some(bytes) => init_limited(entry.index, bytes),
        None => init_blocking(kind, api),
    };
    let (device, setup) = opened.map_err(|e| Error::Device(format!("opening {}: {e}", entry.info.name)))?;
    let compute = compute_on(device, setup);
    cache.insert(key, compute.clone());
    Ok(compute)
}

/// Asks Burn for the adapter of `kind` on `api`, waiting for it.
#[cfg(not(target_family = "wasm"))]
fn init_blocking(kind: DeviceKind, api: WgpuBackend) -> std::result::Result<(Device, WgpuSetup), String> {
    Device::wgpu_options().device_kind(kind).graphics_api(api).init_with_setup().map_err(|e| e.to_string())
}

/// A browser cannot wait for its adapter: the page opens it with [`open_default_gpu_async`].
#[cfg(target_family = "wasm")]
fn init_blocking(kind: DeviceKind, api: WgpuBackend) -> std::result::Result<(Device, WgpuSetup), String> {
    Err(format!("{kind:?} on {api:?}: a browser opens its adapter with open_default_gpu_async"))
}

/// Opens adapter `index` (in [`list_adapters`]' order) ourselves, asking for the adapter's
/// features and limits as CubeCL does except for storage bindings capped at `max_binding`
/// bytes, and hands the device to Burn.
#[cfg(not(target_family = "wasm"))]
fn init_limited(index: usize, max_binding: u64) -> std::result::Result<(Device, WgpuSetup), String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backends(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = pollster::block_on(instance.enumerate_adapters(backends()))
        .into_iter()
        .nth(index)
        .ok_or_else(|| format!("adapter {index} is gone"))?;
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(max_binding);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("gradsift"),
        required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: limits,
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        trace: wgpu::Trace::Off,
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
    }))
    .map_err(|e| e.to_string())?;
    let backend = adapter.get_info().backend;
    let setup = WgpuSetup { instance, adapter, device, queue, backend };
    let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| e.to_string())?;
    Ok((device, setup))
}

#[cfg(target_family = "wasm")]
fn init_limited(index: usize, max_binding: u64) -> std::result::Result<(Device, WgpuSetup), String> {
    Err(format!("adapter {index} with {max_binding}-byte bindings: a browser sets its own limits"))
}

/// What a GPU device opened here cannot do, beyond what Burn checks itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// The largest tensor, in bytes, a kernel can bind (the smaller of the adapter's
    /// storage-binding and buffer limits). Weights larger than this are kept in parts.
    pub max_binding: usize,
    /// The most values a kernel may walk in one loop, where the driver has such a limit:
    /// lavapipe silently stops an invocation after 65,535 iterations, so a softmax over a
    /// longer row (a vocabulary past 65,535) comes out wrong there.
    pub max_loop: Option<usize>,
}

impl DeviceLimits {
    /// Why a model with a vocabulary of `vocab` tokens cannot run here (its softmax would walk
    /// a row past [`Self::max_loop`]), or None when it can.
    pub fn refuses_vocabulary(&self, vocab: usize) -> Option<String> {
        self.max_loop.filter(|&longest| vocab > longest).map(|longest| {
            format!(
                "a vocabulary of {vocab} tokens, and this adapter (lavapipe) stops a kernel's loop after {longest} \
                 values, so the softmax over the vocabulary would come out wrong"
            )
        })
    }
}

/// The devices opened on wgpu, with their limits.
fn limits() -> &'static Mutex<Vec<(Device, DeviceLimits)>> {
    static LIMITS: OnceLock<Mutex<Vec<(Device, DeviceLimits)>>> = OnceLock::new();
    LIMITS.get_or_init(Default::default)
}

/// The limits of a wgpu device opened here; `None` for the CPU backend, which has none.
pub fn limits_of(device: &Device) -> Option<DeviceLimits> {
    let limits = limits().lock().expect("device limits");
    limits.iter().find(|(d, _)| d == device).map(|&(_, l)| l)
}

/// [`DeviceLimits::max_binding`] of `device`; `None` (no limit) for the CPU backend.
pub fn binding_limit(device: &Device) -> Option<usize> {
    limits_of(device).map(|l| l.max_binding)
}

/// The longest loop lavapipe runs in one invocation (see [`DeviceLimits::max_loop`]).
const LAVAPIPE_LOOP: usize = 65_535;

/// Burn's device on a wgpu setup, with our kernels' handles on the same device and queue.
fn compute_on(device: Device, setup: WgpuSetup) -> Compute {
    let info = setup.adapter.get_info();
    let gpu = Arc::new(GpuContext { device: setup.device, queue: setup.queue, info: info.clone() });
    let lavapipe = info.name.contains("llvmpipe") || info.driver.contains("llvmpipe");
    let limits = DeviceLimits { max_binding: gpu.max_binding(), max_loop: lavapipe.then_some(LAVAPIPE_LOOP) };
    self::limits().lock().expect("device limits").push((device.clone(), limits));
    Compute {
        device: device.autodiff(),
        gpu: Some(gpu),
        // Browsers do not tell a page its adapter's name.
        label: format!(
            "wgpu: {} ({:?}, {:?})",
            if info.name.is_empty() { "unnamed adapter" } else { &info.name },
            info.backend,
            info.device_type
        ),
        notice: None,
    }
}

/// The default wgpu adapter, opened without blocking: the browser page's device (its WebGPU
/// adapter; in a browser the setup can only be awaited). Natively `open` is the way in.
pub async fn open_default_gpu_async() -> Result<Compute> {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| Error::Device(format!("opening the WebGPU adapter: {e}")))?;
    Ok(compute_on(device, setup))
}

/// Resolves `--device` and `--adapter` into a device.
pub fn open(choice: DeviceChoice, adapter: Option<&str>) -> Result<Compute> {
    open_limited(choice, adapter, None)
}

/// [`open`], a GPU's storage bindings capped at `max_binding` bytes (see
/// `open_adapter_limited`).
pub fn open_limited(choice: DeviceChoice, adapter: Option<&str>, max_binding: Option<u64>) -> Result<Compute> {
    if choice == DeviceChoice::Cpu && max_binding.is_some() {
        return Err(Error::setting(
            Setting::GpuMaxBinding,
            "a storage-binding limit is a GPU's: the CPU backend has none",
        ));
    }
    if choice == DeviceChoice::Cpu {
        return Ok(Compute::cpu());
    }
    let adapters = list_adapters();
    let picked = match (adapter, choice) {
        (Some(spec), _) => Some(find_adapter(&adapters, spec)?),
        (None, DeviceChoice::Gpu) => best_adapter(&adapters)?,
        (None, _) => auto_pick(&adapters)?,
    };
    let failure = match picked {
        Some(i) => match open_adapter_limited(&adapters, &adapters[i], max_binding) {
            Ok(c) => return Ok(c),
            Err(e) => e.to_string(),
        },
        None if adapters.is_empty() => "no wgpu adapter (no Vulkan, Metal or DX12 driver found)".to_string(),
        None if env_override()?.is_some() => "CUBECL_WGPU_DEFAULT_DEVICE names no present adapter".to_string(),
        None => format!(
            "only a software wgpu adapter ({}), slower than the CPU backend (ask for the GPU device to use it)",
            adapters.iter().map(|a| a.info.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    if choice == DeviceChoice::Gpu || adapter.is_some() {
        return Err(Error::Device(failure));
    }
    let mut c = Compute::cpu();
    c.notice = Some(format!("notice: {failure}; running on the CPU backend"));
    Ok(c)
}
