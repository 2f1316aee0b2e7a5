//! Planning of the NPU runs of one `linear` call, as pure functions (no XRT, no device), so
//! that what is chained, and which buffer each run reads and writes, is tested on any machine.
//!
//! A call of `m` rows × `k` inputs × `n` outputs becomes:
//! * **row chunks** of the design's fixed run height (1536 rows: one 30 s window of 1500
//!   frames, padded), see [`row_chunks`];
//! * **column blocks** when `n` has no xclbin of its own but is a multiple of one that does
//!   with the same `k` (the fused QKV projection, `n = 3·d`, runs as three `d × d` blocks; the
//!   cross-attention K/V projection, `n = 2·d`, as two), see [`column_blocks`];
//! * **submissions**: the runs (chunk × block) handed to the device together. With
//!   `xrt::runlist` ([`ChainMode::RunList`]) up to `max_runs` runs of one hardware context go
//!   in one list, executed in order with one host wait; otherwise ([`ChainMode::StartWait`])
//!   each run is started and waited for alone. See [`plan_submissions`].
//!
//! A run list must hold distinct run objects (XRT refuses a run added twice), and every run
//! in flight needs its own output buffer; runs of the same row chunk share one input buffer,
//! filled (quantized) once. The planner assigns those slots; the executor owns one run object
//! per output slot and allocates slots lazily, up to [`MAX_CHAIN_RUNS`], then reuses them for
//! every later call (every layer and every window).

// `%` rather than `is_multiple_of`: a style choice, kept (the toolchain has both).
#![allow(clippy::manual_is_multiple_of)]

/// Most runs in one run list. Bounds the buffers a chained call needs: per (k, n) shape,
/// up to this many output buffers (`1536 × n` i32) and input buffers (`1536 × k` u8); for
/// Whisper base about 95 MB of host-only memory in the worst case (4 windows batched on
/// every shape), allocated only when such a call happens.
pub const MAX_CHAIN_RUNS: usize = 4;

/// Environment variable that turns run lists off (`0`, `off`, `false` or `no`): every run is
/// then started and waited for alone. For drivers whose chained commands misbehave.
pub const RUNLIST_ENV: &str = "AMANUENSIS_NPU_RUNLIST";

/// How runs reach the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainMode {
    /// Up to `max_runs` runs of one hardware context as one `xrt::runlist` (XRT >= 2.18):
    /// one submission, executed in order, one wait.
    RunList { max_runs: usize },
    /// `run.start(); run.wait()` for each run.
    StartWait,
}

impl ChainMode {
    /// Runs in one submission.
    pub fn max_runs(self) -> usize {
        match self {
            ChainMode::RunList { max_runs } => max_runs.max(1),
            ChainMode::StartWait => 1,
        }
    }
}

impl std::fmt::Display for ChainMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainMode::RunList { max_runs } => write!(f, "runs chained with xrt::runlist (up to {max_runs} per submission)"),
            ChainMode::StartWait => write!(f, "start/wait per run"),
        }
    }
}

/// The chaining mode for a shim built with (`has_runlist`) or without run lists, and the
/// value of [`RUNLIST_ENV`]; the string says why, for the log.
pub fn choose_chain_mode(has_runlist: bool, env: Option<&str>) -> (ChainMode, String) {
    if let Some(v) = env {
        if matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "off" | "false" | "no") {
            return (ChainMode::StartWait, format!("run lists turned off by {RUNLIST_ENV}={v}"));
        }
    }
    if !has_runlist {
        return (ChainMode::StartWait, "the XRT this was built against has no xrt::runlist (it needs XRT >= 2.18)".into());
    }
    (ChainMode::RunList { max_runs: MAX_CHAIN_RUNS }, "XRT has xrt::runlist".into())
}

/// Rows `row0 .. row0 + rows` of the call in one run (`rows` ≤ the run height; the rest of
/// the run's input is zero padding whose outputs are discarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub row0: usize,
    pub rows: usize,
}

/// The row chunks of an `m`-row call for runs of `run_rows` rows.
pub fn row_chunks(m: usize, run_rows: usize) -> Vec<Chunk> {
    assert!(run_rows > 0, "row_chunks: zero-row runs");
    (0..m).step_by(run_rows).map(|row0| Chunk { row0, rows: run_rows.min(m - row0) }).collect()
}

