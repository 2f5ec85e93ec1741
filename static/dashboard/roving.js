// Keyboard movement in the queue: one tab stop per row (roving tabindex). Tab moves from row to
// row (or past the queue with the skip links); within a row, Left/Right (and Home/End) move
// between its controls; Up/Down move to the same control in the row above or below. In a
// priority input, Up/Down keep changing the number, as in any number field.

import { ROW_CONTROLS } from './render.js';

function controlsOf(row) {
  return [...row.querySelectorAll(ROW_CONTROLS)].filter((control) => !control.disabled);
}

// The row's tab stop moves to `control` (and stays there when Tab leaves and comes back).
function makeStop(control) {
  const row = control.closest('tr');
  for (const other of row.querySelectorAll(ROW_CONTROLS)) other.setAttribute('tabindex', other === control ? '0' : '-1');
}

function moveTo(control) {
  if (!control) return false;
  makeStop(control);
  control.focus();
  return true;
}

function visibleRow(row, step) {
  let next = step > 0 ? row.nextElementSibling : row.previousElementSibling;
  while (next && next.hidden) next = step > 0 ? next.nextElementSibling : next.previousElementSibling;
  return next;
}

export function wireRoving(tbody) {
  tbody.addEventListener('focusin', (event) => {
    if (event.target.matches(ROW_CONTROLS)) makeStop(event.target);
  });
  tbody.addEventListener('keydown', (event) => {
    const control = event.target;
    if (!control.matches(ROW_CONTROLS) || event.altKey || event.ctrlKey || event.metaKey) return;
    const row = control.closest('tr');
    const controls = controlsOf(row);
    const index = controls.indexOf(control);
    const isNumber = control.type === 'number';
    let moved = false;
    if (event.key === 'ArrowRight') moved = moveTo(controls[index + 1]);
    else if (event.key === 'ArrowLeft') moved = moveTo(controls[index - 1]);
    else if (event.key === 'Home' && !isNumber) moved = moveTo(controls[0]);
    else if (event.key === 'End' && !isNumber) moved = moveTo(controls[controls.length - 1]);
    else if ((event.key === 'ArrowDown' || event.key === 'ArrowUp') && !isNumber) {
      const other = visibleRow(row, event.key === 'ArrowDown' ? 1 : -1);
      if (other) {
        const targets = controlsOf(other);
        // The same kind of control in the other row (its label, its Cancel button...).
        const same = targets.find((t) => t.className === control.className && t.type === control.type);
        moved = moveTo(same || targets[Math.min(index, targets.length - 1)]);
      }
    }
    if (moved) event.preventDefault();
  });
}
