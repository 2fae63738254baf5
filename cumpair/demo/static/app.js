// Nebula demo shop: every listing and product detail is rendered here, in the browser, from
// /api/... JSON. The HTML the server sends holds no product data; when rendering is done the
// script sets body[data-ready="1"] so a headless browser knows when to read the page.
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key.indexOf("data-") === 0) {
        node.setAttribute(key, attrs[key]);
      } else {
        node[key] = attrs[key];
      }
    });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function ready() {
    document.body.dataset.ready = "1";
  }

  function fail(app, message) {
    app.appendChild(el("p", { className: "error" }, message));
    ready();
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error(url + " answered " + response.status);
      return response.json();
    });
  }

  function renderCategory(app, slug, page) {
    var url = "/api/catalog?category=" + encodeURIComponent(slug) + "&page=" + page;
    return getJSON(url).then(function (data) {
      document.title = data.category.title + " - page " + data.page + " - Nebula";
      app.appendChild(el("h1", {}, data.category.title));
      var list = el("div", { className: "tiles" });
      data.items.forEach(function (item) {
        var tile = el("a", { className: "tile", href: item.url });
        tile.appendChild(el("img", { src: item.image, alt: "" }));
        tile.appendChild(el("span", { className: "tile-title" }, item.title));
        list.appendChild(tile);
      });
      app.appendChild(list);
      var pager = el("div", { className: "pager" }, "Page " + data.page + " of " + data.pages + " ");
      if (data.next) pager.appendChild(el("a", { rel: "next", href: data.next }, "Next"));
      app.appendChild(pager);
    });
  }

  function renderItem(app, id) {
    return getJSON("/api/items/" + encodeURIComponent(id)).then(function (item) {
      document.title = item.name + " - Nebula";
      app.appendChild(el("h1", { id: "name" }, item.name));
      var price = el("p", {}, "Price: ");
      price.appendChild(el("span", { id: "price", "data-currency": item.currency }, item.price));
      price.appendChild(document.createTextNode(" " + item.currency));
      app.appendChild(price);
      [["brand", "Brand"], ["mpn", "Model"], ["sku", "SKU"], ["gtin", "GTIN"],
       ["availability", "Availability"]].forEach(function (pair) {
        var row = el("p", {}, pair[1] + ": ");
        row.appendChild(el("span", { id: pair[0] }, item[pair[0]] || ""));
        app.appendChild(row);
      });
      app.appendChild(el("div", { id: "description" }, item.description));
      item.images.forEach(function (src) {
        app.appendChild(el("img", { className: "photo", src: src, alt: "" }));
      });
    });
  }

  function main() {
    var app = document.getElementById("app");
    if (!app) return;
    var path = window.location.pathname;
    var params = new URLSearchParams(window.location.search);
    var category = path.match(/^\/shop\/([^/]+)$/);
    var item = path.match(/^\/item\/([^/]+)$/);
    var work;
    if (category) {
      work = renderCategory(app, decodeURIComponent(category[1]), parseInt(params.get("page") || "1", 10));
    } else if (item) {
      work = renderItem(app, decodeURIComponent(item[1]));
    } else {
      work = Promise.resolve();
    }
    work.then(ready, function (error) { fail(app, String(error)); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", main);
  } else {
    main();
  }
})();
