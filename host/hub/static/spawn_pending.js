// The spawn-pending page: follows the progress event stream, moves the bar, logs each message, and on `ready`
// reloads (the page then redirects to the server); on `failed` shows the failure instead.
"use strict";
(function () {
  const root = document.getElementById("spawn-pending");
  const bar = document.getElementById("progress-bar");
  const fill = document.getElementById("progress-fill");
  const message = document.getElementById("progress-message");
  const log = document.getElementById("progress-log");
  if (!root || !window.EventSource) return;
  const source = new EventSource(root.dataset.progressUrl);
  let finished = false;
  source.onmessage = (event) => {
    let progress;
    try { progress = JSON.parse(event.data); } catch (_) { return; }
    if (progress.progress !== undefined) {
      const percent = Math.max(0, Math.min(100, Number(progress.progress) || 0));
      bar.setAttribute("aria-valuenow", String(percent));
      fill.style.width = percent + "%";
    }
    if (progress.message) {
      message.textContent = progress.message;
      const item = document.createElement("li");
      item.textContent = progress.message;
      log.appendChild(item);
    }
    if (progress.ready) {
      finished = true;
      source.close();
      bar.classList.add("ready");
      document.getElementById("pending-title").textContent = "Your server is ready.";
      // A moment at 100% so the reader sees it finish, then the page redirects to the server.
      setTimeout(() => { window.location.href = root.dataset.readyUrl; }, 700);
    }
    if (progress.failed) {
      finished = true;
      source.close();
      bar.classList.add("failed");
      document.getElementById("pending-title").textContent = "Spawn failed";
      document.getElementById("pending-subtitle").textContent =
        "The server could not be started. The message below says why; try again from the home page.";
      document.getElementById("progress-details").open = true;
    }
  };
  source.onerror = () => {
    // The stream ends after the final event; before that, an error means the hub went away: check by reloading.
    if (!finished) {
      source.close();
      setTimeout(() => window.location.reload(), 2000);
    }
  };
})();
