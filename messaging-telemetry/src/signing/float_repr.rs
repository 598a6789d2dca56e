//! Python's `repr(float)`, which the signed text of a float is: the shortest
//! digits that read back as the same `f64`, with Python's round-half-even
//! choice between two equally near candidates, in Python's notation.
//!
//! The test vectors (`tests/data/float_repr_vectors.json`) come from Python's
//! own `repr`, by `tests/interop/gen_signature_vectors.py`.

use std::fmt;

/// Splits `{:e}`-style text `d[.ddd]e[-]x` into its significant digits and
/// decimal exponent.
fn split_scientific(sci: &str) -> (String, i32) {
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// Whether `digits` (significant digits) with decimal `exponent` reads back
/// as exactly `f`.
fn round_trips(digits: &str, exponent: i32, f: f64) -> bool {
    let text = format!("{}.{}e{exponent}", &digits[..1], &digits[1..]);
    text.parse::<f64>() == Ok(f)
}

/// The shortest significant digits that read back as `f` (positive, finite,
/// non-zero), with the decimal exponent of the first one, chosen as Python's
/// `repr` chooses them.
///
/// Rust's `{:e}` gives the shortest round-trip digits nearest to the exact
/// value, as Python does, except when the exact value lies exactly halfway
/// between two shortest candidates (`739851323064877.25`): Rust then picks
/// the upper one (`…877.3`) and Python the one whose last digit is even
/// (`…877.2`).
fn shortest_digits(f: f64) -> (String, i32) {
    let (digits, exponent) = split_scientific(&format!("{f:e}"));
    let n = digits.len();
    // A tie needs the exact value to have exactly n + 1 significant digits,
    // the last a 5; the cheap correctly rounded (n + 1)-digit text then
    // already ends in 5.
    let (near, _) = split_scientific(&format!("{f:.n$e}"));
    if !near.ends_with('5') {
        return (digits, exponent);
    }
    // A double's exact decimal expansion has at most 767 significant digits.
    let (exact, exact_exponent) = split_scientific(&format!("{f:.800e}"));
    let exact = exact.trim_end_matches('0');
    if exact.len() != n + 1 || !exact.ends_with('5') {
        return (digits, exponent);
    }
    // The two candidates: `lower` (the exact digits cut to n) and one unit
    // above it; exactly one of them ends in an even digit.
    let lower = &exact[..n];
    let lower_is_even = lower.bytes().last().is_some_and(|d| (d - b'0') % 2 == 0);
    let (even, even_exponent) = if lower_is_even {
        (lower.to_owned(), exact_exponent)
    } else {
        increment_digits(lower, exact_exponent)
    };
    if round_trips(&even, even_exponent, f) {
        let trimmed_len = even.trim_end_matches('0').len().max(1);
        (even[..trimmed_len].to_owned(), even_exponent)
    } else {
        (digits, exponent)
    }
}

/// Adds one unit in the last place to `digits`, carrying; a carry out of the
/// first digit (`99` → `100`) raises the exponent.
fn increment_digits(digits: &str, exponent: i32) -> (String, i32) {
    let mut bytes = digits.as_bytes().to_vec();
    for byte in bytes.iter_mut().rev() {
        if *byte == b'9' {
            *byte = b'0';
        } else {
            *byte += 1;
            return (String::from_utf8_lossy(&bytes).into_owned(), exponent);
        }
    }
    bytes.insert(0, b'1');
    bytes.pop();
    (String::from_utf8_lossy(&bytes).into_owned(), exponent + 1)
}

/// Writes Python's `repr(float)`: the shortest text that round-trips, in
/// positional notation when the decimal exponent is in `-4..16` (always with
/// a fractional part, `1.0`), otherwise in scientific notation with a signed
/// exponent of at least two digits (`1e+16`, `1.5e-07`).
pub(super) fn write_float_repr<W: fmt::Write>(out: &mut W, f: f64) -> fmt::Result {
    if f.is_nan() {
        return out.write_str("nan");
    }
    if f.is_sign_negative() {
        out.write_char('-')?;
    }
    let f = f.abs();
    if f.is_infinite() {
        return out.write_str("inf");
    }
    if f == 0.0 {
        return out.write_str("0.0");
    }
    let (digits, exponent) = shortest_digits(f);
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.write_str(&digits)?;
                for _ in digits.len()..int_len {
                    out.write_char('0')?;
                }
                out.write_str(".0")
            } else {
                out.write_str(&digits[..int_len])?;
                out.write_char('.')?;
                out.write_str(&digits[int_len..])
            }
        } else {
            out.write_str("0.")?;
            for _ in 0..(-exponent - 1) {
                out.write_char('0')?;
            }
            out.write_str(&digits)
        }
    } else {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_repr(f: f64) -> String {
        let mut s = String::new();
        write_float_repr(&mut s, f).unwrap();
        s
    }

    #[test]
    fn float_repr_matches_python_examples() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (1e20, "1e+20"),
            (1.5e-7, "1.5e-07"),
            (1e-7, "1e-07"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (123_456_789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1.5e300, "1.5e+300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            // Exact ties between two shortest candidates go to the even one.
            (739_851_323_064_877.0 + 0.25, "739851323064877.2"),
            (739_851_323_064_877.0 + 0.75, "739851323064877.8"),
            (-2_205_547_964_965_410.2, "-2205547964965410.2"),
            (12_345_678_901_234_565.0, "1.2345678901234564e+16"),
        ];
        for &(f, expected) in cases {
            assert_eq!(float_repr(f), expected, "repr of {f:e}");
        }
    }

    #[test]
    fn float_repr_matches_python_corpus() {
        #[derive(serde::Deserialize)]
        struct Case {
            bits: String,
            repr: String,
        }
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../../tests/data/float_repr_vectors.json")).unwrap();
        assert!(cases.len() >= 1000);
        for case in cases {
            let f = f64::from_bits(u64::from_str_radix(&case.bits, 16).unwrap());
            assert_eq!(float_repr(f), case.repr, "bits {}", case.bits);
        }
    }
}
