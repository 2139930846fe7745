//! The operation enum that drives the property tests and the fuzz target,
//! and the harness that applies each operation to the engine and to the
//! reference model and checks the invariants after every step.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::Direction as PetDirection;
use petgraph::visit::IntoNeighborsDirected;
use proptest::prelude::*;
use relgraph_core::{EntityId, RelationshipId, Schema};
use relgraph_graph::{Graph, GraphError, ObjectKey};

use crate::model::{Model, Outcome, Refusal};

/// One mutation. Indices are selectors, resolved against the objects that
/// exist when the operation runs, so any sequence is meaningful.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create an object of entity `entity % entities`.
    Insert {
        /// Entity selector.
        entity: usize,
    },
    /// Remove an object (perhaps one already removed).
    Remove {
        /// Object selector.
        object: usize,
    },
    /// `append` on a relationship.
    Append {
        /// Relationship selector.
        rel: usize,
        /// Owner selector.
        object: usize,
        /// Member selector.
        member: usize,
    },
    /// `remove_member`.
    RemoveMember {
        /// Relationship selector.
        rel: usize,
        /// Owner selector.
        object: usize,
        /// Member selector.
        member: usize,
    },
    /// `set` a scalar, or clear it with `None`.
    Set {
        /// Relationship selector.
        rel: usize,
        /// Owner selector.
        object: usize,
        /// Target selector.
        target: Option<usize>,
    },
    /// `replace` a collection.
    Replace {
        /// Relationship selector.
        rel: usize,
        /// Owner selector.
        object: usize,
        /// Member selectors.
        members: Vec<usize>,
    },
    /// `clear` a relationship.
    Clear {
        /// Relationship selector.
        rel: usize,
        /// Owner selector.
        object: usize,
    },
    /// Write the object's `name` column (`None` writes NULL).
    SetName {
        /// Object selector.
        object: usize,
        /// The name, as `n<value>`.
        name: Option<u16>,
    },
    /// Flush the session (a no-op for the bare graph).
    Flush,
}

impl Op {
    /// The value a [`Op::SetName`] writes.
    pub fn name_value(name: Option<u16>) -> Option<String> {
        name.map(|n| format!("n{n}"))
    }
}

/// Picks an object for a selector: usually one of `entity` (removed ones
/// included, so stale keys are exercised), sometimes any of the `count`
/// objects (so wrong entities are exercised). `None` when there is none.
pub fn pick(by_entity: &[Vec<usize>], count: usize, selector: usize, entity: EntityId) -> Option<usize> {
    let pool = &by_entity[entity.index()];
    if selector % 11 == 10 || pool.is_empty() {
        (count > 0).then(|| (selector / 11) % count)
    } else {
        Some(pool[(selector / 11) % pool.len()])
    }
}

/// An operation with its selectors resolved to a relationship and object
/// numbers (numbers index the objects created so far, removed ones included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create an object.
    Insert(EntityId),
    /// Remove (delete) an object.
    Remove(usize),
    /// `append`.
    Append(RelationshipId, usize, usize),
    /// `remove_member`.
    RemoveMember(RelationshipId, usize, usize),
    /// `set`.
    Set(RelationshipId, usize, Option<usize>),
    /// `replace`.
    Replace(RelationshipId, usize, Vec<usize>),
    /// `clear`.
    Clear(RelationshipId, usize),
    /// Write the `name` column.
    SetName(usize, Option<String>),
    /// Flush.
    Flush,
}

