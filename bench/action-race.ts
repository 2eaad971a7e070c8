/**
 * Two runs of the bundled Action with the same rotating secret, many times over (issue #5): in how many pairs is
 * the secret left behind still valid, with and without `auto_revoke`? Each pair runs against the local dev server
 * and the GitHub fake; each job starts `setup` before its Action step (the steps before it) and the second job
 * starts `apart` after the first. Prints one Markdown table row per setting.
 *
 *   node bench/action-race.ts [--pairs 50]
 */
import { parseArgs } from 'node:util';
import { startFixture } from '../test/action/fixture.ts';
import { racePair, type PairOptions, type PairResult } from '../test/reliability/race.ts';

interface Setting {
  label: string;
  apartMs: PairOptions['apartMs'];
  setupMs: number;
}

const SETTINGS: Setting[] = [
  { label: 'at once', apartMs: 0, setupMs: 1000 },
  { label: '300 ms apart, Action is the first step', apartMs: 300, setupMs: 0 },
  { label: '500 ms apart, 1 s of steps before', apartMs: 500, setupMs: 1000 },
];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { pairs: { type: 'string', default: '50' } } });
  const pairs = Number(values.pairs);
  const f = await startFixture();
  const started = Date.now();
  let n = 0;
  try {
    console.log(
      '| start | auto_revoke | pairs | secret left valid | loser stopped before presenting | ' +
        'loser refused (401) | loser lost in server (500) | other / not one winner | leaks |',
    );
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const setting of SETTINGS) {
      for (const autoRevoke of [false, true]) {
        const results: PairResult[] = [];
        for (let i = 0; i < pairs; i++) {
          const options = { ...setting, autoRevoke, secret: `BENCH_RACE_${n++}` };
          results.push(await racePair(f, options));
        }
        console.log(row(setting.label, autoRevoke, results));
      }
    }
    console.log(`\n${n} pairs (${2 * n} runs) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await f.close();
  }
}

function row(label: string, autoRevoke: boolean, results: PairResult[]): string {
  const count = (test: (r: PairResult) => boolean) => results.filter(test).length;
  return `| ${[
    label,
    autoRevoke ? 'yes' : 'no',
    results.length,
    count((r) => r.valid),
    count((r) => r.loser === 'stopped'),
    count((r) => r.loser === 'refused'),
    count((r) => r.loser === 'lost-in-server'),
    count((r) => r.loser === 'other' || r.winners !== 1),
    count((r) => r.leaks.length > 0),
  ].join(' | ')} |`;
}

await main();
