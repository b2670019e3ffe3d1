//! MiniLM's transformer (BERT, 6 layers, 384 wide) as a plain forward pass
//! on the CPU, written for one short query at a time.
//!
//! A general tensor library spends most of a 20-token query on dispatch,
//! copies and thread hand-offs (candle: 12–15 ms). Here every matrix
//! product is one tight kernel over weights packed at load:
//! - **int8** (default): weights quantised per output channel, activations
//!   per token row (asymmetric, unsigned), products summed in i32. Three
//!   kernels: AMX `tdpbusd` (16 rows × 16 outputs × 64 inputs an
//!   instruction) where the CPU has it, AVX-512 VNNI `vpdpbusd` (64
//!   multiply-adds an instruction), or AVX2 `vpmaddubsw` + `vpmaddwd` for
//!   CPUs without either (weights in 7 bits, so a pair of products cannot
//!   saturate i16). AMX and VNNI share the weights' layout and sum exactly,
//!   so they give the same embeddings;
//! - **f32**: the same products in plain Rust, for other CPUs and as the
//!   reference the int8 paths are tested against.
//!
//! Everything else (embeddings, layer norm, attention, GELU) is f32.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use safetensors::SafeTensors;

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const MAX_POSITIONS: usize = 512;
const LN_EPS: f32 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// int8 weights and activations where the CPU has AVX-512 VNNI or
    /// AVX2, else f32.
    Int8,
    F32,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Read(String),
    #[error("tensor {name}: {why}")]
    Tensor { name: String, why: String },
}

pub struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    kernel: Option<Kernel>,
    /// Whether a long pass on an idle machine may use a second thread.
    split: AtomicBool,
}

/// When a pass splits its rows across two threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Never,
    /// With at least `SPLIT_MIN_ROWS` rows, two cores and no other pass
    /// running.
    WhenIdle,
    /// Whenever there are two rows (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Always,
}

/// The int8 matrix kernel the CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX tiles (with AVX-512 for the rest): VNNI's weights and sums.
    Amx,
    /// AVX-512 VNNI: i8 weights, blocks of 16 outputs.
    Vnni,
    /// AVX2: weights within ±63, blocks of 8 outputs.
    Avx2,
}

impl Kernel {
    fn detect() -> Option<Kernel> {
        if vnni_available() && amx_available() {
            Some(Kernel::Amx)
        } else if vnni_available() {
            Some(Kernel::Vnni)
        } else if avx2_available() {
            Some(Kernel::Avx2)
        } else {
            None
        }
    }

    /// Outputs in one packed block (one register of i32 sums).
    fn block(self) -> usize {
        match self {
            Kernel::Amx | Kernel::Vnni => 16,
            Kernel::Avx2 => 8,
        }
    }

    /// Largest quantised weight magnitude. `vpmaddubsw` adds two u8·i8
    /// products in i16: 2·255·63 fits, 2·255·127 would saturate. Weights
    /// give up the bit rather than activations, whose outlier dimensions
    /// need the range.
    fn weight_levels(self) -> f32 {
        match self {
            Kernel::Amx | Kernel::Vnni => 127.0,
            Kernel::Avx2 => 63.0,
        }
    }
}

struct Layer {
    /// query, key and value in one product (1152 outputs)
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Encoder {
    pub fn load(weights_file: &Path, precision: Precision) -> Result<Self, LoadError> {
        let bytes =
            std::fs::read(weights_file).map_err(|e| LoadError::Read(format!("{}: {e}", weights_file.display())))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Read(e.to_string()))?;
        let kernel = if precision == Precision::Int8 { Kernel::detect() } else { None };
        let t = |name: &str, len: usize| tensor(&st, name, len);
        let norm = |prefix: &str| -> Result<LayerNorm, LoadError> {
            Ok(LayerNorm {
                gamma: t(&format!("{prefix}.weight"), HIDDEN)?,
                beta: t(&format!("{prefix}.bias"), HIDDEN)?,
            })
        };
        let linear = |prefixes: &[String], in_dim: usize, out_dim: usize| -> Result<Linear, LoadError> {
            let mut w = Vec::with_capacity(in_dim * out_dim * prefixes.len());
            let mut b = Vec::with_capacity(out_dim * prefixes.len());
            for p in prefixes {
                w.extend(t(&format!("{p}.weight"), in_dim * out_dim)?);
                b.extend(t(&format!("{p}.bias"), out_dim)?);
            }
            Ok(Linear::new(w, b, in_dim, kernel))
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                qkv: linear(&["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}")), HIDDEN, HIDDEN)?,
                attn_out: linear(&[format!("{p}.attention.output.dense")], HIDDEN, HIDDEN)?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                ffn_in: linear(&[format!("{p}.intermediate.dense")], HIDDEN, INTERMEDIATE)?,
                ffn_out: linear(&[format!("{p}.output.dense")], INTERMEDIATE, HIDDEN)?,
                ffn_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let word = tensor_any(&st, "embeddings.word_embeddings.weight")?;
        if !word.len().is_multiple_of(HIDDEN) {
            return Err(LoadError::Tensor {
                name: "embeddings.word_embeddings.weight".into(),
                why: "not 384 wide".into(),
            });
        }
        Ok(Encoder {
            word,
            position: t("embeddings.position_embeddings.weight", MAX_POSITIONS * HIDDEN)?,
            token_type: t("embeddings.token_type_embeddings.weight", 2 * HIDDEN)?,
            embed_norm: norm("embeddings.LayerNorm")?,
            layers,
            kernel,
            split: true.into(),
        })
    }

    /// The int8 kernel in use, if any (else f32).
    pub fn kernel(&self) -> Option<Kernel> {
        self.kernel
    }

    pub fn vocab_size(&self) -> usize {
        self.word.len() / HIDDEN
    }

    /// Mean-pooled (not yet normalised) last hidden states of each
    /// sequence. Sequences share every matrix product; attention stays
    /// within each. Ids past the vocabulary read as `[UNK]` (100).
    ///
    /// A pass of `SPLIT_MIN_ROWS` or more on an otherwise idle machine
    /// splits its rows between this thread and one more; the result is
    /// the same bit for bit, as every step but attention is per row and
    /// attention reads the other half's keys only after a meeting.
    pub fn pooled(&self, sequences: &[&[u32]]) -> Vec<[f32; HIDDEN]> {
        let split = if self.split.load(Ordering::Relaxed) { Split::WhenIdle } else { Split::Never };
        self.pooled_with(sequences, split)
    }

    /// Lets long passes use a second thread when the machine is idle
    /// (the default), or keeps every pass on its caller's thread.
    pub fn set_split(&self, on: bool) {
        self.split.store(on, Ordering::Relaxed);
    }

