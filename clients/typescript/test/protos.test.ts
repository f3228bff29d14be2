/** The committed src/gen is exactly what `npm run generate` makes from protos/ (as
 * tests/api/test_protos.py checks the Python stubs): a proto change needs a regeneration. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { test } from "node:test";
import { VENV } from "./server";

const PACKAGE = resolve(__dirname, "../..");

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath ?? d.path, d.name)))
    .sort();
}

test("regenerating the TypeScript messages changes nothing", () => {
  const out = mkdtempSync(join(tmpdir(), "ts-gen-"));
  try {
    const r = spawnSync("sh", ["scripts/generate.sh", out], {
      cwd: PACKAGE,
      env: { ...process.env, PYTHON: join(VENV, "bin", "python") },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const committed = join(PACKAGE, "src", "gen");
    assert.deepEqual(files(out), files(committed));
    for (const f of files(out)) {
      assert.ok(readFileSync(join(out, f), "utf8") === readFileSync(join(committed, f), "utf8"), `src/gen/${f} is stale: run \`npm run generate\` and commit`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
