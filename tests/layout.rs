//! The source tree stays one a newcomer can read: no import circles between the modules of
//! src/, no function in src/ over 80 lines, no source file over 600 lines, and no WGSL struct
//! declared in two shader files. The first two apply the rules of tools/import_cycles.py and
//! tools/long_functions.py (which also list edges and lengths), here in plain Rust so CI needs
//! no python.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function allowed, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;
/// Longest source file allowed.
const MAX_FILE_LINES: usize = 600;
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends in one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p, exts));
        } else if exts.iter().any(|x| p.extension().is_some_and(|e| e == *x)) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---- import circles (tools/import_cycles.py) ----

/// A module: src/a/b.rs and src/a/b/mod.rs are ["a", "b"]; lib.rs and main.rs the root [].
type Module = Vec<String>;

fn module_of(path: &Path, src: &Path) -> Module {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut m: Module = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if m.last().is_some_and(|s| s == "mod") {
        m.pop();
    }
    if m == ["lib"] || m == ["main"] {
        m.clear();
    }
    m
}

/// The text without `/* */` and `//` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        // An unclosed `/*` is left as it is.
        let Some(j) = rest[i + 2..].find("*/") else {
            break;
        };
        out.push_str(&rest[..i]);
        rest = &rest[i + 2 + j + 2..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every full path a `use` statement names, braces expanded, `as` renames dropped.
fn use_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("use").map(|i| i + from) {
        from = i + 3;
        let before = text[..i].chars().next_back();
        let after = text[i + 3..].chars().next();
        if before.is_some_and(is_word) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(end) = text[i + 3..].find(';') else {
            break;
        };
        // `a as b` becomes `a@b`, then the white space goes.
        let tree = text[i + 3..i + 3 + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace(" as ", "@")
            .replace(' ', "");
        expand(&tree, &mut out);
    }
    out
}

fn expand(tree: &str, out: &mut Vec<String>) {
    let Some(i) = tree.find('{') else {
        out.push(tree.split('@').next().unwrap().to_string());
        return;
    };
    let (prefix, inner) = (
        &tree[..i],
        &tree[i + 1..tree.rfind('}').unwrap_or(tree.len())],
    );
    let (mut depth, mut start) = (0, 0);
    let mut parts = Vec::new();
    for (j, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        expand(&format!("{prefix}{p}"), out);
    }
}

/// Paths in code: `crate::a::b` and `super::x::y`, not preceded by a word or `:`.
fn inline_paths(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        if i > 0 && (is_word(chars[i - 1]) || chars[i - 1] == ':') {
            continue;
        }
        let head: String = chars[i..chars.len().min(i + 5)].iter().collect();
        if head != "crate" && head != "super" {
            continue;
        }
        let (mut j, mut path) = (i + 5, head);
        while chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            let seg: String = chars[j + 2..].iter().take_while(|&&c| is_word(c)).collect();
            if seg.is_empty() {
                break;
            }
            j += 2 + seg.chars().count();
            path = format!("{path}::{seg}");
        }
        if path.contains("::") {
            out.push(path);
        }
    }
    out
}

/// The module a path names: the longest known module prefix of its absolute form.
fn resolve(path: &str, here: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut abs: Module = match *segs.first()? {
        "crate" => Vec::new(),
        "super" | "self" => here.clone(),
        _ => return None,
    };
    match segs[0] {
        "super" => {
            while segs.first() == Some(&"super") {
                abs.pop();
                segs.remove(0);
            }
        }
        _ => {
            segs.remove(0);
        }
    }
    abs.extend(segs.iter().filter(|s| **s != "self").map(|s| s.to_string()));
    (0..=abs.len())
        .rev()
        .map(|k| abs[..k].to_vec())
        .find(|m| modules.contains(m))
}

