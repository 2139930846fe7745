//! Walks every relationship pattern of the seed page (SQLAlchemy's "Basic
//! Relationship Patterns") in memory, printing each step and both sides of
//! every link after it.
//!
//! The mappings themselves are in `crates/relgraph-testkit/src/seed.rs`,
//! written next to the Python they mirror.
//!
//! Run with `cargo run --example seed`.

use std::collections::HashMap;
use std::sync::Arc;

use relgraph::petgraph::Direction as PetDirection;
use relgraph::petgraph::visit::IntoNeighborsDirected;
use relgraph::{Graph, ObjectKey, Schema};
use relgraph_testkit::seed::{self, SecondaryForm, Sides};

/// A graph plus a label per object, so the output reads `Parent#1.children = [Child#2]`.
struct Walk {
    graph: Graph,
    schema: Arc<Schema>,
    labels: HashMap<ObjectKey, String>,
    /// The relationships to print after every step, as `Entity.name`.
    shown: Vec<&'static str>,
}

impl Walk {
    fn new(title: &str, schema: Arc<Schema>, shown: Vec<&'static str>) -> Self {
        println!("\n== {title} ==");
        Walk { graph: Graph::new(schema.clone()), schema, labels: HashMap::new(), shown }
    }

    fn new_obj(&mut self, entity: &str) -> ObjectKey {
        let key = self.graph.insert(self.schema.entity_id(entity).expect("seed entity"));
        let n = self
            .labels
            .keys()
            .filter(|k| self.graph.entity_of(**k).ok() == self.graph.entity_of(key).ok())
            .count();
        self.labels.insert(key, format!("{entity}#{}", n + 1));
        key
    }

    fn rel(&self, path: &str) -> relgraph::RelationshipId {
        let (entity, name) = path.split_once('.').expect("Entity.name");
        self.schema.relationship_by_name(entity, name).expect("seed relationship")
    }

    fn label(&self, key: ObjectKey) -> &str {
        &self.labels[&key]
    }

