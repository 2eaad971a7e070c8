/**
 * Secret hygiene with canaries. A test collects every token it saw (input mytokens, rotated ones, access tokens,
 * GitHub tokens, whatever a component announced to a masker) and then checks that none of them appears on any
 * surface a user or operator can read: logs, error messages, metrics, status pages, summaries, files.
 *
 * A JWT is also looked for by its payload and by its signature alone (a leak of either is a leak), and every value
 * by its base64 form. Findings name the surface, the canary's label and the line, never the value, so a failing
 * test does not print the token it caught.
 *
 * @example
 * const canaries = new Canaries();
 * canaries.add('input mytoken', token);
 * canaries.addMasked(run.stdout); // every ::add-mask:: value
 * assertNoCanaries(canaries, { stdout: withoutMaskLines(run.stdout), stderr: run.stderr });
 */
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Shorter values are not taken as canaries: they would match by chance. */
const MIN_CANARY_LENGTH = 16;
/** JWT segments shorter than this (headers such as `eyJhbGciOiJFUzUxMiJ9`) are shared by many tokens. */
const MIN_SEGMENT_LENGTH = 40;

export interface Finding {
  /** Name of the surface, e.g. `stderr` or `file runner-temp/x.json`. */
  surface: string;
  /** Label of the canary found (never its value). */
  canary: string;
  /** Which form was found: `whole`, `jwt payload`, `jwt signature` or `base64`. */
  form: string;
  /** 1-based line of the surface where it was found. */
  line: number;
}

/** A set of secret values, each with a label for messages. */
export class Canaries {
  readonly #values = new Map<string, string>();

  /** Adds a value (ignored when undefined or too short to be a token). Surrounding whitespace is dropped. */
  add(label: string, value: string | undefined | null): this {
    const trimmed = value?.trim();
    if (trimmed === undefined || trimmed.length < MIN_CANARY_LENGTH) return this;
    if (!this.#values.has(trimmed)) this.#values.set(trimmed, label);
    return this;
  }

  /** Adds every value announced in `::add-mask::` workflow commands of `stdout` (runner escaping undone). */
  addMasked(stdout: string, label = 'masked value'): this {
    for (const line of stdout.split('\n')) {
      if (!line.startsWith('::add-mask::')) continue;
      this.add(label, unescapeCommand(line.slice('::add-mask::'.length)));
    }
    return this;
  }

  /** Adds all canaries of another set. */
  addAll(other: Canaries): this {
    for (const [value, label] of other.#values) this.add(label, value);
    return this;
  }

  /** A copy without `value` (for a surface that is meant to hold exactly that one secret). */
  except(value: string): Canaries {
    const copy = new Canaries();
    for (const [v, label] of this.#values) if (v !== value.trim()) copy.add(label, v);
    return copy;
  }

  get size(): number {
    return this.#values.size;
  }

  /** True when `value` (trimmed) is one of the canaries. */
  has(value: string): boolean {
    return this.#values.has(value.trim());
  }

  /** The forms to look for, with the canary's label. */
  needles(): { label: string; form: string; needle: string }[] {
    const needles: { label: string; form: string; needle: string }[] = [];
    for (const [value, label] of this.#values) {
      needles.push({ label, form: 'whole', needle: value });
      needles.push({ label, form: 'base64', needle: Buffer.from(value).toString('base64') });
      const segments = value.split('.');
      if (segments.length !== 3) continue;
      const [, payload = '', signature = ''] = segments;
      if (payload.length >= MIN_SEGMENT_LENGTH) {
        needles.push({ label, form: 'jwt payload', needle: payload });
      }
      if (signature.length >= MIN_SEGMENT_LENGTH) {
        needles.push({ label, form: 'jwt signature', needle: signature });
      }
    }
    return needles;
  }
}

/** Every place a canary appears on the given surfaces (name → text). */
export function findCanaries(canaries: Canaries, surfaces: Record<string, string>): Finding[] {
  const findings: Finding[] = [];
  const needles = canaries.needles();
  for (const [surface, text] of Object.entries(surfaces)) {
    const lines = text.split('\n');
    for (const { label, form, needle } of needles) {
      const index = lines.findIndex((line) => line.includes(needle));
      if (index !== -1) findings.push({ surface, canary: label, form, line: index + 1 });
    }
  }
  return findings;
}

/** Throws, naming surface, canary label and line (never the value), when a canary appears anywhere. */
export function assertNoCanaries(canaries: Canaries, surfaces: Record<string, string>): void {
  if (canaries.size === 0) throw new Error('no canaries collected: the check would prove nothing');
  const findings = findCanaries(canaries, surfaces);
  if (findings.length === 0) return;
  const list = findings.map((f) => `${f.canary} (${f.form}) in ${f.surface}, line ${f.line}`);
  throw new Error(`secret leaked: ${list.join('; ')}`);
}

/** `stdout` without its `::add-mask::` lines, the one place a runner-bound secret may appear. */
export function withoutMaskLines(stdout: string): string {
  return stdout
    .split('\n')
    .map((line) => (line.startsWith('::add-mask::') ? '' : line))
    .join('\n');
}

/**
 * The text of every regular file under `dir`, keyed `file <path relative to base>`, except the paths listed in
 * `except` (absolute). Symbolic links are reported, not followed.
 */
export async function readTree(
  dir: string,
  options: { base?: string; except?: readonly string[] } = {},
): Promise<Record<string, string>> {
  const base = options.base ?? dir;
  const except = new Set(options.except ?? []);
  const surfaces: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true })) {
    const path = join(dir, entry);
    if (except.has(path)) continue;
    const info = await lstat(path);
    const name = `file ${relative(base, path)}`;
    if (info.isSymbolicLink()) surfaces[name] = '(symbolic link)';
    else if (info.isFile()) surfaces[name] = await readFile(path, 'utf8');
  }
  return surfaces;
}

/** Undoes the escaping @actions/core applies to workflow command data. */
function unescapeCommand(data: string): string {
  return data.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
}
