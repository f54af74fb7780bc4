import { describe, expect, it } from 'vitest';
import { Emitter } from '../src/core/events.ts';
import { retry } from '../src/index.ts';

describe('events', () => {
  it('refuses a listener that is not a function, naming what it got', () => {
    const policy = retry();
    expect(() => policy.onRetry(42 as never)).toThrow(new TypeError('listener must be a function; received number'));
    expect(() => policy.onGiveUp(null as never)).toThrow(new TypeError('listener must be a function; received null'));
  });

  it('a disposer removes its own subscription only, however often it is called', () => {
    const emitter = new Emitter<string>();
    const seen: string[] = [];
    const listener = (e: string) => seen.push(e);
    const first = emitter.subscribe(listener);
    emitter.subscribe(listener); // the same function subscribed twice: two subscriptions
    first();
    first();
    emitter.emit('a');
    expect(seen).toEqual(['a']);
    expect(emitter.active).toBe(true);
  });
});
