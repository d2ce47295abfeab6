//! Engineering units: a real conversion table.
//!
//! Every unit is an affine map to its dimension's base unit: `base = value × factor + offset`
//! (the offset is non-zero only for °C and °F). A conversion between two units of the same
//! dimension is again affine: `target = value × scale + offset`.
//!
//! Unit names are case-sensitive; each unit has a canonical name (the first one listed in
//! `docs/configuration.md`) and a few accepted spellings.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Temperature,
    Pressure,
    Time,
    Length,
    Mass,
    Volume,
    VolumeFlow,
    MassFlow,
    RotationalSpeed,
    Speed,
    Frequency,
    Power,
    Energy,
    Current,
    Voltage,
    Count,
    Ratio,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Dimension::Temperature => "temperature",
            Dimension::Pressure => "pressure",
            Dimension::Time => "time",
            Dimension::Length => "length",
            Dimension::Mass => "mass",
            Dimension::Volume => "volume",
            Dimension::VolumeFlow => "volume flow",
            Dimension::MassFlow => "mass flow",
            Dimension::RotationalSpeed => "rotational speed",
            Dimension::Speed => "speed",
            Dimension::Frequency => "frequency",
            Dimension::Power => "power",
            Dimension::Energy => "energy",
            Dimension::Current => "electric current",
            Dimension::Voltage => "voltage",
            Dimension::Count => "count",
            Dimension::Ratio => "ratio",
        };
        f.write_str(s)
    }
}

/// A unit from the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    /// Canonical name, used in output signals.
    pub name: &'static str,
    pub dimension: Dimension,
    factor: f64,
    offset: f64,
}

impl Eq for Unit {}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// `target = value × scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    pub scale: f64,
    pub offset: f64,
}

impl Linear {
    pub const IDENTITY: Linear = Linear {
        scale: 1.0,
        offset: 0.0,
    };

    #[inline]
    pub fn apply(&self, v: f64) -> f64 {
        v * self.scale + self.offset
    }

    pub fn is_identity(&self) -> bool {
        self.scale == 1.0 && self.offset == 0.0
    }

    /// Whether a user-given scale/offset describes the same conversion, within 0.1 %
    /// (relative to the exact scale, and to max(|exact offset|, 1) for the offset), so that
    /// rounded values such as the seed's `0.5556` / `-17.78` for °F → °C agree.
    pub fn agrees_with(&self, scale: f64, offset: f64) -> bool {
        let tol = 1e-3;
        (scale - self.scale).abs() <= tol * self.scale.abs()
            && (offset - self.offset).abs() <= tol * self.offset.abs().max(1.0)
    }
}

use Dimension as D;
use std::f64::consts::PI;

const F_TO_K: f64 = 5.0 / 9.0;
const US_GALLON_M3: f64 = 0.003_785_411_784;

