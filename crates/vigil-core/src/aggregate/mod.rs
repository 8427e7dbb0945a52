//! `aggregate`: MongoDB's pipelines of stages (`$match`, `$group`, `$sort`, `$skip`, `$limit`,
//! `$project`, `$addFields`/`$set`, `$unwind`, `$count`).
//!
//! A pipeline runs in two parts. Its head — the `$match`es, one `$sort`, `$skip` and `$limit`
//! before anything reshapes the documents — becomes a [`FindQuery`] that the backend runs in
//! the database, with its indexes ([`Pipeline::split`]); a `$count` right after it becomes a
//! count. The rest is streamed through the process a document at a time ([`run`]). Only
//! `$group` and a `$sort` after it hold state: one entry per group, or the documents being
//! sorted (a `$sort` followed by `$limit` keeps only that many). Both are bounded by a
//! budget of [`MEMORY_LIMIT`] bytes, as MongoDB bounds its stages; past it the pipeline stops
//! with an error saying how to stay within it.

pub mod expr;
mod group;
mod project;

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::order::compare;
use crate::query::parse_sort;
use crate::{Direction, Document, Error, FieldPath, Filter, FindQuery, Result, Value};
pub use expr::Expr;
pub use group::{Accumulator, Group};
pub use project::Project;

/// How many bytes a pipeline's in-process stages may hold, together (as MongoDB's 100 MB per
/// stage).
pub const MEMORY_LIMIT: usize = 100 * 1024 * 1024;

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `{"$match": filter}`
    Match(Filter),
    /// `{"$group": {...}}`
    Group(Group),
    /// `{"$sort": {...}}`
    Sort(Vec<(FieldPath, Direction)>),
    /// `{"$skip": n}`
    Skip(u64),
    /// `{"$limit": n}`, n > 0
    Limit(u64),
    /// `{"$project": {...}}`, or `$addFields` / `$set`.
    Project(Project),
    /// `{"$unwind": "$path"}` or with options.
    Unwind(Unwind),
    /// `{"$count": "name"}`
    Count(String),
}

/// A parsed `$unwind`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwind {
    path: FieldPath,
    index_field: Option<String>,
    preserve_empty: bool,
}

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

/// The part of a pipeline the database runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// Documents, filtered, sorted, skipped and limited in the database.
    Find(FindQuery),
    /// The number of documents a `$count` right after the find would count, with the name it
    /// gives the count; skip and limit applied to the count.
    Count {
        /// The query whose matches are counted (its sort is irrelevant).
        query: FindQuery,
        /// The field that holds the count.
        name: String,
    },
}

fn invalid(at: &str, reason: impl Into<String>) -> Error {
    Error::query("pipeline", at, reason)
}

fn count_of(v: &Json, stage: &str, at: &str, least: u64) -> Result<u64> {
    match v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
            .map(|f| f as u64)
    }) {
        Some(n) if n >= least => Ok(n),
        _ => Err(invalid(
            at,
            format!(
                "`{stage}` takes {} integer, found {v}",
                if least > 0 {
                    "a positive"
                } else {
                    "a non-negative"
                }
            ),
        )),
    }
}

impl Stage {
    /// The stage's operator, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Match(_) => "$match",
            Stage::Group(_) => "$group",
            Stage::Sort(_) => "$sort",
            Stage::Skip(_) => "$skip",
            Stage::Limit(_) => "$limit",
            Stage::Project(_) => "$project",
            Stage::Unwind(_) => "$unwind",
            Stage::Count(_) => "$count",
        }
    }

    fn parse(json: &Json, at: &str) -> Result<Stage> {
        let Json::Object(map) = json else {
            return Err(invalid(
                at,
                format!("a stage is a document such as {{\"$match\": {{}}}}, found {json}"),
            ));
        };
        if map.len() != 1 {
            return Err(invalid(at, "a stage holds exactly one operator"));
        }
        let (name, arg) = map.iter().next().expect("one entry");
        let here = format!("{at}.{name}");
        Ok(match name.as_str() {
            "$match" => Stage::Match(Filter::parse(arg)?),
            "$group" => Stage::Group(Group::parse(arg, &here)?),
            "$sort" => {
                let sort = parse_sort(arg)?;
                if sort.is_empty() {
                    return Err(invalid(&here, "`$sort` needs at least one field"));
                }
                Stage::Sort(sort)
            }
            "$skip" => Stage::Skip(count_of(arg, name, &here, 0)?),
            "$limit" => Stage::Limit(count_of(arg, name, &here, 1)?),
            "$project" => Stage::Project(Project::parse(arg, &here)?),
            "$addFields" | "$set" => Stage::Project(Project::parse_add_fields(arg, &here)?),
            "$unwind" => Stage::Unwind(Unwind::parse(arg, &here)?),
            "$count" => match arg {
                Json::String(s) if !s.is_empty() && !s.starts_with('$') && !s.contains('.') => {
                    Stage::Count(s.clone())
                }
                _ => {
                    return Err(invalid(
                        &here,
                        format!(
                            "`$count` takes a field name (not empty, no `$` or `.`), found {arg}"
                        ),
                    ))
                }
            },
            other => {
                return Err(Error::UnsupportedOperator {
                    operator: other.to_string(),
                    path: here,
                    backend: None,
                })
            }
        })
    }
}

