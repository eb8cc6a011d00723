//! The documentation against the code: every YAML block in README.md and docs/*.md is valid
//! (profiles and policies as `stepjail check` sees them), every list copied from the code says
//! what the code says, every flag of `--help` is documented, the README's quick start is what
//! `.ci/run` runs, and every relative link (and its anchor) resolves.
//!
//! Lists are read from the source as text (searched for by constant name anywhere under `src/`,
//! so a file may move) or asked of the built binary; none needs root or the network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn stepjail(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stepjail"))
        .args(args)
        .output()
        .unwrap()
}

/// README.md and docs/*.md: the pages whose YAML blocks are checked.
fn doc_pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 7, "docs/ has its pages: {docs:?}");
    pages.extend(docs);
    pages
}

/// Every page whose links are checked: the doc pages and the other Markdown files at the root.
fn linked_pages() -> Vec<String> {
    let mut pages = doc_pages();
    for f in [
        "ARCHITECTURE.md",
        "CONTRIBUTING.md",
        "SECURITY.md",
        "CHANGELOG.md",
        "BENCHMARKS.md",
        "examples/github/README.md",
    ] {
        pages.push(f.to_string());
    }
    pages
}

/// A fenced code block: its info string, its first line number (1-based) and its text, with the
/// fence's indentation removed.
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String, usize, String)> = None; // indent, info, line, text
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((indent, info.trim().to_string(), i + 2, String::new()));
                }
            }
            Some((ind, info, start, text)) => {
                if trimmed.starts_with("```") && trimmed.trim_end() == "```" {
                    out.push(Block {
                        info: std::mem::take(info),
                        line: *start,
                        text: std::mem::take(text),
                    });
                    open = None;
                } else {
                    let cut = line.len().min(*ind);
                    let body = if line[..cut].trim().is_empty() {
                        &line[cut..]
                    } else {
                        line
                    };
                    text.push_str(body);
                    text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    out
}

/// The text outside code blocks and inline code spans, line by line (numbers kept).
fn prose(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        // Drop inline code: `...` and ``...``.
        let mut s = String::new();
        let mut rest = line;
        while let Some(p) = rest.find('`') {
            s.push_str(&rest[..p]);
            let ticks = rest[p..].chars().take_while(|&c| c == '`').count();
            let delim = "`".repeat(ticks);
            let after = &rest[p + ticks..];
            match after.find(&delim) {
                Some(q) => rest = &after[q + ticks..],
                None => {
                    rest = after;
                }
            }
        }
        s.push_str(rest);
        out.push((i + 1, s));
    }
    out
}

fn yaml_value(text: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
}

/// What to hand `stepjail check` for a YAML block, by its fence's info string; `None` for a
/// block that is only parsed.
fn checkable(info: &str, text: &str) -> Result<Option<String>, String> {
    const HEAD: &str = "name: doc-snippet\ndescription: a snippet from the docs\n";
    match info {
        "yaml" => Ok(Some(text.to_string())),
        "yaml fragment" => Ok(Some(format!("{HEAD}{text}"))),
        "yaml rule" => {
            let rules: String = text.lines().map(|l| format!("    {l}\n")).collect();
            Ok(Some(format!("{HEAD}network:\n  allow:\n{rules}")))
        }
        "yaml workflow" => Ok(None),
        // GitLab operator and repository policies: ci::gitlab::policy's unit test
        // `the_documented_policies_parse` parses these blocks with the real loader.
        "yaml gitlab" => Ok(None),
        // The GitHub runner operator's file: checked by `stepjail hooks --check` below.
        "yaml hooks" => Ok(Some(text.to_string())),
        other => Err(format!(
            "unknown fence `{other}`: use yaml, yaml fragment, yaml rule, yaml workflow, yaml gitlab \
             or yaml hooks"
        )),
    }
}

