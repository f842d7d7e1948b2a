//! Waiting for a future where the caller cannot `.await`.
//!
//! Why: reading a GPU buffer or a tensor is asynchronous underneath (wgpu maps buffers with a
//! callback, Burn's reads are futures). The library's core reads are written once, as async
//! functions, so the browser page (which must never block its thread) can await them; the
//! command line and the tests call them through [`block_on`].

use std::future::Future;

/// Runs `f` to completion on this thread.
///
/// On native targets this parks the thread until the future is ready. In a browser nothing
/// may block: the future must already be ready when first polled (true of every read on Burn's
/// CPU backend, never of a WebGPU read), and a future still pending is a programming error
/// (the caller should have awaited the async function instead).
#[cfg(not(target_family = "wasm"))]
pub fn block_on<F: Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// Runs `f` to completion on this thread (see the native version).
#[cfg(target_family = "wasm")]
pub fn block_on<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a blocking read of a pending future in a browser: await the async function instead"),
    }
}