    fn pooled_with(&self, sequences: &[&[u32]], split: Split) -> Vec<[f32; HIDDEN]> {
        let rows: usize = sequences.iter().map(|s| s.len().min(MAX_POSITIONS)).sum();
        let mut scratch = SCRATCH.take();
        scratch.fit(rows);
        let spans: Vec<(usize, usize)> = sequences
            .iter()
            .scan(0, |start, s| {
                let len = s.len().min(MAX_POSITIONS);
                let span = (*start, len);
                *start += len;
                Some(span)
            })
            .collect();
        let Scratch { x, qkv, context, out, ffn, lanes } = &mut scratch;
        for (&(start, _), seq) in spans.iter().zip(sequences) {
            for (pos, &id) in seq.iter().take(MAX_POSITIONS).enumerate() {
                let id = if (id as usize) < self.vocab_size() { id as usize } else { 100 };
                let row = &mut x[(start + pos) * HIDDEN..][..HIDDEN];
                let word = &self.word[id * HIDDEN..(id + 1) * HIDDEN];
                let position = &self.position[pos * HIDDEN..(pos + 1) * HIDDEN];
                for (((o, w), p), t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type[..HIDDEN]) {
                    *o = w + p + t;
                }
                self.embed_norm.apply(row);
            }
        }

        let busy = PassCount::enter();
        let split = match split {
            Split::Never => false,
            Split::WhenIdle => busy.alone() && rows >= SPLIT_MIN_ROWS && *SPLIT_THREADS == 2,
            Split::Always => rows >= 2,
        };
        let [qkv_a, qkv_b] = qkv;
        let shared = SharedQkv::new([&mut qkv_a[..rows * 3 * HIDDEN], &mut qkv_b[..rows * 3 * HIDDEN]]);
        let [lane_a, lane_b] = lanes;
        if split {
            let mid = rows.div_ceil(2);
            let (x_a, x_b) = x[..rows * HIDDEN].split_at_mut(mid * HIDDEN);
            let (context_a, context_b) = context[..rows * HIDDEN].split_at_mut(mid * HIDDEN);
            let (out_a, out_b) = out[..rows * HIDDEN].split_at_mut(mid * HIDDEN);
            let (ffn_a, ffn_b) = ffn[..rows * INTERMEDIATE].split_at_mut(mid * INTERMEDIATE);
            let meet = Meet::default();
            let first = Part { lo: 0, hi: mid, x: x_a, context: context_a, out: out_a, ffn: ffn_a, lane: lane_a };
            let second = Part { lo: mid, hi: rows, x: x_b, context: context_b, out: out_b, ffn: ffn_b, lane: lane_b };
            let pass = Pass { qkv: &shared, spans: &spans, meet: Some(&meet) };
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _poison = meet.poison_on_panic();
                    self.run_layers(second, &pass);
                });
                let _poison = meet.poison_on_panic();
                self.run_layers(first, &pass);
            });
        } else {
            let part = Part {
                lo: 0,
                hi: rows,
                x: &mut x[..rows * HIDDEN],
                context: &mut context[..rows * HIDDEN],
                out: &mut out[..rows * HIDDEN],
                ffn: &mut ffn[..rows * INTERMEDIATE],
                lane: lane_a,
            };
            self.run_layers(part, &Pass { qkv: &shared, spans: &spans, meet: None });
        }
        drop(busy);

        let pooled = spans
            .iter()
            .map(|&(start, len)| {
                let mut mean = [0f32; HIDDEN];
                for row in x[start * HIDDEN..(start + len) * HIDDEN].chunks_exact(HIDDEN) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                let n = len.max(1) as f32;
                mean.iter_mut().for_each(|m| *m /= n);
                mean
            })
            .collect();
        if rows <= KEEP_SCRATCH_ROWS {
            SCRATCH.set(scratch);
        }
        pooled
    }

    /// Every layer over one thread's rows, compiled for the CPU's vector
    /// width so the f32 parts (attention, layer norm, GELU) run 8 or 16
    /// wide; the crate itself targets baseline x86-64.
    fn run_layers(&self, part: Part, pass: &Pass) {
        match self.kernel {
            // SAFETY: `Kernel::Vnni` and `Kernel::Amx` are only chosen when
            // `vnni_available()`.
            Some(Kernel::Vnni | Kernel::Amx) => unsafe { self.run_layers_avx512(part, pass) },
            // SAFETY: `Kernel::Avx2` is only chosen when `avx2_available()`.
            Some(Kernel::Avx2) => unsafe { self.run_layers_avx2(part, pass) },
            None => self.run_layers_impl(part, pass),
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_layers_avx2(&self, part: Part, pass: &Pass) {
        self.run_layers_impl(part, pass)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_layers_avx2(&self, part: Part, pass: &Pass) {
        self.run_layers_impl(part, pass)
    }

    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    unsafe fn run_layers_avx512(&self, part: Part, pass: &Pass) {
        self.run_layers_impl(part, pass)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_layers_avx512(&self, part: Part, pass: &Pass) {
        self.run_layers_impl(part, pass)
    }

    #[inline(always)]
    fn run_layers_impl(&self, mut part: Part, pass: &Pass) {
        for (i, layer) in self.layers.iter().enumerate() {
            // Alternate q/k/v buffers when split: the other thread may
            // still be reading this layer's keys while this one writes the
            // next layer's, never two layers on (it meets us in between).
            let qkv = if pass.meet.is_some() { i % 2 } else { 0 };
            layer.forward(&mut part, pass, qkv, self.kernel);
        }
    }
}

/// Passes of at least this many rows split across two threads when the
/// machine is otherwise idle: below it, starting a thread and meeting six
/// times cost more than half the pass saves.
const SPLIT_MIN_ROWS: usize = 8;

/// Threads a pass may use: two where the machine has two cores or more.
static SPLIT_THREADS: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(2)));

/// Passes running in the process. One alone may borrow a second core;
/// under concurrent load each keeps to its own, as splitting would only
/// add meetings to work the cores already share.
static PASSES: AtomicUsize = AtomicUsize::new(0);

struct PassCount {
    others: usize,
}

impl PassCount {
    fn enter() -> Self {
        PassCount { others: PASSES.fetch_add(1, Ordering::Relaxed) }
    }

    fn alone(&self) -> bool {
        self.others == 0
    }
}

impl Drop for PassCount {
    fn drop(&mut self) {
        PASSES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One thread's share of a pass: rows `lo..hi` of every row buffer.
struct Part<'a> {
    lo: usize,
    hi: usize,
    x: &'a mut [f32],
    context: &'a mut [f32],
    out: &'a mut [f32],
    ffn: &'a mut [f32],
    lane: &'a mut Lane,
}

/// What the threads of a pass share.
struct Pass<'a> {
    qkv: &'a SharedQkv<'a>,
    spans: &'a [(usize, usize)],
    /// Present when the pass is split.
    meet: Option<&'a Meet>,
}

/// The two q/k/v buffers of a pass, which each thread fills for its own
/// rows and then reads whole (attention needs every key of a sequence).
struct SharedQkv<'a> {
    buffers: [(*mut f32, usize); 2],
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: the buffers are only reached through `rows_mut` and `all`,
// whose contracts keep writes to disjoint rows and reads after a meeting.
unsafe impl Sync for SharedQkv<'_> {}

impl<'a> SharedQkv<'a> {
    fn new(buffers: [&'a mut [f32]; 2]) -> Self {
        SharedQkv { buffers: buffers.map(|b| (b.as_mut_ptr(), b.len())), _borrow: std::marker::PhantomData }
    }

    /// Rows `lo..hi` of buffer `b`, to write.
    ///
    /// # Safety
    /// No other thread may touch these rows of buffer `b` until the
    /// returned slice is dropped and the threads have met.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows_mut(&self, b: usize, lo: usize, hi: usize) -> &mut [f32] {
        let (ptr, len) = self.buffers[b];
        assert!(lo <= hi && hi * 3 * HIDDEN <= len);
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(ptr.add(lo * 3 * HIDDEN), (hi - lo) * 3 * HIDDEN) }
    }

    /// All of buffer `b`, to read.
    ///
    /// # Safety
    /// Every thread's writes to buffer `b` must be finished and followed
    /// by a meeting, and none may write it while the slice lives.
    unsafe fn all(&self, b: usize) -> &[f32] {
        let (ptr, len) = self.buffers[b];
        // SAFETY: the whole buffer; no writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// Two threads meeting between the phases of a pass. They do equal work,
/// so the first to arrive spins briefly; it then yields, in case the other
/// was descheduled. A thread that panics poisons the meeting, and the
/// other panics too rather than wait forever.
#[derive(Default)]
struct Meet {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl Meet {
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) == 1 {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(!self.poisoned.load(Ordering::Relaxed), "the other thread of a split pass panicked");
            if spins < 4_096 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn poison_on_panic(&self) -> impl Drop + '_ {
        struct Guard<'a>(&'a Meet);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.poisoned.store(true, Ordering::Relaxed);
                }
            }
        }
        Guard(self)
    }
}

