//! A family of random schemas that covers every relationship pattern of the
//! seed: one-to-many with and without a reverse, many-to-one, one-to-one
//! with the foreign key on either side, many-to-many by `back_populates` and
//! by `backref`, and self-referential adjacency lists and many-to-many.

use std::sync::Arc;

use proptest::prelude::*;
use relgraph_core::{Backref, Column, Entity, Registry, Relationship, Schema, Table};

/// One relationship pattern placed between two entities (by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `a.children` / `b.parent` by `back_populates`; the foreign key is on `b`.
    OneToManyBackPopulates(usize, usize),
    /// `a.children` with no reverse side.
    OneToManyNoReverse(usize, usize),
    /// `a.target`, many-to-one with no reverse side; the foreign key is on `a`.
    ManyToOneNoReverse(usize, usize),
    /// `a.target` with `backref`; the foreign key is on `a`.
    ManyToOneBackref(usize, usize),
    /// `a.child` (`uselist=False`) / `b.parent`; the foreign key is on `b`.
    OneToOneFkOnChild(usize, usize),
    /// `a.target` with `backref(uselist=False)`; the foreign key is on `a`.
    OneToOneFkOnHolder(usize, usize),
    /// `a.rights` / `b.lefts` through an association table, by `back_populates`.
    ManyToManyBackPopulates(usize, usize),
    /// `a.rights` through an association table with `backref`.
    ManyToManyBackref(usize, usize),
    /// `a.children` / `a.parent`: an adjacency list.
    SelfAdjacency(usize),
    /// `a.friends` / `a.friend_of` through an association table.
    SelfManyToMany(usize),
}

/// A random schema: `entities` entities `E0..`, each on table `t0..` with an
/// integer `id` and a text `name`, and the patterns between them, in order.
#[derive(Clone, Debug)]
pub struct SchemaSpec {
    /// How many entities.
    pub entities: usize,
    /// The patterns; the `k`-th one's names carry `k`.
    pub patterns: Vec<Pattern>,
}

impl SchemaSpec {
    /// Builds and configures the schema.
    ///
    /// # Panics
    /// If the family produces a schema that does not configure, which is a bug in relgraph or here.
    pub fn build(&self) -> Arc<Schema> {
        let mut reg = Registry::new();
        let mut entities: Vec<Entity> = (0..self.entities)
            .map(|i| {
                Entity::new(format!("E{i}"), format!("t{i}"))
                    .column(Column::integer("id").primary_key())
                    .column(Column::text("name"))
            })
            .collect();
        let table = |i: usize| format!("t{i}");
        for (k, &pattern) in self.patterns.iter().enumerate() {
            // Every foreign key gets its own column and is named in
            // foreign_keys, so patterns between the same pair never collide.
            let fk = format!("fk{k}");
            let rel = format!("r{k}");
            let rev = format!("r{k}_rev");
            let take = |entities: &mut Vec<Entity>, i: usize| {
                std::mem::replace(&mut entities[i], Entity::new("", ""))
            };
            match pattern {
                Pattern::OneToManyBackPopulates(a, b)
                | Pattern::OneToManyNoReverse(a, b)
                | Pattern::OneToOneFkOnChild(a, b) => {
                    let mut eb = take(&mut entities, b);
                    eb = eb.column(Column::integer(fk.clone()).foreign_key(format!("{}.id", table(a))));
                    let named = [format!("{}.{fk}", table(b))];
                    let mut forward = Relationship::new(format!("E{b}")).foreign_keys(named.clone());
                    if matches!(pattern, Pattern::OneToOneFkOnChild(..)) {
                        forward = forward.uselist(false);
                    }
                    if !matches!(pattern, Pattern::OneToManyNoReverse(..)) {
                        forward = forward.back_populates(rev.clone());
                        eb = eb.relationship(
                            rev.clone(),
                            Relationship::new(format!("E{a}"))
                                .foreign_keys(named)
                                .back_populates(rel.clone()),
                        );
                    }
                    entities[b] = eb;
                    entities[a] = take(&mut entities, a).relationship(rel, forward);
                }
                Pattern::ManyToOneNoReverse(a, b)
                | Pattern::ManyToOneBackref(a, b)
                | Pattern::OneToOneFkOnHolder(a, b) => {
                    let named = [format!("{}.{fk}", table(a))];
                    let mut forward = Relationship::new(format!("E{b}")).foreign_keys(named);
                    match pattern {
                        Pattern::ManyToOneBackref(..) => forward = forward.backref(rev),
                        Pattern::OneToOneFkOnHolder(..) => {
                            forward = forward.backref(Backref::new(rev).uselist(false))
                        }
                        _ => {}
                    }
                    entities[a] = take(&mut entities, a)
                        .column(Column::integer(fk).foreign_key(format!("{}.id", table(b))))
                        .relationship(rel, forward);
                }
                Pattern::ManyToManyBackPopulates(a, b) | Pattern::ManyToManyBackref(a, b) => {
                    let assoc = format!("assoc{k}");
                    // When a == b this is self-referential and the columns must be named.
                    reg.table(
                        Table::new(assoc.clone())
                            .column(Column::integer("a_id").foreign_key(format!("{}.id", table(a))))
                            .column(Column::integer("b_id").foreign_key(format!("{}.id", table(b)))),
                    )
                    .expect("fresh association table");
                    let mut forward =
                        Relationship::new(format!("E{b}")).secondary(assoc.as_str()).foreign_keys(["a_id"]);
                    if matches!(pattern, Pattern::ManyToManyBackref(..)) {
                        forward = forward.backref(rev);
                    } else {
                        forward = forward.back_populates(rev.clone());
                        entities[b] = take(&mut entities, b).relationship(
                            rev,
                            Relationship::new(format!("E{a}"))
                                .secondary(assoc.as_str())
                                .foreign_keys(["b_id"])
                                .back_populates(rel.clone()),
                        );
                    }
                    entities[a] = take(&mut entities, a).relationship(rel, forward);
                }
                Pattern::SelfAdjacency(a) => {
                    let named = [format!("{}.{fk}", table(a))];
                    entities[a] = take(&mut entities, a)
                        .column(Column::integer(fk).foreign_key(format!("{}.id", table(a))))
                        .relationship(
                            rel.clone(),
                            Relationship::new(format!("E{a}"))
                                .foreign_keys(named.clone())
                                .back_populates(rev.clone()),
                        )
                        .relationship(
                            rev,
                            Relationship::new(format!("E{a}"))
                                .foreign_keys(named)
                                .remote_side(["id"])
                                .back_populates(rel),
                        );
                }
                Pattern::SelfManyToMany(a) => {
                    let assoc = format!("assoc{k}");
                    reg.table(
                        Table::new(assoc.clone())
                            .column(Column::integer("a_id").foreign_key(format!("{}.id", table(a))))
                            .column(Column::integer("b_id").foreign_key(format!("{}.id", table(a)))),
                    )
                    .expect("fresh association table");
                    entities[a] = take(&mut entities, a).relationship(
                        rel,
                        Relationship::new(format!("E{a}"))
                            .secondary(assoc.as_str())
                            .foreign_keys(["a_id"])
                            .backref(rev),
                    );
                }
            }
        }
        for entity in entities {
            reg.entity(entity).expect("fresh entity");
        }
        reg.configure().unwrap_or_else(|e| panic!("schema family member {self:?} must configure: {e}"))
    }
}

