//! DeBERTa-v2 (and v3, which shares the code) for sequence classification,
//! as HF transformers computes it: BERT-like post-norm layers whose
//! attention adds disentangled relative-position terms (content->position
//! `c2p` and position->content `p2c`, over log-bucketed relative
//! distances), an optional convolution after the first layer, and a
//! context pooler (`act(dense(x[first]))`) before the classifier.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::encoder::{
    ClassificationHead, Embeddings, EncoderDims, EncoderSizes, LayerNames, PostNormLayer, Table,
};
use super::{CrossEncoderModel, LoadSpec, ModelShape, PackedBatch};
use crate::config::defaults;
use crate::error::{Error, Result};
use crate::ops::attention::{scaled_dot_products, softmax_in_place, weighted_rows, SharedOut};
use crate::ops::kernels::bias_activation;
use crate::ops::profile::{time, Op};
use crate::ops::{matrix, to_vec, with_f32, Activation, AttentionSpec, LayerNorm, Linear};

/// The keys of DeBERTa-v2's `config.json`, with `DebertaV2Config`'s
/// defaults for what a config leaves out.
#[derive(Deserialize)]
struct Keys {
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "defaults::gelu")]
    hidden_act: String,
    #[serde(default = "defaults::positions_512")]
    max_position_embeddings: usize,
    /// Below 1: `max_position_embeddings`.
    #[serde(default = "defaults::minus_one")]
    max_relative_positions: i64,
    /// 0 or less: no bucketing.
    #[serde(default = "defaults::minus_one")]
    position_buckets: i64,
    /// A list, or the older `"p2c|c2p"` string.
    #[serde(default)]
    pos_att_type: Value,
    #[serde(default)]
    share_att_key: bool,
    #[serde(default)]
    relative_attention: bool,
    #[serde(default = "defaults::yes")]
    position_biased_input: bool,
    #[serde(default)]
    type_vocab_size: usize,
    #[serde(default)]
    norm_rel_ebd: Option<String>,
    #[serde(default = "defaults::gelu")]
    pooler_hidden_act: String,
    #[serde(default)]
    conv_kernel_size: usize,
    #[serde(default = "defaults::one")]
    conv_groups: usize,
    #[serde(default = "defaults::tanh")]
    conv_act: String,
    // Sizes this implementation requires to equal the hidden size (or the
    // head size); `None` means they do.
    embedding_size: Option<usize>,
    attention_head_size: Option<usize>,
    pooler_hidden_size: Option<usize>,
}

fn default_eps() -> f64 {
    1e-7
}

impl Keys {
    fn dims(&self, sizes: &EncoderSizes) -> Result<EncoderDims> {
        let act = Activation::from_name(&self.hidden_act)?;
        Ok(sizes.dims(self.layer_norm_eps, act))
    }
}

/// DeBERTa's relative positions: `i - j`, log-bucketed beyond
/// `position_buckets / 2` when buckets are on, then shifted by `span` into
/// the `2 * span` rows of the relative embedding table.
#[derive(Clone, Debug)]
struct RelativePositions {
    /// `position_buckets`; 0 or less: no bucketing.
    buckets: i64,
    /// `max_relative_positions`, or `max_position_embeddings` when below 1.
    max_relative: i64,
    /// HF's `att_span`.
    span: usize,
}

impl RelativePositions {
    fn from_config(c: &Keys) -> Self {
        let max_relative = match c.max_relative_positions {
            m if m >= 1 => m,
            _ => c.max_position_embeddings as i64,
        };
        let buckets = c.position_buckets;
        let span = if buckets > 0 { buckets } else { max_relative } as usize;
        Self {
            buckets,
            max_relative,
            span,
        }
    }

    /// `make_log_bucket_position` for one relative position, in float32
    /// as PyTorch computes it (the `ceil` makes the rounding matter).
    fn bucket(&self, rel: i64) -> i64 {
        let mid = self.buckets / 2;
        if self.buckets <= 0 || rel.abs() <= mid {
            return rel;
        }
        let ratio = rel.abs() as f32 / mid as f32;
        let max_ratio = ((self.max_relative - 1) as f64 / mid as f64) as f32;
        let log_pos = (ratio.ln() / max_ratio.ln() * (mid - 1) as f32).ceil() + mid as f32;
        log_pos as i64 * rel.signum()
    }