/// Passes up to this many rows (a long message, or a few short ones) keep
/// their buffers for the thread's next pass; a batch beyond it (distilling
/// the static table) frees them.
const KEEP_SCRATCH_ROWS: usize = 512;

thread_local! {
    /// Each thread's buffers, kept between passes: fresh ones this large
    /// come from `mmap`, and the kernel zeroing their pages cost 5% of a
    /// 128-token pass.
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// Buffers reused across layers and passes. Every value is written before
/// it is read, so growing them is the only setup.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: [Vec<f32>; 2],
    context: Vec<f32>,
    out: Vec<f32>,
    ffn: Vec<f32>,
    /// One per thread of a split pass.
    lanes: [Lane; 2],
}

/// A thread's own buffers: attention scores and int8 sums.
#[derive(Default)]
struct Lane {
    scores: Vec<f32>,
    int8: Int8Scratch,
}

/// What an int8 layer needs besides its output: the quantised rows, each
/// row's range, and the integer sums (the kernels overwrite every one).
#[derive(Default)]
struct Int8Scratch {
    quant: Vec<u8>,
    row_range: Vec<(f32, f32)>,
    acc: Vec<i32>,
}

impl Scratch {
    /// Sizes every buffer for `rows` rows.
    fn fit(&mut self, rows: usize) {
        self.x.resize(rows * HIDDEN, 0.0);
        for qkv in &mut self.qkv {
            qkv.resize(rows * 3 * HIDDEN, 0.0);
        }
        self.context.resize(rows * HIDDEN, 0.0);
        self.out.resize(rows * HIDDEN, 0.0);
        self.ffn.resize(rows * INTERMEDIATE, 0.0);
    }
}

impl Layer {
    /// This layer over one thread's rows, using q/k/v buffer `b`.
    #[inline(always)]
    fn forward(&self, part: &mut Part, pass: &Pass, b: usize, kernel: Option<Kernel>) {
        let (lo, hi) = (part.lo, part.hi);
        let rows = hi - lo;
        {
            // SAFETY: these rows are this thread's alone until the meeting.
            let own = unsafe { pass.qkv.rows_mut(b, lo, hi) };
            self.qkv.apply(part.x, rows, own, &mut part.lane.int8);
        }
        if let Some(meet) = pass.meet {
            meet.wait();
        }
        // SAFETY: every thread wrote its rows of buffer `b` before the
        // meeting, and none writes it again before meeting once more.
        let qkv = unsafe { pass.qkv.all(b) };
        for &(start, len) in pass.spans {
            // this thread's queries of the sequence, against all its keys
            let (first, last) = (start.max(lo), (start + len).min(hi));
            if first >= last {
                continue;
            }
            let seq = &qkv[start * 3 * HIDDEN..(start + len) * 3 * HIDDEN];
            let queries = first - start..last - start;
            let context = &mut part.context[(first - lo) * HIDDEN..(last - lo) * HIDDEN];
            match kernel {
                // SAFETY: `Kernel::Vnni` and `Kernel::Amx` are only chosen when
                // `vnni_available()`, which includes AVX-512 F.
                Some(Kernel::Vnni | Kernel::Amx) => unsafe {
                    attention_avx512(seq, len, queries, context, &mut part.lane.scores)
                },
                // SAFETY: `Kernel::Avx2` is only chosen when `avx2_available()`.
                Some(Kernel::Avx2) => unsafe { attention_avx2(seq, len, queries, context, &mut part.lane.scores) },
                None => attention(seq, len, queries, context, &mut part.lane.scores),
            }
        }
        let s = &mut part.lane.int8;
        self.attn_out.apply(part.context, rows, part.out, s);
        for (row, add) in part.x.chunks_exact_mut(HIDDEN).zip(part.out.chunks_exact(HIDDEN)) {
            row.iter_mut().zip(add).for_each(|(a, b)| *a += b);
            self.attn_norm.apply(row);
        }
        self.ffn_in.apply(part.x, rows, part.ffn, s);
        part.ffn.iter_mut().for_each(|v| *v = gelu(*v));
        self.ffn_out.apply(part.ffn, rows, part.out, s);
        for (row, add) in part.x.chunks_exact_mut(HIDDEN).zip(part.out.chunks_exact(HIDDEN)) {
            row.iter_mut().zip(add).for_each(|(a, b)| *a += b);
            self.ffn_norm.apply(row);
        }
    }
}