    /// Prints `what`, runs it, then prints both sides of every shown relationship.
    fn step(&mut self, what: &str, op: impl FnOnce(&mut Graph) -> Result<(), relgraph::GraphError>) {
        println!("> {what}");
        if let Err(e) = op(&mut self.graph) {
            println!("  refused: {e}");
        }
        let mut keys: Vec<_> = self.labels.keys().copied().filter(|k| self.graph.contains(*k)).collect();
        keys.sort_by(|a, b| self.label(*a).cmp(self.label(*b)));
        for path in self.shown.clone() {
            let rel = self.rel(path);
            let def = self.schema.relationship(rel);
            for &key in keys.iter().filter(|k| self.graph.entity_of(**k).ok() == Some(def.entity)) {
                let members: Vec<_> = self
                    .graph
                    .members(key, rel)
                    .expect("members")
                    .map(|m| self.label(m).to_owned())
                    .collect();
                let shown = if def.uselist {
                    format!("[{}]", members.join(", "))
                } else {
                    members.first().cloned().unwrap_or("None".into())
                };
                println!("    {}.{} = {shown}", self.label(key), def.name);
                if def.reverse.is_none() {
                    // No attribute names the other side; show what the one edge holds there too.
                    let view = self.graph.link_view(rel).expect("view");
                    for m in self.graph.members(key, rel).expect("members") {
                        let back: Vec<_> = view
                            .neighbors_directed(m, PetDirection::Incoming)
                            .map(|k| self.label(k).to_owned())
                            .collect();
                        println!("      (unnamed reverse at {}: [{}])", self.label(m), back.join(", "));
                    }
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "relgraph: the seed's relationship patterns, in memory (flushing to SQLite comes with the session)"
    );

    let mut w = Walk::new(
        "One To Many, back_populates",
        seed::one_to_many(Sides::BackPopulates)?,
        vec!["Parent.children", "Child.parent"],
    );
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let (children, parent) = (w.rel("Parent.children"), w.rel("Child.parent"));
    w.step("parent1.children.append(child1); parent1.children.append(child2)", |g| {
        g.append(p1, children, c1)?;
        g.append(p1, children, c2).map(drop)
    });
    w.step("child1.parent = parent2", |g| g.set(c1, parent, Some(p2)).map(drop));
    w.step("parent2.children.append(child1) again: membership is a set", |g| {
        g.append(p2, children, c1).map(drop)
    });
    w.step("parent1.children.append(parent2): wrong entity", |g| g.append(p1, children, p2).map(drop));

    let mut w =
        Walk::new("One To Many, no reverse side", seed::one_to_many(Sides::OneWay)?, vec!["Parent.children"]);
    let (p1, p2, c1) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"));
    let children = w.rel("Parent.children");
    w.step("parent1.children.append(child1)", |g| g.append(p1, children, c1).map(drop));
    w.step("parent2.children.append(child1): the foreign key holds one parent", |g| {
        g.append(p2, children, c1).map(drop)
    });

    let mut w = Walk::new(
        "Many To One, backref=\"parents\"",
        seed::many_to_one(Sides::Backref)?,
        vec!["Parent.child", "Child.parents"],
    );
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let child = w.rel("Parent.child");
    w.step("parent1.child = child1; parent2.child = child1", |g| {
        g.set(p1, child, Some(c1))?;
        g.set(p2, child, Some(c1)).map(drop)
    });
    w.step("parent1.child = child2", |g| g.set(p1, child, Some(c2)).map(drop));
    w.step("parent2.child = None", |g| g.set(p2, child, None).map(drop));

    let mut w =
        Walk::new("One To One, uselist=False", seed::one_to_one()?, vec!["Parent.child", "Child.parent"]);
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let (child, parent) = (w.rel("Parent.child"), w.rel("Child.parent"));
    w.step("parent1.child = child1", |g| g.set(p1, child, Some(c1)).map(drop));
    w.step("parent1.child = child2: child1 is left with no parent at once", |g| {
        g.set(p1, child, Some(c2)).map(drop)
    });
    w.step("child2.parent = parent2: parent1 is left with no child at once", |g| {
        g.set(c2, parent, Some(p2)).map(drop)
    });

    let mut w = Walk::new(
        "One To One, backref(\"parent\", uselist=False) on many-to-one",
        seed::one_to_one_backref()?,
        vec!["Parent.child", "Child.parent"],
    );
    let (p1, p2, c1) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"));
    let child = w.rel("Parent.child");
    w.step("parent1.child = child1", |g| g.set(p1, child, Some(c1)).map(drop));
    w.step("parent2.child = child1: parent1 loses it", |g| g.set(p2, child, Some(c1)).map(drop));

    for (title, form) in [
        ("Many To Many, secondary=association_table", SecondaryForm::Handle),
        ("Many To Many, secondary=\"association\"", SecondaryForm::Name),
        ("Many To Many, secondary=lambda: association_table", SecondaryForm::Closure),
    ] {
        let mut w = Walk::new(
            title,
            seed::many_to_many(Sides::BackPopulates, form)?,
            vec!["Parent.children", "Child.parents"],
        );
        let (l1, l2, r1, r2) =
            (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
        let (children, parents) = (w.rel("Parent.children"), w.rel("Child.parents"));
        w.step(
            "left1.children.append(right1); left1.children.append(right2); right1.parents.append(left2)",
            |g| {
                g.append(l1, children, r1)?;
                g.append(l1, children, r2)?;
                g.append(r1, parents, l2).map(drop)
            },
        );
        w.step("myparent.children.remove(somechild): left1.children.remove(right1)", |g| {
            g.remove_member(l1, children, r1).map(drop)
        });
        w.step("session.delete(right1): its links go from both sides", |g| g.remove(r1).map(drop));
    }

    let mut w = Walk::new(
        "Many To Many, one way: delete with no reverse relationship",
        seed::many_to_many(Sides::OneWay, SecondaryForm::Name)?,
        vec!["Parent.children"],
    );
    let (l1, r1, r2) = (w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let children = w.rel("Parent.children");
    w.step("left1.children = [right1, right2]", |g| g.replace(l1, children, &[r1, r2]));
    w.step("session.delete(right1): the link goes although Child has no `parents`", |g| {
        g.remove(r1).map(drop)
    });

    println!("\n== Defining `association` twice (the seed's traceback) ==");
    let mut base = relgraph::Registry::new();
    seed::association_table(&mut base)?;
    match seed::association_table(&mut base) {
        Err(e) => println!("  error: {e}"),
        Ok(_) => println!("  unexpectedly accepted"),
    }
    Ok(())
}
