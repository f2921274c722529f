import assert from 'node:assert/strict';
import {test} from 'node:test';

import {colourAt, cssColour} from '../../web/js/palette.js';

test('ten distinct colours, then the same ones again in the same order', () => {
  const first = Array.from({length: 10}, (_, i) => cssColour(colourAt(i)));
  assert.equal(new Set(first).size, 10);
  for (let i = 0; i < 25; i++) assert.deepEqual(colourAt(i), colourAt(i % 10));
});

test('colours are RGB triples in 0..255, written as CSS rgb()', () => {
  for (let i = 0; i < 10; i++) {
    const colour = colourAt(i);
    assert.equal(colour.length, 3);
    assert.ok(colour.every((c) => Number.isInteger(c) && c >= 0 && c <= 255), String(colour));
  }
  assert.equal(cssColour([59, 130, 246]), 'rgb(59, 130, 246)');
  assert.equal(cssColour(colourAt(0)), 'rgb(59, 130, 246)');
});
