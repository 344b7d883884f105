//! The import graph of src/ (the rules of tools/import_cycles.py): a module per file, its
//! edges from `use` paths, inline `crate::`/`super::` paths and child modules named bare;
//! the file-level graph, the top-level one, and their circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::functions::{code_only, is_word};
use super::{files, read};

/// A module: src/a/b.rs and src/a/b/mod.rs are ["a", "b"]; lib.rs and main.rs the root [].
pub type Module = Vec<String>;

pub fn module_of(path: &Path, src: &Path) -> Module {
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
pub fn strip_comments(text: &str) -> String {
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

/// Every full path a `use` statement names, braces expanded, `as` renames dropped.
pub fn use_paths(text: &str) -> Vec<String> {
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

pub fn expand(tree: &str, out: &mut Vec<String>) {
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
pub fn inline_paths(text: &str) -> Vec<String> {
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
pub fn resolve(path: &str, here: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
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

/// The child modules of `m` that `text` names bare (`lbfgs::State` in optim/mod.rs, or
/// `pub use kernels::Strategy` in gpu/mod.rs): a child's name followed by `::`, not preceded
/// by a word or `:`, outside comments and strings.
pub fn bare_children(text: &str, m: &Module, modules: &BTreeSet<Module>) -> Vec<Module> {
    let mut code = String::new();
    let mut in_block = false;
    for line in text.split('\n') {
        let (c, b) = code_only(line, in_block);
        code.push_str(&c);
        code.push('\n');
        in_block = b;
    }
    let children = modules
        .iter()
        .filter(|c| c.len() == m.len() + 1 && c.starts_with(m));
    let named = |child: &&Module| {
        let pat = format!("{}::", child[m.len()]);
        code.match_indices(&pat).any(|(i, _)| {
            let before = code[..i].chars().next_back();
            !before.is_some_and(|c| is_word(c) || c == ':')
        })
    };
    children.filter(named).cloned().collect()
}

/// Module-to-module import edges of the crate in `src`: its `use` paths, inline `crate::`
/// and `super::` paths, and child modules named bare.
pub fn import_edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files: BTreeMap<Module, PathBuf> = files(src, &["rs"])
        .into_iter()
        .map(|p| (module_of(&p, src), p))
        .collect();
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (m, p) in &files {
        let raw = read(p);
        let text = strip_comments(&raw);
        let mut to: BTreeSet<Module> = bare_children(&raw, m, &modules).into_iter().collect();
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

/// The file-level rule's graph: every edge but a module's use of its own ancestors (a
/// folder's mod.rs holds what its children share, and naming its children is how Rust
/// builds the folder, so a folder and its children naming each other is no circle; a
/// circle through another folder still is). The top-level rule counts every edge.
pub fn file_graph(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> BTreeMap<Module, BTreeSet<Module>> {
    edges
        .iter()
        .map(|(m, to)| {
            let up = |t: &&Module| !(t.len() < m.len() && m.starts_with(t));
            (m.clone(), to.iter().filter(up).cloned().collect())
        })
        .collect()
}

/// The graph of the top-level modules of src/ (lib.rs and main.rs left out): a module's
/// edges are its files' edges to other top-level modules.
pub fn top_level(edges: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, to) in edges.iter().filter(|(m, _)| !m.is_empty()) {
        let top = vec![m[0].clone()];
        let entry = out.entry(top.clone()).or_default();
        for t in to.iter().filter(|t| !t.is_empty() && t[0] != m[0]) {
            entry.insert(vec![t[0].clone()]);
        }
    }
    out
}

/// The file edges behind each edge of `circle` (a top-level circle's lines), so the
/// message says which files to change.
pub fn explain(circle: &str, edges: &BTreeMap<Module, BTreeSet<Module>>) -> String {
    let mut lines = vec![circle.to_string()];
    for l in circle.lines().skip(1) {
        let Some((a, b)) = l.trim().split_once(" -> ") else {
            continue;
        };
        for (m, to) in edges
            .iter()
            .filter(|(m, _)| m.first().is_some_and(|x| x == a))
        {
            for t in to.iter().filter(|t| t.first().is_some_and(|x| x == b)) {
                lines.push(format!("        {} -> {}", name(m), name(t)));
            }
        }
    }
    lines.join("\n")
}

pub fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The import circles (modules that reach each other), each as lines naming its edges.
pub fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
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
