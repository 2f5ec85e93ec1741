// Keyboard movement in the dashboard's lists (roving tabindex). Tab reaches each queue row once,
// and every other list (running, recently finished, events, search results, every finished job)
// once as a whole, so the page is a few dozen Tab presses long however many jobs it shows. Inside:
// Left/Right (and Home/End) move between a row's controls; Up/Down move to the same control in the
// row above or below. In a priority input, Up/Down keep changing the number, as in any number
// field. A list remembers its stop while rows come and go; a stop whose row left moves to the
// first row.

export const ROW_CONTROLS = 'input, button, a[href]';

function controlsOf(row) {
  return [...row.querySelectorAll(ROW_CONTROLS)].filter((control) => !control.disabled);
}

function rowOf(container, control) {
  let row = control;
  while (row && row.parentElement !== container) row = row.parentElement;
  return row;
}

function visibleRow(row, step) {
  let next = step > 0 ? row.nextElementSibling : row.previousElementSibling;
  while (next && (next.hidden || !controlsOf(next).length)) next = step > 0 ? next.nextElementSibling : next.previousElementSibling;
  return next;
}

export function wireRoving(container, { perRow = false } = {}) {
  // The scope that holds exactly one stop: the row (queue) or the whole list.
  const scopes = () => (perRow ? [...container.children] : [container]);
  const scopeOf = (control) => (perRow ? rowOf(container, control) : container);

  function makeStop(control) {
    for (const other of scopeOf(control).querySelectorAll(ROW_CONTROLS)) {
      other.setAttribute('tabindex', other === control ? '0' : '-1');
    }
  }

  // New rows arrive with controls that are tab stops by default: fold them into their scope.
  function settle() {
    for (const scope of scopes()) {
      const controls = [...scope.querySelectorAll(ROW_CONTROLS)];
      if (!controls.length) continue;
      let stop = controls.find((c) => c.getAttribute('tabindex') === '0' && !c.disabled);
      if (!stop) {
        // The label (the job id) is a row's natural first stop.
        stop = controls.find((c) => c.classList.contains('job-id') && !c.disabled) || controls.find((c) => !c.disabled);
      }
      for (const c of controls) {
        const want = c === stop ? '0' : '-1';
        if (c.getAttribute('tabindex') !== want) c.setAttribute('tabindex', want);
      }
    }
  }
  new MutationObserver(settle).observe(container, { childList: true, subtree: true });
  settle();

  function moveTo(control) {
    if (!control) return false;
    makeStop(control);
    control.focus();
    return true;
  }

  container.addEventListener('focusin', (event) => {
    if (event.target.matches(ROW_CONTROLS)) makeStop(event.target);
  });
  container.addEventListener('keydown', (event) => {
    const control = event.target;
    if (!control.matches(ROW_CONTROLS) || event.altKey || event.ctrlKey || event.metaKey) return;
    const row = rowOf(container, control);
    if (!row) return;
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
        const same = targets.find((t) => t.className === control.className && t.type === control.type
          && t.dataset.action === control.dataset.action);
        moved = moveTo(same || targets[Math.min(index, targets.length - 1)]);
      }
    }
    if (moved) event.preventDefault();
  });
}
