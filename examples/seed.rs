//! Walks every relationship pattern of the seed page (SQLAlchemy's "Basic
//! Relationship Patterns") against an embedded SQLite file: each step, the
//! SQL its flush sent, and both sides of every link after it, so the
//! association rows can be seen appearing and disappearing.
//!
//! The mappings are in `crates/relgraph-testkit/src/seed.rs`, written next
//! to the Python they mirror. Run with `cargo run --example seed`; the
//! database files go to the system's temporary folder. With
//! `cargo run --example seed -- --url postgres://postgres@127.0.0.1/test`
//! the same walk runs on PostgreSQL, each pattern in a schema of its own
//! (`relgraph_seed_*`, recreated on every run); with `-- --snapshot` it runs
//! on snapshot files, whose echo shows each row operation and the batch
//! appended at commit (look at them with `relgraph inspect` and `dump`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use relgraph::petgraph::Direction as PetDirection;
use relgraph::petgraph::visit::IntoNeighborsDirected;
use relgraph::{
    ObjectKey, PostgresStore, RelationshipId, Schema, Session, SnapshotStore, SqliteStore, Store,
};
use relgraph_testkit::seed::{self, SecondaryForm, Sides};

/// A session on its own SQLite file, a label per object, and the SQL it sends.
struct Walk {
    session: Session,
    schema: Arc<Schema>,
    labels: HashMap<ObjectKey, String>,
    sql: Arc<Mutex<Vec<String>>>,
    /// The relationships to print after every step, as `Entity.name`.
    shown: Vec<&'static str>,
}

/// Where the walk writes: SQLite files, a PostgreSQL server given by
/// `--url`, or snapshot files with `--snapshot`.
fn open_store(file: &str) -> Result<Box<dyn Store>, relgraph::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--snapshot") {
        let path = std::env::temp_dir().join(format!("relgraph-seed-{file}.snap"));
        let _ = std::fs::remove_file(&path);
        println!("   (snapshot file {})", path.display());
        return Ok(Box::new(SnapshotStore::open(&path)?));
    }
    match args.iter().position(|a| a == "--url").and_then(|i| args.get(i + 1)) {
        Some(url) => {
            let schema = format!("relgraph_seed_{file}");
            let mut admin = PostgresStore::connect(url)?;
            admin.client().batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).map_err(
                |e| {
                    relgraph::StoreError::new(relgraph::ErrorKind::Other, "dropping the walk's schema")
                        .with_source(e)
                },
            )?;
            println!("   (PostgreSQL schema {schema})");
            Ok(Box::new(PostgresStore::connect_in_schema(url, &schema)?))
        }
        None => {
            let path = std::env::temp_dir().join(format!("relgraph-seed-{file}.sqlite"));
            let _ = std::fs::remove_file(&path);
            println!("   (SQLite file {})", path.display());
            Ok(Box::new(SqliteStore::open(&path)?))
        }
    }
}

impl Walk {
    fn new(
        title: &str,
        file: &str,
        schema: Arc<Schema>,
        shown: Vec<&'static str>,
    ) -> Result<Self, relgraph::Error> {
        println!("\n== {title} ==");
        let mut session = Session::with_store(schema.clone(), open_store(file)?)?;
        let sql = Arc::new(Mutex::new(Vec::new()));
        let sink = sql.clone();
        session.set_echo(Some(Box::new(move |s: &str| sink.lock().expect("echo lock").push(s.to_owned()))));
        Ok(Walk { session, schema, labels: HashMap::new(), sql, shown })
    }

    /// A new object, added to the session.
    fn new_obj(&mut self, entity: &str) -> ObjectKey {
        let id = self.schema.entity_id(entity).expect("seed entity");
        let key = self.session.new_object(id);
        self.session.add(key).expect("a new object can be added");
        let n = self.labels.values().filter(|l| l.starts_with(&format!("{entity}#"))).count();
        self.labels.insert(key, format!("{entity}#{}", n + 1));
        key
    }

    fn rel(&self, path: &str) -> RelationshipId {
        let (entity, name) = path.split_once('.').expect("Entity.name");
        self.schema.relationship_by_name(entity, name).expect("seed relationship")
    }

