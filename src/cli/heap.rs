//! How the C allocator hands memory back, set once when the command line starts.
//!
//! Burn's CPU backend allocates a fresh buffer for every tensor an operation returns, and a
//! gradient pass at 2,048 tokens frees and allocates tens of megabytes per block, over and over.
//! glibc's malloc returns the freed top of its heap to the kernel once it exceeds its trim
//! threshold (twice the mmap threshold, itself raised up to 32 MiB as large blocks are freed:
//! 64 MiB at most), and the next allocation takes every page back through a page fault and the
//! kernel's zeroing. Keeping freed memory in the heap (trim threshold 2 GiB, allocations up to
//! 32 MiB from the heap) made the SmolLM2-135M gradient pass at 2,048 tokens 8–12% faster with
//! the same peak RSS (docs/performance.md). The library leaves the process's allocator alone;
//! this is the binary's choice. A user's own `GLIBC_TUNABLES` malloc settings, or the older
//! `MALLOC_*_` variables, win.

/// Largest allocation served from the heap rather than its own mapping: glibc's own ceiling for
/// the dynamic threshold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of the heap kept before it is handed back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = libc::c_int::MAX;

/// Whether the environment already tells malloc how to behave.
fn user_tuned(var: impl Fn(&str) -> Option<String>) -> bool {
    var("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."))
        || ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"].iter().any(|v| var(v).is_some())
}

/// Keeps freed memory in glibc's heap for the next allocation (see the module's doc); says
/// whether the settings were made. Elsewhere (macOS, Windows, musl) a no-op.
pub(super) fn keep_freed_memory() -> bool {
    if user_tuned(|v| std::env::var(v).ok()) {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt sets two allocator parameters under malloc's own lock; no pointer
        // is passed or returned.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_malloc_settings_win() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(!user_tuned(env(&[])));
        assert!(!user_tuned(env(&[("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")])));
        assert!(user_tuned(env(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")])));
        assert!(user_tuned(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
    }

    /// The glibc this runs on accepts both settings (mallopt answers 0 to one it refuses).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_settings() {
        if !user_tuned(|v| std::env::var(v).ok()) {
            assert!(keep_freed_memory());
        }
    }
}
