//! Preprocess and postprocess pipelines as data: they are stored in the model's record and
//! rebuilt on load, so loading a model runs no user code.

use image::{imageops::FilterType, DynamicImage, GenericImageView};
use serde::{Deserialize, Serialize};
use vigil_core::{PngCodec, Tensor, TensorCodec, Value};

/// One preprocessing step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Preprocess {
    /// An `image/png` value to an image.
    DecodeImage,
    /// To one 8-bit gray channel.
    Grayscale,
    /// Resize to exactly `width` x `height` (bilinear).
    Resize {
        /// Target width.
        width: u32,
        /// Target height.
        height: u32,
    },
    /// Centre the image on a black `width` x `height` canvas (it must fit).
    Pad {
        /// Target width.
        width: u32,
        /// Target height.
        height: u32,
    },
    /// An image to a `[channels, height, width]` tensor with values in 0..1; a `tensor` value
    /// to its f32 elements.
    ToTensor,
    /// `(x - mean[c]) / std[c]` per channel (one value applies to every channel).
    Normalize {
        /// Per-channel means.
        mean: Vec<f32>,
        /// Per-channel standard deviations.
        std: Vec<f32>,
    },
}

/// What a postprocessing step makes of one row of model outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Postprocess {
    /// The index of the largest output, as an integer (a class).
    Argmax,
    /// The indices of the `k` largest outputs, largest first.
    TopK {
        /// How many.
        k: usize,
    },
    /// Softmax probabilities, as an f32 tensor.
    Softmax,
    /// The raw outputs, as an f32 tensor.
    Identity,
}

/// A preprocessed input: `[channels, height, width]` (or any shape) and its f32 elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f32>,
}

enum Stage {
    Value(Value),
    Image(DynamicImage),
    Tensor(Input),
}

impl Stage {
    fn name(&self) -> String {
        match self {
            Stage::Value(v) => v.kind(),
            Stage::Image(_) => "an image".into(),
            Stage::Tensor(_) => "a tensor".into(),
        }
    }
}

/// Runs the steps on one value. Errors say which step failed and why.
pub fn preprocess(steps: &[Preprocess], value: &Value) -> Result<Input, String> {
    let mut stage = Stage::Value(value.clone());
    for (i, step) in steps.iter().enumerate() {
        let fail = |what: String| format!("preprocess step #{i} ({step:?}): {what}");
        stage = match (step, stage) {
            (Preprocess::DecodeImage, Stage::Value(Value::Encoded(e)))
                if e.codec() == PngCodec::NAME =>
            {
                Stage::Image(PngCodec::decode(e.bytes()).map_err(|e| fail(e.to_string()))?)
            }
            (Preprocess::Grayscale, Stage::Image(img)) => {
                Stage::Image(DynamicImage::ImageLuma8(img.to_luma8()))
            }
            (Preprocess::Resize { width, height }, Stage::Image(img)) => {
                Stage::Image(img.resize_exact(*width, *height, FilterType::Triangle))
            }
            (Preprocess::Pad { width, height }, Stage::Image(img)) => {
                let (w, h) = img.dimensions();
                if w > *width || h > *height {
                    return Err(fail(format!(
                        "a {w}x{h} image does not fit {width}x{height}"
                    )));
                }
                let mut canvas = match &img {
                    DynamicImage::ImageLuma8(_) => DynamicImage::new_luma8(*width, *height),
                    _ => DynamicImage::new_rgb8(*width, *height),
                };
                image::imageops::overlay(
                    &mut canvas,
                    &img,
                    i64::from((width - w) / 2),
                    i64::from((height - h) / 2),
                );
                Stage::Image(canvas)
            }
            (Preprocess::ToTensor, Stage::Image(img)) => Stage::Tensor(image_tensor(&img)),
            (Preprocess::ToTensor, Stage::Value(v @ Value::Encoded(_))) => {
                let t = v.to_tensor().map_err(|e| fail(e.to_string()))?;
                Stage::Tensor(tensor_input(&t).map_err(fail)?)
            }
            (Preprocess::Normalize { mean, std }, Stage::Tensor(mut t)) => {
                normalize(&mut t, mean, std).map_err(fail)?;
                Stage::Tensor(t)
            }
            (_, stage) => return Err(fail(format!("cannot apply to {}", stage.name()))),
        };
    }
    match stage {
        Stage::Tensor(t) => Ok(t),
        Stage::Value(v @ Value::Encoded(_)) if v.to_tensor().is_ok() => {
            tensor_input(&v.to_tensor().map_err(|e| e.to_string())?)
        }
        other => Err(format!(
            "the preprocess steps end with {}, not a tensor (add to_tensor)",
            other.name()
        )),
    }
}

