#!/usr/bin/env node
// The `kernel-repro` command (package.json "bin"): runs harness/cli/main.ts through tsx's loader,
// so a clone (`npx kernel-repro ...`) and a global install need no build step.
import { register } from 'tsx/esm/api';

register();
await import('../harness/cli/main.ts');
