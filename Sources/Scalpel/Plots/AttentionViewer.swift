import Foundation

/// A self-contained interactive HTML page of attention patterns (`scalpel heads pattern --html`):
/// no network, inline CSS and JavaScript, the data embedded as JSON in a
/// `<script type="application/json" id="attention-data">` element. Checkboxes choose heads; hovering a
/// token shows, for each chosen head, where it attends from that token (its row of the pattern) and
/// which tokens attend to it (its column), the way CircuitsVis does in a notebook; a click keeps the
/// token chosen; below, each chosen head's query × key pattern is drawn on a canvas. Token text only ever reaches the page through JSON and `textContent`, so tokens with
/// `<`, `&`, quotes or newlines show as text and cannot inject markup.
///
/// Loaded with `#selftest`, the page hovers the destination token itself (`dispatchEvent`), toggles
/// the first head off and on, and writes what it then shows as JSON into `<pre id="selftest">`, for
/// a headless browser's `--dump-dom` (Tests/python/test_attention_viewer.py).
public enum AttentionViewer {
    /// The embedded JSON: `{title, model, prompts, destination, tokens, labels, heads: [{label, layer,
    /// head, color}], patterns: [head][query][key]}`; the numbers are the patterns' `Float` values
    /// written in their shortest round-trip form (null for a non-finite value).
    public static func json(_ patterns: AttentionPatterns, destination: Int, title: String, model: String) -> String {
        var out = "{\"title\":" + string(title) + ",\"model\":" + string(model)
        out += ",\"prompts\":\(patterns.promptCount),\"destination\":\(destination)"
        out += ",\"tokens\":[" + patterns.tokenStrings.map(string).joined(separator: ",") + "]"
        out += ",\"labels\":[" + patterns.tokenStrings.map { string(SVG.visibleToken($0)) }.joined(separator: ",") + "]"
        out += ",\"heads\":[" + patterns.heads.enumerated().map { i, head in
            "{\"label\":" + string(head.description) + ",\"layer\":\(head.layer),\"head\":\(head.head),\"color\":" + string(AttentionPlot.headColor(i)) + "}"
        }.joined(separator: ",") + "]"
        let n = patterns.length
        out += ",\"patterns\":["
        for h in patterns.heads.indices {
            if h > 0 { out += "," }
            out += "["
            for q in 0..<n {
                if q > 0 { out += "," }
                out += "[" + patterns.row(head: h, query: q).map(number).joined(separator: ",") + "]"
            }
            out += "]"
        }
        return out + "]}"
    }

