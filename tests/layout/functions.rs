//! Functions and their lengths (the rules of tools/long_functions.py), from the source
//! without comments and strings.

use std::path::Path;

use super::{files, read, MAX_FN_LINES};

/// Whether `c` may be part of an identifier.
pub fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The line without comments and string contents (so braces in them do not count); whether
/// a block comment is still open after it.
pub fn code_only(line: &str, mut in_block: bool) -> (String, bool) {
    let c: Vec<char> = line.chars().collect();
    let at = |i: usize, s: &str| s.chars().enumerate().all(|(k, x)| c.get(i + k) == Some(&x));
    let (mut out, mut i) = (String::new(), 0);
    while i < c.len() {
        if in_block {
            match (i..c.len()).find(|&j| at(j, "*/")) {
                Some(j) => (i, in_block) = (j + 2, false),
                None => return (out, true),
            }
        } else if at(i, "//") {
            break;
        } else if at(i, "/*") {
            (in_block, i) = (true, i + 2);
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') && c.get(i + 3) == Some(&'\'') {
            i += 4; // '\n'
        } else if c[i] == '\''
            && c.get(i + 1).is_some_and(|&x| x != '\\' && x != '\'')
            && c.get(i + 2) == Some(&'\'')
        {
            i += 3; // 'x'
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    (out, in_block)
}

/// `s` after the keyword `w` and the white space that must follow it.
pub fn word<'a>(s: &'a str, w: &str) -> Option<&'a str> {
    s.strip_prefix(w)
        .filter(|r| r.starts_with(char::is_whitespace))
        .map(str::trim_start)
}

/// The name of the function a cleaned line starts (`pub(crate) const unsafe fn name`...).
pub fn fn_name(line: &str) -> Option<String> {
    let mut s = line.trim_start();
    if let Some(r) = s.strip_prefix("pub") {
        let r = match r.strip_prefix('(') {
            Some(r) => r.find(')').map_or(r, |i| &r[i + 1..]),
            None => r,
        };
        if r.starts_with(char::is_whitespace) {
            s = r.trim_start();
        }
    }
    for kw in ["const", "async", "unsafe"] {
        s = word(s, kw).unwrap_or(s);
    }
    if let Some(r) = word(s, "extern") {
        if let Some(r) = r
            .strip_prefix('"')
            .and_then(|r| r.find('"').map(|i| &r[i + 1..]))
        {
            if r.starts_with(char::is_whitespace) {
                s = r.trim_start();
            }
        }
    }
    let name: String = word(s, "fn")?.chars().take_while(|&c| is_word(c)).collect();
    (!name.is_empty()).then_some(name)
}

/// (name, first line, lines) of every function with a body in `text`.
pub fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let mut clean = Vec::new();
    let mut in_block = false;
    for line in text.split('\n') {
        let (c, b) = code_only(line, in_block);
        clean.push(c);
        in_block = b;
    }
    let mut out = Vec::new();
    for (start, line) in clean.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let (mut depth, mut opened) = (0i64, false);
        'lines: for (end, l) in clean.iter().enumerate().skip(start) {
            for ch in l.chars() {
                match ch {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    // A declaration without a body.
                    ';' if !opened && depth == 0 => break 'lines,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                out.push((name, start + 1, end - start + 1));
                break;
            }
        }
    }
    out
}

/// "lines  path:line  name" of every function in `dir` over [`MAX_FN_LINES`].
pub fn long_functions(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in files(dir, &["rs"]) {
        for (name, line, n) in functions(&read(&p)) {
            if n > MAX_FN_LINES {
                out.push(format!("{n:5}  {}:{line}  {name}", p.display()));
            }
        }
    }
    out
}
