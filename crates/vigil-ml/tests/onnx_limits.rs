//! An ONNX graph that declares absurd sizes, or keeps its tensors in files beside it, is refused
//! before tract allocates or reads anything: PyTorch's LeNet5 export, mutated one way at a time.

use prost::Message;
use tract_onnx::pb::{
    tensor_proto::DataLocation, tensor_shape_proto::dimension::Value as Dim, type_proto,
    ModelProto, NodeProto, StringStringEntryProto, TensorProto,
};
use tract_onnx::prelude::Framework;
use vigil_core::Value;
use vigil_ml::{Model, PipelineModel};

fn lenet5() -> ModelProto {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/lenet5/lenet5.onnx");
    let bytes = std::fs::read(path).unwrap();
    tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap()
}

fn refused(proto: &ModelProto, expected: &str) {
    let err = PipelineModel::onnx("mutated", proto.encode_to_vec())
        .err()
        .unwrap_or_else(|| panic!("a graph that should hold `{expected}` was accepted"));
    let text = err.to_string();
    assert!(text.contains("not a usable ONNX graph"), "{text}");
    assert!(text.contains(expected), "{text}");
}

fn int64s(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: tract_onnx::pb::tensor_proto::DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

#[test]
fn the_unmutated_export_still_loads_and_predicts() {
    let model = PipelineModel::onnx("lenet5", lenet5().encode_to_vec()).unwrap();
    let input = vigil_core::Tensor::from_f32(&[1, 32, 32], &[0.0; 1024]).unwrap();
    let out = model.predict(&[Value::tensor(&input)]).unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn an_initializer_with_absurd_dims_is_refused() {
    let mut proto = lenet5();
    let graph = proto.graph.as_mut().unwrap();
    graph.initializer[0].dims = vec![1_000_000, 1_000_000];
    refused(&proto, "has dims [1000000, 1000000]");
    // Dims whose product overflows, and negative dims.
    let mut proto = lenet5();
    proto.graph.as_mut().unwrap().initializer[0].dims = vec![i64::MAX, 4];
    refused(&proto, "has dims");
    let mut proto = lenet5();
    proto.graph.as_mut().unwrap().initializer[0].dims = vec![-1, 10];
    refused(&proto, "has dims");
    // Each below the limit, together above it.
    let mut proto = lenet5();
    let graph = proto.graph.as_mut().unwrap();
    graph.initializer[0].dims = vec![60_000_000];
    graph.initializer[1].dims = vec![60_000_000];
    refused(&proto, "hold more than 100000000 values");
}

#[test]
fn external_data_is_refused() {
    let mut proto = lenet5();
    let t = &mut proto.graph.as_mut().unwrap().initializer[0];
    t.raw_data.clear();
    t.float_data.clear();
    t.data_location = Some(DataLocation::External as i32);
    t.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "Cargo.toml".into(),
    }];
    refused(&proto, "external file");
}

#[test]
fn a_constant_shape_asking_for_terabytes_is_refused() {
    for op in ["ConstantOfShape", "Expand", "Reshape", "Tile"] {
        let mut proto = lenet5();
        let graph = proto.graph.as_mut().unwrap();
        graph
            .initializer
            .push(int64s("huge_shape", &[100_000, 100_000, 100]));
        let inputs = if op == "ConstantOfShape" {
            vec!["huge_shape".into()]
        } else {
            vec![graph.input[0].name.clone(), "huge_shape".into()]
        };
        graph.node.insert(
            0,
            NodeProto {
                name: "bomb".into(),
                op_type: op.into(),
                input: inputs,
                output: vec!["huge".into()],
                ..Default::default()
            },
        );
        refused(&proto, "asks for a tensor of shape [100000, 100000, 100]");
    }
    // The shape may come from a Constant node rather than an initializer.
    let mut proto = lenet5();
    let graph = proto.graph.as_mut().unwrap();
    let constant = NodeProto {
        name: "shape".into(),
        op_type: "Constant".into(),
        output: vec!["huge_shape".into()],
        attribute: vec![tract_onnx::pb::AttributeProto {
            name: "value".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(int64s("", &[1 << 20, 1 << 20])),
            ..Default::default()
        }],
        ..Default::default()
    };
    let bomb = NodeProto {
        name: "bomb".into(),
        op_type: "ConstantOfShape".into(),
        input: vec!["huge_shape".into()],
        output: vec!["huge".into()],
        ..Default::default()
    };
    graph.node.splice(0..0, [constant, bomb]);
    refused(&proto, "asks for a tensor of shape [1048576, 1048576]");
}

#[test]
fn a_declared_input_of_absurd_size_is_refused() {
    let mut proto = lenet5();
    let input = &mut proto.graph.as_mut().unwrap().input[0];
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut()
    else {
        panic!("LeNet5's input is a tensor")
    };
    for d in t.shape.as_mut().unwrap().dim.iter_mut().skip(2) {
        d.value = Some(Dim::DimValue(1_000_000));
    }
    refused(&proto, "is declared with dims");
}
