//! The embedded model: SmolLM2-135M-Instruct (GGUF) run by llama.cpp in
//! process. llama.cpp was chosen over candle because it reaches ~100 tok/s
//! on this 2-core CPU without a native-only build (candle: ~70 after a Q8_0
//! conversion); see README.
//!
//! The model loads once. One dedicated OS thread owns it and serves a FIFO
//! queue, so generation never blocks the async runtime; each job streams
//! its text back through a channel and stops early when the caller hangs up.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::{ChatMessage, EventReceiver, ProviderError, ProviderEvent, ProviderRequest};
use crate::config::LocalModelConfig;
use crate::engine::pricing::Usage;

/// Settings the generation thread needs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub threads: u32,
    pub context_tokens: u32,
    pub max_output_tokens: u32,
    pub temperature: f32,
    pub repeat_penalty: f32,
    pub max_queue: usize,
    /// Decoded at start and kept in the KV cache: most prompts begin with
    /// it, so the first customer already finds it computed.
    pub warm_system_prompt: Option<String>,
}

impl From<&LocalModelConfig> for LocalOptions {
    fn from(c: &LocalModelConfig) -> Self {
        LocalOptions {
            threads: c.threads,
            context_tokens: c.context_tokens,
            max_output_tokens: c.max_output_tokens,
            temperature: c.temperature,
            repeat_penalty: c.repeat_penalty,
            max_queue: c.max_queue,
            warm_system_prompt: None,
        }
    }
}

struct Job {
    messages: Vec<ChatMessage>,
    max_tokens: u32,
    temperature: f32,
    events: mpsc::Sender<Result<ProviderEvent, ProviderError>>,
}

pub struct LocalModel {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Jobs sent but not yet started.
    waiting: Arc<AtomicUsize>,
    options: LocalOptions,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel").field("waiting", &self.waiting.load(Ordering::Relaxed)).finish()
    }
}

impl LocalModel {
    /// Loads the GGUF on a new thread and returns once it is ready (or
    /// failed to load). Blocking: call from `spawn_blocking` or at start.
    pub fn load(path: &Path, options: LocalOptions) -> Result<Self, ProviderError> {
        if !path.exists() {
            return Err(ProviderError::Unavailable(
                path.display().to_string(),
                "model file not found; run scripts/fetch-models".into(),
            ));
        }
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ProviderError>>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let thread_waiting = waiting.clone();
        let thread_options = options.clone();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("local-llm".into())
            .spawn(move || serve(&path, thread_options, jobs_rx, ready_tx, thread_waiting))
            .map_err(|e| ProviderError::Generation(format!("could not start the model thread: {e}")))?;
        ready_rx.recv().map_err(|_| ProviderError::Generation("the model thread died while loading".into()))??;
        Ok(LocalModel { jobs: jobs_tx, waiting, options })
    }

    pub fn generate(&self, request: ProviderRequest) -> Result<EventReceiver, ProviderError> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.options.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ProviderError::Overloaded(waiting));
        }
        // Room for a whole answer: the thread never waits on a slow reader.
        let (tx, rx) = mpsc::channel(self.options.max_output_tokens as usize + 8);
        let job = Job {
            messages: request.messages,
            max_tokens: request
                .max_tokens
                .unwrap_or(self.options.max_output_tokens)
                .min(self.options.max_output_tokens),
            temperature: request.temperature.unwrap_or(self.options.temperature),
            events: tx,
        };
        self.jobs.send(job).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            ProviderError::Generation("the model thread has stopped".into())
        })?;
        Ok(EventReceiver::from_channel(rx))
    }

    /// Requests queued behind the one being generated.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

