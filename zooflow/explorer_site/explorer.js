// zooflow explorer: a grid of galaxies with their posteriors, one page per galaxy (#galaxy=<id>)
// and the active-learning rounds (#rounds). Data: window.ZOOFLOW_EXPLORER, from data.js
// (fractions in thousandths, galaxies as indices into D.ids; see zooflow/explorer.py).
"use strict";
(function () {
  const D = window.ZOOFLOW_EXPLORER;
  const $ = (id) => document.getElementById(id);
  if (!D) {
    document.querySelector("main").textContent =
      "data.js is missing or did not load: keep it beside index.html.";
    return;
  }
  const PAGE = 240; // cells rendered at once; "Show more" adds as many again
  const n = D.ids.length;
  const byId = new Map(D.ids.map((id, i) => [id, i]));
  const answerQuestion = [];
  const answerLabel = [];
  D.questions.forEach((q, qi) =>
    q.answers.forEach((a, k) => {
      answerQuestion[a] = qi;
      answerLabel[a] = q.labels[k];
    })
  );
  const state = { split: "", answer: "", min: 0, max: 1, sort: "desc", limit: PAGE };

  const fmt = (v) => (v === null || v === undefined ? "–" : (v / 1000).toFixed(2));
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    });
    children.forEach((c) => node.append(c));
    return node;
  };
  const galaxyHref = (i) => "#galaxy=" + encodeURIComponent(D.ids[i]);

  function thumb(i, size) {
    const t = D.thumbnails;
    const k = i % t.per_sheet;
    const div = el("div", { class: "thumb", role: "img", "aria-label": D.ids[i] });
    div.style.width = div.style.height = size + "px";
    div.style.backgroundImage = `url("${t.files[Math.floor(i / t.per_sheet)]}")`;
    div.style.backgroundSize = `${t.columns * size}px auto`;
    div.style.backgroundPosition = `-${(k % t.columns) * size}px -${Math.floor(k / t.columns) * size}px`;
    return div;
  }

  function bar(i, a) {
    const b = el("div", { class: "bar" });
    const range = el("div", { class: "range" });
    range.style.left = D.lo[i][a] / 10 + "%";
    range.style.width = Math.max(D.hi[i][a] - D.lo[i][a], 5) / 10 + "%";
    const mean = el("div", { class: "mean" });
    mean.style.left = D.fraction[i][a] / 10 + "%";
    b.append(range, mean);
    const observed = D.observed[i] && D.observed[i][a];
    if (observed !== null && observed !== undefined) {
      const o = el("div", { class: "obs", title: "observed" });
      o.style.left = observed / 10 + "%";
      b.append(o);
    }
    return b;
  }

  const summaryText = (i, a) =>
    `${answerLabel[a]} ${fmt(D.fraction[i][a])} [${fmt(D.lo[i][a])}, ${fmt(D.hi[i][a])}]`;

  // The most likely answer of every question: a cell's tooltip, written when first hovered.
  function tooltip(i) {
    return D.questions
      .map((q) => {
        const best = q.answers.reduce((x, y) => (D.fraction[i][y] > D.fraction[i][x] ? y : x));
        return `${q.name}: ${summaryText(i, best)}`;
      })
      .join("\n");
  }

  function cell(i, shownAnswer) {
    const a = shownAnswer === "" ? D.questions[0].answers[0] : Number(shownAnswer);
    const link = el(
      "a",
      { class: "cell", href: galaxyHref(i), "data-id": D.ids[i], "data-fraction": fmt(D.fraction[i][a]) },
      thumb(i, 80),
      el("div", { class: "id", text: D.ids[i] }),
      el("div", { class: "summary", text: `${D.splits[D.split[i]]} · ${summaryText(i, a)}` }),
      bar(i, a)
    );
    link.addEventListener("mouseenter", () => link.title || (link.title = tooltip(i)), { once: true });
    return link;
  }

  function matching() {
    const split = state.split === "" ? -1 : Number(state.split);
    const a = state.answer === "" ? -1 : Number(state.answer);
    const lo = Math.round(state.min * 1000);
    const hi = Math.round(state.max * 1000);
    const shown = [];
    for (let i = 0; i < n; i++) {
      if (split >= 0 && D.split[i] !== split) continue;
      if (a >= 0) {
        const f = D.fraction[i][a];
        if (f === null || f < lo || f > hi) continue;
      }
      shown.push(i);
    }
    if (a >= 0 && state.sort !== "id") {
      const sign = state.sort === "asc" ? 1 : -1;
      shown.sort((x, y) => sign * (D.fraction[x][a] - D.fraction[y][a]) || x - y);
    }
    return shown;
  }

  function renderGrid() {
    const shown = matching();
    const grid = $("grid");
    const cells = document.createDocumentFragment();
    shown.slice(0, state.limit).forEach((i) => cells.append(cell(i, state.answer)));
    grid.replaceChildren(cells);
    const sample = D.run_galaxies > n ? ` (a sample of the run's ${D.run_galaxies})` : "";
    $("count").textContent = `${shown.length} of ${n} galaxies${sample}`;
    $("count").dataset.matching = shown.length;
    $("more").hidden = shown.length <= state.limit;
  }

  function setUpControls() {
    D.splits.forEach((s, k) => $("split").append(el("option", { value: k, text: s })));
    D.questions.forEach((q) => {
      const group = el("optgroup", { label: q.name });
      q.answers.forEach((a, k) => group.append(el("option", { value: a, text: `${q.name}: ${q.labels[k]}` })));
      $("answer").append(group);
    });
    const read = () => {
      state.split = $("split").value;
      state.answer = $("answer").value;
      state.min = Number($("min").value) || 0;
      state.max = $("max").value === "" ? 1 : Number($("max").value);
      state.sort = $("sort").value;
      state.limit = PAGE;
      renderGrid();
    };
    ["split", "answer", "min", "max", "sort"].forEach((id) => $(id).addEventListener("input", read));
    $("more").addEventListener("click", () => {
      state.limit += PAGE;
      renderGrid();
    });
  }

  // --- a galaxy's page ------------------------------------------------------------------------
  let roundRanks = null; // per round: Map galaxy index -> position in the round's score order
  function ranks() {
    roundRanks = roundRanks || D.rounds.map((r) => new Map(r.scored.map((g, k) => [g, k])));
    return roundRanks;
  }

  function posteriorTable(i) {
    const table = el("table", { class: "posteriors" });
    table.append(
      el("tr", {}, ...["answer", "fraction", "90% interval", "", "observed"].map((h) => el("th", { text: h })))
    );
    D.questions.forEach((q, qi) => {
      const asked = D.p_asked[i] && D.p_asked[i][qi];
      const volunteers = D.volunteers[i] ? D.volunteers[i][qi] : null;
      const title = `${q.name}` + (asked === null || asked === undefined ? "" : ` (P asked ${fmt(asked)})`) +
        (volunteers ? ` · ${volunteers} volunteers` : "");
      table.append(el("tr", { class: "question" }, el("th", { colspan: 5, text: title })));
      q.answers.forEach((a, k) => {
        const observed = D.observed[i] ? D.observed[i][a] : null;
        table.append(
          el(
            "tr",
            { "data-answer": D.answers[a] },
            el("td", { text: q.labels[k] }),
            el("td", { class: "num", text: fmt(D.fraction[i][a]) }),
            el("td", { class: "num", text: `[${fmt(D.lo[i][a])}, ${fmt(D.hi[i][a])}]` }),
            el("td", { class: "barcell" }, bar(i, a)),
            el("td", { class: "num", text: observed === null ? "" : fmt(observed) })
          )
        );
      });
    });
    return table;
  }

  function neighbourSection(i) {
    const section = el("section", { id: "neighbours" }, el("h3", { text: "Nearest neighbours" }));
    if (!D.neighbours) {
      section.append(el("p", { class: "note", text: D.neighbours_note }));
      return section;
    }
    section.append(el("p", { class: "legend", text: "By cosine similarity of the network's compressed representations." }));
    const list = el("div", { class: "neighbours" });
    D.neighbours[i].forEach(([j, similarity]) => {
      const link = el("a", { class: "cell neighbour", href: galaxyHref(j), "data-id": D.ids[j] },
        thumb(j, 80), el("div", { class: "id", text: D.ids[j] }),
        el("div", { class: "summary", text: `similarity ${similarity.toFixed(3)}` }));
      list.append(link);
    });
    section.append(list);
    return section;
  }

  function roundSection(i) {
    const section = el("section", { id: "acquisition" }, el("h3", { text: "Active learning" }));
    if (!D.rounds.length) {
      section.append(el("p", { class: "note", text:
        "No active-learning rounds in this explorer: set explorer.active_learning to true and run the default target with it (snakemake all full)." }));
      return section;
    }
    const rows = [];
    D.rounds.forEach((r, k) => {
      const at = ranks()[k].get(i);
      if (at === undefined) return;
      const acquired = r.acquired.indexOf(i);
      rows.push(el("tr", { class: acquired >= 0 ? "was-acquired" : "" },
        el("td", { text: r.strategy }), el("td", { text: r.seed }), el("td", { text: r.round }),
        el("td", { class: "num", text: r.score[at] }),
        el("td", { text: `${at + 1} of ${r.scored.length}` }),
        el("td", { text: acquired >= 0 ? `acquired (rank ${acquired + 1} of ${r.acquired.length})` : "not acquired" })));
    });
    if (!rows.length) {
      section.append(el("p", { class: "note", text:
        `Never waiting in an active-learning pool (it is in the ${D.splits[D.split[i]]} split).` }));
      return section;
    }
    const table = el("table", { class: "rounds" }, el("tr", {},
      ...["strategy", "seed", "round", "score", "rank", ""].map((h) => el("th", { text: h }))));
    rows.forEach((row) => table.append(row));
    section.append(table, strategyLegend());
    return section;
  }

  const strategyLegend = () =>
    el("ul", { class: "legend" }, ...Object.entries(D.strategies).map(([s, why]) => el("li", { text: `${s}: score = ${why}` })));

  function renderGalaxy(i) {
    const view = $("galaxy-view");
    view.replaceChildren(
      el("p", {}, el("a", { href: "#", text: "← all galaxies" })),
      el("h2", { text: D.ids[i] }),
      el("div", { class: "galaxy-head" },
        thumb(i, 256),
        el("div", {},
          el("p", { text: `split: ${D.splits[D.split[i]]}` }),
          el("p", { class: "legend", text: D.observed[i]
            ? "Bars: 90% interval of the vote probability (blue), mean vote fraction (dark), observed fraction (red)."
            : "Bars: 90% interval of the vote probability (blue), mean vote fraction (dark). No volunteer votes for this galaxy." }))),
      posteriorTable(i),
      neighbourSection(i),
      roundSection(i)
    );
    view.dataset.galaxy = D.ids[i];
  }

  // --- the active-learning rounds -------------------------------------------------------------
  function renderRounds() {
    const view = $("rounds-view");
    if (view.childElementCount) return;
    view.append(el("h2", { text: "What each strategy acquired, round by round" }), strategyLegend());
    D.rounds.forEach((r, index) => {
      const details = el("details", { "data-strategy": r.strategy, "data-round": r.round },
        el("summary", { text: `${r.strategy} · seed ${r.seed} · round ${r.round}: acquired ${r.acquired.length} of ${r.scored.length} waiting` }));
      details.addEventListener("toggle", () => {
        if (!details.open || details.querySelector(".acquired")) return;
        const list = el("div", { class: "acquired" });
        r.acquired.forEach((g, k) => {
          const mi = r.acquired_mi ? ` · MI ${r.acquired_mi[k]}` : "";
          list.append(el("a", { class: "cell", href: galaxyHref(g), "data-id": D.ids[g] },
            thumb(g, 80), el("div", { class: "id", text: D.ids[g] }),
            el("div", { class: "summary", text: `#${k + 1} · score ${r.score[ranks()[index].get(g)]}${mi}` })));
        });
        details.append(list);
      });
      view.append(details);
    });
  }

  function route() {
    const hash = decodeURIComponent(location.hash.slice(1));
    const galaxy = hash.startsWith("galaxy=") ? byId.get(hash.slice(7)) : undefined;
    const view = galaxy !== undefined ? "galaxy" : hash === "rounds" && D.rounds.length ? "rounds" : "grid";
    $("grid-view").hidden = view !== "grid";
    $("galaxy-view").hidden = view !== "galaxy";
    $("rounds-view").hidden = view !== "rounds";
    if (view === "galaxy") renderGalaxy(galaxy);
    if (view === "rounds") renderRounds();
    if (view !== "grid") window.scrollTo(0, 0);
  }

  $("rounds-link").hidden = !D.rounds.length;
  setUpControls();
  renderGrid();
  performance.mark("grid-rendered");
  document.body.dataset.gridRendered = "1";
  window.addEventListener("hashchange", route);
  route();
})();
