// js_on_load of the conversation (Gradio gr.HTML): runs with `element`, `server`, `watch`.
// Markers bring their passage into view (with a way back), previews can be dismissed with
// Escape, answers are copied, feedback is sent, and Alt+J jumps to the latest answer's markers.
let lastMarker = null;
const backButton = () => element.querySelector('.qa-back');

const reveal = (id) => {
  const el = document.getElementById(id);
  if (!el) return false;
  const box = el.closest('details');
  if (box && !box.open) box.open = true;
  const scroller = el.closest('.qa-scroll');
  if (scroller && scroller.scrollHeight > scroller.clientHeight + 1) {
    const offset = box ? box.querySelector('summary').offsetHeight + 4 : 8;
    const top = el.getBoundingClientRect().top - scroller.getBoundingClientRect().top
      + scroller.scrollTop - offset;
    scroller.scrollTo({top: top, behavior: 'smooth'});
    const r = scroller.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) {
      scroller.scrollIntoView({block: 'nearest', behavior: 'smooth'});
    }
  } else {
    el.scrollIntoView({block: 'start', behavior: 'smooth'});
  }
  // The panel's header names the question whose passages are in view (it kept naming the
  // latest while an earlier answer's marker showed that answer's passages: found by a tester).
  const header = document.querySelector('#qa-sources .qa-for');
  if (header) {
    if (header.dataset.latest === undefined) {
      header.dataset.latest = header.textContent;
      header.dataset.latestTitle = header.title;
    }
    const earlier = box && box.querySelector('.qa-earlier-q');
    header.textContent = earlier ? `for ${earlier.textContent}` : header.dataset.latest;
    header.title = earlier ? earlier.textContent : header.dataset.latestTitle;
  }
  el.classList.remove('qa-flash');
  void el.offsetWidth;
  el.classList.add('qa-flash');
  setTimeout(() => el.classList.remove('qa-flash'), 1800);
  return true;
};

const isOnScreen = (el) => {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight;
};

// After the passage is in view: offer the way back when the marker has left the screen.
const offerWayBack = (marker) => {
  lastMarker = marker;
  setTimeout(() => {
    const b = backButton();
    if (b && lastMarker && !isOnScreen(lastMarker)) b.hidden = false;
  }, 700);
};

const goBack = () => {
  const b = backButton();
  if (b) b.hidden = true;
  if (!lastMarker || !document.body.contains(lastMarker)) return;
  lastMarker.scrollIntoView({block: 'center', behavior: 'smooth'});
  lastMarker.focus({preventScroll: true});
};

