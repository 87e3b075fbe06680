// resq dashboard: confirmations for destructive forms and live refresh of
// the overview. Loaded as a file (the Content-Security-Policy forbids inline
// script); it never builds markup from strings, it only moves nodes parsed
// from the server's own escaped HTML.
(function () {
  'use strict';

  document.addEventListener('submit', function (e) {
    var form = e.target;
    var msg = form && form.getAttribute && form.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  });

  var live = document.getElementById('live');
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var url = live.getAttribute('data-poll');
  var login = live.getAttribute('data-login');
  var status = document.getElementById('live-status');
  var every = 2000;

  function show(text, bad) {
    if (status) {
      status.textContent = text;
      status.className = 'live-status' + (bad ? ' off' : '');
    }
  }

  function tick() {
    if (document.hidden) {
      setTimeout(tick, every);
      return;
    }
    fetch(url, { credentials: 'same-origin', cache: 'no-store', redirect: 'manual',
                 headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (r.status === 401 || r.type === 'opaqueredirect') {
          window.location.href = login;
          throw new Error('signed out');
        }
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var nodes = Array.prototype.slice.call(doc.body.childNodes);
        live.replaceChildren.apply(live, nodes);
        show('live', false);
      })
      .catch(function (err) {
        show('offline: ' + err.message, true);
      })
      .then(function () {
        setTimeout(tick, every);
      });
  }
  setTimeout(tick, every);
})();
