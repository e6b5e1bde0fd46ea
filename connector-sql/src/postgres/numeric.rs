//! PostgreSQL `numeric` binary format ⇄ Arrow decimals, text and floats.
//!
//! Binary layout: `ndigits: i16, weight: i16, sign: u16, dscale: u16`, then `ndigits` base-10000
//! digits (`i16`, 0..=9999), most significant first. The value is
//! `Σ digit[i] × 10000^(weight − i)`. Sign `0x4000` is negative, `0xC000` NaN, `0xD000` +Infinity,
//! `0xF000` −Infinity.

use arrow::datatypes::i256;

/// Why a numeric value could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    Malformed,
    NaN,
    PosInf,
    NegInf,
    /// More fractional digits than the target scale: converting would round.
    Lossy,
    /// Too many digits for the target precision.
    Overflow,
}

impl NumError {
    pub(crate) fn describe(self, precision: u8, scale: i8) -> String {
        match self {
            Self::Malformed => "malformed numeric value from the server".into(),
            Self::NaN => {
                "NaN cannot be stored in a decimal column (use numeric policy utf8 or float64)"
                    .into()
            }
            Self::PosInf | Self::NegInf => {
                "Infinity cannot be stored in a decimal column (use numeric policy utf8 or float64)"
                    .into()
            }
            Self::Lossy => format!(
                "value has more than {scale} fractional digits; reading it as Decimal({precision}, {scale}) would round it"
            ),
            Self::Overflow => format!("value does not fit Decimal({precision}, {scale})"),
        }
    }
}

pub(crate) struct Parts<'a> {
    pub weight: i16,
    pub neg: bool,
    pub dscale: u16,
    pub digits: &'a [u8],
}

pub(crate) fn parse(data: &[u8]) -> Result<Parts<'_>, NumError> {
    if data.len() < 8 {
        return Err(NumError::Malformed);
    }
    let ndigits = i16::from_be_bytes([data[0], data[1]]);
    let weight = i16::from_be_bytes([data[2], data[3]]);
    let sign = u16::from_be_bytes([data[4], data[5]]);
    let dscale = u16::from_be_bytes([data[6], data[7]]);
    let neg = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Err(NumError::NaN),
        0xD000 => return Err(NumError::PosInf),
        0xF000 => return Err(NumError::NegInf),
        _ => return Err(NumError::Malformed),
    };
    let n = usize::try_from(ndigits).map_err(|_| NumError::Malformed)?;
    let digits = &data[8..];
    if digits.len() != n * 2 {
        return Err(NumError::Malformed);
    }
    Ok(Parts {
        weight,
        neg,
        dscale,
        digits,
    })
}

fn digit(d: &[u8], i: usize) -> Result<i64, NumError> {
    let v = i16::from_be_bytes([d[2 * i], d[2 * i + 1]]);
    if (0..10000).contains(&v) {
        Ok(i64::from(v))
    } else {
        Err(NumError::Malformed)
    }
}

/// Integer arithmetic the decimal conversion needs, for `i128` and `i256`.
pub(crate) trait DecInt: Copy + PartialEq {
    const ZERO: Self;
    fn mul_add(self, m: i64, a: i64) -> Option<Self>;
    fn neg(self) -> Option<Self>;
    fn abs_lt_pow10(self, p: u8) -> bool;
}

impl DecInt for i128 {
    const ZERO: Self = 0;
    fn mul_add(self, m: i64, a: i64) -> Option<Self> {
        self.checked_mul(i128::from(m))?.checked_add(i128::from(a))
    }
    fn neg(self) -> Option<Self> {
        self.checked_neg()
    }
    fn abs_lt_pow10(self, p: u8) -> bool {
        match 10i128.checked_pow(u32::from(p)) {
            Some(lim) => self.unsigned_abs() < lim.unsigned_abs(),
            None => true,
        }
    }
}

impl DecInt for i256 {
    const ZERO: Self = i256::ZERO;
    fn mul_add(self, m: i64, a: i64) -> Option<Self> {
        self.checked_mul(i256::from_i128(i128::from(m)))?
            .checked_add(i256::from_i128(i128::from(a)))
    }
    fn neg(self) -> Option<Self> {
        self.checked_neg()
    }
    fn abs_lt_pow10(self, p: u8) -> bool {
        match (
            i256::from_i128(10).checked_pow(u32::from(p)),
            self.checked_abs(),
        ) {
            (Some(lim), Some(a)) => a < lim,
            (None, _) => true,
            (_, None) => false,
        }
    }
}

