// The crisis-room board, live: the server pushes the board's HTML through server-sent
// events at each change of the run; between pushes the clocks tick here.
// Same origin only (the page's Content-Security-Policy allows nothing else).
"use strict";
(function () {
  const body = document.body;
  const run = body.dataset.run;
  const lang = body.dataset.lang || "fr";
  const board = document.getElementById("board");
  const live = document.getElementById("live");
  // The server's clock when it computed the board: the clocks below count on from it.
  function renderedAt() {
    const run = board.querySelector("[data-rendered-at]");
    const at = run ? Date.parse(run.dataset.renderedAt) : NaN;
    return Number.isNaN(at) ? Date.now() : at;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? h + "h" + two(m) + "m" : m + "m" + two(s) + "s";
  }

  function tick() {
    const now = Date.now();
    board.querySelectorAll("[data-deadline]").forEach((el) => {
      const left = (Date.parse(el.dataset.deadline) - now) / 1000;
      el.textContent = left > 0 ? duration(left) : el.dataset.passed;
    });
    board.querySelectorAll("[data-since]").forEach((el) => {
      el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
    });
    const since = (now - renderedAt()) / 1000;
    board.querySelectorAll("[data-clock][data-running]").forEach((el) => {
      el.textContent = duration(Number(el.dataset.clock) + since);
    });
  }

  function connected(yes) {
    live.dataset.connected = yes ? "yes" : "no";
    live.textContent = yes ? "● " + live.dataset.live : "○ " + live.dataset.lost;
  }

  const url = "/api/runs/" + encodeURIComponent(run) + "/events?view=board&lang=" + encodeURIComponent(lang);
  const stream = new EventSource(url);
  stream.addEventListener("open", () => connected(true));
  stream.addEventListener("error", () => connected(false));
  stream.addEventListener("board", (event) => {
    board.innerHTML = event.data;  // HTML rendered and escaped by the server's templates
    body.dataset.updates = String(Number(body.dataset.updates || "0") + 1);
    tick();
  });
  stream.addEventListener("end", () => {
    stream.close();
    live.dataset.connected = "ended";
    live.textContent = "■ " + live.dataset.ended;
  });
  tick();
  setInterval(tick, 1000);
})();
