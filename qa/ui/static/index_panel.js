// js_on_load of the index panel: a document name opens it in the viewer; Delete asks first,
// then tells Python (a `select` event whose value is the action and index the document id).
element.addEventListener('click', (ev) => {
  const open = ev.target.closest('.qa-doc-open');
  if (open) {
    window.dispatchEvent(new CustomEvent('qa:open-document', {detail: {
      doc_id: open.dataset.doc, highlights: [], opener: open}}));
    return;
  }
  const li = ev.target.closest('li[data-doc]');
  if (!li) return;
  const confirmBox = li.querySelector('.qa-doc-confirm');
  if (ev.target.closest('.qa-doc-del')) {
    confirmBox.hidden = false;
    confirmBox.querySelector('.qa-del-no').focus();
  } else if (ev.target.closest('.qa-del-no')) {
    confirmBox.hidden = true;
    li.querySelector('.qa-doc-del').focus();
  } else if (ev.target.closest('.qa-del-yes')) {
    confirmBox.querySelector('span').textContent = 'Deleting…';
    confirmBox.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    trigger('select', {index: li.dataset.doc, value: 'delete'});
  }
});