/// The unscaled integer of `data` at `scale`, checked against `precision`.
pub(crate) fn to_decimal<T: DecInt>(data: &[u8], precision: u8, scale: i8) -> Result<T, NumError> {
    let p = parse(data)?;
    let n = p.digits.len() / 2;
    let mut acc = T::ZERO;
    // exponent (power of ten, after scaling) of the last digit folded into `acc`
    let mut unit: Option<i32> = None;
    for i in 0..n {
        let d = digit(p.digits, i)?;
        let e = 4 * (i32::from(p.weight) - i as i32) + i32::from(scale);
        if e >= 0 {
            acc = acc.mul_add(10000, d).ok_or(NumError::Overflow)?;
            unit = Some(e);
        } else if e > -4 {
            // a digit that straddles the scale: its low -e decimal digits must be zero
            let div = 10i64.pow((-e) as u32);
            if d % div != 0 {
                return Err(NumError::Lossy);
            }
            acc = acc
                .mul_add(10i64.pow((4 + e) as u32), d / div)
                .ok_or(NumError::Overflow)?;
            unit = Some(0);
        } else if d != 0 {
            return Err(NumError::Lossy);
        }
    }
    if acc != T::ZERO {
        for _ in 0..unit.unwrap_or(0) {
            acc = acc.mul_add(10, 0).ok_or(NumError::Overflow)?;
        }
    }
    if !acc.abs_lt_pow10(precision) {
        return Err(NumError::Overflow);
    }
    if p.neg {
        acc.neg().ok_or(NumError::Overflow)
    } else {
        Ok(acc)
    }
}

/// [`to_decimal`] for `i128`.
pub(crate) fn to_decimal128(data: &[u8], precision: u8, scale: i8) -> Result<i128, NumError> {
    to_decimal::<i128>(data, precision, scale)
}