    /// The relative-embedding rows every `(i, j)` of sequences up to
    /// `max_len` tokens reads, indexed by `i - j + max_len - 1`.
    fn for_batch(&self, max_len: usize) -> RelativeIndex {
        let last = 2 * self.span as i64 - 1;
        let row = |bucket: i64| (bucket + self.span as i64).clamp(0, last) as usize;
        let deltas = || 1 - max_len as i64..max_len as i64;
        RelativeIndex {
            // c2p: query i reads the key-position row of bucket(i - j).
            c2p: deltas().map(|d| row(self.bucket(d))).collect(),
            // p2c: key j reads the query-position row of -bucket(j - i).
            p2c: deltas().map(|d| row(-self.bucket(-d))).collect(),
            max_len,
        }
    }
}

/// Relative-embedding rows per `i - j`, for one batch.
struct RelativeIndex {
    c2p: Vec<usize>,
    p2c: Vec<usize>,
    max_len: usize,
}

impl RelativeIndex {
    /// The entries that `i - j` of a `len`-token sequence reach.
    fn window<'a>(&self, table: &'a [usize], len: usize) -> &'a [usize] {
        &table[self.max_len - len..self.max_len + len - 1]
    }
}

/// The relative embeddings projected for one layer's heads, `[2 * span,
/// hidden]` each: constant, so computed once at load time.
struct PositionProjections {
    /// Keys for `c2p` (`key_proj` when `share_att_key`, else `pos_key_proj`).
    key: Option<Vec<f32>>,
    /// Queries for `p2c` (`query_proj` or `pos_query_proj`).
    query: Option<Vec<f32>>,
}

/// One layer: BERT's post-norm structure with DeBERTa's weight names and,
/// with relative attention on, the disentangled attention.
struct Layer {
    base: PostNormLayer,
    positions: Option<PositionProjections>,
}

/// What the layers share from the config.
struct Settings {
    dims: EncoderDims,
    c2p: bool,
    p2c: bool,
    share_att_key: bool,
}

impl Settings {
    fn from_config(c: &Keys, sizes: &EncoderSizes) -> Result<Self> {
        let types = pos_att_types(&c.pos_att_type)?;
        Ok(Self {
            dims: c.dims(sizes)?,
            c2p: types.iter().any(|t| t == "c2p"),
            p2c: types.iter().any(|t| t == "p2c"),
            share_att_key: c.share_att_key,
        })
    }

    /// One relative term's projection of the relative embeddings `rel`
    /// (`None` when the term is off): by the layer's own `shared` product
    /// (query or key) when `share_att_key`, else by its `pos_*_proj`.
    fn project(
        &self,
        layer: &VarBuilder,
        on: bool,
        shared: &str,
        own: &str,
        rel: &Tensor,
    ) -> Result<Option<Vec<f32>>> {
        if !on {
            return Ok(None);
        }
        let h = self.dims.hidden;
        let name = match self.share_att_key {
            true => layer.pp(shared),
            false => layer.pp("attention.self").pp(own),
        };
        Ok(Some(to_vec(&Linear::load(&name, h, h)?.forward(rel)?)?))
    }

    /// `1 / sqrt(head_dim * (1 + number of relative terms))`: DeBERTa
    /// divides every term of the score by the same, larger scale.
    fn attention(&self) -> Result<AttentionSpec> {
        let head_dim = self.dims.head_dim()?;
        let factor = 1 + self.c2p as usize + self.p2c as usize;
        let mut spec = AttentionSpec::new(self.dims.heads, head_dim);
        spec.scale = 1.0 / ((head_dim * factor) as f32).sqrt();
        Ok(spec)
    }
}

