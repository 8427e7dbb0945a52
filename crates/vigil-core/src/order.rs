//! MongoDB's order of values, for what vigil computes in the process rather than in the
//! database (`$min`, `$max`, `$addToSet`, `$pull`): types first (null, numbers, strings,
//! objects, arrays, binary data, booleans), then values within a type. Numbers compare across
//! integer and float; strings bytewise; objects field by field (name, then value), in order;
//! arrays element by element; binary values by length, then codec, then bytes.

use std::cmp::Ordering;

use crate::Value;

/// A value's place in MongoDB's order of types.
pub fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 1,
        Value::Int(_) | Value::Float(_) => 2,
        Value::String(_) => 3,
        Value::Object(_) => 4,
        Value::Array(_) => 5,
        Value::Bytes(_) | Value::Encoded(_) => 6,
        Value::Bool(_) => 8,
    }
}

/// MongoDB's comparison of two values. NaN sorts below every other number, as in MongoDB.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => numbers(a, b),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Object(x), Value::Object(y)) => {
            for ((kx, vx), (ky, vy)) in x.iter().zip(y.iter()) {
                // MongoDB: the values' types, then the field names, then the values.
                let o = type_rank(vx)
                    .cmp(&type_rank(vy))
                    .then_with(|| kx.as_bytes().cmp(ky.as_bytes()))
                    .then_with(|| compare(vx, vy));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Array(x), Value::Array(y)) => {
            for (vx, vy) in x.iter().zip(y.iter()) {
                let o = compare(vx, vy);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => {
            let bytes = |v: &Value| match v {
                Value::Bytes(b) => ("bytes".to_string(), b.clone()),
                Value::Encoded(e) => (e.codec().to_string(), e.bytes().to_vec()),
                _ => (String::new(), Vec::new()),
            };
            let ((ca, ba), (cb, bb)) = (bytes(a), bytes(b));
            ba.len()
                .cmp(&bb.len())
                .then_with(|| ca.cmp(&cb))
                .then_with(|| ba.cmp(&bb))
        }
    }
}

fn numbers(a: &Value, b: &Value) -> Ordering {
    let (x, y) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // An integer beyond 2^53 and a float: exact when both are integers.
        _ => match (a, b) {
            (Value::Int(i), Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                (*i as i128).cmp(&(*f as i128))
            }
            (Value::Float(f), Value::Int(i)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                (*f as i128).cmp(&(*i as i128))
            }
            _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        },
    }
}

/// [`compare`] where either side may be missing, as an aggregation expression sees it: a
/// missing value orders before null and equals only another missing value.
pub fn compare_missing(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => compare(a, b),
    }
}

/// Equality as MongoDB sees it: `1 == 1.0`, fields in order.
pub fn equal(a: &Value, b: &Value) -> bool {
    compare(a, b) == Ordering::Equal
}

/// A byte string whose bytewise order is [`compare`]'s order, for databases that sort by a
/// key rather than a comparator (`ORDER BY`, `<` on blobs): the type's rank, then the value.
/// Numbers as order-preserving IEEE doubles (integers beyond 2^53 round, the one place the
/// key is coarser than `compare`); strings as their bytes with 0x00 escaped and a 0x00 0x00
/// end; objects as (value's rank, name, value) per field and arrays as their elements, each
/// closed by 0x00, below every rank byte, so a prefix sorts first.
pub fn sort_key(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_key(v, &mut out);
    out
}

fn write_key(v: &Value, out: &mut Vec<u8>) {
    out.push(type_rank(v));
    match v {
        Value::Null => {}
        Value::Int(_) | Value::Float(_) => {
            let f = v.as_f64().unwrap_or(f64::NAN);
            if f.is_nan() {
                // Below every other number, as in `compare`.
                out.extend_from_slice(&[0; 8]);
            } else {
                // -0.0 equals 0.0; then flip the sign bit (and, for negatives, the rest).
                let bits = (if f == 0.0 { 0.0 } else { f }).to_bits();
                let ordered = if bits >> 63 == 1 {
                    !bits
                } else {
                    bits | 1 << 63
                };
                out.extend_from_slice(&ordered.to_be_bytes());
            }
        }
        Value::String(s) => escaped(s.as_bytes(), out),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Object(d) => {
            for (k, x) in d.iter() {
                out.push(type_rank(x));
                escaped(k.as_bytes(), out);
                write_key(x, out);
            }
            out.push(0);
        }
        Value::Array(items) => {
            for x in items {
                write_key(x, out);
            }
            out.push(0);
        }
        Value::Bytes(_) | Value::Encoded(_) => {
            let (codec, bytes) = match v {
                Value::Encoded(e) => (e.codec(), e.bytes()),
                Value::Bytes(b) => ("bytes", b.as_slice()),
                _ => unreachable!("matched above"),
            };
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            escaped(codec.as_bytes(), out);
            out.extend_from_slice(bytes);
        }
    }
}

/// Bytes with 0x00 written 0x00 0xFF and a 0x00 0x00 end: order kept, and no text is a prefix
/// of another's key.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Document;

    #[test]
    fn types_order_first_then_values() {
        let ordered = [
            Value::Null,
            Value::Float(f64::NAN),
            Value::Int(-3),
            Value::Float(1.0),
            Value::Int(2),
            Value::String("".into()),
            Value::String("B".into()),
            Value::String("a".into()),
            Value::String("é".into()),
            Value::Object(Document::new()),
            Value::Object(Document::new().with("a", 1)),
            Value::Array(vec![]),
            Value::Array(vec![Value::Int(1)]),
            Value::Bytes(vec![1]),
            Value::Bool(false),
            Value::Bool(true),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert!(equal(&Value::Int(1), &Value::Float(1.0)));
        // The key orders as `compare` does, composite values included.
        let mut values = ordered.to_vec();
        values.extend([
            Value::Float(-0.0),
            Value::Int(0),
            Value::Float(-2.5),
            Value::String("a\0".into()),
            Value::String("a\u{1}".into()),
            Value::Object(Document::new().with("a", "x")),
            Value::Object(Document::new().with("a", 1).with("b", 1)),
            Value::Object(Document::new().with("b", 0)),
            Value::Object(Document::new().with("a", Document::new())),
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Array(vec![])]),
            Value::Array(vec![Value::String("b".into())]),
            Value::Array(vec![Value::Null, Value::Bool(true)]),
        ]);
        for a in &values {
            for b in &values {
                assert_eq!(
                    sort_key(a).cmp(&sort_key(b)),
                    compare(a, b),
                    "key of {a} vs {b}"
                );
            }
        }
        assert_eq!(
            compare(&Value::Int(i64::MAX), &Value::Float(9.0e18)),
            Ordering::Greater
        );
    }
}
