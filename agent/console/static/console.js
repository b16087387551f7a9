// Live parts of a console page, in plain JavaScript (no build step, nothing fetched from elsewhere).
// An element with data-poll="URL" is refreshed from URL every 2 s. The page sends back the key of what it shows
// and the server answers 204 while nothing changed, so a quiet page costs one small request per tick.
(function () {
  "use strict";
  var EVERY_MS = 2000;

  function refresh(el) {
    var url = new URL(el.dataset.poll, window.location.href);
    url.searchParams.set("key", el.dataset.key || "");
    return fetch(url, {headers: {"X-Console-Fragment": "1"}, credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return; }  // session over: the login page
        if (response.status !== 200) { return; }  // 204: unchanged; anything else: try again next tick
        return response.text().then(function (html) {
          // Keep the trace branches a person opened, across the refresh.
          var open = Array.prototype.map.call(el.querySelectorAll("details[open][id]"), function (d) { return d.id; });
          el.innerHTML = html;  // server-rendered with every value escaped; inserted scripts never run
          var root = el.firstElementChild;
          el.dataset.key = root ? (root.dataset.key || "") : "";
          open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
          // New results (a node finished): reload once so the report parts below appear.
          var reload = root && root.dataset.reload;
          if (reload && reload !== document.body.dataset.reload) { window.location.reload(); }
        });
      })
      .catch(function () { /* the server is restarting or busy: next tick */ });
  }

  function start() {
    var polled = document.querySelectorAll("[data-poll]");
    Array.prototype.forEach.call(polled, function (el) {
      var busy = false;
      var tick = function () {
        if (busy || document.hidden) { return; }
        busy = true;
        refresh(el).then(function () { busy = false; }, function () { busy = false; });
      };
      if (!el.dataset.key) { tick(); }
      window.setInterval(tick, EVERY_MS);
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