/// The text PostgreSQL prints for the value (`NaN`, `Infinity`, `-Infinity` included).
#[allow(clippy::many_single_char_names)] // p, n, w, g, d follow the format's own names
pub(crate) fn to_text(data: &[u8], out: &mut Vec<u8>) -> Result<(), NumError> {
    let p = match parse(data) {
        Ok(p) => p,
        Err(NumError::NaN) => {
            out.extend_from_slice(b"NaN");
            return Ok(());
        }
        Err(NumError::PosInf) => {
            out.extend_from_slice(b"Infinity");
            return Ok(());
        }
        Err(NumError::NegInf) => {
            out.extend_from_slice(b"-Infinity");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let n = p.digits.len() / 2;
    let w = i32::from(p.weight);
    if p.neg {
        out.push(b'-');
    }
    // integer part: groups 0..=weight
    if w < 0 {
        out.push(b'0');
    } else {
        for g in 0..=w {
            let d = if (g as usize) < n {
                digit(p.digits, g as usize)?
            } else {
                0
            };
            if g == 0 {
                out.extend_from_slice(d.to_string().as_bytes());
            } else {
                out.extend_from_slice(format!("{d:04}").as_bytes());
            }
        }
    }
    if p.dscale > 0 {
        out.push(b'.');
        let mut written = 0usize;
        let mut g = w + 1;
        while written < usize::from(p.dscale) {
            let d = if g >= 0 && (g as usize) < n {
                digit(p.digits, g as usize)?
            } else {
                0
            };
            let s = format!("{d:04}");
            for b in s.bytes() {
                if written < usize::from(p.dscale) {
                    out.push(b);
                    written += 1;
                }
            }
            g += 1;
        }
    }
    Ok(())
}

/// The nearest `f64` (via the exact text, so correctly rounded).
pub(crate) fn to_f64(data: &[u8]) -> Result<f64, NumError> {
    match parse(data) {
        Err(NumError::NaN) => return Ok(f64::NAN),
        Err(NumError::PosInf) => return Ok(f64::INFINITY),
        Err(NumError::NegInf) => return Ok(f64::NEG_INFINITY),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let mut buf = Vec::with_capacity(32);
    to_text(data, &mut buf)?;
    std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or(NumError::Malformed)
}

/// Encode a decimal given as its unscaled decimal digits (`unscaled`, with an optional leading
/// `-`) and `scale` into the numeric binary format.
pub(crate) fn encode_decimal_str(unscaled: &str, scale: i8, out: &mut Vec<u8>) {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    let s = i32::from(scale);
    // split into integer and fraction decimal digit strings
    let (int_part, frac_part): (String, String) = if s > 0 {
        let s = s as usize;
        if digits.len() > s {
            (
                digits[..digits.len() - s].to_owned(),
                digits[digits.len() - s..].to_owned(),
            )
        } else {
            ("0".to_owned(), format!("{digits:0>s$}"))
        }
    } else {
        (
            format!("{digits}{}", "0".repeat((-s) as usize)),
            String::new(),
        )
    };
    let int_part = int_part.trim_start_matches('0');
    // left-pad the integer part, right-pad the fraction to multiples of 4
    let ipad = (4 - int_part.len() % 4) % 4;
    let int_padded = format!("{}{int_part}", "0".repeat(ipad));
    let fpad = (4 - frac_part.len() % 4) % 4;
    let frac_padded = format!("{frac_part}{}", "0".repeat(fpad));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int_padded
        .as_bytes()
        .chunks(4)
        .chain(frac_padded.as_bytes().chunks(4))
    {
        let mut v = 0i16;
        for b in chunk {
            v = v * 10 + i16::from(b - b'0');
        }
        groups.push(v);
    }
    let mut weight = (int_padded.len() / 4) as i32 - 1;
    // strip leading zero groups
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= lead as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let dscale = s.max(0) as u16;
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(
        &(if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// Fast path for `i128` with a non-negative scale; falls back to the text method.
pub(crate) fn encode_i128(v: i128, scale: i8, out: &mut Vec<u8>) {
    if scale < 0 {
        return encode_decimal_str(&v.to_string(), scale, out);
    }
    let s = scale as u32;
    let pad = (4 - s % 4) % 4;
    let Some(mut abs) = v.unsigned_abs().checked_mul(10u128.pow(pad)) else {
        return encode_decimal_str(&v.to_string(), scale, out);
    };
    let frac_groups = ((s + pad) / 4) as i32;
    let mut groups = [0i16; 48];
    let mut len = 0usize;
    while abs > 0 {
        groups[len] = (abs % 10000) as i16;
        abs /= 10000;
        len += 1;
    }
    // groups[0] is the least significant
    let mut lo = 0;
    while lo < len && groups[lo] == 0 {
        lo += 1;
    }
    let weight = if len == 0 {
        0
    } else {
        len as i32 - frac_groups - 1
    };
    let n = len - lo;
    out.extend_from_slice(&(n as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&(if v < 0 { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&(s as u16).to_be_bytes());
    for i in (lo..len).rev() {
        out.extend_from_slice(&groups[i].to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: i128, s: i8) -> Vec<u8> {
        let mut o = Vec::new();
        encode_i128(v, s, &mut o);
        o
    }

    #[test]
    fn roundtrip_decimal() {
        for (v, s) in [
            (0i128, 2i8),
            (1, 0),
            (-12345, 2),
            (123_456_789_012_345_678, 6),
            (10000, 0),
            (5, 10),
            (-99_999_999_999_999_999_999_999_999_999_999_999_999, 38),
            (99_999_999_999_999_999_999_999_999_999_999_999_999, 0),
            (7, -3),
        ] {
            let b = enc(v, s);
            let mut slow = Vec::new();
            encode_decimal_str(&v.to_string(), s, &mut slow);
            assert_eq!(b, slow, "{v} scale {s}");
            assert_eq!(to_decimal128(&b, 38, s), Ok(v), "{v} scale {s}");
            let big = to_decimal::<i256>(&b, 76, s).unwrap();
            assert_eq!(big, i256::from_i128(v));
        }
    }

    #[test]
    fn text_and_errors() {
        let mut t = Vec::new();
        to_text(&enc(-12345, 3), &mut t).unwrap();
        assert_eq!(std::str::from_utf8(&t).unwrap(), "-12.345");
        t.clear();
        to_text(&enc(5, 10), &mut t).unwrap();
        assert_eq!(std::str::from_utf8(&t).unwrap(), "0.0000000005");
        // 1.25 read at scale 1 would round
        assert_eq!(
            to_decimal::<i128>(&enc(125, 2), 38, 1),
            Err(NumError::Lossy)
        );
        // 1000 does not fit precision 3
        assert_eq!(
            to_decimal::<i128>(&enc(1000, 0), 3, 0),
            Err(NumError::Overflow)
        );
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(to_decimal::<i128>(&nan, 38, 0), Err(NumError::NaN));
        assert!(to_f64(&nan).unwrap().is_nan());
        assert_eq!(to_decimal::<i128>(&[0, 1], 38, 0), Err(NumError::Malformed));
    }
}
