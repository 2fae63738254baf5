"use strict";
// Dates in the browser's time zone and locale, prices in its locale's currency format;
// without this script the page shows UTC times and plain "€1,234.56" prices.
for (const el of document.querySelectorAll("time[datetime], text[data-time]")) {
  const when = new Date(el.getAttribute("datetime") || el.dataset.time);
  if (!Number.isNaN(when.getTime())) {
    el.title = el.textContent;
    el.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
}
for (const el of document.querySelectorAll("[data-price][data-currency]")) {
  try {
    el.textContent = new Intl.NumberFormat(undefined, {
      style: "currency", currency: el.dataset.currency,
    }).format(Number(el.dataset.price));
  } catch (error) { /* an unknown currency code keeps the server's text */ }
}
// A preview of the photo about to be searched for.
const input = document.getElementById("image");
const preview = document.getElementById("preview");
if (input && preview) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  });
}
// A text or GTIN search goes as a GET (a link one can share); only a photo needs the upload.
const form = document.getElementById("search-form");
if (form && input) {
  form.addEventListener("submit", () => {
    if (!input.files.length) {
      form.method = "get";
      form.removeAttribute("enctype");
      input.disabled = true;
      for (const field of form.elements) {
        if (field.name && !field.value) field.disabled = true;  // no empty parameters
      }
    }
  });
  // Coming back to the page (history), the fields are usable again.
  window.addEventListener("pageshow", () => {
    for (const field of form.elements) field.disabled = false;
  });
}
