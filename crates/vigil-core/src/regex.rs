//! `$regex`: MongoDB's regular expressions, run by the `regex` crate.
//!
//! MongoDB runs PCRE in UTF-8 mode; vigil runs the `regex` crate everywhere a pattern is judged
//! in the process (SQLite's `vigil_regex` function, an aggregation's `$match`), and a faithful
//! translation on PostgreSQL. What agrees with MongoDB: the syntax people use (classes, ranges,
//! alternation, groups, repetition, anchors, `\d \w \s \b` as ASCII, as PCRE has them), the
//! options `i`, `m`, `s` and `x`, and matching only strings (and elements of arrays of them).
//! What differs, refused with an error rather than answered differently: look-around,
//! backreferences and possessive or atomic groups (the `regex` crate has none: it guarantees
//! linear time). One difference is not refused: without `m`, `$` matches only at the very end,
//! where PCRE also matches before a final newline.

use crate::{Error, Result};
use regex_syntax::ast::{self, Ast, ClassPerlKind, ClassSet, ClassSetItem};

/// A validated `$regex` with its `$options`.
#[derive(Debug, Clone)]
pub struct Regex {
    pattern: String,
    options: String,
    engine: String,
    compiled: regex::Regex,
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.options == other.options
    }
}

/// Compiled patterns are bounded: a pattern whose program would exceed this is refused.
const SIZE_LIMIT: usize = 1 << 20;

