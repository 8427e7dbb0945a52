//! `$regex` on PostgreSQL: the pattern vigil validated (the `regex` crate's syntax, with its
//! options inline and `\d \w \s \b` made ASCII) translated to a PostgreSQL advanced regular
//! expression that matches the same strings.
//!
//! The translation works from the `regex` crate's own compiled form (its HIR), where options
//! are already applied: case-insensitivity is spelled out as character classes, `.` as the
//! class it stands for, so PostgreSQL's own option rules never come into play. Every
//! character is written as an escape or a plain alphanumeric, classes as ranges, groups as
//! non-capturing. The match is only ever asked whether it exists, so greediness does not
//! matter and every repetition is written greedy. The embedded option `w` makes `^` and `$`
//! line anchors (what the `regex` crate's multi-line mode means) while `\A` and `\Z` anchor the
//! text. What PostgreSQL cannot say is refused with an error naming it: repetition counts
//! above 255 and CRLF-aware anchors.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// The PostgreSQL pattern for a validated `engine` pattern, or why there is none.
pub(crate) fn translate(engine: &str) -> Result<String, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(100)
        .build()
        .parse(engine)
        .map_err(|e| e.to_string())?;
    let mut out = String::from("(?w)");
    write(&hir, &mut out)?;
    Ok(out)
}

fn write(hir: &Hir, out: &mut String) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(lit) => {
            let text = std::str::from_utf8(&lit.0).map_err(|_| "a literal that is not UTF-8")?;
            text.chars().for_each(|c| char_escape(c, out));
        }
        HirKind::Class(Class::Unicode(class)) => {
            out.push('[');
            let mut any = false;
            for r in class.ranges() {
                // Text in PostgreSQL never holds U+0000, so a class may start above it.
                let start = r.start().max('\u{1}');
                if start > r.end() {
                    continue;
                }
                any = true;
                char_escape(start, out);
                if r.end() > start {
                    out.push('-');
                    char_escape(r.end(), out);
                }
            }
            if !any {
                // The empty class matches nothing: U+0000 never occurs.
                out.push_str(r"\u0000");
            }
            out.push(']');
        }
        HirKind::Class(Class::Bytes(_)) => {
            return Err("a byte-oriented class ((?-u) outside \\b)".into())
        }
        HirKind::Look(look) => out.push_str(match look {
            Look::Start => r"\A",
            Look::End => r"\Z",
            Look::StartLF => "^",
            Look::EndLF => "$",
            Look::WordAscii | Look::WordUnicode => r"\y",
            Look::WordAsciiNegate | Look::WordUnicodeNegate => r"\Y",
            Look::WordStartAscii | Look::WordStartUnicode => r"\m",
            Look::WordEndAscii | Look::WordEndUnicode => r"\M",
            other => return Err(format!("the assertion {other:?}")),
        }),
        HirKind::Repetition(rep) => {
            const MAX: u32 = 255;
            if rep.min > MAX || rep.max.is_some_and(|m| m > MAX) {
                return Err(format!("a repetition count above {MAX}"));
            }
            out.push_str("(?:");
            write(&rep.sub, out)?;
            out.push(')');
            match (rep.min, rep.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (n, None) => out.push_str(&format!("{{{n},}}")),
                (n, Some(m)) if n == m => out.push_str(&format!("{{{n}}}")),
                (n, Some(m)) => out.push_str(&format!("{{{n},{m}}}")),
            }
        }
        HirKind::Capture(cap) => {
            out.push_str("(?:");
            write(&cap.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(parts) => {
            for p in parts {
                write(p, out)?;
            }
        }
        HirKind::Alternation(parts) => {
            out.push_str("(?:");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write(p, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// A character as PostgreSQL reads it anywhere, in brackets or out: ASCII letters and digits
/// as themselves, everything else as a `\u` or `\U` escape.
fn char_escape(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if (c as u32) <= 0xFFFF {
        out.push_str(&format!("\\u{:04x}", c as u32));
    } else {
        out.push_str(&format!("\\U{:08x}", c as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_escaped_advanced_expressions() {
        assert_eq!(
            translate("^a.c$").unwrap(),
            r"(?w)\Aa[\u0001-\u0009\u000b-\U0010ffff]c\Z"
        );
        assert_eq!(translate("(?i)x").unwrap(), "(?w)[Xx]");
        assert_eq!(
            translate("(a|bc)+?d{2,3}").unwrap(),
            "(?w)(?:(?:(?:a|bc)))+(?:d){2,3}"
        );
        assert!(translate("a{300}").unwrap_err().contains("above 255"));
    }
}
