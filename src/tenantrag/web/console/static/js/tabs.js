// The WAI-ARIA tabs pattern: one tab in the Tab order (roving tabindex), arrow keys and
// Home/End move between tabs and show their panel, and the URL's #fragment names the panel, so
// the browser's back button and a bookmark both work (the fragment holds no secret).

export function setupTabs(tablist, onShow) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const nameOf = (tab) => tab.id.replace(/^tab-/, "");
  const panelOf = (tab) => document.getElementById(tab.getAttribute("aria-controls"));

  function select(tab, { focus = false } = {}) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      panelOf(other).hidden = !selected;
    }
    if (focus) tab.focus();
    const name = nameOf(tab);
    if (window.location.hash !== `#${name}`) window.history.replaceState(null, "", `#${name}`);
    onShow(name, panelOf(tab));
  }

  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) select(tab);
  });
  tablist.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = {
      ArrowRight: (index + 1) % tabs.length,
      ArrowLeft: (index - 1 + tabs.length) % tabs.length,
      Home: 0,
      End: tabs.length - 1,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[moves[event.key]], { focus: true });
  });

  return {
    /** Show the panel `name` (or the first when unknown); focus its tab if asked. */
    show(name, options) {
      select(tabs.find((tab) => nameOf(tab) === name) ?? tabs[0], options);
    },
    names: tabs.map(nameOf),
  };
}