impl Pattern {
    /// How many kinds of pattern there are.
    pub const KINDS: u8 = 10;

    /// The pattern of kind `kind % KINDS` between entities `a` and `b`.
    ///
    /// Foreign-key patterns between one entity and itself need
    /// `remote_side`, which is what `SelfAdjacency` covers, so they become it.
    pub fn from_parts(kind: u8, a: usize, b: usize) -> Pattern {
        let fk = |make: fn(usize, usize) -> Pattern| {
            if a == b { Pattern::SelfAdjacency(a) } else { make(a, b) }
        };
        match kind % Self::KINDS {
            0 => fk(Pattern::OneToManyBackPopulates),
            1 => fk(Pattern::OneToManyNoReverse),
            2 => fk(Pattern::ManyToOneNoReverse),
            3 => fk(Pattern::ManyToOneBackref),
            4 => fk(Pattern::OneToOneFkOnChild),
            5 => fk(Pattern::OneToOneFkOnHolder),
            6 => Pattern::ManyToManyBackPopulates(a, b),
            7 => Pattern::ManyToManyBackref(a, b),
            8 => Pattern::SelfAdjacency(a),
            _ => Pattern::SelfManyToMany(a),
        }
    }
}

/// A strategy over one pattern between entities below `entities`.
pub fn pattern(entities: usize) -> impl Strategy<Value = Pattern> {
    (0..Pattern::KINDS, 0..entities, 0..entities).prop_map(|(kind, a, b)| Pattern::from_parts(kind, a, b))
}

/// A strategy over schemas of 1 to 4 entities and 1 to 6 patterns.
pub fn schema_spec() -> impl Strategy<Value = SchemaSpec> {
    (1usize..=4).prop_flat_map(|entities| {
        proptest::collection::vec(pattern(entities), 1..=6)
            .prop_map(move |patterns| SchemaSpec { entities, patterns })
    })
}

/// Every pattern once, over three entities: the schema a fixed test uses to
/// be sure each pattern is exercised whatever the random draw.
pub fn every_pattern() -> SchemaSpec {
    SchemaSpec {
        entities: 3,
        patterns: vec![
            Pattern::OneToManyBackPopulates(0, 1),
            Pattern::OneToManyNoReverse(0, 2),
            Pattern::ManyToOneNoReverse(1, 2),
            Pattern::ManyToOneBackref(2, 0),
            Pattern::OneToOneFkOnChild(0, 1),
            Pattern::OneToOneFkOnHolder(1, 0),
            Pattern::ManyToManyBackPopulates(0, 1),
            Pattern::ManyToManyBackref(1, 2),
            Pattern::SelfAdjacency(0),
            Pattern::SelfManyToMany(2),
        ],
    }
}
