//! all-MiniLM-L6-v2 in process: the `tokenizers` crate with the shipped
//! `tokenizer.json`, candle's BERT on the CPU, mean pooling over the
//! attention mask and L2 normalisation (sentence-transformers' recipe).
//!
//! The full model costs 3–15 ms a query on two cores, so the classifier
//! also uses a *static* table distilled from it once: each vocabulary token
//! embedded alone. Averaging those vectors costs microseconds and keeps
//! much of the model's sense of meaning; the full model is asked only when
//! the fast path is unsure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::Tokenizer;

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
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl MiniLm {
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.exists() { Ok(p) } else { Err(EmbedError::Missing(dir.to_path_buf())) }
        };
        let config: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(file("config.json")?).map_err(|e| EmbedError::Load(e.to_string()))?,
        )
        .map_err(|e| EmbedError::Load(e.to_string()))?;
        let mut tokenizer =
            Tokenizer::from_file(file("tokenizer.json")?).map_err(|e| EmbedError::Load(e.to_string()))?;
        // The shipped tokenizer pads everything to 128: wasted work here.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: 512, ..Default::default() }))
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        let device = Device::Cpu;
        let weights = std::fs::read(file("model.safetensors")?).map_err(|e| EmbedError::Load(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| EmbedError::Load(e.to_string()))?;
        Ok(MiniLm { model, tokenizer, device })
    }

    /// Token ids with `[CLS]` … `[SEP]`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        Ok(self.tokenizer.encode(text, true).map_err(run_err)?.get_ids().to_vec())
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

    /// Embeds sequences of equal length in one forward pass.
    fn embed_batch(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let len = batch.first().map_or(0, Vec::len);
        let flat: Vec<u32> = batch.iter().flat_map(|ids| ids.iter().copied()).collect();
        let ids = Tensor::from_vec(flat, (batch.len(), len), &self.device).map_err(run_err)?;
        let types = ids.zeros_like().map_err(run_err)?;
        let hidden = self.model.forward(&ids, &types, None).map_err(run_err)?; // (b, t, 384)
        // every position is real (no padding), so the mask mean is a plain mean
        let pooled = hidden.mean(1).map_err(run_err)?;
        let rows: Vec<Vec<f32>> = pooled.to_vec2().map_err(run_err)?;
        Ok(rows.into_iter().map(normalize).collect())
    }

    /// The static table: every vocabulary token embedded alone as
    /// `[CLS] token [SEP]`. About a minute on two cores; done once.
    pub fn distill_static(&self) -> Result<StaticTable, EmbedError> {
        let vocab = self.tokenizer.get_vocab_size(true);
        let cls = self.tokenizer.token_to_id("[CLS]").unwrap_or(101);
        let sep = self.tokenizer.token_to_id("[SEP]").unwrap_or(102);
        let mut table = Vec::with_capacity(vocab * DIM);
        for chunk in (0..vocab as u32).collect::<Vec<_>>().chunks(512) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&id| vec![cls, id, sep]).collect();
            for row in self.embed_batch(&batch)? {
                table.extend(row);
            }
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

const MAGIC: &[u8; 8] = b"TRSTAT01";

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
}
