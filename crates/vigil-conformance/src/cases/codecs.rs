//! Every codec round-trips exactly; unknown and malformed encodings are refused.

use std::sync::Arc;

use image::{DynamicImage, RgbImage};
use vigil::{json, Codec, Document, Encoded, Error, Tensor, Value};

use super::{fresh, with_digits};
use crate::{data, Factory};

/// The 1,000 first digits come back pixel for pixel, as grayscale images.
pub fn png_grayscale_digits_round_trip(factory: &Factory) {
    let (_db, mnist) = with_digits(factory, 1000);
    let back: Vec<Document> = mnist
        .find(json!({}))
        .run()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back.len(), 1000);
    for (doc, digit) in back.iter().zip(data::digits()) {
        let img = doc.get("img").unwrap().to_image().unwrap();
        assert!(
            matches!(img, DynamicImage::ImageLuma8(_)),
            "grayscale stays grayscale"
        );
        assert_eq!(img.to_luma8(), digit.image);
        assert_eq!(doc.get("class"), Some(&Value::Int(i64::from(digit.label))));
    }
}

/// An RGB image made from three digits (one per channel) round-trips as RGB.
pub fn png_rgb_round_trips(factory: &Factory) {
    let db = fresh(factory);
    let d = data::digits();
    let rgb = RgbImage::from_fn(28, 28, |x, y| {
        image::Rgb([
            d[0].image.get_pixel(x, y)[0],
            d[1].image.get_pixel(x, y)[0],
            d[2].image.get_pixel(x, y)[0],
        ])
    });
    let original = DynamicImage::ImageRgb8(rgb);
    let value = Value::image(&original).unwrap();
    let coll = db.collection("colour").unwrap();
    let id = coll
        .insert_one(Document::new().with("img", value.clone()))
        .unwrap();
    let back = coll
        .find_one(json!({"_id": id.to_json()}))
        .unwrap()
        .unwrap();
    assert_eq!(
        back.get("img"),
        Some(&value),
        "the stored bytes come back unchanged"
    );
    let img = back.get("img").unwrap().to_image().unwrap();
    assert!(matches!(img, DynamicImage::ImageRgb8(_)));
    assert_eq!(img, original);
}

/// Tensors of f32, f64, i64 and u8 keep dtype, shape and every element.
pub fn tensors_of_every_dtype_round_trip(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("tensors").unwrap();
    let pixels: Vec<u8> = data::digits()[0].image.as_raw().clone();
    let f32s: Vec<f32> = pixels
        .iter()
        .map(|&p| (f32::from(p) / 255.0 - 0.1307) / 0.3081)
        .collect();
    let f64s: Vec<f64> = f32s.iter().map(|&v| f64::from(v) * 1e-300).collect();
    let i64s: Vec<i64> = pixels
        .iter()
        .map(|&p| i64::from(p) * -1_000_000_007)
        .collect();
    let tensors = [
        Tensor::from_u8(&[1, 28, 28], &pixels).unwrap(),
        Tensor::from_f32(&[28, 28], &f32s).unwrap(),
        Tensor::from_f64(&[784], &f64s).unwrap(),
        Tensor::from_i64(&[4, 196], &i64s).unwrap(),
        Tensor::from_f32(&[0, 3], &[]).unwrap(),
        Tensor::from_f64(&[], &[2.5]).unwrap(),
    ];
    let doc = Document::new().with(
        "ts",
        Value::Array(tensors.iter().map(Value::tensor).collect()),
    );
    let id = coll.insert_one(doc).unwrap();
    let back = coll
        .find_one(json!({"_id": id.to_json()}))
        .unwrap()
        .unwrap();
    let Some(Value::Array(values)) = back.get("ts") else {
        panic!("array of tensors expected")
    };
    let decoded: Vec<Tensor> = values.iter().map(|v| v.to_tensor().unwrap()).collect();
    assert_eq!(decoded, tensors);
    assert_eq!(decoded[1].to_f32().unwrap(), f32s);
    assert_eq!(decoded[3].to_i64().unwrap(), i64s);
    assert!(
        decoded[1].to_i64().is_err(),
        "reading as the wrong dtype is an error"
    );
}