/// `pos_att_type`: a list, or the older `"p2c|c2p"` string.
fn pos_att_types(value: &Value) -> Result<Vec<String>> {
    let types = match value {
        Value::Null => vec![],
        Value::String(s) => s.split('|').map(|t| t.trim().to_lowercase()).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        other => {
            return Err(Error::invalid_model(format!(
                "pos_att_type {other} is not understood"
            )))
        }
    };
    if let Some(t) = types.iter().find(|t| !matches!(t.as_str(), "c2p" | "p2c")) {
        return Err(Error::invalid_model(format!(
            "pos_att_type {t:?} is not supported (DeBERTa-v2 knows c2p and p2c)"
        )));
    }
    Ok(types)
}

/// BERT's layer structure under DeBERTa's names.
const LAYER_NAMES: LayerNames = LayerNames {
    query: "attention.self.query_proj",
    key: "attention.self.key_proj",
    value: "attention.self.value_proj",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
};

impl Layer {
    fn load(vb: &VarBuilder, cfg: &Settings, relative: Option<&Tensor>) -> Result<Self> {
        let base = PostNormLayer::load(vb, &LAYER_NAMES, &cfg.dims, cfg.attention()?)?;
        let positions = match relative {
            None => None,
            Some(rel) => Some(PositionProjections {
                key: cfg.project(vb, cfg.c2p, LAYER_NAMES.key, "pos_key_proj", rel)?,
                query: cfg.project(vb, cfg.p2c, LAYER_NAMES.query, "pos_query_proj", rel)?,
            }),
        };
        Ok(Self { base, positions })
    }

    fn forward(
        &self,
        x: &Tensor,
        cu_seqlens: &[usize],
        index: Option<&RelativeIndex>,
    ) -> Result<Tensor> {
        let (Some(positions), Some(index)) = (&self.positions, index) else {
            return self.base.forward(x, cu_seqlens);
        };
        let b = &self.base;
        let qkv = b.qkv.forward(x)?;
        let attention = Disentangled {
            spec: &b.attention,
            pos_key: positions.key.as_deref(),
            pos_query: positions.query.as_deref(),
            index,
        };
        let context = time(Op::Attention, || attention.run(&qkv, cu_seqlens))?;
        drop(qkv);
        b.after_attention(x, &context)
    }
}

/// Disentangled self-attention over packed sequences:
/// `softmax(scale * (q k^T + c2p + p2c)) v` per sequence and head, where
/// `c2p[i, j] = q_i . pos_key[c2p row of i - j]` and
/// `p2c[i, j] = k_j . pos_query[p2c row of i - j]`. Each (sequence, head)
/// is one rayon task, as in [`crate::ops::packed_attention`].
struct Disentangled<'a> {
    spec: &'a AttentionSpec,
    pos_key: Option<&'a [f32]>,
    pos_query: Option<&'a [f32]>,
    index: &'a RelativeIndex,
}

/// Per-task scratch buffers.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    relative: Vec<f32>,
}

