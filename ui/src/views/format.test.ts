import { describe, expect, it } from 'vitest';
import { formatDelta, formatPercent } from './format';

describe('formatDelta / formatPercent', () => {
  it('signs changes', () => {
    expect(formatDelta(130_000)).toBe('+130ms');
    expect(formatDelta(-4_200)).toBe('-4.20ms');
    expect(formatDelta(0)).toBe('0µs');
    expect(formatPercent(200)).toBe('+200%');
    expect(formatPercent(-5.25)).toBe('-5.3%');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(null)).toBe('—');
  });
});
