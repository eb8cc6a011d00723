//! The operator's policy for the GitLab custom executor (`/etc/stepjail/gitlab.yml`), and the
//! repository's optional narrowing of it.
//!
//! ```yaml
//! version: 1
//! gitlab_url: https://gitlab.example.com   # git, cache and artifact stages may reach it
//! builds_dir: /var/lib/stepjail/builds     # each job gets <builds_dir>/<job id>
//! cache_dir: /var/lib/stepjail/cache
//! state_dir: /var/lib/stepjail/gitlab      # frozen job state; never visible to a stage
//! audit_dir: /var/log/stepjail/gitlab      # one JSON Lines log per job: <job id>.jsonl
//! user: gitlab-job                         # root runner only: the user stages run as
//! repository_policy: narrow                # or `ignore` (default): .gitlab/stepjail.yml
//! default: { profile: offline }            # every job nothing below names
//! projects:
//!   group/app:                             # the job's project (from the job response)
//!     default: { profile: offline }
//!     jobs:
//!       test: { profile: npm }             # the job's name
//!       deploy: { profile: /etc/stepjail/deploy.yml, variables: [DEPLOY_KEY, CI_JOB_TOKEN] }
//! ```
//!
//! Parsed through the project's one YAML entry point (`crate::policy::parse_yaml`): unknown
//! and duplicate keys are errors naming file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::policy::PolicyError;
use crate::policy::model::Location;

/// Where the operator's policy is, unless `--policy` or `STEPJAIL_GITLAB_POLICY` says.
pub const DEFAULT_POLICY: &str = "/etc/stepjail/gitlab.yml";
/// The repository's own policy, relative to the project directory.
pub const REPOSITORY_POLICY: &str = ".gitlab/stepjail.yml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    version: Spanned<String>,
    gitlab_url: Spanned<String>,
    builds_dir: Spanned<String>,
    cache_dir: Spanned<String>,
    state_dir: Option<Spanned<String>>,
    audit_dir: Option<Spanned<String>>,
    resolver: Option<Spanned<String>>,
    user: Option<String>,
    repository_policy: Option<Spanned<String>>,
    default: Option<EntryWire>,
    projects: Option<BTreeMap<String, ProjectWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectWire {
    default: Option<EntryWire>,
    jobs: Option<BTreeMap<String, EntryWire>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    profile: Spanned<String>,
    variables: Option<Vec<Spanned<String>>>,
}

/// What a job's build stages run under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// A built-in profile name or an absolute path to a profile file.
    pub profile: String,
    /// Job variables the build stages receive although they are secret (not public, or
    /// masked); `CI_JOB_TOKEN` here gives them the job token.
    pub variables: Vec<String>,
    /// Where the rule was written (`file:line:col`), or what chose it.
    pub from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RepositoryMode {
    /// The repository's file is not read.
    Ignore,
    /// The repository's file may narrow the operator's rule, never widen it.
    Narrow,
}

#[derive(Debug, Clone)]
pub struct OperatorPolicy {
    pub source: String,
    /// scheme, host, port of the GitLab instance.
    pub gitlab: (String, String, u16),
    pub builds_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub audit_dir: PathBuf,
    pub resolver: Option<std::net::SocketAddr>,
    pub user: Option<String>,
    pub repository: RepositoryMode,
    default: Rule,
    projects: BTreeMap<String, (Option<Rule>, BTreeMap<String, Rule>)>,
}

fn loc(file: &str, s: &Spanned<impl Sized>) -> Location {
    Location {
        file: file.to_string(),
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
    }
}

fn invalid(file: &str, s: &Spanned<String>, path: &str, expected: &str) -> PolicyError {
    PolicyError::InvalidValue {
        at: loc(file, s),
        path: path.to_string(),
        expected: expected.to_string(),
        found: s.value.clone(),
    }
}

fn abs_dir(file: &str, s: &Spanned<String>, path: &str) -> Result<PathBuf, PolicyError> {
    let p = PathBuf::from(&s.value);
    if !p.is_absolute() || s.value.split('/').any(|c| c == "..") {
        return Err(invalid(file, s, path, "an absolute path without `..`"));
    }
    Ok(p)
}

