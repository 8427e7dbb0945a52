//! Reading MNIST digits from the standard IDX files (gzip-compressed or plain), as
//! `(image, label)` pairs, streamed: a 70,000-digit set is never held in memory at once.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use image::GrayImage;
use vigil_core::{Document, Error, Result, Value};

/// One handwritten digit.
#[derive(Debug, Clone, PartialEq)]
pub struct Digit {
    /// The 28x28 (or whatever the file says) grayscale image.
    pub image: GrayImage,
    /// The digit it shows, 0-9.
    pub label: u8,
}

impl Digit {
    /// The document of the reference notebook: `{"img": <image/png>, "class": label}`.
    pub fn to_document(&self) -> Result<Document> {
        Ok(Document::new()
            .with(
                "img",
                Value::image(&image::DynamicImage::ImageLuma8(self.image.clone()))?,
            )
            .with("class", i64::from(self.label)))
    }
}

fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let io = |e| Error::io(format!("opening {}", path.display()), e);
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 2];
    let gz = {
        use std::io::BufRead;
        let buf = file.fill_buf().map_err(io)?;
        if buf.len() >= 2 {
            magic.copy_from_slice(&buf[..2]);
        }
        magic == [0x1f, 0x8b]
    };
    Ok(if gz {
        Box::new(BufReader::new(GzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

fn header(reader: &mut dyn Read, path: &Path, magic: u32, dims: usize) -> Result<Vec<u32>> {
    let mut words = vec![0u8; 4 * (dims + 1)];
    reader
        .read_exact(&mut words)
        .map_err(|e| Error::InvalidData {
            path: path.display().to_string(),
            reason: format!("truncated IDX header: {e}"),
        })?;
    let words: Vec<u32> = words
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if words[0] != magic {
        return Err(Error::InvalidData {
            path: path.display().to_string(),
            reason: format!("IDX magic {:#010x}, expected {magic:#010x}", words[0]),
        });
    }
    Ok(words[1..].to_vec())
}

/// Streams the digits of one images file and its labels file.
pub struct Digits {
    images: Box<dyn Read + Send>,
    labels: Box<dyn Read + Send>,
    images_path: PathBuf,
    width: u32,
    height: u32,
    remaining: usize,
    index: usize,
}

impl std::fmt::Debug for Digits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digits")
            .field("images", &self.images_path)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl Digits {
    /// Opens a pair of IDX files and checks their headers agree.
    pub fn open(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Digits> {
        let (ip, lp) = (images.as_ref(), labels.as_ref());
        let mut image_reader = open(ip)?;
        let mut label_reader = open(lp)?;
        let ih = header(&mut image_reader, ip, 0x0000_0803, 3)?;
        let lh = header(&mut label_reader, lp, 0x0000_0801, 1)?;
        if ih[0] != lh[0] {
            return Err(Error::InvalidData {
                path: ip.display().to_string(),
                reason: format!("{} images but {} labels in {}", ih[0], lh[0], lp.display()),
            });
        }
        if ih[1] == 0 || ih[2] == 0 || ih[1] > 4096 || ih[2] > 4096 {
            return Err(Error::InvalidData {
                path: ip.display().to_string(),
                reason: format!("implausible image size {}x{}", ih[2], ih[1]),
            });
        }
        Ok(Digits {
            images: image_reader,
            labels: label_reader,
            images_path: ip.to_path_buf(),
            height: ih[1],
            width: ih[2],
            remaining: ih[0] as usize,
            index: 0,
        })
    }

    /// How many digits are left.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for Digits {
    type Item = Result<Digit>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let truncated = |what: &str, e: std::io::Error| Error::InvalidData {
            path: self.images_path.display().to_string(),
            reason: format!("{what} of digit #{} missing: {e}", self.index),
        };
        let mut pixels = vec![0u8; (self.width * self.height) as usize];
        let mut label = [0u8];
        let read = self
            .images
            .read_exact(&mut pixels)
            .map_err(|e| truncated("pixels", e))
            .and_then(|_| {
                self.labels
                    .read_exact(&mut label)
                    .map_err(|e| truncated("label", e))
            });
        if let Err(e) = read {
            self.remaining = 0;
            return Some(Err(e));
        }
        self.index += 1;
        // The buffer has exactly width*height bytes.
        let image = GrayImage::from_raw(self.width, self.height, pixels)
            .expect("buffer sized to the image");
        Some(Ok(Digit {
            image,
            label: label[0],
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// The `(images, labels)` file pairs in a directory: every `<prefix>-images-idx3-ubyte[.gz]`
/// with its `<prefix>-labels-idx1-ubyte[.gz]`, sorted by prefix with `train` first (so the full
/// MNIST set reads as its 60,000 training digits, then the 10,000 test digits).
pub fn find_files(dir: impl AsRef<Path>) -> Result<Vec<(PathBuf, PathBuf)>> {
    let dir = dir.as_ref();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((prefix, suffix)) = name.split_once("-images-idx3-ubyte") else {
            continue;
        };
        let labels = [
            format!("{prefix}-labels-idx1-ubyte{suffix}"),
            format!("{prefix}-labels-idx1-ubyte"),
            format!("{prefix}-labels-idx1-ubyte.gz"),
        ]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .ok_or_else(|| Error::InvalidData {
            path: path.display().to_string(),
            reason: format!("no matching {prefix}-labels-idx1-ubyte[.gz] beside it"),
        })?;
        pairs.push((prefix.to_string(), path, labels));
    }
    if pairs.is_empty() {
        return Err(Error::InvalidData {
            path: dir.display().to_string(),
            reason: "no *-images-idx3-ubyte[.gz] file here".into(),
        });
    }
    pairs.sort_by_key(|(prefix, ..)| (prefix != "train", prefix.clone()));
    Ok(pairs.into_iter().map(|(_, i, l)| (i, l)).collect())
}

/// Every digit in a directory's IDX files (see [`find_files`]), streamed in order.
pub fn read_dir(dir: impl AsRef<Path>) -> Result<impl Iterator<Item = Result<Digit>>> {
    let readers = find_files(dir)?
        .into_iter()
        .map(|(i, l)| Digits::open(i, l))
        .collect::<Result<Vec<_>>>()?;
    Ok(readers.into_iter().flatten())
}

/// How many digits a directory's IDX files hold (from their headers).
pub fn count_dir(dir: impl AsRef<Path>) -> Result<usize> {
    find_files(dir)?
        .into_iter()
        .map(|(i, l)| Digits::open(i, l).map(|d| d.remaining()))
        .sum()
}
