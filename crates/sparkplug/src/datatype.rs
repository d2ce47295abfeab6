//! The Sparkplug B `DataType` codes 0–34 (specification §6.4.16).

use std::fmt;

macro_rules! datatypes {
    ($($name:ident = $code:literal),+ $(,)?) => {
        /// A Sparkplug B datatype, as carried in `Metric.datatype`, `PropertyValue.type`,
        /// `DataSet.types` and `Template.Parameter.type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DataType {
            $(#[doc = concat!("Code ", stringify!($code), ".")] $name = $code,)+
        }

        impl DataType {
            /// Every datatype, in code order.
            pub const ALL: &'static [DataType] = &[$(DataType::$name),+];

            /// The datatype for a wire code, or `None` for a code the specification does not define.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $($code => Some(DataType::$name),)+
                    _ => None,
                }
            }

            /// The specification's name, such as `"Int8"` or `"BooleanArray"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(DataType::$name => stringify!($name),)+
                }
            }

            /// The datatype with the specification's name (case-sensitive).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($name) => Some(DataType::$name),)+
                    _ => None,
                }
            }
        }
    };
}

datatypes! {
    Unknown = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt8 = 5,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    DateTime = 13,
    Text = 14,
    UUID = 15,
    DataSet = 16,
    Bytes = 17,
    File = 18,
    Template = 19,
    PropertySet = 20,
    PropertySetList = 21,
    Int8Array = 22,
    Int16Array = 23,
    Int32Array = 24,
    Int64Array = 25,
    UInt8Array = 26,
    UInt16Array = 27,
    UInt32Array = 28,
    UInt64Array = 29,
    FloatArray = 30,
    DoubleArray = 31,
    BooleanArray = 32,
    StringArray = 33,
    DateTimeArray = 34,
}

impl DataType {
    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Whether this is one of the scalar types 1–15 that DataSet columns and template parameters
    /// may use.
    pub fn is_scalar(self) -> bool {
        (1..=15).contains(&self.code())
    }

    /// Whether this is one of the array types 22–34, packed into `bytes_value`.
    pub fn is_array(self) -> bool {
        (22..=34).contains(&self.code())
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_name_and_code() {
        assert_eq!(DataType::ALL.len(), 35);
        for (i, dt) in DataType::ALL.iter().enumerate() {
            assert_eq!(dt.code() as usize, i);
            assert_eq!(DataType::from_code(dt.code()), Some(*dt));
            assert_eq!(DataType::from_name(dt.name()), Some(*dt));
        }
        assert_eq!(DataType::from_code(35), None);
        assert_eq!(DataType::from_name("int8"), None);
    }
}