const copyText = async (text) => {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (e) {  // not a secure context (e.g. served on a LAN address over http)
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
};

const say = (answer, text) => {
  const out = answer.querySelector('.qa-act-done');
  if (out) out.textContent = text;
};

// A verdict is saved on the click (the note and the passage pick are extras, sent again with
// it); the server keeps the latest per answer, and the page remembers which thumb was pressed.
const VERDICTS = 'qa-feedback-verdicts';
const feedbackKey = (answer) => {
  const data = JSON.parse(answer.dataset.feedback || '{}');
  return `${data.question || ''}\u0000${data.answer || ''}`;
};
const storedVerdicts = () => {
  try { return JSON.parse(localStorage.getItem(VERDICTS) || '{}') || {}; } catch (e) { return {}; }
};
const rememberVerdict = (answer, verdict) => {
  try {
    const all = storedVerdicts();
    all[feedbackKey(answer)] = verdict;
    const keys = Object.keys(all);
    keys.slice(0, Math.max(keys.length - 500, 0)).forEach((k) => delete all[k]);
    localStorage.setItem(VERDICTS, JSON.stringify(all));
  } catch (e) { /* private mode: the thumbs reset on reload, the verdict is saved anyway */ }
};
const showVerdicts = () => {
  const all = storedVerdicts();
  element.querySelectorAll('.qa-a[data-feedback]').forEach((answer) => {
    const verdict = all[feedbackKey(answer)];
    answer.querySelectorAll('.qa-fb').forEach((b) =>
      b.setAttribute('aria-pressed', verdict && b.dataset.verdict === verdict ? 'true' : 'false'));
  });
};

const sendFeedback = async (answer, verdict) => {
  const data = JSON.parse(answer.dataset.feedback || '{}');
  const form = answer.querySelector('.qa-fb-form');
  const pick = form ? form.querySelector('select[name=right]').value : '';
  let right = null;
  if (verdict === 'down' && pick === 'none') right = 'none';
  else if (verdict === 'down' && pick) {
    right = (data.passages || []).find((p) => String(p.rank) === pick) || null;
  }
  const payload = {verdict: verdict, question: data.question, answer: data.answer,
    abstained: data.abstained, cited: data.cited || [], right_passage: right,
    note: form ? form.querySelector('textarea[name=note]').value : ''};
  say(answer, 'Sending…');
  try {
    const res = await server.record_feedback(payload);
    if (res && res.ok) {
      rememberVerdict(answer, verdict);
      return true;
    } else {
      say(answer, 'Not saved: ' + ((res && res.error) || 'unknown error'));
    }
  } catch (e) {
    say(answer, 'Not saved: the server did not answer.');
  }
  return false;
};

element.addEventListener('click', async (ev) => {
  const a = ev.target.closest('a[href^="#src-"], a[href^="#sources-"]');
  if (a) {
    if (reveal(a.getAttribute('href').slice(1))) {
      ev.preventDefault();
      offerWayBack(a);
      // the passage is in view now: its preview would only cover the answer's buttons
      const wrap = a.closest('.qa-cite-wrap');
      if (wrap) wrap.classList.add('qa-tip-closed');
    }
    return;
  }
  if (ev.target.closest('.qa-back')) { goBack(); return; }
  const copy = ev.target.closest('.qa-copy');
  if (copy) {
    const answer = copy.closest('.qa-a');
    const ok = await copyText(copy.dataset.copy || '');
    say(answer, ok ? (copy.classList.contains('qa-copy-md') ? 'Copied as Markdown.'
      : 'Copied.') : 'Could not copy.');
    return;
  }
  const fb = ev.target.closest('.qa-fb');
  if (fb) {
    const answer = fb.closest('.qa-a');
    const verdict = fb.dataset.verdict;
    answer.querySelectorAll('.qa-fb').forEach((b) =>
      b.setAttribute('aria-pressed', b === fb ? 'true' : 'false'));
    const form = answer.querySelector('.qa-fb-form');
    form.dataset.verdict = verdict;
    form.querySelector('.qa-fb-right').hidden = verdict !== 'down';
    form.querySelector('select[name=right]').value = '';
    form.querySelector('textarea[name=note]').value = '';
    form.hidden = true;
    if (await sendFeedback(answer, verdict)) {
      say(answer, verdict === 'down' ? 'Saved. You can say which passage is right, or add a note:'
        : 'Saved, thank you. You can add a note:');
      form.hidden = false;
      form.querySelector(verdict === 'down' ? 'select' : 'textarea').focus();
    }
    return;
  }
  if (ev.target.closest('.qa-fb-cancel')) {
    const answer = ev.target.closest('.qa-a');
    answer.querySelector('.qa-fb-form').hidden = true;
    say(answer, 'Saved, without a note.');
  }
});

element.addEventListener('submit', (ev) => {
  const form = ev.target.closest('.qa-fb-form');
  if (!form) return;
  ev.preventDefault();
  const answer = form.closest('.qa-a');
  sendFeedback(answer, form.dataset.verdict || 'up').then((ok) => {
    if (!ok) return;
    say(answer, 'Thanks, feedback saved.');
    form.hidden = true;
  });
});

// Escape hides an open preview without moving focus or the pointer (WCAG 1.4.13: dismissible):
// the one of the focused marker and the one under the pointer, wherever the focus is (listened
// for on the document: with the pointer on a marker, the focus is often outside the chat).
document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Escape') return;
  const focused = ev.target.closest && ev.target.closest('.qa-cite-wrap');
  const hovered = Array.from(element.querySelectorAll('.qa-cite-wrap:hover'));
  [focused, ...hovered].forEach((wrap) => wrap && wrap.classList.add('qa-tip-closed'));
});
element.addEventListener('focusout', (ev) => {
  const wrap = ev.target.closest && ev.target.closest('.qa-cite-wrap');
  if (wrap) wrap.classList.remove('qa-tip-closed');
});
element.addEventListener('mouseout', (ev) => {
  const wrap = ev.target.closest && ev.target.closest('.qa-cite-wrap');
  if (wrap && !wrap.contains(ev.relatedTarget)) wrap.classList.remove('qa-tip-closed');
});
// Keep a preview inside the window and the scrolling conversation: shift it left when it would
// run off the right edge, and show it above the marker when there is no room below.
// The conversation scrolls and clips what leaves it, so its edges bound the preview too (on a
// phone the window's did not: the first letters of each line were cut off).
const placeTip = (wrap) => {
  const tip = wrap.querySelector('.qa-tip');
  if (!tip) return;
  const conv = wrap.closest('.qa-conv');
  const box = conv ? conv.getBoundingClientRect() : null;
  const leftLimit = Math.max(box ? box.left : 0, 0) + 8;
  const rightLimit = Math.min(box ? box.right : Infinity,
    document.documentElement.clientWidth) - 8;
  tip.style.left = '0px';
  tip.style.top = '';
  tip.style.bottom = '';
  tip.style.maxWidth = `${Math.max(rightLimit - leftLimit, 160)}px`;
  requestAnimationFrame(() => {
    const r = tip.getBoundingClientRect();
    const over = r.right - rightLimit;
    if (over > 0) tip.style.left = `${-Math.max(Math.min(over, r.left - leftLimit), 0)}px`;
    const limit = Math.min(window.innerHeight, conv ? conv.getBoundingClientRect().bottom
      : window.innerHeight);
    const anchor = wrap.getBoundingClientRect();
    if (r.bottom > limit && anchor.top - r.height - 8 > (conv ? conv.getBoundingClientRect().top
        : 0)) {
      tip.style.top = 'auto';
      tip.style.bottom = 'calc(100% + 6px)';
    }
  });
};
element.addEventListener('mouseover', (ev) => {
  const wrap = ev.target.closest && ev.target.closest('.qa-cite-wrap');
  if (wrap) placeTip(wrap);
});
element.addEventListener('focusin', (ev) => {
  const wrap = ev.target.closest && ev.target.closest('.qa-cite-wrap');
  if (wrap) placeTip(wrap);
});

