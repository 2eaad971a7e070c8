/**
 * `npm audit --omit=dev`: no known vulnerability in the production dependencies (the code the Action bundles and
 * the probe runs). Some registries and mirrors do not offer the audit endpoint (the bulk advisory route answers
 * 405, or the host is unreachable); that is reported as "unavailable" with npm's reason rather than as a pass or a
 * failure, so that a machine with a normal registry enforces the check and one without it says why it could not.
 *
 *   node scripts/audit.ts [--strict]     exit 1 on a vulnerability; with --strict also when unavailable
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

export type AuditOutcome =
  | { status: 'clean' }
  | { status: 'vulnerable'; counts: Record<string, number>; packages: string[] }
  | { status: 'unavailable'; reason: string };

const ROOT = resolve(import.meta.dirname, '..');
const SEVERITIES = ['info', 'low', 'moderate', 'high', 'critical'];

/** Runs the audit in `cwd` (default: this project) and interprets npm's JSON report. */
export async function audit(cwd = ROOT): Promise<AuditOutcome> {
  const run = await npmAudit(cwd);
  if (run.spawnError !== undefined) return { status: 'unavailable', reason: run.spawnError };
  let report: Record<string, unknown>;
  try {
    report = JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {
    return { status: 'unavailable', reason: firstLine(run.stderr) || 'npm printed no report' };
  }
  return interpret(report, run.stderr);
}

/** Turns npm's report (or its error object) into an outcome. */
export function interpret(report: Record<string, unknown>, stderr = ''): AuditOutcome {
  const metadata = report.metadata as { vulnerabilities?: Record<string, number> } | undefined;
  const found = metadata?.vulnerabilities;
  if (found === undefined) return { status: 'unavailable', reason: errorReason(report, stderr) };
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, found[s] ?? 0]));
  const total = SEVERITIES.reduce((sum, s) => sum + (found[s] ?? 0), 0);
  if (total === 0) return { status: 'clean' };
  const packages = Object.keys((report.vulnerabilities as Record<string, unknown>) ?? {}).sort();
  return { status: 'vulnerable', counts, packages };
}

function errorReason(report: Record<string, unknown>, stderr: string): string {
  const error = report.error as { summary?: string; code?: string } | undefined;
  const message = typeof report.message === 'string' ? report.message : undefined;
  return message || error?.summary || error?.code || firstLine(stderr) || 'no audit report';
}

function npmAudit(
  cwd: string,
): Promise<{ stdout: string; stderr: string; spawnError: string | undefined }> {
  return new Promise((done) => {
    execFile(
      'npm',
      ['audit', '--omit=dev', '--json'],
      { cwd, maxBuffer: 32 * 1024 * 1024, timeout: 120_000 },
      (error, stdout, stderr) => {
        // npm exits 1 both for findings and for failures; only a failure to start it at all is an error here.
        const spawnError =
          error !== null && typeof error.code === 'string'
            ? `cannot run npm (${error.code})`
            : undefined;
        done({ stdout, stderr, spawnError });
      },
    );
  });
}

function firstLine(text: string): string {
  return text.split('\n').find((line) => line.trim() !== '') ?? '';
}

async function main(): Promise<void> {
  const strict = process.argv.includes('--strict');
  const outcome = await audit();
  switch (outcome.status) {
    case 'clean':
      console.log('npm audit --omit=dev: no known vulnerability in production dependencies');
      return;
    case 'vulnerable': {
      const counts = Object.entries(outcome.counts)
        .filter(([, n]) => n > 0)
        .map(([severity, n]) => `${n} ${severity}`)
        .join(', ');
      console.error(`npm audit --omit=dev: ${counts} in ${outcome.packages.join(', ')}`);
      process.exitCode = 1;
      return;
    }
    case 'unavailable':
      console.error(
        `npm audit --omit=dev: skipped, the audit endpoint is unavailable (${outcome.reason})`,
      );
      if (strict) process.exitCode = 1;
  }
}

if (import.meta.main) await main();
