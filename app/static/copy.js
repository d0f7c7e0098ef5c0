// Copy buttons: each element with data-copy-from="<id>" gets a button copying that element's text
// (an input's value) to the clipboard, and says whether it worked. Without JavaScript (or without
// the clipboard API) the text is there to select and copy by hand. No inline script (CSP).
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-from]").forEach(function (holder) {
    const source = document.getElementById(holder.dataset.copyFrom);
    if (!source || !navigator.clipboard) return;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = holder.dataset.copyLabel || "Copy";
    const said = document.createElement("span");
    said.className = "copy-status muted";
    said.setAttribute("aria-live", "polite");
    button.addEventListener("click", function () {
      const text = source instanceof HTMLInputElement ? source.value : source.textContent;
      navigator.clipboard.writeText(text).then(
        function () { said.textContent = "Copied."; },
        function () {
          said.textContent = "Could not copy: select the text and copy it.";
          if (source instanceof HTMLInputElement) source.select();
        },
      );
    });
    holder.append(button, said);
  });
})();
