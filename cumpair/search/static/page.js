"use strict";
// Dates in the browser's time zone and locale, prices in its locale's currency format;
// without this script the page shows UTC times and plain "€1,234.56" prices.
for (const el of document.querySelectorAll("time[datetime]")) {
  const when = new Date(el.getAttribute("datetime"));
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
