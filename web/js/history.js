// The steps of click mode: undo / redo move through them; a new step after an undo drops the steps that were ahead.

export class History {
  constructor(initial) {
    this.states = [initial];
    this.index = 0;
  }

  get current() {
    return this.states[this.index];
  }

  push(state) {
    this.states.splice(this.index + 1);
    this.states.push(state);
    this.index++;
  }

  /** The current step changed in place (another candidate chosen): not a step of its own. */
  replace(state) {
    this.states[this.index] = state;
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.states.length - 1;
  }

  /** One step back; false when there is none. */
  undo() {
    if (!this.canUndo) return false;
    this.index--;
    return true;
  }

  /** One step forward again; false when there is none. */
  redo() {
    if (!this.canRedo) return false;
    this.index++;
    return true;
  }
}
