import Foundation

/// Pearson's correlation and its p-value, as `scipy.stats.pearsonr` (two-sided).
public enum Statistics {
    /// Pearson's r of two equally long samples (nil when either is constant).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        precondition(x.count == y.count, "samples of one length")
        let n = Double(x.count)
        guard x.count >= 2 else { return nil }
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(x, y) { sxy += (a - mx) * (b - my); sxx += (a - mx) * (a - mx); syy += (b - my) * (b - my) }
        guard sxx > 0, syy > 0 else { return nil }
        return max(-1, min(1, sxy / (sxx * syy).squareRoot()))
    }

    /// The two-sided p-value of r over n points under the null of no correlation: with
    /// t = r·√((n−2)/(1−r²)) following Student's t with ν = n − 2 degrees of freedom,
    /// p = P(|T| ≥ |t|) = I_{ν/(ν+t²)}(ν/2, 1/2) (Abramowitz & Stegun 26.7.1 with 26.5.27), which equals
    /// scipy's `pearsonr` p-value (scipy uses the equivalent beta distribution of r).
    public static func pearsonPValue(r: Double, n: Int) -> Double {
        precondition(n >= 3, "a p-value needs 3 points or more")
        let nu = Double(n - 2)
        if abs(r) >= 1 { return 0 }
        let t2 = r * r * nu / (1 - r * r)
        return regularizedIncompleteBeta(a: nu / 2, b: 0.5, x: nu / (nu + t2))
    }

    /// The regularized incomplete beta function I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and
    /// 0 ≤ x ≤ 1: the continued fraction of Numerical Recipes (3rd ed., §6.4, `betacf` evaluated by
    /// the modified Lentz method), on x < (a+1)/(a+b+2) and through I_x(a,b) = 1 − I_{1−x}(b,a)
    /// otherwise, where it converges fast. Relative accuracy about 1e-14.
    public static func regularizedIncompleteBeta(a: Double, b: Double, x: Double) -> Double {
        precondition(a > 0 && b > 0, "I_x(a, b) needs a, b > 0")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let logFront = logGammas + logPowers
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * continuedFraction(a: a, b: b, x: x) / a
        }
        return 1 - exp(logFront) * continuedFraction(a: b, b: a, x: 1 - x) / b
    }

    static func continuedFraction(a: Double, b: Double, x: Double) -> Double {
        let tiny = 1e-300, epsilon = 1e-15
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0, d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d; h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < epsilon { break }
        }
        return h
    }
}
