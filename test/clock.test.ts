import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../src/index.ts';

describe('systemClock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('follows test tools that replace the timer globals', () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const start = systemClock.now();
    let fired = 0;
    systemClock.schedule(() => fired++, 100);
    const cancelled = systemClock.schedule(() => fired++, 100);
    systemClock.cancel(cancelled);
    vi.advanceTimersByTime(100);
    expect(systemClock.now() - start).toBe(100);
    expect(fired).toBe(1);
  });

  it('can unreference and re-reference a timer', () => {
    const handle = systemClock.schedule(() => {}, 60_000) as NodeJS.Timeout;
    systemClock.keepAlive!(handle, false);
    expect(handle.hasRef()).toBe(false);
    systemClock.keepAlive!(handle, true);
    expect(handle.hasRef()).toBe(true);
    systemClock.cancel(handle);
  });
});
