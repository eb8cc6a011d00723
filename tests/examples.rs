//! The GitHub Actions examples users copy: `examples/github/<name>/workflow.yml` (to
//! `.github/workflows/ci.yml`) and `examples/github/<name>/stepjail.yml` (to
//! `.github/stepjail.yml`).
//!
//! Every policy passes `stepjail check`; every workflow sends its `run:` steps through
//! `stepjail step` and installs stepjail before the first of them; every step id a policy names
//! is a `run:` step of that job in the workflow beside it. When `actionlint` is on PATH the
//! workflows must pass it too (`.ci/run` always runs it, installing it if needed).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `defaults.run.shell` every example workflow uses, exactly as users are told to write it.
const SHELL: &str = "stepjail step -- bash --noprofile --norc -eo pipefail {0}";

/// The examples there must be (directory names under examples/github/).
const EXPECTED: &[&str] = &["node", "python", "rust"];

/// The action that installs stepjail and freezes the policy.
const ACTION: &str = "stepjail/stepjail@";

fn github_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github")
}

/// Every example directory, sorted by name.
fn examples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(github_dir())
        .expect("examples/github/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    serde_saphyr::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
}

/// A mapping's entries, or a failure naming the file and the key.
fn mapping<'a>(v: &'a Value, file: &Path, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{}: `{what}` is not a mapping: {v}", file.display()))
}

/// `jobs.<job>.steps` of a workflow.
fn workflow_steps<'a>(workflow: &'a Value, file: &Path, job: &str) -> &'a Vec<Value> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: job `{job}` has no `steps` list", file.display()))
}

#[test]
fn every_expected_example_has_a_workflow_a_policy_and_is_documented() {
    let found: Vec<String> = examples().iter().map(|d| name(d)).collect();
    assert_eq!(found, EXPECTED, "directories under examples/github/");
    let readme = std::fs::read_to_string(github_dir().join("README.md"))
        .expect("examples/github/README.md exists");
    for dir in examples() {
        for file in ["workflow.yml", "stepjail.yml"] {
            assert!(
                dir.join(file).is_file(),
                "{} is missing",
                dir.join(file).display()
            );
        }
        assert!(
            readme.contains(&format!("{}/", name(&dir))),
            "examples/github/README.md does not mention {}/",
            name(&dir)
        );
    }
}