/// The result of checking every YAML block of the doc pages: (where, error) for each failure.
fn yaml_block_failures(pages: &[(String, String)]) -> (usize, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (page, md) in pages {
        for b in blocks(md) {
            if !(b.info == "yaml" || b.info.starts_with("yaml ")) {
                continue;
            }
            checked += 1;
            let at = format!("{page}:{}", b.line);
            if let Err(e) = yaml_value(&b.text) {
                failures.push((at, format!("not YAML: {e}")));
                continue;
            }
            let doc = match checkable(&b.info, &b.text) {
                Ok(Some(doc)) => doc,
                Ok(None) => continue,
                Err(e) => {
                    failures.push((at, e));
                    continue;
                }
            };
            let file = dir.path().join(format!("block-{checked}.yml"));
            std::fs::write(&file, &doc).unwrap();
            let out = if b.info == "yaml hooks" {
                stepjail(&["hooks", "--check", "--config", file.to_str().unwrap()])
            } else {
                stepjail(&["check", file.to_str().unwrap()])
            };
            if !out.status.success() {
                failures.push((
                    at,
                    format!(
                        "stepjail check: {}\n--- as checked:\n{doc}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
        }
    }
    (checked, failures)
}

fn all_pages() -> Vec<(String, String)> {
    doc_pages()
        .into_iter()
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect()
}

#[test]
fn every_yaml_block_is_a_valid_profile_policy_or_marked_workflow() {
    let (checked, failures) = yaml_block_failures(&all_pages());
    assert!(checked >= 8, "only {checked} YAML blocks found");
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|(at, e)| format!("{at}: {e}"))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The check above can fail: a documented profile with a mistake in it, or an unmarked
/// workflow, is reported with its page and line.
#[test]
fn a_broken_yaml_block_is_reported() {
    let page = "```yaml\nname: x\ndescription: d\nprocess:\n  timeout: 30 minutes\n```\n\n\
                ```yaml\njobs:\n  test:\n    runs-on: ubuntu-24.04\n```\n\n\
                ```yaml fragment\nnetwork:\n  allow: [203.0.113.7:443]\n```\n";
    let (checked, failures) =
        yaml_block_failures(&[("docs/broken.md".to_string(), page.to_string())]);
    assert_eq!(checked, 3);
    let at: Vec<&str> = failures.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        at,
        ["docs/broken.md:2", "docs/broken.md:9", "docs/broken.md:15"]
    );
    assert!(
        failures[0].1.contains("process.timeout"),
        "{}",
        failures[0].1
    );
    assert!(failures[2].1.contains("cidr"), "{}", failures[2].1);
}

// ---- lists copied from the code ----

/// All Rust source under src/, concatenated with file markers.
fn source() -> String {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of `const NAME: ... = <body>;` (up to the first `];` at the end of a line) anywhere
/// under src/.
fn const_body<'a>(src: &'a str, name: &str) -> &'a str {
    let start = src
        .find(&format!("const {name}: "))
        .unwrap_or_else(|| panic!("no `const {name}` under src/ (moved? update tests/docs.rs)"));
    let rest = &src[start..];
    let end = rest
        .find("];\n")
        .unwrap_or_else(|| panic!("`const {name}` has no `];`"));
    &rest[..end]
}

/// The string literals of a constant's body that look like variable names or patterns, in
/// order; `&[IDENT]` references to `const IDENT: &str = "..."` are followed.
fn names_in_const(src: &str, name: &str) -> Vec<String> {
    let body = const_body(src, name);
    let mut out = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let end = body[i + 1..].find('"').unwrap() + i + 1;
            let lit = &body[i + 1..end];
            if is_var_pattern(lit) {
                out.push(lit.to_string());
            }
            while chars.peek().is_some_and(|&(j, _)| j <= end) {
                chars.next();
            }
        }
    }
    // `&[RESERVED]`-style references to string constants.
    for part in body.split("&[").skip(1) {
        let ident = part.split(']').next().unwrap().trim();
        if !ident.is_empty() && ident.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            let def = format!("const {ident}: &str = \"");
            let at = src
                .find(&def)
                .unwrap_or_else(|| panic!("no `const {ident}: &str`"));
            let v = &src[at + def.len()..];
            out.push(v[..v.find('"').unwrap()].to_string());
        }
    }
    out
}

fn is_var_pattern(s: &str) -> bool {
    let s = s.strip_suffix('*').unwrap_or(s);
    !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().any(|c| c.is_ascii_uppercase())
}

/// The backticked variable names in `text`, in order (`$GITHUB_ENV` and the like excluded).
fn backticked_names(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| is_var_pattern(t))
        .map(str::to_string)
        .collect()
}

