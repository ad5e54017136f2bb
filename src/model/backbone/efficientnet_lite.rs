//! EfficientNet-Lite0..4 (Google's mobile variant: no squeeze-excitation, ReLU6, fixed stem and
//! head), with timm's tensor names so `timm/tf_efficientnet_lite*.in1k` weights load as they are.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{global_avg_pool, global_avg_pool_grad, Activation, ConvBn, ConvSpec, Padding};

const BN_EPS: f64 = 1e-3;
const STEM_CHANNELS: usize = 32;
pub const HEAD_CHANNELS: usize = 1280;

/// One stage of the EfficientNet-B0 layout: (repeats, kernel, stride, expansion, out channels).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// Published scaling of each variant: (width multiplier, depth multiplier, input size, crop_pct).
pub fn variant(level: u8) -> (f64, f64, u32, f32) {
    match level {
        0 => (1.0, 1.0, 224, 0.875),
        1 => (1.0, 1.1, 240, 0.882),
        2 => (1.1, 1.2, 260, 0.890),
        3 => (1.2, 1.4, 300, 0.904),
        _ => (1.4, 1.8, 380, 0.920),
    }
}

/// Channel rounding of the EfficientNet family: nearest multiple of 8, never more than 10 %
/// below the scaled value.
fn round_channels(channels: usize, multiplier: f64) -> usize {
    let v = channels as f64 * multiplier;
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// Inverted residual (or, in stage 0, depthwise-separable) block.
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = expand.forward_act(&h, Activation::Relu6)?;
        }
        h = self.depthwise.forward_act(&h, Activation::Relu6)?;
        h = self.project.forward(&h)?;
        if self.residual {
            h = (h + x)?;
        }
        Ok(h)
    }
}

/// What a block's manual backward needs from its forward.
struct BlockTape {
    input: Tensor,
    expanded: Option<Tensor>,
    depthwise_out: Tensor,
    out: Tensor,
}

impl Block {
    fn forward_taped(&self, x: &Tensor) -> Result<BlockTape> {
        let expanded = match &self.expand {
            Some(expand) => Some(expand.forward_act(x, Activation::Relu6)?),
            None => None,
        };
        let depthwise_out = self
            .depthwise
            .forward_act(expanded.as_ref().unwrap_or(x), Activation::Relu6)?;
        let mut out = self.project.forward(&depthwise_out)?;
        if self.residual {
            out = (out + x)?;
        }
        Ok(BlockTape {
            input: x.clone(),
            expanded,
            depthwise_out,
            out,
        })
    }

    fn backward(&self, tape: &BlockTape, grad: &Tensor) -> Result<Tensor> {
        let g = self
            .project
            .input_grad(&tape.depthwise_out, grad, grad, Activation::Identity)?;
        let depthwise_in = tape.expanded.as_ref().unwrap_or(&tape.input);
        let mut g =
            self.depthwise
                .input_grad(depthwise_in, &tape.depthwise_out, &g, Activation::Relu6)?;
        if let (Some(expand), Some(expanded)) = (&self.expand, &tape.expanded) {
            g = expand.input_grad(&tape.input, expanded, &g, Activation::Relu6)?;
        }
        if self.residual {
            g = (g + grad)?;
        }
        Ok(g)
    }
}

/// What `EfficientNetLite::input_grad` needs from `EfficientNetLite::embed_taped`.
pub struct Tape {
    input: Tensor,
    stem_out: Tensor,
    blocks: Vec<BlockTape>,
    head_out: Tensor,
}

pub struct EfficientNetLite {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
}

