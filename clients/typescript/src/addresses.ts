/**
 * Which server a call goes to: the client's own round-robin over several `host:port` addresses
 * (the next one per call, and the next again on a retry or a stream's move), or one gRPC target
 * with a scheme (`dns:///svc.ns:50051`), resolved and balanced by gRPC (round_robin). Pure.
 * Mirrors translate_svc/client/_addresses.py.
 */
import { isIP } from "node:net";

const SCHEMES = ["dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "xds:", "vsock:", "passthrough:"];

/** The addresses to rotate over (one entry for a gRPC target with a scheme). */
export function parseTargets(targets: string | readonly string[]): string[] {
  let items: string[];
  if (typeof targets === "string") {
    const t = targets.trim();
    items = SCHEMES.some((s) => t.startsWith(s)) ? [t] : t.split(",").map((p) => p.trim());
  } else {
    items = targets.map((p) => p.trim());
  }
  const out = [...new Set(items.filter((p) => p.length > 0))];
  if (out.length === 0) {
    throw new RangeError('no server address given: pass "host:port", a list of them, or a target like dns:///svc:50051');
  }
  return out;
}

/** True when `target` stays on this machine: a loopback host or a Unix socket. A name other than
 * `localhost` is not trusted to resolve to one. */
export function isLocal(target: string): boolean {
  let t = target.trim();
  if (t.startsWith("unix:") || t.startsWith("unix-abstract:")) return true;
  for (const scheme of ["dns:///", "dns:", "ipv4:", "ipv6:", "passthrough:///"]) {
    if (t.startsWith(scheme)) {
      t = t.slice(scheme.length);
      break;
    }
  }
  const hosts = t.split(",").map((h) => h.trim()).filter((h) => h.length > 0);
  return hosts.length > 0 && hosts.every(loopbackHost);
}

function loopbackHost(address: string): boolean {
  let host: string;
  if (address.startsWith("[")) host = address.slice(1, address.indexOf("]"));
  else if (address.split(":").length === 2) host = address.slice(0, address.lastIndexOf(":"));
  else host = address;
  if (host.toLowerCase() === "localhost") return true;
  const kind = isIP(host);
  if (kind === 4) return host.split(".")[0] === "127";
  if (kind === 6) return host === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(host);
  return false;
}

/** Round-robin over addresses; `next(avoid)` skips `avoid` (the one that just failed) when
 * another exists. */
export class AddressRotation {
  private i = 0;

  constructor(readonly addresses: readonly string[]) {
    if (addresses.length === 0) throw new RangeError("AddressRotation needs at least one address");
  }

  next(avoid?: string): string {
    const n = this.addresses.length;
    for (let k = 0; k < n; k++) {
      const a = this.addresses[this.i % n]!;
      this.i = (this.i + 1) % n;
      if (a !== avoid || n === 1) return a;
    }
    return this.addresses[0]!;
  }
}