impl Disentangled<'_> {
    fn run(&self, qkv: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
        let tokens = qkv.dim(0)?;
        let hidden = self.spec.heads * self.spec.head_dim;
        let mut out = vec![0f32; tokens * hidden];
        let out_ptr = SharedOut(out.as_mut_ptr());
        with_f32(qkv, |qkv| {
            let tasks: Vec<(usize, usize)> = (0..cu_seqlens.len() - 1)
                .flat_map(|s| (0..self.spec.heads).map(move |h| (s, h)))
                .collect();
            tasks
                .par_iter()
                .for_each_init(Scratch::default, |scratch, &(s, h)| {
                    let (start, end) = (cu_seqlens[s], cu_seqlens[s + 1]);
                    // SAFETY: each task writes only rows start..end, columns of head h.
                    unsafe { self.attend_one(qkv, out_ptr, start, end - start, h, scratch) }
                });
        })?;
        matrix(out, tokens, hidden)
    }

    /// One (sequence, head) of the attention: the sequence is tokens
    /// `start..start + len` of the packed `qkv` rows.
    ///
    /// # Safety
    /// `qkv` holds `3 * hidden` columns for every token of the sequence,
    /// `out` points to `tokens * hidden` floats, and no other task writes
    /// this head's columns of these rows at the same time.
    unsafe fn attend_one(
        &self,
        qkv: &[f32],
        out: SharedOut,
        start: usize,
        len: usize,
        head: usize,
        scratch: &mut Scratch,
    ) {
        // SAFETY: the pointers below stay inside `qkv`, the position tables
        // (`lo..=hi` rows of `hidden` columns) and this task's part of
        // `out`, as the caller guarantees; the scratch buffers are sized
        // before each product writes them.
        unsafe {
            let d = self.spec.head_dim;
            let hidden = self.spec.heads * d;
            let row = 3 * hidden;
            let q = qkv.as_ptr().add(start * row + head * d);
            let k = q.add(hidden);
            let v = q.add(2 * hidden);
            let scores = &mut scratch.scores;
            scores.clear();
            scores.resize(len * len, 0.0);
            scaled_dot_products(
                len,
                len,
                d,
                scores.as_mut_ptr(),
                q,
                row,
                k,
                row,
                self.spec.scale,
            );
            let terms = [
                (self.pos_key, q, &self.index.c2p, false),
                (self.pos_query, k, &self.index.p2c, true),
            ];
            for (table, content, rows, by_key) in terms {
                let Some(table) = table else { continue };
                let rows = self.index.window(rows, len);
                let lo = *rows.iter().min().unwrap_or(&0);
                let width = rows.iter().max().map_or(0, |hi| hi + 1 - lo);
                // relative[t, r] = scale * content_t . table[lo + r], only over
                // the rows this sequence reaches.
                let relative = &mut scratch.relative;
                relative.clear();
                relative.resize(len * width, 0.0);
                let positions = table.as_ptr().add(lo * hidden + head * d);
                scaled_dot_products(
                    len,
                    width,
                    d,
                    relative.as_mut_ptr(),
                    content,
                    row,
                    positions,
                    hidden,
                    self.spec.scale,
                );
                for (i, score_row) in scores.chunks_mut(len).enumerate() {
                    for (j, s) in score_row.iter_mut().enumerate() {
                        let r = rows[i + len - 1 - j] - lo;
                        let t = if by_key { j } else { i };
                        *s += relative[t * width + r];
                    }
                }
            }
            for r in scores.chunks_mut(len) {
                softmax_in_place(r);
            }
            // out = P V, written into this head's columns.
            weighted_rows(
                len,
                d,
                len,
                scores.as_ptr(),
                v,
                row,
                out.0.add(start * hidden + head * d),
                hidden,
            );
        }
    }
}

/// The `ConvLayer` of checkpoints with `conv_kernel_size > 0` (DeBERTa-v2
/// xlarge): after the first layer, `norm(layer_out + act(conv1d(embeddings)))`,
/// the convolution zero-padded at each sequence's ends.
struct ConvLayer {
    /// One `[hidden, hidden]` product per kernel tap.
    taps: Vec<Linear>,
    bias: Vec<f32>,
    act: Activation,
    norm: LayerNorm,
}

