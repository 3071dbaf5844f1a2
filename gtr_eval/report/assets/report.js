/* gtr-eval report: draws tables and SVG charts from the JSON embedded in the page.
   No network, no libraries: everything the page shows is in #report-data. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var DEC = DATA.decimals;
  var SVGNS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  // --- helpers ---------------------------------------------------------------------------------

  function fmt(v) { return v === null || v === undefined ? "–" : v.toFixed(DEC); }
  function fmtSigned(v) { return v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + v.toFixed(DEC); }
  function fmtP(p) {
    if (p === null || p === undefined) return "–";
    return p < 0.0001 ? p.toExponential(1) : p.toFixed(4);
  }
  function rounded(v) { return v === null || v === undefined ? null : Number(v.toFixed(DEC)); }
  function at(grid, i, j) { return grid && grid[i] && grid[i][j] !== undefined ? grid[i][j] : null; }
  function fmtInterval(lo, hi, signed) {
    var f = signed ? fmtSigned : fmt;
    return "[" + f(lo) + ", " + f(hi) + "]";
  }
  function pct(v) { return Math.round(100 * v) + "%"; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function svgEl(tag, attrs, children) {
    var node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    });
  }
  function append(node, children) {
    if (children === null || children === undefined) return;
    (Array.isArray(children) ? children : [children]).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function option(value, label, selected) {
    return el("option", { value: value, selected: selected ? true : null, text: label });
  }
  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1));
    });
    return out;
  }
  function writeHash(state) {
    var parts = Object.keys(state).filter(function (k) { return state[k] !== null && state[k] !== undefined; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(state[k]); });
    history.replaceState(null, "", "#" + parts.join("&"));
  }

  // --- provenance dialog ---------------------------------------------------------------------------

  var dialog = document.getElementById("provenance");
  var dialogBody = document.getElementById("provenance-body");

  function kvTable(obj, prefix, rows) {
    rows = rows || [];
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      var key = prefix ? prefix + "." + k : k;
      if (v !== null && typeof v === "object" && !Array.isArray(v)) kvTable(v, key, rows);
      else rows.push(el("tr", null, [el("th", { text: key }),
        el("td", { text: Array.isArray(v) ? v.join(", ") : (v === null ? "null" : String(v)) })]));
    });
    return rows;
  }

  function provenanceBlock(entry) {
    var m = entry.manifest || {}, s = m.spec || {};
    var head = {
      "system": entry.system, "dataset": entry.dataset, "split": entry.split,
      "model": s.hub_id || s.model || s.retriever || "", "revision": s.revision || "",
      "weights sha256": s.weights_sha256 || "", "result file": entry.result_file, "run file": entry.run_file
    };
    var scalars = {}, groups = {};
    [s, m].forEach(function (src) {
      Object.keys(src).forEach(function (k) {
        if (src === m && k === "spec") return;
        if (src[k] !== null && typeof src[k] === "object" && !Array.isArray(src[k])) groups[k] = src[k];
        else scalars[k] = src[k];
      });
    });
    var parts = [el("table", { "class": "kv" }, kvTable(head)),
                 el("h4", { text: "Settings" }), el("table", { "class": "kv" }, kvTable(scalars))];
    Object.keys(groups).forEach(function (k) {
      parts.push(el("h4", { text: k }));
      parts.push(el("table", { "class": "kv" }, kvTable(groups[k])));
    });
    return parts;
  }

  function showProvenance(indices, extra) {
    clear(dialogBody);
    var list = DATA.provenance;
    if (extra) dialogBody.appendChild(el("p", { "class": "refnote", text: extra }));
    if (indices.length === 1) {
      var e = list[indices[0]];
      dialogBody.appendChild(el("h3", { text: e.system + " on " + e.dataset }));
      append(dialogBody, provenanceBlock(e));
    } else if (indices.length > 1) {
      dialogBody.appendChild(el("h3", { text: "Computed from " + indices.length + " stored results" }));
      indices.forEach(function (i, n) {
        var e = list[i];
        var d = el("details", { open: n === 0 ? true : null },
                   [el("summary", { text: e.system + " on " + e.dataset })]);
        append(d, provenanceBlock(e));
        dialogBody.appendChild(d);
      });
    }
    if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target.closest ? ev.target.closest("[data-prov],[data-refnote]") : null;
    if (!target) return;
    if (target.tagName === "A") ev.preventDefault();
    var idx = (target.getAttribute("data-prov") || "").split(",").filter(Boolean).map(Number);
    var note = target.getAttribute("data-refnote");
    var value = target.getAttribute("data-value");
    if (value) {  // name the number itself first: "ndcg@10 of bm25 on scifact = 0.686300…"
      var metric = target.closest("table").getAttribute("data-metric");
      var row = target.getAttribute("data-row"), col = target.getAttribute("data-col");
      var what = metric ? metric + " of " + col + " on " + row : row + " of " + col;
      note = what + " = " + value + (note ? "\n" + note : "");
    }
    if (idx.length || note) showProvenance(idx, note);
  });

  // --- index: leaderboard ------------------------------------------------------------------------

  function initIndex() {
    var hash = readHash();
    var state = {
      metric: DATA.metrics.indexOf(hash.metric) >= 0 ? hash.metric : DATA.defaultMetric,
      baseline: hash.baseline === "none" ? null
        : (DATA.baselines.indexOf(hash.baseline) >= 0 ? hash.baseline : DATA.defaultBaseline),
      ci: hash.ci !== "0", judged: hash.judged === "1",
      sortCol: null, sortDir: 1
    };
    var ciBox = document.getElementById("show-ci"), judgedBox = document.getElementById("show-judged");
    ciBox.checked = state.ci;
    judgedBox.checked = state.judged;
    ciBox.addEventListener("change", function () { state.ci = ciBox.checked; render(); });
    judgedBox.addEventListener("change", function () { state.judged = judgedBox.checked; render(); });
    var metricSel = document.getElementById("metric");
    DATA.metrics.forEach(function (m) { metricSel.appendChild(option(m, m, m === state.metric)); });
    var baseSel = document.getElementById("baseline");
    baseSel.appendChild(option("none", "none", state.baseline === null));
    DATA.baselines.forEach(function (b) { baseSel.appendChild(option(b, b, b === state.baseline)); });
    metricSel.addEventListener("change", function () { state.metric = metricSel.value; render(); });
    baseSel.addEventListener("change", function () {
      state.baseline = baseSel.value === "none" ? null : baseSel.value; render();
    });

    function render() {
      writeHash({ metric: state.metric, baseline: state.baseline || "none", ci: state.ci ? "1" : "0",
                  judged: state.judged ? "1" : "0" });
      renderLeaderboard(state, function (col) {
        if (state.sortCol === col) state.sortDir = -state.sortDir;
        else { state.sortCol = col; state.sortDir = col === -1 ? 1 : -1; }
        render();
      });
      renderBarChart(DATA.boards[state.metric], state.metric, state.ci);
    }
    render();
  }

  function renderLeaderboard(state, onSort) {
    var board = DATA.boards[state.metric];
    var sig = state.baseline ? board.sig[state.baseline] : null;
    var table = document.getElementById("leaderboard-table");
    clear(table);
    table.setAttribute("data-metric", state.metric);

    function header(label, col, cls) {
      var sorted = state.sortCol === col;
      var th = el("th", {
        scope: "col", "class": cls, "data-col": col,
        "aria-sort": sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none"
      }, [el("button", { type: "button", "class": "sort", text: label + (sorted ? (state.sortDir > 0 ? " ▲" : " ▼") : "") })]);
      th.querySelector("button").addEventListener("click", function () { onSort(col); });
      return th;
    }
    var heads = [header("dataset", -1, "name")];
    board.columns.forEach(function (c, j) {
      var label = c + (c === state.baseline ? " (baseline)" : "");
      heads.push(header(label, j, board.kinds[j]));
    });
    table.appendChild(el("thead", null, el("tr", null, heads)));

    var rowIdx = [], avgIdx = [];
    board.rows.forEach(function (r, i) { (r === "Average" ? avgIdx : rowIdx).push(i); });
    if (state.sortCol !== null) {
      rowIdx.sort(function (a, b) {
        if (state.sortCol === -1) return state.sortDir * board.rows[a].localeCompare(board.rows[b]);
        var va = board.values[a][state.sortCol], vb = board.values[b][state.sortCol];
        if (va === null && vb === null) return a - b;
        if (va === null) return 1;
        if (vb === null) return -1;
        return state.sortDir * (va - vb) || a - b;
      });
    }
    function row(i) {
      var name = board.rows[i];
      var page = DATA.pages[name.split(" (")[0]];
      var cells = [el("th", { scope: "row", "class": "name" }, page ? el("a", { href: page, text: name }) : name)];
      board.columns.forEach(function (c, j) {
        var v = board.values[i][j];
        var mark = sig ? sig.marks[i][j] : "";
        var p = sig ? sig.p[i][j] : null;
        var lo = at(board.ciLow, i, j), hi = at(board.ciHigh, i, j), judged = at(board.judged, i, j);
        var diff = sig ? at(sig.diff, i, j) : null;
        var underjudged = board.judgedMarks && board.judgedMarks[i][j];
        var title = v === null ? "no value" : String(v);
        if (lo !== null) title += " · " + Math.round(100 * board.level) + "% interval " + fmtInterval(lo, hi);
        if (p !== null && p !== undefined) title += " · Holm-adjusted p = " + fmtP(p) + " vs " + state.baseline;
        if (diff !== null) {
          title += " · Δ vs " + state.baseline + " " + fmtSigned(diff) + " " +
            fmtInterval(at(sig.diffLow, i, j), at(sig.diffHigh, i, j), true) + " (" +
            (100 * at(sig.diffLevel, i, j)).toFixed(1) + "% paired interval, Holm)";
        }
        if (judged !== null) title += " · Judged@10 " + pct(judged);
        var prov = board.provenance[i][j];
        var attrs = {
          "class": "num " + board.kinds[j] + (board.best[i][j] ? " best" : ""),
          "data-row": name, "data-col": c, "data-value": v === null ? "" : String(v), title: title,
          "data-prov": prov.length ? prov.join(",") : null,
          "data-refnote": board.kinds[j] === "reference" ? (board.referenceNotes[c] || c) : null,
          "data-low": lo === null ? null : String(lo), "data-high": hi === null ? null : String(hi)
        };
        var text = fmt(v);
        var content = [board.best[i][j] ? el("b", { text: text }) : text];
        if (mark) content.push(el("span", { "class": "mark", text: mark }));
        var mixed = board.mixed && board.mixed[i][j];
        if (mixed) content.push(el("span", { "class": "mark mixed", title: mixed + " (notes)", text: board.mixedMark }));
        var covers = board.coverage && board.coverage[i][j];
        if (covers) content.push(el("span", { "class": "covers", title: "over fewer than the table's datasets (notes)", text: covers }));
        if (underjudged) content.push(el("span", { "class": "jmark", title: "Judged@10 well below bm25's: may be underestimated (notes)", text: board.judgedMark }));
        if (state.ci && lo !== null) content.push(el("span", { "class": "ci", text: " " + fmtInterval(lo, hi) }));
        if (state.judged && judged !== null) content.push(el("span", { "class": "judged", text: " (" + pct(judged) + " judged)" }));
        if (state.ci && diff !== null) {
          content.push(el("span", { "class": "diff", text: "Δ " + fmtSigned(diff) + " " +
            fmtInterval(at(sig.diffLow, i, j), at(sig.diffHigh, i, j), true) }));
        }
        cells.push(el("td", attrs, content));
      });
      return el("tr", { "data-row": name }, cells);
    }
    table.appendChild(el("tbody", null, rowIdx.map(row)));
    if (avgIdx.length) table.appendChild(el("tfoot", null, avgIdx.map(row)));

    var notes = document.getElementById("leaderboard-notes");
    clear(notes);
    board.notes.concat(sig ? sig.notes : []).forEach(function (n) { notes.appendChild(el("li", { text: n })); });
  }

  function niceScale(v) {  // axis maximum and tick step for values in [0, v]
    if (!(v > 0)) return { max: 1, step: 0.2 };
    var step = v <= 0.1 ? 0.02 : v <= 0.25 ? 0.05 : v <= 0.5 ? 0.1 : v <= 1 ? 0.2 : Math.pow(10, Math.floor(Math.log10(v)));
    return { max: Math.ceil(v / step - 1e-9) * step, step: step };
  }

  function renderBarChart(board, metric, showCi) {
    var host = document.getElementById("leaderboard-chart");
    clear(host);
    var cols = board.columns, rows = board.rows;
    var barH = 13, gap = 12, left = 150, right = 60, width = 760;
    var groupH = cols.length * barH + gap;
    var top = 10, height = top + rows.length * groupH + 30;
    var max = 0;
    board.values.forEach(function (r) { r.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    if (showCi && board.ciHigh) {
      board.ciHigh.forEach(function (r) { r.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    }
    var scale = niceScale(max), xmax = scale.max;
    var plotW = width - left - right;
    var x = function (v) { return left + plotW * v / xmax; };
    var svg = svgEl("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height,
                             role: "img", "aria-label": metric + " per dataset" });
    for (var k = 0; k * scale.step <= xmax + 1e-9; k++) {
      var t = k * scale.step;
      svg.appendChild(svgEl("line", { x1: x(t), x2: x(t), y1: top, y2: height - 25, "class": "grid" }));
      svg.appendChild(svgEl("text", { x: x(t), y: height - 10, "text-anchor": "middle", "class": "tick",
                                      text: Number(t.toFixed(6)).toString() }));
    }
    rows.forEach(function (r, i) {
      var y0 = top + i * groupH;
      svg.appendChild(svgEl("text", { x: left - 8, y: y0 + (cols.length * barH) / 2 + 4, "text-anchor": "end",
                                      "class": r === "Average" ? "label avg" : "label", text: r }));
      cols.forEach(function (c, j) {
        var v = board.values[i][j];
        var y = y0 + j * barH;
        if (v === null) {
          svg.appendChild(svgEl("text", { x: left + 4, y: y + barH - 3, "class": "value", text: "n/a" }));
          return;
        }
        var lo = showCi ? at(board.ciLow, i, j) : null, hi = showCi ? at(board.ciHigh, i, j) : null;
        var tip = c + " · " + r + ": " + fmt(v) + (lo !== null ? " " + fmtInterval(lo, hi) : "");
        svg.appendChild(svgEl("rect", { x: left, y: y + 1, width: Math.max(0, x(v) - left), height: barH - 2,
                                        fill: PALETTE[j % PALETTE.length] },
                              svgEl("title", { text: tip })));
        var end = x(v);
        if (lo !== null) {  // the interval: a line with a cap at each end
          var mid = y + barH / 2;
          svg.appendChild(svgEl("line", { x1: x(lo), x2: x(hi), y1: mid, y2: mid, "class": "errbar",
                                          "data-low": lo, "data-high": hi }, svgEl("title", { text: tip })));
          [lo, hi].forEach(function (t) {
            svg.appendChild(svgEl("line", { x1: x(t), x2: x(t), y1: mid - 3, y2: mid + 3, "class": "errcap" }));
          });
          end = Math.max(end, x(hi));
        }
        svg.appendChild(svgEl("text", { x: end + 4, y: y + barH - 3, "class": "value", text: fmt(v) }));
      });
    });
    host.appendChild(svg);
    var legend = el("ul", { "class": "legend" }, cols.map(function (c, j) {
      return el("li", null, [el("span", { "class": "swatch", style: "background:" + PALETTE[j % PALETTE.length] }), c]);
    }));
    host.appendChild(legend);
    document.getElementById("leaderboard-caption").textContent = metric + " per dataset (bars), from the table above" +
      (showCi && board.ciLow ? "; the lines are " + Math.round(100 * board.level) + "% bootstrap intervals over queries." : ".");
  }

  // --- dataset page ------------------------------------------------------------------------------

  function initDataset() {
    renderMetricsTable();
    var section = document.getElementById("compare");
    if (DATA.systems.length < 2 || !DATA.queryMetrics.length) {
      clear(section);
      append(section, [el("h2", { text: "Per-query comparison" }), el("p", { "class": "hint",
        text: DATA.systems.length < 2 ? "Only one system is stored for this dataset."
                                      : "The stored results hold no per-query scores to compare." })]);
      return;
    }
    var hash = readHash();
    var state = {
      a: DATA.systems.indexOf(hash.a) >= 0 ? hash.a : DATA.defaultPair[0],
      b: DATA.systems.indexOf(hash.b) >= 0 ? hash.b : DATA.defaultPair[1],
      metric: DATA.queryMetrics.indexOf(hash.metric) >= 0 ? hash.metric : DATA.queryMetrics[0]
    };
    var selA = document.getElementById("system-a"), selB = document.getElementById("system-b");
    var selM = document.getElementById("query-metric");
    DATA.systems.forEach(function (s) {
      selA.appendChild(option(s, s, s === state.a));
      selB.appendChild(option(s, s, s === state.b));
    });
    DATA.queryMetrics.forEach(function (m) { selM.appendChild(option(m, m, m === state.metric)); });
    function update() {
      state.a = selA.value; state.b = selB.value; state.metric = selM.value;
      writeHash(state);
      renderComparison(state);
    }
    [selA, selB, selM].forEach(function (s) { s.addEventListener("change", update); });
    update();
  }

  function renderMetricsTable() {
    var table = document.getElementById("metrics-table");
    var systems = DATA.systems;
    table.appendChild(el("thead", null, el("tr", null, [el("th", { scope: "col", text: "metric" })].concat(
      systems.map(function (s) { return el("th", { scope: "col", text: s }); })))));
    var body = el("tbody");
    DATA.metrics.forEach(function (m) {
      var vals = systems.map(function (s) { var v = DATA.values[s][m]; return v === undefined ? null : v; });
      var present = vals.filter(function (v) { return v !== null; }).map(rounded);
      var best = present.length >= 2 ? Math.max.apply(null, present) : null;
      body.appendChild(el("tr", { "data-row": m }, [el("th", { scope: "row", text: m })].concat(vals.map(function (v, j) {
        var isBest = best !== null && v !== null && rounded(v) === best;
        return el("td", { "class": "num" + (isBest ? " best" : ""), "data-row": m, "data-col": systems[j],
                          "data-value": v === null ? "" : String(v), title: v === null ? "no value" : String(v),
                          "data-prov": String(j) },
                  isBest ? el("b", { text: fmt(v) }) : fmt(v));
      }))));
    });
    table.appendChild(body);
  }

  function pairStats(a, b, metric) {
    if (a === b) return null;
    var direct = DATA.pairs[a + "\t" + b];
    if (direct) return direct[metric];
    var s = DATA.pairs[b + "\t" + a][metric];
    return {
      n: s.n, meanA: s.meanB, meanB: s.meanA, p: s.p, wins: s.losses, ties: s.ties, losses: s.wins,
      top: s.top.map(function (r) {
        return { q: r.q, a: r.b, b: r.a, doc: r.doc, grade: r.grade, nrel: r.nrel, rankA: r.rankB, rankB: r.rankA };
      })
    };
  }

  function renderComparison(state) {
    var summary = document.getElementById("compare-summary");
    var scatter = document.getElementById("scatter"), wtl = document.getElementById("wtl");
    var table = document.getElementById("disagree-table");
    [summary, scatter, wtl, table].forEach(clear);
    var s = pairStats(state.a, state.b, state.metric);
    if (!s) {
      summary.textContent = "Pick two different systems.";
      return;
    }
    summary.appendChild(document.createTextNode(
      state.metric + " over " + s.n + " queries: A (" + state.a + ") " + fmt(s.meanA) + ", B (" + state.b + ") " +
      fmt(s.meanB) + ", Δ B−A " + fmtSigned(s.meanB - s.meanA) + ". B better on " + s.wins + ", tied on " + s.ties +
      ", worse on " + s.losses + " queries; paired " + "two-sided test p = " + fmtP(s.p) + " (this dataset alone, uncorrected)."));
    drawScatter(scatter, state);
    drawWinTieLoss(wtl, s);
    drawDisagreements(table, s, state);
  }

  function drawScatter(host, state) {
    var xs = DATA.perQuery[state.a][state.metric], ys = DATA.perQuery[state.b][state.metric];
    var size = 340, pad = 40, inner = size - pad - 12;
    var svg = svgEl("svg", { viewBox: "0 0 " + size + " " + size, width: size, height: size, role: "img",
                             "aria-label": "per-query " + state.metric + ": " + state.a + " vs " + state.b });
    var pos = function (v) { return v * inner; };
    var g = svgEl("g", { transform: "translate(" + pad + "," + 12 + ")" });
    g.appendChild(svgEl("rect", { x: 0, y: 0, width: inner, height: inner, "class": "frame" }));
    g.appendChild(svgEl("line", { x1: 0, y1: inner, x2: inner, y2: 0, "class": "diag" }));
    [0, 0.25, 0.5, 0.75, 1].forEach(function (t) {
      g.appendChild(svgEl("text", { x: pos(t), y: inner + 14, "text-anchor": "middle", "class": "tick", text: t }));
      g.appendChild(svgEl("text", { x: -6, y: inner - pos(t) + 4, "text-anchor": "end", "class": "tick", text: t }));
    });
    // Queries with the same pair of scores (many sit at 0 or 1) share one point, its area growing with their number.
    var n = 0, points = {}, order = [];
    DATA.qids.forEach(function (q, i) {
      var a = xs[i], b = ys[i];
      if (a === null || b === null) return;
      n += 1;
      var key = fmt(a) + "," + fmt(b);
      if (!points[key]) { points[key] = { a: a, b: b, qids: [] }; order.push(key); }
      points[key].qids.push(q);
    });
    order.forEach(function (key) {
      var p = points[key], a = p.a, b = p.b, k = p.qids.length;
      var cls = b > a ? "win" : b < a ? "loss" : "tie";
      var label = (k === 1 ? "query " + p.qids[0] : k + " queries (" + p.qids.slice(0, 5).join(", ") + (k > 5 ? ", …" : "") + ")") +
        ": A " + fmt(a) + ", B " + fmt(b);
      g.appendChild(svgEl("circle", { cx: pos(Math.min(a, 1)), cy: inner - pos(Math.min(b, 1)),
                                      r: Math.min(3 * Math.sqrt(k), 16).toFixed(2), "class": "pt " + cls },
                          svgEl("title", { text: label })));
    });
    g.appendChild(svgEl("text", { x: inner / 2, y: inner + 30, "text-anchor": "middle", "class": "axis", text: "A: " + state.a }));
    g.appendChild(svgEl("text", { x: -30, y: inner / 2, transform: "rotate(-90 -30 " + inner / 2 + ")",
                                  "text-anchor": "middle", "class": "axis", text: "B: " + state.b }));
    svg.appendChild(g);
    svg.setAttribute("data-points", n);
    host.appendChild(svg);
  }

  function drawWinTieLoss(host, s) {
    var width = 340, height = 70, total = s.wins + s.ties + s.losses;
    var svg = svgEl("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img",
                             "aria-label": "wins, ties, losses" });
    var x = 0;
    [["win", s.wins, "B better"], ["tie", s.ties, "tied"], ["loss", s.losses, "B worse"]].forEach(function (part) {
      var w = total ? width * part[1] / total : 0;
      svg.appendChild(svgEl("rect", { x: x, y: 8, width: w, height: 26, "class": "bar " + part[0] },
                            svgEl("title", { text: part[2] + ": " + part[1] })));
      if (w > 30) svg.appendChild(svgEl("text", { x: x + w / 2, y: 26, "text-anchor": "middle", "class": "barlabel", text: part[1] }));
      x += w;
    });
    svg.appendChild(svgEl("text", { x: 0, y: 54, "class": "tick",
                                    text: "B better " + s.wins + " · tied " + s.ties + " · B worse " + s.losses }));
    host.appendChild(svg);
  }

  function drawDisagreements(table, s, state) {
    var source = document.getElementById("disagree-source");
    source.textContent = DATA.textMissing
      ? "Query texts and relevant documents are not shown: the dataset files were not found (" + DATA.textMissing +
        "); rebuild the report with --data-dir."
      : "Texts and judgments from " + DATA.textSource + ". The relevant document shown is the one the better " +
        "system ranks highest; a rank '–' means not retrieved in its top results.";
    var heads = ["query", "A " + state.a, "B " + state.b, "Δ B−A", "relevant document", "rank in A", "rank in B"];
    table.appendChild(el("thead", null, el("tr", null, heads.map(function (h) { return el("th", { scope: "col", text: h }); }))));
    var body = el("tbody");
    if (!s.top.length) body.appendChild(el("tr", null, el("td", { colspan: heads.length, text: "The two systems agree on every query." })));
    s.top.forEach(function (r) {
      var text = DATA.queries[r.q];
      var doc = r.doc !== undefined ? DATA.docs[r.doc] : null;
      var docCell = r.doc === undefined ? "–" : [
        el("span", { "class": "docid", text: r.doc + " (grade " + r.grade + (r.nrel > 1 ? ", 1 of " + r.nrel + " relevant" : "") + ")" }),
        doc ? el("div", { "class": "doc" }, [doc.title ? el("b", { text: doc.title + " " }) : null, doc.text]) : null
      ];
      body.appendChild(el("tr", { "data-query": r.q }, [
        el("td", { "class": "query" }, [el("span", { "class": "qid", text: r.q }), text ? el("div", { text: text }) : null]),
        el("td", { "class": "num", text: fmt(r.a) }), el("td", { "class": "num", text: fmt(r.b) }),
        el("td", { "class": "num " + (r.b > r.a ? "up" : "down"), text: fmtSigned(r.b - r.a) }),
        el("td", { "class": "doccell" }, docCell),
        el("td", { "class": "num", text: r.rankA === null || r.rankA === undefined ? "–" : String(r.rankA) }),
        el("td", { "class": "num", text: r.rankB === null || r.rankB === undefined ? "–" : String(r.rankB) })
      ]));
    });
    table.appendChild(body);
  }

  if (DATA.page === "index") initIndex();
  else if (DATA.page === "dataset") initDataset();
})();
