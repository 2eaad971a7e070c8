#!/usr/bin/env node
// The mytoken-probe command; see probe/cli.ts. Needs Node 24 or later (it runs the TypeScript
// sources directly).

// V8 lets the young generation grow to 128 MB in a long-running process that keeps some of what it
// allocates, as the probe does (results, metric lines); capped, the probe with 10,000 checks stays
// near 200 MB instead of 330. The flag only works at start-up, so the process re-executes itself
// with it once (same PID, so signals and systemd's MAINPID are unaffected). Set
// MYTOKEN_PROBE_SEMI_SPACE_MB=0, or pass the flag yourself, to opt out.
const SEMI_SPACE_MB = process.env.MYTOKEN_PROBE_SEMI_SPACE_MB ?? '16';
const flagged = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) =>
  a.startsWith('--max-semi-space-size'),
);
if (!flagged && SEMI_SPACE_MB !== '0' && typeof process.execve === 'function') {
  const flag = `--max-semi-space-size=${SEMI_SPACE_MB}`;
  process.execve(process.execPath, [
    process.execPath,
    flag,
    ...process.execArgv,
    ...process.argv.slice(1),
  ]);
}

const { main } = await import('../probe/cli.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Everything is closed by now; should a stray handle keep the process alive, do not hang a shutdown
// on it.
setTimeout(() => process.exit(code), 5_000).unref();