/// An `n`-column product computed as `count` runs of `n_block` columns (block `b` is output
/// columns `b·n_block ..`, i.e. weight rows `b·n_block ..` of the `[n][k]` matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    pub n_block: usize,
    pub count: usize,
}

/// How a `k × n` product maps onto the available `(k, n)` xclbin shapes: the widest shape
/// with the same `k` whose `n` divides this one (fewest runs), or None when none does.
pub fn column_blocks(k: usize, n: usize, shapes: &[(usize, usize)]) -> Option<Blocks> {
    shapes
        .iter()
        .filter(|&&(sk, sn)| sk == k && sn > 0 && n % sn == 0)
        .map(|&(_, sn)| sn)
        .max()
        .filter(|_| n > 0)
        .map(|n_block| Blocks { n_block, count: n / n_block })
}

/// One run: row chunk `chunk` times column block `block`, reading input slot `input` and
/// writing output slot `output` (which is also the executor's run object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSpec {
    pub chunk: usize,
    pub block: usize,
    pub input: usize,
    pub output: usize,
}

/// Runs handed to the device together, after quantizing the chunks in `fill` into their input
/// slots (`(chunk, input slot)`); their outputs are read once the submission completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub fill: Vec<(usize, usize)>,
    pub runs: Vec<RunSpec>,
}

/// The submissions of a call of `chunks` row chunks × `blocks` column blocks.
///
/// When a chunk's blocks fit in one submission, whole chunks are grouped (`max_runs / blocks`
/// per submission), chunk `j` of the group in input slot `j` and its blocks in output slots
/// `j·blocks ..`. Otherwise (more blocks than runs per submission, e.g. start/wait) each chunk
/// is quantized once into input slot 0 and its blocks go `max_runs` at a time.
pub fn plan_submissions(chunks: usize, blocks: usize, mode: ChainMode) -> Vec<Submission> {
    let max = mode.max_runs();
    let mut plan = Vec::new();
    if blocks == 0 {
        return plan;
    }
    if blocks <= max {
        let per = max / blocks;
        for first in (0..chunks).step_by(per) {
            let group = first..(first + per).min(chunks);
            let fill = group.clone().enumerate().map(|(j, c)| (c, j)).collect();
            let runs = group
                .enumerate()
                .flat_map(|(j, c)| (0..blocks).map(move |b| RunSpec { chunk: c, block: b, input: j, output: j * blocks + b }))
                .collect();
            plan.push(Submission { fill, runs });
        }
    } else {
        for c in 0..chunks {
            for first in (0..blocks).step_by(max) {
                let fill = if first == 0 { vec![(c, 0)] } else { Vec::new() };
                let runs = (first..(first + max).min(blocks))
                    .enumerate()
                    .map(|(o, b)| RunSpec { chunk: c, block: b, input: 0, output: o })
                    .collect();
                plan.push(Submission { fill, runs });
            }
        }
    }
    plan
}

/// Input and output slots a plan uses (the buffers the executor must have).
pub fn slots_needed(plan: &[Submission]) -> (usize, usize) {
    let mut need = (0, 0);
    for r in plan.iter().flat_map(|s| &s.runs) {
        need.0 = need.0.max(r.input + 1);
        need.1 = need.1.max(r.output + 1);
    }
    need
}

