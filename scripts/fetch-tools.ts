// Fetches Debian's Prometheus binaries into `.tools/` without installing anything system-wide.
//
// `apt-get download` places the .deb files in `.tools/debs/`, `dpkg -x` unpacks them into
// `.tools/root/`, and `.tools/bin/` gets relative symlinks to the three binaries the tests use.
// A marker file lists what was unpacked, so a second run only reads it and checks the links.
// Nothing is installed and no service is started: the packages' maintainer scripts never run.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ToolsErrorCode =
  | 'ERR_TOOLS_APT_MISSING'
  | 'ERR_TOOLS_DOWNLOAD_FAILED'
  | 'ERR_TOOLS_UNPACK_FAILED'
  | 'ERR_TOOLS_MISSING';

/** Raised when the Prometheus tools cannot be fetched or are not there. */
export class ToolsError extends Error {
  readonly code: ToolsErrorCode;

  constructor(code: ToolsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ToolsError';
    this.code = code;
  }
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = join(repoRoot, '.tools');

/** Where everything lives; all paths are absolute. */
export const toolsLayout = {
  dir: toolsDir,
  debs: join(toolsDir, 'debs'),
  root: join(toolsDir, 'root'),
  bin: join(toolsDir, 'bin'),
  marker: join(toolsDir, 'unpacked.json'),
} as const;

/** Debian packages to fetch, and the binaries exposed from each (link name to path in the package). */
export const toolPackages = [
  {
    name: 'prometheus',
    binaries: { prometheus: 'usr/bin/prometheus', promtool: 'usr/bin/promtool' },
  },
  {
    name: 'prometheus-blackbox-exporter',
    binaries: { blackbox_exporter: 'usr/bin/prometheus-blackbox-exporter' },
  },
] as const;

interface Marker {
  debs: { file: string; size: number }[];
}

// apt-get prints these when its package lists are missing or stale; only then is an update worth it.
const NO_LISTS =
  /unable to locate package|no installation candidate|no candidate|no packages found/i;

function log(line: string): void {
  console.log(`tools: ${line}`);
}

function run(cmd: string, args: string[], cwd: string) {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new ToolsError('ERR_TOOLS_APT_MISSING', `${cmd} not found: a Debian system is required`, {
      cause: result.error,
    });
  }
  return result;
}

function findDeb(pkg: string): string | undefined {
  if (!existsSync(toolsLayout.debs)) return undefined;
  return readdirSync(toolsLayout.debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
}

function describeDebs(): Marker['debs'] {
  return toolPackages.map(({ name }) => {
    const file = findDeb(name);
    if (file === undefined)
      throw new ToolsError('ERR_TOOLS_DOWNLOAD_FAILED', `no .deb for ${name}`);
    return { file, size: statSync(join(toolsLayout.debs, file)).size };
  });
}

function linkPath(link: string): string {
  return join(toolsLayout.bin, link);
}

function allLinks(): [string, string][] {
  return toolPackages.flatMap(({ binaries }) => Object.entries(binaries));
}

/** True when the marker matches the .deb files on disk and every link resolves to a file. */
export function toolsUpToDate(): boolean {
  if (!existsSync(toolsLayout.marker)) return false;
  try {
    const marker = JSON.parse(readFileSync(toolsLayout.marker, 'utf8')) as Marker;
    const current = describeDebs();
    if (JSON.stringify(marker.debs) !== JSON.stringify(current)) return false;
  } catch {
    return false;
  }
  return allLinks().every(([link]) => existsSync(linkPath(link)));
}

function aptDownload(missing: string[]) {
  return run('apt-get', ['download', '-q', ...missing], toolsLayout.debs);
}

function download(): void {
  const missing = toolPackages.map((p) => p.name).filter((name) => findDeb(name) === undefined);
  if (missing.length === 0) return;

  mkdirSync(toolsLayout.debs, { recursive: true });
  log(`downloading ${missing.join(', ')}`);
  let result = aptDownload(missing);
  if (result.status !== 0 && NO_LISTS.test(result.stderr)) {
    log('package lists missing, running apt-get update');
    const update = run('apt-get', ['update', '-q'], toolsLayout.dir);
    if (update.status !== 0) throw downloadError('apt-get update', update.stderr);
    result = aptDownload(missing);
  }
  if (result.status !== 0) throw downloadError('apt-get download', result.stderr);
}

function downloadError(step: string, stderr: string): ToolsError {
  const detail = stderr.trim().split('\n').filter(Boolean).at(-1) ?? 'no output';
  return new ToolsError('ERR_TOOLS_DOWNLOAD_FAILED', `${step} failed: ${detail}`);
}

function unpack(debs: Marker['debs']): void {
  rmSync(toolsLayout.root, { recursive: true, force: true });
  rmSync(toolsLayout.bin, { recursive: true, force: true });
  mkdirSync(toolsLayout.root, { recursive: true });
  mkdirSync(toolsLayout.bin, { recursive: true });

  for (const { file } of debs) {
    const result = run('dpkg', ['-x', join(toolsLayout.debs, file), toolsLayout.root], repoRoot);
    if (result.status !== 0) {
      // A truncated download would fail the same way on every run: drop it so the next run fetches it again.
      rmSync(join(toolsLayout.debs, file), { force: true });
      throw new ToolsError(
        'ERR_TOOLS_UNPACK_FAILED',
        `dpkg -x ${file} failed: ${result.stderr.trim()}`,
      );
    }
  }
  for (const [link, target] of allLinks()) {
    const absolute = join(toolsLayout.root, target);
    if (!existsSync(absolute))
      throw new ToolsError('ERR_TOOLS_UNPACK_FAILED', `${target} not in package`);
    symlinkSync(relative(toolsLayout.bin, absolute), linkPath(link));
  }
}

/** Downloads and unpacks the tools unless the marker says they are already in place. */
export function fetchTools(): void {
  if (toolsUpToDate()) {
    log('up to date');
    return;
  }
  mkdirSync(toolsLayout.dir, { recursive: true });
  rmSync(toolsLayout.marker, { force: true });
  download();

  const debs = describeDebs();
  unpack(debs);
  writeFileSync(toolsLayout.marker, `${JSON.stringify({ debs } satisfies Marker, null, 2)}\n`);
  log(
    `ready in ${relative(repoRoot, toolsLayout.bin)}/: ${allLinks()
      .map(([l]) => l)
      .join(', ')}`,
  );
}

if (import.meta.main) {
  try {
    fetchTools();
  } catch (err) {
    const message = err instanceof ToolsError ? `${err.code}: ${err.message}` : String(err);
    console.error(`tools: ${message}`);
    process.exitCode = 1;
  }
}
