// Token sign-in: the token goes to the server once, in an Authorization header (never in a URL);
// the server answers with an HttpOnly, SameSite=Strict cookie, and the board opens.
"use strict";
(function () {
  const form = document.getElementById("login");
  const input = document.getElementById("token");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const answer = await fetch("/login", {
      headers: { Authorization: "Bearer " + input.value.trim() },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (answer.status === 204) {
      const next = form.dataset.next || "/";
      // The server sent a path of this site; checked again: one leading "/", no "\\", no control character.
      window.location.assign(/^\/(?![\/\\])[^\\\x00-\x1f\x7f]*$/.test(next) ? next : "/");
    } else {
      error.textContent = form.dataset.refused;
      input.value = "";
    }
  });
})();
