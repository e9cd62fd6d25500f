// chargewire back office: the overview's live charts, drawn as SVG by hand.
// Polls the overview JSON every few seconds and redraws: stacked bars of attempts per minute by outcome,
// lines of p50/p99 latency per minute, and lines of queue depth over time.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var MARGIN = { top: 8, right: 10, bottom: 22, left: 44 };
  var OUTCOMES = ["delivered", "retry", "failed"];

  function el(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i += 1) {
      if (steps[i] * power >= value) return steps[i] * power;
    }
    return 10 * power;
  }

  function clock(iso) {
    var date = new Date(iso);
    return String(date.getUTCHours()).padStart(2, "0") + ":" + String(date.getUTCMinutes()).padStart(2, "0");
  }

  function clockSeconds(iso) {
    return clock(iso) + ":" + String(new Date(iso).getUTCSeconds()).padStart(2, "0");
  }

  function seconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 1) return Math.round(value * 1000) + " ms";
    return value.toFixed(value < 10 ? 2 : 1) + " s";
  }

  // A frame with a y axis from 0 to `top`, labelled with `format`; returns the drawing area.
  function frame(container, top, format) {
    var width = Math.max(container.clientWidth, 240);
    var height = Math.max(container.clientHeight, 160);
    container.textContent = "";
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, "aria-hidden": "true", focusable: "false" }, container);
    var area = {
      svg: svg, x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top,
    };
    for (var i = 0; i <= 4; i += 1) {
      var y = area.y0 - (area.y0 - area.y1) * i / 4;
      el("line", { x1: area.x0, x2: area.x1, y1: y, y2: y, class: i === 0 ? "axis" : "grid" }, svg);
      var label = el("text", { x: area.x0 - 6, y: y + 4, "text-anchor": "end" }, svg);
      label.textContent = format(top * i / 4);
    }
    return area;
  }

  function xLabels(area, labels, step) {
    var count = labels.length;
    labels.forEach(function (text, index) {
      if (index % step !== 0 && index !== count - 1) return;
      var x = area.x0 + (area.x1 - area.x0) * (index + 0.5) / count;
      var label = el("text", { x: x, y: area.y0 + 15, "text-anchor": "middle" }, area.svg);
      label.textContent = text;
    });
  }

  function drawOutcomes(container, minutes) {
    var top = niceMax(Math.max.apply(null, minutes.map(function (m) {
      return OUTCOMES.reduce(function (sum, outcome) { return sum + m[outcome]; }, 0);
    }).concat([0])));
    var area = frame(container, top, function (v) { return String(Math.round(v)); });
    var slot = (area.x1 - area.x0) / Math.max(minutes.length, 1);
    minutes.forEach(function (minute, index) {
      var base = area.y0;
      OUTCOMES.forEach(function (outcome) {
        var value = minute[outcome];
        if (!value) return;
        var height = (area.y0 - area.y1) * value / top;
        var bar = el("rect", {
          x: area.x0 + slot * index + slot * 0.15, y: base - height, width: Math.max(slot * 0.7, 1), height: height,
          class: "fill-" + outcome,
        }, area.svg);
        el("title", {}, bar).textContent = clock(minute.minute) + " " + outcome + ": " + value;
        base -= height;
      });
    });
    xLabels(area, minutes.map(function (m) { return clock(m.minute); }), 5);
  }

  function drawLines(container, labels, series, format) {
    var values = [];
    series.forEach(function (line) { line.values.forEach(function (v) { if (v !== null) values.push(v); }); });
    var top = niceMax(Math.max.apply(null, values.concat([0])));
    var area = frame(container, top, format);
    var count = Math.max(labels.length, 1);
    series.forEach(function (line) {
      var path = "";
      var pen = false;
      line.values.forEach(function (value, index) {
        if (value === null) { pen = false; return; }
        var x = area.x0 + (area.x1 - area.x0) * (index + 0.5) / count;
        var y = area.y0 - (area.y0 - area.y1) * value / top;
        path += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1) + " ";
        pen = true;
        if (line.values.length < 60) el("circle", { cx: x, cy: y, r: 2.5, class: "line " + line.className }, area.svg);
      });
      if (path) el("path", { d: path, class: "line " + line.className }, area.svg);
    });
    xLabels(area, labels, Math.max(1, Math.round(count / 6)));
  }

  function setFigure(root, name, text) {
    var node = root.querySelector("[data-figure='" + name + "']");
    if (node) node.textContent = text;
  }

  function cell(row, text, label, className) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function drawFailing(root, failing, prefix) {
    var body = root.querySelector("[data-failing]");
    if (!body) return;
    body.textContent = "";
    if (!failing.length) {
      var row = document.createElement("tr");
      var td = cell(row, "None in the window.", "", "muted");
      td.removeAttribute("data-label");
      td.colSpan = 3;
      body.appendChild(row);
      return;
    }
    failing.forEach(function (item) {
      var row = document.createElement("tr");
      var first = cell(row, "", "Subscription", "");
      var link = document.createElement("a");
      link.href = prefix + "/subscriptions/" + encodeURIComponent(item.id);
      link.className = "mono clip";
      link.title = item.id;
      link.textContent = item.id;
      first.appendChild(link);
      var target = document.createElement("div");
      target.className = "small muted clip";
      target.title = item.target;
      target.textContent = item.target;
      first.appendChild(target);
      cell(row, String(item.failures), "Failed attempts", "num");
      cell(row, item.lastFailureAt.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC", "Last failure");
      body.appendChild(row);
    });
  }

  function showDatabaseError(reason) {
    var banner = document.querySelector("[data-database-error]");
    if (!banner) return;
    banner.hidden = !reason;
    var detail = banner.querySelector("[data-database-reason]");
    if (detail) detail.textContent = reason || "";
  }

  function drawWorkers(root, workers) {
    var body = root.querySelector("[data-workers]");
    if (!body) return;
    body.textContent = "";
    if (!workers.length) {
      var empty = document.createElement("tr");
      cell(empty, "No worker has sent a heartbeat in the last hour.", "Worker", "muted").colSpan = 4;
      body.appendChild(empty);
      return;
    }
    workers.forEach(function (worker) {
      var row = document.createElement("tr");
      var first = cell(row, "", "Worker", "break");
      var id = document.createElement("span");
      id.className = "mono";
      id.textContent = worker.id;
      first.appendChild(id);
      var where = document.createElement("div");
      where.className = "small muted";
      where.textContent = worker.where;
      first.appendChild(where);
      var state = cell(row, "", "State");
      var badge = document.createElement("span");
      badge.className = "badge badge-" + worker.state;
      badge.textContent = worker.state;
      state.appendChild(badge);
      Object.keys(worker.tasks).forEach(function (name) {
        if (worker.tasks[name] === "running") return;
        var task = document.createElement("div");
        task.className = "small";
        task.textContent = name + ": " + worker.tasks[name];
        state.appendChild(task);
      });
      cell(row, Math.round(worker.ageSeconds) + " s ago", "Last heartbeat", "num");
      cell(row, worker.lastError || "none", "Last error", worker.lastError ? "break small" : "muted");
      body.appendChild(row);
    });
  }

  function render(root, data) {
    var minutes = data.minutes;
    var last = minutes.length ? minutes[minutes.length - 1] : { delivered: 0, retry: 0, failed: 0 };
    OUTCOMES.forEach(function (outcome) { setFigure(root, outcome, String(last[outcome])); });
    setFigure(root, "p50", seconds(data.p50));
    setFigure(root, "p99", seconds(data.p99));
    setFigure(root, "due", String(data.queue.due));
    setFigure(root, "scheduled", String(data.queue.scheduled));
    setFigure(root, "failedTotal", String(data.queue.failed));
    drawOutcomes(root.querySelector("[data-chart='outcomes']"), minutes);
    drawLines(root.querySelector("[data-chart='latency']"), minutes.map(function (m) { return clock(m.minute); }), [
      { className: "line-p50", values: minutes.map(function (m) { return m.p50; }) },
      { className: "line-p99", values: minutes.map(function (m) { return m.p99; }) },
    ], seconds);
    var history = data.queueHistory;
    drawLines(root.querySelector("[data-chart='queue']"), history.map(function (s) { return clockSeconds(s.at); }), [
      { className: "line-due", values: history.map(function (s) { return s.due; }) },
      { className: "line-scheduled", values: history.map(function (s) { return s.scheduled; }) },
      { className: "line-failed", values: history.map(function (s) { return s.failed; }) },
    ], function (v) { return String(Math.round(v)); });
    var prefix = root.getAttribute("data-source").replace(/\/api\/overview$/, "");
    drawFailing(root, data.failing, prefix);
    drawWorkers(root, data.workers);
    setFigure(root, "oldestDue", data.oldestDueSeconds === null ? "\u2014" : data.oldestDueSeconds.toFixed(1) + " s");
    showDatabaseError(data.databaseError);
    root.setAttribute("data-updated", data.generatedAt);
    var status = document.querySelector("[data-live-status]");
    if (status) status.textContent = "Updated " + data.generatedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function start(root) {
    var source = root.getAttribute("data-source");
    var every = Number(root.getAttribute("data-poll-seconds")) * 1000 || 5000;
    var latest = null;
    function poll() {
      fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
          if (response.status === 503) { showDatabaseError("The server answered 503."); throw new Error("unavailable"); }
          return response.json();
        })
        .then(function (data) { latest = data; render(root, data); })
        .catch(function () {
          var status = document.querySelector("[data-live-status]");
          if (status) status.textContent = "Not updating: the server did not answer";
        })
        .then(function () { window.setTimeout(poll, every); });
    }
    window.addEventListener("resize", function () { if (latest) render(root, latest); });
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("overview");
    if (root) start(root);
  });
})();