    public static func html(_ patterns: AttentionPatterns, destination: Int, title: String, model: String) -> String {
        let data = json(patterns, destination: destination, title: title, model: model)
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(SVG.escape(title))</title>
        <style>\(css)</style>
        </head>
        <body>
        <h1 id="title"></h1>
        <p id="summary"></p>
        <fieldset id="heads"><legend>Heads</legend></fieldset>
        <p class="hint">Hover a token to see where each chosen head attends from it and to it; click a token to keep it chosen (click again to release).</p>
        <div id="tokens" class="tokens"></div>
        <h2 id="from-title"></h2>
        <table id="from-view" class="view"></table>
        <h2 id="to-title"></h2>
        <table id="to-view" class="view"></table>
        <h2>Patterns (query ↓ × key →; the chosen token's row outlined; hover a row to choose it)</h2>
        <div id="maps" class="maps"></div>
        <pre id="selftest" hidden></pre>
        <script type="application/json" id="attention-data">\(data)</script>
        <script>\(script)</script>
        </body>
        </html>

        """
    }

    /// A JSON string safe inside a `<script>` element (`JSONText.quote(_:forScript:)`).
    public static func string(_ s: String) -> String { JSONText.quote(s, forScript: true) }

    /// The shortest text that reads back as the same `Float`; null when not finite.
    static func number(_ v: Float) -> String {
        guard v.isFinite else { return "null" }
        if v == 0 { return "0" }
        return "\(v)"
    }

    static let css = """
    body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:20px;color:#222;background:#fff}
    h1{font-size:18px;margin:0 0 4px}h2{font-size:14px;margin:18px 0 6px}
    #summary,.hint{color:#555;font-size:13px;margin:4px 0 10px}
    fieldset{border:1px solid #ccc;display:inline-block;padding:4px 10px;font-size:13px}
    fieldset label{margin-right:14px;cursor:pointer;white-space:nowrap}
    .swatch{display:inline-block;width:11px;height:11px;margin:0 4px -1px 2px;border-radius:2px}
    .tokens{display:flex;flex-wrap:wrap;gap:3px;margin:8px 0}
    .token{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:14px;padding:3px 5px;border:1px solid #bbb;border-radius:3px;cursor:pointer;white-space:pre}
    .token.selected{outline:2px solid #000}.token.locked{background:#ffe9a8}
    table.view{border-collapse:separate;border-spacing:2px;display:block;overflow-x:auto;max-width:100%}
    table.view td{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;padding:3px 5px;white-space:pre;border-radius:2px;text-align:center}
    table.view td.head{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-weight:bold;text-align:right}
    table.view td.masked{color:#aaa;background:#f0f0f0}
    .maps{display:flex;flex-wrap:wrap;gap:16px}.map-title{font-size:12px;font-weight:bold;margin-bottom:3px}
    .maps canvas{border:1px solid #ccc;image-rendering:pixelated;cursor:crosshair}
    #selftest{white-space:pre-wrap;word-break:break-all;font-size:11px;color:#555}
    """

    static let script = """
    (function () {
      'use strict';
      var data = JSON.parse(document.getElementById('attention-data').textContent);
      var n = data.labels.length;
      var state = { selected: data.destination, locked: false, shown: data.heads.map(function () { return true; }) };
      function el(tag, className, text) {
        var e = document.createElement(tag);
        if (className) e.className = className;
        if (text !== undefined) e.textContent = text;
        return e;
      }
      function rgba(hex, alpha) {
        var v = parseInt(hex.slice(1), 16);
        return 'rgba(' + ((v >> 16) & 255) + ',' + ((v >> 8) & 255) + ',' + (v & 255) + ',' + alpha + ')';
      }
      function fmt(w) { return w === null ? 'n/a' : w.toFixed(3); }
      document.getElementById('title').textContent = data.title;
      document.getElementById('summary').textContent = data.model + ' · ' + n + ' tokens' +
        (data.prompts > 1 ? ' · mean over ' + data.prompts + ' prompts of this length (labels: the first prompt)' : '');
      var heads = document.getElementById('heads');
      data.heads.forEach(function (h, i) {
        var label = el('label');
        var box = el('input');
        box.type = 'checkbox'; box.checked = true; box.id = 'head-' + i; box.dataset.head = String(i);
        box.addEventListener('change', function () { state.shown[i] = box.checked; render(); });
        var swatch = el('span', 'swatch'); swatch.style.background = h.color;
        label.appendChild(box); label.appendChild(swatch); label.appendChild(document.createTextNode('head ' + h.label));
        heads.appendChild(label);
      });
      var tokens = document.getElementById('tokens');
      data.labels.forEach(function (text, i) {
        var t = el('span', 'token', text);
        t.dataset.pos = String(i);
        t.title = 'position ' + i;
        tokens.appendChild(t);
      });
      function tokenAt(event) {
        var t = event.target.closest ? event.target.closest('.token') : null;
        return t ? Number(t.dataset.pos) : null;
      }
      tokens.addEventListener('mouseover', function (event) {
        var i = tokenAt(event);
        if (i === null || state.locked) return;
        state.selected = i; render();
      });
      tokens.addEventListener('click', function (event) {
        var i = tokenAt(event);
        if (i === null) return;
        state.locked = !(state.locked && state.selected === i);
        state.selected = i; render();
      });
      function fill(table, weightOf, masked) {
        while (table.firstChild) table.removeChild(table.firstChild);
        var header = el('tr');
        header.appendChild(el('td', 'head', ''));
        data.labels.forEach(function (text) { header.appendChild(el('td', '', text)); });
        table.appendChild(header);
        data.heads.forEach(function (h, hi) {
          if (!state.shown[hi]) return;
          var row = el('tr', 'head-row');
          row.dataset.head = h.label;
          row.appendChild(el('td', 'head', h.label));
          for (var k = 0; k < n; k++) {
            var cell = el('td', 'cell');
            if (masked(k)) {
              cell.className = 'cell masked'; cell.textContent = '·';
            } else {
              var w = weightOf(hi, k);
              cell.dataset.weight = String(w);
              cell.style.background = rgba(h.color, w === null ? 0 : Math.max(0, Math.min(1, w)));
              if (w !== null && w > 0.7) cell.style.color = '#fff';
              cell.textContent = fmt(w);
              cell.title = 'head ' + h.label + ': ' + fmt(w);
            }
            row.appendChild(cell);
          }
          table.appendChild(row);
        });
      }
      function clamp(w) { return w === null ? 0 : Math.max(0, Math.min(1, w)); }
      function drawMaps(s) {
        var maps = document.getElementById('maps');
        while (maps.firstChild) maps.removeChild(maps.firstChild);
        var cell = Math.max(2, Math.min(16, Math.floor(320 / Math.max(n, 1))));
        data.heads.forEach(function (h, hi) {
          if (!state.shown[hi]) return;
          var box = el('div', 'map');
          box.appendChild(el('div', 'map-title', 'head ' + h.label));
          var canvas = document.createElement('canvas');
          canvas.width = n * cell; canvas.height = n * cell; canvas.dataset.head = h.label;
          var g = canvas.getContext('2d');
          g.fillStyle = '#ffffff'; g.fillRect(0, 0, canvas.width, canvas.height);
          for (var q = 0; q < n; q++) {
            for (var k = 0; k < n; k++) {
              g.fillStyle = k > q ? '#d9d9d9' : rgba(h.color, clamp(data.patterns[hi][q][k]));
              g.fillRect(k * cell, q * cell, cell, cell);
            }
          }
          g.strokeStyle = '#000000'; g.lineWidth = 1;
          g.strokeRect(0.5, s * cell + 0.5, n * cell - 1, cell - 1);
          canvas.addEventListener('mousemove', function (event) {
            if (state.locked) return;
            var q = Math.floor((event.clientY - canvas.getBoundingClientRect().top) / cell);
            if (q >= 0 && q < n && q !== state.selected) { state.selected = q; render(); }
          });
          box.appendChild(canvas);
          maps.appendChild(box);
        });
      }
      function render() {
        var s = state.selected, label = data.labels[s];
        Array.prototype.forEach.call(tokens.children, function (t, i) {
          t.classList.toggle('selected', i === s);
          t.classList.toggle('locked', state.locked && i === s);
        });
        document.getElementById('from-title').textContent = 'Where each head attends from “' + label + '” (position ' + s + ')';
        document.getElementById('to-title').textContent = 'Which tokens attend to “' + label + '” (position ' + s + ')';
        fill(document.getElementById('from-view'), function (h, k) { return data.patterns[h][s][k]; }, function (k) { return k > s; });
        fill(document.getElementById('to-view'), function (h, q) { return data.patterns[h][q][s]; }, function (q) { return q < s; });
        drawMaps(s);
      }
      render();
      if (location.hash === '#selftest') {
        var target = tokens.children[data.destination];
        target.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
        function rows(id) {
          var out = {};
          Array.prototype.forEach.call(document.querySelectorAll('#' + id + ' tr.head-row'), function (row) {
            out[row.dataset.head] = Array.prototype.map.call(row.querySelectorAll('td.cell'), function (c) {
              return c.dataset.weight === undefined ? null : Number(c.dataset.weight);
            });
          });
          return out;
        }
        var result = {
          selected: state.selected,
          selected_label: document.querySelector('#tokens .token.selected').textContent,
          token_labels: Array.prototype.map.call(tokens.children, function (t) { return t.textContent; }),
          from_title: document.getElementById('from-title').textContent,
          from: rows('from-view'), to: rows('to-view'),
          maps: Array.prototype.map.call(document.querySelectorAll('#maps canvas'), function (c) { return c.dataset.head; })
        };
        if (data.heads.length > 0) {
          document.getElementById('head-0').click();
          result.rows_after_unchecking_first = document.querySelectorAll('#from-view tr.head-row').length;
          result.heads_after_unchecking_first = Object.keys(rows('from-view'));
          result.maps_after_unchecking_first = document.querySelectorAll('#maps canvas').length;
          document.getElementById('head-0').click();
          result.rows_after_rechecking_first = document.querySelectorAll('#from-view tr.head-row').length;
        }
        var pre = document.getElementById('selftest');
        pre.textContent = JSON.stringify(result);  // kept hidden: read by --dump-dom, not shown
        document.body.dataset.selftest = 'done';
      }
    })();
    """
}
