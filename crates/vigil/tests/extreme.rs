//! Extreme input through the library, on SQLite and PostgreSQL: documents and filters built in
//! code nested 100,000 levels deep are refused without exhausting the stack; a 10,000-element
//! `$in` runs in the database; NaN and infinities are refused from every entry point, and what
//! was stored stays as it was.

use std::sync::Arc;

use serde_json::Value as Json;
use vigil::{json, Datalayer, Document, Value};

fn deep_document(levels: usize) -> Document {
    let mut doc = Document::new().with("leaf", 1);
    for _ in 0..levels {
        doc = Document::new().with("a", Value::Array(vec![Value::Object(doc)]));
    }
    doc
}

fn deep_filter(levels: usize) -> Json {
    let mut json = Json::from(1);
    for _ in 0..levels {
        let mut map = serde_json::Map::new();
        map.insert("$and".into(), Json::Array(vec![json]));
        json = Json::Object(map);
    }
    json
}

fn exercise(db: &Datalayer) {
    let coll = db.collection("extreme").unwrap();
    let docs: Vec<Document> = (0..10_000i64)
        .map(|n| Document::new().with("n", n))
        .collect();
    coll.insert_many(docs).unwrap();

    // 100,000 levels, built in code.
    let err = coll.insert_one(deep_document(100_000)).unwrap_err();
    assert!(err.to_string().contains("more than 100 levels"), "{err}");
    let err = coll.count(deep_filter(100_000)).unwrap_err();
    assert!(err.to_string().contains("more than 100 levels"), "{err}");
    // serde_json drops its values recursively: give the filter room to go.
    let filter = deep_filter(100_000);
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(filter))
        .unwrap()
        .join()
        .unwrap();
    // 100 levels are fine.
    coll.insert_one(deep_document(49).with("_id", "deep"))
        .unwrap();
    assert_eq!(coll.count(json!({"_id": "deep"})).unwrap(), 1);

    // A 10,000-element $in, answered in the database.
    let odd: Vec<i64> = (0..20_000).filter(|n| n % 2 == 1).collect();
    assert_eq!(coll.count(json!({"n": {"$in": odd}})).unwrap(), 5_000);

    // NaN and infinities, from every entry point: nothing is stored or changed.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(coll.insert_one(Document::new().with("x", bad)).is_err());
        assert!(coll
            .insert_one(Document::new().with("nested", Document::new().with("x", bad)))
            .is_err());
        let set = Document::new().with("$set", Document::new().with("x", bad));
        assert!(coll.update_many(json!({}), set).is_err());
        let replacement = Document::new().with("n", bad);
        assert!(coll.replace_one(json!({"n": 3}), replacement).is_err());
    }
    assert_eq!(coll.count(json!({"x": {"$exists": true}})).unwrap(), 0);
    assert_eq!(coll.count(json!({"n": 3})).unwrap(), 1);
    assert_eq!(coll.count(json!({})).unwrap(), 10_001);
}

#[test]
fn extreme_input_on_sqlite() {
    exercise(&vigil::connect("sqlite::memory:").unwrap());
}

#[test]
fn extreme_input_on_postgres() {
    let server = std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let backend = vigil::PostgresBackend::ephemeral(&server).expect("PostgreSQL answers");
    exercise(&vigil::Options::new().with_backend(Arc::new(backend)));
}

#[test]
fn network_specs_asking_for_absurd_sizes_are_refused_before_allocating() {
    use vigil::ml::{NetworkSpec, PipelineModel};
    let spec = |json: Json| -> NetworkSpec { serde_json::from_value(json).unwrap() };
    let cases = [
        // 10^12 weights in one linear layer.
        json!({"input": [1, 1, 1], "layers": [{"type": "flatten"},
            {"type": "linear", "name": "a", "in_features": 1, "out_features": 1_000_000_000_000u64}]}),
        // Products that overflow usize.
        json!({"input": [usize::MAX, 2, 2], "layers": []}),
        json!({"input": [1, 8, 8], "layers": [{"type": "conv2d", "name": "c", "in_channels": 1,
            "out_channels": usize::MAX, "kernel": 3, "stride": 1, "padding": 0}]}),
        json!({"input": [1, 8, 8], "layers": [{"type": "conv2d", "name": "c", "in_channels": 1,
            "out_channels": 1, "kernel": 3, "stride": 1, "padding": usize::MAX / 2}]}),
        // A huge activation from padding.
        json!({"input": [1, 8, 8], "layers": [{"type": "conv2d", "name": "c", "in_channels": 1,
            "out_channels": 64, "kernel": 1, "stride": 1, "padding": 100_000}]}),
    ];
    for case in cases {
        let err = PipelineModel::network("absurd", spec(case.clone()), 0)
            .err()
            .unwrap_or_else(|| panic!("accepted {case}"));
        assert!(err.to_string().contains("exceeds vigil's limits"), "{err}");
    }
    // A malformed ONNX file is an error too, including the one the fuzzer found that made the
    // ONNX loader panic.
    for name in ["onnx-tract-panic.onnx", "onnx-tract-padding-overflow.onnx"] {
        let path = format!(
            "{}/../../fuzz/regressions/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let Err(err) = PipelineModel::onnx("crash", std::fs::read(path).unwrap()) else {
            panic!("the fuzzer's crash input {name} was accepted");
        };
        assert!(err.to_string().contains("not a usable ONNX graph"), "{err}");
    }
    assert!(PipelineModel::onnx("bad", b"\x08\x01garbage".to_vec()).is_err());
    assert!(PipelineModel::onnx("empty", Vec::new()).is_err());
}

#[test]
fn a_100_mb_image_goes_in_and_comes_back() {
    // 5,800 x 5,800 RGB of noise: about 100 MB of pixels and as much PNG.
    let (w, h) = (5_800u32, 5_800u32);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<u8> = (0..(w * h * 3) as usize)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let img = image::RgbImage::from_raw(w, h, pixels).unwrap();
    let value = Value::image(&image::DynamicImage::ImageRgb8(img.clone())).unwrap();
    let size = match &value {
        Value::Encoded(e) => e.bytes().len(),
        _ => unreachable!("images are encoded"),
    };
    assert!(size > 100_000_000, "{size} bytes");
    let db = vigil::connect("sqlite::memory:").unwrap();
    let coll = db.collection("big").unwrap();
    coll.insert_one(Document::new().with("_id", 1).with("img", value))
        .unwrap();
    let back = coll.find_one(json!({"_id": 1})).unwrap().unwrap();
    let decoded = back.get("img").unwrap().to_image().unwrap().to_rgb8();
    assert!(decoded == img, "the image came back changed");
}
