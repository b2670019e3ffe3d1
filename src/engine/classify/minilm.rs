//! all-MiniLM-L6-v2 in process: the `tokenizers` crate with the shipped
//! `tokenizer.json`, our own BERT forward pass (`encoder`), mean pooling
//! and L2 normalisation (sentence-transformers' recipe).
//!
//! The full model costs about a millisecond for a short query, so the classifier
//! also uses a *static* table distilled from it once: each vocabulary token
//! embedded alone. Averaging those vectors costs microseconds and keeps
//! much of the model's sense of meaning; the full model is asked only when
//! the fast path is unsure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::encoder::{Encoder, Kernel, Precision};

pub const DIM: usize = 384;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model files missing in {0}: run scripts/fetch-models")]
    Missing(PathBuf),
    #[error("could not load the embedding model: {0}")]
    Load(String),
    #[error("embedding failed: {0}")]
    Run(String),
}

fn run_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Run(e.to_string())
}

pub struct MiniLm {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

impl MiniLm {
    /// int8 where the CPU supports it (see `encoder`).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, Precision::Int8)
    }

    pub fn load_with(dir: &Path, precision: Precision) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.exists() { Ok(p) } else { Err(EmbedError::Missing(dir.to_path_buf())) }
        };
        let mut tokenizer =
            Tokenizer::from_file(file("tokenizer.json")?).map_err(|e| EmbedError::Load(e.to_string()))?;
        // The shipped tokenizer pads everything to 128: wasted work here.
        tokenizer.with_padding(None);
        // No truncation here: it would cut a long paste's tail, which
        // `token_ids` and `truncate_keep_tail` keep on purpose.
        tokenizer.with_truncation(None).map_err(|e| EmbedError::Load(e.to_string()))?;
        let encoder =
            Encoder::load(&file("model.safetensors")?, precision).map_err(|e| EmbedError::Load(e.to_string()))?;
        Ok(MiniLm { encoder, tokenizer })
    }

    /// Names the weights' arithmetic, so a head trained on one kind of
    /// embedding is not read with another.
    pub fn encoder_kind(&self) -> &'static str {
        match self.encoder.kernel() {
            // the same sums: AMX and VNNI embeddings are interchangeable
            Some(Kernel::Vnni | Kernel::Amx) => "minilm-int8",
            Some(Kernel::Avx2) => "minilm-int8-avx2",
            None => "minilm-f32",
        }
    }

    /// Lets a long pass use a second thread while no other pass runs (the
    /// default), or keeps each pass on its caller's thread.
    pub fn set_split(&self, on: bool) {
        self.encoder.set_split(on);
    }

    /// Token ids with `[CLS]` … `[SEP]`. Of a long paste only the first
    /// 3 KB and the last 1 KB are read: the model sees 64 tokens at most,
    /// and tokenizing a 12 KB log costs more than classifying it.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        const HEAD: usize = 3072;
        const TAIL: usize = 1024;
        if text.len() <= HEAD + TAIL {
            return Ok(self.tokenizer.encode(text, true).map_err(run_err)?.get_ids().to_vec());
        }
        let head_end = (0..=HEAD).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let tail_start = (text.len() - TAIL..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        let short = format!("{}\n{}", &text[..head_end], &text[tail_start..]);
        Ok(self.tokenizer.encode(short, true).map_err(run_err)?.get_ids().to_vec())
    }

    /// The sentence embedding of at most `max_tokens` tokens: the head of
    /// the text and its last few tokens (errors often sit at the end).
    pub fn embed(&self, text: &str, max_tokens: usize) -> Result<Vec<f32>, EmbedError> {
        self.embed_ids(self.token_ids(text)?, max_tokens)
    }

    /// Like `embed`, for ids already tokenized.
    pub fn embed_ids(&self, ids: Vec<u32>, max_tokens: usize) -> Result<Vec<f32>, EmbedError> {
        let ids = truncate_keep_tail(ids, max_tokens.max(8));
        let mut out = self.embed_batch(&[ids])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Embeds several sequences in one forward pass (no padding: each is
    /// its own length).
    fn embed_batch(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if batch.iter().any(Vec::is_empty) {
            return Err(EmbedError::Run("empty token sequence".into()));
        }
        let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        Ok(self.encoder.pooled(&refs).into_iter().map(|v| normalize(v.to_vec())).collect())
    }

    /// The static table: every vocabulary token embedded alone as
    /// `[CLS] token [SEP]`. Some seconds on two cores; done once.
    pub fn distill_static(&self) -> Result<StaticTable, EmbedError> {
        let vocab = self.tokenizer.get_vocab_size(true);
        let cls = self.tokenizer.token_to_id("[CLS]").unwrap_or(101);
        let sep = self.tokenizer.token_to_id("[SEP]").unwrap_or(102);
        let ids: Vec<u32> = (0..vocab as u32).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parts: Vec<Result<Vec<f32>, EmbedError>> = std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(vocab.div_ceil(threads).max(1))
                .map(|part| {
                    s.spawn(move || {
                        let mut out = Vec::with_capacity(part.len() * DIM);
                        for chunk in part.chunks(256) {
                            let batch: Vec<Vec<u32>> = chunk.iter().map(|&id| vec![cls, id, sep]).collect();
                            self.embed_batch(&batch)?.into_iter().for_each(|row| out.extend(row));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(EmbedError::Run("distil thread panicked".into()))))
                .collect()
        });
        let mut table = Vec::with_capacity(vocab * DIM);
        for part in parts {
            table.extend(part?);
        }
        Ok(StaticTable { vectors: table })
    }
}

/// Keeps the first `max - 16` and the last 16 tokens of a long input
/// (`[CLS]` first and `[SEP]` last stay in place).
pub fn truncate_keep_tail(ids: Vec<u32>, max: usize) -> Vec<u32> {
    if ids.len() <= max {
        return ids;
    }
    let tail = 16.min(max / 4);
    let mut out = ids[..max - tail].to_vec();
    out.extend_from_slice(&ids[ids.len() - tail..]);
    out
}

pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// One 384-dimensional vector per vocabulary token.
pub struct StaticTable {
    vectors: Vec<f32>,
}

// 02: distilled by `encoder` (01 was candle's f32 BERT)
const MAGIC: &[u8; 8] = b"TRSTAT02";

impl StaticTable {
    /// Mean of the tokens' vectors, `[CLS]`/`[SEP]` included (as distilled),
    /// L2-normalised.
    pub fn embed(&self, ids: &[u32]) -> Vec<f32> {
        self.embed_weighted(ids, &[])
    }

    /// The mean weighted per token id (`weights[id]`, 1 where missing):
    /// with inverse document frequencies, words that carry meaning count
    /// more than "the" and "my".
    pub fn embed_weighted(&self, ids: &[u32], weights: &[f32]) -> Vec<f32> {
        let mut sum = vec![0f32; DIM];
        let mut n = 0f32;
        for &id in ids {
            let start = id as usize * DIM;
            if let Some(row) = self.vectors.get(start..start + DIM) {
                let w = weights.get(id as usize).copied().unwrap_or(1.0);
                sum.iter_mut().zip(row).for_each(|(s, x)| *s += w * x);
                n += w;
            }
        }
        if n > 0.0 {
            sum.iter_mut().for_each(|s| *s /= n);
        }
        normalize(sum)
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("part");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        for x in &self.vectors {
            f.write_all(&x.to_le_bytes())?;
        }
        f.flush()?;
        drop(f);
        std::fs::rename(tmp, path)
    }

    pub fn load(path: &Path) -> std::io::Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        if bytes.len() < 8 || &bytes[..8] != MAGIC || (bytes.len() - 8) % (4 * DIM) != 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a static embedding table"));
        }
        let vectors = bytes[8..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(StaticTable { vectors })
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_keep_head_and_tail() {
        let ids: Vec<u32> = (0..100).collect();
        let t = truncate_keep_tail(ids, 64);
        assert_eq!(t.len(), 64);
        assert_eq!(t[0], 0);
        assert_eq!(*t.last().unwrap(), 99);
        assert_eq!(t[47], 47);
        assert_eq!(t[48], 84);
        assert_eq!(truncate_keep_tail(vec![1, 2, 3], 64), vec![1, 2, 3]);
    }

    /// The shipped model, or `None` (with a hint) before `scripts/fetch-models`.
    fn model_dir() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        if dir.join("model.safetensors").exists() {
            return Some(dir);
        }
        eprintln!("models missing: run scripts/fetch-models");
        None
    }

    #[test]
    fn long_pastes_are_tokenized_by_head_and_tail() {
        let Some(dir) = model_dir() else { return };
        let m = MiniLm::load(&dir).unwrap();
        let log = format!("héllo first line {} the very last words", "ERROR pool timeout é\n".repeat(800));
        let ids = m.token_ids(&log).unwrap();
        assert!(ids.len() < 2_000, "{} ids", ids.len());
        let first = m.token_ids("héllo first line").unwrap();
        assert_eq!(ids[..first.len() - 1], first[..first.len() - 1], "the head is kept");
        let last = m.token_ids("the very last words").unwrap();
        assert_eq!(ids[ids.len() - (last.len() - 1)..], last[1..], "the tail is kept");
    }

    /// Token ids and embeddings from an independent float64 numpy BERT
    /// (`scripts/minilm-reference.py`) over the same shipped files.
    #[test]
    fn embeddings_match_the_numpy_reference() {
        let Some(dir) = model_dir() else { return };
        let reference = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/classifier/minilm-reference.jsonl"),
        )
        .unwrap();
        let f32_model = MiniLm::load_with(&dir, Precision::F32).unwrap();
        let int8_model = MiniLm::load_with(&dir, Precision::Int8).unwrap();
        for line in reference.lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = r["text"].as_str().unwrap();
            let want: Vec<f32> =
                r["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let ids = f32_model.token_ids(text).unwrap();
            let want_ids: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(ids, want_ids, "{text}");
            let exact = cosine(&f32_model.embed(text, 512).unwrap(), &want);
            assert!(exact > 0.99999, "f32 {text}: cosine {exact}");
            let quantised = cosine(&int8_model.embed(text, 512).unwrap(), &want);
            eprintln!("{}: f32 {exact:.6}, {} {quantised:.6}", ids.len(), int8_model.encoder_kind());
            assert!(quantised > 0.99, "int8 {text}: cosine {quantised}");
        }
    }
}
