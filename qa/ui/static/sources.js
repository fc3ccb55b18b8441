// js_on_load of the sources panel: expand a passage, open its whole document in the viewer.
element.addEventListener('click', (ev) => {
  const more = ev.target.closest('.qa-more');
  if (more) {
    const art = more.closest('.qa-src');
    const open = art.classList.toggle('qa-open');
    more.textContent = open ? 'Show less' : 'Show whole passage';
    more.setAttribute('aria-expanded', open ? 'true' : 'false');
    return;
  }
  const doc = ev.target.closest('.qa-open-doc');
  if (doc) {
    window.dispatchEvent(new CustomEvent('qa:open-document', {detail: {
      doc_id: doc.dataset.doc, highlights: JSON.parse(doc.dataset.highlights || '[]'),
      opener: doc}}));
  }
});
