//! The workspace's files in layers: no file imports another that imports it back (no
//! import circle, in any crate), and in the harness no file imports a file of a higher
//! layer (`cli` > `orchestrate` > `execute` > `records`; `report` reads `records` alone).
//!
//! The sources are read as text. A file imports another when it names an item defined
//! there: through `use` (trees expanded), through a path starting `crate::`, `super::`,
//! `self::` or a child module's name, or through a `pub use` re-export (an arrow from the
//! re-exporting file; a use through it is followed to the defining file). `super::` inside
//! an inline module (`mod tests { .. }`) names the file itself. Run with `--nocapture` to
//! print every arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate: `["records", "run_record"]`.
type ModPath = Vec<String>;

struct Crate {
    /// Each module and the file that holds it.
    files: BTreeMap<ModPath, PathBuf>,
    /// Each module's declared child modules.
    children: BTreeMap<ModPath, BTreeSet<String>>,
    /// Each module's source with comments, strings and character literals blanked.
    code: BTreeMap<ModPath, String>,
}

impl Crate {
    fn load(root: &Path) -> Crate {
        let mut krate = Crate { files: BTreeMap::new(), children: BTreeMap::new(), code: BTreeMap::new() };
        krate.add(Vec::new(), root);
        krate
    }

    fn add(&mut self, module: ModPath, file: &Path) {
        let code = blank_comments_and_literals(&std::fs::read_to_string(file).unwrap());
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let dir = match stem {
            "lib" | "main" | "mod" => file.parent().unwrap().to_path_buf(),
            _ => file.parent().unwrap().join(stem),
        };
        let mut children = BTreeSet::new();
        for name in declared_modules(&code) {
            let candidates = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")];
            if let Some(child) = candidates.iter().find(|p| p.is_file()) {
                let mut path = module.clone();
                path.push(name.clone());
                children.insert(name);
                self.add(path, child);
            }
        }
        self.children.insert(module.clone(), children);
        self.files.insert(module.clone(), file.to_path_buf());
        self.code.insert(module, code);
    }

    /// The file defining the item that `segments` names from `module`, if it is in this
    /// crate.
    fn resolve(&self, module: &ModPath, segments: &[String], depth: usize) -> Option<PathBuf> {
        if depth > 8 || segments.is_empty() {
            return None;
        }
        let (mut current, mut rest): (ModPath, &[String]) = match segments[0].as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "super" => (module[..module.len().saturating_sub(1)].to_vec(), &segments[1..]),
            "self" => (module.clone(), &segments[1..]),
            first if self.children[module].contains(first) => (module.clone(), segments),
            _ => return None,
        };
        while rest.first().is_some_and(|s| s == "super") {
            current.pop();
            rest = &rest[1..];
        }
        while let Some(next) = rest.first().filter(|s| self.children[&current].contains(s.as_str())) {
            current.push(next.clone());
            rest = &rest[1..];
        }
        let here = self.files[&current].clone();
        let Some(name) = rest.first().filter(|n| !matches!(n.as_str(), "self" | "*")) else { return Some(here) };
        if defines(&self.code[&current], name) {
            return Some(here);
        }
        let reexports = reexports(&self.code[&current]);
        if let Some(target) = reexports.iter().find(|(alias, _)| alias == name)
            && let Some(file) = self.resolve(&current, &target.1, depth + 1)
        {
            return Some(file);
        }
        for (_, glob) in reexports.iter().filter(|(alias, _)| alias == "*") {
            let mut path = glob[..glob.len() - 1].to_vec();
            path.push(name.clone());
            if let Some(file) = self.resolve(&current, &path, depth + 1) {
                return Some(file);
            }
        }
        Some(here)
    }

    /// Every arrow: file -> the files it imports.
    fn arrows(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut arrows: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (module, code) in &self.code {
            let file = &self.files[module];
            let inline = inline_module_spans(code);
            for (at, mut segments) in paths(code) {
                let local =
                    matches!(segments[0].as_str(), "crate" | "super" | "self") || self.children[module].contains(&segments[0]);
                if !local {
                    continue;
                }
                if segments[0] == "super" && inline.iter().any(|(start, end)| (*start..*end).contains(&at)) {
                    segments[0] = "self".into();
                }
                if let Some(target) = self.resolve(module, &segments, 0).filter(|t| t != file) {
                    arrows.entry(file.clone()).or_default().insert(target);
                }
            }
        }
        arrows
    }
}

/// `text` with comments removed and string and character literals emptied, so that
/// nothing in them reads as code.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"..", r#".."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The words of `code` (identifiers, `::`, and single punctuation), with their offsets.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes: Vec<(usize, char)> = code.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (at, c) = bytes[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].1.is_alphanumeric() || bytes[i].1 == '_') {
                i += 1;
            }
            out.push((at, bytes[start..i].iter().map(|(_, c)| c).collect()));
        } else if c == ':' && bytes.get(i + 1).is_some_and(|(_, c)| *c == ':') {
            out.push((at, "::".into()));
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push((at, c.to_string()));
            }
            i += 1;
        }
    }
    out
}

