// js_on_load of the document viewer: a modal dialog that shows a whole document, fetched with
// `server.document_html`, scrolled to the first highlighted span. Closed with the button, Escape
// or a click beside it; focus returns to what opened it.
const backdrop = element.querySelector('.qa-viewer-backdrop');
const box = element.querySelector('.qa-viewer');
let opener = null;

const close = () => {
  backdrop.hidden = true;
  box.innerHTML = '';
  if (opener && document.body.contains(opener)) opener.focus();
  opener = null;
};

const open = async (detail) => {
  opener = detail.opener || document.activeElement;
  backdrop.hidden = false;
  box.innerHTML = '<p class="qa-viewer-status" role="status">Opening the document…</p>';
  let res;
  try {
    res = await server.document_html({doc_id: detail.doc_id, highlights: detail.highlights || []});
  } catch (e) {
    res = {error: 'the server did not answer'};
  }
  if (backdrop.hidden) return;
  if (!res || res.error) {
    box.innerHTML = '<header class="qa-viewer-head"><div class="qa-viewer-name"><h2 id="qa-viewer-title">'
      + 'Cannot open the document</h2></div><button type="button" class="qa-viewer-close" '
      + 'aria-label="Close">✕</button></header><p class="qa-viewer-status"></p>';
    box.querySelector('.qa-viewer-status').textContent = (res && res.error) || 'unknown error';
  } else {
    box.innerHTML = res.html;  // rendered by the server's escaping templates
  }
  const body = box.querySelector('.qa-viewer-body');
  const mark = box.querySelector('.qa-viewer-body mark');
  if (body && mark) {
    body.scrollTop = mark.getBoundingClientRect().top - body.getBoundingClientRect().top
      + body.scrollTop - body.clientHeight / 3;
  }
  const closeButton = box.querySelector('.qa-viewer-close');
  if (closeButton) closeButton.focus({preventScroll: true});
};

window.addEventListener('qa:open-document', (ev) => open(ev.detail));
backdrop.addEventListener('click', (ev) => {
  if (ev.target === backdrop || ev.target.closest('.qa-viewer-close')) close();
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && !backdrop.hidden) { ev.preventDefault(); close(); }
  if (ev.key === 'Tab' && !backdrop.hidden) {  // keep focus inside the dialog
    const items = box.querySelectorAll('button, [tabindex="0"], a[href]');
    if (!items.length) return;
    const first = items[0], last = items[items.length - 1];
    if (ev.shiftKey && document.activeElement === first) { ev.preventDefault(); last.focus(); }
    else if (!ev.shiftKey && document.activeElement === last) { ev.preventDefault(); first.focus(); }
  }
});