    fn label(&self, key: ObjectKey) -> String {
        self.labels.get(&key).cloned().unwrap_or_else(|| format!("{key:?}"))
    }

    /// Prints `what`, runs it, flushes, prints the SQL and both sides of every shown relationship.
    fn step(&mut self, what: &str, op: impl FnOnce(&mut Session) -> Result<(), relgraph::Error>) {
        println!("> {what}");
        match op(&mut self.session).and_then(|()| self.session.flush().map(drop).map_err(Into::into)) {
            Ok(()) => {}
            Err(e) => println!("  refused: {e}"),
        }
        for statement in self.sql.lock().expect("echo lock").drain(..) {
            if statement != "BEGIN" && statement != "COMMIT" {
                // A snapshot store echoes row operations and file writes, not SQL.
                let label = if std::env::args().any(|a| a == "--snapshot") { "sent" } else { "SQL" };
                println!("  {label}: {statement}");
            }
        }
        let mut keys: Vec<_> =
            self.labels.keys().copied().filter(|k| self.session.graph().contains(*k)).collect();
        keys.sort_by_key(|k| self.label(*k));
        for path in self.shown.clone() {
            let rel = self.rel(path);
            let def = self.schema.relationship(rel);
            for &key in keys.iter().filter(|k| self.session.graph().entity_of(**k).ok() == Some(def.entity)) {
                let members: Vec<String> =
                    self.session.graph().members(key, rel).expect("members").map(|m| self.label(m)).collect();
                let shown = if def.uselist {
                    format!("[{}]", members.join(", "))
                } else {
                    members.first().cloned().unwrap_or_else(|| "None".into())
                };
                println!("    {}.{} = {shown}", self.label(key), def.name);
                if def.reverse.is_none() {
                    // No attribute names the other side; the one edge is there all the same.
                    let view = self.session.graph().link_view(rel).expect("view");
                    for m in self.session.graph().members(key, rel).expect("members") {
                        let back: Vec<_> = view
                            .neighbors_directed(m, PetDirection::Incoming)
                            .map(|k| self.label(k))
                            .collect();
                        println!("      (unnamed reverse at {}: [{}])", self.label(m), back.join(", "));
                    }
                }
            }
        }
    }
}