fn image_tensor(img: &DynamicImage) -> Input {
    let (w, h) = img.dimensions();
    let (channels, raw) = match img {
        DynamicImage::ImageLuma8(g) => (1, g.as_raw().clone()),
        other => (3, other.to_rgb8().into_raw()),
    };
    let plane = (w * h) as usize;
    let mut data = vec![0f32; channels * plane];
    // Interleaved HWC bytes to planar CHW floats.
    for (i, px) in raw.iter().enumerate() {
        data[(i % channels) * plane + i / channels] = f32::from(*px) / 255.0;
    }
    Input {
        shape: vec![channels, h as usize, w as usize],
        data,
    }
}

fn tensor_input(t: &Tensor) -> Result<Input, String> {
    let data = match t.dtype() {
        vigil_core::DType::F32 => t.to_f32().map_err(|e| e.to_string())?,
        vigil_core::DType::F64 => t
            .to_f64()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        vigil_core::DType::I64 => t
            .to_i64()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        vigil_core::DType::U8 => t.data().iter().map(|&v| f32::from(v)).collect(),
    };
    Ok(Input {
        shape: t.shape().to_vec(),
        data,
    })
}

fn normalize(t: &mut Input, mean: &[f32], std: &[f32]) -> Result<(), String> {
    let channels = t.shape.first().copied().unwrap_or(1).max(1);
    if mean.is_empty() || mean.len() != std.len() || (mean.len() != 1 && mean.len() != channels) {
        return Err(format!(
            "{} means and {} stds for {channels} channels",
            mean.len(),
            std.len()
        ));
    }
    if std.contains(&0.0) {
        return Err("a standard deviation of 0".into());
    }
    let plane = t.data.len() / channels;
    for (i, v) in t.data.iter_mut().enumerate() {
        let c = if mean.len() == 1 { 0 } else { i / plane };
        *v = (*v - mean[c]) / std[c];
    }
    Ok(())
}

impl Postprocess {
    /// The value made of one row of outputs.
    pub fn apply(&self, row: &[f32]) -> Value {
        let order = || {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            // NaN sorts last; ties keep the lower index first.
            idx.sort_by(|&a, &b| {
                row[b]
                    .partial_cmp(&row[a])
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            idx
        };
        match self {
            Postprocess::Argmax => Value::Int(order().first().copied().unwrap_or(0) as i64),
            Postprocess::TopK { k } => Value::Array(
                order()
                    .into_iter()
                    .take(*k)
                    .map(|i| Value::Int(i as i64))
                    .collect(),
            ),
            Postprocess::Softmax => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                let probs: Vec<f32> = exp.iter().map(|v| v / sum).collect();
                Value::Encoded(TensorCodec::encode(
                    &Tensor::from_f32(&[row.len()], &probs).expect("shape matches data"),
                ))
            }
            Postprocess::Identity => Value::Encoded(TensorCodec::encode(
                &Tensor::from_f32(&[row.len()], row).expect("shape matches data"),
            )),
        }
    }

    /// The codec of the outputs, if they are encoded values.
    pub fn output_codec(&self) -> Option<&'static str> {
        match self {
            Postprocess::Argmax | Postprocess::TopK { .. } => None,
            Postprocess::Softmax | Postprocess::Identity => Some(TensorCodec::NAME),
        }
    }
}

/// The steps of the reference notebook for 28x28 MNIST digits and a 32x32 LeNet5: decode,
/// grayscale, pad to 32x32, to tensor, normalise with MNIST's mean and deviation.
pub fn mnist_preprocess() -> Vec<Preprocess> {
    vec![
        Preprocess::DecodeImage,
        Preprocess::Grayscale,
        Preprocess::Pad {
            width: 32,
            height: 32,
        },
        Preprocess::ToTensor,
        Preprocess::Normalize {
            mean: vec![0.1307],
            std: vec![0.3081],
        },
    ]
}