/// Resolves `op`'s selectors against `schema` and the objects created so far
/// (`by_entity`, `count` in all); `None` when it has nothing to act on.
pub fn resolve(op: &Op, schema: &Schema, by_entity: &[Vec<usize>], count: usize) -> Option<Step> {
    let rel = |selector: usize| {
        let n = schema.relationships().len();
        (n > 0).then(|| schema.relationship_ids().nth(selector % n).expect("index below count"))
    };
    let pick = |selector, entity| pick(by_entity, count, selector, entity);
    Some(match *op {
        Op::Flush => Step::Flush,
        Op::Insert { entity } => {
            let n = schema.entities().len();
            Step::Insert(schema.entity_ids().nth(entity % n).expect("index below count"))
        }
        Op::Remove { object } => Step::Remove((count > 0).then(|| object % count)?),
        Op::SetName { object, name } => {
            let o = (count > 0).then(|| object % count)?;
            // Only an entity with a `name` column has one to write: a schema
            // of the user's own may have none.
            let entity = schema.entity_ids().zip(by_entity).find(|(_, ns)| ns.binary_search(&o).is_ok())?.0;
            schema.entity_column(entity, "name")?;
            Step::SetName(o, Op::name_value(name))
        }
        Op::Append { rel: r, object, member } | Op::RemoveMember { rel: r, object, member } => {
            let r = rel(r)?;
            let def = schema.relationship(r);
            let (a, b) = (pick(object, def.entity)?, pick(member, def.target)?);
            if matches!(op, Op::Append { .. }) { Step::Append(r, a, b) } else { Step::RemoveMember(r, a, b) }
        }
        Op::Set { rel: r, object, target } => {
            let r = rel(r)?;
            let def = schema.relationship(r);
            let a = pick(object, def.entity)?;
            let t = match target {
                Some(t) => Some(pick(t, def.target)?),
                None => None,
            };
            Step::Set(r, a, t)
        }
        Op::Replace { rel: r, object, ref members } => {
            let r = rel(r)?;
            let def = schema.relationship(r);
            let a = pick(object, def.entity)?;
            Step::Replace(r, a, members.iter().filter_map(|&m| pick(m, def.target)).collect())
        }
        Op::Clear { rel: r, object } => {
            let r = rel(r)?;
            Step::Clear(r, pick(object, schema.relationship(r).entity)?)
        }
    })
}

/// A strategy over single operations.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u16>().prop_map(|entity| Op::Insert { entity: usize::from(entity) }),
        1 => Just(Op::Flush),
        16 => changes([1, 5, 2, 4, 1, 1, 2]),
    ]
}

/// A strategy over operations that make no new object and no flush:
/// links made and broken, objects removed and renamed. A flush after only
/// these writes UPDATEs and DELETEs, the flushes that send their UPDATEs
/// ahead of the rest of their plan.
pub fn op_on_existing() -> impl Strategy<Value = Op> {
    changes([1, 3, 1, 6, 1, 1, 6])
}

/// The operations on objects that exist, with weights in the order
/// remove, append, remove a member, set, replace, clear, rename.
fn changes(weights: [u32; 7]) -> impl Strategy<Value = Op> {
    let sel = any::<u16>().prop_map(usize::from);
    let [remove, append, remove_member, set, replace, clear, rename] = weights;
    prop_oneof![
        remove => sel.clone().prop_map(|object| Op::Remove { object }),
        append => (sel.clone(), sel.clone(), sel.clone()).prop_map(|(rel, object, member)| Op::Append { rel, object, member }),
        remove_member => (sel.clone(), sel.clone(), sel.clone())
            .prop_map(|(rel, object, member)| Op::RemoveMember { rel, object, member }),
        set => (sel.clone(), sel.clone(), proptest::option::weighted(0.8, sel.clone()))
            .prop_map(|(rel, object, target)| Op::Set { rel, object, target }),
        replace => (sel.clone(), sel.clone(), proptest::collection::vec(sel.clone(), 0..6))
            .prop_map(|(rel, object, members)| Op::Replace { rel, object, members }),
        clear => (sel.clone(), sel.clone()).prop_map(|(rel, object)| Op::Clear { rel, object }),
        rename => (sel, proptest::option::weighted(0.9, any::<u16>()))
            .prop_map(|(object, name)| Op::SetName { object, name }),
    ]
}

/// Sequences of up to `max_ops` operations in phases: operations of every
/// kind and a flush, then operations on the objects that exist
/// ([`op_on_existing`]) and a flush, once or twice. Half the flushes then
/// have no new row, which random sequences of [`op`] seldom give.
pub fn phased_ops(max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    let phase = (max_ops / 4).max(2);
    let round =
        (proptest::collection::vec(op(), 1..phase), proptest::collection::vec(op_on_existing(), 1..phase));
    proptest::collection::vec(round, 1..3).prop_map(|rounds| {
        rounds
            .into_iter()
            .flat_map(|(any, existing)| any.into_iter().chain([Op::Flush]).chain(existing).chain([Op::Flush]))
            .collect()
    })
}

/// The engine and the model side by side.
pub struct Harness {
    schema: Arc<Schema>,
    /// The engine under test.
    pub graph: Graph,
    /// The reference model.
    pub model: Model,
    keys: Vec<ObjectKey>,
    numbers: HashMap<ObjectKey, usize>,
    /// Objects (live or removed) per entity, for picking owners and members.
    by_entity: Vec<Vec<usize>>,
    /// Operations applied so far.
    pub steps: usize,
}

