//! Codecs turn rich values into bytes and back. The codec's name is stored next to the bytes,
//! so a reader needs no schema to know what it holds.
//!
//! Built in: `image/png` ([`PngCodec`]), `tensor` ([`TensorCodec`]) and `bytes` (raw bytes,
//! [`Value::Bytes`]). Users add their own by implementing [`Codec`] and registering it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Location;
use crate::{Encoded, Error, Result};

/// Name under which [`Value::Bytes`] is stored.
pub const BYTES_CODEC: &str = "bytes";

/// What vigil needs to know about a codec to store and show its values. Typed encode and
/// decode functions live on the codec type itself (see [`PngCodec::encode`]).
pub trait Codec: Send + Sync + 'static {
    /// The name stored with the bytes, e.g. `image/png`.
    fn name(&self) -> &str;

    /// A cheap check run on insert that the bytes are plausibly this codec's (headers, sizes).
    /// A full decode happens only when the value is read as its type.
    fn validate(&self, bytes: &[u8]) -> std::result::Result<(), String>;

    /// A one-line description for people, e.g. `image/png 28x28`.
    fn describe(&self, bytes: &[u8]) -> String {
        format!("{} ({} bytes)", self.name(), bytes.len())
    }
}

/// The codecs a Datalayer knows, by name.
#[derive(Clone)]
pub struct Codecs {
    by_name: BTreeMap<String, Arc<dyn Codec>>,
}

impl Default for Codecs {
    /// `image/png` and `tensor`.
    fn default() -> Self {
        let mut codecs = Codecs {
            by_name: BTreeMap::new(),
        };
        codecs
            .by_name
            .insert(PngCodec::NAME.into(), Arc::new(PngCodec));
        codecs
            .by_name
            .insert(TensorCodec::NAME.into(), Arc::new(TensorCodec));
        codecs
    }
}

impl std::fmt::Debug for Codecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Codecs {
    /// Adds a codec. Its name must be new, non-empty and not `bytes`.
    pub fn register(&mut self, codec: Arc<dyn Codec>) -> Result<()> {
        let name = codec.name().to_string();
        let reason = if name.is_empty() || name.len() > 64 {
            Some("a codec name has 1 to 64 characters")
        } else if name == BYTES_CODEC {
            Some("`bytes` is reserved for raw bytes")
        } else if self.by_name.contains_key(&name) {
            Some("a codec of that name is already registered")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidName {
                kind: "codec",
                name,
                reason: reason.into(),
            });
        }
        self.by_name.insert(name, codec);
        Ok(())
    }

    /// The codec of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Codec>> {
        self.by_name.get(name)
    }

    /// Names of all registered codecs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Describes an encoded value for people; unknown codecs are shown by name and size.
    pub fn describe(&self, encoded: &Encoded) -> String {
        match self.get(encoded.codec()) {
            Some(codec) => codec.describe(encoded.bytes()),
            None => format!("{} ({} bytes)", encoded.codec(), encoded.bytes().len()),
        }
    }
}

/// `image/png`: any `image` crate image, stored losslessly as PNG. Grayscale stays grayscale.
#[derive(Debug, Clone, Copy, Default)]
pub struct PngCodec;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

impl PngCodec {
    /// The stored name.
    pub const NAME: &'static str = "image/png";

    /// Encodes an image as PNG.
    pub fn encode(image: &image::DynamicImage) -> Result<Encoded> {
        let mut bytes = Vec::with_capacity(64 + image.as_bytes().len() / 2);
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| Error::Encode {
                codec: Self::NAME.into(),
                reason: e.to_string(),
            })?;
        Ok(Encoded::new(Self::NAME, bytes))
    }

    /// Decodes PNG bytes.
    pub fn decode(bytes: &[u8]) -> Result<image::DynamicImage> {
        image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(|e| {
            Error::Decode {
                codec: Self::NAME.into(),
                location: Location::default(),
                reason: e.to_string(),
            }
        })
    }

    /// Width and height from the IHDR chunk, without decoding.
    fn dimensions(bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
        if bytes.len() < 24 || &bytes[..8] != PNG_SIGNATURE {
            return Err("not a PNG (missing signature)".into());
        }
        if &bytes[12..16] != b"IHDR" {
            return Err("PNG without an IHDR chunk".into());
        }
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let (w, h) = (be(&bytes[16..20]), be(&bytes[20..24]));
        if w == 0 || h == 0 {
            return Err(format!("PNG of size {w}x{h}"));
        }
        Ok((w, h))
    }
}

impl Codec for PngCodec {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn validate(&self, bytes: &[u8]) -> std::result::Result<(), String> {
        Self::dimensions(bytes).map(|_| ())
    }

    fn describe(&self, bytes: &[u8]) -> String {
        match Self::dimensions(bytes) {
            Ok((w, h)) => format!("image/png {w}x{h} ({} bytes)", bytes.len()),
            Err(e) => format!("image/png, unreadable: {e}"),
        }
    }
}

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer.
    I64,
    /// Unsigned byte.
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 => 1,
        }
    }

    fn code(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::F64 => 2,
            DType::I64 => 3,
            DType::U8 => 4,
        }
    }

    fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::F64,
            3 => DType::I64,
            4 => DType::U8,
            _ => return None,
        })
    }

    /// Lower-case name, e.g. `f32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }
}

