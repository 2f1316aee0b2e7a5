//! Where the engine's work runs: on the rayon pool's worker threads.
//!
//! The kernels split their work over the global rayon pool (`--threads` workers). Between
//! parallel kernels the engine runs serial work (logits, decoding rules, bookkeeping), and
//! rayon's idle workers spin (`sched_yield`) for a while before they sleep. Called from a
//! thread outside the pool, that serial work runs on a third thread which competes with the
//! spinning workers for the cores; measured on 2 cores: 15-17 % of the batched pipeline's
//! wall time and 7 % of the sequential one's (docs/BENCHMARKS.md). [`on_pool`] moves a piece
//! of engine work onto a worker, where the serial parts run on a thread the pool counts and
//! the parallel parts are joined in place.

/// Runs `f` on one of the global pool's workers and returns its result; the calling thread
/// sleeps meanwhile. Called from a worker, `f` runs in place.
///
/// `f` must not wait for other work that needs the pool while the pool may have no other
/// worker (e.g. a channel fed by a thread that itself calls into rayon): with one worker
/// that would wait forever. Callers wait on their queues outside `on_pool`.
pub fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let mut out = None;
    rayon::in_place_scope(|s| s.spawn(|_| out = Some(f())));
    out.expect("the rayon scope ended without running its task")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_worker_and_returns_the_result() {
        assert!(rayon::current_thread_index().is_none());
        let data: Vec<u64> = (0..1000).collect(); // borrowed, not moved
        let (index, sum) = on_pool(|| (rayon::current_thread_index(), data.iter().sum::<u64>()));
        assert!(index.is_some(), "the task ran outside the pool");
        assert_eq!(sum, 499_500);
        // Called from a worker: runs in place, on that worker.
        let (outer, inner) = on_pool(|| (rayon::current_thread_index(), on_pool(rayon::current_thread_index)));
        assert!(outer.is_some());
        assert_eq!(outer, inner);
    }
}