/// Scaled dot-product attention of one sequence, all heads, for the
/// queries in `queries`; `qkv` holds `len` rows of [q | k | v] and
/// `context` one row per query. Keys are transposed per head first, so
/// each query's scores are 32 vectorised row updates instead of `len`
/// short dot products.
#[inline(always)]
fn attention(qkv: &[f32], len: usize, queries: Range<usize>, context: &mut [f32], scratch: &mut Vec<f32>) {
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    scratch.resize(len + HEAD_DIM * len, 0.0);
    let (scores, keys_t) = scratch.split_at_mut(len);
    for h in 0..HEADS {
        let off = h * HEAD_DIM;
        for (j, row) in qkv.chunks_exact(3 * HIDDEN).take(len).enumerate() {
            for (d, &k) in row[HIDDEN + off..HIDDEN + off + HEAD_DIM].iter().enumerate() {
                keys_t[d * len + j] = k;
            }
        }
        for i in queries.clone() {
            let q = &qkv[i * 3 * HIDDEN + off..][..HEAD_DIM];
            scores.fill(0.0);
            for (&qd, kd) in q.iter().zip(keys_t.chunks_exact(len)) {
                let qd = qd * scale;
                scores.iter_mut().zip(kd).for_each(|(s, k)| *s += qd * k);
            }
            let max = lanes(scores, f32::NEG_INFINITY, f32::max);
            scores.iter_mut().for_each(|s| *s = fast_exp(*s - max));
            let inv = 1.0 / lanes(scores, 0.0, |a, b| a + b);
            let mut out = [0f32; HEAD_DIM];
            for (&p, row) in scores.iter().zip(qkv.chunks_exact(3 * HIDDEN)) {
                let v = &row[2 * HIDDEN + off..2 * HIDDEN + off + HEAD_DIM];
                out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
            }
            let row = i - queries.start;
            context[row * HIDDEN + off..][..HEAD_DIM].iter_mut().zip(out).for_each(|(c, o)| *c = o * inv);
        }
    }
}

/// Queries per block in the blocked attentions: each key and value row
/// loaded serves four queries.
const QUERY_BLOCK: usize = 4;

