// DOM helpers. Everything from the API goes in as text nodes or attributes,
// never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * Creates an element. `attrs` keys: `class`, `text`, `dataset` (object),
 * `on` (event → handler), `style` (object), `hidden`; anything else is set with setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Same as h() for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

function applyAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = String(value);
    else if (name === "dataset") {
      for (const [k, v] of Object.entries(value)) {
        if (v !== null && v !== undefined) el.dataset[k] = String(v);
      }
    } else if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "style" && typeof value === "object") {
      // CSSOM rather than a style attribute, so a strict CSP cannot block it
      for (const [k, v] of Object.entries(value)) el.style.setProperty(k, String(v));
    } else if (name === "hidden") el.hidden = true;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A 16×16 icon whose shape (not only colour) tells the tone apart. */
export function toneIcon(tone, size = 16) {
  const svg = s("svg", {
    class: `icon icon-${tone}`,
    width: size,
    height: size,
    viewBox: "0 0 16 16",
    "aria-hidden": "true",
    focusable: "false",
  });
  switch (tone) {
    case "done":
      // filled circle with a check mark
      svg.append(
        s("circle", { cx: 8, cy: 8, r: 7, class: "fill" }),
        s("path", { d: "M4.8 8.3l2.1 2.1 4.3-4.6", class: "mark" }),
      );
      break;
    case "failed":
      // octagon with a cross
      svg.append(
        s("path", { d: "M5.1 1h5.8L15 5.1v5.8L10.9 15H5.1L1 10.9V5.1z", class: "fill" }),
        s("path", { d: "M5.5 5.5l5 5M10.5 5.5l-5 5", class: "mark" }),
      );
      break;
    case "warn":
      // triangle with an exclamation mark
      svg.append(
        s("path", { d: "M8 1.2l7 13H1z", class: "fill" }),
        s("path", { d: "M8 6v3.6", class: "mark" }),
        s("circle", { cx: 8, cy: 11.9, r: 0.9, class: "dot" }),
      );
      break;
    case "active":
      // ring with a moving arc
      svg.append(
        s("circle", { cx: 8, cy: 8, r: 6, class: "track" }),
        s("path", { d: "M8 2a6 6 0 0 1 6 6", class: "arc" }),
      );
      break;
    case "merged":
      // merge glyph in a filled circle
      svg.append(
        s("circle", { cx: 8, cy: 8, r: 7, class: "fill" }),
        s("path", { d: "M6 4.5v7M6 6.2c0 2 1.5 2.8 4 2.8", class: "mark" }),
        s("circle", { cx: 10.4, cy: 9, r: 1.1, class: "dot" }),
      );
      break;
    case "closed":
      // circle with a slash
      svg.append(
        s("circle", { cx: 8, cy: 8, r: 6.2, class: "track" }),
        s("path", { d: "M3.8 12.2l8.4-8.4", class: "slash" }),
      );
      break;
    case "draft":
      // pencil
      svg.append(
        s("path", { d: "M10.8 2.2l3 3-7.6 7.6-3.7.7.7-3.7z", class: "track" }),
        s("path", { d: "M9.3 3.7l3 3", class: "slash" }),
      );
      break;
    case "waiting":
      // hollow dashed circle
      svg.append(s("circle", { cx: 8, cy: 8, r: 6, class: "dashed" }));
      break;
    default:
      // question mark in a circle for values the dashboard does not know
      svg.append(
        s("circle", { cx: 8, cy: 8, r: 6.2, class: "track" }),
        s("path", { d: "M6.3 6.3a1.8 1.8 0 1 1 2.4 1.7c-.5.2-.7.6-.7 1.1v.4", class: "slash" }),
        s("circle", { cx: 8, cy: 11.8, r: 0.8, class: "dot" }),
      );
  }
  return svg;
}

/** A tone-coloured pill with an icon and a text label. */
export function pill(label, tone, attrs = {}) {
  return h("span", { class: `pill tone-${tone}`, ...attrs }, toneIcon(tone, 14), h("span", { text: label }));
}

/** A link to an external page, only for http(s) URLs; plain text otherwise. */
export function maybeLink(href, attrs, ...children) {
  if (!href) return h("span", { class: attrs?.class }, ...children);
  return h("a", { href, rel: "noopener noreferrer", ...attrs }, ...children);
}

/** <time> with relative text and the ISO timestamp in its title. */
export function timeEl(iso, relative) {
  if (!iso) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: iso, title: iso, dataset: { ts: iso }, text: relative(iso) || iso });
}