#[test]
fn every_policy_passes_stepjail_check() {
    for dir in examples() {
        let policy = dir.join("stepjail.yml");
        let out = Command::new(env!("CARGO_BIN_EXE_stepjail"))
            .arg("check")
            .arg(&policy)
            .output()
            .expect("run stepjail check");
        assert!(
            out.status.success(),
            "stepjail check {} exited with {}\nstdout: {}\nstderr: {}",
            policy.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

#[test]
fn every_run_step_goes_through_stepjail_step() {
    for dir in examples() {
        let file = dir.join("workflow.yml");
        let workflow = yaml(&file);
        let jobs = mapping(&workflow["jobs"], &file, "jobs");
        assert!(!jobs.is_empty(), "{}: no jobs", file.display());
        for (job, body) in jobs {
            // A job's `defaults.run.shell` wins over the workflow's.
            let shell = body["defaults"]["run"]["shell"]
                .as_str()
                .or_else(|| workflow["defaults"]["run"]["shell"].as_str());
            assert_eq!(
                shell,
                Some(SHELL),
                "{}: job `{job}`: defaults.run.shell",
                file.display()
            );
            for (i, step) in workflow_steps(&workflow, &file, job).iter().enumerate() {
                // A `run:` step with a `shell:` of its own would leave the sandbox.
                if step.get("run").is_some() {
                    assert!(
                        step.get("shell").is_none(),
                        "{}: job `{job}`, step {i} ({}): a `shell:` of its own bypasses stepjail",
                        file.display(),
                        step["id"]
                    );
                }
            }
        }
    }
}

#[test]
fn stepjail_is_installed_before_the_first_run_step() {
    for dir in examples() {
        let file = dir.join("workflow.yml");
        let workflow = yaml(&file);
        let policy = yaml(&dir.join("stepjail.yml"));
        let declares_secrets = policy["jobs"]
            .as_object()
            .into_iter()
            .flat_map(|jobs| jobs.values())
            .filter_map(|job| job["steps"].as_object())
            .flat_map(|steps| steps.values())
            .any(|step| step.get("secrets").is_some());
        for job in mapping(&workflow["jobs"], &file, "jobs").keys() {
            let steps = workflow_steps(&workflow, &file, job);
            let action = steps
                .iter()
                .position(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(ACTION)))
                .unwrap_or_else(|| {
                    panic!("{}: job `{job}` never uses {ACTION}...", file.display())
                });
            let first_run = steps.iter().position(|s| s.get("run").is_some());
            if let Some(first_run) = first_run {
                assert!(
                    action < first_run,
                    "{}: job `{job}`: step {first_run} runs `stepjail step` before the action \
                     at step {action} installs it",
                    file.display()
                );
            }
            let with = &steps[action]["with"];
            assert_eq!(
                with["policy"].as_str(),
                Some(".github/stepjail.yml"),
                "{}: job `{job}`: the action's `policy` input (where the README says to copy \
                 stepjail.yml)",
                file.display()
            );
            if declares_secrets {
                assert!(
                    with["secrets"].as_str().is_some(),
                    "{}: job `{job}`: the policy declares secrets but the action gets no \
                     `secrets` input",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn every_step_the_policy_lists_is_a_run_step_of_the_workflow() {
    for dir in examples() {
        let policy_file = dir.join("stepjail.yml");
        let workflow_file = dir.join("workflow.yml");
        let policy = yaml(&policy_file);
        let workflow = yaml(&workflow_file);
        let jobs = mapping(&policy["jobs"], &policy_file, "jobs");
        assert!(!jobs.is_empty(), "{}: lists no jobs", policy_file.display());
        for (job, body) in jobs {
            assert!(
                workflow["jobs"].get(job).is_some(),
                "{}: job `{job}` is not a job of {}",
                policy_file.display(),
                workflow_file.display()
            );
            let steps = workflow_steps(&workflow, &workflow_file, job);
            let ids: Vec<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                ids.len(),
                "{}: job `{job}` repeats a step id: {ids:?}",
                workflow_file.display()
            );
            let listed = mapping(&body["steps"], &policy_file, &format!("jobs.{job}.steps"));
            assert!(
                !listed.is_empty(),
                "{}: job `{job}` lists no steps",
                policy_file.display()
            );
            for id in listed.keys() {
                let step = steps
                    .iter()
                    .find(|s| s["id"].as_str() == Some(id))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: jobs.{job}.steps.{id}: no step of job `{job}` in {} has \
                             `id: {id}` (ids there: {ids:?})",
                            policy_file.display(),
                            workflow_file.display()
                        )
                    });
                // Only `run:` steps go through the shell; a profile for a `uses:` step would
                // promise a sandbox that never happens.
                assert!(
                    step.get("run").is_some(),
                    "{}: jobs.{job}.steps.{id} is a `uses:` step in {}, which stepjail does not \
                     run",
                    policy_file.display(),
                    workflow_file.display()
                );
            }
        }
    }
}

#[test]
fn workflows_pass_actionlint_when_it_is_installed() {
    let files: Vec<PathBuf> = examples().iter().map(|d| d.join("workflow.yml")).collect();
    let out = match Command::new("actionlint")
        .arg("-no-color")
        .args(&files)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "note: actionlint is not on PATH; skipped linting the example workflows \
                 (.ci/run lints them)"
            );
            return;
        }
        Err(e) => panic!("cannot run actionlint: {e}"),
    };
    assert!(
        out.status.success(),
        "actionlint exited with {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The policy shown in docs/github-actions.md is one `stepjail check` accepts.
#[test]
fn the_documented_policy_example_checks() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/github-actions.md"),
    )
    .unwrap();
    let start = readme
        .find("# .github/stepjail.yml\nversion: 1\n")
        .expect("docs/github-actions.md shows a policy");
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stepjail.yml");
    std::fs::write(&file, &readme[start..end]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stepjail"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
