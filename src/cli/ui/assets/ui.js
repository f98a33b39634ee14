// cairn ui: the one script of the dashboard. It follows a running action's output,
// asking the dashboard's own API every half second until the action ends.
"use strict";
(function () {
  const state = document.getElementById("action-state");
  if (!state || state.dataset.state !== "running") return;
  const id = state.dataset.actionId;
  const output = document.getElementById("action-output");
  const exit = document.getElementById("action-exit");
  async function poll() {
    try {
      const r = await fetch("/api/actions/" + id, { credentials: "same-origin" });
      if (r.ok) {
        const a = await r.json();
        output.textContent = a.output.join("\n");
        state.textContent = a.state;
        state.dataset.state = a.state;
        exit.textContent = a.exit_code === null ? "" : String(a.exit_code);
        if (a.state !== "running") return;
      }
    } catch (e) {
      // The dashboard restarting or the network blinking: try again.
    }
    setTimeout(poll, 500);
  }
  setTimeout(poll, 500);
})();