impl ConvLayer {
    fn load(vb: &VarBuilder, c: &Keys, dims: &EncoderDims) -> Result<Option<Self>> {
        let (size, groups) = (c.conv_kernel_size, c.conv_groups);
        if size == 0 {
            return Ok(None);
        }
        if groups != 1 || size.is_multiple_of(2) {
            return Err(Error::invalid_model(format!(
                "DeBERTa convolution with conv_groups {groups} / conv_kernel_size {size} is not \
                 supported (one group, odd size are)"
            )));
        }
        let h = dims.hidden;
        let weight = vb.get((h, h, size), "conv.weight")?;
        let taps = (0..size)
            .map(|j| Linear::from_weight(&weight.narrow(2, j, 1)?.squeeze(2)?, None))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self {
            taps,
            bias: to_vec(&vb.get(h, "conv.bias")?)?,
            act: Activation::from_name(&c.conv_act)?,
            norm: LayerNorm::load(&vb.pp("LayerNorm"), h, dims.eps)?,
        }))
    }

    fn forward(
        &self,
        embeddings: &Tensor,
        residual: &Tensor,
        batch: &PackedBatch,
    ) -> Result<Tensor> {
        let (tokens, h) = embeddings.dims2()?;
        let pad = (self.taps.len() - 1) / 2;
        let products = self
            .taps
            .iter()
            .map(|tap| with_f32(&tap.matmul(embeddings)?, |d| d.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        let bounds: Vec<(usize, usize)> = batch
            .cu_seqlens
            .windows(2)
            .flat_map(|w| std::iter::repeat_n((w[0], w[1]), w[1] - w[0]))
            .collect();
        let mut out = vec![0f32; tokens * h];
        out.par_chunks_mut(h).enumerate().for_each(|(t, row)| {
            let (start, end) = bounds[t];
            // Tap j reads token t + j - pad, when inside the sequence.
            for (j, product) in products.iter().enumerate() {
                let src = t + j;
                if src >= start + pad && src < end + pad {
                    let src = &product[(src - pad) * h..(src - pad + 1) * h];
                    row.iter_mut().zip(src).for_each(|(o, s)| *o += s);
                }
            }
        });
        let out = matrix(out, tokens, h)?;
        bias_activation(&out, Some(&self.bias), self.act)?;
        self.norm.add_residual_inplace(&out, None, residual)?;
        Ok(out)
    }
}

pub struct DebertaV2 {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    conv: Option<ConvLayer>,
    relative: Option<RelativePositions>,
    head: ClassificationHead,
    dims: EncoderDims,
    max_positions: usize,
}

impl DebertaV2 {
    pub fn load(mut spec: LoadSpec<'_>) -> Result<Self> {
        let c: &Keys = &spec.config.typed()?;
        let cfg = Settings::from_config(c, &spec.config.typed()?)?;
        let (h, eps) = (cfg.dims.hidden, cfg.dims.eps);
        check_sizes(c, &cfg.dims)?;
        let vb = spec.weights.pp("deberta");
        let embeddings = load_embeddings(&vb.pp("embeddings"), c, &cfg.dims)?;
        let encoder = vb.pp("encoder");
        let relative = c
            .relative_attention
            .then(|| RelativePositions::from_config(c));
        let rel_embeddings = match &relative {
            Some(r) => Some(relative_embeddings(&encoder, c, r, h, eps)?),
            None => None,
        };
        let layers = (0..cfg.dims.layers)
            .map(|i| {
                let layer = Layer::load(
                    &encoder.pp(format!("layer.{i}")),
                    &cfg,
                    rel_embeddings.as_ref(),
                )?;
                Ok(Layer {
                    base: layer.base.with_precision(spec.precision)?,
                    ..layer
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let conv = ConvLayer::load(&encoder.pp("conv"), c, &cfg.dims)?;
        let pooler_act = Activation::from_name(&c.pooler_hidden_act)?;
        let head = ClassificationHead::load(
            &spec.weights.pp("pooler").pp("dense"),
            &spec.weights.pp("classifier"),
            h,
            pooler_act,
            &mut spec,
        )?;
        Ok(Self {
            embeddings,
            layers,
            conv,
            relative,
            head,
            max_positions: c.max_position_embeddings,
            dims: cfg.dims,
        })
    }
}

/// Sizes HF allows in a config but that this implementation does not
/// (embedding projection, odd head sizes), or that cannot run at all.
fn check_sizes(c: &Keys, dims: &EncoderDims) -> Result<()> {
    let h = dims.hidden;
    let checks = [
        ("embedding_size", c.embedding_size.unwrap_or(h), h),
        (
            "attention_head_size",
            c.attention_head_size.unwrap_or(h / dims.heads.max(1)),
            dims.head_dim()?,
        ),
        ("pooler_hidden_size", c.pooler_hidden_size.unwrap_or(h), h),
    ];
    for (key, value, want) in checks {
        if value != want {
            return Err(Error::invalid_model(format!(
                "DeBERTa-v2 with {key} {value} (not {want}) is not supported"
            )));
        }
    }
    Ok(())
}

/// Word (+ absolute position when `position_biased_input`, + token type
/// when `type_vocab_size > 0`) embeddings, then LayerNorm.
fn load_embeddings(vb: &VarBuilder, c: &Keys, dims: &EncoderDims) -> Result<Embeddings> {
    let h = dims.hidden;
    let position = match c.position_biased_input {
        true => Some(Table::load(vb, "position_embeddings.weight", h)?),
        false => None,
    };
    let token_type = match c.type_vocab_size {
        0 => None,
        _ => Some(Table::load(vb, "token_type_embeddings.weight", h)?),
    };
    Ok(Embeddings {
        word: Table::load(vb, "word_embeddings.weight", h)?,
        position,
        token_type,
        norm: LayerNorm::load(&vb.pp("LayerNorm"), h, dims.eps)?,
        position_offset: 0,
    })
}

/// `encoder.rel_embeddings`, normalised when `norm_rel_ebd` says
/// `layer_norm`: `[2 * span, hidden]`.
fn relative_embeddings(
    encoder: &VarBuilder,
    c: &Keys,
    rel: &RelativePositions,
    h: usize,
    eps: f64,
) -> Result<Tensor> {
    let table = Table::load(encoder, "rel_embeddings.weight", h)?;
    if table.rows != 2 * rel.span {
        return Err(Error::invalid_model(format!(
            "rel_embeddings has {} rows, the config implies {}",
            table.rows,
            2 * rel.span
        )));
    }
    let rel_embeddings = matrix(table.data, table.rows, h)?;
    let norm = c.norm_rel_ebd.as_deref().unwrap_or("none").to_lowercase();
    if norm.split('|').any(|n| n.trim() == "layer_norm") {
        LayerNorm::load(&encoder.pp("LayerNorm"), h, eps)?.forward_inplace(&rel_embeddings)?;
    }
    Ok(rel_embeddings)
}

impl CrossEncoderModel for DebertaV2 {
    fn forward(&self, batch: &PackedBatch) -> Result<Vec<f32>> {
        let embedded = self.embeddings.forward(batch)?;
        let max_len = batch.longest();
        let index = self.relative.as_ref().map(|r| r.for_batch(max_len));
        let mut x = embedded.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, &batch.cu_seqlens, index.as_ref())?;
            if let (0, Some(conv)) = (i, &self.conv) {
                x = conv.forward(&embedded, &x, batch)?;
            }
        }
        time(Op::Head, || self.head.forward(&x, batch))
    }

    fn dense_layers(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .flat_map(|l| l.base.dense_layers())
            .collect()
    }

    fn shape(&self) -> ModelShape {
        self.dims
            .shape(&self.embeddings, self.max_positions, self.head.num_labels())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(buckets: i64, max_relative: i64) -> RelativePositions {
        RelativePositions {
            buckets,
            max_relative,
            span: buckets as usize,
        }
    }

    /// Values of transformers' `make_log_bucket_position` (PyTorch, f32).
    #[test]
    fn log_buckets_match_transformers() {
        let r = positions(256, 512);
        for (rel, want) in [
            (0, 0),
            (127, 127),
            (129, 129),
            (200, 169),
            (-200, -169),
            (1000, 317),
        ] {
            assert_eq!(r.bucket(rel), want, "bucket({rel})");
        }
        let r = positions(32, 128);
        for (rel, want) in [
            (16, 16),
            (17, 17),
            (40, 23),
            (127, 31),
            (3000, 54),
            (-3000, -54),
        ] {
            assert_eq!(r.bucket(rel), want, "bucket({rel})");
        }
    }

    #[test]
    fn index_windows_are_centred_on_zero_distance() {
        let r = positions(4, 16);
        let index = r.for_batch(5);
        assert_eq!(index.c2p.len(), 9);
        // i - j = 0 sits at max_len - 1 and reads row `span`.
        assert_eq!(index.c2p[4], 4);
        assert_eq!(index.p2c[4], 4);
        let window = index.window(&index.c2p, 2);
        assert_eq!(window, &index.c2p[3..6]);
    }
}