/// Module-to-module import edges of the crate in `src`.
fn import_edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files: BTreeMap<Module, PathBuf> = files(src, &["rs"])
        .into_iter()
        .map(|p| (module_of(&p, src), p))
        .collect();
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (m, p) in &files {
        let text = strip_comments(&read(p));
        let mut to = BTreeSet::new();
        for path in use_paths(&text).into_iter().chain(inline_paths(&text)) {
            if let Some(t) = resolve(&path, m, &modules) {
                if &t != m && !t.is_empty() {
                    to.insert(t);
                }
            }
        }
        edges.insert(m.clone(), to);
    }
    edges
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The import circles (modules that reach each other), each as lines naming its edges.
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let reach = |from: &Module| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from.clone()]);
        while let Some(m) = todo.pop() {
            for t in edges.get(&m).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    todo.push(t.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<Module>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (m, r) in &reaches {
        if !r.contains(*m) || done.contains(*m) {
            continue;
        }
        let members: BTreeSet<&Module> = r.iter().filter(|t| reaches[t].contains(*m)).collect();
        let mut lines = vec![format!(
            "circle: {}",
            members
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        for a in &members {
            for b in edges[*a].iter().filter(|b| members.contains(b)) {
                lines.push(format!("    {} -> {}", name(a), name(b)));
            }
            done.insert((*a).clone());
        }
        out.push(lines.join("\n"));
    }
    out
}

// ---- long functions (tools/long_functions.py) ----

/// The line without comments and string contents (so braces in them do not count); whether
/// a block comment is still open after it.
fn code_only(line: &str, mut in_block: bool) -> (String, bool) {
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
fn word<'a>(s: &'a str, w: &str) -> Option<&'a str> {
    s.strip_prefix(w)
        .filter(|r| r.starts_with(char::is_whitespace))
        .map(str::trim_start)
}

/// The name of the function a cleaned line starts (`pub(crate) const unsafe fn name`...).
fn fn_name(line: &str) -> Option<String> {
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
fn functions(text: &str) -> Vec<(String, usize, usize)> {
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
fn long_functions(dir: &Path) -> Vec<String> {
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

// ---- the checks ----

#[test]
fn src_has_no_import_circle() {
    let edges = import_edges(&repo().join("src"));
    assert!(edges.len() > 50, "only {} modules found", edges.len());
    let found = circles(&edges);
    assert!(
        found.is_empty(),
        "import circles in src/ (move what both sides need into a third module):\n{}",
        found.join("\n")
    );
}

#[test]
fn src_has_no_function_over_80_lines() {
    let found = long_functions(&repo().join("src"));
    assert!(
        found.is_empty(),
        "functions in src/ over {MAX_FN_LINES} lines (split them into named steps):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let (mut over, mut seen) = (Vec::new(), 0);
    for dir in ["src", "shaders", "tests", "benches", "examples"] {
        for p in files(&repo().join(dir), &["rs", "wgsl"]) {
            seen += 1;
            let n = read(&p).lines().count();
            let rel = p
                .strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if n > MAX_FILE_LINES {
                over.push(format!("{rel}: {n} lines"));
            }
        }
    }
    assert!(seen > 100, "only {seen} source files found");
    assert!(
        over.is_empty(),
        "files over {MAX_FILE_LINES} lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn no_wgsl_struct_is_declared_in_two_shaders() {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in files(&repo().join("shaders"), &["wgsl"]) {
        for line in read(&p).lines() {
            if let Some(rest) = line.strip_prefix("struct ") {
                let name: String = rest.chars().take_while(|&c| is_word(c)).collect();
                let file = p.file_name().unwrap().to_string_lossy().into_owned();
                seen.entry(name).or_default().push(file);
            }
        }
    }
    assert!(seen.len() > 5, "only {} WGSL structs found", seen.len());
    let twice: Vec<String> = seen
        .iter()
        .filter(|(_, f)| f.len() > 1)
        .map(|(s, f)| format!("struct {s}: {}", f.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "WGSL structs declared more than once (declare each once in a shared source the host prepends):\n{}",
        twice.join("\n")
    );
}

/// The checks above find what they look for: a planted circle (through a `use` with braces
/// and through an inline path), a planted long function, and nothing in clean code.
#[test]
fn the_checks_find_a_planted_circle_and_a_long_function() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES - 1);
    let files = [
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n".to_string()),
        // The parent's `mod` and use of its own child are not a circle with the child's
        // use of the parent.
        ("a/mod.rs", "pub mod inner;\nuse self::inner::X;\n".into()),
        ("a/inner.rs", "use super::super::c;\npub struct X;\n".into()),
        (
            "b.rs",
            "use crate::{c::f as g, d};\n/* crate::a::X */\n".into(),
        ),
        ("c.rs", "pub fn f() { crate::b::g() }\n".into()),
        (
            "d.rs",
            format!("fn long() {{\n{body}}}\nfn short() {{\n}}\n"),
        ),
    ];
    for (f, text) in &files {
        std::fs::write(src.join(f), text).unwrap();
    }
    let edges = import_edges(&src);
    let names = |m: &str| edges[&m.split("::").map(String::from).collect::<Module>()].clone();
    assert!(names("a").contains(&vec!["a".to_string(), "inner".to_string()]));
    assert!(
        !names("b").contains(&vec!["a".to_string()]),
        "an edge from a comment"
    );
    assert_eq!(
        circles(&edges),
        vec!["circle: b, c\n    b -> c\n    c -> b"]
    );
    let long = long_functions(&src);
    assert_eq!(long.len(), 1, "{long:?}");
    assert!(long[0].contains("d.rs:1  long") && long[0].starts_with("   81"));
    // Braces in strings, chars and comments do not count; a declaration has no body.
    let text = "fn a() {\n    let s = \"{\";\n    let c = '{';\n    // {\n}\nfn b();\n";
    assert_eq!(functions(text), vec![("a".to_string(), 1, 5)]);
    assert_eq!(
        fn_name("pub(crate) const unsafe fn go<T>()"),
        Some("go".into())
    );
    assert_eq!(fn_name("let f = fn_ptr;"), None);
}
