/*
 * Triage chat widget for any web page. One line:
 *
 *   <script src="https://support.example.com/embed.js" data-title="Acme help"
 *           data-color="#0f766e" async></script>
 *
 * Adds a floating button that opens the chat (served by Triage at /widget)
 * in a panel. Options, as data- attributes on the script tag:
 *   data-title     header and button label          (default "Support")
 *   data-color     accent colour, #rgb or #rrggbb   (default #2563eb)
 *   data-position  "right" or "left"                 (default right)
 * No dependencies, no cookies of its own; the chat keeps its conversation in
 * its own session.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.__triageWidget) return;
  window.__triageWidget = true;

  var origin = new URL(script.src, location.href).origin;
  var title = (script.dataset.title || 'Support').slice(0, 60);
  var color = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(script.dataset.color || '') ? script.dataset.color : '#2563eb';
  var side = script.dataset.position === 'left' ? 'left' : 'right';

  var style = document.createElement('style');
  style.textContent =
    '.triage-launcher{position:fixed;bottom:20px;' + side + ':20px;z-index:2147483000;width:56px;height:56px;' +
    'border-radius:50%;border:none;cursor:pointer;background:' + color + ';color:#fff;' +
    'box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}' +
    '.triage-launcher:focus-visible{outline:3px solid #a5b4fc;outline-offset:3px}' +
    '.triage-launcher svg{width:26px;height:26px}' +
    '.triage-panel{position:fixed;bottom:88px;' + side + ':20px;z-index:2147483000;width:380px;height:600px;' +
    'max-height:calc(100vh - 108px);border-radius:14px;overflow:hidden;background:#fff;' +
    'box-shadow:0 12px 40px rgba(0,0,0,.25);display:none}' +
    '.triage-panel.open{display:block}' +
    '.triage-panel iframe{width:100%;height:100%;border:0;display:block}' +
    '@media (max-width:560px){.triage-panel{inset:0;width:auto;height:auto;max-height:none;border-radius:0}' +
    '.triage-panel.open~.triage-launcher{bottom:auto;top:10px;' + side + ':10px;width:40px;height:40px}}';
  document.head.appendChild(style);

  var panel = document.createElement('div');
  panel.className = 'triage-panel';
  panel.id = 'triage-panel';
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-label', title);

  var button = document.createElement('button');
  button.type = 'button';
  button.className = 'triage-launcher';
  button.setAttribute('aria-controls', panel.id);
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-label', 'Open ' + title + ' chat');
  var chatIcon = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">' +
    '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';
  var closeIcon = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">' +
    '<path d="M18 6 6 18M6 6l12 12"/></svg>';
  button.innerHTML = chatIcon;

  var frame = null;
  function open() {
    if (!frame) {
      // loaded on first open: a page with the button costs nothing until used
      frame = document.createElement('iframe');
      frame.title = title;
      frame.src = origin + '/widget?title=' + encodeURIComponent(title) + '&color=' + encodeURIComponent(color);
      frame.setAttribute('allow', 'clipboard-write');
      panel.appendChild(frame);
    }
    panel.classList.add('open');
    button.setAttribute('aria-expanded', 'true');
    button.setAttribute('aria-label', 'Close ' + title + ' chat');
    button.innerHTML = closeIcon;
    frame.focus();
  }
  function close() {
    panel.classList.remove('open');
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-label', 'Open ' + title + ' chat');
    button.innerHTML = chatIcon;
    button.focus();
  }
  button.addEventListener('click', function () {
    panel.classList.contains('open') ? close() : open();
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && panel.classList.contains('open')) close();
  });
  // Escape pressed inside the chat (the iframe has the focus then)
  window.addEventListener('message', function (e) {
    if (e.origin === origin && e.data === 'triage:close' && panel.classList.contains('open')) close();
  });

  function mount() {
    document.body.appendChild(panel);
    document.body.appendChild(button);
  }
  document.body ? mount() : document.addEventListener('DOMContentLoaded', mount);
})();