impl Unwind {
    fn parse(arg: &Json, at: &str) -> Result<Unwind> {
        let path_of = |v: &Json| -> Result<FieldPath> {
            match v {
                Json::String(s) if s.starts_with('$') && !s.starts_with("$$") => {
                    FieldPath::parse(&s[1..])
                }
                _ => Err(invalid(
                    at,
                    format!("`$unwind` takes a path such as \"$tags\", found {v}"),
                )),
            }
        };
        match arg {
            Json::Object(m) => {
                let path = path_of(m.get("path").unwrap_or(&Json::Null))?;
                let mut out = Unwind {
                    path,
                    index_field: None,
                    preserve_empty: false,
                };
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("path", _) => {}
                        ("includeArrayIndex", Json::String(s)) if !s.starts_with('$') && !s.is_empty() => {
                            crate::names::validate_field(s)?;
                            out.index_field = Some(s.clone())
                        }
                        ("preserveNullAndEmptyArrays", Json::Bool(b)) => out.preserve_empty = *b,
                        _ => {
                            return Err(invalid(
                                &format!("{at}.{k}"),
                                format!("`$unwind` knows path, includeArrayIndex (a field name) and preserveNullAndEmptyArrays (a boolean); found {k}: {v}"),
                            ))
                        }
                    }
                }
                Ok(out)
            }
            other => Ok(Unwind {
                path: path_of(other)?,
                index_field: None,
                preserve_empty: false,
            }),
        }
    }

    /// The documents one input becomes.
    fn apply(&self, mut doc: Document) -> Vec<Document> {
        let segments = self.path.segments();
        let value = crate::matching::lookup_document(&doc, segments).cloned();
        let with_index = |mut d: Document, i: Option<usize>| {
            if let Some(f) = &self.index_field {
                d.insert(f.clone(), i.map_or(Value::Null, |i| Value::Int(i as i64)));
            }
            d
        };
        match value {
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut d = doc.clone();
                    set_path(&mut d, segments, item);
                    with_index(d, Some(i))
                })
                .collect(),
            Some(Value::Array(_)) | Some(Value::Null) | None => {
                if self.preserve_empty {
                    // MongoDB keeps a null but drops an empty array's field.
                    if matches!(value, Some(Value::Array(_))) {
                        edit_path(&mut doc, segments, None);
                    }
                    vec![with_index(doc, None)]
                } else {
                    Vec::new()
                }
            }
            // A value that is not an array unwinds to itself, as in MongoDB.
            Some(_) => vec![with_index(doc, None)],
        }
    }
}

/// Sets the value at a path of nested documents that exists (an `$unwind` target).
fn set_path(doc: &mut Document, segments: &[String], value: Value) {
    edit_path(doc, segments, Some(value));
}

/// Sets (or, given `None`, removes) the value at a path of nested documents that exists.
fn edit_path(doc: &mut Document, segments: &[String], value: Option<Value>) {
    let (last, parents) = segments.split_last().expect("a path has a segment");
    let mut here = doc;
    for s in parents {
        match here.get_mut(s) {
            Some(Value::Object(d)) => here = d,
            _ => return,
        }
    }
    match value {
        Some(v) => here.insert(last.clone(), v),
        None => here.remove(last),
    };
}

