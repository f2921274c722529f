// Click mode's steps: undo / redo, a new step after an undo drops the ones ahead, choosing a candidate is no step.
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {History} from '../../web/js/history.js';

test('a new history has its first step only', () => {
  const history = new History('empty');
  assert.equal(history.current, 'empty');
  assert.equal(history.canUndo, false);
  assert.equal(history.canRedo, false);
  assert.equal(history.undo(), false);
  assert.equal(history.redo(), false);
  assert.equal(history.current, 'empty');
});

test('undo and redo move through the steps and stop at either end', () => {
  const history = new History('empty');
  history.push('one point');
  history.push('two points');
  assert.equal(history.undo(), true);
  assert.equal(history.current, 'one point');
  assert.equal(history.undo(), true);
  assert.equal(history.current, 'empty');
  assert.equal(history.undo(), false);
  assert.equal(history.canRedo, true);
  assert.equal(history.redo(), true);
  assert.equal(history.redo(), true);
  assert.equal(history.current, 'two points');
  assert.equal(history.redo(), false);
  assert.equal(history.canUndo, true);
});

test('a new step after an undo drops the steps that were ahead', () => {
  const history = new History('empty');
  history.push('a');
  history.push('b');
  history.undo();
  history.push('c');
  assert.equal(history.current, 'c');
  assert.equal(history.canRedo, false);
  history.undo();
  assert.equal(history.current, 'a');
  history.redo();
  assert.equal(history.current, 'c');
});

test('replace changes the current step without adding one', () => {
  const history = new History('empty');
  history.push({chosen: 0});
  history.replace({chosen: 2});
  assert.deepEqual(history.current, {chosen: 2});
  history.undo();
  assert.equal(history.current, 'empty');
  history.redo();
  assert.deepEqual(history.current, {chosen: 2});
});