impl EfficientNetLite {
    pub fn load(level: u8, vb: VarBuilder) -> Result<Self> {
        let (width, depth, _, _) = variant(level);
        let conv = |in_ch, out_ch, kernel, stride, groups| ConvSpec {
            in_ch,
            out_ch,
            kernel,
            stride,
            groups,
            padding: Padding::TfSame,
            bn_eps: BN_EPS,
        };
        let stem = ConvBn::load(
            &conv(3, STEM_CHANNELS, 3, 2, 1),
            vb.pp("conv_stem"),
            vb.pp("bn1"),
        )?;

        let mut blocks = Vec::new();
        let mut in_ch = STEM_CHANNELS;
        for (s, &(repeats, kernel, stride, expansion, out)) in STAGES.iter().enumerate() {
            // Lite keeps the first and last stages at one block whatever the depth multiplier.
            let repeats = if s == 0 || s == STAGES.len() - 1 {
                repeats
            } else {
                (repeats as f64 * depth).ceil() as usize
            };
            let out_ch = round_channels(out, width);
            for j in 0..repeats {
                let vb = vb.pp(format!("blocks.{s}.{j}"));
                let stride = if j == 0 { stride } else { 1 };
                let mid = in_ch * expansion;
                let block = if expansion == 1 {
                    Block {
                        expand: None,
                        depthwise: ConvBn::load(
                            &conv(in_ch, in_ch, kernel, stride, in_ch),
                            vb.pp("conv_dw"),
                            vb.pp("bn1"),
                        )?,
                        project: ConvBn::load(
                            &conv(in_ch, out_ch, 1, 1, 1),
                            vb.pp("conv_pw"),
                            vb.pp("bn2"),
                        )?,
                        residual: stride == 1 && in_ch == out_ch,
                    }
                } else {
                    Block {
                        expand: Some(ConvBn::load(
                            &conv(in_ch, mid, 1, 1, 1),
                            vb.pp("conv_pw"),
                            vb.pp("bn1"),
                        )?),
                        depthwise: ConvBn::load(
                            &conv(mid, mid, kernel, stride, mid),
                            vb.pp("conv_dw"),
                            vb.pp("bn2"),
                        )?,
                        project: ConvBn::load(
                            &conv(mid, out_ch, 1, 1, 1),
                            vb.pp("conv_pwl"),
                            vb.pp("bn3"),
                        )?,
                        residual: stride == 1 && in_ch == out_ch,
                    }
                };
                blocks.push(block);
                in_ch = out_ch;
            }
        }
        let head = ConvBn::load(
            &conv(in_ch, HEAD_CHANNELS, 1, 1, 1),
            vb.pp("conv_head"),
            vb.pp("bn2"),
        )?;
        Ok(Self { stem, blocks, head })
    }

    /// The penultimate embedding: `(N, 1280)`.
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.stem.forward_act(x, Activation::Relu6)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        global_avg_pool(&self.head.forward_act(&h, Activation::Relu6)?)
    }

    /// `embed` on the fast CPU kernels, keeping what `input_grad` needs.
    pub fn embed_taped(&self, x: &Tensor) -> Result<(Tensor, Tape)> {
        let stem_out = self.stem.forward_act(x, Activation::Relu6)?;
        let mut blocks: Vec<BlockTape> = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let input = blocks.last().map_or(&stem_out, |b| &b.out);
            blocks.push(block.forward_taped(input)?);
        }
        let last = blocks.last().map_or(&stem_out, |b| &b.out);
        let head_out = self.head.forward_act(last, Activation::Relu6)?;
        let embedding = global_avg_pool(&head_out)?;
        let tape = Tape {
            input: x.clone(),
            stem_out,
            blocks,
            head_out,
        };
        Ok((embedding, tape))
    }

    /// ∂loss/∂x from ∂loss/∂embedding, by hand: each layer's own input-gradient kernel, with
    /// no autograd graph and no weight gradients.
    pub fn input_grad(&self, tape: &Tape, grad_embedding: &Tensor) -> Result<Tensor> {
        let grad = global_avg_pool_grad(tape.head_out.shape(), grad_embedding)?;
        let last = tape.blocks.last().map_or(&tape.stem_out, |b| &b.out);
        let mut grad = self
            .head
            .input_grad(last, &tape.head_out, &grad, Activation::Relu6)?;
        for (block, t) in self.blocks.iter().zip(&tape.blocks).rev() {
            grad = block.backward(t, &grad)?;
        }
        self.stem
            .input_grad(&tape.input, &tape.stem_out, &grad, Activation::Relu6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rounding_follows_the_efficientnet_rule() {
        assert_eq!(round_channels(16, 1.0), 16);
        assert_eq!(round_channels(24, 1.1), 24); // 26.4 -> 24 (>= 0.9 * 26.4)
        assert_eq!(round_channels(40, 1.2), 48);
        assert_eq!(round_channels(112, 1.4), 160); // 156.8 -> 160
        assert_eq!(round_channels(320, 1.4), 448);
    }
}
