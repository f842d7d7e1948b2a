//! Our own WGSL kernels, run with raw wgpu on the SAME adapter, device and queue Burn uses
//! (Burn hands them out through `Device::wgpu_options().init_with_setup()`), so the GPU path
//! never opens a second device.

use std::sync::Arc;

use burn::tensor::wgpu::wgpu;

use crate::blocking::block_on;
use crate::error::{Error, Result};

/// Longest row a kernel walks in one loop: lavapipe silently stops an invocation after 65,535
/// loop iterations, so the kernels that take a whole feature row per invocation (scoring dots,
/// kNN distances) refuse wider rows and their callers fall back to the CPU.
pub(crate) const MAX_ROW: usize = 60_000;

/// The wgpu handles shared with Burn.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Creates a storage buffer holding `data`.
    pub fn storage(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
            mapped_at_creation: false,
        })
    }

    /// A 16- or 32-byte uniform buffer for a kernel's parameters.
    pub fn uniform(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A bind group for `pipeline`'s group 0: (binding, buffer) pairs, each buffer bound whole.
    pub fn bind(&self, pipeline: &wgpu::ComputePipeline, entries: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|(b, buf)| wgpu::BindGroupEntry { binding: *b, resource: buf.as_entire_binding() })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// A compute pipeline for `entry` of `source`, with its layout inferred from the shader.
    pub fn pipeline(&self, label: &str, source: &str, entry: &str) -> wgpu::ComputePipeline {
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    }

    /// The largest buffer a kernel may bind (the smaller of the device's two limits).
    pub fn max_binding(&self) -> usize {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size) as usize
    }

    /// Reads a buffer of f32 back to the host (waits for the queue).
    pub fn read_f32(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        block_on(self.read_f32_async(src, len))
    }

    /// [`Self::read_f32`] for callers that can await (the browser page).
    pub async fn read_f32_async(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        Ok(self.read_words_async(src, len).await?.into_iter().map(f32::from_bits).collect())
    }

    /// Reads the first `len` 32-bit words of a buffer back to the host (waits for the queue).
    pub fn read_words(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        block_on(self.read_words_async(src, len))
    }

    /// [`Self::read_words`] for callers that can await. Natively the device is polled until the
    /// copy is mapped; in a browser the mapping resolves on the page's event loop.
    pub async fn read_words_async(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        let bytes = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
        self.queue.submit(Some(enc.finish()));
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_family = "wasm"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("waiting for the GPU: {e}")))?;
        rx.await
            .map_err(|_| Error::Device("the GPU dropped a buffer mapping".into()))?
            .map_err(|e| Error::Device(format!("reading a GPU buffer: {e}")))?;
        let data =
            staging.slice(..).get_mapped_range().map_err(|e| Error::Device(format!("mapping a GPU buffer: {e}")))?;
        let out = data.chunks_exact(4).take(len).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        drop(data);
        staging.unmap();
        Ok(out)
    }
}

/// A shared handle.
pub type Gpu = Arc<GpuContext>;

/// Little-endian bytes of f32 values, as the kernels read them.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of u32 values (kernel parameters, index lists).
pub(crate) fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
