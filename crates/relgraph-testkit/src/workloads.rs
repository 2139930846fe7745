//! The benchmark workloads of WORKLOADS.md, shared by the criterion benches
//! and `relgraph bench` so both measure exactly the same thing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relgraph_core::{Column, Entity, EntityId, Registry, Relationship, RelationshipId, Schema, Table};
use relgraph_graph::{Graph, ObjectKey};

/// The workloads' schema: `parent`/`child` with `Parent.children` /
/// `Child.parent` (`all, delete-orphan`), and `left`/`right` through
/// `association` with `Left.rights` / `Right.lefts`.
pub fn schema() -> Arc<Schema> {
    let mut reg = Registry::new();
    reg.entity(
        Entity::new("Parent", "parent")
            .column(Column::integer("id").primary_key())
            .column(Column::text("name"))
            .relationship(
                "children",
                Relationship::new("Child").back_populates("parent").cascade("all, delete-orphan"),
            ),
    )
    .expect("workload schema");
    reg.entity(
        Entity::new("Child", "child")
            .column(Column::integer("id").primary_key())
            .column(Column::integer("parent_id").foreign_key("parent.id"))
            .column(Column::text("name"))
            .column(Column::integer("value"))
            .relationship("parent", Relationship::new("Parent").back_populates("children")),
    )
    .expect("workload schema");
    reg.table(
        Table::new("association")
            .column(Column::integer("left_id").foreign_key("left.id"))
            .column(Column::integer("right_id").foreign_key("right.id")),
    )
    .expect("workload schema");
    reg.entity(
        Entity::new("Left", "left").column(Column::integer("id").primary_key()).relationship(
            "rights",
            Relationship::new("Right").secondary("association").back_populates("lefts"),
        ),
    )
    .expect("workload schema");
    reg.entity(
        Entity::new("Right", "right").column(Column::integer("id").primary_key()).relationship(
            "lefts",
            Relationship::new("Left").secondary("association").back_populates("rights"),
        ),
    )
    .expect("workload schema");
    reg.configure().expect("workload schema configures")
}

/// Handles into [`schema`], resolved once.
#[derive(Clone, Copy, Debug)]
pub struct Handles {
    /// `Parent`.
    pub parent: EntityId,
    /// `Child`.
    pub child: EntityId,
    /// `Left`.
    pub left: EntityId,
    /// `Right`.
    pub right: EntityId,
    /// `Parent.children`.
    pub children: RelationshipId,
    /// `Child.parent`.
    pub child_parent: RelationshipId,
    /// `Left.rights`.
    pub rights: RelationshipId,
    /// `Right.lefts`.
    pub lefts: RelationshipId,
}

impl Handles {
    /// Resolves the handles of [`schema`].
    pub fn new(schema: &Schema) -> Self {
        let rel = |e, n| schema.relationship_by_name(e, n).expect("workload relationship");
        let ent = |e| schema.entity_id(e).expect("workload entity");
        Handles {
            parent: ent("Parent"),
            child: ent("Child"),
            left: ent("Left"),
            right: ent("Right"),
            children: rel("Parent", "children"),
            child_parent: rel("Child", "parent"),
            rights: rel("Left", "rights"),
            lefts: rel("Right", "lefts"),
        }
    }
}

/// The size of W4; [`W4Size::FULL`] is the workload as WORKLOADS.md defines it.
#[derive(Clone, Copy, Debug)]
pub struct W4Size {
    /// Parents (each gets `children_per_parent` children).
    pub parents: usize,
    /// Children per parent.
    pub children_per_parent: usize,
    /// Lefts (each linked to `rights_per_left` rights).
    pub lefts: usize,
    /// Rights.
    pub rights: usize,
    /// Rights per left.
    pub rights_per_left: usize,
}

impl W4Size {
    /// 10,000 parents x 100 children; 100,000 lefts x 10 of 10,000 rights.
    pub const FULL: W4Size = W4Size {
        parents: 10_000,
        children_per_parent: 100,
        lefts: 100_000,
        rights: 10_000,
        rights_per_left: 10,
    };

    /// The right that left `i`'s `k`-th link goes to (W2's formula).
    pub fn right_of(&self, i: usize, k: usize) -> usize {
        (i * 7 + k * 13) % self.rights
    }
}

/// Timings of one W4 run; each phase is `ops` operations.
#[derive(Clone, Copy, Debug)]
pub struct W4Timings {
    /// `child.parent = p` on new children.
    pub link: Duration,
    /// `child.parent = None` on the same children, in creation order.
    pub unlink: Duration,
    /// `left.rights.append(right)`.
    pub m2m_append: Duration,
    /// `left.rights.remove(right)`, in append order.
    pub m2m_remove: Duration,
    /// Operations in each of the one-to-many phases.
    pub o2m_ops: usize,
    /// Operations in each of the many-to-many phases.
    pub m2m_ops: usize,
}

/// The W4 graph with every object created and nothing linked yet.
pub struct W4Objects {
    /// The graph.
    pub graph: Graph,
    /// Handles.
    pub h: Handles,
    /// Parents, in creation order.
    pub parents: Vec<ObjectKey>,
    /// Children, in creation order (child `j` belongs to parent `j / children_per_parent`).
    pub children: Vec<ObjectKey>,
    /// Lefts.
    pub lefts: Vec<ObjectKey>,
    /// Rights.
    pub rights: Vec<ObjectKey>,
    /// The size it was built for.
    pub size: W4Size,
}

