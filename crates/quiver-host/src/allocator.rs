//! The C allocator's settings for a program that streams partitions (`quiver run` over Parquet
//! row groups or many files): each partition's columns are allocated, filled, used and freed, and
//! the next partition's are the same size. glibc's defaults hand blocks of a few MB and more back
//! to the kernel as soon as they are freed (`mmap` above a threshold, heap trimming), so every
//! partition's memory is faulted in afresh — page faults and zeroing were a third of a run by parts
//! over a Parquet file (measured with `perf`, docs/scale.md). Keeping freed memory for reuse makes
//! the next partition land on pages already mapped.

/// Keep freed memory in the process for reuse (glibc on Linux; nothing elsewhere): blocks up to
/// 256 MiB come from the heap rather than their own mappings, and the heap is trimmed only past
/// 1 GiB of free memory at its top. A process setting, for programs (the CLI, benches) — a library
/// embedding Quiver leaves its host process's allocator alone. Returns whether it was applied.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets the allocator's parameters; it is called with documented
        // parameter numbers and in-range values, and returns 1 on success.
        unsafe { mallopt(-3, 256 << 20) == 1 && mallopt(-1, 1 << 30) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
