#!/usr/bin/env node
// Entry of the `spm-orchestrator` bin: Node >= 24 runs the TypeScript sources directly (type stripping).
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`spm-orchestrator: Node >= 24 is required (this is ${process.version})\n`);
  process.exit(1);
}
await import('../src/main.ts');