/// Checks what the executors rely on: every (chunk, block) run exactly once; at most
/// `max_runs` runs per submission with distinct output slots (distinct run objects); every
/// run reads an input slot that holds its chunk (filled in this or an earlier submission and
/// not refilled since); every chunk quantized exactly once.
pub fn check_plan(plan: &[Submission], chunks: usize, blocks: usize, mode: ChainMode) -> Result<(), String> {
    let mut done = vec![false; chunks * blocks];
    let mut fills = vec![0usize; chunks];
    let mut holds: Vec<Option<usize>> = Vec::new();
    for (i, s) in plan.iter().enumerate() {
        if s.runs.is_empty() || s.runs.len() > mode.max_runs() {
            return Err(format!("submission {i}: {} runs, allowed 1..={}", s.runs.len(), mode.max_runs()));
        }
        for &(c, slot) in &s.fill {
            if c >= chunks {
                return Err(format!("submission {i}: fills chunk {c} of {chunks}"));
            }
            fills[c] += 1;
            if holds.len() <= slot {
                holds.resize(slot + 1, None);
            }
            holds[slot] = Some(c);
        }
        let mut outputs = std::collections::HashSet::new();
        for r in &s.runs {
            if !outputs.insert(r.output) {
                return Err(format!("submission {i}: output slot {} used twice", r.output));
            }
            if holds.get(r.input).copied().flatten() != Some(r.chunk) {
                return Err(format!("submission {i}: run {r:?} reads a slot that does not hold its chunk"));
            }
            if r.chunk >= chunks || r.block >= blocks {
                return Err(format!("submission {i}: run {r:?} out of range"));
            }
            let idx = r.chunk * blocks + r.block;
            if std::mem::replace(&mut done[idx], true) {
                return Err(format!("run {r:?} planned twice"));
            }
        }
    }
    if let Some(idx) = done.iter().position(|d| !d) {
        return Err(format!("chunk {} block {} never runs", idx / blocks.max(1), idx % blocks.max(1)));
    }
    if let Some(c) = fills.iter().position(|&f| f != 1) {
        return Err(format!("chunk {c} quantized {} times", fills[c]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KN: [(usize, usize); 3] = [(512, 512), (512, 2048), (2048, 512)];

    #[test]
    fn chunks_cover_the_rows_once() {
        assert_eq!(row_chunks(1500, 1536), vec![Chunk { row0: 0, rows: 1500 }]);
        assert_eq!(row_chunks(3000, 1536), vec![Chunk { row0: 0, rows: 1536 }, Chunk { row0: 1536, rows: 1464 }]);
        assert_eq!(row_chunks(1536, 1536).len(), 1);
        assert!(row_chunks(0, 1536).is_empty());
    }

    #[test]
    fn whisper_shapes_map_to_xclbins() {
        // Base model, d = 512: QKV (n = 3d), cross K/V (n = 2d), out, fc1, fc2.
        assert_eq!(column_blocks(512, 1536, &KN), Some(Blocks { n_block: 512, count: 3 }));
        assert_eq!(column_blocks(512, 1024, &KN), Some(Blocks { n_block: 512, count: 2 }));
        assert_eq!(column_blocks(512, 512, &KN), Some(Blocks { n_block: 512, count: 1 }));
        // The widest shape wins: fc1 is one 512x2048 run, not four 512x512 ones.
        assert_eq!(column_blocks(512, 2048, &KN), Some(Blocks { n_block: 2048, count: 1 }));
        assert_eq!(column_blocks(2048, 512, &KN), Some(Blocks { n_block: 512, count: 1 }));
        assert_eq!(column_blocks(512, 4096, &KN), Some(Blocks { n_block: 2048, count: 2 }));
        // No xclbin for this k, or n not a multiple of any shape's.
        assert_eq!(column_blocks(1024, 1024, &KN), None);
        assert_eq!(column_blocks(512, 768, &KN), None);
        assert_eq!(column_blocks(2048, 1536, &KN), Some(Blocks { n_block: 512, count: 3 }));
        assert_eq!(column_blocks(512, 0, &KN), None);
        assert_eq!(column_blocks(512, 512, &[]), None);
    }

    #[test]
    fn chain_mode_follows_the_shim_and_the_environment() {
        assert_eq!(choose_chain_mode(true, None).0, ChainMode::RunList { max_runs: MAX_CHAIN_RUNS });
        assert_eq!(choose_chain_mode(true, Some("1")).0, ChainMode::RunList { max_runs: MAX_CHAIN_RUNS });
        let (m, why) = choose_chain_mode(false, None);
        assert_eq!(m, ChainMode::StartWait);
        assert!(why.contains("2.18"), "{why}");
        for off in ["0", "off", "FALSE", "no"] {
            let (m, why) = choose_chain_mode(true, Some(off));
            assert_eq!(m, ChainMode::StartWait);
            assert!(why.contains(RUNLIST_ENV), "{why}");
        }
        assert_eq!(ChainMode::StartWait.max_runs(), 1);
        assert_eq!(ChainMode::RunList { max_runs: 0 }.max_runs(), 1);
    }

    #[test]
    fn one_window_is_one_submission_per_gemm_with_run_lists() {
        let rl = ChainMode::RunList { max_runs: MAX_CHAIN_RUNS };
        // fc1 of one window: one run.
        let p = plan_submissions(1, 1, rl);
        assert_eq!(p, vec![Submission { fill: vec![(0, 0)], runs: vec![RunSpec { chunk: 0, block: 0, input: 0, output: 0 }] }]);
        // QKV of one window: three runs sharing the quantized input, one run list.
        let p = plan_submissions(1, 3, rl);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].fill, vec![(0, 0)]);
        assert_eq!(p[0].runs.iter().map(|r| (r.block, r.input, r.output)).collect::<Vec<_>>(), vec![(0, 0, 0), (1, 0, 1), (2, 0, 2)]);
        // Four windows batched (6000 rows = 4 chunks), fc2: one run list of four runs.
        let chunks = row_chunks(4 * 1500, 1536).len();
        assert_eq!(chunks, 4);
        let p = plan_submissions(chunks, 1, rl);
        assert_eq!(p.len(), 1);
        assert_eq!(slots_needed(&p), (4, 4));
        // Four windows, QKV: one chunk (3 runs) per list, four lists.
        let p = plan_submissions(chunks, 3, rl);
        assert_eq!(p.len(), 4);
        assert_eq!(slots_needed(&p), (1, 3));
    }

    #[test]
    fn start_wait_quantizes_once_and_runs_one_at_a_time() {
        let p = plan_submissions(2, 3, ChainMode::StartWait);
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|s| s.runs.len() == 1));
        // Each chunk filled once, before its first block; one input and one output buffer.
        let fills: Vec<_> = p.iter().map(|s| s.fill.clone()).collect();
        assert_eq!(fills, vec![vec![(0, 0)], vec![], vec![], vec![(1, 0)], vec![], vec![]]);
        assert_eq!(slots_needed(&p), (1, 1));
        check_plan(&p, 2, 3, ChainMode::StartWait).unwrap();
    }

    #[test]
    fn the_checker_rejects_broken_plans() {
        let rl = ChainMode::RunList { max_runs: 4 };
        let good = plan_submissions(2, 2, rl);
        check_plan(&good, 2, 2, rl).unwrap();
        // A run reusing another's output slot (the same run object twice in one list).
        let mut bad = good.clone();
        bad[0].runs[1].output = bad[0].runs[0].output;
        assert!(check_plan(&bad, 2, 2, rl).unwrap_err().contains("used twice"));
        // A run reading a slot filled with another chunk.
        let mut bad = good.clone();
        bad[0].runs[0].input = 1;
        assert!(check_plan(&bad, 2, 2, rl).unwrap_err().contains("does not hold"));
        // A missing run.
        let mut bad = good.clone();
        bad[0].runs.pop();
        assert!(check_plan(&bad, 2, 2, rl).unwrap_err().contains("never runs"));
        // Too many runs for start/wait.
        assert!(check_plan(&good, 2, 2, ChainMode::StartWait).is_err());
    }

    proptest! {
        #[test]
        fn every_plan_is_valid_and_minimal(chunks in 0usize..12, blocks in 1usize..9, max in 0usize..10, chained in any::<bool>()) {
            let mode = if chained { ChainMode::RunList { max_runs: max } } else { ChainMode::StartWait };
            let plan = plan_submissions(chunks, blocks, mode);
            prop_assert_eq!(check_plan(&plan, chunks, blocks, mode), Ok(()));
            let runs = chunks * blocks;
            let max = mode.max_runs();
            // Buffers stay within the chain length.
            let (inputs, outputs) = slots_needed(&plan);
            prop_assert!(outputs <= max && inputs <= max);
            // No more submissions than needed given that a chunk's blocks are not split
            // across lists when they fit in one.
            let expected = if blocks <= max { chunks.div_ceil(max / blocks) } else { chunks * blocks.div_ceil(max) };
            prop_assert_eq!(plan.len(), expected);
            prop_assert!(plan.len() >= runs.div_ceil(max));
        }
    }
}
