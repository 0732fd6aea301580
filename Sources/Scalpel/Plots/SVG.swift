import Foundation

/// A tiny SVG document builder: rectangles, text, lines, polylines and paths, plus the helpers the
/// plots share (escaping, visible token text, number formatting, scales, ticks, axes, colours).
/// Output is deterministic: the same calls give the same string, byte for byte.
public struct SVG {
    public enum Anchor: String, Sendable { case start, middle, end }
    public enum Font: String, Sendable {
        case sans = "DejaVu Sans, Helvetica, Arial, sans-serif"
        case mono = "DejaVu Sans Mono, Menlo, Consolas, monospace"
    }

    public var width: Double
    public var height: Double
    private var defs: [String] = []
    private var elements: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    // MARK: Elements

    /// A rectangle; `tooltip` becomes a `<title>` child, shown on hover in a browser.
    public mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String,
                              stroke: String? = nil, strokeWidth: Double = 1, className: String? = nil,
                              tooltip: String? = nil) {
        var a = "x=\"\(Self.num(x))\" y=\"\(Self.num(y))\" width=\"\(Self.num(width))\" height=\"\(Self.num(height))\" fill=\"\(Self.escape(fill))\""
        if let stroke { a += " stroke=\"\(Self.escape(stroke))\" stroke-width=\"\(Self.num(strokeWidth))\"" }
        if let className { a += " class=\"\(Self.escape(className))\"" }
        append("rect", a, tooltip: tooltip)
    }

    /// Text; the content is escaped here, so pass it raw (use `visibleToken` first for token text).
    public mutating func text(_ content: String, x: Double, y: Double, size: Double = 12, anchor: Anchor = .start,
                              fill: String = "#222", bold: Bool = false, font: Font = .sans,
                              rotate: Double? = nil, className: String? = nil) {
        var a = "x=\"\(Self.num(x))\" y=\"\(Self.num(y))\" font-size=\"\(Self.num(size))\""
        if font != .sans { a += " font-family=\"\(font.rawValue)\"" }
        if anchor != .start { a += " text-anchor=\"\(anchor.rawValue)\"" }
        if fill != "#222" { a += " fill=\"\(Self.escape(fill))\"" }
        if bold { a += " font-weight=\"bold\"" }
        if let rotate { a += " transform=\"rotate(\(Self.num(rotate)) \(Self.num(x)) \(Self.num(y)))\"" }
        if let className { a += " class=\"\(Self.escape(className))\"" }
        elements.append("<text \(a)>\(Self.escape(content))</text>")
    }

    public mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#222",
                              width: Double = 1, dash: String? = nil) {
        var a = "x1=\"\(Self.num(x1))\" y1=\"\(Self.num(y1))\" x2=\"\(Self.num(x2))\" y2=\"\(Self.num(y2))\" stroke=\"\(Self.escape(stroke))\""
        if width != 1 { a += " stroke-width=\"\(Self.num(width))\"" }
        if let dash { a += " stroke-dasharray=\"\(Self.escape(dash))\"" }
        elements.append("<line \(a)/>")
    }

    /// An open line through the points (non-finite points are skipped).
    public mutating func polyline(_ points: [(x: Double, y: Double)], stroke: String, width: Double = 1.5,
                                  opacity: Double = 1, dash: String? = nil, className: String? = nil,
                                  tooltip: String? = nil) {
        let list = points.filter { $0.x.isFinite && $0.y.isFinite }.map { "\(Self.num($0.x)),\(Self.num($0.y))" }
        var a = "points=\"\(list.joined(separator: " "))\" fill=\"none\" stroke=\"\(Self.escape(stroke))\" stroke-width=\"\(Self.num(width))\" stroke-linejoin=\"round\" stroke-linecap=\"round\""
        if opacity != 1 { a += " stroke-opacity=\"\(Self.num(opacity))\"" }
        if let dash { a += " stroke-dasharray=\"\(Self.escape(dash))\"" }
        if let className { a += " class=\"\(Self.escape(className))\"" }
        append("polyline", a, tooltip: tooltip)
    }

    /// A path from SVG path data (`M 0 0 L 10 10 Z`).
    public mutating func path(_ d: String, fill: String = "none", stroke: String? = nil, width: Double = 1) {
        var a = "d=\"\(Self.escape(d))\" fill=\"\(Self.escape(fill))\""
        if let stroke { a += " stroke=\"\(Self.escape(stroke))\" stroke-width=\"\(Self.num(width))\"" }
        elements.append("<path \(a)/>")
    }

    public mutating func circle(cx: Double, cy: Double, r: Double, fill: String, tooltip: String? = nil) {
        let a = "cx=\"\(Self.num(cx))\" cy=\"\(Self.num(cy))\" r=\"\(Self.num(r))\" fill=\"\(Self.escape(fill))\""
        append("circle", a, tooltip: tooltip)
    }

    /// `<tag attributes/>`, or with a `<title>` child when there is a tooltip.
    private mutating func append(_ tag: String, _ attributes: String, tooltip: String?) {
        if let tooltip {
            elements.append("<\(tag) \(attributes)><title>\(Self.escape(tooltip))</title></\(tag)>")
        } else {
            elements.append("<\(tag) \(attributes)/>")
        }
    }

    /// A linear gradient usable as `fill="url(#id)"`; `vertical` runs from bottom (offset 0) to top.
    public mutating func linearGradient(id: String, stops: [(offset: Double, color: String)], vertical: Bool) {
        let direction = vertical ? "x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\"" : "x1=\"0\" y1=\"0\" x2=\"1\" y2=\"0\""
        let body = stops.map { "<stop offset=\"\(Self.num($0.offset))\" stop-color=\"\(Self.escape($0.color))\"/>" }.joined()
        defs.append("<linearGradient id=\"\(Self.escape(id))\" \(direction)>\(body)</linearGradient>")
    }

    /// The document: an XML declaration, then `<svg>` on a white background.
    public func render() -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.num(width))\" height=\"\(Self.num(height))\" viewBox=\"0 0 \(Self.num(width)) \(Self.num(height))\" font-family=\"\(Font.sans.rawValue)\">\n"
        if !defs.isEmpty { out += "<defs>\(defs.joined())</defs>\n" }
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\" class=\"background\"/>\n"
        for element in elements { out += element + "\n" }
        out += "</svg>\n"
        return out
    }

    /// Several rendered documents one above the other in one document (nested `<svg>` elements).
    public static func stackVertically(_ documents: [String]) -> String {
        var width = 0.0, y = 0.0, body = ""
        for document in documents {
            let svg = document.replacingOccurrences(of: #"<\?xml[^>]*\?>\n?"#, with: "", options: .regularExpression)
            func attribute(_ name: String) -> Double {
                guard let range = svg.range(of: " \(name)=\"([0-9.]+)\"", options: .regularExpression) else { return 0 }
                return Double(svg[range].split(separator: "\"")[1]) ?? 0
            }
            width = max(width, attribute("width"))
            body += svg.replacingOccurrences(of: "<svg ", with: "<svg y=\"\(num(y))\" ", options: .anchored) + "\n"
            y += attribute("height")
        }
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(num(width))\" height=\"\(num(y))\" viewBox=\"0 0 \(num(width)) \(num(y))\">\n" + body + "</svg>\n"
    }

    // MARK: Text

    /// Escapes text for XML content and attribute values. Characters XML 1.0 cannot carry at all
    /// (C0 controls other than tab/newline/return, U+FFFE, U+FFFF) are written visibly as `\xNN`.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += hexEscape(scalar)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Token text made visible: spaces as "␣", newline/tab/return as `\n` `\t` `\r`, other control
    /// characters as `\xNN`; the empty token as "∅".
    public static func visibleToken(_ token: String) -> String {
        var out = ""
        for scalar in token.unicodeScalars {
            if scalar == " " { out += "␣" } else { out += visibleScalar(scalar) }
        }
        return out.isEmpty ? "∅" : out
    }

    /// Running text (a prompt) made visible on one line: spaces kept, control characters spelled out.
    public static func visibleText(_ text: String) -> String {
        text.unicodeScalars.map(visibleScalar).joined()
    }

    static func visibleScalar(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\t": return "\\t"
        case "\r": return "\\r"
        default:
            let v = scalar.value
            if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0xFFFE || v == 0xFFFF { return hexEscape(scalar) }
            return String(scalar)
        }
    }

    static func hexEscape(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return scalar.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
    }

    /// At most `maxChars` characters, ending in "…" when cut.
    public static func truncate(_ s: String, maxChars: Int) -> String {
        guard s.count > maxChars else { return s }
        guard maxChars > 1 else { return "…" }
        return String(s.prefix(maxChars - 1)) + "…"
    }

    /// At most `maxChars` characters, keeping the end and starting with "…" when cut.
    public static func truncateHead(_ s: String, maxChars: Int) -> String {
        guard s.count > maxChars else { return s }
        guard maxChars > 1 else { return "…" }
        return "…" + String(s.suffix(maxChars - 1))
    }

    /// Estimated width of text in pixels (no font metrics: 0.6 em per character, which is exact for
    /// DejaVu Sans Mono and generous for sans-serif).
    public static func textWidth(_ s: String, size: Double) -> Double {
        Double(s.count) * size * 0.6
    }

    /// A coordinate or length with at most two decimals and no trailing zeros.
    public static func num(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let r = (v * 100).rounded() / 100
        if r == r.rounded() { return String(Int(r)) }
        var s = String(format: "%.2f", r)
        while s.hasSuffix("0") { s.removeLast() }
        return s == "-0" ? "0" : s
    }

    // MARK: Scales and axes

    /// A rectangle of the page.
    public struct Frame: Sendable {
        public var x, y, width, height: Double
        public init(x: Double, y: Double, width: Double, height: Double) {
            self.x = x; self.y = y; self.width = width; self.height = height
        }
        public var right: Double { x + width }
        public var bottom: Double { y + height }
    }

    /// Maps data values to pixels, linearly or on a log10 scale.
    public struct Scale: Sendable {
        public var domain: ClosedRange<Double>
        public var from: Double, to: Double
        public var log: Bool
        public init(domain: ClosedRange<Double>, from: Double, to: Double, log: Bool = false) {
            self.domain = domain; self.from = from; self.to = to; self.log = log
        }
        public func callAsFunction(_ v: Double) -> Double {
            func t(_ x: Double) -> Double { log ? Foundation.log10(Swift.max(x, 1e-300)) : x }
            let lo = t(domain.lowerBound), hi = t(domain.upperBound)
            let f = hi == lo ? 0.5 : (t(v) - lo) / (hi - lo)
            return from + f * (to - from)
        }
    }

    /// About `count` round tick values covering `range` (1, 2, 5 × 10^k steps).
    public static func niceTicks(_ range: ClosedRange<Double>, count: Int = 5) -> [Double] {
        let step = niceStep(range, count: count)
        let first = (range.lowerBound / step).rounded(.up), last = (range.upperBound / step).rounded(.down)
        guard first <= last else { return [range.lowerBound] }
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    public static func niceStep(_ range: ClosedRange<Double>, count: Int = 5) -> Double {
        let span = range.upperBound - range.lowerBound
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(max(count, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        return nice * magnitude
    }

    /// `range` widened outwards to whole multiples of its nice step; a flat range gets some room.
    public static func niceRange(_ range: ClosedRange<Double>, count: Int = 5) -> ClosedRange<Double> {
        var lo = range.lowerBound, hi = range.upperBound
        if hi == lo { let pad = lo == 0 ? 1 : abs(lo) * 0.5; lo -= pad; hi += pad }
        let step = niceStep(lo...hi, count: count)
        return (lo / step).rounded(.down) * step ... (hi / step).rounded(.up) * step
    }

    /// A tick label with as many decimals as the step needs.
    public static func tickLabel(_ v: Double, step: Double) -> String {
        var decimals = 0
        while decimals < 6, abs(step * pow(10, Double(decimals)) - (step * pow(10, Double(decimals))).rounded()) > 1e-6 {
            decimals += 1
        }
        let s = String(format: "%.\(decimals)f", v)
        return s == "-0" || (Double(s) == 0 && s.hasPrefix("-")) ? String(s.dropFirst()) : s
    }

    /// The label of 10^exponent on a log axis: 1, 10, 100, 1k, 10k, 100k, 1e6, …
    public static func decadeLabel(_ exponent: Int) -> String {
        switch exponent {
        case ..<3: return String(Int(pow(10, Double(exponent))))
        case 3..<6: return String(Int(pow(10, Double(exponent - 3)))) + "k"
        default: return "1e\(exponent)"
        }
    }

    /// How x tick labels fit under an axis: every `step`-th label, upright or turned by −45°, and the
    /// height they take below the axis line.
    public struct TickLayout: Sendable {
        public var step: Int
        public var rotated: Bool
        public var height: Double
    }

    public static func tickLayout(labels: [String], spacing: Double, size: Double) -> TickLayout {
        let widest = labels.map { textWidth($0, size: size) }.max() ?? 0
        if widest + 6 <= spacing { return TickLayout(step: 1, rotated: false, height: size + 8) }
        // Turned labels need about 1.5 em between neighbours.
        let step = max(1, Int((size * 1.5 / max(spacing, 1)).rounded(.up)))
        return TickLayout(step: step, rotated: true, height: widest * 0.71 + size + 8)
    }

    /// A plot's axes: frame lines, light grid at y ticks, tick labels and axis titles.
    public mutating func axes(_ frame: Frame, xTicks: [(x: Double, label: String)], yTicks: [(y: Double, label: String)],
                              xLabel: String, yLabel: String, tickSize: Double = 10, xLayout: TickLayout? = nil) {
        for tick in yTicks {
            line(x1: frame.x, y1: tick.y, x2: frame.right, y2: tick.y, stroke: "#e4e4e4")
            line(x1: frame.x - 4, y1: tick.y, x2: frame.x, y2: tick.y, stroke: "#444")
            text(tick.label, x: frame.x - 6, y: tick.y + tickSize * 0.35, size: tickSize, anchor: .end, fill: "#444")
        }
        line(x1: frame.x, y1: frame.y, x2: frame.x, y2: frame.bottom, stroke: "#444")
        line(x1: frame.x, y1: frame.bottom, x2: frame.right, y2: frame.bottom, stroke: "#444")
        let spacing = xTicks.count > 1 ? abs(xTicks[1].x - xTicks[0].x) : frame.width
        let layout = xLayout ?? Self.tickLayout(labels: xTicks.map(\.label), spacing: spacing, size: tickSize)
        for (i, tick) in xTicks.enumerated() {
            line(x1: tick.x, y1: frame.bottom, x2: tick.x, y2: frame.bottom + 4, stroke: "#444")
            // Thinned labels count back from the last tick, so the last one ("final") always shows.
            guard (xTicks.count - 1 - i) % layout.step == 0 else { continue }
            if layout.rotated {
                text(tick.label, x: tick.x + tickSize * 0.3, y: frame.bottom + 8 + tickSize * 0.3, size: tickSize,
                     anchor: .end, fill: "#444", rotate: -45)
            } else {
                text(tick.label, x: tick.x, y: frame.bottom + 6 + tickSize, size: tickSize, anchor: .middle, fill: "#444")
            }
        }
        text(xLabel, x: frame.x + frame.width / 2, y: frame.bottom + layout.height + 14, size: 11, anchor: .middle)
        let widestY = yTicks.map { Self.textWidth($0.label, size: tickSize) }.max() ?? 0
        let yTitleX = frame.x - widestY - 16
        text(yLabel, x: yTitleX, y: frame.y + frame.height / 2, size: 11, anchor: .middle, rotate: -90)
    }

    // MARK: Colours

    /// Viridis (matplotlib), sampled at nine stops; values between are interpolated in sRGB.
    public static let viridisStops: [(Double, Double, Double)] = [
        (0x44, 0x01, 0x54), (0x47, 0x2D, 0x7B), (0x3B, 0x52, 0x8B), (0x2C, 0x72, 0x8E), (0x21, 0x91, 0x8C),
        (0x28, 0xAE, 0x80), (0x5E, 0xC9, 0x62), (0xAD, 0xDC, 0x30), (0xFD, 0xE7, 0x25),
    ]

    /// Viridis colour of `t` in 0…1 (clamped; NaN is drawn light grey) as `#rrggbb`.
    public static func viridis(_ t: Double) -> String {
        guard t.isFinite else { return "#dddddd" }
        let stops = viridisStops
        let f = min(max(t, 0), 1) * Double(stops.count - 1)
        let i = min(Int(f), stops.count - 2), w = f - Double(i)
        let a = stops[i], b = stops[i + 1]
        return hex(a.0 + (b.0 - a.0) * w, a.1 + (b.1 - a.1) * w, a.2 + (b.2 - a.2) * w)
    }

    static func hex(_ r: Double, _ g: Double, _ b: Double) -> String {
        func h(_ v: Double) -> String {
            let s = String(Int(min(max(v.rounded(), 0), 255)), radix: 16)
            return s.count == 1 ? "0" + s : s
        }
        return "#" + h(r) + h(g) + h(b)
    }

    /// WCAG relative luminance of `#rrggbb`.
    public static func luminance(_ color: String) -> Double {
        let digits = color.hasPrefix("#") ? String(color.dropFirst()) : color
        guard digits.count == 6, let v = Int(digits, radix: 16) else { return 1 }
        func lin(_ c: Int) -> Double {
            let s = Double(c) / 255
            return s <= 0.04045 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
        }
        return 0.2126 * lin(v >> 16 & 0xFF) + 0.7152 * lin(v >> 8 & 0xFF) + 0.0722 * lin(v & 0xFF)
    }

    /// Black or white, whichever contrasts more with the background.
    public static func textColor(on background: String) -> String {
        luminance(background) > 0.179 ? "#000000" : "#ffffff"
    }

    /// Tableau 10: distinct categorical colours for series.
    public static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
}
