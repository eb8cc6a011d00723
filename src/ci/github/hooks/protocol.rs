//! The container hooks' wire format, as the runner writes and reads it.
//!
//! Checked against:
//! - actions/runner `src/Runner.Worker/Container/ContainerHooks/HookInput.cs` (the input: one
//!   line of camelCase JSON on stdin, `{command, responseFile, args, state}`; the commands'
//!   spellings `prepare_job`, `cleanup_job`, `run_script_step`, `run_container_step`),
//!   `HookResponse.cs` (the response: `{state, context: {container: {id, network, ports},
//!   services}, isAlpine}`; `isAlpine` required when there is a job container),
//!   `ContainerHookManager.cs` (the response file under `RUNNER_TEMP/_runner_hook_responses`,
//!   created empty by the runner before the hook runs and deleted after it is read; an empty
//!   file means "no response"; `entryPointArgs` is the runner's argument string split on spaces;
//!   `prependPath` newest first);
//! - actions/runner-container-hooks `packages/hooklib/src/interfaces.ts` and `examples/*.json`
//!   (the same shapes from the hooks' side; `prependPath` was a string before runner 2.293.0,
//!   see `packages/docker/src/dockerCommands/container.ts`).
//!
//! Input types accept unknown fields: a newer runner may send more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookInput {
    pub command: String,
    #[serde(default)]
    pub response_file: Option<String>,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    #[serde(default)]
    pub state: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareJobArgs {
    #[serde(default)]
    pub container: Option<JobContainer>,
    #[serde(default)]
    pub services: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobContainer {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
    #[serde(default)]
    pub create_options: Option<String>,
    #[serde(default)]
    pub environment_variables: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub user_mount_volumes: Option<Vec<Mount>>,
    #[serde(default)]
    pub system_mount_volumes: Option<Vec<Mount>>,
    #[serde(default)]
    pub port_mappings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub source_volume_path: String,
    pub target_volume_path: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptStepArgs {
    pub entry_point: String,
    #[serde(default)]
    pub entry_point_args: Vec<String>,
    #[serde(default)]
    pub environment_variables: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub prepend_path: Option<PrependPath>,
    #[serde(default)]
    pub working_directory: Option<String>,
}

/// `prependPath`: a list (newest first), or one `:`-joined string from runners before 2.293.0.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PrependPath {
    List(Vec<String>),
    Joined(String),
}

impl PrependPath {
    pub fn entries(&self) -> Vec<String> {
        match self {
            PrependPath::List(v) => v.clone(),
            PrependPath::Joined(s) => s.split(':').map(str::to_string).collect(),
        }
    }
}

/// The response of `prepare_job`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareJobResponse {
    pub state: serde_json::Value,
    pub context: ResponseContext,
    pub is_alpine: bool,
}

#[derive(Debug, Serialize)]
pub struct ResponseContext {
    pub container: Option<ResponseContainer>,
    /// Always a list: the runner iterates it (`UpdateJobContext`).
    pub services: Vec<ResponseContainer>,
}

#[derive(Debug, Serialize)]
pub struct ResponseContainer {
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upstream examples parse (examples/run-script-step.json, trimmed to its args).
    #[test]
    fn upstream_example_shapes_parse() {
        let input: HookInput = serde_json::from_str(
            r#"{"command":"run_script_step","responseFile":null,"state":{"container":"82e8"},
            "args":{"entryPointArgs":["-e","example-script.sh"],"entryPoint":"bash",
            "environmentVariables":{"NODE_ENV":"development"},"prependPath":["/foo/bar","bar/foo"],
            "workingDirectory":"/__w/repo/repo"}}"#,
        )
        .unwrap();
        assert_eq!(input.command, "run_script_step");
        let args: ScriptStepArgs = serde_json::from_value(input.args.unwrap()).unwrap();
        assert_eq!(args.entry_point_args, ["-e", "example-script.sh"]);
        assert_eq!(
            args.prepend_path.unwrap().entries(),
            ["/foo/bar", "bar/foo"]
        );
        let old: ScriptStepArgs = serde_json::from_str(
            r#"{"entryPoint":"sh","prependPath":"/a:/b","workingDirectory":"/__w"}"#,
        )
        .unwrap();
        assert_eq!(old.prepend_path.unwrap().entries(), ["/a", "/b"]);
        let prep: PrepareJobArgs = serde_json::from_str(
            r#"{"container":{"image":"node:22","workingDirectory":"/__w/repo/repo","createOptions":"--cpus 1",
            "environmentVariables":{"NODE_ENV":"development"},"userMountVolumes":[],
            "systemMountVolumes":[{"sourceVolumePath":"/r/_work","targetVolumePath":"/__w","readOnly":false}],
            "registry":null,"portMappings":[]},"services":[]}"#,
        )
        .unwrap();
        let c = prep.container.unwrap();
        assert_eq!(c.image.as_deref(), Some("node:22"));
        assert_eq!(
            c.system_mount_volumes.unwrap()[0].target_volume_path,
            "/__w"
        );
        let resp = serde_json::to_string(&PrepareJobResponse {
            state: serde_json::json!({"stepjailJob": "/x"}),
            context: ResponseContext {
                container: Some(ResponseContainer { id: "sj".into() }),
                services: Vec::new(),
            },
            is_alpine: false,
        })
        .unwrap();
        assert_eq!(
            resp,
            r#"{"state":{"stepjailJob":"/x"},"context":{"container":{"id":"sj"},"services":[]},"isAlpine":false}"#
        );
    }
}