impl Harness {
    /// An empty graph and model over `schema`.
    pub fn new(schema: Arc<Schema>) -> Self {
        let entities = schema.entities().len();
        Harness {
            graph: Graph::new(schema.clone()),
            model: Model::new(&schema),
            schema,
            keys: Vec::new(),
            numbers: HashMap::new(),
            by_entity: vec![Vec::new(); entities],
            steps: 0,
        }
    }

    fn number(&self, key: ObjectKey) -> usize {
        self.numbers[&key]
    }

    /// Applies `op` to both and compares what they return.
    ///
    /// # Errors
    /// A description of the first disagreement.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.steps += 1;
        let Some(step) = resolve(op, &self.schema, &self.by_entity, self.keys.len()) else { return Ok(()) };
        let key = |n: usize| self.keys[n];
        let (expected, actual): (Result<Outcome, Refusal>, Result<Outcome, GraphError>) = match step {
            Step::Flush => return Ok(()),
            Step::Insert(entity) => {
                let number = self.model.insert(entity);
                let k = self.graph.insert(entity);
                self.keys.push(k);
                self.numbers.insert(k, number);
                self.by_entity[entity.index()].push(number);
                return Ok(());
            }
            Step::Remove(o) => (self.model.remove(o), self.graph.remove(key(o)).map(|_| Outcome::Done)),
            Step::SetName(o, value) => {
                let actual = self.graph.entity_of(key(o)).and_then(|entity| {
                    let column =
                        self.schema.entity_column(entity, "name").expect("family tables have a name");
                    self.graph.set_value(key(o), column, value.clone()).map(|_| Outcome::Done)
                });
                (self.model.set_name(o, value), actual)
            }
            Step::Append(rel, a, b) => (
                self.model.append(rel.index(), a, b),
                self.graph.append(key(a), rel, key(b)).map(Outcome::Changed),
            ),
            Step::RemoveMember(rel, a, b) => (
                self.model.remove_member(rel.index(), a, b),
                self.graph.remove_member(key(a), rel, key(b)).map(Outcome::Changed),
            ),
            Step::Set(rel, a, t) => {
                let actual = self.graph.set(key(a), rel, t.map(key));
                let actual = actual.map(|p| Outcome::Previous(p.map(|k| self.number(k))));
                (self.model.set(rel.index(), a, t), actual)
            }
            Step::Replace(rel, a, members) => {
                let keys: Vec<ObjectKey> = members.iter().map(|&m| key(m)).collect();
                (
                    self.model.replace(rel.index(), a, &members),
                    self.graph.replace(key(a), rel, &keys).map(|()| Outcome::Done),
                )
            }
            Step::Clear(rel, a) => {
                (self.model.clear(rel.index(), a), self.graph.clear(key(a), rel).map(Outcome::Count))
            }
        };
        let actual = actual.map_err(|e| refusal_of(&e));
        if expected != actual {
            return Err(format!(
                "step {}: {op:?}: model gave {expected:?}, engine gave {actual:?}",
                self.steps
            ));
        }
        Ok(())
    }

    /// Checks every invariant of the engine against the model.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check(&self) -> Result<(), String> {
        check_graph(&self.schema, &self.graph, &self.model, &self.keys, &self.numbers, self.steps)
    }
}

