//! Backbones: candle CNNs whose one forward pass gives both the logits and the penultimate
//! embedding, and which give input gradients of any logit.

pub mod activation;
pub mod conv;
pub mod depthwise;
pub mod efficientnet_lite;
pub mod kernel;
pub mod layers;
pub mod resnet;
pub mod weights;

use std::fmt;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarBuilder};

use crate::data::preprocess::Preprocess;
use crate::error::{Error, Result};

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackboneKind {
    EfficientNetLite(u8),
    ResNet(u16),
}

impl BackboneKind {
    pub const ALL: [BackboneKind; 8] = [
        Self::EfficientNetLite(0),
        Self::EfficientNetLite(1),
        Self::EfficientNetLite(2),
        Self::EfficientNetLite(3),
        Self::EfficientNetLite(4),
        Self::ResNet(18),
        Self::ResNet(34),
        Self::ResNet(50),
    ];
    pub const ALL_NAMES: [&'static str; 8] = [
        "tf_efficientnet_lite0",
        "tf_efficientnet_lite1",
        "tf_efficientnet_lite2",
        "tf_efficientnet_lite3",
        "tf_efficientnet_lite4",
        "resnet18",
        "resnet34",
        "resnet50",
    ];

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| Error::UnknownBackbone {
                name: name.to_string(),
                known: Self::ALL_NAMES.join(", "),
            })
    }

    pub fn name(&self) -> &'static str {
        let i = Self::ALL.iter().position(|k| k == self).expect("listed");
        Self::ALL_NAMES[i]
    }

    /// The Hugging Face hub repository of the ImageNet-1k weights.
    pub fn default_hub_id(&self) -> String {
        match self {
            Self::EfficientNetLite(_) => format!("timm/{}.in1k", self.name()),
            Self::ResNet(_) => format!("timm/{}.a1_in1k", self.name()),
        }
    }

    /// Preprocessing. Images are resized to the input size and centre-cropped (crop_pct 1.0),
    /// the protocol of the Imagenette reference accuracy; the timm default crop is not used.
    pub fn preprocess(&self) -> Preprocess {
        match self {
            Self::EfficientNetLite(level) => Preprocess {
                size: efficientnet_lite::variant(*level).2,
                crop_pct: 1.0,
                mean: [0.5; 3],
                std: [0.5; 3],
            },
            Self::ResNet(_) => Preprocess {
                size: 224,
                crop_pct: 1.0,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
        }
    }

    pub fn embedding_dim(&self) -> usize {
        match self {
            Self::EfficientNetLite(_) => efficientnet_lite::HEAD_CHANNELS,
            Self::ResNet(depth) => resnet::embedding_dim(*depth),
        }
    }

    fn classifier_name(&self) -> &'static str {
        match self {
            Self::EfficientNetLite(_) => "classifier",
            Self::ResNet(_) => "fc",
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Body {
    Lite(efficientnet_lite::EfficientNetLite),
    ResNet(resnet::ResNet),
}

/// What the manual backward of each body needs from its forward.
enum Tape {
    Lite(efficientnet_lite::Tape),
    ResNet(resnet::Tape),
}

/// What one forward pass gives.
pub struct BackboneOutput {
    /// `(N, classes)`.
    pub logits: Tensor,
    /// `(N, embedding_dim)`: the penultimate features, input of the classifier.
    pub embedding: Tensor,
}

pub struct Backbone {
    pub kind: BackboneKind,
    pub num_classes: usize,
    body: Body,
    classifier: Linear,
    device: Device,
}

impl Backbone {
    /// Builds the network from a `VarBuilder` holding tensors with timm's names.
    pub fn from_var_builder(
        kind: BackboneKind,
        num_classes: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let device = vb.device().clone();
        let body = match kind {
            BackboneKind::EfficientNetLite(level) => Body::Lite(
                efficientnet_lite::EfficientNetLite::load(level, vb.clone())?,
            ),
            BackboneKind::ResNet(depth) => Body::ResNet(resnet::ResNet::load(depth, vb.clone())?),
        };
        let classifier = candle_nn::linear(
            kind.embedding_dim(),
            num_classes,
            vb.pp(kind.classifier_name()),
        )?;
        Ok(Self {
            kind,
            num_classes,
            body,
            classifier,
            device,
        })
    }

    /// Loads ImageNet-1k weights from a safetensors file, in f32.
    pub fn load(kind: BackboneKind, weights: &std::path::Path, device: &Device) -> Result<Self> {
        Self::load_as(kind, weights, device, DType::F32)
    }

    /// Loads ImageNet-1k weights in `dtype` (f64 serves exact gradient checks).
    pub fn load_as(
        kind: BackboneKind,
        weights: &std::path::Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        // SAFETY: the file is memory-mapped read-only; REASON never writes weight files in place.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], dtype, device) }
            .map_err(|e| Error::Weights(format!("cannot read {}: {e}", weights.display())))?;
        Self::from_var_builder(kind, 1000, vb).map_err(|e| Error::WeightsMismatch {
            backbone: kind.name().to_string(),
            source_desc: weights.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// A randomly initialised network with plain (non-`Var`) weights, for benchmarks and tests.
    /// Returns the network and its number of trainable parameters (BatchNorm statistics excluded).
    pub fn random(
        kind: BackboneKind,
        num_classes: usize,
        device: &Device,
    ) -> Result<(Self, usize)> {
        Self::random_as(kind, num_classes, device, DType::F32)
    }

    pub fn random_as(
        kind: BackboneKind,
        num_classes: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<(Self, usize)> {
        let varmap = candle_nn::VarMap::new();
        Self::from_var_builder(
            kind,
            num_classes,
            VarBuilder::from_varmap(&varmap, dtype, device),
        )?;
        let vars = varmap.data().lock().expect("varmap lock");
        let parameters = vars
            .iter()
            .filter(|(name, _)| !name.ends_with("running_mean") && !name.ends_with("running_var"))
            .map(|(_, v)| v.elem_count())
            .sum();
        // Plain tensors: with `Var`s every op would record backprop history.
        let tensors = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        Ok((Self::from_var_builder(kind, num_classes, vb)?, parameters))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.body {
            Body::Lite(net) => net.embed(x)?,
            Body::ResNet(net) => net.embed(x)?,
        })
    }

    /// The backbone's own (ImageNet) classifier applied to embeddings `(N, dim)`.
    pub fn classify(&self, embedding: &Tensor) -> Result<Tensor> {
        Ok(self.classifier.forward(embedding)?)
    }

    pub fn forward(&self, x: &Tensor) -> Result<BackboneOutput> {
        let embedding = self.embed(x)?;
        let logits = self.classifier.forward(&embedding)?;
        Ok(BackboneOutput { logits, embedding })
    }

    /// Gradient of `objective(forward(x))` (a scalar) with respect to the input `x`.
    ///
    /// Samples in a batch do not interact (BatchNorm runs on its running statistics), so an
    /// objective that sums one term per sample yields every sample's own input gradient.
    pub fn input_gradient(
        &self,
        x: &Tensor,
        objective: impl Fn(&BackboneOutput) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        Ok(self.forward_with_input_gradient(x, objective)?.1)
    }

    /// The forward pass (detached) and the gradient of `objective(forward(x))` w.r.t. `x`.
    ///
    /// On the CPU the backbone backpropagates by hand: candle's autograd allocates a zero
    /// tensor and adds into it at every node, and computes weight gradients nobody needs, which
    /// was most of the time of an input gradient. Only the small objective (embedding to
    /// scalar) goes through candle's autograd. CUDA, and `kernel::with_plain_kernels`, keep
    /// candle's autograd end to end.
    pub fn forward_with_input_gradient(
        &self,
        x: &Tensor,
        objective: impl Fn(&BackboneOutput) -> candle_core::Result<Tensor>,
    ) -> Result<(BackboneOutput, Tensor)> {
        let no_dependency = || Error::Weights("the objective does not depend on the input".into());
        if !kernel::fast_kernels(x) {
            let input = Var::from_tensor(x)?;
            let out = self.forward(input.as_tensor())?;
            let grads = objective(&out)?.backward()?;
            let grad = grads.get(&input).cloned().ok_or_else(no_dependency)?;
            let out = BackboneOutput {
                logits: out.logits.detach(),
                embedding: out.embedding.detach(),
            };
            return Ok((out, grad));
        }
        let x = x.detach();
        let (embedding, tape) = match &self.body {
            Body::Lite(net) => {
                let (e, t) = net.embed_taped(&x)?;
                (e, Tape::Lite(t))
            }
            Body::ResNet(net) => {
                let (e, t) = net.embed_taped(&x)?;
                (e, Tape::ResNet(t))
            }
        };
        let e = Var::from_tensor(&embedding)?;
        let out = BackboneOutput {
            logits: self.classifier.forward(e.as_tensor())?,
            embedding: e.as_tensor().clone(),
        };
        let grads = objective(&out)?.backward()?;
        let grad_embedding = grads.get(&e).ok_or_else(no_dependency)?;
        let grad = match (&self.body, &tape) {
            (Body::Lite(net), Tape::Lite(t)) => net.input_grad(t, grad_embedding)?,
            (Body::ResNet(net), Tape::ResNet(t)) => net.input_grad(t, grad_embedding)?,
            _ => unreachable!("the tape comes from the same body"),
        };
        let out = BackboneOutput {
            logits: out.logits.detach(),
            embedding,
        };
        Ok((out, grad))
    }

    /// Gradient of `logits[i, classes[i]]` with respect to input `i`, for every `i`.
    pub fn logit_input_gradient(&self, x: &Tensor, classes: &[u32]) -> Result<Tensor> {
        let mask = one_hot(classes, self.num_classes, &self.device)?.to_dtype(x.dtype())?;
        self.input_gradient(x, |out| out.logits.mul(&mask)?.sum_all())
    }
}

/// `(N, C)` float mask with a one at `(i, classes[i])`.
pub fn one_hot(classes: &[u32], num_classes: usize, device: &Device) -> Result<Tensor> {
    let mut mask = vec![0f32; classes.len() * num_classes];
    for (i, &c) in classes.iter().enumerate() {
        mask[i * num_classes + c as usize] = 1.0;
    }
    Ok(Tensor::from_vec(
        mask,
        (classes.len(), num_classes),
        device,
    )?)
}
