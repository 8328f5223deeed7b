/* Keyboard shortcuts of the inbox and the review page. Plain script, no framework.
 *
 *   j / k   next / previous item (inbox) or proposal (review page)
 *   a       approve: goes to the confirm step, never approves at once
 *   r       reject: focuses the reason field
 *   e       edit: focuses the edit form's first field
 *   ?       shows or hides the list of shortcuts; Esc closes it (and a confirm)
 *
 * Keys are ignored while typing in a field and with Ctrl, Alt or Cmd held. Without this script
 * every page works as plain links and POST forms.
 */
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.closest) return false;
    return Boolean(target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']"));
  }

  function $(selector) { return document.querySelector(selector); }

  function toggleHelp(show) {
    var help = $("#cs-shortcuts");
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) help.focus();
  }

  // --- the inbox ---------------------------------------------------------------------------

  var selectedId = null;

  function items() { return Array.prototype.slice.call(document.querySelectorAll(".cs-inbox-item")); }

  function select(item) {
    items().forEach(function (el) {
      el.classList.remove("cs-selected");
      el.removeAttribute("aria-current");
    });
    if (!item) return;
    item.classList.add("cs-selected");
    item.setAttribute("aria-current", "true");
    selectedId = item.id;
    var link = item.querySelector("a.cs-review-link");
    if (link) link.focus({ preventScroll: true });
    item.scrollIntoView({ block: "nearest" });
  }

  function selected() {
    var all = items();
    for (var i = 0; i < all.length; i++) if (all[i].id === selectedId) return all[i];
    return null;
  }

  function inboxKey(key) {
    var all = items();
    if (!all.length) return false;
    var current = selected();
    var at = current ? all.indexOf(current) : -1;
    if (key === "j") { select(all[Math.min(at + 1, all.length - 1)]); return true; }
    if (key === "k") { select(all[Math.max(at - 1, 0)]); return true; }
    var hash = { a: "#approve", r: "#reject", e: "#edit", Enter: "" }[key];
    if (hash === undefined) return false;
    var item = current || all[0];
    var link = item.querySelector("a.cs-review-link");
    if (!link) return false;
    window.location.href = link.href + hash;
    return true;
  }

  // The live list is swapped in every few seconds: keep the reviewer's place in it.
  document.addEventListener("htmx:afterSwap", function () {
    if (!document.body.classList.contains("cs-inbox") || !selectedId) return;
    var item = document.getElementById(selectedId);
    if (item) {
      item.classList.add("cs-selected");
      item.setAttribute("aria-current", "true");
    }
  });

  // --- the review page ---------------------------------------------------------------------

  function openConfirm() {
    var confirm = $("#approve-confirm");
    var form = $("#approve-form");
    if (!confirm || !form) return false;
    confirm.hidden = false;
    confirm.scrollIntoView({ block: "center" });
    var yes = confirm.querySelector("button.cs-approve");
    if (yes) yes.focus({ preventScroll: true });
    return true;
  }

  function closeConfirm() {
    var confirm = $("#approve-confirm");
    if (confirm && !confirm.hidden) { confirm.hidden = true; return true; }
    return false;
  }

  function focusField(selector) {
    var field = $(selector);
    if (!field) return false;
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
    return true;
  }

  function reviewKey(key) {
    var nav = $("#cs-review-nav");
    if (key === "j" || key === "k") {
      var link = nav && nav.querySelector(key === "j" ? "a[rel=next]" : "a[rel=prev]");
      if (!link) return false;
      window.location.href = link.href;
      return true;
    }
    if (key === "a") return openConfirm();
    if (key === "r") return focusField("#reject-reason");
    if (key === "e") return focusField("#edit-form input:not([type=hidden]), #edit-form textarea");
    return false;
  }

  function setUpReview() {
    var confirm = $("#approve-confirm");
    var form = $("#approve-form");
    if (confirm && form) {
      confirm.querySelector("button.cs-approve").addEventListener("click", function () {
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      });
      confirm.querySelector("button.cs-cancel").addEventListener("click", function () {
        confirm.hidden = true;
        var button = form.querySelector("input[type=submit]");
        if (button) button.focus();
      });
    }
    // Arriving from the inbox with a, r or e: take the same step here.
    var step = { "#approve": "a", "#reject": "r", "#edit": "e" }[window.location.hash];
    if (step) reviewKey(step);
  }

  // --- both --------------------------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      if (closeConfirm()) { event.preventDefault(); return; }
      var help = $("#cs-shortcuts");
      if (help && !help.hidden) { toggleHelp(false); event.preventDefault(); }
      return;
    }
    if (typing(event.target)) return;
    var handled = false;
    if (event.key === "?") { toggleHelp(); handled = true; }
    else if (document.body.classList.contains("cs-inbox")) {
      if (event.key !== "Enter" || selected()) handled = inboxKey(event.key);
    }
    else if (document.body.classList.contains("cs-review")) handled = reviewKey(event.key);
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.closest && target.closest("[data-cs-shortcuts]")) {
      event.preventDefault();
      toggleHelp();
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpReview);
  else setUpReview();
})();