/// Creates W4's objects (not timed by the workload).
pub fn w4_objects(size: W4Size) -> W4Objects {
    let schema = schema();
    let h = Handles::new(&schema);
    let mut graph = Graph::new(schema);
    let objects = size.parents + size.parents * size.children_per_parent + size.lefts + size.rights;
    let links = (size.parents * size.children_per_parent).max(size.lefts * size.rights_per_left);
    graph.reserve(objects, links);
    let parents = (0..size.parents).map(|_| graph.insert(h.parent)).collect();
    let children = (0..size.parents * size.children_per_parent).map(|_| graph.insert(h.child)).collect();
    let lefts = (0..size.lefts).map(|_| graph.insert(h.left)).collect();
    let rights = (0..size.rights).map(|_| graph.insert(h.right)).collect();
    W4Objects { graph, h, parents, children, lefts, rights, size }
}

/// W4's first phase: `child.parent = p` for every child.
///
/// # Panics
/// If an operation fails, which is a bug.
pub fn w4_link(w: &mut W4Objects) {
    for (j, &c) in w.children.iter().enumerate() {
        let p = w.parents[j / w.size.children_per_parent];
        black_box(w.graph.set(c, w.h.child_parent, Some(p)).expect("link"));
    }
}

/// W4's second phase: `child.parent = None` for every child, in creation order.
///
/// # Panics
/// If an operation fails, which is a bug.
pub fn w4_unlink(w: &mut W4Objects) {
    for &c in &w.children {
        black_box(w.graph.set(c, w.h.child_parent, None).expect("unlink"));
    }
}

/// W4's third phase: `left.rights.append(right)` for every pair.
///
/// # Panics
/// If an operation fails, which is a bug.
pub fn w4_append(w: &mut W4Objects) {
    for (i, &l) in w.lefts.iter().enumerate() {
        for k in 0..w.size.rights_per_left {
            let r = w.rights[w.size.right_of(i, k)];
            black_box(w.graph.append(l, w.h.rights, r).expect("append"));
        }
    }
}

/// W4's fourth phase: `left.rights.remove(right)`, in append order.
///
/// # Panics
/// If an operation fails, which is a bug.
pub fn w4_remove(w: &mut W4Objects) {
    for (i, &l) in w.lefts.iter().enumerate() {
        for k in 0..w.size.rights_per_left {
            let r = w.rights[w.size.right_of(i, k)];
            black_box(w.graph.remove_member(l, w.h.rights, r).expect("remove"));
        }
    }
}

/// Runs W4 once and times its four phases.
///
/// # Panics
/// If an operation the workload relies on fails, which is a bug.
pub fn run_w4(size: W4Size) -> W4Timings {
    let mut w = w4_objects(size);
    let mut time = |phase: fn(&mut W4Objects)| {
        let start = Instant::now();
        phase(&mut w);
        start.elapsed()
    };
    let (link, unlink, m2m_append, m2m_remove) =
        (time(w4_link), time(w4_unlink), time(w4_append), time(w4_remove));
    assert_eq!(w.graph.link_count(), 0, "W4 ends with every link removed");
    W4Timings {
        link,
        unlink,
        m2m_append,
        m2m_remove,
        o2m_ops: w.children.len(),
        m2m_ops: w.lefts.len() * size.rights_per_left,
    }
}

/// A W1 parent row: `(id, name)`.
pub type ParentRow = (i64, String);
/// A W1 child row: `(id, parent id, name, value)`.
pub type ChildRow = (i64, i64, String, i64);

/// W1's row data, ids from 1.
pub fn w1_rows(parents: usize) -> (Vec<ParentRow>, Vec<ChildRow>) {
    let mut ps = Vec::with_capacity(parents);
    let mut cs = Vec::with_capacity(parents * 10);
    for p in 0..parents {
        let pid = p as i64 + 1;
        ps.push((pid, format!("parent-{p}")));
        for k in 0..10 {
            let value = (p * 10 + k) as i64;
            cs.push((value + 1, pid, format!("child-{p}-{k}"), value));
        }
    }
    (ps, cs)
}

/// W2's links: left `i` to rights `(i*7 + k*13) % n` for k in 0..10, ids from 1.
pub fn w2_links(n: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(n * 10);
    for i in 0..n {
        for k in 0..10 {
            out.push((i as i64 + 1, ((i * 7 + k * 13) % n) as i64 + 1));
        }
    }
    // A pair repeats only if 13k = 13k' mod n, which needs n to divide 13(k - k'); not for n = 10,000.
    out
}

/// W3's changes to W1's rows (parents `1..=parents`): the moved children
/// as `(child id, new parent id)`, the renamed parents, the deleted parents.
pub struct W3Changes {
    /// Children with `id % 10 == 5`, each to the next parent not being deleted.
    pub moves: Vec<(i64, i64)>,
    /// Parents with `id % 10 == 1`, and their new names.
    pub renames: Vec<(i64, String)>,
    /// Parents with `id % 10 == 0` (their other children go by delete-orphan).
    pub deletes: Vec<i64>,
    /// The deleted parents' children that are deleted with them.
    pub child_deletes: Vec<i64>,
}

/// The changes of W3 over W1's rows.
pub fn w3_changes(parents: usize) -> W3Changes {
    let n = parents as i64;
    let next = |id: i64| {
        let mut p = id % n + 1;
        while p % 10 == 0 {
            p = p % n + 1;
        }
        p
    };
    let mut changes =
        W3Changes { moves: Vec::new(), renames: Vec::new(), deletes: Vec::new(), child_deletes: Vec::new() };
    for pid in 1..=n {
        let first_child = (pid - 1) * 10 + 1;
        changes.moves.push((first_child + 4, next(pid)));
        if pid % 10 == 1 {
            changes.renames.push((pid, format!("renamed-{pid}")));
        }
        if pid % 10 == 0 {
            changes.deletes.push(pid);
            changes.child_deletes.extend((first_child..first_child + 10).filter(|c| c % 10 != 5));
        }
    }
    changes
}