fn serve(
    path: &Path,
    options: LocalOptions,
    jobs: std::sync::mpsc::Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), ProviderError>>,
    waiting: Arc<AtomicUsize>,
) {
    let loaded = backend().and_then(|backend| {
        let model =
            LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| e.to_string())?;
        Ok::<_, String>((backend, model))
    });
    let (backend, model) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(ProviderError::Unavailable(path.display().to_string(), e)));
            return;
        }
    };
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get() as i32)
    } else {
        options.threads as i32
    };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.context_tokens))
        .with_n_batch(options.context_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(ProviderError::Unavailable(path.display().to_string(), e.to_string())));
            return;
        }
    };
    let chat = ChatTokens::new(&model);
    // One tiny decode before serving: the first decode allocates llama.cpp's
    // compute buffers, which would otherwise land on the first customer.
    let mut warm_messages = Vec::new();
    if let Some(system) = &options.warm_system_prompt {
        warm_messages.push(ChatMessage::new(super::Role::System, system.clone()));
    }
    warm_messages.push(ChatMessage::new(super::Role::User, "Hi"));
    let warm = chat.prompt(&model, &warm_messages);
    let mut batch = LlamaBatch::new(warm.len(), 1);
    for (i, token) in warm.iter().enumerate() {
        let _ = batch.add(*token, i as i32, &[0], i == warm.len() - 1);
    }
    let mut cache: Vec<LlamaToken> = Vec::new();
    if ctx.decode(&mut batch).is_ok() {
        cache = warm;
    } else {
        ctx.clear_kv_cache();
    }
    let _ = ready.send(Ok(()));
    for job in jobs {
        waiting.fetch_sub(1, Ordering::SeqCst);
        if job.events.is_closed() {
            continue; // the caller left while queued
        }
        let events = job.events.clone();
        if let Err(e) = generate(&model, &mut ctx, &mut cache, &chat, &options, job) {
            // the cache's contents are unknown after a failed decode
            ctx.clear_kv_cache();
            cache.clear();
            let _ = events.blocking_send(Err(e));
        }
    }
}

/// Token ids of the ChatML markers, looked up once.
struct ChatTokens {
    im_start: Vec<LlamaToken>,
    im_end: Vec<LlamaToken>,
    newline: Vec<LlamaToken>,
}

impl ChatTokens {
    fn new(model: &LlamaModel) -> Self {
        let vocab = model.vocab();
        ChatTokens {
            im_start: vocab.tokenize(b"<|im_start|>", false, true),
            im_end: vocab.tokenize(b"<|im_end|>", false, true),
            newline: vocab.tokenize(b"\n", false, false),
        }
    }

    /// ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
    /// `<|im_start|>assistant\n`. Message text is tokenized with special-token
    /// parsing off, so a customer typing `<|im_end|>` cannot forge a turn.
    fn prompt(&self, model: &LlamaModel, messages: &[ChatMessage]) -> Vec<LlamaToken> {
        let vocab = model.vocab();
        let mut tokens = Vec::new();
        for m in messages {
            tokens.extend(&self.im_start);
            tokens.extend(vocab.tokenize(format!("{}\n", m.role.as_str()).as_bytes(), false, false));
            tokens.extend(vocab.tokenize(m.content.as_bytes(), false, false));
            tokens.extend(&self.im_end);
            tokens.extend(&self.newline);
        }
        tokens.extend(&self.im_start);
        tokens.extend(vocab.tokenize(b"assistant\n", false, false));
        tokens
    }
}

/// Keeps the system message and as many of the latest turns as fit.
fn fit_prompt(
    model: &LlamaModel,
    chat: &ChatTokens,
    messages: &[ChatMessage],
    budget: usize,
) -> Result<Vec<LlamaToken>, ProviderError> {
    let (system, turns): (Vec<_>, Vec<_>) = messages.iter().cloned().partition(|m| m.role == super::Role::System);
    let mut start = 0;
    loop {
        let mut kept = system.clone();
        kept.extend_from_slice(&turns[start..]);
        let tokens = chat.prompt(model, &kept);
        if tokens.len() <= budget {
            return Ok(tokens);
        }
        if start + 1 >= turns.len() {
            return Err(ProviderError::ContextTooLong { tokens: tokens.len(), limit: budget });
        }
        start += 1;
    }
}