/// `attention` as two small matrix products per head, for one vector
/// width of `$lanes` floats: blocks of 4 queries × 2 registers of keys
/// (scores), then 4 queries × 2 registers of dimensions (weighted values),
/// 8 independent sums in registers each, fused multiply-adds throughout.
/// The row-update form loads and stores every score once per dimension:
/// at 128 tokens that was 46% of an AVX-512 pass, and the blocked form is
/// 2× faster on AVX2.
macro_rules! blocked_attention {
    ($(#[$doc:meta])* $name:ident, $features:literal, $lanes:literal,
     $zero:ident, $load:ident, $store:ident, $splat:ident, $fmadd:ident, $mul:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support the target features named.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn $name(
            qkv: &[f32],
            len: usize,
            queries: Range<usize>,
            context: &mut [f32],
            scratch: &mut Vec<f32>,
        ) {
            use std::arch::x86_64::*;
            const LANES: usize = $lanes;
            const KEY_BLOCK: usize = 2 * LANES;
            let scale = 1.0 / (HEAD_DIM as f32).sqrt();
            // keys transposed (a row per dimension), padded with zero keys
            // to whole blocks; then one block of queries' scores
            let padded = len.next_multiple_of(KEY_BLOCK);
            scratch.resize(HEAD_DIM * padded + QUERY_BLOCK * padded, 0.0);
            let (keys_t, scores) = scratch.split_at_mut(HEAD_DIM * padded);
            assert!(queries.end <= len && qkv.len() >= len * 3 * HIDDEN && context.len() >= queries.len() * HIDDEN);
            for h in 0..HEADS {
                let off = h * HEAD_DIM;
                for (d, keys) in keys_t.chunks_exact_mut(padded).enumerate() {
                    for (j, k) in keys[..len].iter_mut().enumerate() {
                        *k = qkv[j * 3 * HIDDEN + HIDDEN + off + d];
                    }
                    keys[len..].fill(0.0);
                }
                for first in queries.clone().step_by(QUERY_BLOCK) {
                    let count = (queries.end - first).min(QUERY_BLOCK);
                    // missing queries of the last block stay zero, and so
                    // do their scores and weights
                    let mut q = [[0f32; HEAD_DIM]; QUERY_BLOCK];
                    for (t, qt) in q.iter_mut().enumerate().take(count) {
                        let row = &qkv[(first + t) * 3 * HIDDEN + off..][..HEAD_DIM];
                        qt.iter_mut().zip(row).for_each(|(a, b)| *a = b * scale);
                    }
                    for block in (0..padded).step_by(KEY_BLOCK) {
                        // SAFETY: dimension d's keys are keys_t[d·padded..][..padded]
                        // and block + KEY_BLOCK ≤ padded; scores holds 4 rows of padded.
                        unsafe {
                            let mut acc = [[$zero(); 2]; QUERY_BLOCK];
                            for (d, keys) in keys_t.chunks_exact(padded).enumerate() {
                                let k = keys.as_ptr().add(block);
                                let (k0, k1) = ($load(k), $load(k.add(LANES)));
                                for (a, qt) in acc.iter_mut().zip(&q) {
                                    let qd = $splat(qt[d]);
                                    a[0] = $fmadd(qd, k0, a[0]);
                                    a[1] = $fmadd(qd, k1, a[1]);
                                }
                            }
                            for (t, a) in acc.iter().enumerate() {
                                let out = scores.as_mut_ptr().add(t * padded + block);
                                $store(out, a[0]);
                                $store(out.add(LANES), a[1]);
                            }
                        }
                    }
                    let mut inv = [0f32; QUERY_BLOCK];
                    for (t, s) in scores.chunks_exact_mut(padded).take(count).enumerate() {
                        let s = &mut s[..len];
                        let max = lanes(s, f32::NEG_INFINITY, f32::max);
                        s.iter_mut().for_each(|v| *v = fast_exp(*v - max));
                        inv[t] = 1.0 / lanes(s, 0.0, |a, b| a + b);
                    }
                    for dims in (0..HEAD_DIM).step_by(2 * LANES) {
                        // SAFETY: value row j's dimensions are
                        // qkv[j·1152 + 768 + off + dims..][..2·LANES], within the
                        // asserted length; scores holds 4 rows of padded ≥ len.
                        unsafe {
                            let mut acc = [[$zero(); 2]; QUERY_BLOCK];
                            for j in 0..len {
                                let v = qkv.as_ptr().add(j * 3 * HIDDEN + 2 * HIDDEN + off + dims);
                                let (v0, v1) = ($load(v), $load(v.add(LANES)));
                                for (t, a) in acc.iter_mut().enumerate() {
                                    let p = $splat(*scores.get_unchecked(t * padded + j));
                                    a[0] = $fmadd(p, v0, a[0]);
                                    a[1] = $fmadd(p, v1, a[1]);
                                }
                            }
                            for t in 0..count {
                                let scale = $splat(inv[t]);
                                let out = context.as_mut_ptr().add((first + t - queries.start) * HIDDEN + off + dims);
                                $store(out, $mul(acc[t][0], scale));
                                $store(out.add(LANES), $mul(acc[t][1], scale));
                            }
                        }
                    }
                }
            }
        }

        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn $name(_: &[f32], _: usize, _: Range<usize>, _: &mut [f32], _: &mut Vec<f32>) {
            unreachable!("x86 vector extensions are only detected on x86_64")
        }
    };
}

blocked_attention!(
    /// Blocked attention in AVX-512 registers: 32 keys, then all 32
    /// dimensions, a block.
    attention_avx512, "avx512f,avx2,fma", 16,
    _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_mul_ps
);

blocked_attention!(
    /// Blocked attention in AVX2 registers: 16 keys, then 16 of the 32
    /// dimensions, a block.
    attention_avx2, "avx2,fma", 8,
    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_mul_ps
);

impl LayerNorm {
    #[inline(always)]
    fn apply(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = lanes(row, 0.0, |a, b| a + b) / n;
        let var = (dot(row, row) / n - mean * mean).max(0.0);
        let inv = 1.0 / (var + LN_EPS).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// A dense layer `y = x·Wᵀ + b` (PyTorch's weight layout: `out × in`).
struct Linear {
    in_dim: usize,
    out_dim: usize,
    bias: Vec<f32>,
    weights: Weights,
}

enum Weights {
    F32(Vec<f32>),
    Int8 {
        kernel: Kernel,
        /// Blocks of `kernel.block()` outputs; in each, groups of 4 inputs;
        /// in each, block×4 bytes (output-major): one register operand.
        packed: Vec<i8>,
        scale: Vec<f32>,
        /// Σ_k w[o][k], for the activations' offset.
        sum: Vec<i32>,
    },
}

/// Outputs a kernel call produces per row: four 16-lane blocks (VNNI) or
/// two 8-lane blocks (AVX2). Every layer's width is a multiple of 64.
const OUT_TILE: usize = 64;
const OUT_TILE_AVX2: usize = 16;

impl Linear {
    fn new(w: Vec<f32>, bias: Vec<f32>, in_dim: usize, kernel: Option<Kernel>) -> Self {
        let out_dim = bias.len();
        debug_assert_eq!(w.len(), in_dim * out_dim);
        let Some(kernel) = kernel else {
            return Linear { in_dim, out_dim, bias, weights: Weights::F32(w) };
        };
        let (width, levels) = (kernel.block(), kernel.weight_levels());
        assert!(
            out_dim.is_multiple_of(OUT_TILE) && in_dim.is_multiple_of(4),
            "int8 kernel needs out % 64 == 0 and in % 4 == 0"
        );
        let mut packed = vec![0i8; in_dim * out_dim];
        let mut scale = vec![0f32; out_dim];
        let mut sum = vec![0i32; out_dim];
        for o in 0..out_dim {
            let row = &w[o * in_dim..(o + 1) * in_dim];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / levels } else { 1.0 };
            scale[o] = s;
            let (block, lane) = (o / width, o % width);
            for (k, v) in row.iter().enumerate() {
                let q = (v / s).round().clamp(-levels, levels) as i8;
                sum[o] += i32::from(q);
                packed[block * width * in_dim + (k / 4) * width * 4 + lane * 4 + k % 4] = q;
            }
        }
        Linear { in_dim, out_dim, bias, weights: Weights::Int8 { kernel, packed, scale, sum } }
    }

    #[inline(always)]
    fn apply(&self, x: &[f32], rows: usize, y: &mut [f32], scratch: &mut Int8Scratch) {
        let (n, m) = (self.in_dim, self.out_dim);
        match &self.weights {
            Weights::F32(w) => {
                for (xr, yr) in x[..rows * n].chunks_exact(n).zip(y.chunks_exact_mut(m)) {
                    for ((yo, wo), b) in yr.iter_mut().zip(w.chunks_exact(n)).zip(&self.bias) {
                        *yo = dot(xr, wo) + b;
                    }
                }
            }
            Weights::Int8 { kernel, packed, scale, sum } => {
                let Int8Scratch { quant, row_range, acc } = scratch;
                quantize_rows(&x[..rows * n], n, quant, row_range);
                // AMX works on whole tiles of 32 rows: zero rows, whose sums
                // are dropped
                let kernel_rows = if *kernel == Kernel::Amx { rows.next_multiple_of(AMX_ROWS) } else { rows };
                quant.resize(kernel_rows * n, 0);
                acc.resize(kernel_rows * m, 0);
                match kernel {
                    // SAFETY: `Kernel::Amx` is only chosen when `amx_available()`,
                    // which also granted this process the tile state; rows padded.
                    Kernel::Amx => unsafe { int8_kernel_amx(quant, n, packed, m, acc) },
                    // SAFETY: `Kernel::Vnni` is only chosen when `vnni_available()`.
                    Kernel::Vnni => unsafe { int8_kernel(quant, rows, n, packed, m, acc) },
                    // SAFETY: `Kernel::Avx2` is only chosen when `avx2_available()`.
                    Kernel::Avx2 => unsafe { int8_kernel_avx2(quant, rows, n, packed, m, acc) },
                }
                for ((ar, yr), &(sx, min)) in acc.chunks_exact(m).zip(y.chunks_exact_mut(m)).zip(row_range.iter()) {
                    // Σ_k (min + s·q_k)·(sw·w_k) = sw·(s·Σ q_k w_k + min·Σ w_k)
                    for ((((yo, &a), &sw), &ws), &b) in yr.iter_mut().zip(ar).zip(scale).zip(sum).zip(&self.bias) {
                        *yo = sw * (sx * a as f32 + min * ws as f32) + b;
                    }
                }
            }
        }
    }
}

/// Each row to u8 over its own range: `x ≈ min + scale·q`. Asymmetric,
/// because GELU outputs barely go below zero: a symmetric range would
/// waste half the levels.
#[inline(always)]
fn quantize_rows(x: &[f32], n: usize, out: &mut Vec<u8>, ranges: &mut Vec<(f32, f32)>) {
    out.resize(x.len(), 0);
    ranges.clear();
    for (xr, qr) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        // in lanes: a single (min, max) fold is a serial chain
        let (min, max) = (lanes(xr, f32::INFINITY, f32::min), lanes(xr, f32::NEG_INFINITY, f32::max));
        let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
        ranges.push((scale, min));
        let inv = 1.0 / scale;
        for (q, v) in qr.iter_mut().zip(xr) {
            *q = round_nearest_int(((v - min) * inv).clamp(0.0, 255.0)).1 as u8;
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn vnni_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn vnni_available() -> bool {
    false
}

/// Whether the CPU has AMX int8 and Linux lets this process use the tiles
/// (asked once: their 8 KB of state is opt-in per process).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_available() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf.edx & (0b11 << 24) != 0b11 << 24 {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only changes which
        // register state the kernel saves for this process; it fails
        // cleanly (negative errno) on kernels without AMX support.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    })
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

/// `acc[r][o] = Σ_k x[r][k] · w[o][k]` with `x` as u8 and `w` packed i8.
/// Tiles of up to 4 rows × 64 outputs keep 16 accumulators in registers.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn int8_kernel(x: &[u8], rows: usize, n: usize, packed: &[i8], m: usize, acc: &mut [i32]) {
    // Output blocks outside, rows inside, as in the AVX2 kernel: at 128
    // rows this spends 13% fewer cycles than streaming the matrix from L2
    // once per four rows.
    for ob in (0..m).step_by(OUT_TILE) {
        let mut r = 0;
        while r < rows {
            let tile = (rows - r).min(4);
            // SAFETY: same target features; bounds as asserted at packing.
            unsafe {
                match tile {
                    4 => tile_kernel::<4>(x, r, n, packed, ob, m, acc),
                    3 => tile_kernel::<3>(x, r, n, packed, ob, m, acc),
                    2 => tile_kernel::<2>(x, r, n, packed, ob, m, acc),
                    _ => tile_kernel::<1>(x, r, n, packed, ob, m, acc),
                }
            }
            r += tile;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile_kernel<const T: usize>(
    x: &[u8],
    r0: usize,
    n: usize,
    packed: &[i8],
    ob: usize,
    m: usize,
    acc: &mut [i32],
) {
    use std::arch::x86_64::*;
    let mut sums = [[_mm512_setzero_si512(); 4]; T];
    let blocks: [&[i8]; 4] = std::array::from_fn(|b| &packed[(ob / 16 + b) * 16 * n..][..16 * n]);
    let rows: [&[u8]; T] = std::array::from_fn(|t| &x[(r0 + t) * n..][..n]);
    for g in 0..n / 4 {
        // SAFETY: each block holds n/4 groups of 64 bytes; each row n bytes.
        unsafe {
            let w: [__m512i; 4] = std::array::from_fn(|b| _mm512_loadu_si512(blocks[b].as_ptr().add(g * 64).cast()));
            for t in 0..T {
                let a = _mm512_set1_epi32(std::ptr::read_unaligned(rows[t].as_ptr().add(g * 4).cast::<i32>()));
                for b in 0..4 {
                    sums[t][b] = _mm512_dpbusd_epi32(sums[t][b], a, w[b]);
                }
            }
        }
    }
    for t in 0..T {
        for b in 0..4 {
            let out = &mut acc[(r0 + t) * m + ob + b * 16..][..16];
            // SAFETY: 16 i32 in bounds.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), sums[t][b]) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn int8_kernel(_: &[u8], _: usize, _: usize, _: &[i8], _: usize, _: &mut [i32]) {
    unreachable!("int8 weights are only packed on x86_64")
}

/// Activation rows per AMX step: two tiles of 16.
const AMX_ROWS: usize = 32;

/// The tile shapes `int8_kernel_amx` loads: every tile 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// `int8_kernel` on AMX tiles, for rows padded to a multiple of 32. Each
/// step multiplies 32 rows × 64 inputs by 64 inputs × 32 outputs into four
/// 16×16 i32 tiles (tmm0–3): activations in tmm4/5 (16 rows of 64 bytes,
/// strided by `n`), weights in tmm6/7 (VNNI's packing is already AMX's
/// layout: 16 groups of 4 inputs × 16 outputs, contiguous). 2.5–3× the
/// VNNI kernel's rate here (about 500 against 190 GMAC/s).
///
/// # Safety
/// The CPU must support AMX-TILE and AMX-INT8, and the process must hold
/// permission for the tile state (`amx_available()`); `x` must hold a
/// multiple of 32 rows of `n` bytes and `acc` as many rows of `m`.
#[cfg(target_arch = "x86_64")]
unsafe fn int8_kernel_amx(x: &[u8], n: usize, packed: &[i8], m: usize, acc: &mut [i32]) {
    use std::arch::asm;
    let rows = x.len() / n;
    assert!(rows.is_multiple_of(AMX_ROWS) && acc.len() >= rows * m && packed.len() >= n * m);
    assert!(n.is_multiple_of(64) && m.is_multiple_of(32));
    // palette 1 has 8 tiles; configuring the other 8 is a fault
    let (mut bytes_per_row, mut tile_rows) = ([0; 16], [0; 16]);
    bytes_per_row[..8].fill(64);
    tile_rows[..8].fill(16);
    let config = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row, rows: tile_rows };
    // SAFETY (every block below): tiles as configured here; each load reads
    // 16 rows of 64 bytes within `x` or a weight block, each store writes 16
    // rows of 16 i32 within `acc`, by the asserts above.
    unsafe {
        asm!("ldtilecfg [{0}]", in(reg) std::ptr::from_ref(&config), options(nostack, readonly));
        for r in (0..rows).step_by(AMX_ROWS) {
            for o in (0..m).step_by(32) {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
                for k in (0..n).step_by(64) {
                    let weights = |b: usize| packed.as_ptr().add((o / 16 + b) * 16 * n + k * 16);
                    asm!(
                        "tileloadd tmm4, [{a0} + {row}*1]",
                        "tileloadd tmm6, [{w0} + {group}*1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{w1} + {group}*1]",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tileloadd tmm5, [{a1} + {row}*1]",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a0 = in(reg) x.as_ptr().add(r * n + k),
                        a1 = in(reg) x.as_ptr().add((r + 16) * n + k),
                        row = in(reg) n,
                        w0 = in(reg) weights(0),
                        w1 = in(reg) weights(1),
                        group = in(reg) 64usize,
                        options(nostack, readonly),
                    );
                }
                let (top, bottom) = (acc.as_mut_ptr().add(r * m + o), acc.as_mut_ptr().add((r + 16) * m + o));
                asm!(
                    "tilestored [{c0} + {stride}*1], tmm0",
                    "tilestored [{c1} + {stride}*1], tmm1",
                    "tilestored [{c2} + {stride}*1], tmm2",
                    "tilestored [{c3} + {stride}*1], tmm3",
                    c0 = in(reg) top,
                    c1 = in(reg) top.add(16),
                    c2 = in(reg) bottom,
                    c3 = in(reg) bottom.add(16),
                    stride = in(reg) m * 4,
                    options(nostack),
                );
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn int8_kernel_amx(_: &[u8], _: usize, _: &[i8], _: usize, _: &mut [i32]) {
    unreachable!("int8 weights are only packed on x86_64")
}

/// `int8_kernel` for AVX2: `vpmaddubsw` multiplies u8 by i8 and adds
/// neighbours into i16 (exact: weights stay within ±63), `vpmaddwd` by
/// ones widens the pairs to i32. Tiles of up to 4 rows × 16 outputs keep 8
/// accumulators in registers.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn int8_kernel_avx2(x: &[u8], rows: usize, n: usize, packed: &[i8], m: usize, acc: &mut [i32]) {
    // Output blocks outside, rows inside: a block's weights (at most 24 KB)
    // stay in L1 while every row passes, where the other order streams the
    // whole matrix (up to 590 KB, more than L2) once per four rows.
    for ob in (0..m).step_by(OUT_TILE_AVX2) {
        let mut r = 0;
        while r < rows {
            let tile = (rows - r).min(4);
            // SAFETY: same target features; bounds as asserted at packing.
            unsafe {
                match tile {
                    4 => tile_kernel_avx2::<4>(x, r, n, packed, ob, m, acc),
                    3 => tile_kernel_avx2::<3>(x, r, n, packed, ob, m, acc),
                    2 => tile_kernel_avx2::<2>(x, r, n, packed, ob, m, acc),
                    _ => tile_kernel_avx2::<1>(x, r, n, packed, ob, m, acc),
                }
            }
            r += tile;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_kernel_avx2<const T: usize>(
    x: &[u8],
    r0: usize,
    n: usize,
    packed: &[i8],
    ob: usize,
    m: usize,
    acc: &mut [i32],
) {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut sums = [[_mm256_setzero_si256(); 2]; T];
    let blocks: [&[i8]; 2] = std::array::from_fn(|b| &packed[(ob / 8 + b) * 8 * n..][..8 * n]);
    let rows: [&[u8]; T] = std::array::from_fn(|t| &x[(r0 + t) * n..][..n]);
    for g in 0..n / 4 {
        // SAFETY: each block holds n/4 groups of 32 bytes; each row n bytes.
        unsafe {
            let w: [__m256i; 2] = std::array::from_fn(|b| _mm256_loadu_si256(blocks[b].as_ptr().add(g * 32).cast()));
            for t in 0..T {
                let a = _mm256_set1_epi32(std::ptr::read_unaligned(rows[t].as_ptr().add(g * 4).cast::<i32>()));
                for b in 0..2 {
                    let pairs = _mm256_maddubs_epi16(a, w[b]);
                    sums[t][b] = _mm256_add_epi32(sums[t][b], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
    }
    for t in 0..T {
        for b in 0..2 {
            let out = &mut acc[(r0 + t) * m + ob + b * 8..][..8];
            // SAFETY: 8 i32 in bounds.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), sums[t][b]) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn int8_kernel_avx2(_: &[u8], _: usize, _: usize, _: &[i8], _: usize, _: &mut [i32]) {
    unreachable!("int8 weights are only packed on x86_64")
}

/// Folds `values` in sixteen lanes, then the lanes: a single running
/// value would be a serial chain the compiler may not reorder.
#[inline(always)]
fn lanes(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let chunks = values.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    for chunk in chunks {
        for i in 0..16 {
            acc[i] = f(acc[i], chunk[i]);
        }
    }
    acc.iter().fold(tail, |a, &v| f(a, v))
}

/// Sixteen partial sums, so the compiler vectorises the loop.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += xa[i] * xb[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// e^x to ~1e-6 relative, branch-free so loops over it vectorise.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let y = x.clamp(-87.0, 88.0) * std::f32::consts::LOG2_E;
    let (n, n_int) = round_nearest_int(y);
    let f = y - n;
    // 2^f on [-0.5, 0.5]: Taylor series of e^(f·ln2) to degree 6
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5 + f * (0.055_504_11 + f * (0.009_618_129 + f * (0.001_333_355 + f * 0.000_154_035_3)))));
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// Rounds to the nearest integer for |x| < 2²², as a float and as an
/// integer: adding 1.5·2²³ pushes the fraction out of the mantissa, which
/// then holds the integer. Neither `round()` (a libm call on baseline
/// x86-64) nor an `as` cast (saturating, scalar) would vectorise.
#[inline(always)]
fn round_nearest_int(x: f32) -> (f32, i32) {
    const MAGIC: f32 = 12_582_912.0;
    let shifted = x + MAGIC;
    (shifted - MAGIC, shifted.to_bits() as i32 - MAGIC.to_bits() as i32)
}

/// BERT's exact GELU, x·Φ(x), with erf from Abramowitz & Stegun 7.1.26
/// (|error| < 1.5e-7).
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_7 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let erf_abs = 1.0 - poly * fast_exp(-a * a);
    0.5 * x * (1.0 + erf_abs.copysign(z))
}

fn tensor(st: &SafeTensors, name: &str, len: usize) -> Result<Vec<f32>, LoadError> {
    let v = tensor_any(st, name)?;
    if v.len() != len {
        return Err(LoadError::Tensor { name: name.into(), why: format!("{} values, expected {len}", v.len()) });
    }
    Ok(v)
}

fn tensor_any(st: &SafeTensors, name: &str) -> Result<Vec<f32>, LoadError> {
    let err = |why: String| LoadError::Tensor { name: name.into(), why };
    let view = st.tensor(name).map_err(|e| err(e.to_string()))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(err(format!("dtype {:?}, expected F32", view.dtype())));
    }
    Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random 31-bit values (a 64-bit LCG's top bits).
    fn lcg(mut seed: u64) -> impl FnMut() -> u32 {
        move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as u32
        }
    }

    /// `lcg`'s values spread over [-0.5, 0.5).
    fn uniform(seed: u64) -> impl FnMut() -> f32 {
        let mut next = lcg(seed);
        move || next() as f32 / (1u64 << 31) as f32 - 0.5
    }

    #[test]
    fn fast_exp_matches_std() {
        for i in -800..=800 {
            let x = i as f32 / 10.0;
            let rel = (fast_exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-5, "exp({x}): {} vs {}", fast_exp(x), x.exp());
        }
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        // reference values of x·Φ(x)
        for (x, want) in
            [(-3.0, -0.004_049_7), (-1.0, -0.158_655_3), (0.0, 0.0), (0.5, 0.345_731_1), (2.0, 1.954_499_7)]
        {
            assert!((gelu(x) - want).abs() < 1e-5, "gelu({x}) = {}", gelu(x));
        }
    }

    #[test]
    fn int8_linear_agrees_with_f32() {
        let kernels: Vec<Kernel> = [
            (Kernel::Amx, vnni_available() && amx_available()),
            (Kernel::Vnni, vnni_available()),
            (Kernel::Avx2, avx2_available()),
        ]
        .into_iter()
        .filter_map(|(k, here)| here.then_some(k))
        .collect();
        if kernels.is_empty() {
            eprintln!("neither AVX-512 VNNI nor AVX2 here: int8 kernels not exercised");
            return;
        }
        for kernel in kernels {
            int8_kernel_agrees_with_f32(kernel);
        }
    }

    #[test]
    fn blocked_attention_agrees_with_row_attention() {
        let mut blocked: Vec<(&str, AttentionFn)> = Vec::new();
        if vnni_available() {
            blocked.push(("AVX-512", attention_avx512));
        }
        if avx2_available() {
            blocked.push(("AVX2", attention_avx2));
        }
        if blocked.is_empty() {
            eprintln!("neither AVX-512 nor AVX2 here: blocked attention not exercised");
        }
        let mut next = uniform(11);
        // lengths around the 4-query and 16- and 32-key blocks; all
        // queries, then a range that starts and ends inside query blocks
        for len in [1, 3, 4, 5, 15, 16, 17, 20, 32, 33, 64, 127, 128] {
            let qkv: Vec<f32> = (0..len * 3 * HIDDEN).map(|_| next() * 6.0).collect();
            for queries in [0..len, len / 3..len - len / 4] {
                let mut rows = vec![0f32; queries.len() * HIDDEN];
                let mut scratch = Vec::new();
                attention(&qkv, len, queries.clone(), &mut rows, &mut scratch);
                for &(name, f) in &blocked {
                    let mut out = vec![f32::NAN; queries.len() * HIDDEN];
                    // a used scratch: nothing may depend on its old contents
                    scratch.iter_mut().for_each(|v| *v = 1e6);
                    // SAFETY: the CPU feature was checked above.
                    unsafe { f(&qkv, len, queries.clone(), &mut out, &mut scratch) };
                    for (i, (a, b)) in rows.iter().zip(&out).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                            "{name}, len {len}, {queries:?}, value {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    type AttentionFn = unsafe fn(&[f32], usize, Range<usize>, &mut [f32], &mut Vec<f32>);

    /// Split passes give the single-thread result bit for bit: every step
    /// but attention is per row, and attention reads all keys after the
    /// threads meet. Random weights, several sequences whose spans straddle
    /// the split, every kernel this CPU has and f32.
    #[test]
    fn a_split_pass_equals_a_single_thread_pass() {
        let mut next = uniform(23);
        let mut random = |len: usize, scale: f32| -> Vec<f32> { (0..len).map(|_| next() * scale).collect() };
        let mut kernels = vec![None];
        kernels.extend(Kernel::detect().map(Some));
        if avx2_available() && Kernel::detect() != Some(Kernel::Avx2) {
            kernels.push(Some(Kernel::Avx2));
        }
        for kernel in kernels {
            let linear = |random: &mut dyn FnMut(usize, f32) -> Vec<f32>, n: usize, m: usize| {
                Linear::new(random(n * m, 0.1), random(m, 0.1), n, kernel)
            };
            let norm = |random: &mut dyn FnMut(usize, f32) -> Vec<f32>| LayerNorm {
                gamma: random(HIDDEN, 0.2).into_iter().map(|g| g + 1.0).collect(),
                beta: random(HIDDEN, 0.2),
            };
            let layers = (0..2)
                .map(|_| Layer {
                    qkv: linear(&mut random, HIDDEN, 3 * HIDDEN),
                    attn_out: linear(&mut random, HIDDEN, HIDDEN),
                    attn_norm: norm(&mut random),
                    ffn_in: linear(&mut random, HIDDEN, INTERMEDIATE),
                    ffn_out: linear(&mut random, INTERMEDIATE, HIDDEN),
                    ffn_norm: norm(&mut random),
                })
                .collect();
            let encoder = Encoder {
                word: random(128 * HIDDEN, 1.0),
                position: random(MAX_POSITIONS * HIDDEN, 1.0),
                token_type: random(2 * HIDDEN, 1.0),
                embed_norm: norm(&mut random),
                layers,
                kernel,
                split: true.into(),
            };
            let seqs: [&[u32]; 3] = [&[1, 7, 9, 2, 40, 33, 3], &[5; 20], &[8, 60, 400, 4]];
            for batch in [&seqs[..], &seqs[1..2], &seqs[..1]] {
                let single = encoder.pooled_with(batch, Split::Never);
                let split = encoder.pooled_with(batch, Split::Always);
                assert!(single.iter().flatten().all(|v| v.is_finite()));
                assert_eq!(single, split, "{kernel:?}, {} sequences", batch.len());
            }
        }
    }

    /// AMX and VNNI share the packing and both sum exactly in i32, so their
    /// outputs (and the encoder kind heads are trained for) are the same.
    #[test]
    fn amx_sums_equal_vnni_sums() {
        if !(vnni_available() && amx_available()) {
            eprintln!("no AMX here: AMX kernel not exercised");
            return;
        }
        let mut next = lcg(5);
        for (rows, n, m) in [(1usize, 384, 64), (20, 384, 1152), (64, 1536, 384), (130, 384, 1536)] {
            let w: Vec<f32> = (0..n * m).map(|_| next() as f32 / u32::MAX as f32 - 0.25).collect();
            let linear = Linear::new(w, vec![0.0; m], n, Some(Kernel::Vnni));
            let Weights::Int8 { packed, .. } = &linear.weights else { unreachable!() };
            let padded = rows.next_multiple_of(AMX_ROWS);
            let mut x: Vec<u8> = (0..padded * n).map(|_| next() as u8).collect();
            x[rows * n..].fill(0);
            let (mut vnni, mut amx) = (vec![0i32; rows * m], vec![-1i32; padded * m]);
            // SAFETY: both checked above; x and amx padded to whole tiles.
            unsafe {
                int8_kernel(&x, rows, n, packed, m, &mut vnni);
                int8_kernel_amx(&x, n, packed, m, &mut amx);
            }
            assert_eq!(vnni[..], amx[..rows * m], "{rows}×{n}→{m}");
        }
    }

    fn int8_kernel_agrees_with_f32(kernel: Kernel) {
        let (n, m, rows) = (384, 128, 7);
        // deterministic pseudo-random weights and inputs
        let mut next = uniform(7);
        let w: Vec<f32> = (0..n * m).map(|_| next()).collect();
        let b: Vec<f32> = (0..m).map(|_| next()).collect();
        let x: Vec<f32> = (0..rows * n).map(|_| next() * 4.0).collect();
        let f = Linear::new(w.clone(), b.clone(), n, None);
        let q = Linear::new(w, b, n, Some(kernel));
        let (mut yf, mut yq) = (vec![0f32; rows * m], vec![0f32; rows * m]);
        let mut scratch = Int8Scratch::default();
        f.apply(&x, rows, &mut yf, &mut scratch);
        q.apply(&x, rows, &mut yq, &mut scratch);
        let err: f32 = yf.iter().zip(&yq).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
        let norm: f32 = yf.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!(err / norm < 0.02, "{kernel:?}: relative error {}", err / norm);
    }
}
