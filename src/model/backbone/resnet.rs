//! ResNet-18/34/50 with torchvision/timm tensor names (`conv1`, `bn1`, `layerN.M.*`, `fc`).
//!
//! Written here rather than taken from candle-transformers because input gradients need a
//! max-pool that backprops (see `layers::max_pool_3x3_s2`); a test checks that the logits equal
//! candle-transformers' implementation on the same weights.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::{add_relu, mask_grad};
use super::kernel::fast_kernels;
use super::layers::{
    global_avg_pool, global_avg_pool_grad, max_pool_3x3_s2, max_pool_3x3_s2_grad, Activation,
    ConvBn, ConvSpec, Padding,
};

const BN_EPS: f64 = 1e-5;

/// (blocks per stage, bottleneck?) of each depth.
pub fn layout(depth: u16) -> ([usize; 4], bool) {
    match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        _ => ([3, 4, 6, 3], true),
    }
}

pub fn embedding_dim(depth: u16) -> usize {
    if layout(depth).1 {
        2048
    } else {
        512
    }
}

fn conv(in_ch: usize, out_ch: usize, kernel: usize, stride: usize) -> ConvSpec {
    ConvSpec {
        in_ch,
        out_ch,
        kernel,
        stride,
        groups: 1,
        padding: Padding::Symmetric(kernel / 2),
        bn_eps: BN_EPS,
    }
}

struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn load(
        vb: VarBuilder,
        in_ch: usize,
        width: usize,
        stride: usize,
        bottleneck: bool,
    ) -> Result<(Self, usize)> {
        let specs = if bottleneck {
            vec![
                conv(in_ch, width, 1, 1),
                conv(width, width, 3, stride),
                conv(width, width * 4, 1, 1),
            ]
        } else {
            vec![conv(in_ch, width, 3, stride), conv(width, width, 3, 1)]
        };
        let out_ch = specs.last().map(|s| s.out_ch).unwrap_or(width);
        let convs = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ConvBn::load(
                    s,
                    vb.pp(format!("conv{}", i + 1)),
                    vb.pp(format!("bn{}", i + 1)),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let downsample = if stride != 1 || in_ch != out_ch {
            let mut spec = conv(in_ch, out_ch, 1, stride);
            spec.padding = Padding::Symmetric(0);
            Some(ConvBn::load(
                &spec,
                vb.pp("downsample.0"),
                vb.pp("downsample.1"),
            )?)
        } else {
            None
        };
        Ok((Self { convs, downsample }, out_ch))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            let activation = if i == last {
                Activation::Identity
            } else {
                Activation::Relu
            };
            h = c.forward_act(&h, activation)?;
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        if fast_kernels(x) {
            // One pass instead of candle's add and relu, two passes and two allocations.
            return add_relu(&h, &shortcut);
        }
        (h + shortcut)?.relu()
    }
}

/// What a block's manual backward needs from its forward.
struct BlockTape {
    input: Tensor,
    /// The output of each convolution on the main path.
    conv_outs: Vec<Tensor>,
    /// relu(main + shortcut).
    out: Tensor,
}

impl Block {
    fn activation(&self, i: usize) -> Activation {
        if i + 1 == self.convs.len() {
            Activation::Identity
        } else {
            Activation::Relu
        }
    }

    fn forward_taped(&self, x: &Tensor) -> Result<BlockTape> {
        let mut conv_outs: Vec<Tensor> = Vec::with_capacity(self.convs.len());
        for (i, c) in self.convs.iter().enumerate() {
            let h = conv_outs.last().unwrap_or(x);
            conv_outs.push(c.forward_act(h, self.activation(i))?);
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        let out = add_relu(conv_outs.last().expect("convs"), &shortcut)?;
        Ok(BlockTape {
            input: x.clone(),
            conv_outs,
            out,
        })
    }

    fn backward(&self, tape: &BlockTape, grad: &Tensor) -> Result<Tensor> {
        let grad = mask_grad(grad, &tape.out, Activation::Relu)?;
        let mut main = grad.clone();
        for (i, c) in self.convs.iter().enumerate().rev() {
            let input = if i == 0 {
                &tape.input
            } else {
                &tape.conv_outs[i - 1]
            };
            main = c.input_grad(input, &tape.conv_outs[i], &main, self.activation(i))?;
        }
        let shortcut = match &self.downsample {
            Some(d) => d.input_grad(&tape.input, &grad, &grad, Activation::Identity)?,
            None => grad,
        };
        main + shortcut
    }
}

/// What `ResNet::input_grad` needs from `ResNet::embed_taped`.
pub struct Tape {
    input: Tensor,
    stem_out: Tensor,
    blocks: Vec<BlockTape>,
}

pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
}

impl ResNet {
    pub fn load(depth: u16, vb: VarBuilder) -> Result<Self> {
        let (counts, bottleneck) = layout(depth);
        let stem = ConvBn::load(&conv(3, 64, 7, 2), vb.pp("conv1"), vb.pp("bn1"))?;
        let mut blocks = Vec::new();
        let mut in_ch = 64;
        for (stage, &count) in counts.iter().enumerate() {
            let width = 64 << stage;
            for j in 0..count {
                let stride = if j == 0 && stage > 0 { 2 } else { 1 };
                let (block, out) = Block::load(
                    vb.pp(format!("layer{}.{j}", stage + 1)),
                    in_ch,
                    width,
                    stride,
                    bottleneck,
                )?;
                blocks.push(block);
                in_ch = out;
            }
        }
        Ok(Self { stem, blocks })
    }

    /// The penultimate embedding: `(N, 512)` or `(N, 2048)`.
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = max_pool_3x3_s2(&self.stem.forward_act(x, Activation::Relu)?)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        global_avg_pool(&h)
    }

    /// `embed` on the fast CPU kernels, keeping what `input_grad` needs.
    pub fn embed_taped(&self, x: &Tensor) -> Result<(Tensor, Tape)> {
        let stem_out = self.stem.forward_act(x, Activation::Relu)?;
        let mut h = max_pool_3x3_s2(&stem_out)?;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let tape = block.forward_taped(&h)?;
            h = tape.out.clone();
            blocks.push(tape);
        }
        let tape = Tape {
            input: x.clone(),
            stem_out,
            blocks,
        };
        Ok((global_avg_pool(&h)?, tape))
    }

    /// ∂loss/∂x from ∂loss/∂embedding, by hand: each layer's own input-gradient kernel, with
    /// no autograd graph and no weight gradients.
    pub fn input_grad(&self, tape: &Tape, grad_embedding: &Tensor) -> Result<Tensor> {
        let last = tape.blocks.last().map_or(&tape.stem_out, |b| &b.out);
        let mut grad = global_avg_pool_grad(last.shape(), grad_embedding)?;
        for (block, t) in self.blocks.iter().zip(&tape.blocks).rev() {
            grad = block.backward(t, &grad)?;
        }
        let grad = max_pool_3x3_s2_grad(&tape.stem_out, &grad)?;
        self.stem
            .input_grad(&tape.input, &tape.stem_out, &grad, Activation::Relu)
    }
}