/// The text of `page` between `from` and the next `to` after it.
fn between<'a>(page: &'a str, from: &str, to: &str) -> &'a str {
    let a = page
        .find(from)
        .unwrap_or_else(|| panic!("the page no longer says {from:?}"))
        + from.len();
    let b = page[a..]
        .find(to)
        .unwrap_or_else(|| panic!("nothing ends {from:?} with {to:?}"));
    &page[a..a + b]
}

/// The deny list the docs show, compared with the code's; an error names what differs.
fn compare(what: &str, doc: &[String], code: &[String]) -> Result<(), String> {
    let d: BTreeSet<&String> = doc.iter().collect();
    let c: BTreeSet<&String> = code.iter().collect();
    if d == c && doc.len() == code.len() {
        return Ok(());
    }
    Err(format!(
        "{what}: the docs list what the code does not: {:?}; the code has what the docs do not: {:?}; \
         duplicates in the docs: {}",
        d.difference(&c).collect::<Vec<_>>(),
        c.difference(&d).collect::<Vec<_>>(),
        doc.len() != d.len()
    ))
}

fn github_env_deny_list(page: &str) -> Vec<String> {
    backticked_names(between(
        page,
        "Variables removed from `$GITHUB_ENV`",
        "\n\n",
    ))
}

#[test]
fn the_github_env_deny_list_is_the_codes() {
    let code = names_in_const(&source(), "DANGEROUS_GROUPS");
    assert!(code.contains(&"LD_*".to_string()) && code.contains(&"STEPJAIL_*".to_string()));
    let page = read("docs/github-actions.md");
    compare("GITHUB_ENV deny list", &github_env_deny_list(&page), &code).unwrap();
    // Broken on purpose: a name dropped from the docs is found.
    let edited = page.replacen("`GCONV_PATH`, ", "", 1);
    assert!(compare("", &github_env_deny_list(&edited), &code).is_err());
}

/// The never-passed CI credentials, where each page lists them.
fn scrubbed_lists(threat: &str, secrets: &str, profiles: &str) -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "docs/threat-model.md",
            backticked_names(between(
                threat,
                "| Secrets in the environment | Only an allowlist of variables is passed.",
                "are never passed",
            )),
        ),
        (
            "docs/secrets.md",
            backticked_names(between(
                secrets,
                "- the CI credentials",
                "- the names in the profile's",
            )),
        ),
        (
            "docs/profiles.md",
            backticked_names(between(
                profiles,
                "unless it is one of the never-passed names:",
                "a name\n   `env.scrub` matches",
            )),
        ),
    ]
}

#[test]
fn the_never_passed_variables_are_the_codes() {
    let code = names_in_const(&source(), "CI_CREDENTIALS");
    assert!(code.contains(&"GITHUB_TOKEN".to_string()), "{code:?}");
    let (t, s, p) = (
        read("docs/threat-model.md"),
        read("docs/secrets.md"),
        read("docs/profiles.md"),
    );
    for (page, doc) in scrubbed_lists(&t, &s, &p) {
        compare(page, &doc, &code).unwrap();
    }
    // Broken on purpose: a name missing from one page is found.
    let edited = s.replacen("`CI_JOB_TOKEN`, and", "and", 1);
    assert_ne!(edited, s);
    assert!(
        scrubbed_lists(&t, &edited, &p)
            .iter()
            .any(|(_, doc)| compare("", doc, &code).is_err())
    );
}

/// The reserved names as docs/threat-model.md lists them: the proxy variables "each in both
/// cases", the CA bundle variables and the sandbox's own.
fn documented_reserved(threat: &str) -> BTreeSet<String> {
    let row = between(
        threat,
        "| A secret named like a variable stepjail sets",
        "\n",
    );
    let text = between(row, "The names are", "|");
    let (proxy, rest) = text
        .split_once("each in both cases")
        .expect("the row says the proxy variables come in both cases");
    let mut out: BTreeSet<String> = BTreeSet::new();
    for n in backticked_names(proxy) {
        out.insert(n.to_lowercase());
        out.insert(n);
    }
    out.extend(backticked_names(rest));
    out
}