/// A dense n-dimensional array: element type, shape, and little-endian raw data.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

macro_rules! typed_tensor {
    ($from:ident, $to:ident, $t:ty, $dtype:expr) => {
        /// A tensor from elements in row-major order; their count must match the shape.
        pub fn $from(shape: &[usize], values: &[$t]) -> Result<Tensor> {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Tensor::new($dtype, shape, data)
        }

        /// The elements in row-major order, if the dtype matches.
        pub fn $to(&self) -> Result<Vec<$t>> {
            if self.dtype != $dtype {
                return Err(Error::WrongType {
                    expected: concat!("a ", stringify!($t), " tensor"),
                    found: format!("a {} tensor", self.dtype.name()),
                });
            }
            const N: usize = std::mem::size_of::<$t>();
            Ok(self
                .data
                .chunks_exact(N)
                // chunks_exact yields slices of exactly N bytes.
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of N bytes")))
                .collect())
        }
    };
}

impl Tensor {
    /// A tensor from raw little-endian data, checked against dtype and shape.
    pub fn new(dtype: DType, shape: &[usize], data: Vec<u8>) -> Result<Tensor> {
        if shape.len() > 255 {
            return Err(Error::Encode {
                codec: TensorCodec::NAME.into(),
                reason: format!("rank {} is above the maximum of 255", shape.len()),
            });
        }
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()));
        if count != Some(data.len()) {
            return Err(Error::Encode {
                codec: TensorCodec::NAME.into(),
                reason: format!(
                    "shape {shape:?} of {} needs {} bytes, got {}",
                    dtype.name(),
                    count.map_or("too many".to_string(), |c| c.to_string()),
                    data.len()
                ),
            });
        }
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    typed_tensor!(from_f32, to_f32, f32, DType::F32);
    typed_tensor!(from_f64, to_f64, f64, DType::F64);
    typed_tensor!(from_i64, to_i64, i64, DType::I64);

    /// A u8 tensor.
    pub fn from_u8(shape: &[usize], values: &[u8]) -> Result<Tensor> {
        Tensor::new(DType::U8, shape, values.to_vec())
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Raw little-endian data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// `tensor`: `b"VT1"`, dtype code (1 f32, 2 f64, 3 i64, 4 u8), rank (u8), each dimension as
/// u64 little-endian, then the raw little-endian elements in row-major order.
#[derive(Debug, Clone, Copy, Default)]
pub struct TensorCodec;

const TENSOR_MAGIC: &[u8; 3] = b"VT1";

impl TensorCodec {
    /// The stored name.
    pub const NAME: &'static str = "tensor";

    /// Encodes a tensor.
    pub fn encode(tensor: &Tensor) -> Encoded {
        let mut bytes = Vec::with_capacity(5 + 8 * tensor.shape.len() + tensor.data.len());
        bytes.extend_from_slice(TENSOR_MAGIC);
        bytes.push(tensor.dtype.code());
        // `Tensor::new` refuses ranks above 255, so this fits.
        bytes.push(tensor.shape.len() as u8);
        for &d in &tensor.shape {
            bytes.extend_from_slice(&(d as u64).to_le_bytes());
        }
        bytes.extend_from_slice(&tensor.data);
        Encoded::new(Self::NAME, bytes)
    }

    /// Decodes tensor bytes.
    pub fn decode(bytes: &[u8]) -> Result<Tensor> {
        let fail = |reason: String| Error::Decode {
            codec: Self::NAME.into(),
            location: Location::default(),
            reason,
        };
        let (dtype, shape, offset) = Self::header(bytes).map_err(fail)?;
        Tensor::new(dtype, &shape, bytes[offset..].to_vec()).map_err(|e| fail(e.to_string()))
    }

    fn header(bytes: &[u8]) -> std::result::Result<(DType, Vec<usize>, usize), String> {
        if bytes.len() < 5 || &bytes[..3] != TENSOR_MAGIC {
            return Err("not a vigil tensor (missing VT1 header)".into());
        }
        let dtype =
            DType::from_code(bytes[3]).ok_or_else(|| format!("unknown dtype code {}", bytes[3]))?;
        let rank = bytes[4] as usize;
        let offset = 5 + 8 * rank;
        if bytes.len() < offset {
            return Err(format!("truncated header for rank {rank}"));
        }
        let shape: Vec<usize> = bytes[5..offset]
            .chunks_exact(8)
            // chunks_exact yields 8-byte slices.
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        let want = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if want != Some(bytes.len() - offset) {
            return Err(format!(
                "shape {shape:?} of {} does not match {} data bytes",
                dtype.name(),
                bytes.len() - offset
            ));
        }
        Ok((dtype, shape, offset))
    }
}

impl Codec for TensorCodec {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn validate(&self, bytes: &[u8]) -> std::result::Result<(), String> {
        Self::header(bytes).map(|_| ())
    }

    fn describe(&self, bytes: &[u8]) -> String {
        match Self::header(bytes) {
            Ok((dtype, shape, _)) => format!("tensor {} {shape:?}", dtype.name()),
            Err(e) => format!("tensor, unreadable: {e}"),
        }
    }
}
