//! Column types and the values an object's row holds.

use std::fmt;
use std::sync::Arc;

/// The type of a column, as every store understands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// UTF-8 text.
    Text,
    /// A boolean.
    Boolean,
    /// Raw bytes.
    Blob,
}

impl ColumnType {
    /// The SQL spelling used in messages and DDL.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Float => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Blob => "BLOB",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// One column value of a row.
///
/// Text and blobs are shared slices (`Arc<str>`, `Arc<[u8]>`): a value is 24
/// bytes, and copying a row (for a flush, or the session's record of what
/// the store holds) shares its strings instead of allocating them again.
///
/// Equality and hashing are total: floats compare by bit pattern (so NaN
/// equals itself and `0.0` differs from `-0.0`), which is what keys, change
/// detection and the identity map need.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(Arc<str>),
    /// A boolean.
    Boolean(bool),
    /// Bytes.
    Blob(Arc<[u8]>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Blob(a), Value::Blob(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Integer(v) => v.hash(state),
            Value::Float(v) => v.to_bits().hash(state),
            Value::Text(v) => v.hash(state),
            Value::Boolean(v) => v.hash(state),
            Value::Blob(v) => v.hash(state),
        }
    }
}

impl Value {
    /// The column type this value fits, or `None` for NULL, which fits any nullable column.
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            Value::Null => None,
            Value::Integer(_) => Some(ColumnType::Integer),
            Value::Float(_) => Some(ColumnType::Float),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Boolean(_) => Some(ColumnType::Boolean),
            Value::Blob(_) => Some(ColumnType::Blob),
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(v) => Some(*v),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(v) => Some(v),
            _ => None,
        }
    }

    /// The float, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is a blob.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Integer(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v:?}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::Blob(v) => write!(f, "<{} bytes>", v.len()),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant($conv(v))
            }
        })*
    };
}

value_from! {
    i64 => Integer(|v| v),
    i32 => Integer(i64::from),
    u32 => Integer(i64::from),
    f64 => Float(|v| v),
    bool => Boolean(|v| v),
    &str => Text(Arc::from),
    String => Text(Arc::from),
    Box<str> => Text(Arc::from),
    Arc<str> => Text(|v| v),
    &[u8] => Blob(Arc::from),
    Vec<u8> => Blob(Arc::from),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_three_words() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn conversions_pick_the_matching_type() {
        assert_eq!(Value::from(3i32).column_type(), Some(ColumnType::Integer));
        assert_eq!(Value::from("x").as_str(), Some("x"));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(vec![1u8, 2]).as_bytes(), Some(&[1u8, 2][..]));
        assert_eq!(Value::from(true).as_bool(), Some(true));
        assert_eq!(Value::from(1.5).as_f64(), Some(1.5));
    }
}
