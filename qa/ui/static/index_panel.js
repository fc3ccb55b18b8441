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
    focusAfterDelete = true;
    trigger('select', {index: li.dataset.doc, value: 'delete'});
  }
});

// Escape cancels a deletion; after one, focus goes to the panel's message saying what was done
// (it went to the page's top, and a keyboard user started over: found by a browser tester).
let focusAfterDelete = false;
element.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Escape') return;
  const confirmBox = ev.target.closest && ev.target.closest('.qa-doc-confirm');
  if (!confirmBox || confirmBox.hidden) return;
  ev.preventDefault();
  ev.stopPropagation();
  confirmBox.hidden = true;
  confirmBox.closest('li').querySelector('.qa-doc-del').focus();
});
const afterRender = () => {
  if (!focusAfterDelete) return;
  const target = element.querySelector('.qa-index-msg') || element.querySelector('.qa-doc-open');
  if (!target) return;
  focusAfterDelete = false;
  target.focus();
};
if (typeof watch === 'function') watch('value', () => setTimeout(afterRender, 30));
