//! `$group`: documents folded into one per key, by accumulators. Memory holds one state per
//! group (and the values `$push` and `$addToSet` keep), never the documents themselves; a
//! budget stops a grouping that would outgrow it, as MongoDB's stage limit does.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::expr::Expr;
use super::{approximate_size, Budget, SortKey};
use crate::order::{compare, equal};
use crate::{Document, Error, Result, Value, ID_FIELD};

/// A parsed `$group` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    key: Expr,
    fields: Vec<(String, Accumulator, Expr)>,
}

/// What a `$group` field computes over its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accumulator {
    /// `$sum`: numbers added (others ignored); `{"$sum": 1}` counts.
    Sum,
    /// `$avg`: the mean of the numbers, null if none.
    Avg,
    /// `$min`: the smallest value in MongoDB's order, null and missing ignored.
    Min,
    /// `$max`: the largest.
    Max,
    /// `$count`: the number of documents.
    Count,
    /// `$push`: every value, in order.
    Push,
    /// `$addToSet`: every distinct value.
    AddToSet,
    /// `$first`: the first document's value.
    First,
    /// `$last`: the last document's value.
    Last,
}

enum State {
    Sum(Value),
    Avg(f64, u64),
    Extreme(Option<Value>),
    Count(i64),
    Values(Vec<Value>),
    Edge(Option<Value>, bool),
}

impl Group {
    /// Parses `{"_id": <expr>, "name": {"$acc": <expr>}, …}`.
    pub fn parse(json: &Json, at: &str) -> Result<Group> {
        let Json::Object(map) = json else {
            return Err(Error::query(
                "pipeline",
                at,
                "`$group` takes a document with `_id`",
            ));
        };
        let key = map.get(ID_FIELD).ok_or_else(|| {
            Error::query(
                "pipeline",
                at,
                "`$group` needs an `_id` (null for a single group)",
            )
        })?;
        let key = Expr::parse(key, &format!("{at}._id"))?;
        let mut fields = Vec::new();
        for (name, spec) in map.iter().filter(|(k, _)| *k != ID_FIELD) {
            let here = format!("{at}.{name}");
            if name.starts_with('$') || name.contains('.') {
                return Err(Error::query(
                    "pipeline",
                    &here,
                    "a `$group` field is a plain name",
                ));
            }
            let (acc_name, arg) = match spec {
                Json::Object(m) if m.len() == 1 => m.iter().next().expect("one entry"),
                _ => {
                    return Err(Error::query(
                        "pipeline",
                        &here,
                        format!("expects one accumulator such as {{\"$sum\": 1}}, found {spec}"),
                    ))
                }
            };
            let acc = match acc_name.as_str() {
                "$sum" => Accumulator::Sum,
                "$avg" => Accumulator::Avg,
                "$min" => Accumulator::Min,
                "$max" => Accumulator::Max,
                "$count" => Accumulator::Count,
                "$push" => Accumulator::Push,
                "$addToSet" => Accumulator::AddToSet,
                "$first" => Accumulator::First,
                "$last" => Accumulator::Last,
                other => {
                    return Err(Error::UnsupportedOperator {
                        operator: other.to_string(),
                        path: here,
                        backend: None,
                    })
                }
            };
            if acc == Accumulator::Count && !matches!(arg, Json::Object(m) if m.is_empty()) {
                return Err(Error::query(
                    "pipeline",
                    format!("{here}.$count"),
                    "`$count` takes an empty document: {}",
                ));
            }
            let expr = Expr::parse(arg, &format!("{here}.{acc_name}"))?;
            fields.push((name.clone(), acc, expr));
        }
        Ok(Group { key, fields })
    }