/// Checks a job's entry: its profile loads, its variable names are names.
fn rule(file: &str, e: &EntryWire, key: &str) -> Result<Rule, PolicyError> {
    let p = &e.profile;
    let looks_builtin = !p.value.contains('/');
    if !looks_builtin && !Path::new(&p.value).is_absolute() {
        return Err(invalid(
            file,
            p,
            &format!("{key}.profile"),
            "a built-in profile name or an absolute path",
        ));
    }
    crate::policy::load(&p.value)?;
    let mut variables = Vec::new();
    for v in e.variables.iter().flatten() {
        let ok = !v.value.is_empty()
            && !v.value.starts_with(|c: char| c.is_ascii_digit())
            && v.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(invalid(
                file,
                v,
                &format!("{key}.variables"),
                "a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        variables.push(v.value.clone());
    }
    Ok(Rule {
        profile: p.value.clone(),
        variables,
        from: loc(file, p).to_string(),
    })
}

/// `scheme://host[:port]` -> (scheme, lower-case host, port).
fn parse_url(file: &str, s: &Spanned<String>) -> Result<(String, String, u16), PolicyError> {
    let bad = || {
        invalid(
            file,
            s,
            "gitlab_url",
            "http(s)://host[:port] without a path",
        )
    };
    let (scheme, rest) = s.value.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return Err(bad()),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (rest, default_port),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((scheme.to_string(), host.to_ascii_lowercase(), port))
}

impl OperatorPolicy {
    /// Reads the operator's file. It must belong to root or to the user stepjail runs as, and
    /// no one else may write it: a policy a job could edit decides nothing.
    pub fn load(path: &Path) -> Result<OperatorPolicy, String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(format!(
                "{}: owned by uid {}; the operator's policy must belong to root or to the runner's user (uid {me})",
                path.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{}: writable by group or others (mode {:o}); the operator's policy must not be",
                path.display(),
                meta.mode() & 0o7777
            ));
        }
        let w: Wire = crate::policy::read_yaml(path).map_err(|e| e.to_string())?;
        Self::from_wire(w, &path.display().to_string()).map_err(|e| e.to_string())
    }

    fn from_wire(w: Wire, file: &str) -> Result<OperatorPolicy, PolicyError> {
        if w.version.value.trim() != "1" {
            return Err(invalid(file, &w.version, "version", "1"));
        }
        let repository = match &w.repository_policy {
            None => RepositoryMode::Ignore,
            Some(s) if s.value == "ignore" => RepositoryMode::Ignore,
            Some(s) if s.value == "narrow" => RepositoryMode::Narrow,
            Some(s) => {
                return Err(invalid(
                    file,
                    s,
                    "repository_policy",
                    "`ignore` or `narrow`",
                ));
            }
        };
        let resolver = match &w.resolver {
            None => None,
            Some(s) => Some(
                s.value
                    .parse()
                    .map_err(|_| invalid(file, s, "resolver", "ADDR:PORT"))?,
            ),
        };
        let default = match &w.default {
            Some(e) => rule(file, e, "default")?,
            None => Rule {
                profile: "default".into(),
                variables: Vec::new(),
                from: "stepjail's default (the operator's policy has no `default`)".into(),
            },
        };
        let mut projects = BTreeMap::new();
        for (name, p) in w.projects.unwrap_or_default() {
            let key = format!("projects.{name}");
            let d = match &p.default {
                Some(e) => Some(rule(file, e, &format!("{key}.default"))?),
                None => None,
            };
            let mut jobs = BTreeMap::new();
            for (job, e) in p.jobs.unwrap_or_default() {
                jobs.insert(job.clone(), rule(file, &e, &format!("{key}.jobs.{job}"))?);
            }
            projects.insert(name, (d, jobs));
        }
        let dir = |s: &Option<Spanned<String>>, key: &str, fallback: &str| match s {
            Some(s) => abs_dir(file, s, key),
            None => Ok(PathBuf::from(fallback)),
        };
        Ok(OperatorPolicy {
            source: file.to_string(),
            gitlab: parse_url(file, &w.gitlab_url)?,
            builds_dir: abs_dir(file, &w.builds_dir, "builds_dir")?,
            cache_dir: abs_dir(file, &w.cache_dir, "cache_dir")?,
            state_dir: dir(&w.state_dir, "state_dir", "/var/lib/stepjail/gitlab")?,
            audit_dir: dir(&w.audit_dir, "audit_dir", "/var/log/stepjail/gitlab")?,
            resolver,
            user: w.user,
            repository,
            default,
            projects,
        })
    }

    /// The rule for job `job` of project `project`: the job's entry, else the project's
    /// default, else the policy's default.
    pub fn for_job(&self, project: &str, job: &str) -> Rule {
        match self.projects.get(project) {
            Some((d, jobs)) => jobs
                .get(job)
                .or(d.as_ref())
                .unwrap_or(&self.default)
                .clone(),
            None => self.default.clone(),
        }
    }
}

