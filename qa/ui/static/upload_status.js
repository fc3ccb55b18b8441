// js_on_load of the upload status: what an upload did is brought into view (at 1366x900 it
// appeared below the fold, and nothing seemed to happen: found by a browser tester). The new
// status, and the index panel beside it, reach the page a little after the value changes, and
// may move it again: looked at for a second and a half.
const showStatus = () => {
  const status = element.querySelector('.qa-status');
  if (!status || status.classList.contains('qa-status-idle')) return;
  const r = status.getBoundingClientRect();
  if (r.bottom > window.innerHeight + 1 || r.top < -1) {
    status.scrollIntoView({block: 'nearest'});
  }
};
if (typeof watch === 'function') {
  watch('value', () => [30, 300, 800, 1500].forEach((ms) => setTimeout(showStatus, ms)));
}