/// `cache` holds the tokens whose keys and values are in `ctx`, in order.
fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    cache: &mut Vec<LlamaToken>,
    chat: &ChatTokens,
    options: &LocalOptions,
    job: Job,
) -> Result<(), ProviderError> {
    let gen_err = |e: &dyn std::fmt::Display| ProviderError::Generation(e.to_string());
    let budget = (options.context_tokens - job.max_tokens) as usize;
    let prompt = fit_prompt(model, chat, &job.messages, budget)?;

    // Reuse the KV cache for the prefix this prompt shares with what is
    // already in it (the system prompt always; a ticket's whole history on
    // a follow-up), and decode only the rest. At least one token is decoded
    // so there are logits to sample from.
    let mut common = cache.iter().zip(&prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
    if !matches!(ctx.clear_kv_cache_seq(Some(0), Some(common as u32), None), Ok(true)) {
        ctx.clear_kv_cache();
        common = 0;
    }
    cache.truncate(common);
    let mut batch = LlamaBatch::new(options.context_tokens as usize, 1);
    let last = prompt.len() - 1;
    for (i, token) in prompt.iter().enumerate().skip(common) {
        batch.add(*token, i as i32, &[0], i == last).map_err(|e| gen_err(&e))?;
    }
    ctx.decode(&mut batch).map_err(|e| gen_err(&e))?;
    cache.extend_from_slice(&prompt[common..]);

    let mut sampler = if job.temperature <= 0.0 {
        LlamaSampler::chain_simple([
            LlamaSampler::penalties(model.n_vocab(), 64, options.repeat_penalty, 0.0, 0.0),
            LlamaSampler::greedy(),
        ])
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::penalties(model.n_vocab(), 64, options.repeat_penalty, 0.0, 0.0),
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.9, 1),
            LlamaSampler::temp(job.temperature),
            LlamaSampler::dist(rand_seed()),
        ])
    };

    let vocab = model.vocab();
    let mut text = Utf8Stream::default();
    let mut position = prompt.len() as i32;
    let mut generated = 0u32;
    let mut finish = "length";
    while generated < job.max_tokens {
        let token = sampler.sample(ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) || vocab.is_control(token) {
            finish = "stop";
            break;
        }
        generated += 1;
        let piece = vocab.token_to_piece(token, false, None);
        if let Some(delta) = text.push(&piece)
            && job.events.blocking_send(Ok(ProviderEvent::Delta(delta))).is_err()
        {
            return Ok(()); // the caller hung up: stop spending CPU on it
        }
        batch.clear();
        batch.add(token, position, &[0], true).map_err(|e| gen_err(&e))?;
        position += 1;
        ctx.decode(&mut batch).map_err(|e| gen_err(&e))?;
        cache.push(token);
    }
    if let Some(rest) = text.finish() {
        let _ = job.events.blocking_send(Ok(ProviderEvent::Delta(rest)));
    }
    let _ = job.events.blocking_send(Ok(ProviderEvent::Finish(finish.to_string())));
    let usage =
        Usage { input_tokens: prompt.len() as u32, output_tokens: generated, cached_tokens: 0, estimated: false };
    let _ = job.events.blocking_send(Ok(ProviderEvent::Usage(usage)));
    Ok(())
}

/// llama.cpp's backend is process-wide and may be initialised only once.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Counts tokens with SmolLM2's BPE vocabulary (loaded alone, without
/// weights). Used only to estimate usage when a provider reported none.
pub struct TokenCounter {
    model: Option<LlamaModel>,
}

impl TokenCounter {
    /// Never fails: without the GGUF it falls back to ~4 characters a token.
    pub fn load(path: &Path) -> Self {
        let model =
            path.exists().then(|| backend().ok()).flatten().and_then(|b| {
                LlamaModel::load_from_file(b, path, &LlamaModelParams::default().with_vocab_only(true)).ok()
            });
        TokenCounter { model }
    }

    pub fn count(&self, text: &str) -> u32 {
        match &self.model {
            Some(m) => m.vocab().tokenize(text.as_bytes(), false, false).len() as u32,
            None => text.chars().count().div_ceil(4) as u32,
        }
    }
}

fn rand_seed() -> u32 {
    rand::random()
}

/// Turns token byte pieces into text without splitting a UTF-8 character:
/// one emoji can span several tokens.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // incomplete tail: wait
            Err(_) => {
                // invalid bytes: replace them rather than stall forever
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return Some(s);
            }
        };
        if valid == 0 {
            return None;
        }
        let rest = self.pending.split_off(valid);
        let text = String::from_utf8(std::mem::replace(&mut self.pending, rest)).ok()?;
        Some(text)
    }

    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            let s = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            Some(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn utf8_stream_waits_for_whole_characters() {
        let mut s = Utf8Stream::default();
        let emoji = "👍".as_bytes();
        assert_eq!(s.push(&emoji[..2]), None);
        assert_eq!(s.push(&emoji[2..]), Some("👍".to_string()));
        assert_eq!(s.push(b"ok"), Some("ok".to_string()));
        assert_eq!(s.push(&"é".as_bytes()[..1]), None);
        assert_eq!(s.finish(), Some("\u{FFFD}".to_string()));
    }
}
