/**
 * Two runs of the Action with the same rotating secret (issue #5), the small version of `bench/action-race.ts`.
 * Started at once, one run wins and the other fails with the concurrency message; started a little apart (the
 * second run's step begins after the first wrote the secret back, its job having received the old value), the
 * second run stops before presenting its superseded token, so the secret left behind stays valid even with
 * `auto_revoke`. Without `auto_revoke` the secret left behind is valid in every case.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFixture, type Fixture } from '../action/fixture.ts';
import { racePair, type PairOptions } from './race.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  await f?.close();
});

const PAIRS: (Omit<PairOptions, 'secret'> & { name: string })[] = [];
for (const autoRevoke of [false, true]) {
  PAIRS.push({ name: 'at once', autoRevoke, apartMs: 0, setupMs: 1000 });
  PAIRS.push({ name: 'at once', autoRevoke, apartMs: 0, setupMs: 1000 });
  PAIRS.push({ name: 'apart', autoRevoke, apartMs: 'after-write', setupMs: 1500 });
}

describe('two runs with the same rotating secret', () => {
  test.each(PAIRS.map((p, i) => ({ ...p, secret: `RACE_${i}` })))(
    '$name, auto_revoke $autoRevoke: one run wins, the other stops or fails with the concurrency message',
    async (pair) => {
      const result = await racePair(f, pair);

      expect(result.winners, 'runs that succeeded').toBe(1);
      expect(result.loserLine).toContain(
        `"concurrency: { group: mytoken-${pair.secret}, cancel-in-progress: false }"`,
      );
      expect(result.loser).not.toBe('other');
      if (pair.apartMs === 'after-write') expect(result.loser).toBe('stopped');
      // A stopped run never presented its token: the pair made one exchange.
      expect(result.exchanges).toBe(result.loser === 'stopped' ? 1 : 2);
      expect(result.rotated, 'the secret holds the winner’s new token').toBe(true);
      // Only a superseded token presented to an auto_revoke chain kills the secret left behind.
      expect(result.valid).toBe(!(pair.autoRevoke && result.loser === 'refused'));
      expect(result.leaks).toEqual([]);
    },
  );
});
