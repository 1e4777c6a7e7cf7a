//! Docs that cannot rot: links and anchors resolve, the code map names every file under `src/`, and every ```sql and ```toml example of the README and the guides runs (or says why not).
//!
//! An example is run unless its first line marks it:
//! `-- not run: <why>` (`# not run: <why>` in TOML) skips it, and
//! `-- tested: <label>` says a test of its own runs it (that test names the
//! label). A SQL example runs in a fresh migrated database, inside a
//! transaction that is rolled back unless the example has its own `BEGIN`
//! (roles are cluster-wide); an HTML comment `<!-- setup: <SQL> -->` just
//! above the fence runs first (the reader's own tables). A TOML example is
//! written to a file and must pass `tailhook check-config --config <file>`.

use crate::support::*;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path` relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Every `.md` file under `dir`, sorted.
fn markdown_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            markdown_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The documents whose links are checked: README, CONTRIBUTING, BENCHMARKS and docs/.
fn documents() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md"].iter().map(|f| root().join(f)).collect();
    markdown_under(&root().join("docs"), &mut files);
    for file in &files {
        assert!(file.is_file(), "{} is missing", shown(file));
    }
    files
}

/// The documents whose examples are run: the README and the guides.
fn example_documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    markdown_under(&root().join("docs/guide"), &mut files);
    files
}

/// Each line of `text` with whether it is inside a fenced code block (fences count as inside).
fn lines_outside_code(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.trim_end() == f => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => out.push((n + 1, line)),
        }
    }
    out
}

/// `line` without its inline code spans.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading's text (github-slugger): markup dropped,
/// lower case, every character but letters, numbers, `_`, `-` and spaces
/// removed, spaces made hyphens.
fn slug(heading: &str) -> String {
    // A link in a heading shows its text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").and_then(|mid| rest[open + mid..].find(')').map(|close| (mid, close))) {
            Some((mid, close)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..open + mid]);
                rest = &rest[open + mid + close + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown file has: one per heading, repeats numbered `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in lines_outside_code(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let title = line[hashes..].trim().trim_end_matches('#').trim();
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of a file's links, `[text](target)` and `[label]: target`, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in lines_outside_code(text) {
        let line = without_code_spans(line);
        if let Some(rest) = line.trim_start().strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]: ") {
                out.push((n, target.split_whitespace().next().unwrap_or("").to_owned()));
                continue;
            }
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(|c: char| c == ')' || c.is_whitespace()).unwrap_or(after.len());
            out.push((n, after[..end].trim_matches(|c| c == '<' || c == '>').to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// What is wrong with one link of `from`, if anything.
fn broken(from: &Path, target: &str, cache: &mut HashMap<PathBuf, BTreeSet<String>>) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    if target.is_empty() {
        return Some("an empty link".into());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let path = path.replace("%20", " ");
    let file = if path.is_empty() {
        from.to_path_buf()
    } else if let Some(absolute) = path.strip_prefix('/') {
        root().join(absolute)
    } else {
        from.parent().unwrap().join(&path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", shown(&file)));
    }
    let anchor = anchor?;
    if file.extension().is_none_or(|e| e != "md") {
        return Some(format!("#{anchor} in {}, which is not Markdown", shown(&file)));
    }
    let found = cache.entry(file.clone()).or_insert_with(|| anchors(&read(&file)));
    (!found.contains(anchor)).then(|| format!("{} has no heading with the anchor #{anchor}", shown(&file)))
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut cache = HashMap::new();
    let mut problems = Vec::new();
    for file in documents() {
        for (line, target) in links(&read(&file)) {
            if let Some(why) = broken(&file, &target, &mut cache) {
                problems.push(format!("{}:{line}: ({target}): {why}", shown(&file)));
            }
        }
    }
    assert!(problems.is_empty(), "links that do not resolve:\n{}", problems.join("\n"));
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Duplicates and late results, exactly"), "duplicates-and-late-results-exactly");
    assert_eq!(slug("Connection poolers (PgBouncer)"), "connection-poolers-pgbouncer");
    assert_eq!(slug("`tailhook.publish` — the function"), "tailhookpublish--the-function");
    assert_eq!(slug("See [the guide](x.md) first"), "see-the-guide-first");
    assert_eq!(slug("Results at b21e114 (2026-11-24, later)"), "results-at-b21e114-2026-11-24-later");
    let text = "# A\n```\n# not a heading\n```\n## A\n### A";
    assert_eq!(anchors(text), BTreeSet::from(["a".to_owned(), "a-1".to_owned(), "a-2".to_owned()]));
    assert_eq!(
        links("see [x](a.md#b) and `[y](no.md)`, [z][r]\n[r]: c.md\n```\n[w](code.md)\n```"),
        vec![(1, "a.md#b".to_owned()), (2, "c.md".to_owned())]
    );
}

/// The code map table of docs/architecture.md: (first cell, second cell) per row.
fn code_map() -> Vec<(String, String)> {
    let text = read(&root().join("docs/architecture.md"));
    let section = text.split("\n## Code map").nth(1).expect("docs/architecture.md has a `## Code map` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| module"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').splitn(2, '|').collect();
            (cells.len() == 2).then(|| (cells[0].trim().to_owned(), cells[1].trim().to_owned()))
        })
        .collect()
}

/// The `code` spans of a table cell.
fn code_spans(cell: &str) -> BTreeSet<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Every file and folder under `src/`, as `src/a/b.rs` and `src/a/`.
fn src_paths(dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        if path.is_dir() {
            out.push(format!("{rel}/"));
            src_paths(&path, out);
        } else {
            out.push(rel);
        }
    }
}

/// Whether the code map names `path`: as a row of its own (a folder's row
/// stands for its `mod.rs` too), or in the row of its nearest folder that has
/// one (by its path from there, or by its name with each folder between
/// named too).
fn mapped(path: &str, rows: &[(String, String)]) -> bool {
    let own_row = |p: &str| rows.iter().any(|(first, _)| code_spans(first).contains(p));
    if own_row(path) || path.strip_suffix("mod.rs").is_some_and(|folder| folder.ends_with('/') && own_row(folder)) {
        return true;
    }
    let Some((folder, owns)) = rows
        .iter()
        .filter_map(|(first, owns)| {
            code_spans(first).into_iter().find(|f| f.ends_with('/') && path.starts_with(f.as_str())).map(|f| (f, owns))
        })
        .max_by_key(|(f, _)| f.len())
    else {
        return false;
    };
    let named = code_spans(owns);
    let rel = &path[folder.len()..];
    if named.contains(rel) {
        return true;
    }
    let parts: Vec<&str> = rel.trim_end_matches('/').split('/').collect();
    let (last, between) = parts.split_last().unwrap();
    let last = if rel.ends_with('/') { format!("{last}/") } else { (*last).to_owned() };
    named.contains(&last) && between.iter().all(|d| named.contains(&format!("{d}/")))
}

#[test]
fn code_map_names_every_file_and_folder_under_src() {
    let rows = code_map();
    assert!(rows.len() > 5, "the code map table was not found: {rows:?}");
    let mut paths = Vec::new();
    src_paths(&root().join("src"), &mut paths);
    let missing: Vec<&String> = paths.iter().filter(|p| !mapped(p, &rows)).collect();
    assert!(missing.is_empty(), "not in the code map of docs/architecture.md: {missing:?}");
    let gone: Vec<String> = rows
        .iter()
        .flat_map(|(first, _)| code_spans(first))
        .filter(|p| p.starts_with("src/") && !root().join(p).exists())
        .collect();
    assert!(gone.is_empty(), "the code map names what is not in src/: {gone:?}");
}

#[test]
fn code_map_matching_reads_rows_and_nested_folders() {
    let rows = vec![
        ("`src/a/`".to_owned(), "`mod.rs` x; `inner/` y: `deep.rs`".to_owned()),
        ("`src/a/b/`".to_owned(), "`c.rs`".to_owned()),
        ("`src/main.rs`".to_owned(), "z".to_owned()),
    ];
    for yes in [
        "src/a/",
        "src/a/mod.rs",
        "src/a/inner/",
        "src/a/inner/deep.rs",
        "src/a/b/",
        "src/a/b/c.rs",
        "src/a/b/mod.rs",
        "src/main.rs",
    ] {
        assert!(mapped(yes, &rows), "{yes}");
    }
    for no in ["src/lib.rs", "src/a/other.rs", "src/a/inner/other.rs", "src/a/more/deep.rs", "src/x/"] {
        assert!(!mapped(no, &rows), "{no}");
    }
}

/// One fenced example of a document.
#[derive(Debug)]
struct Example {
    place: String,
    lang: &'static str,
    body: String,
    setup: Option<String>,
}

impl Example {
    /// The reason after `not run:` or the label after `tested:` on the first line, if marked so.
    fn mark(&self, word: &str) -> Option<String> {
        let comment = if self.lang == "sql" { "--" } else { "#" };
        let first = self.body.lines().next().unwrap_or("").trim();
        let rest = first.strip_prefix(comment)?.trim_start().strip_prefix(word)?.trim();
        Some(rest.to_owned())
    }
}

/// Every ```sql and ```toml block of `text` (indented ones too, as in lists).
fn examples_of(place: &str, text: &str) -> Vec<Example> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lang = match line.trim() {
            "```sql" => "sql",
            "```toml" => "toml",
            l if l.starts_with("```") => {
                // Skip any other block whole, so its lines are not read as fences.
                i += 1;
                while i < lines.len() && lines[i].trim() != "```" {
                    i += 1;
                }
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let indent = line.len() - line.trim_start().len();
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim() != "```" {
            end += 1;
        }
        let body = lines[start..end].iter().map(|l| l.get(indent..).unwrap_or("")).collect::<Vec<_>>().join("\n");
        // `<!-- setup: … -->`, possibly over several lines, ending just above the fence.
        let mut setup = None;
        if i > 0 && lines[i - 1].trim_end().ends_with("-->") {
            let mut s = i - 1;
            while s > 0 && !lines[s].contains("<!--") {
                s -= 1;
            }
            let comment = lines[s..i].join("\n");
            if let Some(sql) = comment.trim().strip_prefix("<!--").and_then(|c| c.trim().strip_prefix("setup:")) {
                setup = Some(sql.trim_end().trim_end_matches("-->").trim().to_owned());
            }
        }
        out.push(Example { place: format!("{place}:{}", i + 1), lang, body, setup });
        i = end + 1;
    }
    out
}

fn all_examples() -> Vec<Example> {
    example_documents().iter().flat_map(|f| examples_of(&shown(f), &read(f))).collect()
}

/// The examples this file runs (neither `not run` nor `tested`), in `lang`.
fn examples_to_run(lang: &str) -> Vec<Example> {
    all_examples()
        .into_iter()
        .filter(|e| e.lang == lang && e.mark("not run:").is_none() && e.mark("tested:").is_none())
        .collect()
}

#[test]
fn every_example_is_run_or_says_why_not() {
    let tests: String = std::fs::read_dir(root().join("tests/it"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("docs.rs"))
        .map(|p| read(&p))
        .collect();
    let mut problems = Vec::new();
    for example in all_examples() {
        if let Some(why) = example.mark("not run:") {
            if why.is_empty() {
                problems.push(format!("{}: `not run:` without a reason", example.place));
            }
        }
        if let Some(label) = example.mark("tested:") {
            if label.is_empty() || !tests.contains(&format!("\"{label}\"")) {
                problems.push(format!("{}: no test in tests/it names `{label}`", example.place));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!examples_to_run("sql").is_empty(), "the README's first event is an example this file runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_examples_run_against_a_fresh_migrated_database() {
    let mut failures = Vec::new();
    for example in examples_to_run("sql") {
        let db = TestDb::new().await;
        let client = db.migrate().await;
        let setup = example.setup.as_deref().unwrap_or("");
        let upper = example.body.to_uppercase();
        let own_transaction = upper.contains("BEGIN;") || upper.contains("COMMIT;");
        let sql = if own_transaction {
            format!("{setup};\n{}", example.body)
        } else {
            format!("BEGIN;\n{setup};\n{};\nROLLBACK;", example.body)
        };
        if let Err(e) = client.simple_query(&sql).await {
            failures.push(format!("{}: {}\n{}", example.place, report(&e), example.body));
        }
    }
    assert!(failures.is_empty(), "examples that fail:\n\n{}", failures.join("\n\n"));
}

#[test]
fn toml_examples_pass_check_config() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (n, example) in examples_to_run("toml").into_iter().enumerate() {
        let file = dir.join(format!("example-{n}.toml"));
        std::fs::write(&file, &example.body).unwrap();
        let out = tailhook(
            &["check-config", "--config", file.to_str().unwrap()],
            &[("DATABASE_URL", "postgres://app@127.0.0.1/app")],
        );
        if !out.status.success() {
            failures.push(format!("{}: {}", example.place, String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "examples check-config refuses:\n{}", failures.join("\n"));
}

#[test]
fn examples_are_found_with_their_marks_and_setup() {
    let text = "a\n<!-- setup: CREATE TABLE t (id int) -->\n```sql\nSELECT 1;\n```\n\n1. step\n   ```toml\n   # not run: a fragment\n   x = 1\n   ```\n```sh\n```sql\n```\n";
    let found = examples_of("f.md", text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].lang, found[0].setup.as_deref()), ("sql", Some("CREATE TABLE t (id int)")));
    assert_eq!(found[0].place, "f.md:3");
    assert_eq!(found[1].mark("not run:").as_deref(), Some("a fragment"));
    assert_eq!(found[1].body, "# not run: a fragment\nx = 1");
}
