/**
 * Real servers for the tests: `translate-svc serve` of this checkout on loopback, port 0, the test
 * checkpoint, waited for through its ready file (--ready-file: written atomically once the ports are
 * bound and the model is warm; never a log line). The virtualenv is TRANSLATE_SVC_VENV (make passes
 * the repository's .venv), else <repo>/.venv.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(__dirname, "../../../..");
export const VENV = process.env.TRANSLATE_SVC_VENV ?? join(REPO, ".venv");
export const SHARED_AUDIO = resolve(REPO, "..", "shared", "audio");
export const TEST_MODEL = join(REPO, "model_cache", "test-model");

export class Server {
  private exited: Promise<number | null>;

  constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly dir: string,
  ) {
    this.exited = new Promise((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.once("exit", (code) => r(code))));
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** SIGTERM (the server drains its streams, then stops) and wait for the exit. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGTERM");
    return this.exited;
  }

  log(): string {
    return existsSync(join(this.dir, "server.log")) ? readFileSync(join(this.dir, "server.log"), "utf8") : "";
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ServeOptions {
  args?: string[];
  /** settings as TRANSLATE_SVC_* variables (e.g. SERVER__DRAIN_S) */
  env?: Record<string, string>;
  /** files to write into the server's directory first (a tokens file, certificates) */
  files?: Record<string, string | Uint8Array>;
}

export async function serve(opts: ServeOptions = {}): Promise<Server> {
  const bin = join(VENV, "bin", "translate-svc");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make install\` (or set TRANSLATE_SVC_VENV)`);
  if (!existsSync(join(TEST_MODEL, "config.json"))) throw new Error(`${TEST_MODEL} is missing: run \`make test\` (it builds it)`);
  const dir = mkdtempSync(join(tmpdir(), "ts-client-server-"));
  for (const [name, body] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), body);
  const ready = join(dir, "ready.json");
  const env: Record<string, string> = { ...process.env, PYTHONPATH: REPO } as Record<string, string>;
  for (const [k, v] of Object.entries(opts.env ?? {})) env[`TRANSLATE_SVC_${k}`] = v;
  const args = ["serve", "--model", TEST_MODEL, "--host", "127.0.0.1", "--port", "0", "--ready-file", ready];
  const { openSync } = await import("node:fs");
  const out = openSync(join(dir, "server.log"), "w");
  const proc = spawn(bin, [...args, ...(opts.args ?? []).map((a) => a.replace("{dir}", dir))], {
    env,
    stdio: ["ignore", out, out],
  });
  const deadline = Date.now() + 300_000;
  while (!existsSync(ready)) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`the server exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${readFileSync(join(dir, "server.log"), "utf8")}`);
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("the server was not ready within 300 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const { port } = JSON.parse(readFileSync(ready, "utf8")) as { port: number };
  return new Server(proc, port, dir);
}

/** A CA and a certificate for 127.0.0.1 and localhost, made by trustme (the project's test CA
 * library) in the virtualenv's Python: nothing checked in. */
export function testCertificates(): { ca: string; cert: string; key: string } {
  const code =
    "import json, trustme; ca = trustme.CA(); c = ca.issue_cert('127.0.0.1', 'localhost'); " +
    "print(json.dumps({'ca': ca.cert_pem.bytes().decode(), 'cert': c.private_key_and_cert_chain_pem.bytes().decode(), " +
    "'key': c.private_key_pem.bytes().decode()}))";
  const r = spawnSync(join(VENV, "bin", "python"), ["-c", code], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`trustme failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { ca: string; cert: string; key: string };
}

/** The 16 kHz mono PCM16 samples of a shared WAV file (its RIFF `data` chunk). */
export function wavPcm16(name: string): Int16Array {
  const buf = readFileSync(join(SHARED_AUDIO, name));
  if (buf.toString("ascii", 0, 4) !== "RIFF" || buf.toString("ascii", 8, 12) !== "WAVE") throw new Error(`${name} is not a WAV file`);
  let at = 12;
  let fmt: { channels: number; rate: number; bits: number } | undefined;
  while (at + 8 <= buf.length) {
    const id = buf.toString("ascii", at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    if (id === "fmt ") fmt = { channels: buf.readUInt16LE(at + 10), rate: buf.readUInt32LE(at + 12), bits: buf.readUInt16LE(at + 22) };
    if (id === "data") {
      if (fmt === undefined || fmt.channels !== 1 || fmt.rate !== 16000 || fmt.bits !== 16) {
        throw new Error(`${name}: expected 16 kHz mono 16-bit PCM, got ${JSON.stringify(fmt)}`);
      }
      const data = buf.subarray(at + 8, at + 8 + size);
      return new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    }
    at += 8 + size + (size % 2);
  }
  throw new Error(`${name} has no data chunk`);
}
