// The counts page: pickers from /api/counts/choices, charts from /api/counts (Chart.js, vendored).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const DAY = 86400;
  const TYPE_COLOURS = {
    car: "#2563eb", van: "#0891b2", truck: "#b45309", bus: "#7c3aed", motorcycle: "#db2777",
    bicycle: "#15803d", person: "#64748b", unknown: "#9ca3af", other: "#1f2937",
  };
  const charts = {};
  window.countCharts = charts; // read by tests and by anyone scripting the page

  function isoDate(t) { return new Date(t * 1000).toISOString().slice(0, 10); }
  function epochOfDate(s) { return Date.parse(s + "T00:00:00Z") / 1000; }

  function params(shift) {
    const q = new URLSearchParams();
    for (const k of ["device", "camera", "line"]) { if ($(k).value) q.set(k, $(k).value); }
    const since = epochOfDate($("since").value), until = epochOfDate($("until").value) + DAY;
    q.set("since", String(since - (shift || 0)));
    q.set("until", String(until - (shift || 0)));
    q.set("tz", $("tz").value || "UTC");
    return q;
  }

  async function getJson(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function datasets(data) {
    const out = [];
    for (const col of data.columns) {
      const values = data.rows.map((r) => r[col]);
      if (!values.some((v) => v > 0)) continue;
      const [dir, type] = col.split("_");
      out.push({
        label: dir + " " + type, data: values, stack: dir,
        backgroundColor: TYPE_COLOURS[type] + (dir === "out" ? "88" : "ff"),
      });
    }
    return out;
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart($(id), config);
  }

  function stacked(id, data) {
    const sets = datasets(data);
    const total = sets.reduce((s, d) => s + d.data.reduce((a, b) => a + b, 0), 0);
    $(id).dataset.total = String(total);
    draw(id, {
      type: "bar",
      data: { labels: data.rows.map((r) => r.t), datasets: sets },
      options: {
        animation: false, maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      },
    });
  }

  function totals(data) {
    return data.rows.map((r) => data.columns.reduce((s, c) => s + r[c], 0));
  }

  function weeks(now, last) {
    const a = totals(now), b = totals(last);
    const n = Math.max(a.length, b.length);
    draw("weeks", {
      type: "line",
      data: {
        labels: Array.from({ length: n }, (_, i) => (now.rows[i] || {}).t || "+" + i),
        datasets: [
          { label: "this range", data: a, borderColor: "#2563eb" },
          { label: "7 days earlier", data: b, borderColor: "#9ca3af" },
        ],
      },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
  }

  // a chart's labels and datasets as CSV, offered through its link (a blob: URL, no server trip)
  function csvLink(id, linkId) {
    const c = charts[id];
    const quote = (v) => '"' + String(v).replace(/"/g, '""') + '"';
    const head = ["t", ...c.data.datasets.map((d) => d.label)].map(quote).join(",");
    const lines = c.data.labels.map((l, i) => [quote(l), ...c.data.datasets.map((d) => d.data[i] ?? "")].join(","));
    const link = $(linkId);
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([[head, ...lines].join("\n") + "\n"], { type: "text/csv" }));
  }

  function context(data) {
    const zones = [...new Set(data.occupancy.map((r) => r.zone))];
    const hours = Array.from({ length: 24 }, (_, h) => h);
    const palette = ["#2563eb", "#b45309", "#15803d", "#7c3aed", "#db2777", "#0891b2"];
    draw("occupancy", {
      type: "line",
      data: {
        labels: hours.map((h) => String(h).padStart(2, "0") + ":00"),
        datasets: zones.map((z, i) => ({
          label: z + " mean", borderColor: palette[i % palette.length],
          data: hours.map((h) => (data.occupancy.find((r) => r.zone === z && r.hour === h) || { mean: null }).mean),
        })),
      },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
    draw("anomalies", {
      type: "bar",
      data: {
        labels: data.anomalies.map((r) => r.t),
        datasets: [{ label: "anomalies raised", data: data.anomalies.map((r) => r.n), backgroundColor: "#b91c1c" }],
      },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
    csvLink("occupancy", "csv-occupancy");
    csvLink("anomalies", "csv-anomalies");
  }

  async function show() {
    $("status").textContent = "loading…";
    try {
      const q = params(0), qd = params(0), ql = params(7 * DAY);
      qd.set("bucket", "day");
      const [hourly, daily, last, ctx] = await Promise.all([
        getJson("/api/counts?" + q), getJson("/api/counts?" + qd), getJson("/api/counts?" + ql),
        getJson("/api/counts/context?" + q),
      ]);
      stacked("hourly", hourly);
      stacked("daily", daily);
      weeks(hourly, last);
      context(ctx);
      $("csv-hour").href = "/export/counts.csv?" + q;
      $("csv-day").href = "/export/counts.csv?" + qd;
      $("csv-last").href = "/export/counts.csv?" + ql;
      $("status").textContent = hourly.rows.length + " hours with counts";
      document.body.dataset.ready = "1";
    } catch (err) {
      $("status").textContent = "error: " + err.message;
    }
  }

  function fill(select, values) {
    for (const v of [...new Set(values)].sort()) {
      const o = document.createElement("option");
      o.value = o.textContent = v;
      select.appendChild(o);
    }
  }

  async function init() {
    const url = new URLSearchParams(location.search);
    const now = Date.now() / 1000;
    $("until").value = url.get("until") ? isoDate(Number(url.get("until")) - 1) : isoDate(now);
    $("since").value = url.get("since") ? isoDate(Number(url.get("since"))) : isoDate(now - 6 * DAY);
    if (url.get("tz")) $("tz").value = url.get("tz");
    const choices = await getJson("/api/counts/choices");
    fill($("device"), choices.map((c) => c.device));
    fill($("camera"), choices.map((c) => c.camera));
    fill($("line"), choices.map((c) => c.line));
    for (const k of ["device", "camera", "line"]) { if (url.get(k)) $(k).value = url.get(k); }
    $("pick").addEventListener("submit", (e) => { e.preventDefault(); show(); });
    await show();
  }
  init();
})();