/// (accepted names, canonical first; dimension; factor to base; offset to base)
const TABLE: &[(&[&str], Dimension, f64, f64)] = &[
    // temperature, base kelvin
    (&["celsius", "°C", "degC"], D::Temperature, 1.0, 273.15),
    (
        &["fahrenheit", "°F", "degF"],
        D::Temperature,
        F_TO_K,
        273.15 - 32.0 * F_TO_K,
    ),
    (&["kelvin", "K"], D::Temperature, 1.0, 0.0),
    // pressure, base pascal
    (&["Pa", "pa", "pascal"], D::Pressure, 1.0, 0.0),
    (&["hPa", "hpa"], D::Pressure, 100.0, 0.0),
    (&["kPa", "kpa"], D::Pressure, 1e3, 0.0),
    (&["MPa", "mpa"], D::Pressure, 1e6, 0.0),
    (&["bar"], D::Pressure, 1e5, 0.0),
    (&["mbar"], D::Pressure, 100.0, 0.0),
    (&["psi"], D::Pressure, 6_894.757_293_168, 0.0),
    (&["atm"], D::Pressure, 101_325.0, 0.0),
    // time, base second
    (&["ms", "millisecond", "milliseconds"], D::Time, 1e-3, 0.0),
    (&["s", "second", "seconds"], D::Time, 1.0, 0.0),
    (&["min", "minute", "minutes"], D::Time, 60.0, 0.0),
    (&["h", "hour", "hours"], D::Time, 3600.0, 0.0),
    // length, base metre
    (&["mm"], D::Length, 1e-3, 0.0),
    (&["cm"], D::Length, 1e-2, 0.0),
    (&["m", "metre", "meter"], D::Length, 1.0, 0.0),
    (&["km"], D::Length, 1e3, 0.0),
    (&["in", "inch"], D::Length, 0.0254, 0.0),
    (&["ft", "foot", "feet"], D::Length, 0.3048, 0.0),
    // mass, base kilogram
    (&["g", "gram"], D::Mass, 1e-3, 0.0),
    (&["kg", "kilogram"], D::Mass, 1.0, 0.0),
    (&["t", "tonne"], D::Mass, 1e3, 0.0),
    (&["lb", "pound"], D::Mass, 0.453_592_37, 0.0),
    // volume, base cubic metre
    (&["ml", "mL"], D::Volume, 1e-6, 0.0),
    (&["l", "L", "litre", "liter"], D::Volume, 1e-3, 0.0),
    (&["m3", "m³"], D::Volume, 1.0, 0.0),
    (&["gal", "gallon"], D::Volume, US_GALLON_M3, 0.0),
    // volume flow, base m³/s
    (&["l/s", "L/s"], D::VolumeFlow, 1e-3, 0.0),
    (&["l/min", "L/min", "lpm"], D::VolumeFlow, 1e-3 / 60.0, 0.0),
    (&["l/h", "L/h"], D::VolumeFlow, 1e-3 / 3600.0, 0.0),
    (&["m3/h", "m³/h"], D::VolumeFlow, 1.0 / 3600.0, 0.0),
    (&["m3/s", "m³/s"], D::VolumeFlow, 1.0, 0.0),
    (&["gpm", "gal/min"], D::VolumeFlow, US_GALLON_M3 / 60.0, 0.0),
    // mass flow, base kg/s
    (&["kg/s"], D::MassFlow, 1.0, 0.0),
    (&["kg/min"], D::MassFlow, 1.0 / 60.0, 0.0),
    (&["kg/h"], D::MassFlow, 1.0 / 3600.0, 0.0),
    (&["t/h"], D::MassFlow, 1e3 / 3600.0, 0.0),
    // rotational speed, base rad/s
    (
        &["rpm", "rev/min", "1/min"],
        D::RotationalSpeed,
        2.0 * PI / 60.0,
        0.0,
    ),
    (&["rps", "rev/s"], D::RotationalSpeed, 2.0 * PI, 0.0),
    (&["rad/s"], D::RotationalSpeed, 1.0, 0.0),
    // linear speed, base m/s
    (&["m/s"], D::Speed, 1.0, 0.0),
    (&["m/min"], D::Speed, 1.0 / 60.0, 0.0),
    (&["mm/s"], D::Speed, 1e-3, 0.0),
    (&["km/h"], D::Speed, 1.0 / 3.6, 0.0),
    (&["ft/min"], D::Speed, 0.3048 / 60.0, 0.0),
    // frequency, base hertz
    (&["Hz", "hz"], D::Frequency, 1.0, 0.0),
    (&["kHz", "khz"], D::Frequency, 1e3, 0.0),
    // power, base watt
    (&["W", "watt"], D::Power, 1.0, 0.0),
    (&["kW", "kw"], D::Power, 1e3, 0.0),
    (&["MW"], D::Power, 1e6, 0.0),
    (&["hp"], D::Power, 745.699_871_582_270_2, 0.0),
    // energy, base joule
    (&["J", "joule"], D::Energy, 1.0, 0.0),
    (&["kJ", "kj"], D::Energy, 1e3, 0.0),
    (&["Wh", "wh"], D::Energy, 3600.0, 0.0),
    (&["kWh", "kwh"], D::Energy, 3.6e6, 0.0),
    (&["MWh"], D::Energy, 3.6e9, 0.0),
    // electric current and voltage
    (&["A", "ampere"], D::Current, 1.0, 0.0),
    (&["mA", "ma"], D::Current, 1e-3, 0.0),
    (&["V", "volt"], D::Voltage, 1.0, 0.0),
    (&["mV", "mv"], D::Voltage, 1e-3, 0.0),
    (&["kV", "kv"], D::Voltage, 1e3, 0.0),
    // counts and ratios
    (&["count", "pcs", "parts", "units"], D::Count, 1.0, 0.0),
    (&["ratio", "fraction"], D::Ratio, 1.0, 0.0),
    (&["percent", "%"], D::Ratio, 0.01, 0.0),
];

