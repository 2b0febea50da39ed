// Building the page from data: every server string becomes a text node, never markup.
// (The console's CSP also requires Trusted Types, so an innerHTML assignment would throw.)

const SVG_NS = "http://www.w3.org/2000/svg";

/** The element with this id; a missing one is a bug in index.html, so say which. */
export function byId(id) {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`#${id} is missing from the page`);
  return node;
}

function apply(node, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

/** An HTML element: el("td", {class: "num"}, "42"). Strings among the children are text. */
export function el(tag, props = {}, ...children) {
  const node = apply(document.createElement(tag), props);
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** An SVG element, for the charts. */
export function svg(tag, props = {}, ...children) {
  const node = apply(document.createElementNS(SVG_NS, tag), props);
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** Says `message` to screen readers through the page's polite status region. */
export function announce(message) {
  const region = byId("announcer");
  region.textContent = "";
  // A fresh text node after a tick, so the same message twice is still read twice.
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}