/// Which of `names` `stepjail check` refuses as a secret because stepjail sets it itself.
fn refused_as_secrets(names: &BTreeSet<String>) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let f = dir.path().join(format!("s{i}.yml"));
        std::fs::write(
            &f,
            format!("name: s\ndescription: d\nsecrets:\n  {n}: {{}}\n"),
        )
        .unwrap();
        files.insert(f.to_str().unwrap().to_string(), n.clone());
    }
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.keys().map(String::as_str))
        .collect();
    let out = stepjail(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut refused = BTreeSet::new();
    for line in stderr.lines() {
        if !line.contains("stepjail sets this variable itself") {
            continue;
        }
        let file = line
            .trim_start_matches("stepjail: ")
            .split(':')
            .next()
            .unwrap();
        refused.insert(files[file].clone());
    }
    refused
}

#[test]
fn the_reserved_secret_names_are_the_ones_check_refuses() {
    let threat = read("docs/threat-model.md");
    let documented = documented_reserved(&threat);
    assert!(documented.contains("https_proxy") && documented.contains("LOGNAME"));
    // Every variable-like string in the code, in both cases, plus the documented ones: check
    // must refuse exactly the documented ones.
    let src = source();
    let mut candidates: BTreeSet<String> = documented.clone();
    for lit in src.split('"').skip(1).step_by(2) {
        if is_var_pattern(lit) && !lit.ends_with('*') {
            candidates.insert(lit.to_string());
            candidates.insert(lit.to_lowercase());
        }
    }
    let refused = refused_as_secrets(&candidates);
    assert_eq!(
        documented,
        refused,
        "docs/threat-model.md lists as reserved but check accepts: {:?}; check refuses but the docs do not list: {:?}",
        documented.difference(&refused).collect::<Vec<_>>(),
        refused.difference(&documented).collect::<Vec<_>>()
    );
    // docs/secrets.md says the same in words.
    let secrets = read("docs/secrets.md");
    assert!(secrets.contains(
        "(the proxy variables, the tool proxy switches such as\n`JAVA_TOOL_OPTIONS` and \
         `NODE_USE_ENV_PROXY`, the CA-bundle variables, `PATH`, `HOME`, `TMPDIR`,\n`USER`, \
         `LOGNAME`) are refused"
    ));
    // Broken on purpose: a name dropped from the docs is found.
    let edited = threat.replacen("`LOGNAME`", "`LOGNAMES`", 1);
    assert_ne!(documented_reserved(&edited), refused);
}

/// The built-in profiles table: name -> the text of its network column.
fn builtin_table(page: &str) -> BTreeMap<String, String> {
    let table = between(page, "| name | network | also writable | notes |", "\n\n");
    let mut out = BTreeMap::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let name = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_string();
        assert!(
            out.insert(name.clone(), cells[1].to_string()).is_none(),
            "{name} twice"
        );
    }
    out
}

/// The built-in profiles from the binary: name -> its own `network.allow` as (host, port).
fn builtins() -> BTreeMap<String, Vec<(String, u16)>> {
    let out = stepjail(&["profiles"]);
    assert!(out.status.success());
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let name = line.split_whitespace().next().unwrap().to_string();
        let show = stepjail(&["profiles", "show", &name]);
        assert!(show.status.success(), "profiles show {name}");
        let yaml = yaml_value(&String::from_utf8(show.stdout).unwrap()).unwrap();
        let mut hosts = Vec::new();
        for rule in yaml["network"]["allow"].as_array().into_iter().flatten() {
            match rule {
                serde_json::Value::String(s) => match s.rsplit_once(':') {
                    Some((h, p)) => hosts.push((h.to_string(), p.parse().unwrap())),
                    None => hosts.push((s.clone(), 443)),
                },
                serde_json::Value::Object(m) => {
                    let h = m["host"].as_str().expect("built-ins use host rules");
                    let ports: Vec<u16> = match m.get("ports") {
                        Some(p) => p
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p.as_u64().unwrap() as u16)
                            .collect(),
                        None => vec![443],
                    };
                    for p in ports {
                        hosts.push((h.to_string(), p));
                    }
                }
                other => panic!("{name}: unexpected rule {other}"),
            }
        }
        map.insert(name, hosts);
    }
    map
}

