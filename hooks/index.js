// The GitHub Actions runner's container hook: runs `stepjail hooks` for every hook command.
//
// The runner accepts only .js, .sh and .ps1 hook files (actions/runner
// src/Runner.Worker/Container/ContainerHooks/ContainerHookManager.cs, ValidateHookExecutable)
// and runs a .js one with its own node (`node index.js`), the hook's JSON on stdin. This file
// hands stdin, stdout and stderr to stepjail unchanged, passes on the runner's signals and
// exits with stepjail's exit code.
//
// Point the runner at it in its .env file (see docs/github-hooks.md):
//   ACTIONS_RUNNER_CONTAINER_HOOKS=/opt/stepjail/hooks/index.js
//   ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true
'use strict';

const { spawn } = require('child_process');
const os = require('os');

// Set by the operator: the stepjail binary and the operator's policy file (root-owned paths;
// nothing a workflow can set changes them).
const STEPJAIL = '/usr/local/bin/stepjail';
const CONFIG = '/etc/stepjail/github.yml';

const child = spawn(STEPJAIL, ['hooks', '--config', CONFIG], { stdio: 'inherit' });

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}

child.on('error', err => {
  console.log(`::error title=stepjail hooks::cannot run ${STEPJAIL}: ${err.message}`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  if (code !== null) {
    process.exit(code);
  }
  process.exit(128 + (os.constants.signals[signal] || 0));
});