/// Checks a graph against the model: the same objects and links, both
/// sides agreeing (unnamed ones included), scalars holding at most one,
/// collections in the model's order, no link to a removed object.
/// `keys[n]` is the graph's key of model object `n`.
///
/// # Errors
/// A description of the first broken invariant.
pub fn check_graph(
    schema: &Schema,
    graph: &Graph,
    model: &Model,
    keys: &[ObjectKey],
    numbers: &HashMap<ObjectKey, usize>,
    step: usize,
) -> Result<(), String> {
    if graph.len() != model.live().count() {
        return Err(format!(
            "step {step}: engine has {} objects, model {}",
            graph.len(),
            model.live().count()
        ));
    }
    if graph.link_count() != model.link_count() {
        return Err(format!(
            "step {step}: engine has {} links, model {} (an edge outlived an object or a link was lost)",
            graph.link_count(),
            model.link_count()
        ));
    }
    for (number, key) in keys.iter().enumerate() {
        let live = model.entity(number).is_some();
        if graph.contains(*key) != live {
            return Err(format!("step {step}: object {number} live in model: {live}, in engine: {}", !live));
        }
    }
    for (object, entity) in model.live() {
        let key = keys[object];
        for &rel in &schema.entity(entity).relationships {
            let def = schema.relationship(rel);
            let index = rel.index();
            let members: Vec<usize> = graph
                .members(key, rel)
                .map_err(|e| format!("step {step}: members failed: {e}"))?
                .map(|k| numbers[&k])
                .collect();
            let expected = model.members(index, object);
            if members != expected {
                return Err(format!(
                    "step {step}: {} of object {object}: engine {members:?}, model {expected:?}",
                    schema.relationship_path(rel)
                ));
            }
            if !def.uselist && members.len() > 1 {
                return Err(format!(
                    "step {step}: scalar {} holds {members:?}",
                    schema.relationship_path(rel)
                ));
            }
            // Both sides agree: each member sees this object on the reverse
            // side, named or not, and the reverse side holds what the model says.
            let view = graph.link_view(rel).map_err(|e| e.to_string())?;
            for &m in &members {
                if model.entity(m).is_none() {
                    return Err(format!("step {step}: object {object} links to removed object {m}"));
                }
                let back: Vec<usize> =
                    view.neighbors_directed(keys[m], PetDirection::Incoming).map(|k| numbers[&k]).collect();
                let link = def.link.index();
                let expected_back = model.list(link, 1 - model.rel_end(index).index(), m);
                if back != expected_back || !back.contains(&object) {
                    return Err(format!(
                        "step {step}: reverse of {} at object {m}: engine {back:?}, model {expected_back:?}, must contain {object}",
                        schema.relationship_path(rel)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn refusal_of(error: &GraphError) -> Refusal {
    match error {
        GraphError::StaleKey(_) => Refusal::Stale,
        GraphError::NotOnEntity { .. } => Refusal::NotOnEntity,
        GraphError::WrongEntity { .. } => Refusal::WrongEntity,
        GraphError::NotACollection { .. } => Refusal::NotACollection,
        GraphError::NotAScalar { .. } => Refusal::NotAScalar,
        other => panic!("no relationship operation returns {other:?}"),
    }
}

/// Runs `ops` on a fresh harness over `schema`, checking after every step.
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn run(schema: Arc<Schema>, ops: &[Op]) -> Result<usize, String> {
    let mut harness = Harness::new(schema);
    for op in ops {
        harness.apply(op)?;
        harness.check()?;
    }
    Ok(harness.steps)
}

/// Reads fuzz input: bytes and little-endian `u16` selectors, `None` at the end.
struct Reader<'a>(std::slice::Iter<'a, u8>);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        self.0.next().copied()
    }

    fn sel(&mut self) -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([self.byte()?, self.byte()?])))
    }

    fn op(&mut self) -> Option<Op> {
        Some(match self.byte()? % 9 {
            8 => {
                let (object, name) = (self.sel()?, self.sel()?);
                Op::SetName { object, name: (name % 7 != 0).then_some(name as u16) }
            }
            7 => Op::Flush,
            0 => Op::Insert { entity: self.sel()? },
            1 => Op::Remove { object: self.sel()? },
            2 => Op::Append { rel: self.sel()?, object: self.sel()?, member: self.sel()? },
            3 => Op::RemoveMember { rel: self.sel()?, object: self.sel()?, member: self.sel()? },
            4 => {
                let (rel, object, target) = (self.sel()?, self.sel()?, self.sel()?);
                Op::Set { rel, object, target: (target % 5 != 0).then_some(target / 5) }
            }
            5 => {
                let (rel, object) = (self.sel()?, self.sel()?);
                let members = (0..self.byte()? % 6).map(|_| self.sel()).collect::<Option<Vec<_>>>()?;
                Op::Replace { rel, object, members }
            }
            _ => Op::Clear { rel: self.sel()?, object: self.sel()? },
        })
    }
}

/// Decodes arbitrary bytes into a schema and an operation sequence, for
/// fuzzing: every input decodes to something valid, so the fuzzer spends its
/// time in the engine rather than in rejected inputs.
pub fn decode(bytes: &[u8]) -> (crate::family::SchemaSpec, Vec<Op>) {
    let mut r = Reader(bytes.iter());
    let entities = usize::from(r.byte().unwrap_or(0) % 4) + 1;
    let count = usize::from(r.byte().unwrap_or(0) % 6) + 1;
    let patterns = (0..count)
        .map(|_| {
            let (kind, a, b) = (r.byte().unwrap_or(0), r.byte().unwrap_or(0), r.byte().unwrap_or(1));
            crate::family::Pattern::from_parts(kind, usize::from(a) % entities, usize::from(b) % entities)
        })
        .collect();
    let ops = std::iter::from_fn(|| r.op()).collect();
    (crate::family::SchemaSpec { entities, patterns }, ops)
}
