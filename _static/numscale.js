// numscale book: small behaviour fixes to the stock theme.
// Jupyter Book links every .js file in _static into every page.
(() => {
  const ready = (callback) =>
    document.readyState === "loading"
      ? document.addEventListener("DOMContentLoaded", callback)
      : callback();
  const loaded = (callback) =>
    document.readyState === "complete" ? callback() : window.addEventListener("load", callback);

  // A first visit. pydata-sphinx-theme's inline script copies localStorage "mode" and
  // "theme" onto <html> before the first paint, falling back to html_context.default_mode;
  // with empty storage and no default it wrote "", so its script logged "Got invalid theme
  // mode: . Resetting to auto." on every page and the page was painted in neither theme
  // until it ran. _config.yml sets default_mode "auto"; this script (loaded in <head>,
  // before the body is painted) also resolves "auto" to the reader's system scheme at
  // once, and repairs an invalid stored mode.
  const root = document.documentElement;
  if (!["light", "dark", "auto"].includes(root.dataset.mode)) root.dataset.mode = "auto";
  if (!["light", "dark"].includes(root.dataset.theme)) {
    const stored = root.dataset.mode;
    const systemDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = stored === "light" || stored === "dark" ? stored : systemDark ? "dark" : "light";
  }

  // Accessible names of the header buttons (axe-core "label-content-name-mismatch",
  // WCAG 2.5.3 "Label in Name"). The search button shows "Search Ctrl+K" but is named
  // "Search"; the theme switch shows the icon of the current mode, titled "Light", "Dark"
  // or "System Settings", but is named "Color mode". Speech-input users say what they
  // see, so the name must contain the visible label: name each button by what it shows.
  const visibleText = (element) => {
    let text = "";
    const walk = (node) => {
      if (node.nodeType === Node.TEXT_NODE) { text += node.data; return; }
      if (node.nodeType !== Node.ELEMENT_NODE) return;
      const style = getComputedStyle(node);
      if (style.display === "none" || style.visibility === "hidden") return;
      if (node.localName === "title" || node.localName === "svg" || node.localName === "i") {
        const title = node.getAttribute("title") || (node.querySelector && node.querySelector("title")?.textContent) || "";
        text += title ? ` ${title} ` : "";
        return;
      }
      node.childNodes.forEach(walk);
    };
    walk(element);
    return text.replace(/\s+/g, " ").trim();
  };
  const nameButtons = () => {
    for (const button of document.querySelectorAll(".search-button__button")) {
      const shown = visibleText(button);
      if (shown) button.setAttribute("aria-label", shown);
      button.setAttribute("aria-keyshortcuts", "Control+K Meta+K");
    }
    for (const button of document.querySelectorAll(".theme-switch-button")) {
      const shown = visibleText(button);
      button.setAttribute("aria-label", shown ? `Color mode: ${shown}` : "Color mode");
    }
  };
  loaded(() => {
    nameButtons();
    // The theme switch cycles light / dark / auto: rename it when the mode changes.
    new MutationObserver(nameButtons).observe(root, { attributes: true, attributeFilter: ["data-mode"] });
  });

  // Sidebar toggles. pydata-sphinx-theme 0.17 and sphinx-book-theme 1.3 attach their click
  // handlers (open the navigation dialog on narrow screens, collapse the sidebar on wide
  // ones) to the FIRST ".primary-toggle" / ".secondary-toggle" of the page, which is the
  // one in the pydata header that sphinx-book-theme hides. The toggles readers see, in the
  // article header, did nothing: on a phone the navigation could not be opened. Forward
  // their clicks to the button that has the handlers.
  ready(() => {
    for (const selector of [".primary-toggle", ".secondary-toggle"]) {
      const toggles = Array.from(document.querySelectorAll(selector));
      const bound = toggles[0];
      for (const toggle of toggles.slice(1)) {
        toggle.addEventListener("click", (event) => {
          event.preventDefault();
          event.stopPropagation();
          toggle.blur();
          bound.click();
        });
      }
    }
  });

  // The ".ipynb" entry of the download menu links to the generated notebook
  // (_notebooks/<page>.ipynb): ask the browser to save it rather than show its JSON.
  ready(() => {
    for (const link of document.querySelectorAll("a.btn-download-notebook-button")) {
      link.setAttribute("download", link.getAttribute("href").split("/").pop());
      link.removeAttribute("target");
    }
  });

  // Search result snippets. Sphinx builds each snippet from the text of the page's HTML,
  // where maths is still TeX source (MathJax typesets it only in the browser), so results
  // showed "\(q\cdot k\)" and TeX cut in half at the snippet's edges. Drop the cut-off
  // pieces and typeset the rest with the book's own MathJax, loaded on demand.
  const MATH_OPEN = /\\\(|\\\[/g;
  const MATH_CLOSE = /\\\)|\\\]/g;
  // [start, end) of the snippet text without maths cut off at either edge.
  const completeMathRange = (text) => {
    let start = 0;
    let end = text.length;
    const firstOpen = text.search(MATH_OPEN);
    const firstClose = text.search(MATH_CLOSE);
    if (firstClose !== -1 && (firstOpen === -1 || firstClose < firstOpen)) start = firstClose + 2;
    const opens = [...text.matchAll(MATH_OPEN)].map((m) => m.index).filter((i) => i >= start);
    const closes = [...text.matchAll(MATH_CLOSE)].map((m) => m.index).filter((i) => i >= start);
    const lastOpen = opens.length ? opens[opens.length - 1] : -1;
    const lastClose = closes.length ? closes[closes.length - 1] : -1;
    if (lastOpen > lastClose) end = lastOpen;
    return [start, end];
  };
  // Keep only characters [start, end) of an element's text, text node by text node, so
  // the search-term highlighting (spans) survives.
  const keepTextRange = (root, start, end) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    let offset = 0;
    for (const node of nodes) {
      const from = offset;
      offset += node.data.length;
      const keepFrom = Math.max(start, from) - from;
      const keepTo = Math.min(end, offset) - from;
      node.data = keepTo > keepFrom ? node.data.slice(keepFrom, keepTo) : "";
    }
    if (start > 0) root.prepend("…");
    if (end < offset) root.append("…");
  };
  let mathJaxLoading = null;
  const loadMathJax = () => {
    if (window.MathJax && window.MathJax.typesetPromise) return Promise.resolve(window.MathJax);
    if (!mathJaxLoading) {
      mathJaxLoading = new Promise((resolve, reject) => {
        window.MathJax = { startup: { typeset: false } };
        const script = document.createElement("script");
        const root = document.documentElement.dataset.content_root || "./";
        script.src = root + "_static/mathjax/tex-chtml.js";
        script.onload = () => window.MathJax.startup.promise.then(() => resolve(window.MathJax));
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    return mathJaxLoading;
  };
  ready(() => {
    const results = document.getElementById("search-results");
    if (!results) return;
    let pending = 0;
    const typeset = (paragraphs) => {
      // Search-term highlighting can wrap a word inside a formula (softmax in
      // \operatorname{softmax}), splitting its TeX across elements, which MathJax then
      // leaves raw: such a snippet keeps its text and loses its highlighting.
      for (const p of paragraphs) {
        if (p.textContent.search(MATH_OPEN) !== -1) p.textContent = p.textContent;
      }
      pending += 1;
      results.dataset.numscaleTypeset = "pending";
      loadMathJax()
        .then((mathjax) => mathjax.typesetPromise(paragraphs))
        .catch((error) => console.warn("[numscale] could not typeset search results:", error))
        .finally(() => {
          pending -= 1;
          if (!pending) results.dataset.numscaleTypeset = "done";
        });
    };
    new MutationObserver((mutations) => {
      const added = [];
      for (const mutation of mutations) {
        for (const node of mutation.addedNodes) {
          if (node.nodeType !== Node.ELEMENT_NODE) continue;
          for (const p of node.matches("p.context") ? [node] : node.querySelectorAll("p.context")) {
            if (p.dataset.numscaleMath) continue;
            p.dataset.numscaleMath = "1";
            const [start, end] = completeMathRange(p.textContent);
            if (start > 0 || end < p.textContent.length) keepTextRange(p, start, end);
            if (p.textContent.search(MATH_OPEN) !== -1) added.push(p);
          }
        }
      }
      if (added.length) typeset(added);
    }).observe(results, { childList: true, subtree: true });
  });
})();