impl Regex {
    /// Validates `pattern` under `options` (a string of `i`, `m`, `s`, `x`); `at` names the
    /// place in the query for errors.
    pub fn new(pattern: &str, options: &str, at: &str) -> Result<Regex> {
        let mut flags = String::new();
        for c in options.chars() {
            if !"imsx".contains(c) {
                return Err(Error::query(
                    "filter",
                    format!("{at}.$options"),
                    format!("unknown regex option `{c}`: vigil knows i, m, s and x"),
                ));
            }
            if !flags.contains(c) {
                flags.push(c);
            }
        }
        let ast = parse_ast(pattern, flags.contains('x')).map_err(|e| {
            Error::query(
                "filter",
                at,
                format!("the pattern {pattern:?} is not a regular expression vigil runs: {e}"),
            )
        })?;
        let body = ascii_classes(pattern, &ast);
        let engine = if flags.is_empty() {
            body
        } else {
            format!("(?{flags}){body}")
        };
        let compiled = regex::RegexBuilder::new(&engine)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                Error::query(
                    "filter",
                    at,
                    format!("the pattern {pattern:?} cannot be compiled: {e}"),
                )
            })?;
        Ok(Regex {
            pattern: pattern.to_string(),
            options: flags,
            engine,
            compiled,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The options, each once, in the order given.
    pub fn options(&self) -> &str {
        &self.options
    }

    /// The pattern in the `regex` crate's syntax with the options inline, as SQLite's
    /// `vigil_regex(pattern, value)` takes it.
    pub fn engine_pattern(&self) -> &str {
        &self.engine
    }

    /// The pattern's syntax tree (with `x`, whitespace and comments are already gone), for a
    /// backend that translates it.
    pub fn ast(&self) -> Ast {
        parse_ast(&self.pattern, self.options.contains('x')).expect("validated in Regex::new")
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }
}

fn parse_ast(pattern: &str, extended: bool) -> std::result::Result<Ast, String> {
    let refused = [
        ("(?=", "look-ahead"),
        ("(?!", "negative look-ahead"),
        ("(?<=", "look-behind"),
        ("(?<!", "negative look-behind"),
        ("(?>", "atomic groups"),
    ];
    for (syntax, what) in refused {
        if pattern.contains(syntax) {
            return Err(format!("{what} (`{syntax}`) is not supported"));
        }
    }
    ast::parse::ParserBuilder::new()
        .ignore_whitespace(extended)
        .nest_limit(100)
        .build()
        .parse(pattern)
        .map_err(|e| match e.kind() {
            ast::ErrorKind::UnsupportedBackreference => {
                "backreferences are not supported".to_string()
            }
            ast::ErrorKind::UnsupportedLookAround => "look-around is not supported".to_string(),
            kind => kind.to_string(),
        })
}

/// The pattern with `\d \w \s` and `\b \B` made ASCII, as PCRE has them without UCP; the
/// `regex` crate's own are Unicode.
fn ascii_classes(pattern: &str, ast: &Ast) -> String {
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    collect(ast, &mut edits);
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(pattern.len() + 16 * edits.len());
    let mut at = 0;
    for (start, end, text) in edits {
        out.push_str(&pattern[at..start]);
        out.push_str(&text);
        at = end;
    }
    out.push_str(&pattern[at..]);
    out
}

fn perl_class(kind: &ClassPerlKind, negated: bool) -> String {
    let name = match kind {
        ClassPerlKind::Digit => "digit",
        ClassPerlKind::Space => "space",
        ClassPerlKind::Word => "word",
    };
    format!("[:{}{name}:]", if negated { "^" } else { "" })
}

fn collect(ast: &Ast, edits: &mut Vec<(usize, usize, String)>) {
    match ast {
        Ast::ClassPerl(c) => edits.push((
            c.span.start.offset,
            c.span.end.offset,
            format!("[{}]", perl_class(&c.kind, c.negated)),
        )),
        Ast::Assertion(a) => {
            let text = match a.kind {
                ast::AssertionKind::WordBoundary => r"(?-u:\b)",
                ast::AssertionKind::NotWordBoundary => r"(?-u:\B)",
                _ => return,
            };
            edits.push((a.span.start.offset, a.span.end.offset, text.to_string()));
        }
        Ast::ClassBracketed(b) => collect_set(&b.kind, edits),
        Ast::Repetition(r) => collect(&r.ast, edits),
        Ast::Group(g) => collect(&g.ast, edits),
        Ast::Alternation(a) => a.asts.iter().for_each(|x| collect(x, edits)),
        Ast::Concat(c) => c.asts.iter().for_each(|x| collect(x, edits)),
        _ => {}
    }
}

fn collect_set(set: &ClassSet, edits: &mut Vec<(usize, usize, String)>) {
    match set {
        ClassSet::Item(item) => collect_item(item, edits),
        ClassSet::BinaryOp(op) => {
            collect_set(&op.lhs, edits);
            collect_set(&op.rhs, edits);
        }
    }
}

fn collect_item(item: &ClassSetItem, edits: &mut Vec<(usize, usize, String)>) {
    match item {
        ClassSetItem::Perl(c) => edits.push((
            c.span.start.offset,
            c.span.end.offset,
            perl_class(&c.kind, c.negated),
        )),
        ClassSetItem::Bracketed(b) => collect_set(&b.kind, edits),
        ClassSetItem::Union(u) => u.items.iter().for_each(|i| collect_item(i, edits)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, options: &str, text: &str) -> bool {
        Regex::new(pattern, options, "x.$regex")
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn options_and_ascii_classes_follow_pcre() {
        assert!(m("^ab", "", "abc"));
        assert!(!m("^AB", "", "abc"));
        assert!(m("^AB", "i", "abc"));
        assert!(!m("^b", "", "a\nb"));
        assert!(m("^b", "m", "a\nb"));
        assert!(!m("a.b", "", "a\nb"));
        assert!(m("a.b", "s", "a\nb"));
        assert!(m("a b # comment", "x", "ab"));
        // ASCII classes, as PCRE without UCP: an Arabic-Indic digit is not `\d`.
        assert!(m(r"^\d+$", "", "123"));
        assert!(!m(r"^\d$", "", "\u{0663}"));
        assert!(!m(r"^[\w]$", "", "é"));
        assert!(m(r"^\W$", "", "é"));
        assert!(m(r"\bfoo\b", "", "a foo b"));
        // A character is one code point, as in UTF-8 mode.
        assert!(m("^.$", "", "é"));
    }

    #[test]
    fn what_the_engine_lacks_is_refused_by_name() {
        for (p, what) in [
            ("a(?=b)", "look-ahead"),
            ("(?<!a)b", "look-behind"),
            (r"(a)\1", "backreferences"),
            ("(a", "unclosed"),
        ] {
            let e = Regex::new(p, "", "name.$regex").unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("name.$regex"), "{p}: {e}");
        }
        let e = Regex::new("a", "g", "name.$regex").unwrap_err().to_string();
        assert!(e.contains("unknown regex option `g`"), "{e}");
    }
}
