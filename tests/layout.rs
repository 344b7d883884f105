//! The source tree stays one a newcomer can read: no import circle between the files of src/
//! (layout/imports.rs) nor between its top-level modules, no function over 80 lines in src/,
//! examples/ or benches/ (layout/functions.rs), no source file over 600 lines, and no
//! WGSL struct declared in two shader files. The first two apply the rules of
//! tools/import_cycles.py and tools/long_functions.py (which also list edges and lengths),
//! here in plain Rust so CI needs no python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "layout/functions.rs"]
mod functions;
#[path = "layout/imports.rs"]
mod imports;

use functions::{fn_name, functions, is_word, long_functions};
use imports::{circles, explain, file_graph, import_edges, top_level, Module};

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

#[test]
fn src_has_no_import_circle() {
    let edges = import_edges(&repo().join("src"));
    assert!(edges.len() > 50, "only {} modules found", edges.len());
    let found = circles(&file_graph(&edges));
    assert!(
        found.is_empty(),
        "import circles in src/ (move what both sides need into a third module):\n{}",
        found.join("\n")
    );
}

#[test]
fn top_level_modules_have_no_circle() {
    let edges = import_edges(&repo().join("src"));
    let top = top_level(&edges);
    assert!(top.len() > 20, "only {} top-level modules found", top.len());
    let found: Vec<String> = circles(&top).iter().map(|c| explain(c, &edges)).collect();
    assert!(
        found.is_empty(),
        "circles among the top-level modules of src/ (move what both sides need into a \
         third module, or the code into the side that uses it):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_function_is_over_80_lines() {
    let mut found = Vec::new();
    for dir in ["src", "examples", "benches"] {
        let here = long_functions(&repo().join(dir));
        found.extend(
            here.into_iter()
                .map(|f| f.replace(&format!("{}/", repo().display()), "")),
        );
    }
    assert!(
        found.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n{}",
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

/// Writes `files` (path, text) under `src`.
fn plant(src: &Path, files: &[(&str, &str)]) {
    for (f, text) in files {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The two back-edges the top-level rule was written for, as they were: `optim::lbfgs`
/// calling the CPU backend's pass while `cpu::reference` uses `optim` (with `lbfgs::State`
/// named bare in optim/mod.rs), and config parsing `gpu::Strategy` (re-exported by
/// gpu/mod.rs) while `gpu::backend` builds config's `RunSettings`. The top-level rule finds
/// both; the file-level rule finds the first only through the bare child path, and never
/// the second (no file circle: a two-way pair between folders).
#[test]
fn the_top_level_rule_finds_the_two_back_edges() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    plant(
        &src,
        &[
            ("lib.rs", "pub mod config;\npub mod cpu;\npub mod gpu;\npub mod optim;\n"),
            (
                "optim/mod.rs",
                "pub mod lbfgs;\npub struct OptimState { pub lbfgs: Option<lbfgs::State> }\n",
            ),
            (
                "optim/lbfgs.rs",
                "pub struct State;\npub fn cpu_step(ws: &mut crate::cpu::reference::Workspace) {\n    crate::cpu::fused::train_pass(ws)\n}\n",
            ),
            ("cpu/mod.rs", "pub mod fused;\npub mod reference;\n"),
            ("cpu/fused.rs", "pub fn train_pass(_: &mut super::reference::Workspace) {}\n"),
            (
                "cpu/reference.rs",
                "use crate::optim::OptimState;\npub struct Workspace(Option<OptimState>);\n",
            ),
            (
                "config.rs",
                "pub struct RunSettings;\npub fn key(v: &str) -> bool {\n    v.parse::<crate::gpu::Strategy>().is_ok()\n}\n",
            ),
            (
                "gpu/mod.rs",
                "pub mod backend;\npub mod kernels;\npub use kernels::Strategy; // \"x::y\"\n",
            ),
            ("gpu/kernels.rs", "pub struct Strategy;\n"),
            (
                "gpu/backend.rs",
                "pub fn settings() -> crate::config::RunSettings {\n    crate::config::RunSettings\n}\n",
            ),
        ],
    );
    let edges = import_edges(&src);
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    assert!(
        edges[&m("optim")].contains(&m("optim::lbfgs")),
        "bare child path"
    );
    assert!(
        edges[&m("gpu")].contains(&m("gpu::kernels")),
        "bare child in a use"
    );
    let top: Vec<String> = circles(&top_level(&edges));
    assert_eq!(
        top,
        vec![
            "circle: config, gpu\n    config -> gpu\n    gpu -> config",
            "circle: cpu, optim\n    cpu -> optim\n    optim -> cpu",
        ]
    );
    let file = circles(&file_graph(&edges));
    assert_eq!(file.len(), 1, "{file:?}");
    assert!(
        file[0].starts_with("circle: cpu::fused, cpu::reference, optim, optim::lbfgs\n"),
        "{file:?}"
    );
    // Without the bare child path, optim/mod.rs would reach nothing and no file circle
    // would show.
    let mut blind = edges.clone();
    blind
        .get_mut(&m("optim"))
        .unwrap()
        .remove(&m("optim::lbfgs"));
    assert!(circles(&file_graph(&blind)).is_empty());
}