impl Pipeline {
    /// Parses a pipeline: a JSON array of stages.
    pub fn parse(json: &Json) -> Result<Pipeline> {
        crate::depth::check_json(json, "the pipeline")?;
        let Json::Array(items) = json else {
            return Err(invalid(
                "(root)",
                format!("a pipeline is an array of stages, found {json}"),
            ));
        };
        let stages = items
            .iter()
            .enumerate()
            .map(|(i, s)| Stage::parse(s, &i.to_string()))
            .collect::<Result<_>>()?;
        Ok(Pipeline { stages })
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The head the database runs and the stages (with their positions in the pipeline)
    /// left for the process. `$match`es before the first reshaping stage are joined (they
    /// commute with `$sort`); `$skip` and `$limit` fold into the find's skip and limit.
    pub fn split(&self) -> (Head, Vec<(usize, Stage)>) {
        let mut filters = Vec::new();
        let mut query = FindQuery::new(Filter::all());
        let mut i = 0;
        while let Some(stage) = self.stages.get(i) {
            let windowed = query.skip > 0 || query.limit.is_some();
            match stage {
                Stage::Match(f) if !windowed => filters.push(f.clone()),
                Stage::Sort(s) if !windowed && query.sort.is_empty() => query.sort = s.clone(),
                Stage::Skip(n) => {
                    query.skip = query.skip.saturating_add(*n);
                    query.limit = query.limit.map(|l| l.saturating_sub(*n));
                }
                Stage::Limit(n) => query.limit = Some(query.limit.map_or(*n, |l| l.min(*n))),
                _ => break,
            }
            i += 1;
        }
        query.filter = match filters.len() {
            0 => Filter::all(),
            1 => filters.pop().expect("one filter"),
            _ => Filter::And(filters),
        };
        let rest: Vec<(usize, Stage)> = self.stages[i..]
            .iter()
            .cloned()
            .enumerate()
            .map(|(k, s)| (i + k, s))
            .collect();
        if let Some((_, Stage::Count(name))) = rest.first() {
            let name = name.clone();
            return (Head::Count { query, name }, rest[1..].to_vec());
        }
        (Head::Find(query), rest)
    }
}

/// The result of a [`Head::Count`], as the document `$count` produces (none when zero, as
/// in MongoDB).
pub fn count_document(name: &str, matched: u64, query: &FindQuery) -> Option<Document> {
    let mut n = matched.saturating_sub(query.skip);
    if let Some(l) = query.limit {
        n = n.min(l);
    }
    (n > 0).then(|| Document::new().with(name, Value::Int(n as i64)))
}

/// A stream of documents, as a backend's find gives them.
pub type Documents = Box<dyn Iterator<Item = Result<Document>> + Send>;

/// Runs `stages` (as [`Pipeline::split`] leaves them) over `input`, lazily.
pub fn run(input: Documents, stages: Vec<(usize, Stage)>) -> Documents {
    let mut stream = input;
    let mut stages = stages.into_iter().peekable();
    while let Some((i, stage)) = stages.next() {
        let at = format!("{i}.{}", stage.name());
        stream = match stage {
            Stage::Match(f) => Box::new(stream.filter(move |d| match d {
                Ok(doc) => f.matches(doc),
                Err(_) => true,
            })),
            Stage::Skip(n) => Box::new(skip_ok(stream, n)),
            Stage::Limit(n) => Box::new(take_ok(stream, n)),
            Stage::Project(p) => Box::new(stream.map(move |d| d.and_then(|d| p.apply(d, &at)))),
            Stage::Unwind(u) => Box::new(stream.flat_map(move |d| -> Vec<Result<Document>> {
                match d {
                    Ok(doc) => u.apply(doc).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                }
            })),
            Stage::Group(g) => deferred(move || {
                let mut budget = Budget::new();
                g.run(stream, &at, &mut budget)
            }),
            Stage::Sort(keys) => {
                // `$sort` then `$limit`: only that many are kept while sorting.
                let keep = match stages.peek() {
                    Some((_, Stage::Limit(n))) => Some(*n as usize),
                    _ => None,
                };
                deferred(move || sort(stream, &keys, keep, &at))
            }
            Stage::Count(name) => deferred(move || {
                let mut n = 0i64;
                for d in stream {
                    d?;
                    n += 1;
                }
                Ok(if n > 0 {
                    vec![Document::new().with(name, Value::Int(n))]
                } else {
                    Vec::new()
                })
            }),
        };
    }
    stream
}

/// `skip` over the documents only: an error still comes through.
fn skip_ok(stream: Documents, n: u64) -> impl Iterator<Item = Result<Document>> + Send {
    let mut left = n;
    stream.filter(move |d| {
        if d.is_ok() && left > 0 {
            left -= 1;
            return false;
        }
        true
    })
}

fn take_ok(stream: Documents, n: u64) -> impl Iterator<Item = Result<Document>> + Send {
    let mut left = n;
    stream.take_while(move |d| {
        if left == 0 {
            return false;
        }
        if d.is_ok() {
            left -= 1;
        }
        true
    })
}

/// A stage that must see all of its input first: run when the first result is asked for.
fn deferred<F>(work: F) -> Documents
where
    F: FnOnce() -> Result<Vec<Document>> + Send + 'static,
{
    let mut work = Some(work);
    let mut out: Option<std::vec::IntoIter<Document>> = None;
    Box::new(std::iter::from_fn(move || {
        if let Some(w) = work.take() {
            match w() {
                Ok(docs) => out = Some(docs.into_iter()),
                Err(e) => return Some(Err(e)),
            }
        }
        out.as_mut()?.next().map(Ok)
    }))
}

/// A [`Value`] ordered by MongoDB's rules, for maps and sorting.
#[derive(Debug, Clone)]
pub(crate) struct SortKey(pub(crate) Value);

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SortKey {}
impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

/// The bytes in-process stages hold, checked against [`MEMORY_LIMIT`].
pub(crate) struct Budget {
    used: usize,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Budget { used: 0 }
    }

