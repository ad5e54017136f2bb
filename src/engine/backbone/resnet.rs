//! ResNet-18/34/50 with torchvision/timm tensor names (`conv1`, `bn1`, `layerN.M.*`, `fc`).
//!
//! Written here rather than taken from candle-transformers because input gradients need a
//! max-pool that backprops (see `layers::max_pool_3x3_s2`); a test checks that the logits equal
//! candle-transformers' implementation on the same weights.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{global_avg_pool, max_pool_3x3_s2, ConvBn, ConvSpec, Padding};

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
            h = c.forward(&h)?;
            if i != last {
                h = h.relu()?;
            }
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (h + shortcut)?.relu()
    }
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
        let mut h = max_pool_3x3_s2(&self.stem.forward(x)?.relu()?)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        global_avg_pool(&h)
    }
}