/// The names of `mod name;` declarations (not inline modules).
fn declared_modules(code: &str) -> Vec<String> {
    let words = tokens(code);
    words.windows(3).filter(|w| w[0].1 == "mod" && w[2].1 == ";").map(|w| w[1].1.clone()).collect()
}

/// The byte spans of inline modules (`mod name { .. }`).
fn inline_module_spans(code: &str) -> Vec<(usize, usize)> {
    let words = tokens(code);
    let mut spans = Vec::new();
    for (k, w) in words.windows(3).enumerate() {
        if w[0].1 == "mod" && w[2].1 == "{" {
            let mut depth = 0;
            for (at, word) in &words[k + 2..] {
                match word.as_str() {
                    "{" => depth += 1,
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            spans.push((w[0].0, *at));
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    spans
}

/// Whether `code` defines an item called `name`.
fn defines(code: &str, name: &str) -> bool {
    let words = tokens(code);
    words.windows(2).any(|w| {
        w[1].1 == name && matches!(w[0].1.as_str(), "struct" | "enum" | "fn" | "const" | "static" | "trait" | "type" | "union")
    }) || words.windows(3).any(|w| w[0].1 == "macro_rules" && w[1].1 == "!" && w[2].1 == name)
}

/// A `use` tree's paths, expanded: `a::{b, c::{d, e as f}}` -> (alias, path) pairs.
fn expand_use(words: &[String]) -> Vec<(String, Vec<String>)> {
    fn walk(words: &[String], prefix: &[String], out: &mut Vec<(String, Vec<String>)>) {
        // Split at top-level commas.
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (k, w) in words.iter().enumerate() {
            match w.as_str() {
                "{" => depth += 1,
                "}" => depth -= 1,
                "," if depth == 0 => {
                    parts.push(&words[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        parts.push(&words[start..]);
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let mut path = prefix.to_vec();
            let mut k = 0;
            while k < part.len() {
                match part[k].as_str() {
                    "::" => k += 1,
                    "{" => {
                        walk(&part[k + 1..part.len() - 1], &path, out);
                        break;
                    }
                    "as" => {
                        out.push((part[k + 1].clone(), path.clone()));
                        break;
                    }
                    word => {
                        path.push(word.to_string());
                        k += 1;
                        if k == part.len() {
                            let alias = if word == "self" { prefix.last().cloned().unwrap_or_default() } else { word.into() };
                            out.push((alias, path.clone()));
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(words, &[], &mut out);
    out
}

/// The statements `use ..;` of `code`: (offset, whether `pub`, the tree's words, the
/// offset of the closing `;`).
fn use_statements(code: &str) -> Vec<(usize, bool, Vec<String>, usize)> {
    let words = tokens(code);
    let mut out = Vec::new();
    for (k, (at, word)) in words.iter().enumerate() {
        if word != "use" {
            continue;
        }
        let public = k > 0 && (words[k - 1].1 == "pub" || (words[k - 1].1 == ")" && k >= 4 && words[k - 4].1 == "pub"));
        let end = words[k..].iter().position(|(_, w)| w == ";").map_or(words.len(), |e| k + e);
        let end_at = words.get(end).map_or(code.len(), |(at, _)| *at);
        out.push((*at, public, words[k + 1..end].iter().map(|(_, w)| w.clone()).collect(), end_at));
    }
    out
}

/// What `code` re-exports: (alias, path).
fn reexports(code: &str) -> Vec<(String, Vec<String>)> {
    use_statements(code).into_iter().filter(|(_, public, _, _)| *public).flat_map(|(_, _, tree, _)| expand_use(&tree)).collect()
}

/// Every path `code` names: the `use` trees' paths, and each `a::b::c` written in code.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    let statements = use_statements(code);
    for (at, _, tree, _) in &statements {
        out.extend(expand_use(tree).into_iter().map(|(_, path)| (*at, path)));
    }
    let in_use = |at: usize| statements.iter().any(|(start, _, _, end)| (*start..*end).contains(&at));
    let words = tokens(code);
    let mut k = 0;
    while k < words.len() {
        let starts = !in_use(words[k].0)
            && ident_char(words[k].1.chars().next().as_ref())
            && words.get(k + 1).is_some_and(|w| w.1 == "::")
            && (k == 0 || (words[k - 1].1 != "::" && words[k - 1].1 != "use"));
        if !starts {
            k += 1;
            continue;
        }
        let at = words[k].0;
        let mut path = vec![words[k].1.clone()];
        let mut j = k + 1;
        while words.get(j).is_some_and(|w| w.1 == "::")
            && words.get(j + 1).is_some_and(|w| ident_char(w.1.chars().next().as_ref()))
        {
            path.push(words[j + 1].1.clone());
            j += 2;
        }
        out.push((at, path));
        k = j;
    }
    out
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn circles(arrows: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        arrows: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<PathBuf, usize>,
        low: BTreeMap<PathBuf, usize>,
        stack: Vec<PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit(v: &PathBuf, s: &mut State) {
        let n = s.index.len();
        s.index.insert(v.clone(), n);
        s.low.insert(v.clone(), n);
        s.stack.push(v.clone());
        for w in s.arrows.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v.clone(), low);
            } else if s.stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State { arrows, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for file in files {
        if !state.index.contains_key(file) {
            visit(file, &mut state);
        }
    }
    state.out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Each crate root of the workspace, and its crate's arrows.
fn graphs() -> Vec<(PathBuf, Crate, BTreeMap<PathBuf, BTreeSet<PathBuf>>)> {
    let root = workspace();
    ["datasets/src/lib.rs", "tasks/src/lib.rs", "models/src/lib.rs", "harness/src/lib.rs", "harness/src/main.rs"]
        .into_iter()
        .map(|file| {
            let krate = Crate::load(&root.join(file));
            let arrows = krate.arrows();
            (root.join(file), krate, arrows)
        })
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap_or(path).display().to_string()
}

#[test]
fn no_file_in_the_workspace_imports_a_file_that_imports_it_back() {
    let mut found = Vec::new();
    for (root, krate, arrows) in graphs() {
        let files: Vec<PathBuf> = krate.files.values().cloned().collect();
        let count: usize = arrows.values().map(BTreeSet::len).sum();
        println!("{}: {} files, {count} arrows", relative(&root), files.len());
        for (from, to) in &arrows {
            println!("  {} -> {}", relative(from), to.iter().map(|t| relative(t)).collect::<Vec<_>>().join(", "));
        }
        for circle in circles(&arrows, &files) {
            found.push(circle.iter().map(|f| relative(f)).collect::<Vec<_>>().join(" <-> "));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The harness's layer of a file, from its path: higher numbers are higher layers. `report`
/// sits beside `execute` and `orchestrate`: it may read records alone.
fn harness_layer(file: &str) -> Option<(&'static str, u8)> {
    let inside = file.strip_prefix("harness/src/")?;
    Some(match inside.split('/').next()? {
        "main.rs" => ("the binary", 5),
        "lib.rs" => ("the crate root", 5),
        "cli" => ("cli", 4),
        "orchestrate" => ("orchestrate", 3),
        "execute" => ("execute", 2),
        "report" => ("report", 2),
        "records" => ("records", 1),
        other => panic!("{file}: `{other}` is no layer of the harness; put the file in one"),
    })
}

#[test]
fn no_harness_file_imports_a_file_of_a_higher_layer() {
    let mut upward = Vec::new();
    let mut layers_seen = BTreeSet::new();
    for (root, _, arrows) in graphs().into_iter().filter(|(root, _, _)| relative(root).starts_with("harness/")) {
        for (from, targets) in &arrows {
            let from = relative(from);
            let (from_layer, from_rank) = harness_layer(&from).unwrap();
            layers_seen.insert(from_layer);
            for target in targets {
                let target = relative(target);
                let (to_layer, to_rank) = harness_layer(&target).unwrap_or_else(|| panic!("{target} from {root:?}"));
                // Within a layer any arrow is fine (circles are the other test's); across
                // layers only downward, and nothing beside execute and orchestrate (report)
                // reaches into them, nor they into it.
                let sideways = from_rank == to_rank && from_layer != to_layer;
                if to_rank > from_rank || sideways {
                    upward.push(format!("{from} ({from_layer}) -> {target} ({to_layer})"));
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports from a lower layer to a higher one:\n{}", upward.join("\n"));
    assert!(layers_seen.is_superset(&["cli", "orchestrate", "execute", "report", "records"].into()));
}

/// The reader itself: what it must see in code and what it must not.
#[test]
fn the_reader_sees_paths_in_code_and_none_in_comments_or_strings() {
    let code = blank_comments_and_literals(
        "use crate::a::{b, c::{self, D as E}};\n// use crate::hidden;\nfn f() { let s = \"crate::nope::x\"; super::g::h(); let c = '\"'; }\n",
    );
    let found: Vec<Vec<String>> = paths(&code).into_iter().map(|(_, p)| p).collect();
    let path = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(found, [path("crate::a::b"), path("crate::a::c::self"), path("crate::a::c::D"), path("super::g::h")]);
    assert_eq!(
        expand_use(&tokens("a::{b as c, d}").into_iter().map(|(_, w)| w).collect::<Vec<_>>()),
        [("c".to_string(), path("a::b")), ("d".to_string(), path("a::d"))]
    );
    let nested = blank_comments_and_literals("fn a() {}\nmod tests {\n use super::*;\n}\n");
    let spans = inline_module_spans(&nested);
    assert_eq!(spans.len(), 1);
    assert!(nested[spans[0].0..spans[0].1].contains("super"));
}
