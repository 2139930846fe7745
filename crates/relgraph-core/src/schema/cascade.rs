//! Cascade flags and the parser for SQLAlchemy's cascade strings.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Which operations travel along a relationship, as SQLAlchemy's `cascade=`.
///
/// The default is `save-update, merge`, as in SQLAlchemy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cascade(u8);

impl Cascade {
    /// No cascade at all.
    pub const NONE: Cascade = Cascade(0);
    /// Objects reachable through the relationship join the session at flush.
    pub const SAVE_UPDATE: Cascade = Cascade(1);
    /// `merge` follows the relationship.
    pub const MERGE: Cascade = Cascade(1 << 1);
    /// Refresh and expire follow the relationship.
    pub const REFRESH_EXPIRE: Cascade = Cascade(1 << 2);
    /// Expunging an object expunges its related objects.
    pub const EXPUNGE: Cascade = Cascade(1 << 3);
    /// Deleting the object deletes the related objects.
    pub const DELETE: Cascade = Cascade(1 << 4);
    /// A related object that loses its parent is deleted.
    pub const DELETE_ORPHAN: Cascade = Cascade(1 << 5);
    /// `all`: save-update, merge, refresh-expire, expunge and delete (not delete-orphan).
    pub const ALL: Cascade = Cascade(0b1_1111);

    const WORDS: [(&'static str, Cascade); 6] = [
        ("save-update", Cascade::SAVE_UPDATE),
        ("merge", Cascade::MERGE),
        ("refresh-expire", Cascade::REFRESH_EXPIRE),
        ("expunge", Cascade::EXPUNGE),
        ("delete", Cascade::DELETE),
        ("delete-orphan", Cascade::DELETE_ORPHAN),
    ];

    /// Parses a SQLAlchemy cascade string such as `"all, delete-orphan"`.
    ///
    /// Words are separated by commas (spaces around them are ignored); `all`
    /// and `none` are accepted as in SQLAlchemy, and the empty string is `none`.
    ///
    /// # Errors
    /// Returns the first word that is not a cascade.
    pub fn parse(text: &str) -> Result<Cascade, String> {
        let mut flags = Cascade::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            flags |= match word {
                "all" => Cascade::ALL,
                "none" => Cascade::NONE,
                _ => Cascade::WORDS
                    .iter()
                    .find(|(name, _)| *name == word)
                    .map(|(_, flag)| *flag)
                    .ok_or_else(|| word.to_owned())?,
            };
        }
        Ok(flags)
    }

    /// Whether every flag of `other` is set here.
    pub fn contains(self, other: Cascade) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for Cascade {
    fn default() -> Self {
        Cascade::SAVE_UPDATE | Cascade::MERGE
    }
}

impl BitOr for Cascade {
    type Output = Cascade;
    fn bitor(self, rhs: Cascade) -> Cascade {
        Cascade(self.0 | rhs.0)
    }
}

impl BitOrAssign for Cascade {
    fn bitor_assign(&mut self, rhs: Cascade) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Cascade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (name, flag) in Cascade::WORDS {
            if self.contains(flag) {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Cascade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cascade({self})")
    }
}

/// What happens to loaded children when their parent is deleted, as SQLAlchemy's `passive_deletes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PassiveDeletes {
    /// Children are loaded and handled by the session (the default).
    #[default]
    Off,
    /// Unloaded children are left to the database's `ON DELETE CASCADE`; loaded ones are still handled.
    On,
    /// Loaded children's foreign keys are left untouched too (`passive_deletes="all"`).
    All,
}

impl From<bool> for PassiveDeletes {
    fn from(on: bool) -> Self {
        if on { PassiveDeletes::On } else { PassiveDeletes::Off }
    }
}

/// The `ON DELETE` action of a foreign key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnDelete {
    /// The database refuses to delete a referenced row (SQL's default).
    #[default]
    NoAction,
    /// The database deletes the referencing rows.
    Cascade,
    /// The database sets the referencing columns to NULL.
    SetNull,
}

impl OnDelete {
    /// The SQL clause, empty for the default.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "",
            OnDelete::Cascade => " ON DELETE CASCADE",
            OnDelete::SetNull => " ON DELETE SET NULL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlalchemy_strings() {
        let all_orphan = Cascade::parse("all, delete-orphan").unwrap();
        assert!(all_orphan.contains(Cascade::ALL | Cascade::DELETE_ORPHAN));
        assert_eq!(Cascade::parse("save-update,merge").unwrap(), Cascade::default());
        assert_eq!(Cascade::parse("").unwrap(), Cascade::NONE);
        assert_eq!(Cascade::parse("none").unwrap(), Cascade::NONE);
        assert!(!Cascade::ALL.contains(Cascade::DELETE_ORPHAN));
    }

    #[test]
    fn unknown_word_is_returned() {
        assert_eq!(Cascade::parse("all, delete-orphans"), Err("delete-orphans".to_owned()));
    }

    #[test]
    fn displays_as_it_parses() {
        let c = Cascade::parse("delete, delete-orphan").unwrap();
        assert_eq!(c.to_string(), "delete, delete-orphan");
        assert_eq!(Cascade::parse(&c.to_string()).unwrap(), c);
    }
}
