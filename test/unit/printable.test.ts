// Text the guest chose (a Host header, a console line in an error) reaches a terminal as printable text only.
import { describe, expect, it } from 'vitest';

describe('text the guest chose, on a terminal', () => {
  it('shows control characters as \\xNN, keeping line breaks only where asked', async () => {
    const { printable } = await import('../../src/util/printable.js');
    expect(printable('ok \x1b]52;c;ZXZpbA==\x07 \x1b[2J\x9b31m end')).toBe('ok \\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J\\x9b31m end');
    expect(printable('a\nb\tc\rd')).toBe('a\nb\tc\\x0dd');
    expect(printable('a\nb\tc', false)).toBe('a b c');
    expect(printable('ünïcode ✓')).toBe('ünïcode ✓');
  });
});
