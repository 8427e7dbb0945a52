//! Checks on an ONNX graph before tract sees it. tract allocates what a graph declares (an
//! initializer's dims, a constant shape fed to `ConstantOfShape`), and an allocation that
//! fails aborts the process, which no `catch_unwind` can contain; it also reads tensors stored
//! as "external data" from files beside the model, which for a stored artifact means files in
//! the worker's directory. So the parsed protobuf is walked first: sizes are bounded by the same
//! limits as a declarative network's, and external data is refused.

use tract_onnx::pb::{
    tensor_proto::DataLocation, type_proto, GraphProto, NodeProto, TensorProto, ValueInfoProto,
};
use vigil_core::{Error, Result};

use crate::spec::{MAX_ACTIVATIONS, MAX_PARAMETERS};

/// How deep subgraphs (the bodies of `If`, `Loop`, `Scan`) may nest.
const MAX_GRAPH_DEPTH: usize = 16;

/// Ops whose named input is a shape (or a count per axis) of the tensor they make.
const SHAPE_INPUTS: &[(&str, usize)] = &[
    ("ConstantOfShape", 0),
    ("Expand", 1),
    ("Reshape", 1),
    ("Tile", 1),
    ("Resize", 3),
    ("Upsample", 1),
];

/// Refuses a graph that declares absurd sizes or external data; `identifier` names the model in
/// the error.
pub(crate) fn check(identifier: &str, graph: Option<&GraphProto>) -> Result<()> {
    let graph = graph.ok_or_else(|| refuse(identifier, "the file holds no graph".into()))?;
    let mut weights = 0usize;
    walk(identifier, graph, 0, &mut weights)
}

fn refuse(identifier: &str, why: String) -> Error {
    Error::model(identifier, format!("not a usable ONNX graph: {why}"))
}

fn walk(identifier: &str, graph: &GraphProto, depth: usize, weights: &mut usize) -> Result<()> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(refuse(
            identifier,
            format!("subgraphs nest more than {MAX_GRAPH_DEPTH} deep"),
        ));
    }
    let mut constants: Vec<(&str, &TensorProto)> = Vec::new();
    for t in &graph.initializer {
        *weights = add_tensor(
            identifier,
            t,
            &format!("initializer `{}`", t.name),
            *weights,
        )?;
        constants.push((&t.name, t));
    }
    for s in &graph.sparse_initializer {
        for (part, t) in [("values", &s.values), ("indices", &s.indices)] {
            if let Some(t) = t {
                let what = format!("sparse initializer's {part} `{}`", t.name);
                *weights = add_tensor(identifier, t, &what, *weights)?;
            }
        }
        let dense: Option<usize> = s
            .dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
        if dense.is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(refuse(
                identifier,
                format!("a sparse initializer has dims {:?}", s.dims),
            ));
        }
    }
    for info in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        check_value_info(identifier, info)?;
    }
    for node in &graph.node {
        for attr in &node.attribute {
            let what = |t: &TensorProto| {
                format!(
                    "node `{}`'s attribute `{}` {}",
                    node.name, attr.name, t.name
                )
            };
            for t in attr.t.iter().chain(&attr.tensors) {
                *weights = add_tensor(identifier, t, &what(t), *weights)?;
                if node.op_type == "Constant" {
                    if let Some(out) = node.output.first() {
                        constants.push((out, t));
                    }
                }
            }
            for g in attr.g.iter().chain(&attr.graphs) {
                walk(identifier, g, depth + 1, weights)?;
            }
        }
    }
    for node in &graph.node {
        check_shape_input(identifier, node, &constants)?;
    }
    Ok(())
}

/// Checks one stored tensor and adds its size to the graph's running total of weights.
fn add_tensor(identifier: &str, t: &TensorProto, what: &str, total: usize) -> Result<usize> {
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(refuse(
            identifier,
            format!("{what} keeps its values in an external file; vigil loads only self-contained graphs"),
        ));
    }
    let size = element_count(&t.dims)
        .filter(|&n| n <= MAX_PARAMETERS)
        .ok_or_else(|| refuse(identifier, format!("{what} has dims {:?}", t.dims)))?;
    total
        .checked_add(size)
        .filter(|&n| n <= MAX_PARAMETERS)
        .ok_or_else(|| {
            refuse(
                identifier,
                format!("its tensors hold more than {MAX_PARAMETERS} values"),
            )
        })
}

/// The product of dims, `None` when one is negative or the product overflows.
fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

/// Declared inputs, outputs and intermediate values: their known dims (symbolic ones, such as
/// the batch, are free) must fit the activation limit.
fn check_value_info(identifier: &str, info: &ValueInfoProto) -> Result<()> {
    let Some(type_proto::Value::TensorType(t)) =
        info.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    let Some(shape) = &t.shape else { return Ok(()) };
    let dims: Vec<i64> = shape
        .dim
        .iter()
        .filter_map(|d| match d.value {
            Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    match element_count(&dims) {
        Some(n) if n <= MAX_ACTIVATIONS => Ok(()),
        _ => Err(refuse(
            identifier,
            format!("value `{}` is declared with dims {dims:?}", info.name),
        )),
    }
}

/// An op that takes a shape from a constant: the shape it asks for must fit the limit.
fn check_shape_input(
    identifier: &str,
    node: &NodeProto,
    constants: &[(&str, &TensorProto)],
) -> Result<()> {
    let Some(&(_, at)) = SHAPE_INPUTS.iter().find(|(op, _)| *op == node.op_type) else {
        return Ok(());
    };
    let Some(name) = node.input.get(at).filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let Some((_, t)) = constants.iter().find(|(n, _)| n == name) else {
        return Ok(());
    };
    // A shape is int64; `Resize` and `Upsample` may give float scales, bounded the same way.
    let values: Vec<i64> = if !t.int64_data.is_empty() {
        t.int64_data.clone()
    } else if !t.float_data.is_empty() {
        t.float_data.iter().map(|f| f.ceil() as i64).collect()
    } else if t.data_type == tract_onnx::pb::tensor_proto::DataType::Int64 as i32 {
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect()
    } else {
        return Ok(());
    };
    // `Reshape` allows 0 (keep) and -1 (infer): they cannot grow the tensor.
    let sizes: Vec<i64> = values.iter().map(|&v| v.max(1)).collect();
    match element_count(&sizes) {
        Some(n) if n <= MAX_ACTIVATIONS => Ok(()),
        _ => Err(refuse(
            identifier,
            format!(
                "node `{}` ({}) asks for a tensor of shape {values:?}",
                node.name, node.op_type
            ),
        )),
    }
}
