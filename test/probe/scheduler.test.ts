import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { nullLogger } from '../../probe/log.ts';
import { scheduleCheck } from '../../probe/scheduler.ts';
import { waitFor } from './helpers.ts';

describe('scheduleCheck', () => {
  it('never overlaps runs of a check: a slot due during a run is skipped and counted', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    let skipped = 0;
    const schedule = scheduleCheck(
      { kind: 'interval', intervalMs: 100 },
      {
        job: async () => {
          runs++;
          running++;
          most = Math.max(most, running);
          await sleep(250);
          running--;
        },
        skipped: () => skipped++,
        logger: nullLogger,
        random: () => 0,
      },
    );
    schedule.start();
    await waitFor(() => runs >= 2 && skipped >= 2, 5_000, 'two runs and two skipped slots');
    schedule.stop();
    expect(most).toBe(1);
  });

  it('starts an interval check at its random offset, then at a fixed rate', async () => {
    const starts: number[] = [];
    const schedule = scheduleCheck(
      { kind: 'interval', intervalMs: 100 },
      {
        job: async () => void starts.push(performance.now()),
        skipped: () => undefined,
        logger: nullLogger,
        random: () => 0.5,
      },
    );
    const begun = performance.now();
    schedule.start();
    await waitFor(() => starts.length >= 3, 5_000, 'three runs');
    schedule.stop();
    const after = starts.length;
    await sleep(250);
    expect(starts[0]! - begun).toBeGreaterThanOrEqual(49);
    expect(starts.length).toBe(after);
  });

  it('runs a cron check on its schedule', async () => {
    let runs = 0;
    const schedule = scheduleCheck(
      { kind: 'cron', expression: '* * * * * *', periodMs: 1000 },
      { job: async () => void runs++, skipped: () => undefined, logger: nullLogger },
    );
    schedule.start();
    await waitFor(() => runs >= 1, 3_000, 'a cron run');
    schedule.stop();
  });
});