/// `.gitlab/stepjail.yml` in the repository: per job, less than the operator allows.
///
/// ```yaml
/// version: 1
/// jobs:
///   test: { network: none, variables: [] }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoWire {
    version: Spanned<String>,
    jobs: Option<BTreeMap<String, RepoJobWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoJobWire {
    network: Option<Spanned<String>>,
    variables: Option<Vec<Spanned<String>>>,
}

/// What a repository's file does to one job's rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Narrowing {
    /// `network: none`: the build stages get no network at all.
    pub no_network: bool,
    /// `variables:` — only these of the operator's declared variables (None: all of them).
    pub variables: Option<Vec<String>>,
    pub from: String,
}

/// Reads the repository's file for job `job` against the operator's `rule`. Anything that
/// would widen the rule is an error (the job fails), never silently dropped.
pub fn narrowing(text: &str, label: &str, job: &str, rule: &Rule) -> Result<Narrowing, String> {
    let w: RepoWire = crate::policy::parse_yaml(text, label).map_err(|e| e.to_string())?;
    if w.version.value.trim() != "1" {
        return Err(invalid(label, &w.version, "version", "1").to_string());
    }
    let Some(j) = w.jobs.unwrap_or_default().remove(job) else {
        return Ok(Narrowing::default());
    };
    let mut n = Narrowing {
        from: label.to_string(),
        ..Narrowing::default()
    };
    if let Some(net) = &j.network {
        if net.value != "none" {
            return Err(invalid(
                label,
                net,
                &format!("jobs.{job}.network"),
                "`none` (a repository may only take network away; the operator's policy decides what is reachable)",
            )
            .to_string());
        }
        n.no_network = true;
    }
    if let Some(vars) = &j.variables {
        let mut keep = Vec::new();
        for v in vars {
            if !rule.variables.contains(&v.value) {
                return Err(invalid(
                    label,
                    v,
                    &format!("jobs.{job}.variables"),
                    &format!(
                        "one of the variables the operator's policy gives this job ({}); a repository cannot add any",
                        if rule.variables.is_empty() {
                            "none".to_string()
                        } else {
                            rule.variables.join(", ")
                        }
                    ),
                )
                .to_string());
            }
            keep.push(v.value.clone());
        }
        n.variables = Some(keep);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OperatorPolicy, String> {
        let w: Wire = crate::policy::parse_yaml(text, "gitlab.yml").map_err(|e| e.to_string())?;
        OperatorPolicy::from_wire(w, "gitlab.yml").map_err(|e| e.to_string())
    }

    const BASE: &str =
        "version: 1\ngitlab_url: http://gitlab.test\nbuilds_dir: /b\ncache_dir: /c\n";

    #[test]
    fn jobs_projects_and_the_default() {
        let p = parse(&format!(
            "{BASE}default: {{ profile: offline }}\nprojects:\n  g/app:\n    default: {{ profile: default }}\n    jobs:\n      test: {{ profile: npm, variables: [TOKEN_A] }}\n"
        ))
        .unwrap();
        assert_eq!(p.gitlab, ("http".into(), "gitlab.test".into(), 80));
        let t = p.for_job("g/app", "test");
        assert_eq!(
            (t.profile.as_str(), t.variables.clone()),
            ("npm", vec!["TOKEN_A".to_string()])
        );
        assert_eq!(t.from, "gitlab.yml:10:24");
        assert_eq!(p.for_job("g/app", "lint").profile, "default");
        assert_eq!(p.for_job("other/x", "test").profile, "offline");
        assert_eq!(p.repository, RepositoryMode::Ignore);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse(&format!("{BASE}defualt: {{ profile: offline }}\n")).unwrap_err();
        assert!(e.starts_with("gitlab.yml:5:1"), "{e}");
        assert!(e.contains("defualt"), "{e}");
        let e = parse(&format!("{BASE}default: {{ profile: nosuch }}\n")).unwrap_err();
        assert!(e.contains("nosuch"), "{e}");
        let e = parse(&format!("{BASE}repository_policy: widen\n")).unwrap_err();
        assert!(e.starts_with("gitlab.yml:5:20"), "{e}");
        let e =
            parse("version: 1\ngitlab_url: ftp://x\nbuilds_dir: /b\ncache_dir: /c\n").unwrap_err();
        assert!(e.starts_with("gitlab.yml:2:13"), "{e}");
    }

    /// The YAML blocks of docs/gitlab.md: the operator's policy and the repository's.
    #[test]
    fn the_documented_policies_parse() {
        let doc = include_str!("../../../docs/gitlab.md");
        let blocks: Vec<String> = doc
            .split("```yaml gitlab\n")
            .skip(1)
            .map(|b| {
                let body = b.split("```").next().unwrap();
                // The first block sits in a numbered list, indented by three spaces.
                let indented = body.starts_with("   ");
                body.lines()
                    .map(|l| {
                        if indented {
                            l.get(3..).unwrap_or("")
                        } else {
                            l
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        // The deploy profile is a file only the operator has.
        let p = parse(&blocks[0].replace("/etc/stepjail/deploy.yml", "default")).unwrap();
        let d = p.for_job("group/app", "deploy");
        assert_eq!(d.variables, vec!["DEPLOY_KEY", "CI_JOB_TOKEN"]);
        assert_eq!(p.for_job("group/app", "test").profile, "npm");
        assert_eq!(p.for_job("group/app", "lint").profile, "offline");
        let n = narrowing(&blocks[1], "repo.yml", "test", &d).unwrap();
        assert!(n.no_network && n.variables == Some(vec![]));
    }

    #[test]
    fn a_repository_may_narrow_but_never_widen() {
        let rule = Rule {
            profile: "npm".into(),
            variables: vec!["A".into(), "B".into()],
            from: String::new(),
        };
        let n = narrowing(
            "version: 1\njobs:\n  test: { network: none, variables: [A] }\n",
            "repo.yml",
            "test",
            &rule,
        )
        .unwrap();
        assert!(n.no_network);
        assert_eq!(n.variables, Some(vec!["A".to_string()]));
        let e = narrowing(
            "version: 1\njobs:\n  test: { variables: [C] }\n",
            "repo.yml",
            "test",
            &rule,
        )
        .unwrap_err();
        assert!(
            e.starts_with("repo.yml:3:23") && e.contains("cannot add"),
            "{e}"
        );
        let e = narrowing(
            "version: 1\njobs:\n  test: { network: enforce }\n",
            "repo.yml",
            "test",
            &rule,
        )
        .unwrap_err();
        assert!(e.contains("only take network away"), "{e}");
        let e = narrowing(
            "version: 1\njobs:\n  test: { profile: default }\n",
            "repo.yml",
            "test",
            &rule,
        )
        .unwrap_err();
        assert!(e.starts_with("repo.yml:3:11"), "{e}");
        assert_eq!(
            narrowing("version: 1\n", "repo.yml", "test", &rule).unwrap(),
            Narrowing::default()
        );
    }
}