fn main() -> Result<(), relgraph::Error> {
    let args: Vec<String> = std::env::args().collect();
    let on = if args.iter().any(|a| a == "--url") {
        "PostgreSQL"
    } else if args.iter().any(|a| a == "--snapshot") {
        "snapshot files"
    } else {
        "SQLite"
    };
    println!("relgraph: the seed's relationship patterns on {on}; each step is flushed and its SQL shown");

    let mut w = Walk::new(
        "One To Many, back_populates",
        "o2m",
        seed::one_to_many(Sides::BackPopulates)?,
        vec!["Parent.children", "Child.parent"],
    )?;
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let (children, parent) = (w.rel("Parent.children"), w.rel("Child.parent"));
    w.step("parent1.children.append(child1); parent1.children.append(child2)", |s| {
        s.append(p1, children, c1)?;
        s.append(p1, children, c2)?;
        Ok(())
    });
    w.step("child1.parent = parent2", |s| s.set(c1, parent, Some(p2)).map(drop).map_err(Into::into));
    w.step("parent2.children.append(child1) again: membership is a set, nothing to send", |s| {
        s.append(p2, children, c1).map(drop).map_err(Into::into)
    });
    w.step("parent1.children.append(parent2): the wrong entity is refused", |s| {
        s.append(p1, children, p2).map(drop).map_err(Into::into)
    });
    w.step("session.delete(parent1): its child's foreign key is set to NULL first", |s| {
        s.delete(p1).map_err(Into::into)
    });

    let mut w = Walk::new(
        "One To Many, no reverse side",
        "o2m_oneway",
        seed::one_to_many(Sides::OneWay)?,
        vec!["Parent.children"],
    )?;
    let (p1, p2, c1) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"));
    let children = w.rel("Parent.children");
    w.step("parent1.children.append(child1)", |s| s.append(p1, children, c1).map(drop).map_err(Into::into));
    w.step("parent2.children.append(child1): the foreign key holds one parent", |s| {
        s.append(p2, children, c1).map(drop).map_err(Into::into)
    });

    let mut w = Walk::new(
        "Many To One, backref=\"parents\"",
        "m2o",
        seed::many_to_one(Sides::Backref)?,
        vec!["Parent.child", "Child.parents"],
    )?;
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let child = w.rel("Parent.child");
    w.step("parent1.child = child1; parent2.child = child1", |s| {
        s.set(p1, child, Some(c1))?;
        s.set(p2, child, Some(c1))?;
        Ok(())
    });
    w.step("parent1.child = child2", |s| s.set(p1, child, Some(c2)).map(drop).map_err(Into::into));
    w.step("parent2.child = None", |s| s.set(p2, child, None).map(drop).map_err(Into::into));

    let mut w = Walk::new(
        "One To One, uselist=False",
        "o2o",
        seed::one_to_one()?,
        vec!["Parent.child", "Child.parent"],
    )?;
    let (p1, p2, c1, c2) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let (child, parent) = (w.rel("Parent.child"), w.rel("Child.parent"));
    w.step("parent1.child = child1", |s| s.set(p1, child, Some(c1)).map(drop).map_err(Into::into));
    w.step("parent1.child = child2: child1 is left with no parent at once", |s| {
        s.set(p1, child, Some(c2)).map(drop).map_err(Into::into)
    });
    w.step("child2.parent = parent2: parent1 is left with no child at once", |s| {
        s.set(c2, parent, Some(p2)).map(drop).map_err(Into::into)
    });

    let mut w = Walk::new(
        "One To One, backref(\"parent\", uselist=False) on many-to-one",
        "o2o_backref",
        seed::one_to_one_backref()?,
        vec!["Parent.child", "Child.parent"],
    )?;
    let (p1, p2, c1) = (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"));
    let child = w.rel("Parent.child");
    w.step("parent1.child = child1", |s| s.set(p1, child, Some(c1)).map(drop).map_err(Into::into));
    w.step("parent2.child = child1: parent1 loses it", |s| {
        s.set(p2, child, Some(c1)).map(drop).map_err(Into::into)
    });

    for (title, file, form) in [
        ("Many To Many, secondary=association_table", "m2m_handle", SecondaryForm::Handle),
        ("Many To Many, secondary=\"association\"", "m2m_name", SecondaryForm::Name),
        ("Many To Many, secondary=lambda: association_table", "m2m_lambda", SecondaryForm::Closure),
    ] {
        let mut w = Walk::new(
            title,
            file,
            seed::many_to_many(Sides::BackPopulates, form)?,
            vec!["Parent.children", "Child.parents"],
        )?;
        let (l1, l2, r1, r2) =
            (w.new_obj("Parent"), w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
        let (children, parents) = (w.rel("Parent.children"), w.rel("Child.parents"));
        w.step(
            "left1.children.append(right1); left1.children.append(right2); right1.parents.append(left2)",
            |s| {
                s.append(l1, children, r1)?;
                s.append(l1, children, r2)?;
                s.append(r1, parents, l2)?;
                Ok(())
            },
        );
        w.step("myparent.children.remove(somechild): the association row is deleted", |s| {
            s.remove_member(l1, children, r1).map(drop).map_err(Into::into)
        });
        w.step("session.delete(right1): its association rows go with it", |s| {
            s.delete(r1).map_err(Into::into)
        });
    }

    let mut w = Walk::new(
        "Many To Many, one way: delete with no reverse relationship",
        "m2m_oneway",
        seed::many_to_many(Sides::OneWay, SecondaryForm::Name)?,
        vec!["Parent.children"],
    )?;
    let (l1, r1, r2) = (w.new_obj("Parent"), w.new_obj("Child"), w.new_obj("Child"));
    let children = w.rel("Parent.children");
    w.step("left1.children = [right1, right2]", |s| s.replace(l1, children, &[r1, r2]).map_err(Into::into));
    w.step("session.delete(right1): the association row goes although Child has no `parents`", |s| {
        s.delete(r1).map_err(Into::into)
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