impl Unit {
    /// Look a unit up by any accepted spelling (case-sensitive).
    pub fn parse(name: &str) -> Option<Unit> {
        TABLE.iter().find(|(names, ..)| names.contains(&name)).map(
            |(names, dimension, factor, offset)| Unit {
                name: names[0],
                dimension: *dimension,
                factor: *factor,
                offset: *offset,
            },
        )
    }

    /// All canonical names, for error messages and docs.
    pub fn canonical_names() -> impl Iterator<Item = &'static str> {
        TABLE.iter().map(|(names, ..)| names[0])
    }

    /// Every accepted spelling with its dimension, for docs.
    pub fn table() -> impl Iterator<Item = (&'static [&'static str], Dimension)> {
        TABLE.iter().map(|(names, d, ..)| (*names, *d))
    }

    /// The affine map from `self` to `target`, or `None` when the dimensions differ.
    pub fn conversion_to(&self, target: &Unit) -> Option<Linear> {
        if self.dimension != target.dimension {
            return None;
        }
        if self.name == target.name {
            return Some(Linear::IDENTITY);
        }
        Some(Linear {
            scale: self.factor / target.factor,
            offset: (self.offset - target.offset) / target.factor,
        })
    }
}

/// A known spelling close to `name`, to suggest in an error (same text ignoring case).
pub fn suggest(name: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .flat_map(|(names, ..)| names.iter())
        .find(|n| n.eq_ignore_ascii_case(name))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(from: &str, to: &str, v: f64) -> f64 {
        Unit::parse(from)
            .unwrap()
            .conversion_to(&Unit::parse(to).unwrap())
            .unwrap()
            .apply(v)
    }

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} != {b} (±{tol})");
    }

    #[test]
    fn temperature() {
        close(conv("fahrenheit", "celsius", 212.0), 100.0, 1e-9);
        close(conv("fahrenheit", "celsius", 32.0), 0.0, 1e-9);
        close(conv("°F", "°C", -40.0), -40.0, 1e-9);
        close(conv("celsius", "fahrenheit", 100.0), 212.0, 1e-9);
        close(conv("celsius", "kelvin", 0.0), 273.15, 1e-9);
        close(conv("K", "degC", 0.0), -273.15, 1e-9);
        close(conv("fahrenheit", "kelvin", 212.0), 373.15, 1e-9);
        close(conv("kelvin", "fahrenheit", 0.0), -459.67, 1e-9);
    }

    #[test]
    fn pressure() {
        close(conv("psi", "bar", 14.5038), 1.0, 1e-5);
        close(conv("bar", "psi", 1.0), 14.503_773_8, 1e-6);
        close(conv("bar", "kPa", 1.0), 100.0, 1e-9);
        close(conv("bar", "mbar", 1.0), 1000.0, 1e-9);
        close(conv("kPa", "Pa", 2.5), 2500.0, 1e-9);
        close(conv("mbar", "hPa", 1013.25), 1013.25, 1e-9);
        close(conv("atm", "bar", 1.0), 1.013_25, 1e-12);
        close(conv("MPa", "bar", 1.0), 10.0, 1e-12);
        close(conv("psi", "kPa", 1.0), 6.894_757, 1e-6);
    }

    #[test]
    fn time() {
        close(conv("ms", "s", 1500.0), 1.5, 1e-12);
        close(conv("min", "s", 2.0), 120.0, 1e-12);
        close(conv("h", "min", 1.5), 90.0, 1e-12);
        close(conv("s", "ms", 0.25), 250.0, 1e-12);
    }

    #[test]
    fn length_mass_volume() {
        close(conv("in", "mm", 1.0), 25.4, 1e-12);
        close(conv("ft", "m", 10.0), 3.048, 1e-12);
        close(conv("km", "m", 1.2), 1200.0, 1e-9);
        close(conv("cm", "mm", 1.0), 10.0, 1e-12);
        close(conv("lb", "kg", 1.0), 0.453_592_37, 1e-12);
        close(conv("t", "kg", 1.5), 1500.0, 1e-9);
        close(conv("g", "kg", 250.0), 0.25, 1e-12);
        close(conv("gal", "l", 1.0), 3.785_411_784, 1e-9);
        close(conv("m3", "l", 1.0), 1000.0, 1e-9);
        close(conv("ml", "l", 500.0), 0.5, 1e-12);
    }

    #[test]
    fn flows_and_speeds() {
        close(conv("m3/h", "l/min", 6.0), 100.0, 1e-9);
        close(conv("l/s", "l/min", 1.0), 60.0, 1e-9);
        close(conv("l/h", "l/min", 60.0), 1.0, 1e-12);
        close(conv("gpm", "l/min", 1.0), 3.785_411_784, 1e-9);
        close(conv("m3/s", "m3/h", 1.0), 3600.0, 1e-9);
        close(conv("t/h", "kg/min", 6.0), 100.0, 1e-9);
        close(conv("kg/s", "kg/h", 1.0), 3600.0, 1e-9);
        close(conv("rps", "rpm", 1.0), 60.0, 1e-9);
        close(conv("rpm", "rad/s", 60.0), 2.0 * PI, 1e-12);
        close(conv("m/min", "m/s", 60.0), 1.0, 1e-12);
        close(conv("km/h", "m/s", 36.0), 10.0, 1e-12);
        close(conv("mm/s", "m/min", 1000.0), 60.0, 1e-9);
        close(conv("ft/min", "m/min", 1.0), 0.3048, 1e-12);
    }

    #[test]
    fn electrical_energy_and_ratios() {
        close(conv("kHz", "Hz", 1.0), 1000.0, 1e-12);
        close(conv("kW", "W", 1.5), 1500.0, 1e-9);
        close(conv("hp", "kW", 1.0), 0.745_699_87, 1e-8);
        close(conv("MW", "kW", 1.0), 1000.0, 1e-9);
        close(conv("kWh", "J", 1.0), 3.6e6, 1e-6);
        close(conv("Wh", "kJ", 1.0), 3.6, 1e-12);
        close(conv("MWh", "kWh", 1.0), 1000.0, 1e-9);
        close(conv("mA", "A", 20.0), 0.02, 1e-12);
        close(conv("kV", "V", 0.4), 400.0, 1e-9);
        close(conv("mV", "V", 1.0), 0.001, 1e-15);
        close(conv("percent", "ratio", 50.0), 0.5, 1e-12);
        close(conv("count", "pcs", 7.0), 7.0, 0.0);
    }

    #[test]
    fn every_unit_converts_to_itself_exactly() {
        for name in Unit::canonical_names() {
            let u = Unit::parse(name).unwrap();
            assert_eq!(u.conversion_to(&u), Some(Linear::IDENTITY), "{name}");
        }
    }

    #[test]
    fn incompatible_and_unknown() {
        let f = Unit::parse("fahrenheit").unwrap();
        let bar = Unit::parse("bar").unwrap();
        assert_eq!(f.conversion_to(&bar), None);
        assert_eq!(Unit::parse("Bar"), None);
        assert_eq!(suggest("Bar"), Some("bar"));
        assert_eq!(Unit::parse("furlong"), None);
    }

    #[test]
    fn seed_scale_and_offset_agree_with_fahrenheit_to_celsius() {
        let c = Unit::parse("fahrenheit")
            .unwrap()
            .conversion_to(&Unit::parse("celsius").unwrap())
            .unwrap();
        assert!(c.agrees_with(0.5556, -17.78));
        assert!(!c.agrees_with(0.5, 0.0));
        assert!(!c.agrees_with(0.5556, 0.0));
    }
}