// Alt+J (from anywhere, e.g. the question box): focus the latest answer's first marker.
const jumpToLatest = () => {
  const latest = element.querySelector('.qa-turn.qa-latest');
  if (!latest) return false;
  const target = latest.querySelector('a.qa-cite') || latest.querySelector('.qa-a a, .qa-a button');
  if (!target) return false;
  target.scrollIntoView({block: 'center'});
  target.focus();
  return true;
};
window.qaJumpToLatest = jumpToLatest;
if (!window.qaJumpKey) {
  window.qaJumpKey = true;
  document.addEventListener('keydown', (ev) => {
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === 'j' || ev.key === 'J'
        || ev.code === 'KeyJ')) {
      if (window.qaJumpToLatest && window.qaJumpToLatest()) ev.preventDefault();
    }
  });
}

const toLatest = () => {
  const conv = element.querySelector('.qa-conv');
  if (!conv) return;
  const b = backButton();
  if (b) b.hidden = true;
  lastMarker = null;
  const turns = conv.querySelectorAll('.qa-turn');
  const last = turns[turns.length - 1];
  if (!last) { conv.scrollTop = 0; return; }
  // the newest question at the top (or the end of the conversation, when it is shorter)
  conv.scrollTop = last.getBoundingClientRect().top - conv.getBoundingClientRect().top
    + conv.scrollTop - 12;
};
// A new answer is read out by screen readers: a live region that outlives the conversation's
// re-renders (one inside them would be replaced, not changed, and stay silent).
const live = document.getElementById('qa-live') || (() => {
  const region = document.createElement('div');
  region.id = 'qa-live';
  region.className = 'qa-sr-only';
  region.setAttribute('role', 'status');
  region.setAttribute('aria-live', 'polite');
  document.body.appendChild(region);
  return region;
})();
const latestAnswer = () => {
  const latest = element.querySelector('.qa-turn.qa-latest');
  const answer = latest && latest.querySelector('.qa-a .qa-a-text');
  if (!answer) return null;
  const text = answer.textContent.replace(/\s+/g, ' ').trim();
  return {key: `${latest.id}|${text}`, text: text};
};
let announced = (latestAnswer() || {key: ''}).key;  // what the page opened with is no news
const announce = () => {
  const now = latestAnswer();
  if (!now || now.key === announced) return;
  announced = now.key;
  live.textContent = 'Answer: ' + (now.text.length > 300 ? now.text.slice(0, 300) + '…' : now.text);
};
if (typeof watch === 'function') {
  watch('value', () => setTimeout(() => { toLatest(); showVerdicts(); announce(); }, 30));
}
toLatest();
showVerdicts();

// The question box stops at its limit (maxlength): say so, or a long paste is cut unseen and the
// cut question answered as if whole.
document.addEventListener('input', (ev) => {
  const box = ev.target;
  if (!box.closest || !box.closest('#qa-question') || !(box.maxLength > 0)) return;
  const composer = box.closest('.qa-composer') || box.parentElement;
  let note = document.getElementById('qa-limit-note');
  const full = box.value.length >= box.maxLength;
  if (full && !note) {
    note = document.createElement('p');
    note.id = 'qa-limit-note';
    note.className = 'qa-limit-note';
    note.setAttribute('role', 'status');
    composer.insertAdjacentElement('afterend', note);
  }
  if (note) {
    note.textContent = full ? `Questions are at most ${box.maxLength.toLocaleString('en')} `
      + 'characters: anything longer was cut here.' : '';
    note.hidden = !full;
  }
});

// A half-typed question survives a reload or the server coming back (the page reloads itself
// then): kept in this browser until it is sent (found by a browser tester).
const DRAFT = 'qa-draft';
const questionBox = () => document.querySelector('#qa-question textarea');
document.addEventListener('input', (ev) => {
  if (!ev.target.closest || !ev.target.closest('#qa-question')) return;
  try { localStorage.setItem(DRAFT, ev.target.value); } catch (e) { /* private mode */ }
});
const forgetDraft = () => { try { localStorage.removeItem(DRAFT); } catch (e) { /* */ } };
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && ev.target.closest
      && ev.target.closest('#qa-question')) forgetDraft();
});
document.addEventListener('click', (ev) => {
  if (ev.target.closest && ev.target.closest('#qa-send')) forgetDraft();
});
const restoreDraft = (tries) => {
  const box = questionBox();
  if (!box) { if (tries > 0) setTimeout(() => restoreDraft(tries - 1), 200); return; }
  let draft = null;
  try { draft = localStorage.getItem(DRAFT); } catch (e) { return; }
  if (!draft || box.value) return;
  box.value = draft;
  box.dispatchEvent(new Event('input', {bubbles: true}));
};
restoreDraft(20);