    /// Folds every input document into its group; the groups come out in order of first
    /// appearance.
    pub(crate) fn run(
        &self,
        input: impl Iterator<Item = Result<Document>>,
        at: &str,
        budget: &mut Budget,
    ) -> Result<Vec<Document>> {
        let mut index: BTreeMap<SortKey, usize> = BTreeMap::new();
        let mut groups: Vec<(Value, Vec<State>)> = Vec::new();
        for doc in input {
            let doc = doc?;
            // A missing key groups with null, as in MongoDB.
            let key = self.key.eval(&doc, at)?.unwrap_or(Value::Null);
            let slot = match index.get(&SortKey(key.clone())) {
                Some(&i) => i,
                None => {
                    budget.spend(approximate_size(&key) + 64, at)?;
                    let states = self.fields.iter().map(|(_, acc, _)| acc.start()).collect();
                    groups.push((key.clone(), states));
                    index.insert(SortKey(key), groups.len() - 1);
                    groups.len() - 1
                }
            };
            for ((_, acc, expr), state) in self.fields.iter().zip(groups[slot].1.iter_mut()) {
                let v = expr.eval(&doc, at)?;
                acc.fold(state, v, budget, at)?;
            }
        }
        Ok(groups
            .into_iter()
            .map(|(key, states)| {
                let mut out = Document::new().with(ID_FIELD, key);
                for ((name, _, _), state) in self.fields.iter().zip(states) {
                    out.insert(name.clone(), finish(state));
                }
                out
            })
            .collect())
    }
}

impl Accumulator {
    fn start(self) -> State {
        match self {
            Accumulator::Sum => State::Sum(Value::Int(0)),
            Accumulator::Avg => State::Avg(0.0, 0),
            Accumulator::Min | Accumulator::Max => State::Extreme(None),
            Accumulator::Count => State::Count(0),
            Accumulator::Push | Accumulator::AddToSet => State::Values(Vec::new()),
            Accumulator::First | Accumulator::Last => State::Edge(None, false),
        }
    }

    fn fold(
        self,
        state: &mut State,
        v: Option<Value>,
        budget: &mut Budget,
        at: &str,
    ) -> Result<()> {
        match state {
            State::Sum(total) => {
                if let Some(n @ (Value::Int(_) | Value::Float(_))) = v {
                    *total = add(total, &n);
                }
            }
            State::Avg(total, n) => {
                if let Some(x) = v
                    .as_ref()
                    .filter(|x| matches!(x, Value::Int(_) | Value::Float(_)))
                {
                    *total += x.as_f64().unwrap_or(0.0);
                    *n += 1;
                }
            }
            State::Extreme(best) => {
                let Some(v) = v.filter(|v| !matches!(v, Value::Null)) else {
                    return Ok(());
                };
                let better = match best {
                    None => true,
                    Some(b) => {
                        let o = compare(&v, b);
                        if self == Accumulator::Min {
                            o.is_lt()
                        } else {
                            o.is_gt()
                        }
                    }
                };
                if better {
                    *best = Some(v);
                }
            }
            State::Count(n) => *n += 1,
            State::Values(items) => {
                let Some(v) = v else { return Ok(()) };
                if self == Accumulator::AddToSet && items.iter().any(|x| equal(x, &v)) {
                    return Ok(());
                }
                budget.spend(approximate_size(&v), at)?;
                items.push(v);
            }
            State::Edge(value, seen) => {
                if self == Accumulator::Last || !*seen {
                    *value = v;
                    *seen = true;
                }
            }
        }
        Ok(())
    }
}

/// Integers stay integers while the sum fits.
fn add(a: &Value, b: &Value) -> Value {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        if let Some(s) = x.checked_add(*y) {
            return Value::Int(s);
        }
    }
    Value::Float(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0))
}

fn finish(state: State) -> Value {
    match state {
        State::Sum(v) => v,
        State::Avg(_, 0) => Value::Null,
        State::Avg(total, n) => Value::Float(total / n as f64),
        State::Extreme(v) => v.unwrap_or(Value::Null),
        State::Count(n) => Value::Int(n),
        State::Values(items) => Value::Array(items),
        State::Edge(v, _) => v.unwrap_or(Value::Null),
    }
}
