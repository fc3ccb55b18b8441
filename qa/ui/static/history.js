// js_on_load of the conversation list: open, delete or start a conversation (a `select` event
// whose value is the action and index the conversation id; the list itself lives in the browser).
element.addEventListener('click', (ev) => {
  if (ev.target.closest('.qa-new-conv')) {
    trigger('select', {index: '', value: 'new'});
    return;
  }
  const open = ev.target.closest('.qa-conv-open');
  if (open) {
    trigger('select', {index: open.dataset.conv, value: 'open'});
    return;
  }
  const del = ev.target.closest('.qa-conv-del');
  if (del) trigger('select', {index: del.dataset.conv, value: 'delete'});
});
