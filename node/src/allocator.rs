//! Settings of the global allocator (mimalloc, set in `main.rs`).

/// mimalloc v3's `mi_option_purge_delay` (its position in `mi_option_e`; libmimalloc-sys
/// names no constant for it). The test below fails if the position moves.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Hands freed memory back to the system at once instead of after mimalloc's default second.
/// Under load the node frees block-sized buffers many times a second, and the delay kept
/// each node 100–150 MiB above its live data (docs/performance.md), for no measurable CPU
/// saving.
pub fn purge_freed_memory_at_once() {
    // SAFETY: sets a process-wide option; mimalloc allows it at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_we_set() {
        // SAFETY: reads and sets a process-wide option.
        let before = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(before, 1000, "mimalloc v3's default purge delay (ms)");
        super::purge_freed_memory_at_once();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) },
            0
        );
    }
}
