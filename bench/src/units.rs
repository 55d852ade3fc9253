//! Human-readable sizes, durations and rates, as written in workload files and on the command
//! line ("1KiB", "500ms", "20000" or "max").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// Splits "1.5MiB" into the leading number ("1.5") and the rest ("MiB").
fn split_number(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(split)
}

/// Parses a byte size: a number with an optional unit, `B`, `KB`/`MB`/`GB` (powers of 1000)
/// or `KiB`/`MiB`/`GiB` (powers of 1024). Fractions are allowed ("1.5MiB").
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 512, 1KiB, 4MiB, 1GB)"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}`: unknown size unit `{other}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: a number with a unit `us`, `ms`, `s`, `m` or `h` ("500ms", "1.5s").
/// A bare `0` is accepted; other bare numbers are refused because their unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = split_number(trimmed);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "" => return Err(format!("`{text}` needs a unit (us, ms, s, m or h)")),
        other => {
            return Err(format!(
                "`{text}`: unknown duration unit `{other}` (use us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros == 0 {
        "0".to_string()
    } else if micros % 1_000_000 == 0 {
        format!("{}s", micros / 1_000_000)
    } else if micros % 1_000 == 0 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{micros}us")
    }
}

/// A byte size in a workload file: an integer or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(try_from = "SizeOrText")]
pub struct ByteSize(pub u64);

/// A duration in a workload file: always a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct Dur(pub Duration);

/// A produce rate: records per second in total, or as fast as the client can go.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "SizeOrText")]
pub enum Rate {
    /// Fixed rate, records per second (coordinated omission is corrected for these).
    Fixed(f64),
    /// Unthrottled: send whenever the client's queue has room.
    Max,
}

/// A number or a string, as a workload file may give a size or a rate. Deserialized by hand
/// rather than with `#[serde(untagged)]`, whose error ("did not match any variant") names
/// neither the value nor what was expected.
enum SizeOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeOrText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SizeOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number or a string such as \"1KiB\" or \"max\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SizeOrText, E> {
                Ok(SizeOrText::Int(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SizeOrText, E> {
                u64::try_from(v)
                    .map(SizeOrText::Int)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SizeOrText, E> {
                Ok(SizeOrText::Float(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SizeOrText, E> {
                Ok(SizeOrText::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl TryFrom<SizeOrText> for ByteSize {
    type Error = String;
    fn try_from(value: SizeOrText) -> Result<Self, String> {
        match value {
            SizeOrText::Int(n) => Ok(ByteSize(n)),
            SizeOrText::Float(f) => Err(format!("size {f} must be a whole number of bytes")),
            SizeOrText::Text(text) => parse_size(&text).map(ByteSize),
        }
    }
}

impl TryFrom<String> for Dur {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        parse_duration(&text).map(Dur)
    }
}

impl TryFrom<SizeOrText> for Rate {
    type Error = String;
    fn try_from(value: SizeOrText) -> Result<Self, String> {
        match value {
            SizeOrText::Int(n) => Ok(Rate::Fixed(n as f64)),
            SizeOrText::Float(f) => Ok(Rate::Fixed(f)),
            SizeOrText::Text(text) if text.trim().eq_ignore_ascii_case("max") => Ok(Rate::Max),
            SizeOrText::Text(text) => text
                .trim()
                .parse::<f64>()
                .map(Rate::Fixed)
                .map_err(|_| format!("rate `{text}` must be records per second or \"max\"")),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Fixed(rate) => serializer.serialize_f64(*rate),
            Rate::Max => serializer.serialize_str("max"),
        }
    }
}

impl Rate {
    /// The rate multiplied by `factor`; `Max` stays `Max`.
    pub fn scaled(self, factor: f64) -> Rate {
        match self {
            Rate::Fixed(rate) => Rate::Fixed(rate * factor),
            Rate::Max => Rate::Max,
        }
    }

    /// Records per second, or `None` for `Max`.
    pub fn per_second(self) -> Option<f64> {
        match self {
            Rate::Fixed(rate) => Some(rate),
            Rate::Max => None,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Fixed(rate) => write!(f, "{rate:.0} records/s"),
            Rate::Max => f.write_str("max"),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        let bytes = self.0;
        if bytes >= KIB * KIB * KIB && bytes % (KIB * KIB * KIB) == 0 {
            write!(f, "{}GiB", bytes / (KIB * KIB * KIB))
        } else if bytes >= KIB * KIB && bytes % (KIB * KIB) == 0 {
            write!(f, "{}MiB", bytes / (KIB * KIB))
        } else if bytes >= KIB && bytes % KIB == 0 {
            write!(f, "{}KiB", bytes / KIB)
        } else if bytes >= KIB * KIB {
            write!(f, "{:.1}MiB", bytes as f64 / (KIB * KIB) as f64)
        } else {
            write!(f, "{bytes}B")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("4kb"), Ok(4000));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("3 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("1e400GiB").is_err());
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 fortnights")
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn durations_round_trip_through_format() {
        for text in ["0", "2s", "500ms", "250us", "90s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn rates_are_numbers_or_max() {
        let rate: Rate = serde_json::from_str("20000").unwrap();
        assert_eq!(rate, Rate::Fixed(20000.0));
        let rate: Rate = serde_json::from_str("\"max\"").unwrap();
        assert_eq!(rate, Rate::Max);
        assert!(serde_json::from_str::<Rate>("\"fast\"").is_err());
        assert_eq!(Rate::Fixed(100.0).scaled(0.5), Rate::Fixed(50.0));
        assert_eq!(Rate::Max.scaled(0.5), Rate::Max);
    }

    #[test]
    fn byte_sizes_display_in_their_largest_exact_unit() {
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(2048).to_string(), "2KiB");
        assert_eq!(ByteSize(26_843_546).to_string(), "25.6MiB");
    }
}