fn compare_builtins(
    table: &BTreeMap<String, String>,
    code: &BTreeMap<String, Vec<(String, u16)>>,
) -> Result<(), String> {
    let names: Vec<&String> = table.keys().collect();
    let code_names: Vec<&String> = code.keys().collect();
    if names != code_names {
        return Err(format!(
            "built-in profile names: docs {names:?}, binary {code_names:?}"
        ));
    }
    for (name, column) in table {
        let doc_hosts: BTreeSet<String> = column
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let hosts: BTreeSet<String> = code[name].iter().map(|(h, _)| h.clone()).collect();
        if hosts.is_empty() {
            if column.trim() != "none" {
                return Err(format!("{name}: no network, but the docs say {column:?}"));
            }
            continue;
        }
        if doc_hosts != hosts {
            return Err(format!(
                "{name}: the docs list {doc_hosts:?}, the profile allows {hosts:?}"
            ));
        }
        // "Hosts are on port 443 unless noted."
        for (h, p) in &code[name] {
            if *p != 443 && !column.contains(&p.to_string()) {
                return Err(format!(
                    "{name}: {h}:{p} is not on 443 and the docs do not say so"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_builtin_profiles_table_is_the_binarys() {
    let page = read("docs/profiles.md");
    let code = builtins();
    assert!(code.len() >= 20 && code["npm"] == [("registry.npmjs.org".to_string(), 443)]);
    compare_builtins(&builtin_table(&page), &code).unwrap();
    // Broken on purpose: a host dropped from a row, and a row dropped, are found.
    let edited = page.replacen(", `repo.yarnpkg.com`", "", 1);
    assert_ne!(edited, page);
    assert!(compare_builtins(&builtin_table(&edited), &code).is_err());
    let mut fewer = builtin_table(&page);
    fewer.remove("ghcr");
    assert!(compare_builtins(&fewer, &code).is_err());
}

// ---- the CLI ----

/// Subcommand paths from `--help` (`run`, `audit summarize`, ...), recursively.
fn subcommands(prefix: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = prefix.to_vec();
    args.push("--help");
    let help = String::from_utf8(stepjail(&args).stdout).unwrap();
    let Some(list) = help.split("Commands:\n").nth(1) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in list.lines() {
        if !line.starts_with("  ") || line.starts_with("   ") {
            break;
        }
        let name = line.split_whitespace().next().unwrap();
        if name == "help" {
            continue;
        }
        let mut path: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        path.push(name.to_string());
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        out.extend(subcommands(&refs));
        out.push(path);
    }
    out
}

#[test]
fn every_subcommand_and_flag_is_in_docs_cli() {
    let page = read("docs/cli.md");
    let subs = subcommands(&[]);
    assert!(subs.len() >= 8, "{subs:?}");
    let mut missing = Vec::new();
    for sub in &subs {
        let shown = format!("stepjail {}", sub.join(" "));
        if !page.contains(&shown) {
            missing.push(shown.clone());
        }
        let mut args: Vec<&str> = sub.iter().map(String::as_str).collect();
        args.push("--help");
        let help = String::from_utf8(stepjail(&args).stdout).unwrap();
        for word in help.split(|c: char| c.is_whitespace() || c == ',') {
            let flag = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            let is_flag = (flag.starts_with("--") && flag.len() > 2)
                || (flag.len() == 2 && flag.starts_with('-'));
            if is_flag && flag != "--help" && flag != "-h" && !page.contains(flag) {
                missing.push(format!("{shown} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md does not mention: {missing:?}"
    );
}

// ---- README ----

#[test]
fn the_readme_is_short_and_its_quick_start_is_what_ci_runs() {
    let readme = read("README.md");
    assert!(
        readme.len() <= 12 * 1024,
        "README.md is {} bytes; keep it at most 12 KB and move details to docs/",
        readme.len()
    );
    let ci = read(".ci/run");
    let test_cmd = between(&ci, "\nTEST_CMD=\"", "\"");
    let quick = blocks(between(&readme, "## Quick start", "\n## "))
        .into_iter()
        .next()
        .expect("the quick start has a code block");
    let lines: Vec<&str> = quick.text.lines().collect();
    assert_eq!(lines.len(), 2, "two quick-start commands: {lines:?}");
    // The first installs and runs a command under the default profile, as .ci/run's smoke test.
    let smoke = between(&ci, "\"$tmp/bin/stepjail\" ", " |");
    assert!(lines[0].starts_with("./install.sh && ~/.local/bin/stepjail "));
    assert!(
        lines[0].ends_with(smoke),
        "{:?} vs .ci/run's {smoke:?}",
        lines[0]
    );
    assert!(!lines[0].contains("--profile"));
    // The second is exactly the test command.
    assert_eq!(lines[1], test_cmd);
    assert_eq!(test_cmd, "cargo test --locked");
}

// ---- links ----

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(md: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut fence = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        if line.starts_with('#') {
            let s = slug(line.trim_start_matches('#'));
            let n = seen.entry(s.clone()).or_insert(0);
            out.insert(if *n == 0 {
                s.clone()
            } else {
                format!("{s}-{n}")
            });
            *n += 1;
        }
        for part in line.split("<a id=\"").skip(1) {
            out.insert(part.split('"').next().unwrap().to_string());
        }
    }
    out
}

/// Every relative link of `md` (a page at `page`) that does not resolve: (line, target, why).
fn broken_links(page: &str, md: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let dir = Path::new(page).parent().unwrap();
    for (n, line) in prose(md) {
        for part in line.split("](").skip(1) {
            let Some(end) = part.find(')') else { continue };
            let target = &part[..end];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target, None),
            };
            let file = if path.is_empty() {
                PathBuf::from(page)
            } else {
                dir.join(path)
            };
            let full = Path::new(ROOT).join(&file);
            if !full.exists() {
                out.push((n, target.to_string(), "no such file".to_string()));
                continue;
            }
            if let Some(a) = anchor
                && full.extension().is_some_and(|x| x == "md")
                && !anchors(&std::fs::read_to_string(&full).unwrap()).contains(a)
            {
                out.push((n, target.to_string(), "no such anchor".to_string()));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut links = 0;
    for page in linked_pages() {
        let md = read(&page);
        links += prose(&md)
            .iter()
            .map(|(_, l)| l.matches("](").count())
            .sum::<usize>();
        for (n, target, why) in broken_links(&page, &md) {
            broken.push(format!("{page}:{n}: {target}: {why}"));
        }
    }
    assert!(links >= 50, "only {links} links found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    // Broken on purpose: a missing page and a missing anchor are both found.
    let md = "[a](docs/nope.md) [b](docs/cli.md#no-such-heading) [c](docs/cli.md#exit-codes) \
              `[d](docs/in-code.md)`";
    let found = broken_links("README.md", md);
    let targets: Vec<&str> = found.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(targets, ["docs/nope.md", "docs/cli.md#no-such-heading"]);
}

/// A built-in profile's own `env` list or map keys, as the binary embeds it.
fn builtin_env(name: &str) -> serde_json::Value {
    let show = stepjail(&["profiles", "show", name]);
    assert!(show.status.success(), "profiles show {name}");
    yaml_value(&String::from_utf8(show.stdout).unwrap()).unwrap()["env"].clone()
}

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every backticked token of `text`, leaving out parenthesised remarks (`(not `BUNDLE_*`: ...)`).
fn tokens(text: &str) -> BTreeSet<String> {
    let mut kept = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    kept.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The package-manager table (`env.pass` adds, `env.scrub` adds and the values `env.set`
/// sets) and the `default` profile's passed variables, against the built-ins.
fn compare_tool_settings(page: &str) -> Result<(), String> {
    let table = between(
        page,
        "| name | `env.pass` adds | `env.scrub` adds |",
        "\n\n",
    );
    let mut rows = BTreeSet::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let name = cells[0].trim().trim_matches('`');
        rows.insert(name.to_string());
        let env = builtin_env(name);
        let pass = strings(&env["pass"]);
        if tokens(cells[1]) != pass {
            return Err(format!(
                "{name}: env.pass: the docs say {:?}, the profile {pass:?}",
                tokens(cells[1])
            ));
        }
        let (set, scrub): (BTreeSet<String>, BTreeSet<String>) =
            tokens(cells[2]).into_iter().partition(|t| t.contains('='));
        let code_scrub = strings(&env["scrub"]);
        if scrub != code_scrub {
            return Err(format!(
                "{name}: env.scrub: the docs say {scrub:?}, the profile {code_scrub:?}"
            ));
        }
        let code_set: BTreeSet<String> = env["set"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        if set != code_set {
            return Err(format!(
                "{name}: env.set: the docs say {set:?}, the profile {code_set:?}"
            ));
        }
    }
    // A built-in that passes variables of its own is in the table.
    for name in builtins().keys() {
        if name != "default"
            && !rows.contains(name)
            && !strings(&builtin_env(name)["pass"]).is_empty()
        {
            return Err(format!("{name} passes variables but has no row"));
        }
    }
    let default = tokens(between(page, "It passes `CI`", ", and sets `core_size: 0`"));
    let mut default: BTreeSet<String> = default.into_iter().collect();
    default.insert("CI".to_string());
    let code = strings(&builtin_env("default")["pass"]);
    if default != code {
        return Err(format!(
            "default: env.pass: the docs say {default:?}, the profile {code:?}"
        ));
    }
    Ok(())
}

#[test]
fn the_tool_settings_table_is_the_builtins() {
    let page = read("docs/profiles.md");
    compare_tool_settings(&page).unwrap();
    // Broken on purpose: a scrubbed pattern, a passed variable and a default variable dropped.
    for (from, to) in [
        ("`COMPOSER_AUTH` |", "|"),
        ("`GOROOT`, ", ""),
        ("`RUNNER_TOOL_CACHE`, ", ""),
    ] {
        let edited = page.replacen(from, to, 1);
        assert_ne!(edited, page, "{from}");
        assert!(compare_tool_settings(&edited).is_err(), "{from}");
    }
}

/// The keys `stepjail check` expects in a section (from its unknown-key error).
fn expected_keys(section_yaml: &str, dir: &Path) -> Vec<String> {
    let f = dir.join("keys.yml");
    std::fs::write(&f, format!("name: p\ndescription: d\n{section_yaml}\n")).unwrap();
    let out = stepjail(&["check", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    let list = between(&err, "(expected one of: ", ")");
    list.split(", ").map(str::to_string).collect()
}

/// The profile keys the loader knows, as the reference table names them (`secrets.NAME`).
fn profile_keys() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    // Sections, how to put an unknown key into each, and the name the table gives them.
    let sections: &[(&str, &str, &str)] = &[
        ("", "bogus: 1", ""),
        ("filesystem", "filesystem: {bogus: 1}", "filesystem."),
        ("network", "network: {bogus: 1}", "network."),
        ("env", "env: {bogus: 1}", "env."),
        ("process", "process: {bogus: 1}", "process."),
        (
            "process.limits",
            "process: {limits: {bogus: 1}}",
            "process.limits.",
        ),
        ("landlock", "landlock: {bogus: 1}", "landlock."),
        ("secrets.NAME", "secrets: {A: {bogus: 1}}", "secrets.NAME."),
        (
            "secrets.NAME.broker",
            "secrets: {A: {broker: {bogus: 1}}}",
            "secrets.NAME.broker.",
        ),
    ];
    let containers: BTreeSet<&str> = sections.iter().map(|s| s.0).collect();
    let mut keys = BTreeSet::new();
    for (_, yaml, prefix) in sections {
        for k in expected_keys(yaml, dir.path()) {
            let path = format!("{prefix}{k}");
            // `secrets` holds one entry per name; the table documents the entry itself.
            let path = if path == "secrets" {
                "secrets.NAME".to_string()
            } else {
                path
            };
            if !containers.contains(path.as_str())
                || path == "secrets.NAME"
                || path == "secrets.NAME.broker"
            {
                keys.insert(path);
            }
        }
    }
    keys
}

fn documented_profile_keys(page: &str) -> BTreeSet<String> {
    let table = between(page, "| key | type | default | meaning |", "\n\n");
    table
        .lines()
        .skip(2)
        .map(|row| {
            row.trim_start_matches("| `")
                .split('`')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn the_profile_reference_has_every_key_the_loader_knows() {
    let page = read("docs/profiles.md");
    let code = profile_keys();
    assert!(code.contains("network.upstream_proxy") && code.contains("secrets.NAME.broker.in"));
    let doc = documented_profile_keys(&page);
    assert_eq!(
        doc,
        code,
        "documented only: {:?}; known to the loader only: {:?}",
        doc.difference(&code).collect::<Vec<_>>(),
        code.difference(&doc).collect::<Vec<_>>()
    );
    // Broken on purpose: a row dropped from the table is found.
    let edited = page.replacen("| `filesystem.files` |", "| `filesystem.file` |", 1);
    assert_ne!(documented_profile_keys(&edited), code);
}

/// The audit events table: event -> {field -> optional (marked `?`)}.
fn documented_events(page: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
    let table = between(page, "| `event` | when | fields |", "\n\n");
    let mut out = BTreeMap::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let event = cells[0].trim().trim_matches('`').to_string();
        // Field names outside parenthesised remarks, each optionally followed by `?`.
        let mut kept = String::new();
        let mut depth = 0;
        for c in cells[2].chars() {
            match c {
                '(' => depth += 1,
                ')' if depth > 0 => depth -= 1,
                _ if depth == 0 => kept.push(c),
                _ => {}
            }
        }
        let mut fields = BTreeMap::new();
        let parts: Vec<&str> = kept.split('`').collect();
        for (i, name) in parts.iter().enumerate().skip(1).step_by(2) {
            let optional = parts.get(i + 1).is_some_and(|after| after.starts_with('?'));
            fields.insert(name.to_string(), optional);
        }
        out.insert(event, fields);
    }
    out
}

/// The same from schema/audit-v1.schema.json, without the fields every line has.
fn schema_events() -> BTreeMap<String, BTreeMap<String, bool>> {
    let schema: serde_json::Value =
        serde_json::from_str(&read("schema/audit-v1.schema.json")).unwrap();
    let mut out = BTreeMap::new();
    for (_, def) in schema["$defs"].as_object().unwrap() {
        let Some(event) = def["properties"]["event"]["const"].as_str() else {
            continue;
        };
        let required = strings(&def["required"]);
        let fields = def["properties"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !["schema", "v", "ts", "step", "event"].contains(&k.as_str()))
            .map(|k| (k.clone(), !required.contains(k)))
            .collect();
        out.insert(event.to_string(), fields);
    }
    out
}

#[test]
fn the_audit_event_table_is_the_schema() {
    let page = read("docs/audit-log.md");
    let schema = schema_events();
    assert!(schema.len() >= 9 && schema["dns"]["rule"] && !schema["dns"]["rcode"]);
    assert_eq!(documented_events(&page), schema);
    // Broken on purpose: a field dropped, and an optional field shown as always present.
    let edited = page.replacen("`bytes_up` (step → destination), ", "", 1);
    assert_ne!(edited, page);
    assert_ne!(documented_events(&edited), schema);
    let edited = page.replacen("`ci_job`?", "`ci_job`", 1);
    assert_ne!(documented_events(&edited), schema);
}

/// The exit codes the code names: `src/exit.rs` defines every one (`pub const NAME: i32 = N`).
fn exit_codes_in_code() -> BTreeSet<i32> {
    let src = read("src/exit.rs");
    let mut out = BTreeSet::new();
    for part in src.split("pub const ").skip(1) {
        let Some((_, rest)) = part.split_once(": i32 = ") else {
            continue;
        };
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        out.insert(n.parse().unwrap());
    }
    assert!(
        out.len() >= 5,
        "no `pub const NAME: i32 = N` in src/exit.rs (moved? update tests/docs.rs): {out:?}"
    );
    out
}

/// The numbered rows of `stepjail run`'s exit code table in docs/cli.md.
fn documented_exit_codes(page: &str) -> BTreeSet<i32> {
    let table = between(page, "| code | meaning |", "\n\n");
    table
        .lines()
        .skip(2)
        .filter_map(|row| row.trim_start_matches("| ").split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn every_exit_code_the_code_names_is_documented() {
    let page = read("docs/cli.md");
    let code = exit_codes_in_code();
    let ok = |doc: &BTreeSet<i32>| {
        // Every row is a code the code names; every code it names has a row, except 1, which
        // the prose below the table gives for check, audit and step.
        doc.is_subset(&code) && code.iter().all(|c| doc.contains(c) || *c == 1)
    };
    let doc = documented_exit_codes(&page);
    assert!(ok(&doc), "docs/cli.md: {doc:?}, the code: {code:?}");
    assert!(page.contains("`stepjail check`: 0 if every file is valid, 1 if any is not."));
    // Broken on purpose: a row dropped is found.
    let edited = page.replacen("| 126 |", "| 1266 |", 1);
    assert!(!ok(&documented_exit_codes(&edited)));
}