    pub(crate) fn spend(&mut self, bytes: usize, at: &str) -> Result<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > MEMORY_LIMIT {
            return Err(invalid(
                at,
                format!(
                    "the stage would hold more than {} MB in memory; filter first with $match, \
                     sort in the database by putting $sort before stages that reshape documents, \
                     or follow $sort with $limit",
                    MEMORY_LIMIT / (1024 * 1024)
                ),
            ));
        }
        Ok(())
    }
}

/// Roughly the bytes a value holds in memory.
pub(crate) fn approximate_size(v: &Value) -> usize {
    32 + match v {
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Encoded(e) => e.bytes().len() + e.codec().len(),
        Value::Array(items) => items.iter().map(approximate_size).sum(),
        Value::Object(d) => d.iter().map(|(k, v)| k.len() + approximate_size(v)).sum(),
        _ => 0,
    }
}

/// The value a document sorts by on one key, as the SQL backends sort: the values the path
/// reaches (through arrays of documents, an array's elements), the smallest ascending and the
/// largest descending; an empty array before null; nothing reached is null.
/// A document's sort key: per key, its rank (0 below null, 1 null or missing, 2 a value) and
/// the value it sorts by.
type DocKey = Vec<(u8, Option<Value>)>;

fn sort_value(doc: &Document, path: &FieldPath, dir: Direction) -> (u8, Option<Value>) {
    let segments = path.segments();
    let mut values = Vec::new();
    crate::matching::reached(doc, segments, &mut values);
    // An empty array reached (`None`) ranks below null: the pick ascending, and descending
    // when nothing else was reached.
    let empty = values.iter().any(Option::is_none);
    let values: Vec<&Value> = values.into_iter().flatten().collect();
    if empty && (dir == Direction::Ascending || values.is_empty()) {
        return (0, None);
    }
    let pick = values.into_iter().reduce(|a, b| {
        let o = compare(b, a);
        let better = if dir == Direction::Ascending {
            o.is_lt()
        } else {
            o.is_gt()
        };
        if better {
            b
        } else {
            a
        }
    });
    match pick {
        None | Some(Value::Null) => (1, None),
        Some(v) => (2, Some(v.clone())),
    }
}

fn compare_docs(
    a: &[(u8, Option<Value>)],
    b: &[(u8, Option<Value>)],
    keys: &[(FieldPath, Direction)],
) -> Ordering {
    for ((x, y), (_, dir)) in a.iter().zip(b).zip(keys) {
        let o = x.0.cmp(&y.0).then_with(|| match (&x.1, &y.1) {
            (Some(p), Some(q)) => compare(p, q),
            _ => Ordering::Equal,
        });
        let o = if *dir == Direction::Descending {
            o.reverse()
        } else {
            o
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Sorts in memory within the budget (stable: ties keep their order); with `keep`, only the
/// first `keep` documents are held at any time.
fn sort(
    input: Documents,
    keys: &[(FieldPath, Direction)],
    keep: Option<usize>,
    at: &str,
) -> Result<Vec<Document>> {
    let mut budget = Budget::new();
    let mut rows: Vec<(DocKey, Document)> = Vec::new();
    let by = |a: &(DocKey, Document), b: &(DocKey, Document)| compare_docs(&a.0, &b.0, keys);
    for doc in input {
        let doc = doc?;
        let key = keys.iter().map(|(p, d)| sort_value(&doc, p, *d)).collect();
        if keep.is_none() {
            budget.spend(approximate_size(&Value::Object(doc.clone())), at)?;
        }
        rows.push((key, doc));
        if let Some(k) = keep {
            // Trim to the best `k` now and then, so memory stays about 2k documents.
            if rows.len() >= 2 * k.max(512) {
                rows.sort_by(by);
                rows.truncate(k);
            }
        }
    }
    rows.sort_by(by);
    if let Some(k) = keep {
        rows.truncate(k);
    }
    Ok(rows.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests;
