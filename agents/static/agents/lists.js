/* On a phone, each row of a console list is shown as a card (lists.css): this labels every
 * cell with its column's heading, so the card says what each value is. Plain script; without
 * it the list is the same table, scrolled sideways.
 */
(function () {
  "use strict";

  function label(table) {
    // A heading's name is its `.text` (Django puts sorting arrows and numbers beside it).
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      var name = th.querySelector(".text") || th;
      return name.textContent.replace(/\s+/g, " ").trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, index) {
        if (heads[index] && !cell.classList.contains("action-checkbox")) {
          cell.setAttribute("data-label", heads[index]);
        }
      });
    });
  }

  function labelAll() { document.querySelectorAll("#result_list").forEach(label); }

  document.addEventListener("DOMContentLoaded", labelAll);
  document.addEventListener("htmx:afterSwap", labelAll);
})();