/// Raw bytes, empty ones included, come back as bytes.
pub fn raw_bytes_round_trip(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("raw").unwrap();
    let gz = std::fs::read(data::mnist_dir().join("digits-labels-idx1-ubyte.gz")).unwrap();
    let doc = Document::new()
        .with("file", gz.clone())
        .with("empty", Vec::<u8>::new())
        .with(
            "nested",
            Document::new().with("nul", vec![0u8, 0, 39, 34, 92]),
        );
    let id = coll.insert_one(doc.clone()).unwrap();
    let back = coll
        .find_one(json!({"_id": id.to_json()}))
        .unwrap()
        .unwrap();
    assert_eq!(back.get("file"), Some(&Value::Bytes(gz)));
    assert_eq!(back.get("empty"), Some(&Value::Bytes(vec![])));
    assert_eq!(
        back.get_path("nested.nul"),
        Some(&Value::Bytes(vec![0, 0, 39, 34, 92]))
    );
}

/// Every scalar kind, nesting and field order survive storage exactly.
pub fn scalars_nesting_and_field_order_round_trip(factory: &Factory) {
    let db = fresh(factory);
    let coll = db.collection("scalars").unwrap();
    let doc = Document::new()
        .with("_id", "fixed")
        .with("z_first", 1)
        .with("null", Value::Null)
        .with("t", true)
        .with("f", false)
        .with("min", i64::MIN)
        .with("max", i64::MAX)
        .with("float", 0.1f64)
        .with("whole_float", 3.0f64)
        .with("tiny", 5e-324f64)
        .with("precise", 0.958_695_652_173_913_2_f64)
        .with(
            "text",
            "ünïcödé \"quoted\" 'single' \\ back\nslash; DROP TABLE mnist; --",
        )
        .with(
            "list",
            Value::Array(vec![
                1.into(),
                "two".into(),
                Value::Null,
                Value::Array(vec![]),
            ]),
        )
        .with(
            "obj",
            Document::new()
                .with("b", 2)
                .with("a", Document::new().with("deep", 3.5f64)),
        )
        .with("_fold", "train");
    coll.insert_one(doc.clone()).unwrap();
    let back = coll.find_one(json!({})).unwrap().unwrap();
    assert_eq!(back, doc);
    let keys: Vec<&str> = back.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[..3], ["_id", "z_first", "null"], "field order is kept");
    assert!(
        matches!(back.get("whole_float"), Some(Value::Float(f)) if *f == 3.0),
        "3.0 stays a float"
    );
}

/// A codec nobody registered is refused on insert; once registered it stores and describes.
pub fn user_codecs_are_registered_and_checked(factory: &Factory) {
    struct Pgm;
    impl Codec for Pgm {
        fn name(&self) -> &str {
            "image/x-portable-graymap"
        }
        fn validate(&self, bytes: &[u8]) -> Result<(), String> {
            if bytes.starts_with(b"P5") {
                Ok(())
            } else {
                Err("no P5 header".into())
            }
        }
    }
    let db = fresh(factory);
    let coll = db.collection("pgm").unwrap();
    let digit = &data::digits()[0];
    let mut pgm = b"P5 28 28 255\n".to_vec();
    pgm.extend_from_slice(digit.image.as_raw());
    let doc = Document::new().with("img", Encoded::new("image/x-portable-graymap", pgm.clone()));
    let err = coll.insert_one(doc.clone()).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownCodec { codec, .. } if codec == "image/x-portable-graymap"),
        "{err}"
    );
    db.register_codec(Arc::new(Pgm)).unwrap();
    assert!(
        db.register_codec(Arc::new(Pgm)).is_err(),
        "a name is registered once"
    );
    let bad = Document::new().with(
        "img",
        Encoded::new("image/x-portable-graymap", b"GIF89a".to_vec()),
    );
    let err = coll.insert_one(bad).unwrap_err();
    assert!(
        err.to_string().contains("no P5 header") && err.to_string().contains("field `img`"),
        "{err}"
    );
    coll.insert_one(doc).unwrap();
    let back = coll.find_one(json!({})).unwrap().unwrap();
    let Some(Value::Encoded(e)) = back.get("img") else {
        panic!("encoded value expected")
    };
    assert_eq!(
        (e.codec(), e.bytes()),
        ("image/x-portable-graymap", &pgm[..])
    );
    assert_eq!(coll.count(json!({})).unwrap(), 1);
}
